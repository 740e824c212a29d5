"""OpenTelemetry instrumentor for the ``cohere`` SDK: API v2 ``chat``, ``chat_stream`` and ``embed``
of ``ClientV2`` / ``AsyncClientV2`` (and ``Client().v2``); API v1 ``chat``, ``chat_stream``,
``generate`` and ``generate_stream`` of ``Client`` / ``AsyncClient`` (operations ``chat`` and
``text_completion``).

The usage trap: a Cohere response reports two counts, ``usage.tokens`` (every token the model
processed, Cohere's own system prompt and tool rendering included) and ``usage.billed_units`` (what
is charged). The span's ``gen_ai.usage.*`` and the cost are the **billed units**: billed input
tokens 7 where ``tokens.input_tokens`` is 69 on the recorded chats. ``usage.tokens`` is used only
when a response has no billed units. ``usage.cached_tokens`` is not a discount Cohere bills
separately (the billed units already are what is charged), so it is not reported as cache reads.
Embeddings report ``meta.billed_units.input_tokens``.

Streams: ``chat_stream`` is a generator (sync) or an async generator: the request is sent on the
first ``next``. The usage comes in the final ``message-end`` event (``delta.usage``), the id in
``message-start``, the finish reason in ``message-end``. The v2 API does not echo the model: the
request model prices the call. A v2 response or stream whose finish reason is ERROR or TIMEOUT fails
the span (``error.type`` the reason) and charges only the billed units the provider reported (as v1).

Estimation (billed input tokens): Cohere's tokenizer is not available offline, so the heuristic
counts the message texts (billed units include no template tokens), each tool definition as its
name, description and parameters (name, type, description) + 2, each assistant tool call as its
name and arguments + 1, each tool result + 1. Calibrated on the recorded requests.

API v1 (cohere 5.x to 7.x alike: the methods of ``cohere.base_client.BaseCohere`` /
``AsyncBaseCohere``, the bases of ``Client`` / ``AsyncClient``): the usage is the response's
``meta`` (``meta.billed_units``, the same trap: the recorded v1 chat stream bills 7 input tokens
where ``meta.tokens.input_tokens`` is 69). v1 streams are JSON lines: ``stream-start``,
``text-generation``, ..., ``stream-end`` whose ``response`` carries the ``meta`` (``generate_stream``:
``stream-end`` or ``stream-error``). A response or stream whose finish reason is ERROR,
ERROR_TOXIC or ERROR_LIMIT (or a ``stream-error``) fails the span (``error.type`` the reason) and
charges only the billed units the provider reported. v1 and v2 share no method: ``ClientV2``
inherits ``chat`` from ``V2Client`` (v2 wrapper only) and ``generate`` from ``BaseCohere`` (v1
wrapper only), so each call makes one span. ``Client`` binds ``chat`` / ``chat_stream`` on the
instance when it is built (its argument checks): a client built before ``instrument()`` keeps the
unwrapped methods (as for v2): instrument first, as ``opentelemetry-instrument`` does.

Message content is recorded only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``
(``_content``): v2 chat messages and the answer (tool plan, text, tool calls); v1 preamble, chat
history, message, tool calls and results, the answer; generate's prompt and generations. Embed
calls record none.

Modules: ``_attributes`` (request attributes, billed usage, outcomes), ``_estimate`` (the input
estimate), ``_streams`` (the stream states, the async stream's throttle), ``_content`` (message
content), ``_calls`` (one call and the method wrappers).
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from .. import _core as c
from ._attributes import (
    PROVIDER,
    chat_outcome,
    cohere_usage,
    embeddings_outcome,
    generate_outcome,
    request_attributes,
    v1_chat_outcome,
)
from ._calls import (
    async_stream_wrapper,
    async_wrapper,
    sync_wrapper,
    v1_async_stream_wrapper,
    v1_async_wrapper,
    v1_sync_wrapper,
)
from ._estimate import (
    TOOL_CALL_TOKENS,
    TOOL_DEFINITION_TOKENS,
    TOOL_RESULT_TOKENS,
    estimate_chat,
    estimate_embed,
    estimate_generate,
    estimate_v1_chat,
)
from ._streams import CohereStreamState, CohereV1StreamState

__all__ = [
    "PROVIDER", "TOOL_CALL_TOKENS", "TOOL_DEFINITION_TOKENS", "TOOL_RESULT_TOKENS",
    "CohereInstrumentor", "CohereStreamState", "CohereV1StreamState",
    "chat_outcome", "cohere_usage", "embeddings_outcome", "estimate_chat", "estimate_embed", "estimate_generate",
    "estimate_v1_chat", "generate_outcome", "request_attributes", "v1_chat_outcome",
]

_INSTRUMENTS = ("cohere >= 5.9.0, < 8",)

_MODULE = "cohere.v2.client"
# (class.method, kind, is_async); is_async None: an async generator function, called without await.
_METHODS: List[Tuple[str, str, Optional[bool]]] = [
    ("V2Client.chat", "chat", False),
    ("V2Client.chat_stream", "chat_stream", False),
    ("V2Client.embed", "embeddings", False),
    ("AsyncV2Client.chat", "chat", True),
    ("AsyncV2Client.chat_stream", "chat_stream", None),
    ("AsyncV2Client.embed", "embeddings", True),
]


_V1_MODULE = "cohere.base_client"
# (class.method, kind, is_async) of API v1; is_async None: an async generator function.
_V1_METHODS: List[Tuple[str, str, Optional[bool]]] = [
    ("BaseCohere.chat", "chat", False),
    ("BaseCohere.chat_stream", "chat_stream", False),
    ("BaseCohere.generate", "generate", False),
    ("BaseCohere.generate_stream", "generate_stream", False),
    ("AsyncBaseCohere.chat", "chat", True),
    ("AsyncBaseCohere.chat_stream", "chat_stream", None),
    ("AsyncBaseCohere.generate", "generate", True),
    ("AsyncBaseCohere.generate_stream", "generate_stream", None),
]


class CohereInstrumentor(c.ProviderInstrumentor):
    """Instruments the ``cohere`` SDK: v2 ``chat``, ``chat_stream`` and ``embed``, v1 ``chat``,
    ``chat_stream``, ``generate`` and ``generate_stream``; sync and async.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider``, ``catalog``.
    """

    instruments = _INSTRUMENTS
    scope = "otel_ai_cost.instrumentation.cohere"

    def wrap_methods(self, config: c.WrapContext) -> None:
        tables = ((_MODULE, _METHODS, (sync_wrapper, async_wrapper, async_stream_wrapper)),
                  (_V1_MODULE, _V1_METHODS, (v1_sync_wrapper, v1_async_wrapper, v1_async_stream_wrapper)))
        for module, methods, (sync, coroutine, async_stream) in tables:
            for path, kind, is_async in methods:
                if c.resolve(module, path) is None:
                    continue
                factory: Callable[[c.WrapContext, str], Callable[..., Any]] = (
                    async_stream if is_async is None else coroutine if is_async else sync)
                c.wrap(module, path, factory(config, kind), self._wrapped)
