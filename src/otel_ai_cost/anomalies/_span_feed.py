"""The detector fed from every finished GenAI span: ours and other instrumentations'.

On the call's path, ``AICostSpanProcessor._on_ending`` hands each ending span to
``SpanFeed.on_ending``, which only queues the span of one model call (``gen_ai.operation.name``
chat, text_completion, generate_content, embeddings; agent and tool spans carry totals): one
attribute lookup and an append. An ended span's attributes no longer change, so the feed's drain
thread reads them later: it builds the call's record (pricing a span without a cost yet, another
instrumentation's, with the exporter path's engine), runs the detector's rules in the calls'
order, and reports the findings (``AnomalyReporter``: the counter, the ``on_anomaly`` hook, the
log, and the ``ai_cost.anomaly`` span: see ``finding_span``). The thread runs ``DRAIN_DELAY``
seconds after a span is queued on an empty queue, and at ``flush`` (``force_flush``) and
``close``. Spans whose call is counted on another span (``ai_cost.pricing.priced_on``) and calls
refused before they were sent (``error.type`` BudgetExceededError) are not fed.

A budget policy acting on findings (``on_anomaly``) needs the queued calls' findings before the
next call is decided: its gate calls ``catch_up`` (the per-trace rules: runaway traces, retry
storms) or ``flush`` (every rule, for a spike's downgrade) first, on that call's path.
"""
from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from typing import Any, Deque, Dict, List, Mapping, Optional, Tuple

from .. import _semconv as sc
from ._finding import Finding
from ._outputs import AnomalyMonitor, _log_once
from ._record import DEFAULT_DIMENSIONS, CallRecord

# The dimensions of a call's record: the attribution keys, and the agent name (runaway traces are
# compared with the finished traces of the same agent).
DIMENSIONS = DEFAULT_DIMENSIONS + (sc.GEN_AI_AGENT_NAME,)
INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_BLOCKED = "BudgetExceededError"
DRAIN_DELAY = 0.02  # seconds from a span queued on an empty queue to the drain thread's run
MAX_QUEUED = 10_000  # spans queued at most: past it, the call that ends runs the queued rules itself


def _plain(span: Any) -> Mapping[str, Any]:
    """The span's attributes: the SDK span's own dict (read in place, a lookup there is several
    times faster than through its read-only views), else its public mapping."""
    attributes = getattr(getattr(span, "_attributes", None), "_dict", None)
    return attributes if isinstance(attributes, dict) else (span.attributes or {})


