"""One call of the ``groq`` SDK (``Call``), its preparation, and the method wrappers."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Tuple

from ... import _semconv as sc
from ..._request import LLMRequest
from .. import _core as c
from .._chat import chat_request_attributes, embeddings_request_attributes, max_tokens
from .._core import Operation, StreamState, _content, get, materialize
from .._stainless import RequestRouter, StainlessCall
from ._attributes import OUTCOMES, PROVIDER, strip_openai
from ._estimate import lazy_estimate
from ._streams import GroqStreamState


class _Call(StainlessCall):
    outcomes = OUTCOMES
    log_prefix = "groq "
    sdk = "groq"

    def stream_state(self) -> StreamState:
        return GroqStreamState(self.operation)


def _prepare(config: c.WrapContext, kind: str, instance: Any, kwargs: Dict[str, Any]) -> Tuple[_Call, Dict[str, Any]]:
    _content.not_supported("groq")  # the variable may be set after instrument()
    client = get(instance, "_client")
    call_kwargs = dict(kwargs)
    if kind == "chat":
        materialize(call_kwargs, "messages")
        attrs = strip_openai(chat_request_attributes(PROVIDER, client, call_kwargs))
        max_out = max_tokens(call_kwargs, "max_completion_tokens", "max_tokens")
        operation = "chat"
    else:
        materialize(call_kwargs, "input")
        attrs = embeddings_request_attributes(PROVIDER, client, call_kwargs)
        max_out = None
        operation = "embeddings"
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    request = LLMRequest(provider=PROVIDER, operation=operation, model=model, max_output_tokens=max_out,
                         estimate_input=lazy_estimate(kind, call_kwargs))
    name = f"{operation} {model}" if model else operation
    op = Operation(config.telemetry, request, name, attrs, catalog=config.catalog)
    is_stream = kind == "chat" and call_kwargs.get("stream") is True
    return _Call(op, kind, is_stream), call_kwargs


_REQUEST_PATHS = (("/chat/completions", "chat"), ("/embeddings", "embeddings"))
REQUEST_METHODS = [
    ("groq._base_client", "SyncAPIClient.request", False),
    ("groq._base_client", "AsyncAPIClient.request", True),
]
# Which instrumentation is in force, and the clients' request() fallback (see _stainless).
router = RequestRouter("groq", _REQUEST_PATHS)


def _sync_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    # ``_prepare`` and ``time`` are looked up at call time (tests replace them on this module).
    inner = c.sync_call_wrapper(f"groq {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                lambda delay: time.sleep(delay))
    return router.method_wrapper(config, inner, is_async=False)


def _async_wrapper(config: c.WrapContext, kind: str) -> Callable[..., Any]:
    inner = c.async_call_wrapper(f"groq {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                 lambda delay: c.async_sleep(delay))
    return router.method_wrapper(config, inner, is_async=True)


def method_wrapper(config: c.WrapContext, kind: str, is_async: bool) -> Callable[..., Any]:
    """The wrapper of a ``kind`` method (run only while ``config`` is in force, see ``_stainless``)."""
    return (_async_wrapper if is_async else _sync_wrapper)(config, kind)


