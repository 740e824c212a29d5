"""Settles kept off the call's path: queued, then sent with the next reserve or by a background flusher.

A settle only lowers a call's count from its hold (the estimate, reserved atomically before the
call) to its actual cost, so sending it a little later never lets a budget overspend: until it
lands, the hold counts. What must not happen is losing it; so the queue is flushed

- with the next reserve of this process (in the same round trip or transaction: one per call),
- by a background thread at most ``interval`` seconds after a settle was queued,
- before every read of the store (spent, holds, ledger, ...: a process reads its own settles),
- on ``flush()`` (the processor's ``force_flush``), ``close()`` and at interpreter exit.

A batch is sent once. One that fails (the store down or out of time) is not sent again: it may have
landed before the connection broke, and a settle counted twice would over-count. It is logged, and
its holds expire: the ``on_expired_hold`` policy (by default ``charge_estimate``) then counts each
hold's amount, as it does for a process killed with settles queued. This is what a settle sent at
once does when it fails, too.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Callable, Generic, List, Optional, TypeVar

_logger = logging.getLogger("otel_ai_cost.budgets")

T = TypeVar("T")

_IDLE = 30.0  # seconds without a settle after which the flusher thread ends
DEFAULT_INTERVAL = 0.05  # seconds a queued settle waits for a reserve to carry it, at most

_queues: "weakref.WeakSet[SettleQueue[object]]" = weakref.WeakSet()


def _flush_all() -> None:  # at interpreter exit
    for queue in list(_queues):
        queue.close()


atexit.register(_flush_all)


class SettleQueue(Generic[T]):
    """Queued settles of one store. ``send(items)`` sends a batch (raising if the store failed)."""

    def __init__(self, send: Callable[[List[T]], None], name: str, interval: float = DEFAULT_INTERVAL) -> None:
        self._send = send
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
        process settled lands before what it sends next."""
        with self._sending:
            return self._take()

    def _take(self) -> List[T]:
        if not self._items:
            return []
        with self._wake:
            items, self._items = self._items, []
        return items

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
        """Send what is queued now. Raises if the store failed (that batch is lost: see the module doc)."""
        if self._pid != os.getpid():
            self._forked()
        with self._sending:
            items = self._take()
            if not items:
                return
            try:
                self._send(items)
            except BaseException as exc:
                self.lost(len(items), exc)
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
            except Exception:  # noqa: BLE001 - logged by flush; the holds expire
                pass

    def close(self) -> None:
        """Stop the flusher and send what is queued (a failure is logged: the holds then expire)."""
        with self._wake:
            self._closed = True
            self._stop.set()
            self._wake.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(timeout=5)
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - logged by flush; the holds expire
            pass


class QueuedSettles(Generic[T]):
    """``defer_settles`` and ``flush`` for a store whose settles may be queued: ``_queue`` (None: each
    settle is sent at once). The store calls ``_start_queue`` with how to send a batch and its name."""

    _queue: Optional[SettleQueue[T]] = None

    def _start_queue(self, interval: Optional[float], send: Callable[[List[T]], None], name: str) -> None:
        """Queue settles with ``interval`` (None: send each at once), sent in batches by ``send``."""
        self._queue_send, self._queue_name = send, name
        self._queue = None if interval is None else SettleQueue(send, name, interval=float(interval))

    def defer_settles(self, enabled: bool) -> None:
        """Queue settles off the call's path (True), or send each at once (False: what was queued is sent
        now). A wrapper that must see each settle's failure (ResilientStore, to journal it) turns it off."""
        if enabled and self._queue is None:
            self._start_queue(DEFAULT_INTERVAL, self._queue_send, self._queue_name)
        elif not enabled and self._queue is not None:
            queue, self._queue = self._queue, None
            queue.close()

    def flush(self) -> None:
        """Send the queued settles now (raises if the store fails: they stay queued)."""
        if self._queue is not None:
            self._queue.flush()
