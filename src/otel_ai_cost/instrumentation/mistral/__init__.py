"""OpenTelemetry instrumentor for the ``mistralai`` SDK (v1 and later): chat (``complete``,
``stream`` and their async forms) and embeddings.

- provider ``mistral_ai``; ``server.address`` from the SDK configuration (``api.mistral.ai``, the
  EU/US servers or a custom ``server_url``).
- Usage: ``usage.prompt_tokens`` / ``completion_tokens``; cached prompt tokens, when the API reports
  them, in ``usage.prompt_tokens_details.cached_tokens`` (a part of ``prompt_tokens``; the SDK keeps
  unknown fields as extras, and some responses spell it ``prompt_token_details``); reasoning tokens
  in ``usage.completion_tokens_details.reasoning_tokens`` when present (a part of completion tokens).
- Streams: ``chat.stream`` yields ``CompletionEvent``s whose ``data`` is the chunk; Mistral puts the
  usage on the last chunk without being asked (the API rejects unknown fields, so nothing is added).
- Estimation: no public tokenizer is used offline; the heuristic counts the text, each digit as its
  own token (Mistral's tokenizers split numbers into digits), plus the instruct template's tokens:
  ``<s>`` once, ``[INST]``/``[/INST]`` around each user turn, ``</s>`` after each assistant turn,
  ``[AVAILABLE_TOOLS]...[/AVAILABLE_TOOLS]`` around the JSON tool definitions. Calibrated on the
  recorded requests (``benchmarks/estimation_error_mistral_cohere_groq.py``).

Message content is never recorded: content capture is not supported for mistral; with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` the instrumentor says so once (in the log).
"""
from __future__ import annotations

from .. import _core as c
from .._core import _content
from ._attributes import OUTCOMES, PROVIDER, chat_outcome, embeddings_outcome, mistral_usage, request_attributes
from ._calls import async_wrapper, sync_wrapper
from ._estimate import count_text, estimate_chat, estimate_embeddings, lazy_estimate
from ._streams import MistralStreamState

_INSTRUMENTS = ("mistralai >= 1.0.0, < 4",)

# (module candidates, attribute path, kind, is_async): mistralai 2+ lives under ``mistralai.client``.
_CHAT_MODULES = ("mistralai.client.chat", "mistralai.chat")
_EMBEDDINGS_MODULES = ("mistralai.client.embeddings", "mistralai.embeddings")
_METHODS = [
    (_CHAT_MODULES, "Chat.complete", "chat", False),
    (_CHAT_MODULES, "Chat.complete_async", "chat", True),
    (_CHAT_MODULES, "Chat.stream", "chat_stream", False),
    (_CHAT_MODULES, "Chat.stream_async", "chat_stream", True),
    (_EMBEDDINGS_MODULES, "Embeddings.create", "embeddings", False),
    (_EMBEDDINGS_MODULES, "Embeddings.create_async", "embeddings", True),
]


class MistralInstrumentor(c.ProviderInstrumentor):
    """Instruments the ``mistralai`` SDK: ``chat.complete``/``complete_async``, ``chat.stream``/
    ``stream_async`` and ``embeddings.create``/``create_async``.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider``, ``catalog``.
    """

    instruments = _INSTRUMENTS
    scope = "otel_ai_cost.instrumentation.mistral"

    def wrap_methods(self, config: c.WrapContext) -> None:
        _content.not_supported("mistral")  # says so once when content capture is asked for
        for modules, path, kind, is_async in _METHODS:
            module = next((m for m in modules if c.resolve(m, path) is not None), None)
            if module is None:
                continue
            factory = async_wrapper if is_async else sync_wrapper
            c.wrap(module, path, factory(config, kind), self._wrapped)


__all__ = [
    "OUTCOMES", "PROVIDER", "MistralInstrumentor", "MistralStreamState", "chat_outcome", "count_text",
    "embeddings_outcome", "estimate_chat", "estimate_embeddings", "lazy_estimate", "mistral_usage",
    "request_attributes",
]
