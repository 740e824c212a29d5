"""One Messages call (``Call``, ``_prepare``) and the wrappers of the SDK methods: ``create`` /
``parse`` and the ``messages.stream()`` helpers on the shared call wrappers (``_core._calls``),
guarded so that one user call is one span, and ``count_tokens`` (a free call: a plain span)."""
from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ... import _semconv as sc
from ..._request import LLMRequest
from .. import _core as c
from .._core import Operation, Outcome, StreamState, _content, as_int, get, given, log_once, safe
from .._stainless import StainlessCall
from ._attributes import message_outcome, provider_from_client, request_attributes
from ._content import MessageAccumulator, message_output, messages_input
from ._estimate import lazy_estimate
from ._streams import AsyncStreamManagerProxy, MessageStreamState, StreamManagerProxy

# The count a count_tokens call returned goes on its span once the registry declares
# ``ai_cost.count_tokens.input_tokens`` (semconv/usage.yaml, then scripts/generate_semconv.py).
AI_COST_COUNT_TOKENS_INPUT_TOKENS: Optional[str] = getattr(sc, "AI_COST_COUNT_TOKENS_INPUT_TOKENS", None)


# ---------------------------------------------------------------------------------------------
# One call


class Call(StainlessCall):
    """One Messages call between request and response; ``is_stream`` for a stream (``stream=True``
    or the ``stream()`` helpers). The outcome carries the output content when capture is asked for.

    Raw responses (``with_raw_response`` / ``with_streaming_response``) go through the shared
    ``_stainless`` proxies: a body the HTTP response already holds settles the span, else the input
    estimate (``ai_cost.usage.source=estimated``); nothing the user did not read is read.
    """

    log_prefix = "anthropic "
    sdk = "anthropic"

    def outcome(self, message: Any) -> Outcome:
        outcome = message_outcome(message)
        _content.add_output(outcome, self.operation, message_output, message)
        return outcome

    def stream_state(self) -> StreamState:
        state = MessageStreamState(self.operation)
        state.content = _content.stream_accumulator(self.operation, MessageAccumulator)
        return state

    def body_is_stream(self, raw: Any) -> bool:
        """The response's content type decides (an SSE body, or JSON), the request only without one."""
        content_type = ""
        try:
            content_type = str(raw.http_response.headers.get("content-type") or "").lower()
        except Exception:
            pass
        return "text/event-stream" in content_type or (self.is_stream and "json" not in content_type)


