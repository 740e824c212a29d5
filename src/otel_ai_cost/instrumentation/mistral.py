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

import json
import re
import time
from typing import Any, Collection, Dict, Mapping, Optional, Tuple

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import _semconv as sc
from .._request import LLMRequest, TokenCount
from ..cost import Usage
from . import _chat
from . import _core as c
from ._chat import ChatStreamState, chat_usage, content_text, penalty_attributes, plain, stop_attributes
from ._core import (
    Operation,
    Outcome,
    _content,
    as_int,
    as_str,
    get,
    log_once,
    materialize,
)

PROVIDER = "mistral_ai"

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

_DEFAULT_SERVER = "https://api.mistral.ai"

# Template tokens (see the module docstring).
BOS_TOKENS = 1
USER_TURN_TOKENS = 2          # [INST] ... [/INST]
ASSISTANT_TURN_TOKENS = 1     # </s>
TOOL_RESULT_TOKENS = 2        # [TOOL_RESULTS] ... [/TOOL_RESULTS]
TOOLS_BLOCK_TOKENS = 2        # [AVAILABLE_TOOLS] ... [/AVAILABLE_TOOLS]
EMBEDDING_INPUT_TOKENS = 2    # <s> ... </s> around each embedded text (10 reported for 8 text tokens)
_DIGIT_RUN = re.compile(r"\d+")


# ---------------------------------------------------------------------------------------------
# Estimation


def count_text(text: str) -> int:
    """Heuristic token count of ``text`` for Mistral's tokenizers: digits are one token each."""
    from ..tokens import heuristic_tokens

    if not text:
        return 0
    tokens = heuristic_tokens(text)
    for run in _DIGIT_RUN.findall(text):
        tokens += len(run) - (len(run) + 2) // 3  # the heuristic counts groups of up to 3 digits
    return tokens


def estimate_chat(model: Optional[str], messages: Any, tools: Any = None) -> TokenCount:
    """Prompt tokens of a Mistral chat request (heuristic plus the instruct template)."""
    from ..tokens import HEURISTIC

    try:
        tokens = BOS_TOKENS
        for message in messages or ():
            m = plain(message)
            if not isinstance(m, Mapping):
                tokens += USER_TURN_TOKENS + count_text(str(m))
                continue
            role = m.get("role")
            text = content_text(m.get("content"))
            tokens += count_text(text)
            if role == "user":
                tokens += USER_TURN_TOKENS
            elif role == "assistant":
                tokens += ASSISTANT_TURN_TOKENS
                for call in m.get("tool_calls") or ():
                    call = plain(call)
                    function = call.get("function") if isinstance(call, Mapping) else None
                    if isinstance(function, Mapping):
                        args = function.get("arguments")
                        args = args if isinstance(args, str) else json.dumps(args, default=str)
                        tokens += 2 + count_text(str(function.get("name") or "")) + count_text(args)
            elif role == "tool":
                tokens += TOOL_RESULT_TOKENS
            # system: joined to the first user turn with a blank line, no tokens of its own
        if tools:
            definitions = [plain(t) for t in tools]
            tokens += TOOLS_BLOCK_TOKENS + count_text(json.dumps(definitions, default=str))
        return TokenCount(tokens, HEURISTIC)
    except Exception as exc:  # noqa: BLE001
        log_once("mistral estimate", exc)
        return TokenCount(0, HEURISTIC)


def estimate_embeddings(inputs: Any) -> TokenCount:
    from ..tokens import HEURISTIC

    if isinstance(inputs, str):
        inputs = [inputs]
    texts = [t for t in inputs or () if isinstance(t, str)]
    return TokenCount(sum(count_text(t) + EMBEDDING_INPUT_TOKENS for t in texts), HEURISTIC)


def _lazy_estimate(kind: str, kwargs: Mapping[str, Any]):
    model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else ""
    if kind == "embeddings":
        def estimate() -> TokenCount:
            return estimate_embeddings(kwargs.get("inputs", kwargs.get("input")))
    else:
        def estimate() -> TokenCount:
            tools = kwargs.get("tools")
            return estimate_chat(model, kwargs.get("messages") or [],
                                 tools if isinstance(tools, (list, tuple)) else None)
    return estimate


# ---------------------------------------------------------------------------------------------
# Request attributes


