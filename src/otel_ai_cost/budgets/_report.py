"""Spend over a period from the budget ledger, grouped by model, provider, tenant, user, day, budget.

Spend comes from the ``settle`` entries. A call that matches several budgets has one settle entry
per budget, all of the same amount: it counts once (per group; with ``budget`` among the groups it
counts once in each of its budgets, and once in the total). The attributes of a call come from its
``reserve`` entry (or, for a call a budget refused but that was made anyway, its ``block`` entry),
written with the audit attributes of the call, and from its settle entry (``gen_ai.response.model``
there wins over ``gen_ai.request.model`` for the model). ``blocked`` counts the calls an enforced
budget refused (shadow budgets' refusals are not counted); ``unknown_model`` the calls to models the
catalog does not know, counted by their budgets' ``on_unknown_model`` policy.

Operator adjustments (``budget adjust``: a cost the budgets did not see, or negative, a credit or
refund) are not calls: they are summed apart, in ``adjusted``, each in the group of its budget and
partition (with ``per`` given, a partition of a ``per: tenant.id`` budget counts for that tenant;
groups an adjustment has no value for, such as the model, read ``(adjustment)``). The applied
amount is counted: a credit larger than the spend it corrects is floored at zero by the store.

A hold charged when it expired unsettled (``on_expired_hold: charge_estimate``: its process died with
the call in flight) is an ``expire_charge`` entry: it counts as a call, at its estimate, and in
``expired``. If the call's settle comes after all (attribute ``expired_charge_nanos``), the settle's
amount replaces the estimate: it adds the difference, not another call; a release that comes after it
takes the estimate back (so does the settle of a budget of the same call whose policy was
``release``, in the total and in groups that count both budgets' entries as one call). Spend is thus
what the stores counted, entry by entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import _semconv as sc
from .._grouping import NONE, check_by
from ..errors import ConfigError
from ._model import from_nanos
from ._store import EXPIRED_CHARGE, BudgetStore, LedgerEntry

# Group name -> the attribute it reads (None: computed from the entry).
GROUPS: Dict[str, Optional[str]] = {
    "model": None,
    "provider": sc.GEN_AI_PROVIDER_NAME,
    "tenant": "tenant.id",
    "user": "enduser.id",
    "operation": sc.GEN_AI_OPERATION_NAME,
    "day": None,
    "budget": None,
    "key": None,
}
ADJUSTMENT = "(adjustment)"
# The ledger entries a report reads (a release only when it took back a charge made at expiry).
REPORTED_KINDS = ("settle", "block", "adjust", "expire_charge", "release")
# How long before the period the reserve entries of the calls settled in it are looked for first.
DEFAULT_LOOKBACK = 86400.0


def check_groups(by: Iterable[str]) -> Tuple[str, ...]:
    """The groups, validated: the names in GROUPS, or an attribute key (with a dot: service.name)."""
    return check_by(by, GROUPS, "an attribute key such as service.name")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--tz {name!r}: unknown time zone; use an IANA name such as Europe/Paris") from None


@dataclass
class ReportRow:
    group: Tuple[str, ...]
    calls: int = 0
    blocked: int = 0
    spend_nanos: int = 0
    # Calls to models the catalog does not know, counted by an on_unknown_model policy (their spend
    # is the policy's price: the stated fallback, another model's, or $0 when allowed unmetered).
    unknown_model: int = 0
    adjustments: int = 0
    adjusted_nanos: int = 0  # the sum of the operator adjustments applied (negative: credits)
    expired: int = 0  # calls whose hold was charged at expiry (counted in calls, at their estimate)

    @property
    def spend(self) -> Decimal:
        return from_nanos(self.spend_nanos)

    @property
    def adjusted(self) -> Decimal:
        return from_nanos(self.adjusted_nanos)


@dataclass
class Report:
    by: Tuple[str, ...]
    since: float
    until: float
    tz: str
    rows: List[ReportRow] = field(default_factory=list)
    total: ReportRow = field(default_factory=lambda: ReportRow(()))
    # The adjust entries of the period, oldest first (for the notes and who made them).
    adjustments: List[LedgerEntry] = field(default_factory=list)


def _value(name: str, entry: LedgerEntry, attributes: Mapping[str, Any], tz: ZoneInfo) -> str:
    if name == "model":
        value = attributes.get(sc.GEN_AI_RESPONSE_MODEL) or attributes.get(sc.GEN_AI_REQUEST_MODEL)
    elif name == "day":
        return datetime.fromtimestamp(entry.time, tz).date().isoformat()
    elif name == "budget":
        return entry.budget_id
    elif name == "key":
        return entry.key or NONE
    else:
        value = attributes.get(GROUPS.get(name) or name)
    return NONE if value is None or value == "" else str(value)


def _adjustment_value(name: str, entry: LedgerEntry, per: Mapping[str, Optional[str]], tz: ZoneInfo) -> str:
    if name in ("day", "budget", "key"):
        return _value(name, entry, {}, tz)
    attribute = None if name == "model" else GROUPS.get(name) or name
    if attribute is not None and attribute == per.get(entry.budget_id) and entry.key:
        return entry.key
    return ADJUSTMENT


def _count(
    e: LedgerEntry, target: ReportRow, call: Tuple[Any, ...], charged: Any, pending: Dict[Tuple[Any, ...], int]
) -> None:
    """Count one entry of a call (``call``: its reservation id, and group) in ``target``. ``charged``:
    the entry's ``expired_charge_nanos``; ``pending``: the estimates counted at expiry in this report,
    which a settle or release of the same call replaces (also the settle of a budget of the call whose
    policy was ``release``, which carries no ``expired_charge_nanos``)."""
    if e.kind == "expire_charge":
        target.calls += 1
        target.expired += 1
        target.spend_nanos += e.amount_nanos
        pending[call] = e.amount_nanos
        return
    if e.kind == "block":
        target.blocked += 1
        return
    counted = pending.pop(call, None)
    replaced = int(charged) if charged is not None else counted
    if e.kind == "release":  # a call charged at expiry, then released: the charge is taken back
        target.spend_nanos -= replaced or 0
    elif replaced is not None:  # a settle after the charge at expiry: the actual cost replaces the estimate
        target.spend_nanos += e.amount_nanos - replaced
    else:
        target.calls += 1
        target.spend_nanos += e.amount_nanos
        if e.attributes.get("unknown_model"):
            target.unknown_model += 1


def aggregate(
    entries: Iterable[LedgerEntry],
    call_attributes: Mapping[str, Mapping[str, Any]],
    by: Sequence[str],
    tz: str = "UTC",
    since: float = float("-inf"),
    until: float = float("inf"),
    per: Optional[Mapping[str, Optional[str]]] = None,
) -> Report:
    """Group the settle, expire_charge, block and adjust entries (and releases of charged holds) timed
    in [since, until). ``call_attributes``:
    reservation id -> the attributes of its reserve (or block) entry; ``per``: budget id -> its
    ``per`` attribute, to put an adjustment of a partition in that attribute's group."""
    by = check_groups(by)
    zone_info = zone(tz)
    rows: Dict[Tuple[str, ...], ReportRow] = {}
    seen: Set[Tuple[Any, ...]] = set()  # (kind, reservation id, group): each call counts once per group
    total = ReportRow(())
    total_seen: Set[Tuple[Any, ...]] = set()  # (kind, reservation id)
    pending: Dict[Tuple[Any, ...], int] = {}  # (reservation id[, group]) -> its estimate counted at expiry
    adjustments: List[LedgerEntry] = []
    for e in entries:
        if not since <= e.time < until:
            continue
        if e.kind == "adjust":
            adjustments.append(e)
            group = tuple(_adjustment_value(name, e, per or {}, zone_info) for name in by)
            row = rows.get(group)
            if row is None:
                row = rows[group] = ReportRow(group)
            for target in (row, total):
                target.adjustments += 1
                target.adjusted_nanos += e.amount_nanos
            continue
        if e.kind not in REPORTED_KINDS:
            continue
        charged = e.attributes.get(EXPIRED_CHARGE) if e.kind in ("settle", "release") else None
        if e.kind == "release" and charged is None:  # a release counts only when it takes back a charge
            continue
        if e.kind == "block" and e.attributes.get("shadow") is True:
            continue  # a shadow budget's refusal changed nothing
        attributes = {**call_attributes.get(e.reservation_id, {}), **e.attributes}
        if e.kind == "block":
            attributes.pop(sc.GEN_AI_RESPONSE_MODEL, None)
        group = tuple(_value(name, e, attributes, zone_info) for name in by)
        row = rows.get(group)
        if row is None:
            row = rows[group] = ReportRow(group)
        for counted, target, call in ((seen, row, (e.reservation_id, group)), (total_seen, total, (e.reservation_id,))):
            marker = (e.kind, *call)
            if marker not in counted:
                counted.add(marker)
                _count(e, target, call, charged, pending)
    ordered = sorted(rows.values(), key=lambda r: (-r.spend_nanos, -r.calls, -r.blocked, r.adjusted_nanos, r.group))
    adjustments.sort(key=lambda e: e.time)
    return Report(by, since, until, tz, ordered, total, adjustments)


