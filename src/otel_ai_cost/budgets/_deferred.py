"""Settles kept off the call's path: queued, then sent with the next reserve or by a background flusher.

A settle only lowers a call's count from its hold (the estimate, reserved atomically before the
call) to its actual cost, so sending it a little later never lets a budget overspend: until it
lands, the hold counts. What must not happen is losing it; so the queue is flushed

- with the next reserve of this process (in the same round trip or transaction: one per call),
- by a background thread at most ``interval`` seconds after a settle was queued,
- before every read of the store (spent, holds, ledger, ...: a process reads its own settles),
- on ``flush()`` (the processor's ``force_flush``), ``close()`` and at interpreter exit.

A batch is sent once by the queue. One that fails (the store down or out of time) may have landed
before the connection broke, so what becomes of it is not the queue's to decide blindly:

- with a failure handler (``on_failed``: ``ResilientStore`` gives its journal), the settles made with
  ``once`` are handed to it, and the journal replays each exactly once when the store is back: a
  settle with ``once`` that landed already is a no-op in every store (its reservation is remembered);
- otherwise (or for a settle without ``once``, which a replay could count twice) it is logged, and its
  holds expire: the ``on_expired_hold`` policy (by default ``charge_estimate``) then counts each hold's
  amount, as it does for a process killed with settles queued. This is what a settle sent at once
  does when it fails outside a ``ResilientStore``, too.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Any, Callable, Dict, Generic, List, NamedTuple, Optional, Tuple, TypeVar

_logger = logging.getLogger("otel_ai_cost.budgets")

T = TypeVar("T")

_IDLE = 30.0  # seconds without a settle after which the flusher thread ends
DEFAULT_INTERVAL = 0.05  # seconds a queued settle waits for a reserve to carry it, at most


class Settle(NamedTuple):
    """A queued settle as ``settle()`` was given it, for a failure handler (a journal)."""

    reservation_id: str
    actual: Dict[Tuple[str, str, str], int]
    attributes: Dict[str, Any]
    once: bool


# What a store does with settles of a batch that failed: ``(settles, error)``; raises if it cannot.
FailureHandler = Callable[[List[Settle], BaseException], None]

_queues: "weakref.WeakSet[SettleQueue[object]]" = weakref.WeakSet()


def _flush_all() -> None:  # at interpreter exit
    for queue in list(_queues):
        queue.close()


atexit.register(_flush_all)


class SettleQueue(Generic[T]):
    """Queued settles of one store. ``send(items)`` sends a batch (raising if the store failed)."""

    def __init__(self, send: Callable[[List[T]], None], name: str, interval: float = DEFAULT_INTERVAL,
                 settle_of: Optional[Callable[[T], Settle]] = None, batch: Optional[int] = None) -> None:
        self._send = send
        self._batch = batch  # the most settles one send takes (None: all)
        self._settle_of = settle_of
        self.on_failed: Optional[FailureHandler] = None  # see the module doc
        self.name = name
        self.interval = interval
        self._items: List[T] = []
        self._wake = threading.Condition(threading.Lock())
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._stop = threading.Event()
        self._sending = threading.Lock()  # held while a batch is on its way
        self._failing = False
        self._pid = os.getpid()
        _queues.add(self)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._items)

    def _forked(self) -> None:
        # A child of a fork: the parent sends what it queued; the child starts afresh.
        self._pid = os.getpid()
        self._items = []
        self._wake = threading.Condition(threading.Lock())
        self._thread = None
        self._stop = threading.Event()
        self._sending = threading.Lock()

    def add(self, item: T) -> None:
        if self._pid != os.getpid():
            self._forked()
        if self._closed:
            self._send([item])  # closed: no flusher left to send it later
            return
        with self._wake:
            self._items.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"otel-ai-cost settles ({self.name})",
                                                daemon=True)
                self._thread.start()
            elif len(self._items) == 1:
                self._wake.notify()

    def take(self) -> List[T]:
        """Everything queued, for the caller to send. Waits for a batch the flusher is sending: what this
        process settled lands before what it sends next. In a child of a fork: nothing of the parent's."""
        if self._pid != os.getpid():
            self._forked()
        with self._sending:
            return self._take()

    def _take(self) -> List[T]:
        if not self._items:
            return []
        with self._wake:
            items, self._items = self._items, []
        return items

    def failed(self, items: List[T], error: BaseException) -> None:
        """A batch (or some settles of it) failed: the settles with ``once`` go to the failure handler if
        there is one; the rest are lost (their holds expire: see the module doc)."""
        handler, settle_of = self.on_failed, self._settle_of
        if handler is not None and settle_of is not None:
            settles = [settle_of(item) for item in items]
            replayable = [s for s in settles if s.once]
            if replayable:
                try:
                    handler(replayable, error)
                except Exception as exc:  # noqa: BLE001 - the handler (journal) failed too: lost
                    self.lost(len(replayable), exc)
            if len(replayable) < len(settles):
                self.lost(len(settles) - len(replayable), error)
            return
        self.lost(len(items), error)

    def lost(self, count: int, error: BaseException) -> None:
        """Say that ``count`` settles failed (logged at the first failure of a run of them)."""
        if not self._failing:
            self._failing = True
            _logger.warning(
                "otel-ai-cost: budget store %s: %d queued settles could not be sent (%s); their holds count as"
                " spend when they expire (on_expired_hold)", self.name, count, error)
        else:
            _logger.debug("otel-ai-cost: budget store %s: %d more settles lost", self.name, count)

    def sent(self) -> None:
        if self._failing:
            self._failing = False
            _logger.warning("otel-ai-cost: budget store %s takes the queued settles again", self.name)

    def flush(self) -> None:
        """Send what is queued now. Raises if the store failed (that batch went to the failure handler, or
        is lost: see the module doc)."""
        if self._pid != os.getpid():
            self._forked()
        with self._sending:
            items = self._take()
            if not items:
                return
            step = self._batch or len(items)
            for start in range(0, len(items), step):
                try:
                    self._send(items[start:start + step])
                except BaseException as exc:
                    self.failed(items[start:], exc)  # the batches before it landed
                    raise
            self.sent()

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._items and not self._closed:
                    self._wake.wait(_IDLE)
                if self._closed:
                    return
                if not self._items:  # idle: end (the next settle starts another), so a store dropped
                    self._thread = None  # without close() does not keep a thread
                    return
            # Let the next reserve carry them; send them if none came within the interval.
            if self._stop.wait(self.interval):
                return  # closed: close() sends them
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - handed on or logged by flush
                pass

    def close(self) -> None:
        """Stop the flusher and send what is queued (a failure is handed on or logged, as in ``flush``)."""
        with self._wake:
            self._closed = True
            self._stop.set()
            self._wake.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(timeout=5)
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - handed on or logged by flush
            pass


