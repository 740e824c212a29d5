"""One call of the ``mistralai`` SDK (``Call``), its preparation, and the method wrappers."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Tuple

from ... import _semconv as sc
from ..._request import LLMRequest
from .. import _core as c
from .._core import Operation, _content, as_int, materialize
from ._attributes import OUTCOMES, PROVIDER, request_attributes
from ._estimate import lazy_estimate
from ._streams import MistralStreamState


class _Call(c.Call):
    outcomes = OUTCOMES
    log_prefix = "mistral "

    def handle_result(self, result: Any) -> Any:
        if self.kind == "chat_stream":
            state = MistralStreamState(self.operation)
            if hasattr(result, "__anext__"):
                return c.AsyncStreamProxy(result, state)
            if hasattr(result, "__next__"):
                return c.StreamProxy(result, state)
            self.finish_without_response()
            return result
        self.finish_with(result)
        return result


def _prepare(config: c.WrapContext, kind: str, instance: Any, kwargs: Dict[str, Any]) -> Tuple[_Call, Dict[str, Any]]:
    _content.not_supported("mistral")  # the variable may be set after instrument()
    call_kwargs = dict(kwargs)
    if kind == "embeddings":
        materialize(call_kwargs, "inputs")
        attrs = request_attributes("embeddings", instance, call_kwargs)
        operation, max_out = "embeddings", None
    else:
        materialize(call_kwargs, "messages")
        attrs = request_attributes("chat", instance, {**call_kwargs, "_otel_stream": kind == "chat_stream"})
        operation, max_out = "chat", as_int(call_kwargs.get("max_tokens"))
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    request = LLMRequest(provider=PROVIDER, operation=operation, model=model, max_output_tokens=max_out,
                         estimate_input=lazy_estimate(kind, call_kwargs))
    name = f"{operation} {model}" if model else operation
    op = Operation(config.telemetry, request, name, attrs, catalog=config.catalog)
    return _Call(op, kind), call_kwargs


def sync_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    # ``_prepare`` and ``time`` are looked up at call time (tests replace them on this module).
    return c.sync_call_wrapper(f"mistral {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                               lambda delay: time.sleep(delay))


def async_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    return c.async_call_wrapper(f"mistral {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                lambda delay: c.async_sleep(delay))
