"""What a budget store does, whatever keeps the numbers (memory, SQLite, Redis).

Amounts are integer nano-dollars. A store keeps, per (budget id, key, window key), the settled spend
and the holds of reservations in flight, and an append-only ledger of every change and refusal.
It also keeps the operators' controls of each budget, written by the CLI and read by every book:
a limit that replaces the configured one, and a freeze that refuses every call. A control applies to
one partition key, or to every partition of the budget with the key ``ALL_KEYS`` ("").
"""
from __future__ import annotations

import itertools
import json
import os
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    runtime_checkable,
)

from ._model import CHARGE_ESTIMATE as CHARGE_ESTIMATE  # the on_expired_hold policies, for the stores
from ._model import ON_EXPIRED_HOLD as ON_EXPIRED_HOLD
from ._model import RELEASE as RELEASE
from ._model import check_on_expired_hold as check_on_expired_hold
from ._model import from_nanos

# (budget id, key, window key): one counter of spend.
Slot = Tuple[str, str, str]

# Calls: reserve, settle, release, expire (a hold dropped at its TTL), expire_charge (a hold charged at
# its TTL: its amount added to the spend of its window), and the decisions block, warn, downgrade,
# throttle.
# Operators: set_limit, clear_limit (the limit override), freeze, unfreeze, adjust (spend added or
# removed: amount is the signed change applied), reset (amount is the spend removed).
LEDGER_KINDS = (
    "reserve",
    "settle",
    "release",
    "expire",
    "expire_charge",
    "block",
    "warn",
    "downgrade",
    "throttle",
    "set_limit",
    "clear_limit",
    "freeze",
    "unfreeze",
    "adjust",
    "reset",
)
ADMIN_KINDS = ("set_limit", "clear_limit", "freeze", "unfreeze", "adjust", "reset")

# The ledger attribute of a settle or release that replaced a charge made at expiry: the nano-dollars
# of that charge, taken back from the spend (a settle then adds the actual cost, a release nothing).
EXPIRED_CHARGE = "expired_charge_nanos"


def uncharge(spend: int, charged: int) -> int:
    """How much of a charge made at expiry a reconcile takes back from a window's spend: all of it,
    but never more than the spend there (an operator may have reset it meanwhile)."""
    return min(max(spend, 0), max(charged, 0))


# The control key of a whole budget: its controls apply to every partition. A per-key budget never
# has a partition "" (calls without the per attribute count in "(unattributed)"), and the only
# partition of a budget without ``per`` is "".
ALL_KEYS = ""


# The largest amount a store counts, in nano-dollars: 2**53 - 1 (about 9 million USD), exact as a
# double (Redis's Lua numbers) and far from int64 overflow (SQLite's INTEGER, Redis's HINCRBY) when
# two are added. Amounts above it (a response reporting absurd usage) are counted as this much, and
# counters saturate at it, so a settle never fails half-way: the store records the clamped amount
# and the amount asked for (attribute ``clamped_from_nanos``).
MAX_NANOS = 2**53 - 1


def clamp(amount: int) -> int:
    """An amount as a store counts it: 0 ≤ amount ≤ MAX_NANOS."""
    amount = int(amount)
    return 0 if amount < 0 else MAX_NANOS if amount > MAX_NANOS else amount


def clamped_attributes(attributes: Optional[Mapping[str, Any]], amounts: Iterable[int]) -> Dict[str, Any]:
    """``attributes`` plus ``clamped_from_nanos`` when any amount is out of range (as a string:
    JSON numbers lose digits past 2**53)."""
    extra = dict(attributes) if attributes else {}
    over = None
    for a in amounts:  # a plain loop: every settle passes here
        if type(a) is not int or not 0 <= a <= MAX_NANOS:
            a = int(a)
            if (a > MAX_NANOS or a < 0) and (over is None or abs(a) > abs(over)):
                over = a
    if over is not None:
        extra["clamped_from_nanos"] = str(over)
    return extra


class StoreUnavailableError(RuntimeError):
    """The budget store cannot be used now (it did not open, or its circuit breaker is open).
    ``reason`` names the failure."""

    def __init__(self, store: str, reason: str) -> None:
        self.store, self.reason = store, reason
        super().__init__(f"budget store {store} is unavailable: {reason}")


