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
from . import _core as c
from ._chat_format import finish_reasons
from ._core import (
    CharCounter,
    Operation,
    Outcome,
    StreamState,
    _content,
    as_int,
    as_num,
    as_str,
    estimated_usage,
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


def _plain(value: Any) -> Any:
    """An SDK model (pydantic) or a TypedDict message as plain data."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(exclude_none=True)
        except Exception:  # noqa: BLE001
            return value
    return value


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            part = _plain(part)
            if isinstance(part, Mapping):
                text = part.get("text") or part.get("thinking")
                if isinstance(text, list):
                    text = _content_text(text)
                if isinstance(text, str):
                    parts.append(text)
                elif part.get("type") not in (None, "text"):
                    parts.append(json.dumps(part, default=str))
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return str(content)


def estimate_chat(model: Optional[str], messages: Any, tools: Any = None) -> TokenCount:
    """Prompt tokens of a Mistral chat request (heuristic plus the instruct template)."""
    from ..tokens import HEURISTIC

    try:
        tokens = BOS_TOKENS
        for message in messages or ():
            m = _plain(message)
            if not isinstance(m, Mapping):
                tokens += USER_TURN_TOKENS + count_text(str(m))
                continue
            role = m.get("role")
            text = _content_text(m.get("content"))
            tokens += count_text(text)
            if role == "user":
                tokens += USER_TURN_TOKENS
            elif role == "assistant":
                tokens += ASSISTANT_TURN_TOKENS
                for call in m.get("tool_calls") or ():
                    call = _plain(call)
                    function = call.get("function") if isinstance(call, Mapping) else None
                    if isinstance(function, Mapping):
                        args = function.get("arguments")
                        args = args if isinstance(args, str) else json.dumps(args, default=str)
                        tokens += 2 + count_text(str(function.get("name") or "")) + count_text(args)
            elif role == "tool":
                tokens += TOOL_RESULT_TOKENS
            # system: joined to the first user turn with a blank line, no tokens of its own
        if tools:
            plain = [_plain(t) for t in tools]
            tokens += TOOLS_BLOCK_TOKENS + count_text(json.dumps(plain, default=str))
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
    for key, attr in (("temperature", sc.GEN_AI_REQUEST_TEMPERATURE), ("top_p", sc.GEN_AI_REQUEST_TOP_P),
                      ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY),
                      ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY)):
        value = as_num(kwargs.get(key))
        if value is not None:
            attrs[attr] = value
    stop = kwargs.get("stop")
    if isinstance(stop, str):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, (list, tuple)):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [s for s in stop if isinstance(s, str)]
    seed = as_int(kwargs.get("random_seed"))
    if seed is not None:
        attrs[sc.GEN_AI_REQUEST_SEED] = seed
    n = as_int(kwargs.get("n"))
    if n is not None and n != 1:
        attrs[sc.GEN_AI_REQUEST_CHOICE_COUNT] = n
    fmt = _plain(kwargs.get("response_format"))
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
        attrs[sc.GEN_AI_OUTPUT_TYPE] = "json"
    if operation == "chat" and (kwargs.get("stream") is True or kwargs.get("_otel_stream") is True):
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


# ---------------------------------------------------------------------------------------------
# Usage and responses


def _details(usage: Any, *names: str) -> Any:
    for name in names:
        value = get(usage, name)
        if value is not None:
            return value
    return None


def mistral_usage(usage: Any) -> Optional[Usage]:
    prompt = as_int(get(usage, "prompt_tokens"))
    completion = as_int(get(usage, "completion_tokens"))
    if prompt is None and completion is None:
        return None
    prompt_details = _details(usage, "prompt_tokens_details", "prompt_token_details")
    completion_details = _details(usage, "completion_tokens_details", "completion_token_details")
    return Usage(
        input_tokens=prompt or 0,
        output_tokens=completion or 0,
        cache_read_input_tokens=as_int(get(prompt_details, "cached_tokens")) or 0,
        reasoning_output_tokens=as_int(get(completion_details, "reasoning_tokens")) or 0,
    )


def chat_outcome(response: Any) -> Outcome:
    attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: as_str(get(response, "id"))}
    reasons = finish_reasons(get(response, "choices"))
    if reasons:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    usage = get(response, "usage")
    return Outcome(usage=mistral_usage(usage), response_model=as_str(get(response, "model")),
                   service_tier=as_str(get(usage, "service_tier")), attributes=attrs)


def embeddings_outcome(response: Any) -> Outcome:
    prompt = as_int(get(get(response, "usage"), "prompt_tokens"))
    return Outcome(usage=Usage(input_tokens=prompt, output_tokens=0) if prompt is not None else None,
                   response_model=as_str(get(response, "model")),
                   attributes={sc.GEN_AI_RESPONSE_ID: as_str(get(response, "id"))})


class MistralStreamState(StreamState):
    """Reads id, model, finish reasons and the final usage from ``CompletionEvent``s."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.response_id: Optional[str] = None
        self.model: Optional[str] = None
        self.finish_reasons: Dict[int, str] = {}
        self.usage_obj: Any = None
        self.counter = CharCounter()

    def observe(self, event: Any) -> bool:
        chunk = get(event, "data")
        if chunk is None or isinstance(chunk, (str, bytes)):
            chunk = event
        if not self.response_id:
            self.response_id = as_str(get(chunk, "id"))
        if not self.model:
            self.model = as_str(get(chunk, "model"))
        usage = get(chunk, "usage")
        if usage is not None and mistral_usage(usage) is not None:
            self.usage_obj = usage
        choices = get(chunk, "choices")
        if isinstance(choices, (list, tuple)):
            for choice in choices:
                index = as_int(get(choice, "index")) or 0
                reason = get(choice, "finish_reason")
                if isinstance(reason, str):  # only as reported: a stream closed early has none
                    self.finish_reasons[index] = reason
                if self.usage_obj is None:
                    delta = get(choice, "delta")
                    self.counter.add(_content_text(get(delta, "content")))
                    for call in get(delta, "tool_calls") or ():
                        function = get(call, "function")
                        self.counter.add(get(function, "name"))
                        args = get(function, "arguments")
                        self.counter.add(args if isinstance(args, str) else None)
        return False

    def outcome(self) -> Outcome:
        attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: self.response_id}
        if self.finish_reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self.finish_reasons[i] for i in sorted(self.finish_reasons)]
        usage = mistral_usage(self.usage_obj) if self.usage_obj is not None else None
        source = sc.AiCostUsageSourceValues.PROVIDER
        if usage is None:
            usage = estimated_usage(self.operation.request, self.counter)
            source = sc.AiCostUsageSourceValues.ESTIMATED
        return Outcome(usage=usage, usage_source=source, response_model=self.model,
                       service_tier=as_str(get(self.usage_obj, "service_tier")), attributes=attrs)


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