class SpanFeed:
    """Feeds a monitor's detector from ending spans, off the calls' path (see the module docstring).
    Keeps the baseline saver, if any, until ``close``."""

    def __init__(self, monitor: AnomalyMonitor, catalog: Any = None, saver: Any = None, store: Any = None) -> None:
        self.monitor = monitor
        self.catalog = catalog
        self.saver = saver
        self.store = store  # the baseline store the feed opened (closed with it), or None
        self._resource_cache: Tuple[Any, Mapping[str, Any]] = (None, {})
        self._spans: Deque[Any] = deque()  # ended spans whose rules have not run
        # calls through the per-trace rules, waiting for the per-key ones: (record, new run, span, findings)
        self._traced: Deque[Tuple[CallRecord, bool, Any, List[Finding]]] = deque()
        self._trace_stage, self._key_stage = threading.Lock(), threading.Lock()
        self._drainer: Optional[threading.Thread] = None
        self._stop, self._wake = threading.Event(), threading.Event()
        self._closed = False
        self.drain_cpu_ns = 0  # CPU time the drain thread spent, and the calls it ran (benchmarks/)
        self.drained = 0
        _FEEDS.add(self)
        # At exit, before the tracer provider's own exit hook (registered earlier, run later) shuts
        # its processors down: the queued calls' findings are still exported.
        atexit.register(_flush_at_exit, weakref.ref(self))

    @property
    def detector(self) -> Any:
        return self.monitor.detector

    def on_ending(self, span: Any) -> None:
        """Queue an ending span of one model call for the detector. Never raises."""
        try:
            if _plain(span).get(sc.GEN_AI_OPERATION_NAME) not in INFERENCE_OPERATIONS:
                return
            spans = self._spans
            spans.append(span)
            if self._closed or len(spans) > MAX_QUEUED:
                self.flush()  # the drain thread is gone, or cannot keep up: memory stays bounded
            elif len(spans) == 1:  # (the first span queued since the last drain)
                if self._drainer is None:
                    self._start_drainer()
                self._wake.set()
        except Exception:  # noqa: BLE001 - the call's span must end whatever happens here
            _log_once("queueing a span for the anomaly detector")

    def catch_up(self) -> None:
        """Run the per-trace rules of every queued span (so ``should_block`` is current). Never raises."""
        spans, traced, detector = self._spans, self._traced, self.detector
        with self._trace_stage:
            while spans:
                span = spans.popleft()
                try:
                    record = self.record(span)
                    if record is None:
                        continue
                except Exception:  # noqa: BLE001
                    _log_once("building the anomaly record of a span")
                    continue
                try:
                    new_run, found = detector.observe_trace(record)
                except Exception:  # noqa: BLE001 - the detector must never break the call
                    _log_once("anomaly detector")
                    continue
                traced.append((record, new_run, span, found))

    def flush(self) -> None:
        """Run every rule of every queued span now and report the findings. Never raises."""
        self.catch_up()
        traced, detector, reporter = self._traced, self.detector, self.monitor.reporter
        with self._key_stage:
            while traced:
                record, new_run, span, found = traced.popleft()
                try:
                    found = detector.observe_keys(record, new_run) + found
                except Exception:  # noqa: BLE001
                    _log_once("anomaly detector")
                if found:
                    report(reporter, found, span)

    def record(self, span: Any) -> Optional[CallRecord]:
        """The call record of a finished GenAI inference span, or None for any other span."""
        attributes = _plain(span)
        if not attributes or attributes.get(sc.GEN_AI_OPERATION_NAME) not in INFERENCE_OPERATIONS:
            return None
        if sc.AI_COST_PRICING_PRICED_ON in attributes or attributes.get(sc.ERROR_TYPE) == _BLOCKED:
            return None
        trace_id, end = span.get_span_context().trace_id, span.end_time
        record = CallRecord.from_attributes(
            attributes, self._resource(span.resource), trace_id=format(trace_id, "032x") if trace_id else None,
            time=end / 1e9 if end else time.time(), dimensions=DIMENSIONS)
        if record is not None and record.cost is None and sc.AI_COST_PRICING_STATUS not in attributes:
            record.cost = self._price(attributes, span.start_time)
        return record

    def _resource(self, resource: Any) -> Mapping[str, Any]:
        """The resource's attributes as a dict (one resource per tracer provider: the last is kept)."""
        cached = self._resource_cache
        if cached[0] is not resource:
            cached = self._resource_cache = (resource, dict(resource.attributes) if resource is not None else {})
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

    # -- the drain thread ---------------------------------------------------------------------

    def _start_drainer(self) -> None:
        thread = threading.Thread(target=self._drain_loop, name="otel-ai-cost-anomalies", daemon=True)
        self._drainer = thread
        thread.start()

    def _drain_loop(self) -> None:
        stop, wake = self._stop, self._wake
        while not stop.is_set():
            wake.wait(1.0)
            wake.clear()
            if stop.wait(DRAIN_DELAY):  # (lets a batch gather)
                return
            if self._spans:
                queued, cpu = len(self._spans), time.thread_time_ns()
                self.flush()
                self.drain_cpu_ns += time.thread_time_ns() - cpu
                self.drained += queued

    def _after_fork(self) -> None:
        """In a forked child: no drain thread (started again at its first queued span), new locks,
        none of the parent's queued spans (the parent runs them)."""
        self._drainer, self._stop, self._wake = None, threading.Event(), threading.Event()
        self._trace_stage, self._key_stage = threading.Lock(), threading.Lock()
        self._spans.clear()
        self._traced.clear()

    def close(self) -> None:
        """Run the queued rules, save the baselines one last time (and stop the threads). Never raises."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        drainer, self._drainer = self._drainer, None
        if drainer is not None and drainer is not threading.current_thread():
            drainer.join(timeout=5)
        self.flush()
        saver, store, self.saver, self.store = self.saver, self.store, None, None
        try:
            if saver is not None:
                saver.close()
            if store is not None:
                store.close()
        except Exception:  # noqa: BLE001
            _log_once("saving the anomaly baselines at shutdown")


def report(reporter: Any, findings: List[Finding], span: Any) -> None:
    """Send the findings of the call of the ended ``span`` to the reporter, with an
    ``ai_cost.anomaly`` span for the span attributes and events (see ``finding_span``)."""
    target = finding_span(span)
    try:
        reporter.report(findings, target)
    finally:
        if target is not None:
            try:
                target.end(end_time=span.end_time)
            except Exception:  # noqa: BLE001
                _log_once("ending the ai_cost.anomaly span")


def finding_span(span: Any) -> Any:
    """A started ``ai_cost.anomaly`` span, child of the ended SDK ``span`` and starting at its end,
    sent through the same span processors (and so exporters) as ``span``; None when ``span`` is
    not an SDK span (the findings then go to the counter, the hook and the log only)."""
    processor = getattr(span, "_span_processor", None)  # noqa: SLF001 - the call's provider's processors
    limits = getattr(span, "_limits", None)  # noqa: SLF001
    if processor is None or limits is None:
        return None
    try:
        from opentelemetry.trace import NonRecordingSpan, SpanKind, set_span_in_context

        tracer = _tracer(processor, span.resource, limits)
        return tracer.start_span(sc.AI_COST_ANOMALY, set_span_in_context(NonRecordingSpan(span.get_span_context())),
                                 kind=SpanKind.INTERNAL, start_time=span.end_time)
    except Exception:  # noqa: BLE001
        _log_once("starting the ai_cost.anomaly span")
        return None


_TRACERS: "weakref.WeakKeyDictionary[Any, Tuple[Any, Any, Any]]" = weakref.WeakKeyDictionary()


def _tracer(processor: Any, resource: Any, limits: Any) -> Any:
    """An SDK tracer on a provider's span processor (the provider is not reachable from its spans),
    sampling as the call's span was (parent-based), one per processor, resource and limits."""
    cached = _TRACERS.get(processor)
    if cached is not None and cached[0] is resource and cached[1] is limits:
        return cached[2]
    from opentelemetry.sdk.trace import Tracer
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from .._version import package_version

    tracer = Tracer(ParentBased(ALWAYS_ON), resource, processor, RandomIdGenerator(), None,  # type: ignore[arg-type]
                    limits, InstrumentationScope("otel_ai_cost.anomalies", package_version()))
    _TRACERS[processor] = (resource, limits, tracer)
    return tracer


_FEEDS: "weakref.WeakSet[SpanFeed]" = weakref.WeakSet()


def _flush_at_exit(ref: "weakref.ref[SpanFeed]") -> None:
    feed = ref()
    if feed is not None and not feed._closed:  # noqa: SLF001
        feed.flush()


def _reset_after_fork() -> None:
    for feed in list(_FEEDS):
        feed._after_fork()  # noqa: SLF001


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
