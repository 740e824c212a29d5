"""How ``ResilientStore`` runs a store operation within a deadline: on a few worker threads, and how
it names a store's failure for the logs."""
from __future__ import annotations

import inspect
import os
import queue
import threading
from typing import Any, Callable, List, TypeVar, cast

T = TypeVar("T")


class DeadlineMissed(Exception):
    """The operation did not finish within the time it was given."""


class Runner:
    """A few daemon worker threads; ``run(fn, timeout)`` waits for ``fn()`` at most ``timeout`` seconds.

    A worker stuck in a hung store stays stuck (until the store's own socket timeout), so more
    workers start while all are busy, up to ``size``; daemon threads never hold up the exit.
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._jobs: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0
        self._pid = os.getpid()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
            if job is None:
                return
            fn, box, done = job
            try:
                box.append((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box.append((False, exc))
            done.release()

    def run(self, fn: Callable[[], T], timeout: float) -> T:
        if timeout <= 0:
            raise DeadlineMissed()
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's workers do not exist here
                self._jobs, self._threads, self._idle, self._pid = queue.SimpleQueue(), 0, 0, os.getpid()
            if self._idle == 0 and self._threads < self._size:
                self._threads += 1
                threading.Thread(target=self._work, name="otel-ai-cost-store", daemon=True).start()
        box: List[Any] = []
        done = threading.Lock()  # released by the worker: a cheaper hand-off than an Event
        done.acquire()
        self._jobs.put((fn, box, done))
        if not done.acquire(timeout=timeout):
            raise DeadlineMissed()
        ok, value = box[0]
        if ok:
            return cast(T, value)
        raise value

    def stop(self) -> None:
        with self._lock:
            for _ in range(self._threads):
                self._jobs.put(None)
            self._threads = 0


def run_inline(fn: Callable[[], T], budget: float) -> T:
    """``fn()`` on the calling thread (``ResilientStore`` mode ``store``): the store's own timeouts,
    set to the deadline, bound the operation; its timeout errors count as a missed deadline."""
    if budget <= 0:
        raise DeadlineMissed()
    try:
        return fn()
    except Exception as exc:
        if is_timeout(exc):
            raise DeadlineMissed() from exc
        raise


def describe(exc: BaseException) -> str:
    from ..errors import ConfigError

    text = str(exc).strip()
    if isinstance(exc, ConfigError) and text:
        return text  # names the file, the key and the reason already
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_timeout(exc: BaseException) -> bool:
    """A store's own timeout: redis-py's TimeoutError, the builtin one, SQLite's busy timeout."""
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":
        return True
    return "database is locked" in str(exc) or "timed out" in str(exc).lower()


def accepts_once(store: Any) -> bool:
    try:
        return "once" in inspect.signature(store.settle).parameters
    except (TypeError, ValueError):
        return False
