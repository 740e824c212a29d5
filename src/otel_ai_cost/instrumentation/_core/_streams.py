"""Stream proxies, and the reaper that ends the spans of streams nobody closed.

A streamed call's span ends exactly once, with what the user read (never a chunk more):

- when the stream is exhausted, fails, or is closed: ``close()`` / ``aclose()``, ``with`` /
  ``async with`` exit; synchronously, before ``close()`` returns, so the budget hold is settled
  when the caller's next call is checked;
- when the stream is dropped unclosed. A proxy whose last reference goes away (``del``, a closed
  generator of the SDK that was iterating it, as google-genai's ``generate_content_stream`` does)
  is ended at once, in the thread that dropped it. A proxy dropped inside a reference cycle is
  ended when the garbage collector frees it, and not later than the idle bound: the reaper thread
  looks at the streams idle for ``idle_timeout`` seconds (no chunk read, no read in progress) and
  runs one ``gc.collect()`` for them (at most one per ``idle_timeout``); the ones that were garbage
  are ended there, the ones still referenced stay open (the user may read on). So the span of a
  dropped stream ends within ``2 * idle_timeout`` plus one tick (default 30 s: within about 65 s),
  without anyone calling ``gc.collect()``.

Ending a span settles the budget and records metrics, which take locks (the budget store, the span
processor, the metrics SDK). A finalizer that runs inside the garbage collector may run on any
thread, at any allocation, also while that thread holds one of those locks; so a finalizer running
during a collection (``gc.callbacks`` marks the collecting thread) only queues the end for the
reaper thread, while a finalizer run by a plain reference drop (outside any collection) ends the span
in place.
"""
from __future__ import annotations

import gc
import queue
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import wrapt

from ... import _semconv as sc
from ...cost import Usage
from ._estimate import estimated_usage
from ._log import log_once
from ._operation import Operation, Outcome
from ._stream_errors import failed_outcome, provider_error_type

DEFAULT_IDLE_TIMEOUT = 30.0

# ---------------------------------------------------------------------------------------------
# Is the current thread inside a garbage collection?

_collecting_thread: Optional[int] = None


def _on_gc(phase: str, info: Dict[str, Any]) -> None:
    global _collecting_thread
    _collecting_thread = threading.get_ident() if phase == "start" else None


gc.callbacks.append(_on_gc)


def _in_collection() -> bool:
    return _collecting_thread is not None and _collecting_thread == threading.get_ident()


class StreamState:
    """What a stream proxy accumulates while the user reads: everything needed to end the span.

    Subclasses implement ``observe(item) -> bool`` (True hides the item from the caller) and
    ``outcome()``. Kept apart from the proxy so its finalizer (``Finalizer``) can end the span
    without keeping the proxy alive. ``reads`` tells the reaper whether the stream is idle: the proxy
    bumps it when a read starts and when it returns (odd while a read is in progress), the only
    per-chunk bookkeeping (no clock read, no lock); the reaper compares it between its checks.
    """

    # Message content accumulated from the chunks read (``_content.Accumulator``), only when
    # OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT asks for it; None otherwise.
    content: Any = None
    # The provider's type of an error event found in a body read raw (the SDK raised nothing).
    error_kind: Optional[str] = None
    # When the first chunk was observed (perf_counter), None before.
    first_chunk_at: Optional[float] = None
    # Bumped twice per read (at its start and when it returns): odd while a read is in progress.
    reads = 0
    # The first chunk was timed and no content is captured: the proxies call ``observe`` directly.
    plain = False
    # The output counted from the chunks read (``CharCounter`` or the provider's), for the estimate of a
    # stream that ends without usage (``usage_or_estimated``); and where a failed input estimate is logged.
    counter: Any = None
    estimate_site = "stream input estimate"

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.first_chunk_at = None
        self.reads = 0
        self.plain = False

    def observe(self, item: Any) -> bool:  # pragma: no cover - overridden
        return False

    def outcome(self) -> Outcome:  # pragma: no cover - overridden
        return Outcome()

    def usage_or_estimated(self, usage: Optional[Usage]) -> Tuple[Optional[Usage], str]:
        """``usage`` as the provider reported it (source ``provider``), else the estimate: the
        request's input estimate and ``counter``'s output (source ``estimated``)."""
        if usage is not None:
            return usage, sc.AiCostUsageSourceValues.PROVIDER
        return (estimated_usage(self.operation.request, self.counter, self.estimate_site),
                sc.AiCostUsageSourceValues.ESTIMATED)

    def observe_safely(self, item: Any) -> bool:
        """``observe`` that never raises (a failure is logged once and the item passed through)."""
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()
            self.plain = self.content is None
        if self.content is not None:
            try:
                self.content.add(item)
            except Exception as exc:
                log_once(f"{type(self).__name__} content", exc)
                self.content = None
        try:
            return self.observe(item)
        except Exception as exc:
            return self.observe_failed(exc)

    def observe_failed(self, exc: Exception) -> bool:
        """``observe`` raised: logged once, the item is passed through."""
        log_once(f"{type(self).__name__}.observe", exc)
        return False

    def _extra(self) -> Dict[str, Any]:
        if self.first_chunk_at is None:
            return {}
        return {sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: self.first_chunk_at - self.operation.start}

    def end(self, error: Optional[BaseException] = None) -> None:
        if self.operation.ended:
            return
        try:
            outcome = self.outcome()
        except Exception as exc:
            log_once(f"{type(self).__name__}.outcome", exc)
            outcome = Outcome()
        try:  # the provider ended the stream with an error: one rule for all (``_stream_errors``)
            kind = outcome.error_type or self.error_kind
            if kind is None and error is not None:
                kind = provider_error_type(error)
            if kind is not None:
                outcome = failed_outcome(outcome, kind)
        except Exception as exc:
            log_once(f"{type(self).__name__} stream error", exc)
        extra = self._extra()
        if self.content is not None:
            try:
                extra.update(self.content.attributes())
            except Exception as exc:
                log_once(f"{type(self).__name__} content", exc)
        self.operation.finish(outcome, error=error, extra=extra)


