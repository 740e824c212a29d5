"""The wrappers of an SDK method: prepare -> budget decision -> (throttle) -> call -> result."""
from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any, Callable, Dict, Mapping, Optional

from ._log import log_once, safe
from ._operation import Operation, Outcome


async def async_sleep(seconds: float) -> None:
    """Sleep in whatever event loop runs the SDK (asyncio or trio, as the SDKs themselves do with anyio)."""
    try:
        import anyio
    except ImportError:  # pragma: no cover - the SDKs depend on anyio
        await asyncio.sleep(seconds)
        return
    await anyio.sleep(seconds)


class Call:
    """One instrumented SDK call, between request and response: its ``Operation`` and its kind.

    ``finish_with(response)`` reads the outcome (``outcomes[kind]`` of the subclass, or its own
    ``outcome``) and ends the span; ``finish_without_response()`` ends it without usage. Subclasses
    add ``handle_result(result)`` for the wrappers below.
    """

    outcomes: Mapping[str, Callable[[Any], Outcome]] = {}
    log_prefix = ""  # of the log site "<prefix><kind> response"

    def __init__(self, operation: Operation, kind: str) -> None:
        self.operation = operation
        self.kind = kind

    def outcome(self, response: Any) -> Outcome:
        return self.outcomes[self.kind](response)

    def finish_with(self, response: Any) -> None:
        try:
            outcome = self.outcome(response)
        except Exception as exc:
            log_once(f"{self.log_prefix}{self.kind} response", exc)
            outcome = Outcome()
        self.operation.finish(outcome)

    def finish_without_response(self) -> None:
        self.operation.finish(Outcome())


Prepare = Callable[[Any, Dict[str, Any]], Any]
Decide = Callable[[Any, Dict[str, Any]], Optional[float]]


def _handled(call: Any, result: Any, site: str) -> Any:
    """What the user gets back: ``call.handle_result(result)``, or the SDK's result untouched when our
    handling fails (the span then ends without a response)."""
    try:
        return call.handle_result(result)
    except Exception as exc:
        log_once(site, exc)
        call.finish_without_response()
        return result


def sync_call_wrapper(site: str, prepare: Prepare, sleep: Callable[[float], Any],
                      decide: Optional[Decide] = None, guard: Optional[ContextVar[bool]] = None) -> Callable[..., Any]:
    """The ``wrapt`` wrapper of a synchronous SDK method.

    ``prepare(instance, kwargs)`` starts the span and returns ``(call, call_kwargs)``; if it fails
    the SDK is called untouched. ``call`` has ``operation`` (an ``Operation``),
    ``handle_result(result)`` (what the user gets back: the result or a proxy) and
    ``finish_without_response()``. The budget decision (``call.operation.apply_decision``, or
    ``decide(call, call_kwargs)``) is applied first (a block raises ``BudgetExceededError``, a
    throttle waits ``sleep(delay)``); the SDK is then called with ``call_kwargs``, inside
    ``call.operation.calling()`` (the call's span current and the call marked, so that the SDK's
    own spans are recognised as part of it and never priced or budgeted twice). A method that
    returns a generator (cohere's ``chat_stream`` / ``generate_stream``, sync and async) sends its
    request on the first ``next``, after this returns: the SDK's and HTTP client's spans of that
    request are then neither children of the call's span nor marked. An exception
    (cancellation included) fails the span and propagates; an internal error in ``handle_result``
    ends the span without a response and returns the SDK's result.
    ``site`` names the log sites (``"<site> request"``, ``"<site> result"``).

    With ``guard``, one user call is one span: a call made while ``guard`` is set (an SDK method
    calling another wrapped one, e.g. ``messages.stream`` calling ``create``) goes to the SDK
    untouched; otherwise ``guard`` is set for the duration of the SDK call (the wrapper below is
    handed an SDK call that holds it). Without it the wrapper does no guard work at all.
    """
    request_site, result_site = f"{site} request", f"{site} result"

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        prepared = safe(request_site, prepare, instance, kwargs)
        if prepared is None:
            return wrapped(*args, **kwargs)
        call, call_kwargs = prepared
        # raises BudgetExceededError on a block
        delay = call.operation.apply_decision(call_kwargs) if decide is None else decide(call, call_kwargs)
        try:
            if delay:
                sleep(delay)
            with call.operation.calling():  # spans started inside are part of this call
                result = wrapped(*args, **call_kwargs)
        except BaseException as exc:  # interrupts while throttled or in the call end the span too
            call.operation.fail(exc)
            raise
        return _handled(call, result, result_site)

    if guard is None:
        return wrapper
    flag = guard  # not Optional in the closures below

    def guarded(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if flag.get():
            return wrapped(*args, **kwargs)

        def sdk_call(*call_args: Any, **call_kwargs: Any) -> Any:
            token = flag.set(True)
            try:
                return wrapped(*call_args, **call_kwargs)
            finally:
                flag.reset(token)

        return wrapper(sdk_call, instance, args, kwargs)

    return guarded


def async_call_wrapper(site: str, prepare: Prepare, sleep: Callable[[float], Any],
                       decide: Optional[Decide] = None, guard: Optional[ContextVar[bool]] = None) -> Callable[..., Any]:
    """The ``sync_call_wrapper`` of a coroutine SDK method; ``sleep(delay)`` is awaited, ``guard``
    is set while the SDK's coroutine runs."""
    request_site, result_site = f"{site} request", f"{site} result"

    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        prepared = safe(request_site, prepare, instance, kwargs)
        if prepared is None:
            return await wrapped(*args, **kwargs)
        call, call_kwargs = prepared
        # raises BudgetExceededError on a block
        delay = call.operation.apply_decision(call_kwargs) if decide is None else decide(call, call_kwargs)
        try:
            if delay:
                await sleep(delay)
            with call.operation.calling():  # spans started inside are part of this call
                result = await wrapped(*args, **call_kwargs)
        except BaseException as exc:  # a task cancelled while throttled or in the call ends the span too
            call.operation.fail(exc)
            raise
        return _handled(call, result, result_site)

    if guard is None:
        return wrapper
    flag = guard  # not Optional in the closures below

    async def guarded(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if flag.get():
            return await wrapped(*args, **kwargs)

        async def sdk_call(*call_args: Any, **call_kwargs: Any) -> Any:
            token = flag.set(True)
            try:
                return await wrapped(*call_args, **call_kwargs)
            finally:
                flag.reset(token)

        return await wrapper(sdk_call, instance, args, kwargs)

    return guarded
