"""In-memory budget store: one process, for tests and single-process apps. Lost on exit.

Its ledger keeps the last ``ledger_size`` entries (100,000 by default, about 100 MB at most), so a
long-running process does not grow without bound; use SQLite or Redis for a complete audit trail.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from . import _store as st
from ._quiet import QuietSlot
from ._store import MAX_NANOS, Control, Controls, HoldInfo, HoldRequest, LedgerEntry, ReserveResult, Slot, Spend

# The ledger attributes of an expire_charge entry.
_CHARGE_ATTRIBUTES = {"on_expired_hold": st.CHARGE_ESTIMATE}
# How many reservation ids a settle with ``once`` remembers (and charges made at expiry).
_SETTLED_CAP = 100_000
_NO_SPEND: Dict[str, int] = {}


class _Hold(NamedTuple):  # a tuple: one is made on every call
    slot: Slot
    amount: int
    expires_at: float
    placed_at: float = 0.0
    holder: str = ""
    on_expired: str = st.CHARGE_ESTIMATE


# A ledger entry as kept: LedgerEntry's fields as a tuple (cheaper to make on every call); read_ledger
# makes the LedgerEntry objects.
_Entry = Tuple[float, str, str, str, str, int, str, Dict[str, Any]]


class MemoryBudgetStore(st.StoreBase):
    def __init__(self, clock: Callable[[], float] = time.time, ledger_size: int = 100_000) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._spend: Dict[Tuple[str, str], Dict[str, int]] = {}  # (budget id, key) -> window key -> spend
        self._holds: Dict[str, List[_Hold]] = {}  # reservation id -> holds
        self._reserved: Dict[Slot, int] = {}  # slot -> sum of its live holds
        self._expiries: List[Tuple[float, int, str]] = []  # heap of (expires_at, seq, reservation id)
        self._seq = itertools.count()
        self._controls: Controls = {}
        self._ledger: "collections.deque[Union[_Entry, LedgerEntry]]" = collections.deque(maxlen=ledger_size)
        self._settled: "collections.OrderedDict[str, None]" = collections.OrderedDict()  # settles with once
        # reservation id -> slot -> the amount charged when its hold expired (until a settle or release
        # reconciles it; the oldest are forgotten past _SETTLED_CAP).
        self._charged: "collections.OrderedDict[str, Dict[Slot, int]]" = collections.OrderedDict()

    def _log(self, now: float, kind: str, slot: Slot, amount: int, rid: str, attributes: Any = None,
             owned: bool = False) -> None:
        # owned: ``attributes`` is a dict made for this entry alone (no copy needed).
        attrs = attributes if owned else dict(attributes or {})
        self._ledger.append((now, kind, slot[0], slot[1], slot[2], amount, rid, attrs))

    def _unhold(self, hold: _Hold) -> None:
        left = self._reserved.get(hold.slot, 0) - hold.amount
        if left:
            self._reserved[hold.slot] = left
        else:
            self._reserved.pop(hold.slot, None)

    def _expire(self, now: float) -> None:
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, _, rid = heapq.heappop(expiries)
            holds = self._holds.get(rid)
            if not holds:
                continue  # settled or released already
            kept = []
            for hold in holds:
                if hold.expires_at <= now:
                    self._unhold(hold)
                    if hold.on_expired == st.CHARGE_ESTIMATE:
                        self._add_spend(hold.slot, hold.amount)
                        self._charged.setdefault(rid, {})[hold.slot] = hold.amount
                        if len(self._charged) > _SETTLED_CAP:
                            self._charged.popitem(last=False)
                        self._log(now, "expire_charge", hold.slot, hold.amount, rid, _CHARGE_ATTRIBUTES)
                    else:
                        self._log(now, "expire", hold.slot, hold.amount, rid)
                else:
                    kept.append(hold)
            if kept:
                self._holds[rid] = kept
            else:
                del self._holds[rid]

    def _add_spend(self, slot: Slot, amount: int) -> None:
        by_window = self._spend.setdefault((slot[0], slot[1]), {})
        by_window[slot[2]] = min(by_window.get(slot[2], 0) + amount, MAX_NANOS)

    def _uncharge(self, reservation_id: str, slot: Slot) -> Optional[int]:
        """Take back the charge made when this reservation's hold on ``slot`` expired; returns the
        amount taken back, or None if there was none."""
        charged = self._charged.get(reservation_id)
        if not charged or slot not in charged:
            return None
        amount = charged.pop(slot)
        if not charged:
            del self._charged[reservation_id]
        by_window = self._spend.get((slot[0], slot[1]), {})
        taken = st.uncharge(by_window.get(slot[2], 0), amount)
        if taken:
            by_window[slot[2]] -= taken
        return taken

    def _prune(self, budget_id: str, key: str, prefix: str, before: int) -> None:
        by_window = self._spend.get((budget_id, key))
        if not by_window:
            return
        for window in [w for w in by_window if w.startswith(prefix) and int(w[len(prefix):]) < before]:
            del by_window[window]

    def _usage(self, budget_id: str, key: str, window_keys: Sequence[str]) -> Spend:
        by_window = self._spend.get((budget_id, key), {})
        if len(window_keys) == 1:
            window = window_keys[0]
            return Spend(by_window.get(window, 0), self._reserved.get((budget_id, key, window), 0))
        counted = set(window_keys)
        reserved = self._reserved
        return Spend(
            sum(by_window.get(w, 0) for w in counted), sum(reserved.get((budget_id, key, w), 0) for w in counted)
        )

    def reserve(
        self,
        requests: Sequence[HoldRequest],
        reservation_id: str,
        ttl: float,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> ReserveResult:
        with self._lock:
            now = self._clock()
            self._expire(now)
            for r in requests:
                if r.prune:
                    self._prune(r.budget_id, r.key, *r.prune)
            usage = tuple([self._usage(r.budget_id, r.key, r.counted) for r in requests])
            refused = st.refusals(requests, usage)
            if refused:
                for i in refused:
                    r = requests[i]
                    self._log(now, "block", r.slot, r.amount, reservation_id, st.block_attributes(attributes, r))
                return ReserveResult(False, usage, refused)
            holds = self._holds.setdefault(reservation_id, [])
            expires_at = now + ttl
            me = st.holder()
            # One copy of the reservation's attributes, shared by its reserve entries (never changed).
            attrs = dict(attributes) if attributes else {}
            ledger, reserved = self._ledger, self._reserved
            for r in requests:
                slot = (r.budget_id, r.key, r.window_key)
                amount = r.amount if type(r.amount) is int and 0 <= r.amount <= MAX_NANOS else st.clamp(r.amount)
                holds.append(_Hold(slot, amount, expires_at, now, me, r.on_expired))
                reserved[slot] = reserved.get(slot, 0) + amount
                ledger.append((now, "reserve", r.budget_id, r.key, r.window_key, r.amount, reservation_id, attrs))
            heapq.heappush(self._expiries, (expires_at, next(self._seq), reservation_id))
            return ReserveResult(True, usage)

    def hold_quiet(
        self, lane: Sequence[QuietSlot], amount: int, reservation_id: str, ttl: float, attributes: Dict[str, Any]
    ) -> Optional[List[Tuple[int, int]]]:
        """Hold ``amount`` on every slot of the lane, as ``reserve`` does, if each slot's spend + holds +
        amount stays at or below its ``quiet_max``; returns each slot's (spend, holds) before the call.
        Otherwise None, and nothing changed (not even expired holds: ``reserve`` expires them).
        ``attributes``: the reservation's ledger attributes, a dict the caller made for it."""
        with self._lock:
            now = self._clock()
            expiries = self._expiries
            if expiries and expiries[0][0] <= now:
                self._expire(now)
            spend_of, reserved = self._spend, self._reserved
            usage = []
            for q in lane:
                slot = q.slot
                if q.prune:
                    self._prune(slot[0], slot[1], *q.prune)
                if len(q.counted) == 1:
                    spent, held = spend_of.get((slot[0], slot[1]), _NO_SPEND).get(slot[2], 0), reserved.get(slot, 0)
                else:
                    u = self._usage(slot[0], slot[1], q.counted)
                    spent, held = u.spent, u.reserved
                if spent + held + amount > q.quiet_max:
                    return None
                usage.append((spent, held))
            holds = self._holds.setdefault(reservation_id, [])
            expires_at = now + ttl
            me = st.holder()
            ledger = self._ledger
            for q in lane:
                slot = q.slot
                holds.append(_Hold(slot, amount, expires_at, now, me, q.on_expired))
                reserved[slot] = reserved.get(slot, 0) + amount
                ledger.append((now, "reserve", slot[0], slot[1], slot[2], amount, reservation_id, attributes))
            heapq.heappush(expiries, (expires_at, next(self._seq), reservation_id))
            return usage

    def settle(
        self,
        reservation_id: str,
        actual: Mapping[Slot, int],
        attributes: Optional[Mapping[str, Any]] = None,
        *,
        once: bool = False,
    ) -> None:
        for a in actual.values():  # clamped_attributes only when an amount is out of range (rare)
            if type(a) is not int or not 0 <= a <= MAX_NANOS:
                attributes = st.clamped_attributes(attributes, actual.values())
                break
        else:
            attributes = dict(attributes) if attributes else {}
        with self._lock:
            if once:
                if reservation_id in self._settled:
                    return  # settled already (a journaled settle replayed after the first one landed)
                self._settled[reservation_id] = None
                if len(self._settled) > _SETTLED_CAP:
                    self._settled.popitem(last=False)
            now = self._clock()
            holds = self._holds.pop(reservation_id, ())
            reserved = self._reserved
            held = set()
            for hold in holds:  # as _unhold, inline: every call settles
                slot = hold.slot
                held.add(slot)
                left = reserved.get(slot, 0) - hold.amount
                if left:
                    reserved[slot] = left
                else:
                    reserved.pop(slot, None)
            alone = len(actual) == 1  # then the attributes copied above are this entry's own
            ledger = self._ledger
            spend = self._spend
            for slot, amount in actual.items():
                if type(amount) is not int or not 0 <= amount <= MAX_NANOS:
                    amount = st.clamp(amount)
                charged = None if slot in held else self._uncharge(reservation_id, slot)
                by_window = spend.get((slot[0], slot[1]))  # as _add_spend, inline
                if by_window is None:
                    by_window = spend[(slot[0], slot[1])] = {}
                by_window[slot[2]] = min(by_window.get(slot[2], 0) + amount, MAX_NANOS)
                if alone and charged is None and slot in held:
                    extra = attributes
                else:
                    extra = st.settle_attributes(attributes, slot in held, charged)
                ledger.append((now, "settle", slot[0], slot[1], slot[2], amount, reservation_id, extra))

    def release(self, reservation_id: str) -> None:
        with self._lock:
            now = self._clock()
            for hold in self._holds.pop(reservation_id, []):
                self._unhold(hold)
                self._log(now, "release", hold.slot, hold.amount, reservation_id)
            for slot in list(self._charged.get(reservation_id, {})):
                taken = self._uncharge(reservation_id, slot)
                self._log(now, "release", slot, taken or 0, reservation_id, {st.EXPIRED_CHARGE: taken})

    def spent(self, budget_id: str, key: str, window_keys: Sequence[str]) -> Spend:
        window_keys = st.window_tuple(window_keys)
        with self._lock:
            self._expire(self._clock())
            return self._usage(budget_id, key, window_keys)

    def holds(self, budget_id: str, key: Optional[str] = None) -> List[HoldInfo]:
        """The live holds of a budget (of one partition with ``key``), oldest first."""
        with self._lock:
            self._expire(self._clock())
            found = [
                HoldInfo(rid, h.slot[0], h.slot[1], h.slot[2], h.amount, h.expires_at, h.placed_at or None,
                         h.holder or None)
                for rid, holds in self._holds.items()
                for h in holds
                if h.slot[0] == budget_id and (key is None or h.slot[1] == key)
            ]
        return sorted(found, key=lambda h: (h.placed_at or 0, h.reservation_id))

    def record(self, entries: Sequence[LedgerEntry]) -> None:
        with self._lock:
            self._ledger.extend(entries)

    def read_ledger(self, query: st.LedgerQuery) -> List[LedgerEntry]:
        with self._lock:
            entries = list(self._ledger)
        return query.apply([e if isinstance(e, LedgerEntry) else LedgerEntry(*e) for e in entries])

    # Operators' controls and corrections.

    def change_control(self, change: st.ControlChange) -> st.ControlValue:
        budget_id, key, field, value, entry = change
        with self._lock:
            now = self._clock()
            current = self._controls.get((budget_id, key), Control())
            previous: st.ControlValue = getattr(current, field)
            self._set_control((budget_id, key), st.with_value(current, field, value))
            kind, amount, attrs = entry(previous)
            self._log(now, kind, (budget_id, key, ""), amount, st.new_id(), attrs)
            return previous

    def _set_control(self, where: Tuple[str, str], control: Control) -> None:
        if control == Control():
            self._controls.pop(where, None)
        else:
            self._controls[where] = control

    def controls(self) -> Controls:
        with self._lock:
            return dict(self._controls)

    def adjust(
        self,
        budget_id: str,
        key: str,
        window_keys: Sequence[str],
        amount: int,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> int:
        window_keys = st.window_tuple(window_keys)
        with self._lock:
            now = self._clock()
            by_window = self._spend.setdefault((budget_id, key), {})
            current = window_keys[-1]
            if amount >= 0:
                by_window[current] = by_window.get(current, 0) + amount
                applied = amount
            else:
                taken = st.debit(by_window, window_keys, -amount)
                for window, take in taken.items():
                    by_window[window] -= take
                applied = -sum(taken.values())
            attrs = {**(attributes or {}), "requested_nanos": int(amount)}
            self._log(now, "adjust", (budget_id, key, current), applied, st.new_id(), attrs)
            return applied

    def reset(
        self,
        budget_id: str,
        key: str,
        window_keys: Sequence[str],
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> int:
        window_keys = st.window_tuple(window_keys)
        with self._lock:
            now = self._clock()
            by_window = self._spend.get((budget_id, key), {})
            removed = 0
            for window in set(window_keys):
                if window in by_window:
                    removed += by_window.pop(window)
            self._log(now, "reset", (budget_id, key, window_keys[-1]), removed, st.new_id(), dict(attributes or {}))
            return removed

    def partitions(self, budget_id: str, window_keys: Sequence[str]) -> List[str]:
        window_keys = st.window_tuple(window_keys)
        with self._lock:
            self._expire(self._clock())
            keys = {k for (b, k), by_window in self._spend.items() if b == budget_id and any(
                by_window.get(w, 0) > 0 for w in window_keys)}
            keys |= {s[1] for s, amount in self._reserved.items() if s[0] == budget_id and s[2] in window_keys
                     and amount > 0}
            return sorted(keys)

    def close(self) -> None:
        pass
