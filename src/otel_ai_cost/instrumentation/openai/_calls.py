"""One call of the ``openai`` SDK (``Call``), its preparation, and the method wrappers."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Tuple

from ... import _semconv as sc
from ..._request import LLMRequest
from .. import _core as c
from .._chat import chat_request_attributes, embeddings_request_attributes, max_tokens
from .._core import Operation, Outcome, StreamState, _content, get, given, host_port, materialize, safe
from .._stainless import RequestRouter, StainlessCall
from . import _content as _content_openai
from ._attributes import (
    OUTCOMES,
    add_include_usage,
    completions_request_attributes,
    may_add_stream_options,
    provider_from_client,
    responses_request_attributes,
    usage_requested,
)
from ._estimate import lazy_estimate
from ._streams import OpenAIChatStreamState, ResponsesStreamState

# Output message content (only built when capture is asked for, see ``_content``).
_OUTPUT_CONTENT = {"chat": _content_openai.chat_output, "responses": _content_openai.responses_output}


class _Call(StainlessCall):
    """The instrumented state of one SDK call, between request and response."""

    outcomes = OUTCOMES
    sdk = "openai"
    # with_raw_response is a LegacyAPIResponse (StainlessCall.handle_result); a with_streaming_response closed or
    # dropped unparsed ends with the input estimate (see the module doc).
    uses_held_body = False

    def __init__(self, operation: Operation, kind: str, is_stream: bool, hide_usage_chunk: bool,
                 usage_expected: bool = False) -> None:
        super().__init__(operation, kind, is_stream)
        self.hide_usage_chunk = hide_usage_chunk
        self.usage_expected = usage_expected

    def outcome(self, response: Any) -> Outcome:
        outcome = super().outcome(response)
        convert = _OUTPUT_CONTENT.get(self.kind)
        if convert is not None:
            _content.add_output(outcome, self.operation, convert, response)
        return outcome

    def stream_state(self) -> StreamState:
        if self.kind == "responses":
            state: StreamState = ResponsesStreamState(self.operation)
            state.content = _content.stream_accumulator(self.operation, _content_openai.ResponsesAccumulator)
        else:
            state = OpenAIChatStreamState(self.operation, self.hide_usage_chunk, self.usage_expected)
            if self.kind == "chat":
                state.content = _content.stream_accumulator(self.operation, _content_openai.ChatAccumulator)
        return state


class Config(c.WrapContext):
    def __init__(self, telemetry: c.Telemetry, include_stream_usage: bool, catalog: Any) -> None:
        super().__init__(telemetry, catalog)
        self.include_stream_usage = include_stream_usage


def _prepare(config: Config, kind: str, instance: Any, kwargs: Dict[str, Any]) -> Tuple[_Call, Dict[str, Any]]:
    """Build the request attributes and the LLMRequest, adjust the kwargs, and start the span."""
    client = get(instance, "_client")
    server = host_port(client)  # once: the SDK's base_url property imports a module at each read
    provider = provider_from_client(client, server)
    call_kwargs = dict(kwargs)
    is_stream = call_kwargs.get("stream") is True and kind != "embeddings"
    hide_usage_chunk = False
    if kind == "chat":
        materialize(call_kwargs, "messages")
        if is_stream and config.include_stream_usage and may_add_stream_options(provider, client, call_kwargs):
            hide_usage_chunk = add_include_usage(call_kwargs)
        attrs = chat_request_attributes(provider, client, call_kwargs, server)
        max_out = max_tokens(call_kwargs, "max_completion_tokens", "max_tokens")
        operation = "chat"
    elif kind == "completions":
        if is_stream and config.include_stream_usage and may_add_stream_options(provider, client, call_kwargs):
            hide_usage_chunk = add_include_usage(call_kwargs)
        attrs = completions_request_attributes(provider, client, call_kwargs, server)
        max_out = max_tokens(call_kwargs, "max_tokens")
        operation = "text_completion"
    elif kind == "responses":
        materialize(call_kwargs, "input")
        attrs = responses_request_attributes(provider, client, call_kwargs, server)
        max_out = max_tokens(call_kwargs, "max_output_tokens")
        operation = "chat"
    else:
        materialize(call_kwargs, "input")
        attrs = embeddings_request_attributes(provider, client, call_kwargs, server)
        max_out = None
        operation = "embeddings"
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    tier = call_kwargs.get("service_tier")
    request = LLMRequest(
        provider=provider,
        operation=operation,
        model=model,
        max_output_tokens=max_out,
        service_tier=tier if isinstance(tier, str) else None,
        estimate_input=lazy_estimate(kind, call_kwargs),
    )
    name = f"{operation} {model}" if model else operation
    op = Operation(config.telemetry, request, name, attrs, catalog=config.catalog)
    if kind == "chat":
        _content.record_input(op, _content_openai.chat_input, call_kwargs.get("messages"))
    elif kind == "responses":
        instructions = call_kwargs.get("instructions")
        _content.record_input(op, _content_openai.responses_input, call_kwargs.get("input"),
                              instructions if given(instructions) else None)
    return _Call(op, kind, is_stream, hide_usage_chunk, is_stream and usage_requested(call_kwargs)), call_kwargs


# (URL path suffix, kind), the most specific first ("/chat/completions" before "/completions").
_REQUEST_PATHS = (("/chat/completions", "chat"), ("/responses", "responses"), ("/completions", "completions"),
                  ("/embeddings", "embeddings"))
REQUEST_METHODS = [
    ("openai._base_client", "SyncAPIClient.request", False),
    ("openai._base_client", "AsyncAPIClient.request", True),
]
# Which instrumentation is in force, and the clients' request() fallback (see _stainless).
router = RequestRouter("openai", _REQUEST_PATHS)


def _sync_wrapper(config: Config, kind: str) -> Callable[..., Any]:
    # ``_prepare`` and ``time`` are looked up at call time (tests replace them on this module).
    inner = c.sync_call_wrapper(kind, lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                lambda delay: time.sleep(delay))
    return router.method_wrapper(config, inner, is_async=False)


# The throttle's sleep, looked up at call time (tests replace it here).
_async_sleep = c.async_sleep


def _async_wrapper(config: Config, kind: str) -> Callable[..., Any]:
    inner = c.async_call_wrapper(kind, lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                 lambda delay: _async_sleep(delay))
    return router.method_wrapper(config, inner, is_async=True)


def method_wrapper(config: Config, kind: str, is_async: bool) -> Callable[..., Any]:
    """The wrapper of a ``kind`` method (run only while ``config`` is in force, see ``_stainless``)."""
    return (_async_wrapper if is_async else _sync_wrapper)(config, kind)


def helper_close_wrapper(is_async: bool) -> Callable[..., Any]:
    """End our span when an SDK stream helper closes the HTTP response behind our proxy's back."""
    if is_async:
        async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            try:
                return await wrapped(*args, **kwargs)
            finally:
                safe("helper close", c.end_stream_proxy, get(instance, "_raw_stream"))

        return async_wrapper

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            return wrapped(*args, **kwargs)
        finally:
            safe("helper close", c.end_stream_proxy, get(instance, "_raw_stream"))

    return wrapper