class Finalizer:
    """Calls ``end`` once when ``obj`` is garbage collected, unless detached first: what
    ``weakref.finalize`` does, for one weak reference and one dict entry per stream (the reaper's
    registry, keyed by the reference's id); the live ones are also ended at interpreter exit, so no
    span is left open. With ``watch`` the reaper's idle check looks at it: ``state.reads`` when last
    looked at, and since when it has been idle as far as the reaper knows (its creation, or the
    previous check before the one that saw ``reads`` change)."""

    __slots__ = ("ref", "end", "state", "watch", "since", "reads")
    ref: "Optional[weakref.ref[Any]]"

    def __init__(self, obj: Any, end: Callable[[], Any], state: Optional[StreamState], watch: bool) -> None:
        self.end = end
        self.state = state
        self.watch = watch
        self.since = time.monotonic()
        self.reads = 0
        self.ref = weakref.ref(obj, _collected)

    def detach(self) -> bool:
        """Never call ``end`` (the span was ended otherwise); True if it was still pending. The weak
        reference is dropped too (no callback left to run when the object goes)."""
        if self.ref is None:
            return False
        pending = _reaper.release(self) is not None
        self.ref = None
        return pending

    def idle_since(self, previous_check: float) -> Optional[float]:
        """When it went idle, or None while a read is in progress. A stream read since the previous
        check counts as active then (the earliest the read can have returned: the bound stays the
        one stated, an idle stream is at worst looked at one tick early)."""
        state = self.state
        if state is None:
            return self.since
        reads = state.reads
        if reads & 1:
            return None
        if reads != self.reads:
            self.reads = reads
            self.since = max(self.since, previous_check)
        return self.since


def _collected(ref: "weakref.ref[Any]") -> None:
    """The weak reference's callback: its object was collected."""
    finalizer = _reaper.live.pop(id(ref), None)
    if finalizer is not None:
        _reaper.tracked.pop(id(ref), None)
        _finalized(finalizer.end)


def _noop() -> None:
    pass