class QueuedSettles(Generic[T]):
    """``defer_settles``, ``on_failed_settles`` and ``flush`` for a store whose settles may be queued:
    ``_queue`` (None: each settle is sent at once). The store calls ``_start_queue`` with how to send a
    batch, its name and how to read a queued item back as the settle it was given."""

    _queue: Optional[SettleQueue[T]] = None
    _on_failed: Optional[FailureHandler] = None

    def _start_queue(self, interval: Optional[float], send: Callable[[List[T]], None], name: str,
                     settle_of: Callable[[T], Settle], batch: Optional[int] = None) -> None:
        """Queue settles with ``interval`` (None: send each at once), sent by ``send`` in batches of at most
        ``batch``."""
        self._queue_send, self._queue_name, self._settle_of, self._queue_batch = send, name, settle_of, batch
        self._queue_interval = DEFAULT_INTERVAL if interval is None else float(interval)
        self._queue = None if interval is None else self._new_queue(self._queue_interval)

    def _new_queue(self, interval: float) -> SettleQueue[T]:
        queue = SettleQueue(self._queue_send, self._queue_name, interval=interval, settle_of=self._settle_of,
                            batch=self._queue_batch)
        queue.on_failed = self._on_failed
        return queue

    @property
    def settles_queued(self) -> bool:
        """True when settles are queued off the call's path (``settle`` then only appends to a list)."""
        return self._queue is not None

    def defer_settles(self, enabled: bool) -> None:
        """Queue settles off the call's path (True), or send each at once (False: what was queued is sent
        now)."""
        if enabled and self._queue is None:
            self._queue = self._new_queue(self._queue_interval)  # the store's settle_interval, if it had one
        elif not enabled and self._queue is not None:
            queue, self._queue = self._queue, None
            queue.close()

    def on_failed_settles(self, handler: Optional[FailureHandler]) -> None:
        """Hand the settles (made with ``once``) of a queued batch that failed to ``handler`` (ResilientStore:
        its journal, which replays them exactly once) instead of leaving their holds to expire."""
        self._on_failed = handler
        if self._queue is not None:
            self._queue.on_failed = handler

    def flush(self) -> None:
        """Send the queued settles now (raises if the store fails: they go to the failure handler, or are
        lost, see the module doc)."""
        if self._queue is not None:
            self._queue.flush()
