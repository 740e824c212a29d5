"""AICostSpanProcessor: estimate, attribution and budgets at span start, anomalies as a span ends.
(CostEnrichingSpanExporter, cost for finished GenAI spans of other instrumentations, is in
``_span_pricing`` and re-exported here.)

Neither ever raises into the SDK: a failure is logged once and the span goes on unchanged. The one
exception is deliberate and opt-in: ``raise_on_block`` raises BudgetExceededError from ``on_start``
for blocked spans of other instrumentations.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind

from . import _semconv as sc
from ._budget_setup import load_file_config, resolve_anomalies, resolve_budget_book
from ._estimate import Estimate, estimate_request
from ._request import LLMRequest, calling_span_id, current_request
from ._span_pricing import (
    CostEnrichingSpanExporter,
    _log_once,
    _text,
    bounded_span_usage,
    enrich_span,
    span_cost_attributes,
)
from .config import BAGGAGE_PREFIX, DEFAULT_OUTPUT_TOKENS, Settings
from .cost import usage_from_attributes
from .errors import BudgetExceededError

if TYPE_CHECKING:
    from .anomalies._span_feed import SpanFeed
    from .budgets import Budget, BudgetBook, BudgetEnforcer, BudgetStore, Hold
    from .pricing import Catalog

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "AICostSpanProcessor",
    "CostEnrichingSpanExporter",
    "Estimate",
    "enrich_span",
    "load_catalog",
    "start_unrecorded",
]

_logger = logging.getLogger(__name__)

# Set on LLMRequest.extra once a span has taken the request, so spans started under it later
# (e.g. an HTTP client span) are not mistaken for the GenAI span.
_CLAIMED = "otel_ai_cost.claimed"

def load_catalog(settings: Settings) -> "Catalog":
    """The catalog the settings name. Raises ConfigError (or CatalogError) on a bad file."""
    from .pricing import Catalog, default_catalog

    if settings.pricing_files is not None:
        return Catalog.load(*settings.pricing_files)
    return default_catalog()


class AICostSpanProcessor(SpanProcessor):
    """Estimates the cost of a GenAI call when its span starts, copies attribution from baggage and
    enforces budgets.

    Keyword arguments override ``settings``; with no settings, ``Settings.from_env()`` is used, so
    a malformed ``OTEL_AI_COST_*`` value (or configuration file) raises ConfigError here.

    Budgets come from ``budgets`` (``Budget`` objects, kept in ``budget_store``: by default the
    SQLite file of ``budgets.default_store_url()``), from a ready ``budget_book``, or from the YAML
    file ``config_file`` / ``OTEL_AI_COST_CONFIG``. Hooks, each called with the span:
    ``before_request(span, estimate)`` may return a decision (an action name, an ``Action`` or a
    ``Decision``) that replaces the budgets' for this call, or None; ``on_warning(span, decision)``
    and ``on_blocked(span, decision)``. ``raise_on_block`` makes ``on_start`` raise
    ``BudgetExceededError`` for blocked spans of other instrumentations (our instrumentors raise
    it themselves, before the request is sent). ``anomalies`` (True or an ``AnomalyMonitor``; default
    ``OTEL_AI_COST_ANOMALIES``) and ``anomaly_policy``: see ``anomalies/_wiring.py``.
    """

    def __init__(
        self,
        *,
        catalog: Optional["Catalog"] = None,
        baggage_keys: Optional[Sequence[str]] = None,
        estimate: Optional[bool] = None,
        settings: Optional[Settings] = None,
        budgets: Optional[Sequence["Budget"]] = None,
        budget_store: Optional["BudgetStore"] = None,
        budget_book: Optional["BudgetBook"] = None,
        config_file: Optional[str] = None,
        before_request: Optional[Callable[..., Any]] = None,
        on_warning: Optional[Callable[..., Any]] = None,
        on_blocked: Optional[Callable[..., Any]] = None,
        raise_on_block: Optional[bool] = None,
        meter_provider: Any = None,
        anomalies: Any = None,
        anomaly_policy: Any = None,
    ) -> None:
        settings = settings if settings is not None else Settings.from_env()
        if baggage_keys is not None:
            settings = settings.replace(baggage_keys=tuple(baggage_keys))
        if estimate is not None:
            settings = settings.replace(estimate=estimate)
        if config_file is not None:
            settings = settings.replace(config_file=config_file)
        if raise_on_block is not None:
            settings = settings.replace(raise_on_block=raise_on_block)
        self.settings = settings
        # Holds of other instrumentations' spans, settled from their usage in on_end.
        self._foreign_holds: "OrderedDict[Tuple[int, int], Hold]" = OrderedDict()
        self._foreign_lock = threading.Lock()
        self._enforcer: Optional["BudgetEnforcer"] = None
        self.catalog: Optional["Catalog"] = catalog
        self._baggage_keys: FrozenSet[str] = frozenset()
        self.budget_book: Optional["BudgetBook"] = None
        self.anomalies: Optional["SpanFeed"] = None  # the anomaly detector, fed in _on_ending (anomalies/_wiring.py)
        if not settings.enabled:  # OTEL_AI_COST_ENABLED=false: a processor that does nothing
            self._owns_store = False
            return
        self.catalog = catalog if catalog is not None else load_catalog(settings)
        self._baggage_keys = frozenset(settings.baggage_keys)
        file_config = load_file_config(settings.config_file)
        self.budget_book = resolve_budget_book(file_config, budgets, budget_store, budget_book)
        # A store the processor opened itself (from the file or the default) is closed at shutdown.
        self._owns_store = self.budget_book is not None and budget_book is None and budget_store is None
        file_raise = file_config.raise_on_block if file_config is not None else False
        self.anomalies, gate = resolve_anomalies(anomalies, anomaly_policy, settings, file_config, self.budget_book,
                                                 self.catalog, meter_provider)
        if self.budget_book is not None or before_request is not None or gate is not None:
            from .budgets import BudgetEnforcer

            self._enforcer = BudgetEnforcer(
                self.budget_book,
                before_request=before_request,
                on_warning=on_warning,
                on_blocked=on_blocked,
                raise_on_block=settings.raise_on_block if settings.raise_on_block is not None else file_raise,
                meter_provider=meter_provider,
                catalog=self.catalog,
                anomaly_gate=gate,
            )

    @property
    def enforcer(self) -> Optional["BudgetEnforcer"]:
        """The budgets and hooks this processor enforces at span start; None when it has neither."""
        return self._enforcer

    # -- SpanProcessor ----------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        if not self.settings.enabled:
            return
        try:
            self._on_start(span, parent_context)
        except BudgetExceededError:
            raise  # only for other instrumentations' spans, when the user opted in (raise_on_block)
        except Exception:  # noqa: BLE001 - a span processor must never break the host application
            _log_once("on_start", "otel-ai-cost: AICostSpanProcessor.on_start failed on span %r.",
                      getattr(span, "name", None))

    def on_end(self, span: ReadableSpan) -> None:
        # Our instrumentors settle their own holds when they end the span; the holds of other
        # instrumentations' spans are settled here from the usage the span reports.
        if not self._foreign_holds:
            return
        try:
            context = span.context
            with self._foreign_lock:
                hold = self._foreign_holds.pop((context.trace_id, context.span_id), None)
            if hold is not None:
                _settle_from_span(hold, span, self.catalog)
        except Exception:  # noqa: BLE001
            _log_once("on_end", "otel-ai-cost: AICostSpanProcessor.on_end failed on span %r.",
                      getattr(span, "name", None))

    def _on_ending(self, span: Span) -> None:
        # The SDK calls this before any processor's on_end, so the findings are exported with the span.
        if self.anomalies is not None:
            self.anomalies.on_ending(span)

    def shutdown(self) -> None:
        if self.anomalies is not None:
            self.anomalies.close()
        with self._foreign_lock:
            holds, self._foreign_holds = list(self._foreign_holds.values()), OrderedDict()
        for hold in holds:
            hold.release()
        self.force_flush()
        if self.budget_book is not None and self._owns_store:
            try:
                self.budget_book.store.close()
            except Exception:  # noqa: BLE001
                _log_once("store close", "otel-ai-cost: could not close the budget store.")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self.anomalies is not None:  # the per-key anomaly rules of the calls queued off their path
            self.anomalies.flush()
        flush = getattr(self.budget_book.store, "flush", None) if self.budget_book is not None else None
        if flush is not None:  # settles a store queued off the calls' path (budgets._deferred)
            try:
                flush()
            except Exception:  # noqa: BLE001
                _log_once("store flush", "otel-ai-cost: could not send the budget store's queued settles.")
                return False
        return True

    # -- the span-start callbacks -----------------------------------------------------------

    def _on_start(self, span: Span, parent_context: Optional[Context]) -> None:
        request = current_request()
        if request is not None and request.extra.get(_CLAIMED):
            request = None
        priced_on = calling_span_id() if request is None else None
        if priced_on is not None:
            # Another instrumentation's span inside one of our calls (the SDK's own tracing, an
            # HTTP client): part of that call, which our span prices and budgets.
            span.set_attribute(sc.AI_COST_PRICING_PRICED_ON, priced_on)
        if request is None:
            attributes = span.attributes
            if not attributes or sc.GEN_AI_OPERATION_NAME not in attributes:
                return
        else:
            request.extra[_CLAIMED] = True
        attribution = self.attribution(parent_context)
        if attribution:
            span.set_attributes(attribution)
        if request is None:
            if self._enforcer is not None and priced_on is None:
                self._start_foreign(span, parent_context, _resource(span))
            return
        if self._enforcer is None:  # the estimate, nothing else: no selectors to build
            self._start_request(span, request, {}, {}, parent_context)
            return
        # The instrumentor's own dict of start attributes is cheaper to read than the span's.
        start = request.attributes if request.attributes is not None else (span.attributes or {})
        self._start_request(span, request, {**start, **attribution} if attribution else start, _resource(span),
                            parent_context)

    def start_unrecorded(
        self, request: LLMRequest, attributes: Mapping[str, Any], span: Any, resource: Mapping[str, Any]
    ) -> None:
        """The span-start callbacks for a call whose span the sampler dropped (no ``on_start``).

        Budgets hold whatever the sampler decides: the instrumentor calls this (through the
        module-level ``start_unrecorded``) with the resource of the span's tracer provider.
        """
        if request.extra.get(_CLAIMED):
            return
        request.extra[_CLAIMED] = True
        merged = {**attributes, **self.attribution(None)}
        self._start_request(span, request, merged, resource, None)

    def _start_request(
        self,
        span: Any,
        request: LLMRequest,
        attributes: Mapping[str, Any],
        resource: Mapping[str, Any],
        context: Optional[Context],
    ) -> None:
        estimate = None
        estimated = None  # the estimate's span attributes; with budgets, set by decide with the decision's
        if self.settings.estimate or self._enforcer is not None:
            estimate = self._estimate_or_none(request)
            if estimate is not None:
                request.estimate = estimate
                estimated = estimate.attributes()
                if self._enforcer is None:
                    span.set_attributes(estimated)
        _mark_covering(span, context)
        if self._enforcer is None:
            return
        if self._foreign_holds:
            self._release_covered(context)
        selected = {**attributes, **resource}  # _selector_attributes, inline: the resource wins
        request.decision, request.hold = self._enforcer.decide(
            span, selected, trace_id=_trace_id(span), estimate=estimate, start_attributes=estimated
        )

    def _release_covered(self, context: Optional[Context]) -> None:
        """Another instrumentation's span around ours (the same call, instrumented twice): ours counts."""
        parent = trace.get_current_span(context).get_span_context()
        with self._foreign_lock:
            hold = self._foreign_holds.pop((parent.trace_id, parent.span_id), None)
        if hold is not None:
            hold.release()

    def _start_foreign(self, span: Span, context: Optional[Context], resource: Mapping[str, Any]) -> None:
        """Budgets for a GenAI span of another instrumentation: only the model is known, not the request."""
        assert self._enforcer is not None
        if not _is_foreign_inference(span, context):
            return
        selected = _selector_attributes(dict(span.attributes or {}), resource)
        decision, hold = self._enforcer.decide(span, selected, trace_id=_trace_id(span), estimate=None, foreign=True)
        if decision is not None and decision.action == "block" and self._enforcer.raise_on_block:
            if hold is not None:
                hold.release()
            span.end()
            raise decision.error()
        if hold is not None:
            with self._foreign_lock:
                self._foreign_holds[(span.context.trace_id, span.context.span_id)] = hold
                while len(self._foreign_holds) > _FOREIGN_HOLDS_CAP:
                    self._foreign_holds.popitem(last=False)  # a span never ended: its hold expires by TTL

    def attribution(self, context: Optional[Context]) -> Dict[str, str]:
        """The configured baggage entries (and every ``ai_cost.*`` one) as span attributes."""
        entries = baggage.get_all(context)
        if not entries:
            return {}
        return {
            key: str(value)
            for key, value in entries.items()
            if key in self._baggage_keys or key.startswith(BAGGAGE_PREFIX)
        }

    def _estimate_or_none(self, request: LLMRequest) -> Optional[Estimate]:
        catalog = self.catalog
        if catalog is None:  # only a disabled processor has none, and it never gets here
            return None
        try:  # estimate_request directly, not through self.estimate: one call less per call
            # A tokenizer still loading: budgets and hooks count an upper bound, others the heuristic.
            when_loading = "upper_bound" if self._enforcer is not None else "heuristic"
            return estimate_request(request, catalog, self.settings.output_estimate, when_loading)
        except Exception:  # noqa: BLE001 - a bad estimate leaves the span without one, never broken
            _log_once("estimate", "otel-ai-cost: could not estimate the cost of a call to %r.", request.model)
            return None

    def estimate(self, request: LLMRequest) -> Optional[Estimate]:
        """The estimate for a request, or None when its input cannot be counted.

        Public so that an instrumentor can run it itself when the sampler drops the span.
        """
        assert self.catalog is not None, "a disabled processor (OTEL_AI_COST_ENABLED=false) has no catalog"
        return estimate_request(request, self.catalog, self.settings.output_estimate)