class _Reaper:
    """Ends the spans of abandoned streams (and unread raw responses) on a background thread.

    Runs what finalizers queued from inside a garbage collection (``SimpleQueue.put`` is safe
    there), and bounds the life of dropped streams the collector has not freed yet (see the module
    doc). Started by the first stream proxy, never from a finalizer; drained at interpreter exit.
    """

    def __init__(self) -> None:
        self._queue: "queue.SimpleQueue[Callable[[], Any]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        # id(finalizer.ref) -> the pending finalizers; ``tracked``: the ones the idle check watches.
        self.live: Dict[int, Finalizer] = {}
        self.tracked: Dict[int, Finalizer] = {}
        self._waiting_forever = False
        self._last_collect = float("-inf")
        self._next_check = 0.0
        self._last_check = time.monotonic()
        self.idle_timeout = DEFAULT_IDLE_TIMEOUT
        self.collections = 0  # gc.collect() runs made for idle streams (observability, tests)

    def start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                import atexit

                thread = threading.Thread(target=self._run, name="otel-ai-cost-stream-reaper", daemon=True)
                thread.start()
                self._thread = thread
                atexit.register(self.end_live)  # runs after the drain (last in, first out)
                atexit.register(self.drain, 2.0)

    def put(self, end: Callable[[], Any]) -> None:
        self._queue.put(end)  # no lock taken: safe from a finalizer

    def register(self, finalizer: Finalizer) -> None:
        key = id(finalizer.ref)
        self.live[key] = finalizer  # one dict store each: atomic
        if finalizer.watch:
            self.tracked[key] = finalizer
            if self._waiting_forever:
                self._queue.put(_noop)  # wake the reaper so it starts counting

    def release(self, finalizer: Finalizer) -> Optional[Finalizer]:
        key = id(finalizer.ref)  # before the finalizer drops its reference
        self.tracked.pop(key, None)
        return self.live.pop(key, None)

    def end_live(self) -> None:
        """At interpreter exit: end what is still pending (as ``weakref.finalize`` does at exit)."""
        for finalizer in list(self.live.values()):
            if finalizer.detach():
                _finalized(finalizer.end)

    def _tick(self) -> float:
        return min(max(self.idle_timeout / 4, 0.02), 5.0)

    def _run(self) -> None:
        while True:
            timeout: Optional[float] = self._tick()
            if not self.tracked:
                self._waiting_forever = True
                if not self.tracked:  # a register() between the test and the flag put a wake-up
                    timeout = None
            try:
                end = self._queue.get(timeout=timeout)
            except queue.Empty:
                end = None
            finally:
                self._waiting_forever = False
            if end is not None:
                try:
                    end()
                except Exception as exc:  # noqa: BLE001 - never let the reaper die
                    log_once("stream finalizer", exc)
            try:
                self._check_idle()
            except Exception as exc:  # noqa: BLE001
                log_once("stream reaper", exc)

    def _check_idle(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self._tick()
        previous, self._last_check = self._last_check, now
        bound = self.idle_timeout
        idle = []
        for tracked in self.tracked.copy().values():
            since = tracked.idle_since(previous)
            if since is not None and now - since >= bound:
                idle.append(tracked)
        if not idle or now - self._last_collect < bound:
            return
        # Idle streams nobody may hold any more: a collection frees the dropped ones (their
        # finalizers queue their ends, run next by this thread); the ones still referenced
        # survive and are looked at again after another bound.
        self._last_collect = now
        self.collections += 1
        gc.collect()
        after = time.monotonic()
        for tracked in idle:
            tracked.since = after

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has been ended (the queue is FIFO: a marker)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done.set)
        return done.wait(timeout)


_reaper = _Reaper()


def flush_abandoned_streams(timeout: float = 5.0) -> bool:
    """End the spans (and settle the budgets) of the streams abandoned so far; for tests and exit."""
    return _reaper.drain(timeout)


def set_stream_idle_timeout(seconds: float) -> float:
    """Set the idle bound of dropped streams (see the module doc); returns the previous one."""
    value = float(seconds)
    if not value > 0:
        raise ValueError(f"stream idle timeout must be a positive number of seconds, got {seconds!r}")
    previous = _reaper.idle_timeout
    _reaper.idle_timeout = value
    _reaper._next_check = 0.0
    _reaper.put(_noop)  # the reaper picks up the new tick
    return previous


def end_when_collected(obj: Any, end: Callable[[], Any], state: Optional[StreamState] = None,
                       watch: bool = True) -> Finalizer:
    """Call ``end`` once ``obj`` is garbage collected (detach the finalizer when ended otherwise).

    In place when ``obj`` is dropped outside a garbage collection, else on the reaper thread; at
    interpreter exit for an ``obj`` still alive. With ``watch``, a dropped ``obj`` the collector has
    not freed is found by the reaper's idle check (idle since its ``state.reads`` last changed, or
    since its creation without a state).
    """
    _reaper.start()
    finalizer = Finalizer(obj, end, state, watch)
    _reaper.register(finalizer)
    return finalizer


def _finalized(end: Callable[[], Any]) -> None:
    try:
        if _in_collection():
            _reaper.put(end)
            return
        end()
    except Exception as exc:  # runs from a finalizer: never raise
        log_once("stream finalizer", exc)


