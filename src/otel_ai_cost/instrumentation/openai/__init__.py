"""OpenTelemetry instrumentor for the ``openai`` SDK: chat completions, Responses API, embeddings
and legacy completions.

Every call becomes a GenAI span carrying the token usage and its cost in USD. OpenAI-compatible
endpoints (Azure OpenAI, OpenRouter, Groq, Together, DeepSeek, xAI, Mistral, Gemini) are
recognised from the client's base URL.

``with_raw_response``: the SDK calls the same ``create`` with a header asking for the raw
response, so the wrapper receives a ``LegacyAPIResponse``. For a non-streaming call its body is
already read: the wrapper calls ``parse()`` once, which the SDK caches per type, so the user's own
``parse()`` returns the very same object (no second parse). For a streaming call the response is
returned behind a transparent proxy whose ``parse()`` returns the stream proxy.
``with_streaming_response`` (body not read yet) gets the same proxy (``_stainless``), and the usage
is read when the user calls ``parse()``, or from the bytes when the user reads the whole body
(``read()`` / ``text()`` / ``json()``); a response closed or dropped unparsed ends its span with the
input estimate (``ai_cost.usage.source=estimated``).

The SDK caches ``with_raw_response`` / ``with_streaming_response`` per resource object, bound to the
``create`` it found the first time. So the clients' ``request`` is wrapped too (looked up at call
time): a request to a wrapped endpoint (``/chat/completions``, ``/responses``, ``/completions``,
``/embeddings``) that did not come through a current wrapper (an object cached before
``instrument()``) is instrumented there, from the request body; and a wrapper of an earlier
``instrument()`` (cached, then ``uninstrument()``) calls the SDK untouched.

Message content (chat completions and Responses: system instructions, input and output messages) is
recorded only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (see ``_content``).
"""
from __future__ import annotations

import os
import threading
from typing import Any, Collection, List

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import _core as c
from ._attributes import (
    OUTCOMES,
    chat_outcome,
    completions_request_attributes,
    embeddings_outcome,
    may_add_stream_options,
    provider_cost,
    provider_from_client,
    provider_from_host,
    responses_outcome,
    responses_request_attributes,
    responses_usage,
)
from ._calls import REQUEST_METHODS, Config, helper_close_wrapper, method_wrapper, router
from ._estimate import lazy_estimate
from ._streams import OpenAIChatStreamState, ResponsesStreamState

_INSTRUMENTS = ("openai >= 1.40.0, < 4",)

INCLUDE_USAGE_ENV = "OTEL_AI_COST_OPENAI_INCLUDE_USAGE"


# (module, attribute path) of every method wrapped. Missing ones (older SDKs) are skipped.
_CHAT = [
    ("openai.resources.chat.completions", "Completions.create", "chat", False),
    ("openai.resources.chat.completions", "AsyncCompletions.create", "chat", True),
    # Structured outputs: parse() posts by itself rather than through create().
    ("openai.resources.chat.completions", "Completions.parse", "chat", False),
    ("openai.resources.chat.completions", "AsyncCompletions.parse", "chat", True),
]
_RESPONSES = [
    ("openai.resources.responses", "Responses.create", "responses", False),
    ("openai.resources.responses", "AsyncResponses.create", "responses", True),
    ("openai.resources.responses", "Responses.parse", "responses", False),
    ("openai.resources.responses", "AsyncResponses.parse", "responses", True),
]
_COMPLETIONS = [
    ("openai.resources.completions", "Completions.create", "completions", False),
    ("openai.resources.completions", "AsyncCompletions.create", "completions", True),
]
_EMBEDDINGS = [
    ("openai.resources.embeddings", "Embeddings.create", "embeddings", False),
    ("openai.resources.embeddings", "AsyncEmbeddings.create", "embeddings", True),
]
# SDK stream helpers whose close() closes the HTTP response directly, bypassing our proxy.
_HELPER_CLOSES = [
    ("openai.lib.streaming.chat._completions", "ChatCompletionStream.close", False),
    ("openai.lib.streaming.chat._completions", "AsyncChatCompletionStream.close", True),
    ("openai.lib.streaming.responses._responses", "ResponseStream.close", False),
    ("openai.lib.streaming.responses._responses", "AsyncResponseStream.close", True),
]

