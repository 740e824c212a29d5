"""One Cohere v2 call: its ``Operation`` (request attributes, budget request, lazy input estimate),
what the user gets back for the SDK's result, and the wrappers of the client methods."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Tuple

from ... import _semconv as sc
from ..._request import LLMRequest
from .. import _core as c
from .._core import Operation, Outcome, as_int, log_once, safe
from .._core import _content as capture
from ._attributes import OUTCOMES, PROVIDER, request_attributes
from ._estimate import lazy_estimate
from ._streams import AsyncEvents, CohereStreamState


class _Call(c.Call):
    """One Cohere call: its operation, and what the user gets back for the SDK's result."""

    outcomes = OUTCOMES
    log_prefix = "cohere "

    def handle_result(self, result: Any) -> Any:
        if self.kind == "chat_stream":
            try:
                return c.StreamProxy(result, CohereStreamState(self.operation))
            except Exception as exc:
                log_once("cohere stream", exc)
                self.finish_without_response()
                return result
        self.finish_with(result)
        return result


def _prepare(config: c.WrapContext, kind: str, instance: Any,
             kwargs: Dict[str, Any]) -> Tuple[_Call, Dict[str, Any]]:
    capture.not_supported("cohere")  # the variable may be set after instrument()
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
    return _Call(op, kind), call_kwargs


def sync_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    # ``_prepare`` and ``time`` are looked up at call time (tests replace them on this module).
    return c.sync_call_wrapper(f"cohere {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                               lambda delay: time.sleep(delay))


def async_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    return c.async_call_wrapper(f"cohere {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                lambda delay: c.async_sleep(delay))


def async_stream_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    """``AsyncV2Client.chat_stream`` is an async generator function: called without ``await``."""

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        prepared = safe(f"cohere {kind} request", _prepare, config, kind, instance, kwargs)
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
            return c.AsyncStreamProxy(AsyncEvents(result, delay), CohereStreamState(op))
        except Exception as exc:
            log_once("cohere async stream", exc)
            op.finish(Outcome())
            return result

    return wrapper
