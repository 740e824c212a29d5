"""What a budget store does, whatever keeps the numbers (memory, SQLite, Redis).

Amounts are integer nano-dollars. A store keeps, per (budget id, key, window key), the settled spend
and the holds of reservations in flight, and an append-only ledger of every change and refusal.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

from ._model import from_nanos

# (budget id, key, window key): one counter of spend.
Slot = Tuple[str, str, str]

LEDGER_KINDS = ("reserve", "settle", "release", "expire", "block", "warn", "downgrade", "throttle")


@dataclass(frozen=True)
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

    @property
    def slot(self) -> Slot:
        return (self.budget_id, self.key, self.window_key)

    @property
    def counted(self) -> Tuple[str, ...]:
        return self.counted_keys or (self.window_key,)


@dataclass(frozen=True)
class Usage:
    """Settled spend and amounts held by reservations in flight, in nano-dollars."""

    spent: int
    reserved: int


@dataclass(frozen=True)
class ReserveResult:
    """``ok``: every hold was placed. Otherwise none was, and ``refused`` lists the requests over limit.

    ``usage[i]`` is the spend and holds of request ``i`` before this reservation.
    """

    ok: bool
    usage: Tuple[Usage, ...]
    refused: Tuple[int, ...] = ()


@dataclass(frozen=True)
class LedgerEntry:
    time: float  # seconds since the epoch, from the store's clock
    kind: str
    budget_id: str
    key: str
    window_key: str
    amount_nanos: int
    reservation_id: str
    attributes: Dict[str, Any] = field(default_factory=dict)

    @property
    def amount(self) -> Decimal:
        return from_nanos(self.amount_nanos)


def dumps(attributes: Optional[Mapping[str, Any]]) -> str:
    return json.dumps(dict(attributes or {}), sort_keys=True, default=str, separators=(",", ":"))


def filter_ledger(
    entries: Sequence[LedgerEntry],
    budget_id: Optional[str] = None,
    key: Optional[str] = None,
    kind: Optional[str] = None,
    reservation_id: Optional[str] = None,
    since: Optional[float] = None,
    until: Optional[float] = None,
) -> List[LedgerEntry]:
    return [
        e
        for e in entries
        if (budget_id is None or e.budget_id == budget_id)
        and (key is None or e.key == key)
        and (kind is None or e.kind == kind)
        and (reservation_id is None or e.reservation_id == reservation_id)
        and (since is None or e.time >= since)
        and (until is None or e.time < until)
    ]


@runtime_checkable
class BudgetStore(Protocol):
    """Holds, spend and the ledger. Every method is atomic, across threads and, for the shared
    stores, across processes and hosts. Holds older than their TTL are expired (with a ledger entry)
    whenever ``reserve`` or ``spent`` reads them."""

    def reserve(
        self,
        requests: Sequence[HoldRequest],
        reservation_id: str,
        ttl: float,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> ReserveResult:
        """Hold every request, or none if any would take its spend + holds past its limit."""
        ...

    def settle(
        self,
        reservation_id: str,
        actual: Mapping[Slot, int],
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Replace the reservation's holds by the actual spend per slot (even if the holds expired)."""
        ...

    def release(self, reservation_id: str) -> None:
        """Drop the reservation's holds without recording spend (the call was not made)."""
        ...

    def spent(self, budget_id: str, key: str, window_keys: Sequence[str]) -> Usage:
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
    ) -> List[LedgerEntry]:
        """Ledger entries in the order they were written, filtered."""
        ...

    def close(self) -> None: ...