_FOREIGN_HOLDS_CAP = 10_000


def start_unrecorded(tracer: Any, request: LLMRequest, attributes: Mapping[str, Any], span: Any) -> None:
    """Run the span-start callbacks for a call whose span the sampler dropped (so no ``on_start``).

    Called by the instrumentors with the tracer that started the span: the processor and the
    resource are those of that tracer's provider. This reads SDK internals (``Tracer.span_processor``
    and the multi-processor's ``_span_processors``); if they change, unsampled calls are not checked
    and a warning says so once.
    """
    try:
        real = getattr(tracer, "_tracer", tracer)  # a ProxyTracer resolves to the global provider's
        multi = getattr(real, "span_processor", None)
        if multi is None:
            return  # a no-op tracer (no SDK): nothing is enforced, sampled or not
        processors = getattr(multi, "_span_processors", None)
        if processors is None:
            raise AttributeError("the SDK's multi span processor has no _span_processors")
        resource = getattr(getattr(real, "resource", None), "attributes", None) or {}
    except Exception:  # noqa: BLE001
        _log_once("unrecorded", "otel-ai-cost: cannot find the span processors of an unsampled call's tracer "
                  "(SDK internals changed?); budgets are not checked for unsampled calls.")
        return
    for processor in processors:
        if isinstance(processor, AICostSpanProcessor) and processor.enforcer is not None:
            try:
                processor.start_unrecorded(request, attributes, span, resource)
            except Exception:  # noqa: BLE001
                _log_once("unrecorded", "otel-ai-cost: budget check of an unsampled call failed.")
            return  # one processor per call, as for recorded spans