_holder = ""


def holder() -> str:
    """Who places a hold: ``host:pid``, so that ``budget show`` can tell holds of dead processes.
    Read once per process (a fork reads it again)."""
    global _holder
    if not _holder:
        _holder = f"{socket.gethostname()}:{os.getpid()}"
    return _holder


@dataclass(frozen=True)
class HoldInfo:
    """A hold in flight, as ``budget show`` lists it. ``placed_at`` and ``holder`` are None for
    holds placed by a version that did not record them."""

    reservation_id: str
    budget_id: str
    key: str
    window_key: str
    amount_nanos: int
    expires_at: float
    placed_at: Optional[float] = None
    holder: Optional[str] = None

    @property
    def amount(self) -> Decimal:
        return from_nanos(self.amount_nanos)


@dataclass(frozen=True, init=False)
class HoldRequest:
    """One budget's part of a reservation: hold ``amount`` unless the spend would pass ``limit``.

    ``limit`` None records the hold without ever refusing it (shadow budgets). ``counted_keys`` are the
    window keys whose spend and holds count against the limit; by default only ``window_key``.
    """

    budget_id: str
    key: str
    window_key: str
    limit: Optional[int]
    amount: int
    counted_keys: Tuple[str, ...] = ()
    prune: Optional[Tuple[str, int]] = None  # see WindowSpan.prune; the store may delete that spend
    frozen: bool = False  # the budget is frozen: refuse the hold whatever the spend (logged as a block)
    on_expired: str = CHARGE_ESTIMATE  # what the hold does if it reaches its TTL unsettled (ON_EXPIRED_HOLD)

    def __init__(
        self, budget_id: str, key: str, window_key: str, limit: Optional[int], amount: int,
        counted_keys: Tuple[str, ...] = (), prune: Optional[Tuple[str, int]] = None, frozen: bool = False,
        on_expired: str = CHARGE_ESTIMATE,
    ) -> None:
        # Built on every call: the fields set in one step (a frozen dataclass's own __init__ sets each alone).
        self.__dict__.update(budget_id=budget_id, key=key, window_key=window_key, limit=limit, amount=amount,
                             counted_keys=counted_keys, prune=prune, frozen=frozen, on_expired=on_expired)

    @property
    def slot(self) -> Slot:
        return (self.budget_id, self.key, self.window_key)

    @property
    def counted(self) -> Tuple[str, ...]:
        return self.counted_keys or (self.window_key,)


@dataclass(frozen=True, init=False)
class Spend:
    """Settled spend and amounts held by reservations in flight, in nano-dollars."""

    spent: int
    reserved: int

    def __init__(self, spent: int, reserved: int) -> None:
        self.__dict__.update(spent=spent, reserved=reserved)  # as HoldRequest


@dataclass(frozen=True, init=False)
class ReserveResult:
    """``ok``: every hold was placed. Otherwise none was, and ``refused`` lists the requests over limit.

    ``usage[i]`` is the spend and holds of request ``i`` before this reservation.
    """

    ok: bool
    usage: Tuple[Spend, ...]
    refused: Tuple[int, ...] = ()

    def __init__(self, ok: bool, usage: Tuple[Spend, ...], refused: Tuple[int, ...] = ()) -> None:
        self.__dict__.update(ok=ok, usage=usage, refused=refused)  # as HoldRequest


@dataclass(frozen=True)
class Control:
    """An operator's control of a budget partition: ``limit`` (nano-dollars) replaces the configured
    limit when set; ``frozen`` refuses every call."""

    limit: Optional[int] = None
    frozen: bool = False


# (budget id, control key): the control; control key ALL_KEYS is the whole budget.
Controls = Dict[Tuple[str, str], Control]


