"""One instrumented GenAI call: its span, the budget decision applied before the request is sent, and
``finish`` / ``fail``, which set the usage and cost attributes, record the metrics, settle the budget
and end the span exactly once."""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ... import _semconv as sc
from ..._request import LLMRequest, reset_calling, reset_pending, set_calling, set_pending
from ...cost import _UNRESOLVED, Usage, bound_usage, cost_attributes, price_limits, resolve_price
from ...pricing import default_catalog
from ._log import error_type, log_once, logger
from ._telemetry import Telemetry

# Attributes copied from the span onto every metric point.
_METRIC_ATTRIBUTES = (
    sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL, sc.SERVER_ADDRESS, sc.SERVER_PORT,
)

# Operations whose model a budget may swap for a cheaper one: chat models only (an embedding
# model's vectors live in its own space; a completions-only model has no chat endpoint).
_DOWNGRADABLE = frozenset({sc.GenAiOperationNameValues.CHAT, sc.GenAiOperationNameValues.GENERATE_CONTENT})


@dataclass
class Outcome:
    """What an instrumentor read from the response, handed to ``Operation.finish``."""

    usage: Optional[Usage] = None
    usage_source: str = sc.AiCostUsageSourceValues.PROVIDER
    response_model: Optional[str] = None
    service_tier: Optional[str] = None          # the tier the provider says it served
    provider_cost: Optional[float] = None       # USD reported in the response (OpenRouter usage.cost)
    attributes: Optional[Dict[str, Any]] = None  # response attributes (id, finish reasons, ...)
    error_type: Optional[str] = None            # the provider's type of a failure it reported (response, stream)


