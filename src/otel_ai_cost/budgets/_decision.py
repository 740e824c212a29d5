"""What the book decides for a call: each budget's outcome, the decision, the error of a blocked
call, the reservation to settle, and where a budget partition stands."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple

from .. import _semconv as sc
from ..errors import BudgetExceededError
from ._model import NANOS_PER_USD, Budget
from ._quiet import QuietOutcome
from ._store import ALL_KEYS, Slot
from ._unknown import UnknownCall, UnknownModelPolicy


@dataclass(frozen=True, init=False)
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
    # The freezes that apply: ALL_KEYS ("") for the whole budget, and/or the partition key.
    frozen_by: Tuple[str, ...] = ()
    # The threshold the call reached (its ``at``, a fraction of the limit), for warn, downgrade, throttle.
    threshold: Optional[Decimal] = None

    def __init__(
        self, budget: Budget, key: str, window_key: str, window_end: Optional[datetime], action: str,
        limit: Decimal, spent: Decimal, reserved: Decimal, estimate: Decimal, model: Optional[str] = None,
        delay: Optional[float] = None, frozen_by: Tuple[str, ...] = (), threshold: Optional[Decimal] = None,
    ) -> None:
        # Built on every call: the fields set in one step (a frozen dataclass's own __init__ sets each alone).
        self.__dict__.update(
            budget=budget, key=key, window_key=window_key, window_end=window_end, action=action, limit=limit,
            spent=spent, reserved=reserved, estimate=estimate, model=model, delay=delay, frozen_by=frozen_by,
            threshold=threshold,
        )

    @property
    def shadow(self) -> bool:
        return self.budget.shadow

    def span_attributes(self) -> Dict[str, Any]:
        """This budget's ``ai_cost.budget.*`` numbers (id, key, window, limit, spent, reserved, shadow)."""

        return {
            sc.AI_COST_BUDGET_ID: self.budget.id,
            sc.AI_COST_BUDGET_KEY: self.key,
            sc.AI_COST_BUDGET_WINDOW: self.window_key,
            sc.AI_COST_BUDGET_LIMIT: float(self.limit),
            sc.AI_COST_BUDGET_SPENT: float(self.spent),
            sc.AI_COST_BUDGET_RESERVED: float(self.reserved),
            sc.AI_COST_BUDGET_SHADOW: self.shadow,
        }

    @property
    def frozen(self) -> bool:
        return bool(self.frozen_by)


@dataclass(frozen=True, init=False)
class Decision:
    """The decision for a call: the strictest enforced outcome, and every budget's outcome.

    ``budget`` is the budget that decided (None when no budget applies or all allow). ``reason`` is
    ``store_error`` when the store failed and the book failed open or closed, ``frozen`` when the
    deciding budget is frozen, ``unknown_model`` when the deciding budget refuses models the catalog
    does not know. ``unknown``: the ``on_unknown_model`` policy applied (None: the model is known).
    """

    action: str
    estimate: Decimal
    outcomes: Tuple[BudgetOutcome, ...] = ()
    deciding: Optional[BudgetOutcome] = None
    reason: Optional[str] = None
    unknown: Optional[UnknownModelPolicy] = None
    unknown_model: Optional[str] = None  # the request model, when the catalog does not know it
    detail: Optional[str] = None  # reason store_error: what failed

    def __init__(
        self, action: str, estimate: Decimal, outcomes: Tuple[BudgetOutcome, ...] = (),
        deciding: Optional[BudgetOutcome] = None, reason: Optional[str] = None,
        unknown: Optional[UnknownModelPolicy] = None, unknown_model: Optional[str] = None,
        detail: Optional[str] = None,
    ) -> None:
        self.__dict__.update(  # as BudgetOutcome
            action=action, estimate=estimate, outcomes=outcomes, deciding=deciding, reason=reason, unknown=unknown,
            unknown_model=unknown_model, detail=detail,
        )

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

    def error(self) -> BudgetExceededError:
        """The exception to raise for a blocked call: the message says why, the error carries the
        deciding budget's numbers."""
        o = self.deciding
        if o is None:
            return BudgetExceededError(blocked_message(self), self, estimate=self.estimate)
        return BudgetExceededError(
            blocked_message(self), self, budget_id=o.budget.id, key=o.key, window_key=o.window_key,
            limit=o.limit, spent=o.spent, reserved=o.reserved, estimate=self.estimate,
        )

    def span_attributes(self) -> Dict[str, Any]:
        """The ``ai_cost.budget.*`` attributes of the deciding budget, for the span."""

        attributes: Dict[str, Any] = {sc.AI_COST_BUDGET_DECISION: self.action}
        if self.deciding is not None:
            attributes.update(self.deciding.span_attributes())
        if self.unknown is not None:
            attributes[sc.AI_COST_BUDGET_UNKNOWN_MODEL] = self.unknown.action
            if self.unknown.priced_as is not None:
                attributes[sc.AI_COST_BUDGET_PRICED_AS] = self.unknown.priced_as
        return attributes