@dataclass(frozen=True, init=False)
class LedgerEntry:
    time: float  # seconds since the epoch, from the store's clock
    kind: str
    budget_id: str
    key: str
    window_key: str
    amount_nanos: int
    reservation_id: str
    attributes: Dict[str, Any] = field(default_factory=dict)

    def __init__(
        self, time: float, kind: str, budget_id: str, key: str, window_key: str, amount_nanos: int,
        reservation_id: str, attributes: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.__dict__.update(  # as HoldRequest
            time=time, kind=kind, budget_id=budget_id, key=key, window_key=window_key, amount_nanos=amount_nanos,
            reservation_id=reservation_id, attributes={} if attributes is None else attributes,
        )

    @property
    def amount(self) -> Decimal:
        return from_nanos(self.amount_nanos)


def dumps(attributes: Optional[Mapping[str, Any]]) -> str:
    return json.dumps(dict(attributes or {}), sort_keys=True, default=str, separators=(",", ":"))


# Ids: a random 64-bit number per process (drawn again in a forked child), and a counter whose values
# are spread over 64 bits (times an odd constant: a permutation), so that ids differ in their first
# digits too (``budget show`` prints the first 12). No system call per id.
_ID_MIX = 0x9E3779B97F4A7C15
_ID_MASK = 2**64 - 1
_id_salt = 0
_id_suffix = ""
_id_counter = itertools.count()


def _new_id_seed() -> None:
    global _id_salt, _id_suffix, _id_counter
    seed = os.urandom(16)
    _id_salt, _id_suffix, _id_counter = int.from_bytes(seed[:8], "big"), seed[8:].hex(), itertools.count()


def _after_fork() -> None:
    global _holder
    _holder = ""
    _new_id_seed()


_new_id_seed()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def new_id() -> str:
    """A 32-hex-digit id, unique across processes, for reservations and operator changes."""
    return format(((next(_id_counter) * _ID_MIX) & _ID_MASK) ^ _id_salt, "016x") + _id_suffix


class LedgerQuery(NamedTuple):
    """The filters of ``BudgetStore.ledger``: ``since`` <= time < ``until``, ``kinds``: any of these
    kinds; ``last``: only the last N entries that pass the others."""

    budget_id: Optional[str] = None
    key: Optional[str] = None
    kind: Optional[str] = None
    reservation_id: Optional[str] = None
    since: Optional[float] = None
    until: Optional[float] = None
    kinds: Optional[FrozenSet[str]] = None
    last: Optional[int] = None

    def keep(self) -> Callable[[LedgerEntry], bool]:
        """The predicate of every filter but ``last``."""
        budget_id, key, kind, reservation_id, since, until, kinds, _ = self

        def keep(e: LedgerEntry) -> bool:
            return (
                (budget_id is None or e.budget_id == budget_id)
                and (key is None or e.key == key)
                and (kind is None or e.kind == kind)
                and (kinds is None or e.kind in kinds)
                and (reservation_id is None or e.reservation_id == reservation_id)
                and (since is None or e.time >= since)
                and (until is None or e.time < until)
            )

        return keep

    def apply(self, entries: Sequence[LedgerEntry]) -> List[LedgerEntry]:
        """The entries, in their order, that pass every filter."""
        keep = self.keep()
        kept = [e for e in entries if keep(e)]
        if self.last is not None:
            kept = kept[-self.last:] if self.last > 0 else []
        return kept


def window_tuple(window_keys: Sequence[str]) -> Tuple[str, ...]:
    """``window_keys`` as a tuple; one window key may be given as a string."""
    return (window_keys,) if isinstance(window_keys, str) else tuple(window_keys)


def refusals(requests: Sequence[HoldRequest], spend: Sequence[Spend]) -> Tuple[int, ...]:
    """The requests a reserve refuses: frozen, or whose spend + holds + amount would pass the limit."""
    refused = []
    for i, (r, u) in enumerate(zip(requests, spend)):
        if r.frozen or (r.limit is not None and u.spent + u.reserved + r.amount > r.limit):
            refused.append(i)
    return tuple(refused)


def block_attributes(attributes: Optional[Mapping[str, Any]], request: HoldRequest) -> Dict[str, Any]:
    """The ledger attributes of a refused request: the reservation's, and ``frozen`` for a freeze."""
    return {**(attributes or {}), "frozen": True} if request.frozen else dict(attributes or {})


def settle_attributes(attributes: Mapping[str, Any], held: bool, charged: Optional[int] = None) -> Dict[str, Any]:
    """The ledger attributes of one slot's settle: ``late`` when its hold had expired or was never
    placed; ``expired_charge_nanos`` when its hold had been charged at expiry (``charged``: the
    amount that reconcile took back from the spend)."""
    extra = dict(attributes) if held else {**attributes, "late": True}
    if charged is not None:
        extra[EXPIRED_CHARGE] = int(charged)
    return extra


def with_value(control: Control, field: str, value: Optional[int]) -> Control:
    """``control`` with its ``limit`` or its ``frozen`` (``field``) replaced by ``value``."""
    if field == "limit":
        return Control(None if value is None else int(value), control.frozen)
    return Control(control.limit, bool(value))


# What an operator's change of a control writes to the ledger: kind, amount, attributes.
AdminEntry = Tuple[str, int, Dict[str, Any]]
# The value of a control's field: a limit in nano-dollars (None: the configured one), or frozen (a bool).
ControlValue = Optional[int]


class ControlChange(NamedTuple):
    """An operator's change of one field of a partition's control: ``field`` (``limit`` or ``frozen``)
    becomes ``value``; ``entry(previous value)`` is what the ledger records (window key "")."""

    budget_id: str
    key: str
    field: str
    value: ControlValue
    entry: Callable[[ControlValue], AdminEntry]


def debit(spend: Mapping[str, int], window_keys: Sequence[str], amount: int) -> Dict[str, int]:
    """How much to take from each window key to remove ``amount`` of spend without going below zero:
    newest window key (the last) first, as a refund of the most recent spend."""
    taken: Dict[str, int] = {}
    left = amount
    for window in reversed(window_keys):
        if left <= 0:
            break
        take = min(max(spend.get(window, 0), 0), left)
        if take > 0:
            taken[window] = take
            left -= take
    return taken


@runtime_checkable
class BudgetStore(Protocol):
    """Holds, spend and the ledger. Every method is atomic, across threads and, for the shared
    stores, across processes and hosts. Holds older than their TTL are expired (with a ledger entry)
    whenever ``reserve`` or ``spent`` reads them: by their request's ``on_expired`` policy, charged to
    the spend of their window (``expire_charge``) or dropped (``expire``), exactly once. A settle or
    release that comes after the charge reconciles it: the charge is taken back (the settle then adds
    the actual cost), and its ledger entry says how much (``expired_charge_nanos``)."""

    def reserve(
        self,
        requests: Sequence[HoldRequest],
        reservation_id: str,
        ttl: float,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> ReserveResult:
        """Hold every request, or none if any would take its spend + holds past its limit or is
        ``frozen``. Each refused request is logged as a block (a frozen one with ``frozen: true``)."""
        ...

    def settle(
        self,
        reservation_id: str,
        actual: Mapping[Slot, int],
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Replace the reservation's holds by the actual spend per slot (even if the holds expired; a
        hold charged at expiry has its charge replaced by the actual spend)."""
        ...

    def release(self, reservation_id: str) -> None:
        """Drop the reservation's holds without recording spend (the call was not made); a hold
        charged at expiry has its charge taken back."""
        ...

    def spent(self, budget_id: str, key: str, window_keys: Sequence[str]) -> Spend:
        """Settled spend and live holds summed over ``window_keys`` (one key or several)."""
        ...

    def record(self, entries: Sequence[LedgerEntry]) -> None:
        """Append decisions made outside the store (warn, downgrade, throttle, shadow blocks)."""
        ...

    def ledger(
        self,
        budget_id: Optional[str] = None,
        key: Optional[str] = None,
        kind: Optional[str] = None,
        reservation_id: Optional[str] = None,
        since: Optional[float] = None,
        until: Optional[float] = None,
        *,
        kinds: Optional[Iterable[str]] = None,
        last: Optional[int] = None,
    ) -> List[LedgerEntry]:
        """Ledger entries in the order they were written, filtered (``since`` <= time < ``until``;
        ``kinds``: any of these kinds). ``last``: only the last N entries that pass the filters."""
        ...

    # Operators' controls and corrections. Each is atomic and writes one ledger entry; ``attributes``
    # (who, why) go into it.

    def set_limit(
        self, budget_id: str, key: str, limit: Optional[int], attributes: Optional[Mapping[str, Any]] = None
    ) -> Optional[int]:
        """Replace the configured limit of a budget partition (``key`` ALL_KEYS: every partition) by
        ``limit`` nano-dollars, or go back to the configured one with None. Returns the previous
        override. Ledger: set_limit (amount: the new limit) or clear_limit (amount: the old one)."""
        ...

    def set_frozen(
        self, budget_id: str, key: str, frozen: bool, attributes: Optional[Mapping[str, Any]] = None
    ) -> bool:
        """Freeze or unfreeze a budget partition (``key`` ALL_KEYS: the whole budget). Returns whether
        it was frozen. Ledger: freeze or unfreeze."""
        ...

    def controls(self) -> Controls:
        """Every control in force: (budget id, control key) -> Control. One read."""
        ...

    def adjust(
        self,
        budget_id: str,
        key: str,
        window_keys: Sequence[str],
        amount: int,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> int:
        """Add ``amount`` nano-dollars (negative: remove) to the settled spend of a partition in the
        window made of ``window_keys`` (the current one last, where a positive amount goes). Spend
        never goes below zero: returns the change applied. Ledger: adjust (amount: the change
        applied; attributes: requested_nanos)."""
        ...

    def reset(
        self,
        budget_id: str,
        key: str,
        window_keys: Sequence[str],
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> int:
        """Zero the settled spend of a partition over ``window_keys``; holds in flight stay. Returns
        the spend removed. Ledger: reset (amount: the spend removed)."""
        ...

    def partitions(self, budget_id: str, window_keys: Sequence[str]) -> List[str]:
        """The keys of a budget with settled spend or live holds in ``window_keys``, sorted."""
        ...

    def close(self) -> None: ...


class StoreBase(ABC):
    """What the stores share: ``ledger`` reads through ``read_ledger``, and the operators' controls
    are written through ``change_control``, so that each store only says how it keeps them."""

    @abstractmethod
    def read_ledger(self, query: LedgerQuery) -> List[LedgerEntry]:
        """The ledger entries that pass ``query``, in the order they were written."""

    @abstractmethod
    def change_control(self, change: ControlChange) -> ControlValue:
        """Make the change and write its ledger entry, atomically. Returns the field's previous value."""

    def ledger(
        self,
        budget_id: Optional[str] = None,
        key: Optional[str] = None,
        kind: Optional[str] = None,
        reservation_id: Optional[str] = None,
        since: Optional[float] = None,
        until: Optional[float] = None,
        *,
        kinds: Optional[Iterable[str]] = None,
        last: Optional[int] = None,
    ) -> List[LedgerEntry]:
        wanted = None if kinds is None else frozenset(kinds)
        return self.read_ledger(LedgerQuery(budget_id, key, kind, reservation_id, since, until, wanted, last))

    def set_limit(
        self, budget_id: str, key: str, limit: Optional[int], attributes: Optional[Mapping[str, Any]] = None
    ) -> Optional[int]:
        new = None if limit is None else int(limit)

        def entry(previous: ControlValue) -> AdminEntry:
            if new is None:
                return "clear_limit", previous or 0, dict(attributes or {})
            return "set_limit", new, {**(attributes or {}), "previous_limit_nanos": previous}

        return self.change_control(ControlChange(budget_id, key, "limit", new, entry))

    def set_frozen(
        self, budget_id: str, key: str, frozen: bool, attributes: Optional[Mapping[str, Any]] = None
    ) -> bool:
        def entry(was: ControlValue) -> AdminEntry:
            return "freeze" if frozen else "unfreeze", 0, {**(attributes or {}), "was_frozen": bool(was)}

        return bool(self.change_control(ControlChange(budget_id, key, "frozen", bool(frozen), entry)))


class UnavailableStore:
    """A store that never opens (the configuration could not be read): every reserve fails with the
    reason, so a book that fails closed refuses every call; nothing is held, settled or journaled."""

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason

    def reserve(self, *args: Any, **kwargs: Any) -> ReserveResult:
        raise StoreUnavailableError(self.name, self.reason)

    def controls(self) -> Controls:
        return {}

    def settle(self, *args: Any, **kwargs: Any) -> None:
        pass

    def release(self, reservation_id: str) -> None:
        pass

    def record(self, entries: Sequence[LedgerEntry]) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailableError(self.name, self.reason)

        return unavailable

    def close(self) -> None:
        pass