def _method(obj: Any, name: str) -> Callable[[], Any]:
    """``obj.name`` bound once (the per-read lookup saved); if ``obj`` lacks it, a callable that
    looks it up when called (so the read fails the way ``obj.name()`` would)."""
    try:
        method: Callable[[], Any] = getattr(obj, name)
    except AttributeError:
        return lambda: getattr(obj, name)()
    return method


class StreamProxyBase(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """What the sync and async stream proxies share: the state, and ending the span exactly once.

    ``_self_read`` is what a read needs, fetched from the proxy in one attribute lookup (a wrapt
    proxy's own attributes are slow to read): the state, and the wrapped stream's bound ``__next__``
    (``__anext__``)."""

    _read_method = "__next__"

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        self._self_read = (state, _method(wrapped, self._read_method))
        self._self_finalizer = end_when_collected(self, state.end, state)

    def _self_end(self, error: Optional[BaseException] = None) -> None:
        self._self_finalizer.detach()
        self._self_state.end(error)


class StreamProxy(StreamProxyBase):
    """Transparent proxy over an SDK ``Stream`` (or generator): ends the span exactly once.

    Ends on exhaustion, ``close()`` / context exit, an exception while iterating (with
    ``error.type``), and when the stream is dropped (see the module doc).
    """

    def __iter__(self) -> Iterator[Any]:
        """A generator over the same reads as ``__next__`` (as the SDK's ``Stream.__iter__`` is one):
        a ``for`` loop resumes it instead of calling ``__next__`` per chunk. Leaving the loop early
        closes only the generator: the stream stays open for more reads, as it does without us.
        The body is ``__next__``'s, inlined on purpose: a method call per chunk is what it saves."""
        state, read = self._self_read
        while True:
            state.reads += 1  # odd: a read in progress (for the reaper)
            try:
                item = read()
            except StopIteration:
                self._self_end()
                return
            except BaseException as exc:  # cancellation ends the span too (ended: ``reads`` is moot)
                self._self_end(exc)
                raise
            state.reads += 1
            if state.plain:  # no first chunk to time, no content to capture: ``observe`` inline
                try:
                    hide = state.observe(item)
                except Exception as exc:
                    hide = state.observe_failed(exc)
            else:
                hide = state.observe_safely(item)
            if not hide:
                yield item

    def __next__(self) -> Any:
        state, read = self._self_read
        while True:
            state.reads += 1  # odd: a read in progress (for the reaper)
            try:
                item = read()
            except StopIteration:
                self._self_end()
                raise
            except BaseException as exc:  # cancellation ends the span too (ended: ``reads`` is moot)
                self._self_end(exc)
                raise
            state.reads += 1
            if state.plain:  # no first chunk to time, no content to capture: ``observe`` inline
                try:
                    hide = state.observe(item)
                except Exception as exc:
                    hide = state.observe_failed(exc)
            else:
                hide = state.observe_safely(item)
            if not hide:
                return item

    def __enter__(self) -> "StreamProxy":
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_end()

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()


class AsyncStreamProxy(StreamProxyBase):
    """The ``AsyncStream`` (or async generator) counterpart of ``StreamProxy``."""

    _read_method = "__anext__"

    def __aiter__(self) -> "AsyncStreamProxy":
        return self

    async def __anext__(self) -> Any:
        state, read = self._self_read
        while True:
            state.reads += 1  # odd: a read in progress (for the reaper)
            try:
                item = await read()
            except StopAsyncIteration:
                self._self_end()
                raise
            except BaseException as exc:  # cancellation ends the span too (ended: ``reads`` is moot)
                self._self_end(exc)
                raise
            state.reads += 1
            if state.plain:  # no first chunk to time, no content to capture: ``observe`` inline
                try:
                    hide = state.observe(item)
                except Exception as exc:
                    hide = state.observe_failed(exc)
            else:
                hide = state.observe_safely(item)
            if not hide:
                return item

    async def __aenter__(self) -> "AsyncStreamProxy":
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_end()

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_end()

    async def aclose(self) -> None:
        """Async generators (google-genai streams) close with ``aclose()``."""
        try:
            await self.__wrapped__.aclose()
        finally:
            self._self_end()


def end_stream_proxy(obj: Any) -> None:
    """End the span of a stream proxy, if ``obj`` is one (used by SDK helpers that bypass ``close``)."""
    if isinstance(obj, (StreamProxy, AsyncStreamProxy)):
        obj._self_end()