class QuietDecision(Decision):
    """The allow of the quiet lane (``_quiet``): every budget allowed, none near a threshold. Its
    ``outcomes`` are made when first read; the span's attributes of a one-budget lane are made
    without them (``quiet_span_attributes``)."""

    def __init__(self, estimate: Decimal, lane: Tuple[QuietOutcome, ...], usage: List[Tuple[int, int]]) -> None:
        self.__dict__.update(  # as Decision; "outcomes" is the property below
            action="allow", estimate=estimate, deciding=None, reason=None, unknown=None, unknown_model=None,
            detail=None, _lane=lane, _usage=usage,
        )

    @property  # a field of Decision, made when read
    def outcomes(self) -> Tuple[BudgetOutcome, ...]:
        made: Optional[Tuple[BudgetOutcome, ...]] = self.__dict__.get("_outcomes")
        if made is None:
            estimate = self.estimate
            made = self.__dict__["_outcomes"] = tuple([
                BudgetOutcome(o.budget, o.key, o.window_key, o.window_end, "allow", o.limit, usd_of(spent),
                              usd_of(reserved), estimate)
                for o, (spent, reserved) in zip(self.__dict__["_lane"], self.__dict__["_usage"])
            ])
        return made

    def quiet_span_attributes(self) -> Optional[Dict[str, Any]]:
        """The span's ``ai_cost.budget.*`` attributes, as BudgetEnforcer sets them for an allow (the
        decision, then the tightest budget's numbers), for a lane of one budget; None for more."""
        lane: Tuple[QuietOutcome, ...] = self.__dict__["_lane"]
        if len(lane) != 1:
            return None
        o = lane[0]
        spent, reserved = self.__dict__["_usage"][0]
        # n / 10**9 is float(Decimal(n) / 10**9): both are n / 10**9 correctly rounded (the Decimal
        # quotient is exact for amounts within MAX_NANOS).
        return {
            sc.AI_COST_BUDGET_DECISION: "allow",
            sc.AI_COST_BUDGET_ID: o.budget.id,
            sc.AI_COST_BUDGET_KEY: o.key,
            sc.AI_COST_BUDGET_WINDOW: o.window_key,
            sc.AI_COST_BUDGET_LIMIT: o.limit_float,
            sc.AI_COST_BUDGET_SPENT: spent / NANOS_PER_USD,
            sc.AI_COST_BUDGET_RESERVED: reserved / NANOS_PER_USD,
            sc.AI_COST_BUDGET_SHADOW: o.budget.shadow,
        }


_NO_USD = Decimal(0) / NANOS_PER_USD  # from_nanos(0)


def usd_of(nanos: int) -> Decimal:
    """from_nanos(nanos), with one Decimal for 0."""
    return Decimal(nanos) / NANOS_PER_USD if nanos else _NO_USD


def blocked_message(decision: Decision) -> str:
    """Why a call was refused, and what to do about it: the deciding budget (its window, numbers or
    freezes), or the store failure when the book failed closed."""
    o = decision.deciding
    if o is None:
        message = "the call was refused because the budget store is unavailable (fail closed)"
        return message + f": {decision.detail}" if decision.detail else message
    who = f" for {o.budget.per}={o.key}" if o.budget.per else ""
    if decision.reason == "unknown_model":
        return (
            f"model {decision.unknown_model or '(none)'!r} is not in the pricing catalog and budget "
            f"{o.budget.id!r}{who} refuses calls it cannot price (on_unknown_model: block). Add the model's "
            "prices to a price file (OTEL_AI_COST_PRICING_FILES), or set on_unknown_model to "
            "{price_as: <a known model>} or {price_as: {input: <USD/M>, output: <USD/M>}}."
        )
    if o.frozen:
        commands = " and ".join(
            f"`otel-ai-cost budget unfreeze {shlex.quote(o.budget.id)}"
            + (f" --key {shlex.quote(k)}`" if k != ALL_KEYS else "`")
            for k in o.frozen_by
        )
        scope = "" if ALL_KEYS in o.frozen_by else who
        return (
            f"budget {o.budget.id!r}{scope} is frozen: every call it covers is refused until an operator"
            f" unfreezes it with {commands}."
        )
    ends = f"; it renews at {o.window_end.isoformat()}" if o.window_end else ""
    return (
        f"budget {o.budget.id!r}{who} in window {o.window_key} would be exceeded: spent ${o.spent}"
        f" + reserved ${o.reserved} + this call's estimate ${o.estimate} > limit ${o.limit}{ends}."
        " Raise the budget's limit_usd or lower the call's max_tokens."
    )


@dataclass(frozen=True)
class BudgetUsage:
    """Where one partition of a budget stands in its current window, in USD."""

    budget: Budget
    key: str
    window_key: str
    window_end: Optional[datetime]
    limit: Decimal  # the limit in force: an operator's override, else the configured limit
    spent: Decimal
    reserved: Decimal
    overridden: bool = False  # ``limit`` is an operator's override, not the configured limit
    frozen: bool = False  # the budget or this partition is frozen: every call is refused

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
    # A call to a model the catalog does not know: the policy of each slot's budget, to settle with.
    unknown: Optional[UnknownCall] = None
    policies: Tuple[UnknownModelPolicy, ...] = ()