def _resource(span: Any) -> Mapping[str, Any]:
    resource = span.resource
    return resource.attributes if resource is not None else {}


def _trace_id(span: Any) -> Optional[str]:
    try:
        trace_id = span.get_span_context().trace_id
    except Exception:  # noqa: BLE001
        return None
    return format(trace_id, "032x") if trace_id else None


# Operations whose spans are one model call; agent and tool spans carry the totals of their calls.
_INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})


def _is_foreign_inference(span: Span, context: Optional[Context]) -> bool:
    """A client span of one model call, not nested in one of ours (the same call instrumented twice)."""
    if span.kind is not SpanKind.CLIENT:
        return False
    if (span.attributes or {}).get(sc.GEN_AI_OPERATION_NAME) not in _INFERENCE_OPERATIONS:
        return False
    parent = trace.get_current_span(context)
    scope = getattr(parent, "instrumentation_scope", None)
    return not (scope is not None and scope.name.startswith("otel_ai_cost."))


def _mark_covering(span: Any, context: Optional[Context]) -> None:
    """Another instrumentation's span of one model call around the start of ours (the same call,
    instrumented twice): mark it ``ai_cost.pricing.priced_on`` ours, so it is not priced again."""
    parent = trace.get_current_span(context)
    if not isinstance(parent, Span) or not parent.is_recording() or parent.kind is not SpanKind.CLIENT:
        return
    attributes = parent.attributes or {}
    if sc.AI_COST_PRICING_PRICED_ON in attributes:
        return
    if attributes.get(sc.GEN_AI_OPERATION_NAME) not in _INFERENCE_OPERATIONS:
        return
    scope = parent.instrumentation_scope
    if scope is not None and scope.name.startswith("otel_ai_cost."):
        return
    own = span.get_span_context()
    if own.is_valid:
        parent.set_attribute(sc.AI_COST_PRICING_PRICED_ON, format(own.span_id, "016x"))


