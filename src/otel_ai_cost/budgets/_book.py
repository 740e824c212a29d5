"""The budget book: decides whether a call may go ahead, holds its estimate, settles its cost."""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import BudgetExceededError, ConfigError
from ._model import Budget, from_nanos, to_nanos
from ._store import BudgetStore, HoldRequest, LedgerEntry, Slot

_logger = logging.getLogger(__name__)

# Worst first: when several budgets decide, the call gets the strictest decision.
_SEVERITY = {"allow": 0, "warn": 1, "throttle": 2, "downgrade": 3, "block": 4}
DEFAULT_LEDGER_ATTRIBUTES = (
    "gen_ai.provider.name",
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "tenant.id",
    "enduser.id",
)

Amount = Union[Decimal, str, int, float]


@dataclass(frozen=True)
class BudgetOutcome:
    """What one budget decided for a call. Amounts in USD; ``spent`` and ``reserved`` before the call."""

    budget: Budget
    key: str
    window_key: str
    window_end: Optional[datetime]
    action: str  # allow | warn | downgrade | throttle | block
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    estimate: Decimal
    model: Optional[str] = None
    delay: Optional[float] = None

    @property
    def shadow(self) -> bool:
        return self.budget.shadow


@dataclass(frozen=True)
class Decision:
    """The decision for a call: the strictest enforced outcome, and every budget's outcome.

    ``budget`` is the budget that decided (None when no budget applies or all allow). ``reason`` is
    ``store_error`` when the store failed and the book failed open or closed.
    """

    action: str
    estimate: Decimal
    outcomes: Tuple[BudgetOutcome, ...] = ()
    deciding: Optional[BudgetOutcome] = None
    reason: Optional[str] = None

    @property
    def allowed(self) -> bool:
        return self.action != "block"

    @property
    def budget(self) -> Optional[Budget]:
        return self.deciding.budget if self.deciding else None

    @property
    def model(self) -> Optional[str]:
        return self.deciding.model if self.deciding else None

    @property
    def delay(self) -> Optional[float]:
        return self.deciding.delay if self.deciding else None

    def error(self) -> "BudgetBlockedError":
        """The exception to raise for a blocked call."""
        return BudgetBlockedError(self)

    def span_attributes(self) -> Dict[str, Any]:
        """The ``ai_cost.budget.*`` attributes of the deciding budget, for the span."""
        from .. import _semconv as sc

        attributes: Dict[str, Any] = {sc.AI_COST_BUDGET_DECISION: self.action}
        outcome = self.deciding
        if outcome is None:
            return attributes
        attributes.update(
            {
                sc.AI_COST_BUDGET_ID: outcome.budget.id,
                sc.AI_COST_BUDGET_KEY: outcome.key,
                sc.AI_COST_BUDGET_WINDOW: outcome.window_key,
                sc.AI_COST_BUDGET_LIMIT: float(outcome.limit),
                sc.AI_COST_BUDGET_SPENT: float(outcome.spent),
                sc.AI_COST_BUDGET_RESERVED: float(outcome.reserved),
                sc.AI_COST_BUDGET_SHADOW: outcome.shadow,
            }
        )
        return attributes


