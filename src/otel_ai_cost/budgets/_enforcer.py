"""Budgets at span start: ask the book (or the ``before_request`` hook), mark the span, hold the estimate.

``BudgetEnforcer.decide`` runs inside ``AICostSpanProcessor.on_start`` (or, when the sampler drops
the span, from the instrumentor itself). It never raises, except ``BudgetExceededError`` for spans
of other instrumentations when the user opted in (``raise_on_block``). The ``Hold`` it returns is
settled with the actual cost, or released, exactly once when the call ends.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Set, Tuple, Union

from opentelemetry.trace import Span, Status, StatusCode

from .. import _semconv as sc
from .._semconv import ERROR_TYPE, GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL
from ..errors import BudgetExceededError
from ._book import BudgetBook
from ._decision import BudgetOutcome, Decision, QuietDecision, Reservation
from ._model import Action
from ._unknown import UnknownCall

if TYPE_CHECKING:
    from .._estimate import Estimate
    from ..cost import Usage
    from ..pricing import Catalog
    from ._anomaly_policy import AnomalyGate

_logger = logging.getLogger("otel_ai_cost.budgets")

# The error.type of a blocked span: the public class the caller catches.
BLOCKED_ERROR_TYPE = BudgetExceededError.__name__
# The least a call holds: an estimate of 0 (unknown model, no estimate) must still be refused by an
# exhausted or frozen budget.
MIN_HOLD = Decimal("0.000000001")
_ACTIONS = ("allow", "warn", "throttle", "downgrade", "block")
_WARNED_CAP = 4096

Hook = Callable[..., Any]


class HookDecision:
    """A decision returned by the ``before_request`` hook, shaped like ``budgets.Decision``."""

    reason = sc.AiCostBudgetReasonValues.HOOK
    outcomes: Tuple[BudgetOutcome, ...] = ()
    deciding: Optional[BudgetOutcome] = None
    budget = None

    def __init__(self, action: str, estimate: Decimal, model: Optional[str] = None, delay: Optional[float] = None):
        if action not in _ACTIONS:
            raise ValueError(f"before_request returned action {action!r}; expected one of {', '.join(_ACTIONS)}")
        if action == "downgrade" and not model:
            raise ValueError("before_request returned a downgrade without the model to use")
        if action == "throttle" and not (delay and delay > 0):
            raise ValueError("before_request returned a throttle without a positive delay")
        self.action, self.estimate, self.model, self.delay = action, estimate, model, delay

    @property
    def allowed(self) -> bool:
        return self.action != "block"

    def error(self) -> BudgetExceededError:
        return BudgetExceededError(
            f"the before_request hook refused the call (estimated ${self.estimate}) before it was sent",
            self, estimate=self.estimate,
        )

    def span_attributes(self) -> Dict[str, Any]:
        return {sc.AI_COST_BUDGET_DECISION: self.action}

    def __repr__(self) -> str:
        return f"HookDecision({self.action!r}, model={self.model!r}, delay={self.delay!r})"


# What decides a call: the budgets, or the before_request hook.
AnyDecision = Union[Decision, HookDecision]


def hook_decision(value: Any, estimate: Decimal) -> Optional[AnyDecision]:
    """What ``before_request`` returned, as a decision; None lets the budgets decide."""
    if value is None:
        return None
    if hasattr(value, "action") and hasattr(value, "error") and hasattr(value, "span_attributes"):
        return value  # type: ignore[no-any-return]  # duck-typed: a budgets.Decision or a HookDecision
    if isinstance(value, Action):
        return HookDecision(value.kind, estimate, value.model, value.seconds)
    if isinstance(value, str):
        return HookDecision(value, estimate)
    raise TypeError(
        f"before_request returned {value!r}; return None, an action name ('block'), "
        "an Action (budgets.downgrade('gpt-4o-mini')) or a Decision"
    )


class Hold:
    """The reservation of one call. ``settle`` or ``release`` once; later calls do nothing. Never raises."""

    __slots__ = ("book", "reservation", "enforced", "_unclaimed")

    def __init__(self, book: BudgetBook, reservation: Reservation, enforced: bool = True) -> None:
        self.book = book
        self.reservation = reservation
        # False: the budgets refused the hold, yet the call may go ahead (a hook allowed it, or it
        # belongs to another instrumentation that cannot be stopped); settling records its spend.
        self.enforced = enforced
        # One token, taken by the first settle or release: list.pop is atomic (no lock to make per call).
        self._unclaimed = [True]

    def _claim(self) -> bool:
        try:
            return self._unclaimed.pop()
        except IndexError:
            return False

    def settle(
        self, amount: Any, attributes: Optional[Mapping[str, Any]] = None, usage: Optional["Usage"] = None
    ) -> None:
        """Record the call's actual cost in USD and free the hold.

        ``amount`` None: the call could not be priced; it counts 0, or, for a model the catalog does
        not know, what the budgets' ``on_unknown_model`` policies make of ``usage`` (a ``cost.Usage``).
        """
        try:
            self._unclaimed.pop()  # as _claim, inline
        except IndexError:
            return
        try:
            actual = None if amount is None else amount if type(amount) is Decimal else Decimal(str(amount))
            if actual is not None and (not actual.is_finite() or actual < 0):
                actual = Decimal(0)
            extra = {}
            if attributes:
                for k, v in attributes.items():  # a plain loop: no comprehension frame on every call
                    if v is not None:
                        extra[k] = str(v)
            if self.enforced:
                self.book.settle(self.reservation, actual, extra, usage)
            elif self.reservation.slots:
                # A block the processor could not enforce: the call was made, so its spend counts.
                book, reservation = self.book, self.reservation
                book.store.settle(
                    reservation.id, book.amounts(reservation, actual, usage),
                    book.settle_attributes(reservation, actual, extra),
                )
        except Exception:  # noqa: BLE001 - settling must never break the caller
            _logger.warning("otel-ai-cost: could not settle budget reservation %s", self.reservation.id, exc_info=True)

    def release(self) -> None:
        """Free the hold of a call that was not made or failed before costing anything."""
        if not self._claim():
            return
        try:
            self.book.release(self.reservation)
        except Exception:  # noqa: BLE001
            _logger.warning("otel-ai-cost: could not release budget reservation %s", self.reservation.id, exc_info=True)


_unenforced_logged = False


def _log_unenforced() -> None:
    global _unenforced_logged
    if not _unenforced_logged:
        _unenforced_logged = True
        _logger.warning(
            "otel-ai-cost: a budget would block a call made by another instrumentation, which cannot read "
            "the decision; the call went ahead and its spend counts. Set raise_on_block (or "
            "OTEL_AI_COST_RAISE_ON_BLOCK=true) to refuse such calls from the span processor. (Reported once.)"
        )


def _utilisation(outcome: BudgetOutcome) -> Tuple[bool, Decimal]:
    used = outcome.spent + outcome.reserved + outcome.estimate
    return (not outcome.shadow, used / outcome.limit if outcome.limit else Decimal("Infinity"))


class BudgetEnforcer:
    """The budget side of AICostSpanProcessor: one book, the hooks, and the decision counter."""

    def __init__(
        self,
        book: Optional[BudgetBook],
        *,
        before_request: Optional[Hook] = None,
        on_warning: Optional[Hook] = None,
        on_blocked: Optional[Hook] = None,
        raise_on_block: bool = False,
        meter_provider: Any = None,
        catalog: Optional["Catalog"] = None,
        anomaly_gate: Optional["AnomalyGate"] = None,
    ) -> None:
        self.book = book
        # The on_anomaly policy (refuse a runaway trace's next call, downgrade on a spike), or None.
        self.anomaly_gate = anomaly_gate
        # The catalog the estimate was priced from: a model it does not know is an unknown model.
        self.catalog = catalog
        if book is not None and catalog is not None:
            book.on_unknown_model.check(catalog, "the budgets' default")
            for budget in book.budgets:
                if budget.on_unknown_model is not None:
                    budget.on_unknown_model.check(catalog, f"budget {budget.id!r}")
        self.before_request = before_request
        self.on_warning = on_warning
        self.on_blocked = on_blocked
        self.raise_on_block = raise_on_block
        # (budget id, key, window key) -> the highest warning threshold logged there (this process).
        self._warned: "OrderedDict[Tuple[str, str, str], Decimal]" = OrderedDict()
        self._warned_lock = threading.Lock()
        self._hook_failures: Set[str] = set()
        from opentelemetry.metrics import get_meter

        meter = get_meter("otel_ai_cost.budgets", meter_provider=meter_provider)
        self._decisions = meter.create_counter(
            sc.AI_COST_BUDGET_DECISIONS,
            unit=sc.AI_COST_BUDGET_DECISIONS_UNIT,
            description="Budget decisions made before GenAI client operations.",
        )

    # -- deciding -------------------------------------------------------------------------------

    def decide(
        self,
        span: Span,
        attributes: Mapping[str, Any],
        *,
        trace_id: Optional[str],
        estimate: Optional["Estimate"],
        foreign: bool = False,
        start_attributes: Optional[Mapping[str, Any]] = None,
    ) -> Tuple[Optional[AnyDecision], Optional[Hold]]:
        """The decision for a call and its hold. ``attributes``: span + resource + baggage, flattened.

        ``estimate`` is the processor's Estimate (or None). ``foreign``: the span belongs to another
        instrumentation, which cannot read the decision; a block is enforced only by raising
        (``raise_on_block``), else it is recorded and the call's spend still counts.
        ``start_attributes``: span attributes the caller sets before the decision's (the estimate's);
        set with them in one call when nothing reads the span meanwhile (no hook, no anomaly gate).
        """
        if start_attributes and (self.before_request is not None or self.book is None or self.anomaly_gate is not None):
            span.set_attributes(start_attributes)  # the hook or the gate may read them from the span
            start_attributes = None
        priced = estimate.amount if estimate is not None else None
        if priced is None:
            amount = MIN_HOLD
        else:
            amount = max(priced if type(priced) is Decimal else Decimal(priced), MIN_HOLD)
        decision: Optional[AnyDecision] = None
        hold: Optional[Hold] = None
        if self.before_request is not None:
            decision = self._call_before_request(span, estimate, amount)
        enforced = not foreign or self.raise_on_block  # can a block stop this call?
        if self.book is not None:
            # The budgets hold the estimate even when the hook decides, so that the call's spend counts.
            try:
                unknown = self._unknown_call(attributes, estimate) if priced is None else None
                reservation = self.book.reserve(attributes, amount, trace_id=trace_id, unknown=unknown)
            except BaseException:  # the span keeps the start attributes whatever fails here
                if start_attributes:
                    span.set_attributes(start_attributes)
                raise
            if decision is None:
                decision = reservation.decision
            elif reservation.decision.unknown is not None:
                # The hook decided; the span still says how the budgets counted the unknown model.
                applied = reservation.decision.unknown
                span.set_attribute(sc.AI_COST_BUDGET_UNKNOWN_MODEL, applied.action)
                if applied.priced_as is not None:
                    span.set_attribute(sc.AI_COST_BUDGET_PRICED_AS, applied.priced_as)
            if reservation.slots:
                # A call the budgets refused can still go ahead (the hook allowed it, or another
                # instrumentation's call that cannot be stopped): its spend is recorded all the same.
                hold = Hold(self.book, reservation, enforced=reservation.decision.action != "block")
        if self.anomaly_gate is not None:
            decision = self.anomaly_gate.decide(decision, attributes, trace_id, amount)
        if decision is None:
            return None, None
        if type(decision) is QuietDecision:
            quiet = decision.quiet_span_attributes()
            if quiet is not None:  # what _mark sets for this allow, made without the outcomes
                span.set_attributes({**start_attributes, **quiet} if start_attributes else quiet)
                return decision, hold
        if start_attributes:
            span.set_attributes(start_attributes)
        if decision.action == "allow" and not decision.outcomes and not getattr(decision, "reason", None):
            return decision, hold  # no budget applies: leave the span as it is
        self._mark(span, decision, attributes, enforced)
        return decision, hold

    def _unknown_call(self, attributes: Mapping[str, Any], estimate: Optional["Estimate"]) -> Optional[UnknownCall]:
        """The call's model, when the catalog cannot price it (else None)."""
        if self.catalog is None:
            return None
        model = attributes.get(GEN_AI_REQUEST_MODEL)
        provider = attributes.get(GEN_AI_PROVIDER_NAME)
        model = model if isinstance(model, str) and model else None
        provider = provider if isinstance(provider, str) and provider else None
        if model is not None and self.catalog.resolve(model, provider) is not None:
            return None  # a known model whose request could not be counted: nothing to price it as
        usage = None
        if estimate is not None:
            from ..cost import Usage

            usage = Usage(input_tokens=estimate.input_tokens, output_tokens=estimate.output_tokens)
        return UnknownCall(model, provider, usage, self.catalog)

    def _call_before_request(
        self, span: Span, estimate: Optional["Estimate"], amount: Decimal
    ) -> Optional[AnyDecision]:
        assert self.before_request is not None
        try:
            return hook_decision(self.before_request(span, estimate), amount)
        except Exception:  # noqa: BLE001 - a broken hook must not break the call: the budgets decide
            self._hook_failed("before_request")
            return None

    def _hook_failed(self, name: str) -> None:
        if name in self._hook_failures:
            _logger.debug("otel-ai-cost: the %s hook failed again", name, exc_info=True)
            return
        self._hook_failures.add(name)
        _logger.warning("otel-ai-cost: the %s hook failed (reported once); the call goes on", name, exc_info=True)

    def _run_hook(self, name: str, hook: Optional[Hook], span: Span, decision: AnyDecision) -> None:
        if hook is None:
            return
        try:
            hook(span, decision)
        except Exception:  # noqa: BLE001
            self._hook_failed(name)

    # -- applying a decision to the span --------------------------------------------------------

    def _mark(self, span: Span, decision: AnyDecision, attributes: Mapping[str, Any], enforced: bool) -> None:
        span_attributes = decision.span_attributes()
        outcomes = decision.outcomes
        if getattr(decision, "deciding", None) is None and outcomes:
            # Every budget allowed: describe the one closest to its limit.
            tightest = outcomes[0] if len(outcomes) == 1 else max(outcomes, key=_utilisation)
            span_attributes.update(tightest.span_attributes())
        reason = getattr(decision, "reason", None)
        if reason or decision.action != "allow":
            span_attributes[sc.AI_COST_BUDGET_REASON] = reason or sc.AiCostBudgetReasonValues.THRESHOLD
        if decision.action == "throttle" and decision.delay:
            span_attributes[sc.AI_COST_BUDGET_DELAY] = float(decision.delay)
        span.set_attributes(span_attributes)
        if decision.action == "allow":
            for o in outcomes:  # a plain loop: no generator on the common path
                if o.action != "allow":
                    break
            else:
                return  # the common case: nothing to report, count, or call
        for outcome in outcomes:
            if outcome.shadow and outcome.action != "allow":
                span.add_event(
                    sc.AI_COST_BUDGET_SHADOW_DECISION,
                    {sc.AI_COST_BUDGET_DECISION: outcome.action, **outcome.span_attributes()},
                )
            elif outcome.action == "warn" and decision.action != "block":
                span.add_event(sc.AI_COST_BUDGET_WARNING, outcome.span_attributes())
                self._log_warning(outcome)
        self._count(decision, attributes)
        if decision.action == "warn" or (decision.action != "block" and any(
            o.action == "warn" and not o.shadow for o in decision.outcomes
        )):
            self._run_hook("on_warning", self.on_warning, span, decision)
        if decision.action == "block" and not enforced:
            _log_unenforced()
        elif decision.action == "block":
            error = decision.error()
            span.set_attribute(ERROR_TYPE, BLOCKED_ERROR_TYPE)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.record_exception(error)
            self._run_hook("on_blocked", self.on_blocked, span, decision)

    def _log_warning(self, outcome: BudgetOutcome) -> None:
        """Log a warning when a budget partition crosses a warning threshold: once per threshold,
        partition and window, in this process; a higher threshold, or the same in a new window, logs
        again. Every call past the threshold still gets the span event."""
        key = (outcome.budget.id, outcome.key, outcome.window_key)
        level = outcome.threshold if outcome.threshold is not None else Decimal(0)
        with self._warned_lock:
            logged = self._warned.get(key)
            if logged is not None and level <= logged:
                return
            self._warned[key] = level
            self._warned.move_to_end(key)
            if len(self._warned) > _WARNED_CAP:
                self._warned.popitem(last=False)
        who = f" for {outcome.budget.per}={outcome.key}" if outcome.budget.per else ""
        at = f" of {float(level * 100):g}%" if outcome.threshold is not None else ""
        _logger.warning(
            "otel-ai-cost: budget %r%s in window %s passed a warning threshold%s: spent $%s + reserved $%s "
            "of $%s (this call's estimate: $%s; logged once per threshold and window, the span event is on "
            "every call)",
            outcome.budget.id, who, outcome.window_key, at, outcome.spent, outcome.reserved, outcome.limit,
            outcome.estimate,
        )

    def _count(self, decision: AnyDecision, attributes: Mapping[str, Any]) -> None:
        if decision.action == "allow":
            return  # counted: the decisions that changed something (an SDK counter add costs ~20 µs)
        point: Dict[str, Any] = {sc.AI_COST_BUDGET_DECISION: decision.action}
        budget = getattr(decision, "budget", None)
        if budget is not None:
            point[sc.AI_COST_BUDGET_ID] = budget.id
        for key in (GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL):
            value = attributes.get(key)
            if isinstance(value, str):
                point[key] = value
        self._decisions.add(1, point)