def _server(instance: Any, kwargs: Mapping[str, Any]) -> Tuple[Optional[str], Optional[int]]:
    url = kwargs.get("server_url")
    if not isinstance(url, str) or not url:
        url = None
        config = get(instance, "sdk_configuration")
        details = getattr(config, "get_server_details", None)
        if callable(details):
            try:
                url = details()[0]
            except Exception:  # noqa: BLE001
                url = None
    from urllib.parse import urlsplit

    parts = urlsplit(url if isinstance(url, str) and url else _DEFAULT_SERVER)
    if not parts.hostname:
        return None, None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def request_attributes(operation: str, instance: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    attrs: Dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_PROVIDER_NAME: PROVIDER}
    model = kwargs.get("model")
    if isinstance(model, str):
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    host, port = _server(instance, kwargs)
    if host:
        attrs[sc.SERVER_ADDRESS], attrs[sc.SERVER_PORT] = host, port
    if operation == "embeddings":
        dims = as_int(kwargs.get("output_dimension"))
        if dims is not None:
            attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
        return attrs
    max_tokens = as_int(kwargs.get("max_tokens"))
    if max_tokens is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    penalty_attributes(kwargs, attrs)
    stop_attributes(kwargs.get("stop"), attrs)
    seed = as_int(kwargs.get("random_seed"))
    if seed is not None:
        attrs[sc.GEN_AI_REQUEST_SEED] = seed
    n = as_int(kwargs.get("n"))
    if n is not None and n != 1:
        attrs[sc.GEN_AI_REQUEST_CHOICE_COUNT] = n
    fmt = plain(kwargs.get("response_format"))
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
        attrs[sc.GEN_AI_OUTPUT_TYPE] = "json"
    if operation == "chat" and (kwargs.get("stream") is True or kwargs.get("_otel_stream") is True):
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


# ---------------------------------------------------------------------------------------------
# Usage and responses


def mistral_usage(usage: Any) -> Optional[Usage]:
    """The chat format's usage (either spelling of the details), without audio tokens."""
    return chat_usage(usage, audio=False)


def chat_outcome(response: Any) -> Outcome:
    outcome = _chat.chat_outcome(response, mistral_usage)
    outcome.service_tier = as_str(get(get(response, "usage"), "service_tier"))
    return outcome


def embeddings_outcome(response: Any) -> Outcome:
    outcome = _chat.embeddings_outcome(response)
    outcome.attributes = {sc.GEN_AI_RESPONSE_ID: as_str(get(response, "id"))}
    return outcome


class MistralStreamState(ChatStreamState):
    """``ChatStreamState`` of ``CompletionEvent``s (the chunk is the event's ``data``); the service
    tier is the usage's."""

    read_usage = staticmethod(mistral_usage)
    event_data = True
    chunk_tier = False

    def outcome(self) -> Outcome:
        outcome = super().outcome()
        outcome.service_tier = as_str(get(self.usage_obj, "service_tier"))
        return outcome


_OUTCOMES = {"chat": chat_outcome, "embeddings": embeddings_outcome}


# ---------------------------------------------------------------------------------------------
# Calls


class _Call(c.Call):
    outcomes = _OUTCOMES
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
                         estimate_input=_lazy_estimate(kind, call_kwargs))
    name = f"{operation} {model}" if model else operation
    op = Operation(config.telemetry, request, name, attrs, catalog=config.catalog)
    return _Call(op, kind), call_kwargs


def _sync_wrapper(config: c.WrapContext, kind: str):
    # ``_prepare`` and ``time`` are looked up at call time (tests replace them on this module).
    return c.sync_call_wrapper(f"mistral {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                               lambda delay: time.sleep(delay))


def _async_wrapper(config: c.WrapContext, kind: str):
    return c.async_call_wrapper(f"mistral {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                lambda delay: c.async_sleep(delay))


class MistralInstrumentor(BaseInstrumentor):
    """Instruments the ``mistralai`` SDK: ``chat.complete``/``complete_async``, ``chat.stream``/
    ``stream_async`` and ``embeddings.create``/``create_async``.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider``, ``catalog``.
    """

    _wrapped: list = []  # BaseInstrumentor is a singleton: see OpenAIInstrumentor

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        if c.switched_off(self):  # OTEL_AI_COST_ENABLED=false, or a bad OTEL_AI_COST_* value
            return
        _content.not_supported("mistral")  # says so once when content capture is asked for
        telemetry = c.telemetry_from("otel_ai_cost.instrumentation.mistral", kwargs)
        config = c.WrapContext(telemetry, kwargs.get("catalog"))
        self._wrapped = []
        for modules, path, kind, is_async in _METHODS:
            module = next((m for m in modules if c.resolve(m, path) is not None), None)
            if module is None:
                continue
            factory = _async_wrapper if is_async else _sync_wrapper
            c.wrap(module, path, factory(config, kind), self._wrapped)

    def _uninstrument(self, **kwargs: Any) -> None:
        c.unwrap_all(self._wrapped)
        self._wrapped = []
