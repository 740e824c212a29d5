"""Pricing finished GenAI spans of any instrumentation: the cost of the usage a span reports
(``span_cost_attributes``, usage bounded first by ``bounded_span_usage``), and the exporter wrapper
that adds it to spans exported without one (``CostEnrichingSpanExporter``, ``enrich_span``).

Used at export (zero-code wraps the configured exporters), by the call ledger's writer thread, by
the processor to settle another instrumentation's budget hold, and by the anomaly feed.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence, Set, Tuple

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _semconv as sc
from .cost import Usage, bound_usage, cost_attributes, usage_from_attributes, usage_limits

if TYPE_CHECKING:
    from .pricing import Catalog

# The processor's logger: these were its messages before this module was split from it.
_logger = logging.getLogger("otel_ai_cost.processor")

_logged: Set[str] = set()


def _log_once(key: str, message: str, *args: Any) -> None:
    """Warn with the traceback the first time; later failures of the same kind go to debug."""
    if key in _logged:
        _logger.debug(message, *args, exc_info=True)
        return
    _logged.add(key)
    _logger.warning(message + " Later failures of this kind are logged at debug level.", *args, exc_info=True)


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
    are immutable by the time a processor's ``on_end`` sees them. Other spans pass through as is,
    and so do the spans ``AICostSpanProcessor`` marked ``ai_cost.pricing.priced_on``: they belong to
    a call one of our instrumentors prices on its own span (e.g. the spans anthropic and mistralai
    emit themselves), so that call's cost is counted once.
    """

    def __init__(self, exporter: SpanExporter, catalog: Optional["Catalog"] = None) -> None:
        self.exporter = exporter
        self._catalog = catalog
        import os

        from .config import ENV_ENABLED, parse_bool

        # OTEL_AI_COST_ENABLED=false: spans pass through unchanged (a malformed value raises ConfigError).
        raw = os.environ.get(ENV_ENABLED, "")
        self._enabled = not raw.strip() or parse_bool(raw, ENV_ENABLED)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._enabled:
            return self.exporter.export(spans)
        return self.exporter.export([self._enrich_or_original(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def _enrich_or_original(self, span: ReadableSpan) -> ReadableSpan:
        try:
            return self.enrich(span)
        except Exception:  # noqa: BLE001 - export the span as it is rather than lose it
            _log_once("export", "otel-ai-cost: could not add cost to span %r before export.",
                      getattr(span, "name", None))
            return span

    def enrich(self, span: ReadableSpan) -> ReadableSpan:
        """The span with cost attributes added, or the span itself when it needs none."""
        return enrich_span(span, self._catalog)


def enrich_span(span: ReadableSpan, catalog: Optional["Catalog"] = None) -> ReadableSpan:
    """``span`` with the cost attributes of its usage added, when it is another instrumentation's
    GenAI span that carries usage but no cost; else the span itself (see ``CostEnrichingSpanExporter``).
    ``catalog`` None: the default catalog. Raises what the cost engine raises."""
    attributes = span.attributes
    if (
        not attributes
        or sc.GEN_AI_OPERATION_NAME not in attributes
        or sc.GEN_AI_USAGE_COST_AMOUNT in attributes
        or sc.AI_COST_PRICING_STATUS in attributes
        or sc.AI_COST_PRICING_PRICED_ON in attributes  # the call is priced on another span (ours)
    ):
        return span
    usage = usage_from_attributes(attributes)
    if usage is None:
        return span
    bounded, clamped = bounded_span_usage(attributes, usage, catalog)
    added = span_cost_attributes(attributes, bounded, catalog, span.start_time)
    if added and clamped:
        added[sc.AI_COST_USAGE_CLAMPED] = list(clamped)
    if not added:
        return span
    return _EnrichedSpan(span, {**attributes, **added})


def bounded_span_usage(attributes: Mapping[str, Any], usage: Usage, catalog: Any) -> Tuple[Usage, Tuple[str, ...]]:
    """Another instrumentation's usage, bounded as ours is (``cost.bound_usage``) before it is priced,
    and the counts lowered."""
    if catalog is None:
        from .pricing import default_catalog

        catalog = default_catalog()
    provider = _provider(attributes)
    model = _text(attributes.get(sc.GEN_AI_RESPONSE_MODEL)) or _text(attributes.get(sc.GEN_AI_REQUEST_MODEL))
    max_input, max_output = usage_limits(catalog, model, provider, attributes.get(sc.GEN_AI_REQUEST_MAX_TOKENS))
    bounded, clamped = bound_usage(usage, max_input=max_input, max_output=max_output)
    if clamped and "clamped" not in _logged:
        _logged.add("clamped")
        _logger.warning("otel-ai-cost: a span of another instrumentation reported usage its model and request "
                        "cannot produce (%s); its cost and budgets use the bounded counts. (Reported once.)",
                        ", ".join(clamped))
    return bounded, clamped


def span_cost_attributes(attributes: Mapping[str, Any], usage: Usage, catalog: Any,
                          start_time: Optional[int] = None) -> Optional[Dict[str, Any]]:
    """The cost attributes for the usage a finished GenAI span (of any instrumentation) reports,
    at the prices in force at the span's start time."""
    return cost_attributes(
        usage,
        provider=_provider(attributes),
        request_model=_text(attributes.get(sc.GEN_AI_REQUEST_MODEL)),
        response_model=_text(attributes.get(sc.GEN_AI_RESPONSE_MODEL)),
        service_tier=_text(attributes.get(sc.OPENAI_RESPONSE_SERVICE_TIER))
        or _text(attributes.get(sc.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER)),
        catalog=catalog,
        at=start_time,
    )


# Values of the deprecated gen_ai.system that were renamed in gen_ai.provider.name (semconv v1.37).
_LEGACY_SYSTEMS = {
    "xai": "x_ai",
    "az.ai.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
}


def _provider(attributes: Mapping[str, Any]) -> Optional[str]:
    """A finished span's provider: ``gen_ai.provider.name``, else the deprecated ``gen_ai.system`` renamed."""
    system = _text(attributes.get(sc.GEN_AI_SYSTEM))
    return _text(attributes.get(sc.GEN_AI_PROVIDER_NAME)) or (_LEGACY_SYSTEMS.get(system, system) if system else None)


def _text(value: Any) -> Optional[str]:
    """A string attribute value, or None for anything else (a malformed span must not break export)."""
    return value if isinstance(value, str) and value else None