def include_usage_from_env() -> bool:
    """``OTEL_AI_COST_OPENAI_INCLUDE_USAGE``: true (default) or false, spelled as every OTEL_AI_COST_* boolean."""
    from ...config import parse_bool

    raw = os.environ.get(INCLUDE_USAGE_ENV)
    if raw is None or raw.strip() == "":
        return True
    return parse_bool(raw, INCLUDE_USAGE_ENV)


def _warm_up() -> None:
    """Load the default tokenizer (o200k) and import the lazy modules in a daemon thread.

    A request that comes before the load is done does not wait for a parse (``_tiktoken_offline``):
    its start estimate uses the heuristic, or, for a budget or hook, waits only for a load from the
    disk cache and otherwise holds an upper bound. Never blocks ``instrument()`` and never raises.
    """
    try:
        from ... import _tiktoken_offline

        if _tiktoken_offline.O200K_BASE in _tiktoken_offline._loaded:
            return

        def run() -> None:
            try:
                from ... import cost, tokens  # noqa: F401 - imported for their side effect only

                _tiktoken_offline.get_encoding(_tiktoken_offline.O200K_BASE)
            except BaseException:  # noqa: BLE001 - a failed warm-up only means the first call pays
                pass

        threading.Thread(target=run, name="otel-ai-cost-warm-up", daemon=True).start()
    except Exception:  # noqa: BLE001
        pass


class OpenAIInstrumentor(BaseInstrumentor):
    """Instruments the ``openai`` SDK (sync and async; create, streams, ``.stream()`` helpers,
    ``with_raw_response``) for chat completions, the Responses API and embeddings.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider``,
    ``include_stream_usage`` (default from ``OTEL_AI_COST_OPENAI_INCLUDE_USAGE``, true) and
    ``catalog`` (a pricing catalog; default: the packaged one).
    """

    # BaseInstrumentor is a singleton whose __init__ runs again on every OpenAIInstrumentor(): the
    # list of wrapped methods must not be reset there, or uninstrument() would forget them.
    _wrapped: List[Any] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        if c.switched_off(self):  # OTEL_AI_COST_ENABLED=false, or a bad OTEL_AI_COST_* value
            return
        include = kwargs.get("include_stream_usage")
        if include is None:
            include = include_usage_from_env()
        telemetry = c.telemetry_from("otel_ai_cost.instrumentation.openai", kwargs)
        config = Config(telemetry, bool(include), kwargs.get("catalog"))
        self._wrapped = []
        router.current = config
        for module, path, kind, is_async in _CHAT + _RESPONSES + _COMPLETIONS + _EMBEDDINGS:
            if c.resolve(module, path) is None:
                continue
            c.wrap(module, path, method_wrapper(config, kind, is_async), self._wrapped)
        router.wrap_requests(config, REQUEST_METHODS, method_wrapper, self._wrapped)
        for module, path, is_async in _HELPER_CLOSES:
            if c.resolve(module, path) is None:
                continue
            c.wrap(module, path, helper_close_wrapper(is_async), self._wrapped)
        _warm_up()

    def _uninstrument(self, **kwargs: Any) -> None:
        router.current = None
        c.unwrap_all(self._wrapped)
        self._wrapped = []


__all__ = [
    "INCLUDE_USAGE_ENV", "OUTCOMES", "OpenAIChatStreamState", "OpenAIInstrumentor", "ResponsesStreamState",
    "chat_outcome", "completions_request_attributes", "embeddings_outcome", "include_usage_from_env",
    "lazy_estimate", "may_add_stream_options", "provider_cost", "provider_from_client", "provider_from_host",
    "responses_outcome", "responses_request_attributes", "responses_usage",
]
