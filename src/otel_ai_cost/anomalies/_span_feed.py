"""The detector fed from every finished GenAI span: ours and other instrumentations'.

``AICostSpanProcessor._on_ending`` hands each ending span to ``SpanFeed.on_ending``. The SDK
(1.45) calls ``_on_ending`` after it set the end time and froze the attributes, but before the
span is handed to the other processors' ``on_end`` (and so to the exporters): what is written on
the span there is exported with it. The public setters refuse an ended span, so the findings are
written through the SDK's span internals (``_EndingSpan``); if those change, the findings still
go to the counter, the hook and the log, and one warning says the span could not take them.

Only spans of one model call are fed (``gen_ai.operation.name`` chat, text_completion,
generate_content, embeddings; agent and tool spans carry totals), and not those whose call is
counted on another span (``ai_cost.pricing.priced_on``) or that were refused before they were sent
(``error.type`` BudgetExceededError). A span without a cost yet (another instrumentation's, priced
at export by ``CostEnrichingSpanExporter``) is priced here with the same engine.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .. import _semconv as sc
from ._finding import Finding
from ._outputs import AnomalyMonitor, _log_once
from ._record import DEFAULT_DIMENSIONS, CallRecord

# The dimensions of a call's record: the attribution keys, and the agent name (runaway traces are
# compared with the finished traces of the same agent).
DIMENSIONS = DEFAULT_DIMENSIONS + (sc.GEN_AI_AGENT_NAME,)
INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_BLOCKED = "BudgetExceededError"


class _EndingSpan:
    """What ``AnomalyReporter`` writes to: an ending SDK span, whose public setters refuse writes
    once its end time is set. Writes go to the attributes and events the SDK exports."""

    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def is_recording(self) -> bool:
        return True

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        span = self._span
        with span._lock:  # noqa: SLF001 - see the module docstring
            bounded = span._attributes  # noqa: SLF001
            frozen = bounded._immutable  # noqa: SLF001
            bounded._immutable = False  # noqa: SLF001
            try:
                bounded._set_items(attributes)  # noqa: SLF001
            finally:
                bounded._immutable = frozen  # noqa: SLF001

    def add_event(self, name: str, attributes: Optional[Mapping[str, Any]] = None) -> None:
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.trace import Event

        span = self._span
        limits = span._limits  # noqa: SLF001
        event = Event(name, BoundedAttributes(limits.max_event_attributes, attributes,
                                              max_value_len=limits.max_attribute_length, immutable=True))
        with span._lock:  # noqa: SLF001
            span._events.append(event)  # noqa: SLF001


def _plain(span: Any) -> Mapping[str, Any]:
    """The span's attributes: the SDK span's own dict (read in place, a lookup there is several
    times faster than through its read-only views), else its public mapping."""
    attributes = getattr(getattr(span, "_attributes", None), "_dict", None)
    return attributes if isinstance(attributes, dict) else (span.attributes or {})


def writable(span: Any) -> Any:
    """The span itself while it records (a span not ended yet), else its ``_EndingSpan``."""
    return span if span.is_recording() else _EndingSpan(span)


class SpanFeed:
    """Feeds a monitor from ending spans; keeps the baseline saver, if any, until ``close``."""

    def __init__(self, monitor: AnomalyMonitor, catalog: Any = None, saver: Any = None, store: Any = None) -> None:
        self.monitor = monitor
        self.catalog = catalog
        self.saver = saver
        self.store = store  # the baseline store the feed opened (closed with it), or None
        self._resource_cache: Tuple[Any, Mapping[str, Any]] = (None, {})

    @property
    def detector(self) -> Any:
        return self.monitor.detector

    def on_ending(self, span: Any) -> List[Finding]:
        """Observe a finished span's call and write its findings on it. Never raises."""
        try:
            record = self.record(span)
            if record is None:
                return []
        except Exception:  # noqa: BLE001 - the call's span must end whatever happens here
            _log_once("building the anomaly record of a span")
            return []
        try:
            target = writable(span)
        except Exception:  # noqa: BLE001
            target = None
        try:
            return self.monitor.observe(record, target)  # the monitor catches the detector's errors itself
        except Exception:  # noqa: BLE001
            _log_once("reporting anomaly findings")
            return []

    def record(self, span: Any) -> Optional[CallRecord]:
        """The call record of a finished GenAI inference span, or None for any other span."""
        attributes = _plain(span)
        if not attributes or attributes.get(sc.GEN_AI_OPERATION_NAME) not in INFERENCE_OPERATIONS:
            return None
        if sc.AI_COST_PRICING_PRICED_ON in attributes or attributes.get(sc.ERROR_TYPE) == _BLOCKED:
            return None
        resource = self._resource(span.resource)
        context = span.get_span_context()
        end = span.end_time
        record = CallRecord.from_attributes(
            attributes, resource, trace_id=format(context.trace_id, "032x") if context.trace_id else None,
            time=end / 1e9 if end else time.time(), dimensions=DIMENSIONS,
        )
        if record is not None and record.cost is None and sc.AI_COST_PRICING_STATUS not in attributes:
            cost = self._price(attributes, span.start_time)
            if cost is not None:
                record = replace(record, cost=cost)
        return record

    def _resource(self, resource: Any) -> Mapping[str, Any]:
        """A resource's attributes as a dict (one resource per tracer provider: the last is kept)."""
        if resource is None:
            return {}
        cached = self._resource_cache
        if cached[0] is not resource:
            cached = self._resource_cache = (resource, dict(resource.attributes))
        return cached[1]

    def _price(self, attributes: Mapping[str, Any], start_time: Optional[int]) -> Optional[float]:
        """Another instrumentation's call, priced as the exporter path prices it (processor.py)."""
        from .._span_pricing import bounded_span_usage, span_cost_attributes
        from ..cost import usage_from_attributes

        usage = usage_from_attributes(attributes)
        if usage is None:
            return None
        bounded, _ = bounded_span_usage(attributes, usage, self.catalog)
        added: Dict[str, Any] = span_cost_attributes(attributes, bounded, self.catalog, start_time) or {}
        amount = added.get(sc.GEN_AI_USAGE_COST_AMOUNT)
        return float(amount) if isinstance(amount, (int, float)) else None

    def close(self) -> None:
        """Save the baselines one last time (and stop the saver's thread). Never raises."""
        saver, store, self.saver, self.store = self.saver, self.store, None, None
        try:
            if saver is not None:
                saver.close()
            if store is not None:
                store.close()
        except Exception:  # noqa: BLE001
            _log_once("saving the anomaly baselines at shutdown")