class BudgetBlockedError(BudgetExceededError):
    """A budget refused the call. ``decision`` has the budget, its limit, spend, holds and the estimate."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        o = decision.deciding
        if o is None:
            message = "the call was refused because the budget store is unavailable (fail closed)"
            self.budget_id = self.key = self.window_key = None
            self.limit = self.spent = self.reserved = None
        else:
            self.budget_id, self.key, self.window_key = o.budget.id, o.key, o.window_key
            self.limit, self.spent, self.reserved = o.limit, o.spent, o.reserved
            who = f" for {o.budget.per}={o.key}" if o.budget.per else ""
            ends = f"; it renews at {o.window_end.isoformat()}" if o.window_end else ""
            message = (
                f"budget {o.budget.id!r}{who} in window {o.window_key} would be exceeded: spent ${o.spent}"
                f" + reserved ${o.reserved} + this call's estimate ${o.estimate} > limit ${o.limit}{ends}."
                " Raise the budget's limit_usd or lower the call's max_tokens."
            )
        self.estimate = decision.estimate
        super().__init__(message)


@dataclass(frozen=True)
class BudgetUsage:
    """Where one partition of a budget stands in its current window, in USD."""

    budget: Budget
    key: str
    window_key: str
    window_end: Optional[datetime]
    limit: Decimal
    spent: Decimal
    reserved: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.spent - self.reserved, Decimal(0))


@dataclass
class Reservation:
    """The holds a call placed; settle it with the actual cost, or release it if the call was not made."""

    id: str
    decision: Decision
    slots: Tuple[Slot, ...] = ()
    held: bool = False
    done: bool = False


@dataclass(frozen=True)
class _Planned:
    budget: Budget
    request: HoldRequest
    window_end: Optional[datetime]


class BudgetBook:
    """Budgets over one store.

    ``reserve(attributes, estimate)`` returns a Reservation whose ``decision`` says what to do with
    the call; a blocked call holds nothing. ``on_store_error``: ``"open"`` lets calls through when
    the store fails, ``"closed"`` blocks them.
    """

    def __init__(
        self,
        budgets: Iterable[Budget],
        store: Optional[BudgetStore] = None,
        *,
        clock: Callable[[], float] = time.time,
        hold_ttl: float = 900.0,
        on_store_error: str = "open",
        ledger_attributes: Sequence[str] = DEFAULT_LEDGER_ATTRIBUTES,
    ) -> None:
        from ._memory import MemoryBudgetStore

        self.budgets = tuple(budgets)
        ids = [b.id for b in self.budgets]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigError(f"budget ids must be unique; repeated: {', '.join(duplicates)}")
        if on_store_error not in ("open", "closed"):
            raise ConfigError(f"on_store_error must be 'open' or 'closed', not {on_store_error!r}")
        if not hold_ttl > 0:
            raise ConfigError(f"hold_ttl must be a positive number of seconds, not {hold_ttl!r}")
        self.store = store if store is not None else MemoryBudgetStore(clock=clock)
        self._clock = clock
        self.hold_ttl = float(hold_ttl)
        self.on_store_error = on_store_error
        keys = set(ledger_attributes)
        for b in self.budgets:
            keys |= set(b.selector or {}) | ({b.per} if b.per else set())
        self._ledger_keys = keys

    def _plan(self, attributes: Mapping[str, Any], estimate: int, trace_id: Optional[str]) -> List[_Planned]:
        instant = datetime.fromtimestamp(self._clock(), timezone.utc)
        planned = []
        for budget in self.budgets:
            if not budget.matches(attributes):
                continue
            span = budget.window.span(instant)
            limit = None if budget.shadow else budget.hard_limit_nanos
            key = budget.key_for(attributes, trace_id)
            request = HoldRequest(budget.id, key, span.key, limit, estimate, span.counted_keys, span.prune)
            planned.append(_Planned(budget, request, span.end))
        return planned

    def reserve(
        self, attributes: Mapping[str, Any], estimate: Amount, *, trace_id: Optional[str] = None
    ) -> Reservation:
        """Decide on a call with these attributes (span + resource + baggage) and estimated cost in USD.

        ``trace_id`` partitions the budgets with ``per: trace``. A negative or non-numeric estimate
        raises ValueError.
        """
        estimate_nanos = to_nanos(estimate)
        estimate_usd = from_nanos(estimate_nanos)
        planned = self._plan(attributes, estimate_nanos, trace_id)
        rid = uuid.uuid4().hex
        if not planned:
            return Reservation(rid, Decision("allow", estimate_usd))
        audit = {k: str(attributes[k]) for k in self._ledger_keys if k in attributes}
        if trace_id is not None:
            audit["trace_id"] = trace_id
        slots = tuple(p.request.slot for p in planned)
        try:
            result = self.store.reserve([p.request for p in planned], rid, self.hold_ttl, audit)
        except Exception:
            _logger.warning("budget store failed; failing %s", self.on_store_error, exc_info=True)
            action = "allow" if self.on_store_error == "open" else "block"
            return Reservation(rid, Decision(action, estimate_usd, reason="store_error"), slots)
        outcomes = []
        for i, (p, usage) in enumerate(zip(planned, result.usage)):
            budget = p.budget
            projected = usage.spent + usage.reserved + estimate_nanos
            action, model, delay = "allow", None, None
            if i in result.refused or (budget.shadow and projected > budget.hard_limit_nanos):
                action = "block"
            else:
                threshold = budget.action_at(projected)
                if threshold is not None:
                    action, model, delay = threshold.action.kind, threshold.action.model, threshold.action.seconds
            outcomes.append(
                BudgetOutcome(
                    budget, p.request.key, p.request.window_key, p.window_end, action, budget.limit_usd,
                    from_nanos(usage.spent), from_nanos(usage.reserved), estimate_usd, model, delay,
                )
            )
        enforced = [o for o in outcomes if not o.shadow and o.action != "allow"]
        deciding = max(enforced, key=lambda o: (_SEVERITY[o.action], o.spent + o.reserved - o.limit), default=None)
        decision = Decision(deciding.action if deciding else "allow", estimate_usd, tuple(outcomes), deciding)
        self._record_decisions(rid, outcomes, audit, blocked=not result.ok)
        return Reservation(rid, decision, slots, held=result.ok)

    def _record_decisions(
        self, rid: str, outcomes: Sequence[BudgetOutcome], audit: Mapping[str, Any], blocked: bool
    ) -> None:
        # The store logs reserve and enforced blocks itself; the other decisions are logged here.
        now = self._clock()

        def worth_logging(o: BudgetOutcome) -> bool:
            if o.action == "block":
                return o.shadow  # the store logged the enforced blocks
            return o.action != "allow" and not blocked  # a refused call's warnings are moot

        entries = []
        for o in filter(worth_logging, outcomes):
            details = {**audit, "shadow": o.shadow}
            if o.model:
                details["model"] = o.model
            if o.delay:
                details["delay"] = o.delay
            entries.append(
                LedgerEntry(now, o.action, o.budget.id, o.key, o.window_key, to_nanos(o.estimate), rid, details)
            )
        if entries:
            try:
                self.store.record(entries)
            except Exception:
                _logger.warning("budget store failed to record decisions", exc_info=True)

    def usage(self, budget_id: str, key: str = "", at: Optional[datetime] = None) -> "BudgetUsage":
        """Where one partition of a budget stands now (or ``at``): limit, spend and holds in USD."""
        budget = next((b for b in self.budgets if b.id == budget_id), None)
        if budget is None:
            raise KeyError(f"no budget {budget_id!r}; the budgets are {', '.join(b.id for b in self.budgets)}")
        span = budget.window.span(at or datetime.fromtimestamp(self._clock(), timezone.utc))
        usage = self.store.spent(budget.id, key, span.counted_keys)
        return BudgetUsage(
            budget, key, span.key, span.end, budget.limit_usd, from_nanos(usage.spent), from_nanos(usage.reserved)
        )

    def settle(self, reservation: Reservation, actual: Amount, attributes: Optional[Mapping[str, Any]] = None) -> None:
        """Record the actual cost in USD of the call against every budget it was held on."""
        amount = to_nanos(actual)
        if reservation.done or not reservation.slots or reservation.decision.action == "block":
            return
        reservation.done = True
        try:
            self.store.settle(reservation.id, {slot: amount for slot in reservation.slots}, attributes)
        except Exception:
            _logger.warning("budget store failed to settle reservation %s", reservation.id, exc_info=True)

    def release(self, reservation: Reservation) -> None:
        """Drop the holds of a call that was not made (or failed before costing anything)."""
        if reservation.done or not reservation.held:
            return
        reservation.done = True
        try:
            self.store.release(reservation.id)
        except Exception:
            _logger.warning("budget store failed to release reservation %s", reservation.id, exc_info=True)
