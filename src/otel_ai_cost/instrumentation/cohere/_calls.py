"""One Cohere call (API v2, or v1 ``chat`` / ``generate``): its ``Operation`` (request attributes,
budget request, lazy input estimate), what the user gets back for the SDK's result, and the
wrappers of the client methods."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Tuple

from ... import _semconv as sc
from ..._request import LLMRequest
from .. import _core as c
from .._core import Operation, Outcome, StreamState, as_int, log_once, safe
from .._core import _content as capture
from . import _content as content
from ._attributes import OUTCOMES, PROVIDER, request_attributes
from ._estimate import lazy_estimate, lazy_v1_estimate
from ._streams import AsyncEvents, CohereStreamState, CohereV1StreamState


class _Call(c.Call):
    """One Cohere call: its operation, and what the user gets back for the SDK's result."""

    outcomes = OUTCOMES
    log_prefix = "cohere "

    def outcome(self, response: Any) -> Outcome:
        outcome = self.outcomes[self.kind](response)
        if self.kind == "chat":
            capture.add_output(outcome, self.operation, content.v2_chat_output, response)
        return outcome

    def stream_state(self) -> StreamState:
        state = CohereStreamState(self.operation)
        state.content = capture.stream_accumulator(self.operation, content.V2ChatAccumulator)
        return state

    def handle_result(self, result: Any) -> Any:
        if self.kind.endswith("_stream"):
            try:
                return c.StreamProxy(result, self.stream_state())
            except Exception as exc:
                log_once("cohere stream", exc)
                self.finish_without_response()
                return result
        self.finish_with(result)
        return result


def _prepare(config: c.WrapContext, kind: str, instance: Any,
             kwargs: Dict[str, Any]) -> Tuple[_Call, Dict[str, Any]]:
    call_kwargs = dict(kwargs)
    if kind == "embeddings":
        c.materialize(call_kwargs, "texts")
        attrs = request_attributes("embeddings", instance, call_kwargs, False)
        operation, max_out = "embeddings", None
    else:
        c.materialize(call_kwargs, "messages")
        attrs = request_attributes("chat", instance, call_kwargs, kind != "chat")
        operation, max_out = "chat", as_int(call_kwargs.get("max_tokens"))
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    request = LLMRequest(provider=PROVIDER, operation=operation, model=model, max_output_tokens=max_out,
                         estimate_input=lazy_estimate(kind, call_kwargs))
    op = Operation(config.telemetry, request, c.span_name(operation, model), attrs, catalog=config.catalog)
    if operation == "chat":
        capture.record_input(op, content.v2_chat_input, call_kwargs.get("messages"))
    return _Call(op, kind), call_kwargs


def sync_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    # ``_prepare`` and ``time`` are looked up at call time (tests replace them on this module).
    return c.sync_call_wrapper(f"cohere {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                               lambda delay: time.sleep(delay))


def async_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    return c.async_call_wrapper(f"cohere {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                lambda delay: c.async_sleep(delay))


def async_stream_wrapper(config: c.WrapContext, kind: str, v1: bool = False) -> Callable[..., Any]:
    """An async ``*_stream`` (``AsyncV2Client.chat_stream``, v1 ``AsyncClient.chat_stream`` /
    ``generate_stream``) is an async generator function: called without ``await``."""

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        prepare = _prepare_v1 if v1 else _prepare  # looked up at call time (tests replace them)
        prepared = safe(f"cohere {'v1 ' if v1 else ''}{kind} request", prepare, config, kind, instance, kwargs)
        if prepared is None:
            return wrapped(*args, **kwargs)
        call, call_kwargs = prepared
        op = call.operation
        delay = op.apply_decision(call_kwargs)  # raises BudgetExceededError on a block
        try:
            result = wrapped(*args, **call_kwargs)
        except BaseException as exc:
            op.fail(exc)
            raise
        try:
            return c.AsyncStreamProxy(AsyncEvents(result, delay), call.stream_state())
        except Exception as exc:
            log_once(f"cohere {'v1 ' if v1 else ''}async stream", exc)
            op.finish(Outcome())
            return result

    return wrapper


# ---------------------------------------------------------------------------------------------
# API v1: ``chat`` / ``chat_stream`` (operation ``chat``), ``generate`` / ``generate_stream``
# (operation ``text_completion``), of ``Client`` / ``AsyncClient``


class _V1Call(_Call):
    """One v1 call: its outcome read off ``meta`` (billed units), its content when asked for."""

    def outcome(self, response: Any) -> Outcome:
        generate = self.kind == "generate"
        outcome = OUTCOMES["generate" if generate else "v1_chat"](response)
        convert = content.generate_output if generate else content.chat_output
        capture.add_output(outcome, self.operation, convert, response)  # adds to outcome.attributes
        return outcome

    def stream_state(self) -> StreamState:
        state = CohereV1StreamState(self.operation)
        factory = content.GenerateAccumulator if self.kind == "generate_stream" else content.ChatAccumulator
        state.content = capture.stream_accumulator(self.operation, factory)
        return state


def _prepare_v1(config: c.WrapContext, kind: str, instance: Any,
                kwargs: Dict[str, Any]) -> Tuple[_V1Call, Dict[str, Any]]:
    call_kwargs = dict(kwargs)
    generate = kind.startswith("generate")
    operation = sc.GenAiOperationNameValues.TEXT_COMPLETION if generate else sc.GenAiOperationNameValues.CHAT
    for name in ("chat_history", "tools", "tool_results", "documents"):
        c.materialize(call_kwargs, name)
    attrs = request_attributes(operation, instance, call_kwargs, kind.endswith("_stream"))
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    request = LLMRequest(provider=PROVIDER, operation=operation, model=model,
                         max_output_tokens=as_int(call_kwargs.get("max_tokens")),
                         estimate_input=lazy_v1_estimate(kind, call_kwargs))
    op = Operation(config.telemetry, request, c.span_name(operation, model), attrs, catalog=config.catalog)
    convert = content.generate_input if generate else content.chat_input
    capture.record_input(op, convert, call_kwargs)
    return _V1Call(op, kind), call_kwargs


def v1_sync_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    return c.sync_call_wrapper(f"cohere v1 {kind}",
                               lambda instance, kwargs: _prepare_v1(config, kind, instance, kwargs),
                               lambda delay: time.sleep(delay))


def v1_async_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    return c.async_call_wrapper(f"cohere v1 {kind}",
                                lambda instance, kwargs: _prepare_v1(config, kind, instance, kwargs),
                                lambda delay: c.async_sleep(delay))


def v1_async_stream_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    return async_stream_wrapper(config, kind, v1=True)
