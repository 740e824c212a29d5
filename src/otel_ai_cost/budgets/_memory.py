"""In-memory budget store: one process, for tests and single-process apps. Lost on exit."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ._store import HoldRequest, LedgerEntry, ReserveResult, Slot, Usage, filter_ledger


@dataclass
class _Hold:
    slot: Slot
    amount: int
    expires_at: float


class MemoryBudgetStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._spend: Dict[Tuple[str, str], Dict[str, int]] = {}  # (budget id, key) -> window key -> spend
        self._holds: Dict[str, List[_Hold]] = {}  # reservation id -> holds
        self._ledger: List[LedgerEntry] = []

    def _log(self, now: float, kind: str, slot: Slot, amount: int, rid: str, attributes: Any = None) -> None:
        self._ledger.append(LedgerEntry(now, kind, slot[0], slot[1], slot[2], amount, rid, dict(attributes or {})))

    def _expire(self, now: float) -> None:
        for rid in [rid for rid, holds in self._holds.items() if any(h.expires_at <= now for h in holds)]:
            kept = []
            for hold in self._holds[rid]:
                if hold.expires_at <= now:
                    self._log(now, "expire", hold.slot, hold.amount, rid)
                else:
                    kept.append(hold)
            if kept:
                self._holds[rid] = kept
            else:
                del self._holds[rid]

    def _prune(self, budget_id: str, key: str, prefix: str, before: int) -> None:
        by_window = self._spend.get((budget_id, key), {})
        for window in [w for w in by_window if w.startswith(prefix) and int(w[len(prefix):]) < before]:
            del by_window[window]

    def _usage(self, budget_id: str, key: str, window_keys: Sequence[str]) -> Usage:
        counted = set(window_keys)
        by_window = self._spend.get((budget_id, key), {})
        spent = sum(by_window.get(w, 0) for w in counted)
        reserved = sum(
            h.amount
            for holds in self._holds.values()
            for h in holds
            if h.slot[0] == budget_id and h.slot[1] == key and h.slot[2] in counted
        )
        return Usage(spent, reserved)

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
            usage = tuple(self._usage(r.budget_id, r.key, r.counted) for r in requests)
            refused = tuple(
                i
                for i, (r, u) in enumerate(zip(requests, usage))
                if r.limit is not None and u.spent + u.reserved + r.amount > r.limit
            )
            if refused:
                for i in refused:
                    self._log(now, "block", requests[i].slot, requests[i].amount, reservation_id, attributes)
                return ReserveResult(False, usage, refused)
            holds = self._holds.setdefault(reservation_id, [])
            for r in requests:
                holds.append(_Hold(r.slot, r.amount, now + ttl))
                self._log(now, "reserve", r.slot, r.amount, reservation_id, attributes)
            return ReserveResult(True, usage)

    def settle(
        self,
        reservation_id: str,
        actual: Mapping[Slot, int],
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> None:
        with self._lock:
            now = self._clock()
            held = {h.slot for h in self._holds.pop(reservation_id, [])}
            for slot, amount in actual.items():
                by_window = self._spend.setdefault((slot[0], slot[1]), {})
                by_window[slot[2]] = by_window.get(slot[2], 0) + amount
                extra = dict(attributes or {})
                if slot not in held:
                    extra["late"] = True  # the hold had expired or was never placed
                self._log(now, "settle", slot, amount, reservation_id, extra)

    def release(self, reservation_id: str) -> None:
        with self._lock:
            now = self._clock()
            for hold in self._holds.pop(reservation_id, []):
                self._log(now, "release", hold.slot, hold.amount, reservation_id)

    def spent(self, budget_id: str, key: str, window_keys: Sequence[str]) -> Usage:
        window_keys = (window_keys,) if isinstance(window_keys, str) else tuple(window_keys)
        with self._lock:
            self._expire(self._clock())
            return self._usage(budget_id, key, window_keys)

    def record(self, entries: Sequence[LedgerEntry]) -> None:
        with self._lock:
            self._ledger.extend(entries)

    def ledger(self, **filters: Any) -> List[LedgerEntry]:
        with self._lock:
            return filter_ledger(list(self._ledger), **filters)

    def close(self) -> None:
        pass
