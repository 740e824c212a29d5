"""AICostSpanProcessor (estimate and attribution at span start) and CostEnrichingSpanExporter
(cost for finished GenAI spans of other instrumentations).

Neither ever raises into the SDK: a failure is logged once and the span goes on unchanged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence, Tuple

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.attributes import openai_attributes as openai_attrs

from . import _semconv as sc
from ._request import LLMRequest, current_request
from .config import BAGGAGE_PREFIX, Settings
from .cost import Usage, compute_cost, cost_attributes, usage_from_attributes

if TYPE_CHECKING:
    from .pricing import Catalog

_logger = logging.getLogger(__name__)

# Output tokens assumed when neither the request's max_tokens nor the model's limit is known.
DEFAULT_OUTPUT_TOKENS = 1024

# Set on LLMRequest.extra once a span has taken the request, so spans started under it later
# (e.g. an HTTP client span) are not mistaken for the GenAI span.
_CLAIMED = "otel_ai_cost.claimed"

_logged: set = set()


def _log_once(key: str, message: str, *args: Any) -> None:
    """Warn with the traceback the first time; later failures of the same kind go to debug."""
    if key in _logged:
        _logger.debug(message, *args, exc_info=True)
        return
    _logged.add(key)
    _logger.warning(message + " Later failures of this kind are logged at debug level.", *args, exc_info=True)


@dataclass(frozen=True)
class Estimate:
    """What a call is expected to cost, computed before it is sent."""

    input_tokens: int
    output_tokens: int
    method: str  # how input_tokens was counted: "tiktoken" | "heuristic" | "provider"
    output_basis: str  # "max_tokens" | "model_limit" | "default"
    amount: Optional[Decimal] = None  # USD; None when the model is not in the catalog
    model_id: Optional[str] = None  # catalog entry used for the amount

    def attributes(self) -> Dict[str, Any]:
        attributes: Dict[str, Any] = {
            sc.AI_COST_ESTIMATE_INPUT_TOKENS: self.input_tokens,
            sc.AI_COST_ESTIMATE_OUTPUT_TOKENS: self.output_tokens,
            sc.AI_COST_ESTIMATE_METHOD: self.method,
            sc.AI_COST_ESTIMATE_OUTPUT_BASIS: self.output_basis,
        }
        if self.amount is not None:
            attributes[sc.AI_COST_ESTIMATE_AMOUNT] = float(self.amount)
        return attributes


def load_catalog(settings: Settings) -> "Catalog":
    """The catalog the settings name. Raises ConfigError (or CatalogError) on a bad file."""
    from .pricing import Catalog, default_catalog

    if settings.pricing_files is not None:
        return Catalog.load(*settings.pricing_files)
    return default_catalog()


class AICostSpanProcessor(SpanProcessor):
    """Estimates the cost of a GenAI call when its span starts and copies attribution from baggage.

    Keyword arguments override ``settings``; with no settings, ``Settings.from_env()`` is used, so
    a malformed ``OTEL_AI_COST_*`` value raises ConfigError here, at construction.
    """

    def __init__(
        self,
        *,
        catalog: Optional["Catalog"] = None,
        baggage_keys: Optional[Sequence[str]] = None,
        estimate: Optional[bool] = None,
        settings: Optional[Settings] = None,
    ) -> None:
        settings = settings if settings is not None else Settings.from_env()
        if baggage_keys is not None:
            settings = settings.replace(baggage_keys=tuple(baggage_keys))
        if estimate is not None:
            settings = settings.replace(estimate=estimate)
        self.settings = settings
        self.catalog: "Catalog" = catalog if catalog is not None else load_catalog(settings)
        self._baggage_keys = frozenset(settings.baggage_keys)

    # -- SpanProcessor ----------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        try:
            self._on_start(span, parent_context)
        except Exception:  # noqa: BLE001 - a span processor must never break the host application
            _log_once("on_start", "otel-ai-cost: AICostSpanProcessor.on_start failed on span %r.", getattr(span, "name", None))

    def on_end(self, span: ReadableSpan) -> None:
        # Spans are immutable here; budget settlement (the ledger) plugs in at this point.
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- the span-start callbacks -----------------------------------------------------------

    def _on_start(self, span: Span, parent_context: Optional[Context]) -> None:
        request = current_request()
        if request is not None and request.extra.get(_CLAIMED):
            request = None
        attributes = span.attributes
        if request is None and (not attributes or gen_ai.GEN_AI_OPERATION_NAME not in attributes):
            return
        if request is not None:
            request.extra[_CLAIMED] = True
        attribution = self.attribution(parent_context)
        if attribution:
            span.set_attributes(attribution)
        if request is None or not self.settings.estimate:
            return
        estimate = self._estimate_or_none(request)
        if estimate is None:
            return
        request.estimate = estimate
        span.set_attributes(estimate.attributes())
        request.decision = self._decide(span, request, estimate)

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
        try:
            return self.estimate(request)
        except Exception:  # noqa: BLE001 - a bad estimate leaves the span without one, never broken
            _log_once("estimate", "otel-ai-cost: could not estimate the cost of a call to %r.", request.model)
            return None

    def estimate(self, request: LLMRequest) -> Optional[Estimate]:
        """The estimate for a request, or None when its input cannot be counted.

        Public so that an instrumentor can run it itself when the sampler drops the span.
        """
        if request.estimate_input is None:
            return None
        counted = request.estimate_input()
        price = self.catalog.resolve(request.model, request.provider) if request.model else None
        output_tokens, output_basis = self._output_tokens(request, price.max_output_tokens if price else None)
        amount: Optional[Decimal] = None
        model_id: Optional[str] = None
        if price is not None:
            usage = Usage(input_tokens=counted.tokens, output_tokens=output_tokens)
            cost = compute_cost(usage, price, request.service_tier)
            amount, model_id = cost.total, cost.model_id
        return Estimate(
            input_tokens=counted.tokens,
            output_tokens=output_tokens,
            method=counted.method,
            output_basis=output_basis,
            amount=amount,
            model_id=model_id,
        )

    def _output_tokens(self, request: LLMRequest, model_limit: Optional[int]) -> Tuple[int, str]:
        basis = sc.AiCostEstimateOutputBasisValues
        max_tokens = request.max_output_tokens
        expected = self.settings.output_estimate.expected_tokens
        if expected is not None:
            if max_tokens is not None and max_tokens < expected:
                return max_tokens, basis.MAX_TOKENS
            return expected, basis.DEFAULT
        if max_tokens is not None:
            return max_tokens, basis.MAX_TOKENS
        if model_limit is not None:
            return model_limit, basis.MODEL_LIMIT
        return DEFAULT_OUTPUT_TOKENS, basis.DEFAULT

    def _decide(self, span: Span, request: LLMRequest, estimate: Estimate) -> Any:
        """Budget decision for the call. Budgets plug in here; until then every call is allowed (None)."""
        return None


class _EnrichedSpan(ReadableSpan):
    """A copy of a finished span with more attributes; keeps the original's dropped counts."""

    def __init__(self, original: ReadableSpan, attributes: Mapping[str, Any]) -> None:
        super().__init__(
            name=original.name,
            context=original.context,
            parent=original.parent,
            resource=original.resource,
            attributes=dict(attributes),
            events=original.events,
            links=original.links,
            kind=original.kind,
            status=original.status,
            start_time=original.start_time,
            end_time=original.end_time,
            instrumentation_scope=original.instrumentation_scope,
        )
        self._original = original

    @property
    def dropped_attributes(self) -> int:
        return self._original.dropped_attributes

    @property
    def dropped_events(self) -> int:
        return self._original.dropped_events

    @property
    def dropped_links(self) -> int:
        return self._original.dropped_links