def build_report(
    store: BudgetStore,
    since: float,
    until: float,
    by: Sequence[str],
    tz: str = "UTC",
    lookback: float = DEFAULT_LOOKBACK,
    per: Optional[Mapping[str, Optional[str]]] = None,
) -> Report:
    """Read the ledger of ``store`` for [since, until) and group it (see ``aggregate``)."""
    by = check_groups(by)
    zone(tz)
    entries = store.ledger(kinds=REPORTED_KINDS, since=since, until=until)
    # The calls whose attributes are looked up: not adjustments, nor releases that took nothing back.
    wanted = {e.reservation_id for e in entries
              if e.kind != "adjust" and (e.kind != "release" or EXPIRED_CHARGE in e.attributes)}
    attributes: Dict[str, Mapping[str, Any]] = {}

    def collect(found: Iterable[LedgerEntry]) -> None:
        for e in found:
            if e.reservation_id in wanted and (e.reservation_id not in attributes or e.kind == "reserve"):
                attributes[e.reservation_id] = e.attributes

    if wanted:
        collect(store.ledger(kinds=("reserve", "block"), since=since - lookback, until=until))
        if wanted - attributes.keys():  # calls reserved long before they settled
            collect(store.ledger(kinds=("reserve", "block"), until=since - lookback))
    return aggregate(entries, attributes, by, tz, since, until, per)