def materialized(kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of the kwargs with one-shot iterators as lists: the request and the estimate both read them."""
    call_kwargs = dict(kwargs)
    for key in ("messages", "tools", "system"):
        c.materialize(call_kwargs, key)
    return call_kwargs


def _prepare(config: c.WrapContext, instance: Any, kwargs: Dict[str, Any], stream: bool) -> Tuple[Call, Dict[str, Any]]:
    """Build the request attributes and the LLMRequest, and start the span."""
    client = get(instance, "_client")
    server = c.host_port(client)  # once per call
    provider = provider_from_client(client, server)
    call_kwargs = materialized(kwargs)
    attrs = request_attributes(provider, client, {**call_kwargs, "stream": True} if stream else call_kwargs,
                               server=server)
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    tier = call_kwargs.get("service_tier")
    request = LLMRequest(
        provider=provider,
        operation="chat",
        model=model,
        max_output_tokens=as_int(call_kwargs.get("max_tokens")),
        # "auto" / "standard_only" both bill at the standard price unless priority capacity is used.
        service_tier=None if not isinstance(tier, str) or tier in ("auto", "standard_only") else tier,
        estimate_input=lazy_estimate(call_kwargs),
    )
    name = f"chat {model}" if model else "chat"
    op = Operation(config.telemetry, request, name, attrs, catalog=config.catalog)
    system = call_kwargs.get("system")
    _content.record_input(op, messages_input, call_kwargs.get("messages"), system if given(system) else None)
    return Call(op, "messages", stream), call_kwargs


# ---------------------------------------------------------------------------------------------
# create / parse


# The throttle's sleep, looked up at call time (tests replace it, and ``time``, here).
_async_sleep = c.async_sleep


# One SDK call is one span: an SDK method that calls another wrapped one (``parse`` calling
# ``create`` in some versions, a downgraded ``stream()`` building its request) is not
# instrumented twice.
_ACTIVE: ContextVar[bool] = ContextVar("otel_ai_cost_anthropic_active", default=False)


def _sync_sleep(delay: float) -> None:
    time.sleep(delay)


def _call_wrapper(site: str, config: c.WrapContext, is_async: bool, stream: Optional[bool]) -> Callable[..., Any]:
    """The shared call wrapper of a Messages method, guarded by ``_ACTIVE``; ``stream=None``: a
    stream if the call says ``stream=True``."""

    def prepare(instance: Any, kwargs: Dict[str, Any]) -> Tuple[Call, Dict[str, Any]]:
        return _prepare(config, instance, kwargs, kwargs.get("stream") is True if stream is None else stream)

    if is_async:
        return c.async_call_wrapper(site, prepare, lambda delay: _async_sleep(delay), guard=_ACTIVE)
    return c.sync_call_wrapper(site, prepare, _sync_sleep, guard=_ACTIVE)


def create_wrapper(config: c.WrapContext, is_async: bool) -> Callable[..., Any]:
    """The wrapper of ``messages.create`` / ``messages.parse``."""
    return _call_wrapper("anthropic", config, is_async, None)


# -- the .stream() helpers ---------------------------------------------------------------------
#
# ``messages.stream(...)`` returns a MessageStreamManager holding the request to make (a callable,
# or for the async client an un-awaited coroutine); the request is sent when the manager is
# entered. The span starts there: the stored request is replaced with one that starts the span,
# applies the budget decision (a block raises BudgetExceededError from the ``with`` line, before
# anything is sent) and hands the MessageStream the raw stream behind our proxy, so every helper
# (text_stream, get_final_message, until_done, close) reads through it. A manager never entered
# sends nothing and starts no span. The stand-in request goes through the shared call wrapper.


def _api_request_attribute(manager: Any) -> Optional[str]:
    """The name of the attribute where a stream manager keeps the request it sends on entry."""
    names: Dict[str, Any] = vars(manager)
    for name in names:
        if name.endswith("__api_request"):
            return name
    return None


class _StreamRequest:
    """Stands in for the request a MessageStreamManager sends on entry (a callable).

    Sent through the shared call wrapper ``request``, as the SDK method it stands for; what that
    wrapper calls (``_send``) sends the stored request, or, when the budget downgraded the model,
    one built for the new model. ``holder["proxy"]`` is the stream handed to the MessageStream.
    """

    def __init__(self, request: Callable[..., Any], wrapped: Any, instance: Any, args: Any,
                 kwargs: Dict[str, Any], original: Any) -> None:
        self._request = request
        self._wrapped = wrapped
        self._instance = instance
        self._args = args
        self._kwargs = kwargs
        self._original = original
        self.holder: Dict[str, Any] = {}

    def _replacement(self, call_kwargs: Dict[str, Any]) -> Any:
        """The request for the new model if the budget downgraded it, else None."""
        if call_kwargs.get("model") == self._kwargs.get("model"):
            return None
        replacement = self._wrapped(*self._args, **call_kwargs)
        name = _api_request_attribute(replacement)
        return getattr(replacement, name) if name is not None else None

    def _send(self, **call_kwargs: Any) -> Any:
        return (self._replacement(call_kwargs) or self._original)()

    def __call__(self) -> Any:
        proxy = self._request(self._send, self._instance, (), self._kwargs)
        self.holder["proxy"] = proxy
        return proxy


class _AsyncStreamRequest(_StreamRequest):
    """Stands in for the coroutine an AsyncMessageStreamManager awaits on entry.

    An object with ``__await__`` (not a coroutine): a manager never entered leaves no extra
    "never awaited" warning behind; the SDK's own coroutine is closed if it is never sent.
    """

    def __await__(self) -> Any:
        return self._run().__await__()

    def _close_original(self) -> None:
        close = getattr(self._original, "close", None)
        if close is not None:
            safe("anthropic stream close request", close)

    async def _send(self, **call_kwargs: Any) -> Any:
        send = self._replacement(call_kwargs)
        if send is None:
            return await self._original
        self._close_original()
        return await send

    async def _run(self) -> Any:
        try:
            proxy = await self._request(self._send, self._instance, (), self._kwargs)
        except BaseException:
            self._close_original()  # blocked (or failed) before it was sent: no "never awaited" left behind
            raise
        self.holder["proxy"] = proxy
        return proxy


def stream_wrapper(config: c.WrapContext, is_async: bool) -> Callable[..., Any]:
    """The wrapper of ``messages.stream()``: the manager it returns sends our stand-in request."""
    request = _call_wrapper("anthropic stream", config, is_async, True)
    stand_in = _AsyncStreamRequest if is_async else _StreamRequest
    manager_proxy = AsyncStreamManagerProxy if is_async else StreamManagerProxy

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if _ACTIVE.get():
            return wrapped(*args, **kwargs)
        kwargs = materialized(kwargs)
        manager = wrapped(*args, **kwargs)
        try:
            attribute = _api_request_attribute(manager)
            if attribute is None:
                return manager
            stored = stand_in(request, wrapped, instance, args, kwargs, getattr(manager, attribute))
            setattr(manager, attribute, stored)
            return manager_proxy(manager, stored.holder)
        except Exception as exc:
            log_once("anthropic stream helper", exc)
        return manager

    return wrapper


# -- count_tokens ---------------------------------------------------------------------------------


def _start_count_tokens(config: c.WrapContext, instance: Any, kwargs: Mapping[str, Any]) -> Span:
    client = get(instance, "_client")
    server = c.host_port(client)
    provider = provider_from_client(client, server)
    attrs = request_attributes(provider, client, kwargs, server=server)
    attrs.pop(sc.GEN_AI_OPERATION_NAME, None)  # not an inference: no budget, no cost, no usage
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    name = f"count_tokens {model}" if model else "count_tokens"
    return config.telemetry.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)


def _end_count_tokens(span: Span, result: Any = None, error: Optional[BaseException] = None) -> None:
    try:
        if error is not None:
            span.set_attribute(sc.ERROR_TYPE, c.error_type(error))
            span.set_status(Status(StatusCode.ERROR, str(error)))
        else:
            tokens = as_int(get(result, "input_tokens"))
            if tokens is not None and AI_COST_COUNT_TOKENS_INPUT_TOKENS:
                span.set_attribute(AI_COST_COUNT_TOKENS_INPUT_TOKENS, tokens)
    finally:
        span.end()


def count_tokens_wrapper(config: c.WrapContext, is_async: bool) -> Callable[..., Any]:
    """The wrapper of ``count_tokens``: a span without usage or cost (a free call, no budget)."""
    if is_async:
        async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            span = safe("anthropic count_tokens", _start_count_tokens, config, instance, kwargs)
            if span is None:
                return await wrapped(*args, **kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                safe("anthropic count_tokens end", _end_count_tokens, span, error=exc)
                raise
            safe("anthropic count_tokens end", _end_count_tokens, span, result)
            return result

        return async_wrapper

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        span = safe("anthropic count_tokens", _start_count_tokens, config, instance, kwargs)
        if span is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            safe("anthropic count_tokens end", _end_count_tokens, span, error=exc)
            raise
        safe("anthropic count_tokens end", _end_count_tokens, span, result)
        return result

    return wrapper


# kind (see the package's targets) -> the factory of its wrapper: (config, is_async) -> wrapper
WRAPPERS: Dict[str, Callable[[c.WrapContext, bool], Callable[..., Any]]] = {
    "create": create_wrapper,
    "stream": stream_wrapper,
    "count_tokens": count_tokens_wrapper,
}
