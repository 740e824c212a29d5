"""OpenTelemetry instrumentor for the ``cohere`` SDK, API v2: ``chat``, ``chat_stream`` and
``embed`` of ``ClientV2`` / ``AsyncClientV2`` (and ``Client().v2``).

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
request model prices the call.

Estimation (billed input tokens): Cohere's tokenizer is not available offline, so the heuristic
counts the message texts (billed units include no template tokens), each tool definition as its
name, description and parameters (name, type, description) + 2, each assistant tool call as its
name and arguments + 1, each tool result + 1. Calibrated on the recorded requests.

Message content is never recorded: content capture is not supported for cohere; with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` the instrumentor says so once (in the log).

Modules: ``_attributes`` (request attributes, billed usage, outcomes), ``_estimate`` (the input
estimate), ``_streams`` (the stream state, the async stream's throttle), ``_calls`` (one call and the
method wrappers).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from .. import _core as c
from .._core import _content as capture
from ._attributes import PROVIDER, chat_outcome, cohere_usage, embeddings_outcome, request_attributes
from ._calls import async_stream_wrapper, async_wrapper, sync_wrapper
from ._estimate import TOOL_CALL_TOKENS, TOOL_DEFINITION_TOKENS, TOOL_RESULT_TOKENS, estimate_chat, estimate_embed
from ._streams import CohereStreamState

__all__ = [
    "PROVIDER", "TOOL_CALL_TOKENS", "TOOL_DEFINITION_TOKENS", "TOOL_RESULT_TOKENS",
    "CohereInstrumentor", "CohereStreamState",
    "chat_outcome", "cohere_usage", "embeddings_outcome", "estimate_chat", "estimate_embed", "request_attributes",
]

_INSTRUMENTS = ("cohere >= 5.9.0, < 8",)

_MODULE = "cohere.v2.client"
# (class.method, kind, is_async); is_async None: an async generator function, called without await.
_METHODS: List[Tuple[str, str, Optional[bool]]] = [
    ("V2Client.chat", "chat", False),
    ("V2Client.chat_stream", "chat_stream", False),
    ("V2Client.embed", "embeddings", False),
    ("AsyncV2Client.chat", "chat", True),
    ("AsyncV2Client.chat_stream", "chat_stream_async", None),
    ("AsyncV2Client.embed", "embeddings", True),
]


class CohereInstrumentor(c.ProviderInstrumentor):
    """Instruments the ``cohere`` SDK's v2 API: ``chat``, ``chat_stream`` and ``embed``, sync and async.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider``, ``catalog``.
    """

    instruments = _INSTRUMENTS
    scope = "otel_ai_cost.instrumentation.cohere"

    def wrap_methods(self, config: c.WrapContext) -> None:
        capture.not_supported("cohere")  # says so once when content capture is asked for
        for path, kind, is_async in _METHODS:
            if c.resolve(_MODULE, path) is None:
                continue
            if is_async is None:
                factory = async_stream_wrapper
            else:
                factory = async_wrapper if is_async else sync_wrapper
            c.wrap(_MODULE, path, factory(config, "chat_stream" if is_async is None else kind), self._wrapped)