def add_usage_attributes(attrs: Dict[str, Any], usage: Usage) -> None:
    attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
    attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
    if usage.cache_read_input_tokens:
        attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_input_tokens
    if usage.cache_write_input_tokens:
        attrs[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = usage.cache_write_input_tokens
    if usage.reasoning_output_tokens:
        attrs[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_output_tokens
    if usage.web_search_requests:
        attrs[sc.AI_COST_USAGE_WEB_SEARCH_REQUESTS] = usage.web_search_requests


def compute_cost_attributes(outcome: Outcome, *, provider: str, request_model: Optional[str],
                            catalog: Any = None, at: Optional[int] = None, price: Any = _UNRESOLVED) -> Dict[str, Any]:
    """The cost attributes for an outcome: the provider's own cost when it reported one, else local
    (at the prices in force at ``at``, the call's start in epoch nanoseconds; None: now), with the
    catalog entry ``price`` when the caller resolved it (``cost.resolve_price``)."""
    if outcome.provider_cost is not None:
        return {
            sc.GEN_AI_USAGE_COST_AMOUNT: float(outcome.provider_cost),
            sc.GEN_AI_USAGE_COST_CURRENCY: "USD",
            sc.GEN_AI_USAGE_COST_SOURCE: sc.GenAiUsageCostSourceValues.PROVIDER,
            sc.AI_COST_PRICING_STATUS: sc.AiCostPricingStatusValues.PROVIDER,
        }
    if outcome.usage is None:
        return {sc.AI_COST_PRICING_STATUS: sc.AiCostPricingStatusValues.NO_USAGE}
    return cost_attributes(outcome.usage, provider=provider, request_model=request_model,
                           response_model=outcome.response_model, service_tier=outcome.service_tier,
                           catalog=catalog, at=at, price=price)


class _Calling:
    """``Operation.calling()``: a plain context manager (no generator per call)."""

    __slots__ = ("_span", "_token", "_mark")

    def __init__(self, span: Any) -> None:
        self._span = span
        self._token: Any = None
        self._mark: Any = None

    def __enter__(self) -> None:
        span_id = 0
        try:
            context = self._span.get_span_context()
            if context.is_valid:  # a no-op tracer's span must not replace the caller's current span
                span_id = context.span_id
                self._token = otel_context.attach(trace.set_span_in_context(self._span))
        except Exception as exc:
            log_once("Operation.calling", exc)
        if span_id:
            self._mark = set_calling(format(span_id, "016x"))

    def __exit__(self, *exc_info: Any) -> None:
        if self._mark is not None:
            reset_calling(self._mark)
        if self._token is not None:
            otel_context.detach(self._token)


class Operation:
    """One instrumented GenAI call: its span, its start time and its metric attributes.

    ``finish`` / ``fail`` end the span; whichever runs first wins, later calls do nothing.
    """

    def __init__(self, telemetry: Telemetry, request: LLMRequest, name: str,
                 attributes: Mapping[str, Any], catalog: Any = None) -> None:
        self.telemetry = telemetry
        self.request = request
        self.catalog = catalog
        self.metric_attributes = {k: v for k in _METRIC_ATTRIBUTES if (v := attributes.get(k)) is not None}
        self._lock = threading.Lock()
        self._ended = False
        self.start = time.perf_counter()
        start_attributes = dict(attributes)
        request.attributes = start_attributes
        token = set_pending(request)  # what pending_request does, without a generator per call
        try:
            self.span = telemetry.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=start_attributes)
        finally:
            reset_pending(token)
        if request.decision is None and not self.span.is_recording():
            # The sampler dropped the span, so no processor saw it: budgets still hold.
            from ...processor import start_unrecorded

            start_unrecorded(telemetry.tracer, request, attributes, self.span)

    def calling(self) -> "_Calling":
        """Around the SDK method: the call's span is the current span, so the spans started inside
        (the SDK's own tracing, an HTTP client's) are its children and share its sampling decision,
        and the call is marked (``_request.set_calling``) so that ``AICostSpanProcessor`` recognises
        them as part of this call whatever their parent (``ai_cost.pricing.priced_on``). Only what
        the method does before it returns: a generator's request (cohere's streams), sent on its
        first ``next``, is outside."""
        return _Calling(self.span)

    # -- the budget decision ------------------------------------------------------------------

    def apply_decision(self, call_kwargs: Dict[str, Any], model_key: Optional[str] = "model") -> Optional[float]:
        """Apply the budget decision made at span start, before the request is sent.

        A block ends the span and raises ``BudgetExceededError``; a downgrade switches
        ``call_kwargs[model_key]`` (and the span's request model) to the cheaper model, for chat
        operations only (``model_key=None``: the call cannot be downgraded, and goes ahead
        unchanged, recorded as allowed); a throttle returns the delay the caller must wait.
        Anything else returns None.
        """
        error: Optional[BaseException] = None
        delay: Optional[float] = None
        try:
            decision = self.request.decision
            if decision is None:
                return None
            action = decision.action
            if action == "block":
                error = decision.error()
                self._end_blocked()
            elif action == "downgrade" and decision.model:
                same = decision.model == self.request.model
                if model_key is None or self.request.operation not in _DOWNGRADABLE or same:
                    # An embeddings model cannot be swapped for a chat model: the call goes ahead.
                    self.span.set_attribute(sc.AI_COST_BUDGET_DECISION, sc.AiCostBudgetDecisionValues.ALLOW)
                    return None
                self._downgrade(decision.model)
                call_kwargs[model_key] = decision.model
            elif action == "throttle" and decision.delay:
                delay = float(decision.delay)
        except Exception as exc:
            log_once("apply_decision", exc)
            return None
        if error is not None:
            raise error
        return delay

    def _end_blocked(self) -> None:
        """End the span of a call refused before it was sent (the processor marked it)."""
        if not self._claim():
            return
        hold = self.request.hold
        if hold is not None:
            hold.release()
        try:
            self.span.end()
        except Exception as exc:
            log_once("span.end", exc)

    def _downgrade(self, model: str) -> None:
        requested = self.request.model
        self.request.model = model
        self.metric_attributes[sc.GEN_AI_REQUEST_MODEL] = model
        self.span.set_attributes({sc.GEN_AI_REQUEST_MODEL: model, sc.AI_COST_BUDGET_REQUESTED_MODEL: requested or ""})
        self.span.update_name(f"{self.request.operation} {model}")

    @property
    def ended(self) -> bool:
        return self._ended

    def _claim(self) -> bool:
        with self._lock:
            if self._ended:
                return False
            self._ended = True
            return True

    def finish(self, outcome: Outcome, *, error: Optional[BaseException] = None,
               extra: Optional[Mapping[str, Any]] = None) -> None:
        """Set the response, usage and cost attributes, record the metrics and end the span."""
        if not self._claim():
            return
        span = self.span
        duration = time.perf_counter() - self.start
        metric_attrs = dict(self.metric_attributes)
        cost_amount: Optional[float] = None
        cost_attrs: Dict[str, Any] = {}
        try:
            attrs: Dict[str, Any] = {}
            if outcome.response_model:
                attrs[sc.GEN_AI_RESPONSE_MODEL] = outcome.response_model
                metric_attrs[sc.GEN_AI_RESPONSE_MODEL] = outcome.response_model
            if outcome.attributes:
                for key, value in outcome.attributes.items():
                    if value is not None:
                        attrs[key] = value
            if extra:
                for key, value in extra.items():
                    if value is not None:
                        attrs[key] = value
            price: Any = _UNRESOLVED
            catalog = self.catalog
            if outcome.usage is not None:
                # One catalog entry for the limits and the price (the billed snapshot, else the request's model).
                try:
                    if catalog is None:
                        catalog = default_catalog()
                    price = resolve_price(catalog, self.request.provider, outcome.response_model, self.request.model)
                except Exception as exc:
                    log_once("resolve_price", exc)
                usage = self._bounded(outcome.usage, attrs, None if price is _UNRESOLVED else price)
                if usage is not outcome.usage:
                    outcome = dataclasses.replace(outcome, usage=usage)
                add_usage_attributes(attrs, usage)
                attrs[sc.AI_COST_USAGE_SOURCE] = outcome.usage_source
            failed = error is not None or outcome.error_type is not None
            if not failed or outcome.usage is not None:
                try:
                    cost_attrs = compute_cost_attributes(
                        outcome, provider=self.request.provider, request_model=self.request.model,
                        catalog=catalog, at=getattr(span, "start_time", None), price=price,
                    )
                except Exception as exc:  # the cost engine must never break the call
                    log_once("cost_attributes", exc)
                    cost_attrs = {}
                attrs.update(cost_attrs)
                amount = cost_attrs.get(sc.GEN_AI_USAGE_COST_AMOUNT)
                if isinstance(amount, (int, float)):
                    cost_amount = float(amount)
            if outcome.error_type is not None:  # the provider's own error type wins over the exception's class
                metric_attrs[sc.ERROR_TYPE] = attrs[sc.ERROR_TYPE] = outcome.error_type
            elif error is not None:
                metric_attrs[sc.ERROR_TYPE] = attrs[sc.ERROR_TYPE] = error_type(error)
            span.set_attributes(attrs)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, str(error)))
                span.record_exception(error)
            elif outcome.error_type is not None:
                span.set_status(Status(StatusCode.ERROR, outcome.error_type))
        except Exception as exc:
            log_once("Operation.finish", exc)
        finally:
            try:
                span.end()
            except Exception as exc:
                log_once("span.end", exc)
        first_chunk = extra.get(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) if extra else None
        self._record_metrics(duration, outcome, metric_attrs, cost_amount, cost_attrs, first_chunk)
        hold = self.request.hold
        if hold is not None:
            # Settle the budget with what the call cost; a call that got no usage and no cost
            # (failed, cancelled before a response) releases its hold.
            if outcome.usage is None and cost_amount is None:
                hold.release()
            else:
                hold.settle(cost_amount, {sc.GEN_AI_RESPONSE_MODEL: outcome.response_model}, usage=outcome.usage)

    def _bounded(self, usage: Usage, attrs: Dict[str, Any], price: Any) -> Usage:
        """``usage`` bounded by what the model (``price``, the catalog entry that prices the call;
        None: unknown) and the request allow (see ``cost.bound_usage``); a count that could not be
        true is lowered, flagged and logged once. ``usage`` itself when nothing is lowered."""
        try:
            max_input, max_output = price_limits(price, self.request.max_output_tokens)
            bounded, clamped = bound_usage(usage, max_input=max_input, max_output=max_output)
        except Exception as exc:
            log_once("bound_usage", exc)
            return usage
        if not clamped:
            return usage
        attrs[sc.AI_COST_USAGE_CLAMPED] = list(clamped)
        log_clamped(self.request.model, clamped, usage, bounded)
        return bounded

    def fail(self, error: BaseException, outcome: Optional[Outcome] = None) -> None:
        self.finish(outcome or Outcome(), error=error)

    def _record_metrics(self, duration: float, outcome: Outcome, attrs: Dict[str, Any],
                        cost_amount: Optional[float], cost_attrs: Mapping[str, Any],
                        first_chunk: Optional[float] = None) -> None:
        try:
            t = self.telemetry
            context = otel_context.get_current()  # once, not once per point (what the SDK does without it)
            t.duration.record(duration, attributes=attrs, context=context)
            if isinstance(first_chunk, float):
                t.time_to_first_chunk.record(first_chunk, attributes=attrs, context=context)
            if outcome.usage is None and cost_amount is None:
                return
            input_attrs, output_attrs, cost_point = t.point_attributes(attrs)
            if outcome.usage is not None:
                t.token_usage.record(outcome.usage.input_tokens, attributes=input_attrs, context=context)
                t.token_usage.record(outcome.usage.output_tokens, attributes=output_attrs, context=context)
            if cost_amount is not None:
                t.cost.add(cost_amount, cost_point, cost_attrs.get(sc.AI_COST_PRICING_STATUS),
                           cost_attrs.get(sc.GEN_AI_USAGE_COST_SOURCE))
        except Exception as exc:
            log_once("record_metrics", exc)


_clamp_logged = False


def log_clamped(model: Optional[str], clamped: Sequence[str], reported: Usage, bounded: Usage) -> None:
    """Warn the first time reported usage had to be bounded; later times go to debug."""
    global _clamp_logged
    log = logger.debug if _clamp_logged else logger.warning
    _clamp_logged = True
    log(
        "otel-ai-cost: a response of %r reported usage that the model and request cannot produce (%s); "
        "the span, cost and budgets use the bounded counts (input %s -> %s, output %s -> %s). "
        "Later cases are logged at debug level.",
        model, ", ".join(clamped), reported.input_tokens, bounded.input_tokens, reported.output_tokens,
        bounded.output_tokens,
    )