def _selector_attributes(attributes: Mapping[str, Any], resource: Mapping[str, Any]) -> Dict[str, Any]:
    """What budget selectors see: the span's attributes (with the attribution copied from baggage:
    the configured keys and ``ai_cost.*``), then the resource's, which win: an incoming ``baggage``
    header must not be able to pose as another service."""
    return {**attributes, **resource}


def _settle_from_span(hold: "Hold", span: ReadableSpan, catalog: Any) -> None:
    """Settle another instrumentation's call from the cost or usage its finished span reports."""
    attributes = span.attributes or {}
    amount = attributes.get(sc.GEN_AI_USAGE_COST_AMOUNT)
    usage = usage_from_attributes(attributes) if not isinstance(amount, (int, float)) else None
    if usage is not None:
        usage, _ = bounded_span_usage(attributes, usage, catalog)
        amount = (span_cost_attributes(attributes, usage, catalog, span.start_time) or {}).get(
            sc.GEN_AI_USAGE_COST_AMOUNT)
    if not isinstance(amount, (int, float)) and usage is None:
        hold.release()  # no usage reported: the call failed or cost nothing we can know
        return
    hold.settle(
        amount if isinstance(amount, (int, float)) else None,
        {sc.GEN_AI_RESPONSE_MODEL: _text(attributes.get(sc.GEN_AI_RESPONSE_MODEL))},
        usage=usage,
    )
