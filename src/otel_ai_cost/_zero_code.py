"""The zero-code path: ``opentelemetry-instrument python app.py`` registers AICostSpanProcessor.

``register_processor`` is the ``opentelemetry_post_instrument`` entry point. opentelemetry-instrument
calls it with no arguments after the distro, the configurator (which sets the global SDK
TracerProvider and its BatchSpanProcessor) and the instrumentors have run.

A malformed ``OTEL_AI_COST_*`` value raises ConfigError from here, on purpose: the configuration
is wrong, and raising is how the OpenTelemetry startup sequence reports that. opentelemetry-instrument
logs it with the message naming the variable ("Failed to auto initialize OpenTelemetry" followed
by the ConfigError) and, by default, runs the application on without cost tracking; with
``initialize(swallow_exceptions=False)`` startup stops. Logging and silently disabling would hide
a typo until someone notices costs are missing.
"""
from __future__ import annotations

import logging
import weakref
from typing import Any, Optional

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from .config import Settings
from .processor import AICostSpanProcessor, CostEnrichingSpanExporter

_logger = logging.getLogger(__name__)

_registered: "weakref.WeakKeyDictionary[TracerProvider, AICostSpanProcessor]" = weakref.WeakKeyDictionary()
_warned_no_sdk = False


def register_processor(*_args: Any, **_kwargs: Any) -> Optional[AICostSpanProcessor]:
    """Add AICostSpanProcessor to the global SDK TracerProvider, configured from the environment.

    Returns the processor (None when disabled or when there is no SDK provider). Idempotent: a
    second call on the same provider adds nothing and returns the first processor.
    """
    global _warned_no_sdk
    settings = Settings.from_env()
    if not settings.enabled:
        return None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        if not _warned_no_sdk:
            _warned_no_sdk = True
            _logger.warning(
                "otel-ai-cost: the global tracer provider is %s, not an OpenTelemetry SDK TracerProvider, "
                "so no cost processor was added. Install opentelemetry-distro (or set OTEL_PYTHON_CONFIGURATOR) "
                "so that opentelemetry-instrument configures the SDK.",
                type(provider).__name__,
            )
        return None
    existing = _registered.get(provider)
    if existing is not None:
        return existing
    processor = AICostSpanProcessor(settings=settings)
    provider.add_span_processor(processor)
    _registered[provider] = processor
    if settings.enrich_export:
        wrap_exporters(provider, processor.catalog)
    return processor


def wrap_exporters(provider: TracerProvider, catalog: Any = None) -> int:
    """Wrap the exporter of each Batch/SimpleSpanProcessor of ``provider`` with CostEnrichingSpanExporter.

    This reaches into SDK internals (``TracerProvider._active_span_processor._span_processors``,
    ``BatchSpanProcessor._batch_processor._exporter``, ``SimpleSpanProcessor.span_exporter``), as
    the SDK offers no public way to reach a configured exporter. If they change, nothing is
    wrapped and a warning says so; spans are still exported, only without cost for other
    instrumentations' spans. Returns how many exporters were wrapped.
    """
    wrapped = 0
    try:
        processors = provider._active_span_processor._span_processors  # noqa: SLF001 - see docstring
        for span_processor in processors:
            if isinstance(span_processor, BatchSpanProcessor):
                batch = span_processor._batch_processor  # noqa: SLF001
                exporter = _wrapped(batch._exporter, catalog)  # noqa: SLF001
                if exporter is not None:
                    batch._exporter = exporter  # noqa: SLF001
                    wrapped += 1
            elif isinstance(span_processor, SimpleSpanProcessor):
                exporter = _wrapped(span_processor.span_exporter, catalog)
                if exporter is not None:
                    span_processor.span_exporter = exporter
                    wrapped += 1
    except Exception:  # noqa: BLE001 - SDK internals changed; export goes on without enrichment
        _logger.warning(
            "otel-ai-cost: could not wrap the span exporters of the tracer provider (SDK internals changed?); "
            "spans of other GenAI instrumentations will be exported without cost.",
            exc_info=True,
        )
    return wrapped


def _wrapped(exporter: SpanExporter, catalog: Any) -> Optional[CostEnrichingSpanExporter]:
    if isinstance(exporter, CostEnrichingSpanExporter):
        return None
    return CostEnrichingSpanExporter(exporter, catalog=catalog)
