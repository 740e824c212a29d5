"""One google-genai request: its ``Operation`` (request attributes, budget request, lazy input
estimate), what the user gets back for the SDK's result, and the wrappers of the per-request methods."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Tuple

from ..._request import LLMRequest, TokenCount
from .. import _core as c
from .._core import Operation, Outcome, log_once
from .._core import _content as capture
from . import _content as genai_content
from ._attributes import (
    EMBEDDINGS,
    GENERATE_CONTENT,
    bare_model,
    embed_outcome,
    enum_value,
    field,
    finish_reason,
    generate_outcome,
    integral,
    provider_of,
    request_attributes,
    with_requested_tier,
)
from ._estimate import estimate_embed_input, estimate_generate_input
from ._streams import STREAM_SCOPE, GenerateStreamState


def _prepare(config: c.WrapContext, kind: str, instance: Any,
             kwargs: Dict[str, Any]) -> Tuple[Operation, Dict[str, Any]]:
    call_kwargs = dict(kwargs)
    model_arg = call_kwargs.get("model")
    model = bare_model(model_arg)
    gen_config = call_kwargs.get("config")
    provider = provider_of(instance)
    service_tier: Optional[str] = None
    max_out: Optional[int] = None
    if kind == "embed":
        operation = EMBEDDINGS
        key = next((k for k in ("contents", "batch_contents", "content") if call_kwargs.get(k) is not None),
                   "contents")
    else:
        operation = GENERATE_CONTENT
        key = "contents"
        max_out = integral(field(gen_config, "max_output_tokens"))
        service_tier = enum_value(field(gen_config, "service_tier"))
    c.materialize(call_kwargs, key)
    contents = call_kwargs.get(key)

    def estimate() -> TokenCount:  # lazy: only a processor that needs it counts the request
        if operation == EMBEDDINGS:
            return estimate_embed_input(contents)
        return estimate_generate_input(contents, gen_config)

    attrs = request_attributes(operation, instance, model, gen_config, stream=kind == "stream")
    request = LLMRequest(
        provider=provider,
        operation=operation,
        model=model,
        max_output_tokens=max_out,
        service_tier=service_tier.lower() if isinstance(service_tier, str) else None,
        estimate_input=estimate,
    )
    op = Operation(config.telemetry, request, c.span_name(operation, model), attrs, catalog=config.catalog)
    if kind != "embed":
        capture.record_input(op, genai_content.generate_input, contents, gen_config)
    return op, call_kwargs


class _Call(c.Call):
    """One google-genai call: its operation, and what the user gets back for the SDK's result."""

    log_prefix = "google_genai "

    def __init__(self, operation: Operation, kind: str, is_async: bool) -> None:
        super().__init__(operation, kind)
        self.is_async = is_async

    def outcome(self, response: Any) -> Outcome:
        if self.kind == "embed":
            outcome = embed_outcome(response)
        else:
            outcome = generate_outcome(response)
            capture.add_output(outcome, self.operation, genai_content.generate_output, response, finish_reason)
        return with_requested_tier(self.operation, outcome)

    def handle_result(self, result: Any) -> Any:
        if self.kind == "stream":
            try:
                proxy = c.AsyncStreamProxy if self.is_async else c.StreamProxy
                state = GenerateStreamState(self.operation)
                state.content = capture.stream_accumulator(
                    self.operation, lambda: genai_content.GenerateAccumulator(finish_reason))
                wrapped = proxy(result, state)
                scope = STREAM_SCOPE.get()
                if scope is not None:  # read through generate_content_stream: it ends with it
                    scope.append(state)
                return wrapped
            except Exception as exc:  # noqa: BLE001
                log_once("google_genai stream", exc)
                self.finish_without_response()
                return result
        self.finish_with(result)
        return result


def _start(config: c.WrapContext, kind: str, is_async: bool, instance: Any,
           kwargs: Dict[str, Any]) -> Tuple[_Call, Dict[str, Any]]:
    op, call_kwargs = _prepare(config, kind, instance, kwargs)
    return _Call(op, kind, is_async), call_kwargs


def _decide(call: _Call, call_kwargs: Dict[str, Any]) -> Optional[float]:
    # Downgrades swap the model of generate_content calls; embeddings go ahead unchanged.
    return call.operation.apply_decision(call_kwargs)


def sync_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    # ``time`` is looked up at call time (tests replace it on this module).
    return c.sync_call_wrapper(f"google_genai {kind}",
                               lambda instance, kwargs: _start(config, kind, False, instance, kwargs),
                               lambda delay: time.sleep(delay), _decide)


def async_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    return c.async_call_wrapper(f"google_genai {kind}",
                                lambda instance, kwargs: _start(config, kind, True, instance, kwargs),
                                lambda delay: c.async_sleep(delay), _decide)
