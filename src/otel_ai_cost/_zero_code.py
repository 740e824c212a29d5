"""The zero-code path: ``opentelemetry-instrument python app.py`` registers AICostSpanProcessor.

Two entry points, which opentelemetry-instrument calls with no arguments, in this order:

- ``check_configuration`` (``opentelemetry_pre_instrument``), after the distro and the configurator
  (which sets the global SDK TracerProvider) and before the instrumentors: it reads every
  ``OTEL_AI_COST_*`` variable and the pricing files they name. ``OTEL_AI_COST_ENABLED=false``, or
  any bad value, switches otel-ai-cost off for the process: our instrumentors then wrap nothing
  and no processor is registered, so no span, cost attribute or budget of ours appears. A bad value
  is reported in one log line naming the variable, the value and the reason (no traceback, not
  "Failed to auto initialize OpenTelemetry"), and the application runs on untouched.
- ``register_processor`` (``opentelemetry_post_instrument``), after the instrumentors: adds the
  processor (and wraps the exporters). If the processor cannot be built (a configuration file it
  reads is malformed), the same: one log line, our instrumentors are undone, the application runs on.

In code, by contrast, a malformed value raises ConfigError from the constructor or ``instrument()``:
the code asked for otel-ai-cost and gets told at once what is wrong.
"""
from __future__ import annotations

import logging
import weakref
from typing import Any, List, Optional, Set, Tuple

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from ._span_pricing import CostEnrichingSpanExporter
from .config import ENV_CONFIG, ENV_ENABLED, Settings, check_environment
from .config import zero_code_state as _state
from .errors import ConfigError
from .processor import AICostSpanProcessor

_logger = logging.getLogger(__name__)

_registered: "weakref.WeakKeyDictionary[TracerProvider, AICostSpanProcessor]" = weakref.WeakKeyDictionary()
_warned_no_sdk = False
_logged_off: Set[str] = set()

OFF_NOTE = "otel-ai-cost is off (no spans, cost attributes or budgets of its own); the application runs on"




def _problem() -> Tuple[Optional[Settings], Optional[str]]:
    """(settings, None) when otel-ai-cost is on; (None, why) when it is off."""
    try:
        settings = check_environment()
        if not settings.enabled:
            return None, f"{ENV_ENABLED}=false"
        from .pricing import default_catalog

        default_catalog()  # the pricing files' content, and OTEL_AI_COST_AZURE_DEPLOYMENTS
        return settings, None
    except ConfigError as exc:  # CatalogError included; the message names the variable or file
        return None, str(exc)


def _report_off(reason: str) -> None:
    if reason in _logged_off:
        return
    _logged_off.add(reason)
    if reason == f"{ENV_ENABLED}=false":
        _logger.info("otel-ai-cost: %s: otel-ai-cost is off", reason)
    else:
        _logger.error("otel-ai-cost: %s; %s", reason, OFF_NOTE)


def check_configuration(*_args: Any, **_kwargs: Any) -> bool:
    """The ``opentelemetry_pre_instrument`` entry point: decide, before the instrumentors run,
    whether otel-ai-cost is on in this process. Never raises; returns True when it is on."""
    try:
        _, reason = _problem()
    except Exception as exc:  # noqa: BLE001 - a bug of ours must not stop the application
        reason = f"internal error while reading the configuration: {exc!r}"
    _state.checked, _state.off = True, reason
    if reason is not None:
        _report_off(reason)
    return reason is None


def switch_off(reason: str) -> None:
    """Turn otel-ai-cost off after the instrumentors ran: log once, and undo our instrumentors."""
    _state.off = reason
    _report_off(reason)
    for instrumentor in _our_instrumentors():
        try:
            instrumentor.uninstrument()
        except Exception:  # noqa: BLE001
            _logger.debug("otel-ai-cost: could not uninstrument %r", instrumentor, exc_info=True)


def _our_instrumentors() -> List[Any]:
    """The instrumented instances of our instrumentor classes (BaseInstrumentor is a singleton)."""
    import sys

    from opentelemetry.util._importlib_metadata import entry_points

    found = []
    for entry_point in entry_points(group="opentelemetry_instrumentor"):
        module_name, _, attribute = entry_point.value.partition(":")
        module = sys.modules.get(module_name) if module_name.startswith("otel_ai_cost.") else None
        cls = getattr(module, attribute, None) if module is not None else None
        instance = getattr(cls, "_instance", None)
        if instance is not None and instance.is_instrumented_by_opentelemetry:
            found.append(instance)
    return found


def register_processor(*_args: Any, **_kwargs: Any) -> Optional[AICostSpanProcessor]:
    """Add AICostSpanProcessor to the global SDK TracerProvider, configured from the environment.

    Returns the processor (None when otel-ai-cost is off or when there is no SDK provider). Never
    raises: a bad value or file is logged in one line and otel-ai-cost stays off. Idempotent: a
    second call on the same provider adds nothing and returns the first processor.
    """
    try:
        return _register()
    except Exception as exc:  # noqa: BLE001 - a bug of ours must not stop the application
        _logger.error("otel-ai-cost: could not register the processor; %s", OFF_NOTE, exc_info=True)
        switch_off(f"internal error: {exc!r}")
        return None


def _register() -> Optional[AICostSpanProcessor]:
    global _warned_no_sdk
    if _state.checked and _state.off is not None:
        return None  # check_configuration switched it off (and said why)
    settings, reason = _problem()
    if reason is not None or settings is None:
        switch_off(reason or "off")
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
    try:
        processor = AICostSpanProcessor(settings=settings)
    except ConfigError as exc:  # e.g. the budgets file of OTEL_AI_COST_CONFIG; the message names it
        in_file = settings.config_file and str(exc).startswith(settings.config_file)
        named = f"{ENV_CONFIG}: {exc}" if in_file else str(exc)
        switch_off(named)
        return None
    provider.add_span_processor(processor)
    _registered[provider] = processor
    add_ledger(provider, settings, processor.catalog)  # it prices other instrumentations' spans itself
    if settings.enrich_export:
        wrap_exporters(provider, processor.catalog)
    return processor


def add_ledger(provider: TracerProvider, settings: Settings, catalog: Any = None) -> Optional[Any]:
    """The call ledger (``OTEL_AI_COST_LEDGER``, on by default at ``default_ledger_url()``): a
    LedgerSpanExporter behind a SimpleSpanProcessor (its export only queues; it prices other
    instrumentations' spans with ``catalog`` on its writer thread). Never raises."""
    try:
        from .ledger import LedgerSpanExporter, default_ledger_url

        url = settings.ledger or default_ledger_url()
        if url.strip().lower() == "off":
            return None
        exporter = LedgerSpanExporter(url, retention_days=settings.ledger_retention_days,
                                      baggage_keys=settings.baggage_keys, catalog=catalog)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return exporter
    except Exception:  # noqa: BLE001 - no ledger, but the application and its cost attributes go on
        _logger.warning("otel-ai-cost: the call ledger could not be started; calls are not recorded in it",
                        exc_info=True)
        return None


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


def _wrapped(exporter: Any, catalog: Any) -> Optional[CostEnrichingSpanExporter]:
    """``exporter`` wrapped, or None when it is wrapped already or is the call ledger (which prices
    on its writer thread, not on the call's). (Any: the SDK types the batch processor's exporter as
    its internal ``Exporter`` protocol, the simple one's as SpanExporter.)"""
    from .ledger import LedgerSpanExporter

    if isinstance(exporter, (CostEnrichingSpanExporter, LedgerSpanExporter)):
        return None
    return CostEnrichingSpanExporter(exporter, catalog=catalog)
