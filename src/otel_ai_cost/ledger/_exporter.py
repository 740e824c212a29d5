"""``LedgerSpanExporter``: a span exporter that writes one ledger row per priced GenAI call.

``export`` only puts the GenAI spans on a bounded queue: it never waits for the disk, and does no
more work on the call's thread than a look at one attribute. A background thread takes the spans
off the queue, prices the ones another instrumentation left without cost (as
``CostEnrichingSpanExporter`` does), turns them into rows and writes them in batches, one
transaction per batch. When the queue is full, or the disk fails, the rows are dropped: counted in
``dropped`` (and the ``ai_cost.ledger.dropped_rows`` metric, by reason, when a meter provider is
given) and said in ONE warning line per exporter; the application and its calls go on.
"""
from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import _semconv as sc
from .._span_pricing import enrich_span
from .._version import package_version
from ..config import DEFAULT_BAGGAGE_KEYS
from ._row import to_row
from ._store import connect, parse_ledger_url, purge, write_rows

if TYPE_CHECKING:
    from ..pricing import Catalog

_logger = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 10000
DEFAULT_BATCH_SIZE = 512
DEFAULT_FLUSH_INTERVAL = 1.0
PURGE_EVERY = 3600.0
_STOP = object()

# Every live exporter, restarted in a forked child (a pre-fork server's worker): the child has no
# writer thread, and a lock the parent's writer held at the fork would never be released there.
_exporters: "weakref.WeakSet[LedgerSpanExporter]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for exporter in list(_exporters):
        exporter._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LedgerSpanExporter(SpanExporter):
    """Write every priced GenAI call span to the SQLite call ledger at ``url`` (``sqlite:///path``).

    Add it after ``AICostSpanProcessor`` with a ``SimpleSpanProcessor`` (its ``export`` only queues)::

        provider.add_span_processor(AICostSpanProcessor())
        provider.add_span_processor(SimpleSpanProcessor(LedgerSpanExporter("sqlite:///var/lib/app/calls.db")))

    ``retention_days``: rows of calls older than that are deleted (at start, then hourly); None keeps
    all. ``baggage_keys``: the attribution keys copied onto spans that the row keeps (besides
    tenant.id, enduser.id, ai_cost.cost_center and every ``ai_cost.`` baggage key).
    ``meter_provider``: where the ``ai_cost.ledger.dropped_rows`` counter goes (None: the global one).
    ``catalog``: prices the spans of other instrumentations that carry usage but no cost (None: the
    bundled catalog), on the writer thread.
    """

    def __init__(
        self,
        url: str,
        retention_days: Optional[float] = None,
        baggage_keys: Sequence[str] = DEFAULT_BAGGAGE_KEYS,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        meter_provider: Optional[MeterProvider] = None,
        catalog: Optional["Catalog"] = None,
    ) -> None:
        path = parse_ledger_url(url, "LedgerSpanExporter(url)")
        if path is None:
            raise ValueError("LedgerSpanExporter(url='off'): to turn the ledger off, do not add the exporter")
        if retention_days is not None and retention_days <= 0:
            raise ValueError(f"retention_days: expected a positive number of days, got {retention_days!r}")
        self.path = path
        self.retention_days = retention_days
        self._baggage_keys = tuple(baggage_keys)
        self._catalog = catalog
        self._queue_size = max(1, queue_size)
        self._batch_size = max(1, batch_size)
        self._interval = flush_interval
        self._dropped = 0
        self._dropped_by: Dict[str, int] = {}  # ai_cost.ledger.drop_reason -> rows
        self._written = 0
        self._lock = threading.Lock()
        self._warned = False
        self._closed = False
        self._connection: Optional[sqlite3.Connection] = None
        self._last_purge = 0.0
        get_meter("otel_ai_cost.ledger", package_version(), meter_provider).create_observable_counter(
            sc.AI_COST_LEDGER_DROPPED_ROWS, callbacks=[self._observe_dropped],
            unit=sc.AI_COST_LEDGER_DROPPED_ROWS_UNIT,
            description="Rows of the call ledger dropped instead of written, by reason.",
        )
        self._start()
        _exporters.add(self)

    def _start(self) -> None:
        self._connection = None
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=self._queue_size)
        self._thread = threading.Thread(target=self._run, name="otel-ai-cost-ledger", daemon=True)
        self._thread.start()

    def _forked(self) -> None:
        """In a forked child: new lock, queue and writer (what the parent had queued is the parent's)."""
        self._lock = threading.Lock()
        if not self._closed:
            self._start()

    @property
    def dropped(self) -> int:
        """Rows dropped: the queue was full, or the disk failed."""
        return self._dropped

    @property
    def written(self) -> int:
        """Rows committed to the file (a span already there counts, as it is kept once)."""
        return self._written

    # --- the call's path -------------------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        for span in spans:
            attributes = span.attributes
            if not attributes or (sc.GEN_AI_OPERATION_NAME not in attributes
                                  and sc.AI_COST_ANOMALY_TYPE not in attributes):
                continue  # not a GenAI span (nor the findings of a call: see _anomaly): never a row
            try:
                self._queue.put_nowait(span)
            except queue.Full:
                self._drop(1, sc.AiCostLedgerDropReasonValues.QUEUE_FULL,
                           f"the queue is full ({self._queue.maxsize} spans waiting)")
        return SpanExportResult.SUCCESS

    def _row(self, span: ReadableSpan) -> Optional[Tuple[Any, ...]]:
        """The row of a queued span (priced first if it needs it), None when it is no call; a span
        that cannot be read is dropped (counted)."""
        try:
            return to_row(enrich_span(span, self._catalog), self._baggage_keys)
        except Exception:  # noqa: BLE001 - a bug of ours must not stop the rows of other spans
            _logger.debug("otel-ai-cost: ledger could not read a span", exc_info=True)
            self._drop(1, sc.AiCostLedgerDropReasonValues.UNREADABLE_SPAN, "a span could not be read")
            return None

    def _drop(self, count: int, reason: str, why: str) -> None:
        with self._lock:
            self._dropped += count
            self._dropped_by[reason] = self._dropped_by.get(reason, 0) + count
            warn = not self._warned
            self._warned = True
        if warn:
            _logger.warning(
                "otel-ai-cost: call ledger %s: dropping rows (%s); the application goes on, further drops are only "
                "counted (LedgerSpanExporter.dropped)", self.path, why,
            )

    def _observe_dropped(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = list(self._dropped_by.items())
        return [Observation(n, {sc.AI_COST_LEDGER_DROP_REASON: reason}) for reason, n in counts]

    # --- the writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: List[Tuple[Any, ...]] = []
            marks: List[Tuple[str, str, str]] = []  # (anomaly type, trace id, span id) of a call
            waiters: List[threading.Event] = []
            try:
                item = self._queue.get(timeout=self._interval)
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                elif item.name == sc.AI_COST_ANOMALY and item.parent is not None:
                    marks.append(_anomaly(item))
                else:
                    row = self._row(item)
                    if row is not None:
                        batch.append(row)
                if len(batch) >= self._batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if batch or marks:
                self._write(batch, marks)
            self._maybe_purge()
            for waiter in waiters:
                waiter.set()
        if self._connection is not None:
            try:
                self._connection.close()
            except sqlite3.Error:
                pass

    def _write(self, batch: List[Tuple[Any, ...]], marks: Sequence[Tuple[str, str, str]] = ()) -> None:
        try:
            if self._connection is None:
                self._connection = connect(self.path)
            write_rows(self._connection, batch, marks)
            self._written += len(batch)
        except Exception as exc:  # noqa: BLE001 - a failing disk drops the batch, never the app
            self._drop(len(batch), sc.AiCostLedgerDropReasonValues.WRITE_FAILED, f"cannot write: {exc}")
            if self._connection is not None:
                try:
                    self._connection.close()
                except sqlite3.Error:
                    pass
                self._connection = None

    def _maybe_purge(self) -> None:
        if self.retention_days is None or self._connection is None:
            return
        now = time.time()
        if now - self._last_purge < PURGE_EVERY:
            return
        self._last_purge = now
        try:
            purge(self._connection, self.retention_days, now)
        except sqlite3.Error:
            _logger.debug("otel-ai-cost: call ledger purge failed", exc_info=True)

    # --- flush and shutdown ----------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until the rows queued before this call are written (or dropped)."""
        if self._closed or not self._thread.is_alive():
            return False
        done = threading.Event()
        deadline = time.monotonic() + timeout_millis / 1000
        while True:
            try:
                self._queue.put(done, timeout=max(0.0, deadline - time.monotonic()))
                break
            except queue.Full:
                return False
        return done.wait(max(0.0, deadline - time.monotonic()))

    def shutdown(self) -> None:
        if self._closed:
            return
        self.force_flush()
        self._closed = True
        try:
            self._queue.put(_STOP, timeout=5)
        except queue.Full:
            return
        self._thread.join(timeout=10)


def _anomaly(span: ReadableSpan) -> Tuple[str, str, str]:
    """An ``ai_cost.anomaly`` span (the anomaly detector's findings on a call, made after the call's
    span ended): its type, and the call's trace and span ids (its parent's), for the call's row."""
    parent = span.parent
    assert parent is not None
    return (str((span.attributes or {}).get(sc.AI_COST_ANOMALY_TYPE)), format(parent.trace_id, "032x"),
            format(parent.span_id, "016x"))