class CostEnrichingSpanExporter(SpanExporter):
    """Wraps an exporter and adds cost to finished GenAI spans that carry usage but no cost.

    For spans of other instrumentations (the official openai-v2, OpenLLMetry, ...), whose spans
    are immutable by the time a processor's ``on_end`` sees them. Other spans pass through as is.
    """

    def __init__(self, exporter: SpanExporter, catalog: Optional["Catalog"] = None) -> None:
        self.exporter = exporter
        self._catalog = catalog

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export([self._enrich_or_original(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def _enrich_or_original(self, span: ReadableSpan) -> ReadableSpan:
        try:
            return self.enrich(span)
        except Exception:  # noqa: BLE001 - export the span as it is rather than lose it
            _log_once("export", "otel-ai-cost: could not add cost to span %r before export.", getattr(span, "name", None))
            return span

    def enrich(self, span: ReadableSpan) -> ReadableSpan:
        """The span with cost attributes added, or the span itself when it needs none."""
        attributes = span.attributes
        if (
            not attributes
            or gen_ai.GEN_AI_OPERATION_NAME not in attributes
            or sc.GEN_AI_USAGE_COST_AMOUNT in attributes
            or sc.AI_COST_PRICING_STATUS in attributes
        ):
            return span
        usage = usage_from_attributes(attributes)
        if usage is None:
            return span
        added = cost_attributes(
            usage,
            provider=_text(attributes.get(gen_ai.GEN_AI_PROVIDER_NAME))
            or _legacy_provider(_text(attributes.get(gen_ai.GEN_AI_SYSTEM))),
            request_model=_text(attributes.get(gen_ai.GEN_AI_REQUEST_MODEL)),
            response_model=_text(attributes.get(gen_ai.GEN_AI_RESPONSE_MODEL)),
            service_tier=_text(attributes.get(openai_attrs.OPENAI_RESPONSE_SERVICE_TIER))
            or _text(attributes.get(gen_ai.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER)),
            catalog=self._catalog,
        )
        if not added:
            return span
        return _EnrichedSpan(span, {**attributes, **added})


# Values of the deprecated gen_ai.system that were renamed in gen_ai.provider.name (semconv v1.37).
_LEGACY_SYSTEMS = {
    "xai": "x_ai",
    "az.ai.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
}


def _legacy_provider(system: Optional[str]) -> Optional[str]:
    return _LEGACY_SYSTEMS.get(system, system) if system else None


def _text(value: Any) -> Optional[str]:
    """A string attribute value, or None for anything else (a malformed span must not break export)."""
    return value if isinstance(value, str) and value else None
