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
``with_streaming_response`` (body not read yet) gets the same proxy, and the usage is read when
the user calls ``parse()``; a response closed or dropped unparsed ends its span without usage.

Message content is never recorded: this instrumentor does not implement content capture.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Iterator as _IteratorABC
from collections.abc import Mapping as _MappingABC
from typing import Any, Collection, Dict, Mapping, Optional, Tuple

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap

from .. import _semconv as sc
from .._request import LLMRequest, TokenCount
from ..cost import Usage
from ..errors import ConfigError
from . import _common as c
from ._common import Operation, Outcome, StreamState, Telemetry, log_once, safe

_INSTRUMENTS = ("openai >= 1.40.0, < 4",)

INCLUDE_USAGE_ENV = "OTEL_AI_COST_OPENAI_INCLUDE_USAGE"

OPENAI_API_TYPE = "openai.api.type"
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT = "openai.response.system_fingerprint"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT = "gen_ai.embeddings.dimension.count"

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

_PROVIDER_BY_HOST = {
    "api.openai.com": "openai",
    "openrouter.ai": "openrouter",
    "api.groq.com": "groq",
    "api.together.xyz": "together_ai",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x_ai",
    "api.mistral.ai": "mistral_ai",
    "generativelanguage.googleapis.com": "gcp.gemini",
}


def include_usage_from_env() -> bool:
    """``OTEL_AI_COST_OPENAI_INCLUDE_USAGE``: true (default) or false, spelled as every OTEL_AI_COST_* boolean."""
    from ..config import parse_bool

    raw = os.environ.get(INCLUDE_USAGE_ENV)
    if raw is None or raw.strip() == "":
        return True
    return parse_bool(raw, INCLUDE_USAGE_ENV)


# ---------------------------------------------------------------------------------------------
# Small pure helpers


def _given(value: Any) -> bool:
    if value is None:
        return False
    name = type(value).__name__
    return name not in ("NotGiven", "Omit")


_MISSING = object()


def _get(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``: attribute first (SDK models), Mapping only as the fallback."""
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    try:
        value = getattr(obj, name, _MISSING)
    except Exception:
        value = _MISSING
    if value is not _MISSING:
        return value
    if isinstance(obj, _MappingABC):
        try:
            return obj.get(name)
        except Exception:
            return None
    return None


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def provider_from_client(client: Any) -> str:
    """``gen_ai.provider.name`` for an OpenAI client, from its class and base URL."""
    if type(client).__name__ in ("AzureOpenAI", "AsyncAzureOpenAI"):
        return "azure.ai.openai"
    host = _host_port(client)[0] or ""
    return provider_from_host(host)


def provider_from_host(host: str) -> str:
    host = host.lower()
    if host in _PROVIDER_BY_HOST:
        return _PROVIDER_BY_HOST[host]
    if host.endswith(".openai.azure.com") or host.endswith(".cognitiveservices.azure.com"):
        return "azure.ai.openai"
    return "openai"


# id(base_url) -> (base_url, (host, port)): a client's URL object is immutable and long-lived,
# so host and port are parsed once per URL, not twice per call. The URL is kept in the value so
# a reused id() cannot match.
_HOST_PORT: Dict[int, Tuple[Any, Tuple[Optional[str], Optional[int]]]] = {}
_HOST_PORT_SIZE = 256


def _host_port(client: Any) -> Tuple[Optional[str], Optional[int]]:
    url = _get(client, "base_url")
    if url is None or type(url) is str or type(url) is dict:
        return _parse_host_port(url)
    hit = _HOST_PORT.get(id(url))
    if hit is not None and hit[0] is url:
        return hit[1]
    result = _parse_host_port(url)
    if len(_HOST_PORT) >= _HOST_PORT_SIZE:
        _HOST_PORT.clear()
    _HOST_PORT[id(url)] = (url, result)
    return result


def _parse_host_port(url: Any) -> Tuple[Optional[str], Optional[int]]:
    host = _str(_get(url, "host"))
    if not host:
        return None, None
    port = _int(_get(url, "port"))
    if port is None:
        port = 443 if _get(url, "scheme") == "https" else 80
    return host, port


# Azure OpenAI accepts ``stream_options`` from this API version on; older versions answer 400.
_AZURE_STREAM_OPTIONS_SINCE = "2024-09-01"
# Providers known to reject unknown request fields, so no ``stream_options`` is added for them.
_NO_STREAM_OPTIONS = {"mistral_ai"}


def may_add_stream_options(provider: str, client: Any, kwargs: Mapping[str, Any]) -> bool:
    """Whether ``stream_options.include_usage`` can be added without changing what the API accepts."""
    if provider in _NO_STREAM_OPTIONS:
        return False
    extra_body = kwargs.get("extra_body")
    if isinstance(extra_body, Mapping) and "stream_options" in extra_body:
        return False  # the caller set it their own way
    if provider == "azure.ai.openai":
        version = _str(_get(client, "_api_version"))
        if version is None:
            query = _get(client, "default_query") or _get(client, "_custom_query")
            version = _str(_get(query, "api-version"))
        return version is not None and version[:10] >= _AZURE_STREAM_OPTIONS_SINCE
    return True


def _add_include_usage(call_kwargs: Dict[str, Any]) -> bool:
    """Ask for the final usage chunk unless the caller decided; True when we added it."""
    options = call_kwargs.get("stream_options")
    options = options if _given(options) and isinstance(options, Mapping) else {}
    if "include_usage" in options:
        return False
    call_kwargs["stream_options"] = {**options, "include_usage": True}
    return True


def _usage_requested(call_kwargs: Mapping[str, Any]) -> bool:
    """Whether the request (as sent) asks for the final usage chunk of a stream."""
    for holder in (call_kwargs, call_kwargs.get("extra_body")):
        if isinstance(holder, Mapping):
            options = holder.get("stream_options")
            if _given(options) and isinstance(options, Mapping) and options.get("include_usage") is True:
                return True
    return False


def _output_type_from_format(fmt: Any) -> Optional[str]:
    if isinstance(fmt, type):
        return "json"  # parse(response_format=SomeModel): structured output from a pydantic class
    kind = _get(fmt, "type") if fmt is not None else None
    if kind in ("json_object", "json_schema"):
        return "json"
    if kind == "text":
        return "text"
    return None


def _materialize(kwargs: Dict[str, Any], key: str) -> None:
    """Turn a one-shot iterator argument into a list so the lazy estimate cannot consume it."""
    value = kwargs.get(key)
    if isinstance(value, _IteratorABC):
        kwargs[key] = list(value)


def _request_attributes(operation: str, api_type: Optional[str], provider: str, model: Any,
                        client: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    attrs: Dict[str, Any] = {
        c.GEN_AI_OPERATION_NAME: operation,
        c.GEN_AI_PROVIDER_NAME: provider,
    }
    if api_type:
        attrs[OPENAI_API_TYPE] = api_type
    if isinstance(model, str):
        attrs[c.GEN_AI_REQUEST_MODEL] = model
    host, port = _host_port(client)
    if host:
        attrs[c.SERVER_ADDRESS] = host
        attrs[c.SERVER_PORT] = port
    return attrs


def _max_tokens(kwargs: Mapping[str, Any], *names: str) -> Optional[int]:
    for name in names:
        value = kwargs.get(name)
        if _given(value) and _int(value) is not None:
            return value
    return None


def _common_sampling_attributes(kwargs: Mapping[str, Any], attrs: Dict[str, Any]) -> None:
    for key, attr in (("temperature", c.GEN_AI_REQUEST_TEMPERATURE), ("top_p", c.GEN_AI_REQUEST_TOP_P),
                      ("frequency_penalty", c.GEN_AI_REQUEST_FREQUENCY_PENALTY),
                      ("presence_penalty", c.GEN_AI_REQUEST_PRESENCE_PENALTY)):
        value = _num(kwargs.get(key))
        if value is not None:
            attrs[attr] = value
    tier = kwargs.get("service_tier")
    if isinstance(tier, str) and tier != "auto":
        attrs[OPENAI_REQUEST_SERVICE_TIER] = tier


def chat_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    attrs = _request_attributes("chat", "chat_completions", provider, kwargs.get("model"), client, kwargs)
    max_tokens = _max_tokens(kwargs, "max_completion_tokens", "max_tokens")
    if max_tokens is not None:
        attrs[c.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    _common_sampling_attributes(kwargs, attrs)
    stop = kwargs.get("stop")
    if isinstance(stop, str):
        attrs[c.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop]
    elif _given(stop) and isinstance(stop, (list, tuple)):
        attrs[c.GEN_AI_REQUEST_STOP_SEQUENCES] = [s for s in stop if isinstance(s, str)]
    seed = _int(kwargs.get("seed"))
    if seed is not None:
        attrs[c.GEN_AI_REQUEST_SEED] = seed
    n = _int(kwargs.get("n"))
    if n is not None and n != 1:
        attrs[c.GEN_AI_REQUEST_CHOICE_COUNT] = n
    output_type = _output_type_from_format(kwargs.get("response_format")) if _given(kwargs.get("response_format")) else None
    if output_type:
        attrs[c.GEN_AI_OUTPUT_TYPE] = output_type
    if kwargs.get("stream") is True:
        attrs[c.GEN_AI_REQUEST_STREAM] = True
    return attrs


def completions_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """Legacy ``completions.create``: the chat attributes, operation ``text_completion``."""
    attrs = chat_request_attributes(provider, client, kwargs)
    attrs[c.GEN_AI_OPERATION_NAME] = "text_completion"
    attrs.pop(OPENAI_API_TYPE, None)
    return attrs


def responses_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    attrs = _request_attributes("chat", "responses", provider, kwargs.get("model"), client, kwargs)
    max_tokens = _max_tokens(kwargs, "max_output_tokens")
    if max_tokens is not None:
        attrs[c.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    _common_sampling_attributes(kwargs, attrs)
    text = kwargs.get("text")
    if _given(text):
        output_type = _output_type_from_format(_get(text, "format"))
        if output_type:
            attrs[c.GEN_AI_OUTPUT_TYPE] = output_type
    if kwargs.get("stream") is True:
        attrs[c.GEN_AI_REQUEST_STREAM] = True
    return attrs


def embeddings_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    attrs = _request_attributes("embeddings", None, provider, kwargs.get("model"), client, kwargs)
    fmt = kwargs.get("encoding_format")
    if isinstance(fmt, str):
        attrs[c.GEN_AI_REQUEST_ENCODING_FORMATS] = [fmt]
    dims = _int(kwargs.get("dimensions"))
    if dims is not None:
        attrs[GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
    return attrs


# ---------------------------------------------------------------------------------------------
# Usage and response attributes


def chat_usage(usage: Any) -> Optional[Usage]:
    """Usage from a chat completion (or completions / embeddings) ``usage`` object."""
    prompt = _int(_get(usage, "prompt_tokens"))
    completion = _int(_get(usage, "completion_tokens"))
    if prompt is None and completion is None:
        return None
    prompt_details = _get(usage, "prompt_tokens_details")
    completion_details = _get(usage, "completion_tokens_details")
    return Usage(
        input_tokens=prompt or 0,
        output_tokens=completion or 0,
        cache_read_input_tokens=_int(_get(prompt_details, "cached_tokens")) or 0,
        reasoning_output_tokens=_int(_get(completion_details, "reasoning_tokens")) or 0,
        audio_input_tokens=_int(_get(prompt_details, "audio_tokens")) or 0,
        audio_output_tokens=_int(_get(completion_details, "audio_tokens")) or 0,
    )


def responses_usage(usage: Any) -> Optional[Usage]:
    """Usage from a Responses API ``usage`` object."""
    inp = _int(_get(usage, "input_tokens"))
    out = _int(_get(usage, "output_tokens"))
    if inp is None and out is None:
        return None
    return Usage(
        input_tokens=inp or 0,
        output_tokens=out or 0,
        cache_read_input_tokens=_int(_get(_get(usage, "input_tokens_details"), "cached_tokens")) or 0,
        reasoning_output_tokens=_int(_get(_get(usage, "output_tokens_details"), "reasoning_tokens")) or 0,
    )


def provider_cost(usage: Any) -> Optional[float]:
    """The cost a gateway reported in the usage (OpenRouter's ``usage.cost``, USD)."""
    return _num(_get(usage, "cost"))


def chat_outcome(completion: Any) -> Outcome:
    attrs: Dict[str, Any] = {}
    attrs[c.GEN_AI_RESPONSE_ID] = _str(_get(completion, "id"))
    choices = _get(completion, "choices")
    if isinstance(choices, (list, tuple)):
        reasons = [r if isinstance(r, str) else "error" for r in (_get(ch, "finish_reason") for ch in choices)]
        if reasons:
            attrs[c.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    tier = _str(_get(completion, "service_tier"))
    attrs[OPENAI_RESPONSE_SERVICE_TIER] = tier
    attrs[OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = _str(_get(completion, "system_fingerprint"))
    usage_obj = _get(completion, "usage")
    return Outcome(
        usage=chat_usage(usage_obj),
        response_model=_str(_get(completion, "model")),
        service_tier=tier,
        provider_cost=provider_cost(usage_obj),
        attributes=attrs,
    )


def responses_outcome(response: Any) -> Outcome:
    attrs: Dict[str, Any] = {c.GEN_AI_RESPONSE_ID: _str(_get(response, "id"))}
    status = _str(_get(response, "status"))
    if status == "incomplete":
        reason = _str(_get(_get(response, "incomplete_details"), "reason"))
        attrs[c.GEN_AI_RESPONSE_FINISH_REASONS] = [reason or status]
    elif status:
        attrs[c.GEN_AI_RESPONSE_FINISH_REASONS] = [status]
    tier = _str(_get(response, "service_tier"))
    attrs[OPENAI_RESPONSE_SERVICE_TIER] = tier
    usage_obj = _get(response, "usage")
    return Outcome(
        usage=responses_usage(usage_obj),
        response_model=_str(_get(response, "model")),
        service_tier=tier,
        provider_cost=provider_cost(usage_obj),
        attributes=attrs,
    )


def embeddings_outcome(response: Any) -> Outcome:
    usage_obj = _get(response, "usage")
    prompt = _int(_get(usage_obj, "prompt_tokens"))
    usage = Usage(input_tokens=prompt, output_tokens=0) if prompt is not None else None
    return Outcome(
        usage=usage,
        response_model=_str(_get(response, "model")),
        provider_cost=provider_cost(usage_obj),
    )


_OUTCOMES = {
    "chat": chat_outcome,
    "completions": chat_outcome,
    "responses": responses_outcome,
    "embeddings": embeddings_outcome,
}


# ---------------------------------------------------------------------------------------------
# Streams


def _count_text(text: str, model: Optional[str]) -> int:
    from ..tokens import count_text

    return int(count_text(text, model or "").tokens)


class _FallbackCounter:
    """Running output-token count of the text deltas, used only when the stream carries no usage.

    When no usage is expected (injection turned off, caller did not ask), every delta is tokenised.
    """

    def __init__(self, model: Optional[str]) -> None:
        self.model = model
        self.tokens = 0
        self.failed = False

    def add(self, text: Any) -> None:
        if self.failed or not isinstance(text, str) or not text:
            return
        try:
            self.tokens += _count_text(text, self.model)
        except Exception as exc:
            self.failed = True
            log_once("stream token counting", exc)


class _CharCounter:
    """The cheap counter for streams that are expected to end with a usage chunk / final response.

    Tokenising each delta would cost ~17 µs per chunk only to be thrown away when the usage arrives,
    and content is never buffered, so only the number of non-empty text deltas and their characters
    are kept. If the stream ends without usage, output tokens are estimated as
    ``max(deltas, ceil(chars / 4))``: OpenAI streams about one token per delta, and English text
    averages about 4 characters per token (the fallback for providers that batch several tokens per
    chunk).
    """

    __slots__ = ("deltas", "chars")
    failed = False

    def __init__(self) -> None:
        self.deltas = 0
        self.chars = 0

    def add(self, text: Any) -> None:
        if text and type(text) is str:
            self.deltas += 1
            self.chars += len(text)

    @property
    def tokens(self) -> int:
        return max(self.deltas, (self.chars + 3) // 4)


def _estimated_usage(request: LLMRequest, counter: Any) -> Optional[Usage]:
    input_tokens = 0
    estimated = _int(_get(request.estimate, "input_tokens"))  # already counted by the processor
    if estimated is not None:
        input_tokens = estimated
    elif request.estimate_input is not None:
        try:
            input_tokens = int(request.estimate_input().tokens)
        except Exception as exc:
            log_once("stream input estimate", exc)
    if counter.failed and not input_tokens:
        return None
    return Usage(input_tokens=input_tokens, output_tokens=counter.tokens)


_SDK_CHUNK_TYPES: Optional[Tuple[Any, Any, Any]] = None


def _sdk_chunk_types() -> Tuple[Any, Any, Any]:
    """(ChatCompletionChunk, its Choice, ChoiceDelta) of the installed SDK, for the fast path."""
    global _SDK_CHUNK_TYPES
    if _SDK_CHUNK_TYPES is None:
        try:
            from openai.types.chat.chat_completion_chunk import ChatCompletionChunk, Choice, ChoiceDelta

            _SDK_CHUNK_TYPES = (ChatCompletionChunk, Choice, ChoiceDelta)
        except Exception:  # an SDK without them: every chunk takes the generic path
            _SDK_CHUNK_TYPES = (_NoType, _NoType, _NoType)
    return _SDK_CHUNK_TYPES


class _NoType:
    pass


class ChatStreamState(StreamState):
    """Reads ids, finish reasons and usage from chat completion chunks as the user consumes them."""

    def __init__(self, operation: Operation, hide_usage_chunk: bool, usage_expected: bool = False) -> None:
        super().__init__(operation)
        self.hide_usage_chunk = hide_usage_chunk
        self.response_id: Optional[str] = None
        self.model: Optional[str] = None
        self.service_tier: Optional[str] = None
        self.fingerprint: Optional[str] = None
        self.finish_reasons: Dict[int, str] = {}
        self.usage_obj: Any = None
        self.counter: Any = (_CharCounter() if usage_expected or hide_usage_chunk
                             else _FallbackCounter(operation.request.model))

    def observe(self, chunk: Any) -> bool:
        if type(chunk) is _sdk_chunk_types()[0]:
            try:
                return self._observe_sdk_chunk(chunk)
            except AttributeError:  # a field this SDK version lacks: read it the generic way
                pass
        return self._observe_any(chunk)

    def _observe_sdk_chunk(self, chunk: Any) -> bool:
        """``observe`` for the SDK's own parsed chunk: its fields are plain attributes (no _get)."""
        _, choice_type, delta_type = _sdk_chunk_types()
        if not self.response_id:
            self.response_id = _str(chunk.id)
        if not self.model:
            self.model = _str(chunk.model)
        tier = chunk.service_tier
        if tier is not None and type(tier) is str:
            self.service_tier = tier or self.service_tier
        if self.fingerprint is None:
            self.fingerprint = _str(chunk.system_fingerprint) or None
        choices = chunk.choices
        usage = chunk.usage
        usage_ok = usage is not None and chat_usage(usage) is not None
        if usage_ok:
            self.usage_obj = usage
        if type(choices) is not list:
            return self._observe_choices(choices, usage_ok)
        for choice in choices:
            if type(choice) is not choice_type:
                return self._observe_choices(choices, usage_ok)  # not parsed: the generic path
        finish_reasons = self.finish_reasons
        for choice in choices:
            index = choice.index
            index = index if type(index) is int and index else 0
            reason = choice.finish_reason
            if type(reason) is str:
                finish_reasons[index] = reason
            elif index not in finish_reasons:
                finish_reasons[index] = "error"
            if self.usage_obj is None:
                delta = choice.delta
                if type(delta) is delta_type:
                    add = self.counter.add
                    add(delta.content)
                    add(delta.refusal)
                    for call in delta.tool_calls or ():
                        function = _get(call, "function")
                        add(_get(function, "name"))
                        add(_get(function, "arguments"))
                else:
                    self._count_choice(choice)
        # Only the usage chunk we asked for on the caller's behalf is hidden, and only if it is one.
        return self.hide_usage_chunk and len(choices) == 0 and usage_ok

    def _count_choice(self, choice: Any) -> None:
        add = self.counter.add
        delta = _get(choice, "delta")
        add(_get(delta, "content"))
        add(_get(delta, "refusal"))
        if delta is None or type(choice) is dict:
            add(_get(choice, "text"))  # legacy completions (chat choices have a delta)
        for call in _get(delta, "tool_calls") or ():
            function = _get(call, "function")
            add(_get(function, "name"))
            add(_get(function, "arguments"))

    def _observe_choices(self, choices: Any, usage_ok: bool) -> bool:
        if isinstance(choices, (list, tuple)):
            finish_reasons = self.finish_reasons
            for choice in choices:
                index = _int(_get(choice, "index")) or 0
                reason = _get(choice, "finish_reason")
                if isinstance(reason, str):
                    finish_reasons[index] = reason
                elif index not in finish_reasons:
                    finish_reasons[index] = "error"
                if self.usage_obj is None:
                    self._count_choice(choice)
            # Only the usage chunk we asked for on the caller's behalf is hidden, and only if it is one.
            return self.hide_usage_chunk and len(choices) == 0 and usage_ok
        return False

    def _observe_any(self, chunk: Any) -> bool:
        if not self.response_id:
            self.response_id = _str(_get(chunk, "id"))
        if not self.model:
            self.model = _str(_get(chunk, "model"))
        tier = _get(chunk, "service_tier")
        if tier is not None and type(tier) is str:
            self.service_tier = tier or self.service_tier
        if self.fingerprint is None:
            self.fingerprint = _str(_get(chunk, "system_fingerprint")) or None
        choices = _get(chunk, "choices")
        usage = _get(chunk, "usage")
        usage_ok = usage is not None and chat_usage(usage) is not None
        if usage_ok:
            self.usage_obj = usage
        return self._observe_choices(choices, usage_ok)

    def outcome(self) -> Outcome:
        attrs: Dict[str, Any] = {
            c.GEN_AI_RESPONSE_ID: self.response_id,
            OPENAI_RESPONSE_SERVICE_TIER: self.service_tier,
            OPENAI_RESPONSE_SYSTEM_FINGERPRINT: self.fingerprint,
        }
        if self.finish_reasons:
            attrs[c.GEN_AI_RESPONSE_FINISH_REASONS] = [self.finish_reasons[i] for i in sorted(self.finish_reasons)]
        usage = chat_usage(self.usage_obj) if self.usage_obj is not None else None
        source = sc.AiCostUsageSourceValues.PROVIDER
        if usage is None:
            usage = _estimated_usage(self.operation.request, self.counter)
            source = sc.AiCostUsageSourceValues.ESTIMATED
        return Outcome(usage=usage, usage_source=source, response_model=self.model,
                       service_tier=self.service_tier, provider_cost=provider_cost(self.usage_obj),
                       attributes=attrs)


_RESPONSE_FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")


class ResponsesStreamState(StreamState):
    """Reads the final response (with usage) from Responses API stream events."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.response: Any = None
        self.final: Any = None
        self.final_kind: Optional[str] = None
        # The Responses API always ends a stream with the final response and its usage.
        self.counter = _CharCounter()

    def observe(self, event: Any) -> bool:
        kind = _get(event, "type")
        response = _get(event, "response")
        if response is not None:
            if kind in _RESPONSE_FINAL_EVENTS:
                self.final = response
                self.final_kind = kind
            elif self.response is None:
                self.response = response
        elif kind in ("response.output_text.delta", "response.refusal.delta",
                      "response.function_call_arguments.delta"):
            self.counter.add(_get(event, "delta"))
        return False

    def outcome(self) -> Outcome:
        final = self.final if self.final is not None else self.response
        outcome = responses_outcome(final) if final is not None else Outcome()
        if self.final_kind == "response.failed":
            # The stream ended normally but the response failed: an error, and no guessed usage.
            outcome.error_type = str(_get(_get(final, "error"), "code") or "response.failed")
            return outcome
        if self.final is None or outcome.usage is None:
            outcome.usage = _estimated_usage(self.operation.request, self.counter)
            outcome.usage_source = sc.AiCostUsageSourceValues.ESTIMATED
        return outcome


def _stream_types():
    from openai import AsyncStream, Stream

    return Stream, AsyncStream


def _wrap_stream(stream: Any, state: StreamState) -> Any:
    Stream, AsyncStream = _stream_types()
    if isinstance(stream, AsyncStream):
        return c.AsyncStreamProxy(stream, state)
    if isinstance(stream, Stream):
        return c.StreamProxy(stream, state)
    return None


class _RawResponseProxy(wrapt.ObjectProxy):
    """Proxy over a raw SDK response whose ``parse()`` result carries the span's usage."""

    def __init__(self, wrapped: Any, call: "_Call", stream: Any = None) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_stream = stream
        # The body may never be parsed: end the span if the user drops the response unparsed.
        self._self_finalizer = None if stream is not None else c.end_when_collected(self, call.finish_without_response)

    def _self_handle(self, parsed: Any) -> Any:
        call = self._self_call
        if call.is_stream:
            if self._self_stream is None:
                self._self_stream = safe("raw stream", call.wrap_stream, parsed)
                if self._self_finalizer is not None:
                    self._self_finalizer.detach()  # the stream proxy now owns the span
            return self._self_stream if self._self_stream is not None else parsed
        safe("raw response", call.finish_with, parsed)
        return parsed

    def _self_closed(self) -> None:
        if self._self_stream is not None:
            safe("raw stream close", c.end_stream_proxy, self._self_stream)
        else:
            self._self_call.finish_without_response()


class _SyncRawResponseProxy(_RawResponseProxy):
    def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            parsed = self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:  # cancellation ends the span too
            self._self_call.operation.fail(exc)
            raise
        if args or kwargs.get("to") is not None:
            return parsed
        return self._self_handle(parsed)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_closed()


class _AsyncRawResponseProxy(_RawResponseProxy):
    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            parsed = await self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:  # cancellation ends the span too
            self._self_call.operation.fail(exc)
            raise
        if args or kwargs.get("to") is not None:
            return parsed
        return self._self_handle(parsed)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_closed()


# ---------------------------------------------------------------------------------------------
# One call


class _Call:
    """The instrumented state of one SDK call, between request and response."""

    def __init__(self, operation: Operation, kind: str, is_stream: bool, hide_usage_chunk: bool,
                 usage_expected: bool = False) -> None:
        self.operation = operation
        self.kind = kind
        self.is_stream = is_stream
        self.hide_usage_chunk = hide_usage_chunk
        self.usage_expected = usage_expected

    def finish_with(self, response: Any) -> None:
        try:
            outcome = _OUTCOMES[self.kind](response)
        except Exception as exc:
            log_once(f"{self.kind} response", exc)
            outcome = Outcome()
        self.operation.finish(outcome)

    def finish_without_response(self) -> None:
        self.operation.finish(Outcome())

    def wrap_stream(self, stream: Any) -> Any:
        if self.kind == "responses":
            state: StreamState = ResponsesStreamState(self.operation)
        else:
            state = ChatStreamState(self.operation, self.hide_usage_chunk, self.usage_expected)
        proxy = _wrap_stream(stream, state)
        if proxy is None:
            self.finish_without_response()
            return stream
        return proxy

    def handle_result(self, result: Any) -> Any:
        """The object handed back to the user for the SDK's ``result``: itself, or a proxy."""
        from openai._legacy_response import LegacyAPIResponse

        try:
            from openai._response import AsyncAPIResponse, BaseAPIResponse
        except ImportError:  # pragma: no cover - very old SDKs
            AsyncAPIResponse = BaseAPIResponse = ()  # type: ignore

        if isinstance(result, LegacyAPIResponse):
            if self.is_stream:
                return _SyncRawResponseProxy(result, self, stream=self.wrap_stream(result.parse()))
            # The SDK caches parse() per type: the user's parse() gets this same object back.
            self.finish_with(result.parse())
            return result
        if BaseAPIResponse and isinstance(result, BaseAPIResponse):
            cls = _AsyncRawResponseProxy if isinstance(result, AsyncAPIResponse) else _SyncRawResponseProxy
            return cls(result, self)
        if self.is_stream:
            return self.wrap_stream(result)
        self.finish_with(result)
        return result


class _Config:
    def __init__(self, telemetry: Telemetry, include_stream_usage: bool, catalog: Any) -> None:
        self.telemetry = telemetry
        self.include_stream_usage = include_stream_usage
        self.catalog = catalog


def _lazy_estimate(kind: str, kwargs: Mapping[str, Any]):
    model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else ""

    def tools() -> Any:
        value = kwargs.get("tools")
        return value if _given(value) else None

    if kind == "chat":
        def estimate() -> TokenCount:
            from ..tokens import estimate_chat_input

            return estimate_chat_input(model, kwargs.get("messages") or [], tools())
    elif kind == "responses":
        def estimate() -> TokenCount:
            from ..tokens import estimate_responses_input

            instructions = kwargs.get("instructions")
            return estimate_responses_input(
                model, kwargs.get("input") if _given(kwargs.get("input")) else "",
                instructions if _given(instructions) else None, tools(),
            )
    elif kind == "completions":
        def estimate() -> TokenCount:
            from ..tokens import count_text

            prompt = kwargs.get("prompt")
            texts = [prompt] if isinstance(prompt, str) else [p for p in (prompt or []) if isinstance(p, str)]
            return TokenCount(sum(count_text(t, model).tokens for t in texts),
                              count_text(texts[0] if texts else "", model).method)
    else:
        def estimate() -> TokenCount:
            from ..tokens import estimate_embedding_input

            return estimate_embedding_input(model, kwargs.get("input"))
    return estimate


def _prepare(config: _Config, kind: str, instance: Any, kwargs: Dict[str, Any]) -> Tuple[_Call, Dict[str, Any]]:
    """Build the request attributes and the LLMRequest, adjust the kwargs, and start the span."""
    client = _get(instance, "_client")
    provider = provider_from_client(client)
    call_kwargs = dict(kwargs)
    is_stream = call_kwargs.get("stream") is True and kind != "embeddings"
    hide_usage_chunk = False
    if kind == "chat":
        _materialize(call_kwargs, "messages")
        if is_stream and config.include_stream_usage and may_add_stream_options(provider, client, call_kwargs):
            hide_usage_chunk = _add_include_usage(call_kwargs)
        attrs = chat_request_attributes(provider, client, call_kwargs)
        max_out = _max_tokens(call_kwargs, "max_completion_tokens", "max_tokens")
        operation = "chat"
    elif kind == "completions":
        if is_stream and config.include_stream_usage and may_add_stream_options(provider, client, call_kwargs):
            hide_usage_chunk = _add_include_usage(call_kwargs)
        attrs = completions_request_attributes(provider, client, call_kwargs)
        max_out = _max_tokens(call_kwargs, "max_tokens")
        operation = "text_completion"
    elif kind == "responses":
        _materialize(call_kwargs, "input")
        attrs = responses_request_attributes(provider, client, call_kwargs)
        max_out = _max_tokens(call_kwargs, "max_output_tokens")
        operation = "chat"
    else:
        _materialize(call_kwargs, "input")
        attrs = embeddings_request_attributes(provider, client, call_kwargs)
        max_out = None
        operation = "embeddings"
    model = attrs.get(c.GEN_AI_REQUEST_MODEL)
    tier = call_kwargs.get("service_tier")
    request = LLMRequest(
        provider=provider,
        operation=operation,
        model=model,
        max_output_tokens=max_out,
        service_tier=tier if isinstance(tier, str) else None,
        estimate_input=_lazy_estimate(kind, call_kwargs),
    )
    name = f"{operation} {model}" if model else operation
    op = Operation(config.telemetry, request, name, attrs, catalog=config.catalog)
    return _Call(op, kind, is_stream, hide_usage_chunk, is_stream and _usage_requested(call_kwargs)), call_kwargs


def _sync_wrapper(config: _Config, kind: str):
    def wrapper(wrapped, instance, args, kwargs):
        prepared = safe(f"{kind} request", _prepare, config, kind, instance, kwargs)
        if prepared is None:
            return wrapped(*args, **kwargs)
        call, call_kwargs = prepared
        delay = call.operation.apply_decision(call_kwargs)  # raises BudgetExceededError on a block
        if delay:
            try:
                time.sleep(delay)
            except BaseException as exc:  # interrupted while throttled: the call is never sent
                call.operation.fail(exc)
                raise
        try:
            result = wrapped(*args, **call_kwargs)
        except BaseException as exc:  # cancellation and interrupts end the span too
            call.operation.fail(exc)
            raise
        try:
            return call.handle_result(result)
        except Exception as exc:
            log_once(f"{kind} result", exc)
            call.finish_without_response()
            return result

    return wrapper


async def _async_sleep(seconds: float) -> None:
    """Sleep in whatever event loop runs the SDK (asyncio or trio, as the SDK itself does with anyio)."""
    try:
        import anyio
    except ImportError:  # pragma: no cover - the openai SDK depends on anyio
        await asyncio.sleep(seconds)
        return
    await anyio.sleep(seconds)


def _async_wrapper(config: _Config, kind: str):
    async def wrapper(wrapped, instance, args, kwargs):
        prepared = safe(f"{kind} request", _prepare, config, kind, instance, kwargs)
        if prepared is None:
            return await wrapped(*args, **kwargs)
        call, call_kwargs = prepared
        delay = call.operation.apply_decision(call_kwargs)  # raises BudgetExceededError on a block
        if delay:
            try:
                await _async_sleep(delay)
            except BaseException as exc:  # cancelled while throttled: the call is never sent
                call.operation.fail(exc)
                raise
        try:
            result = await wrapped(*args, **call_kwargs)
        except BaseException as exc:  # a cancelled task ends the span too
            call.operation.fail(exc)
            raise
        try:
            return call.handle_result(result)
        except Exception as exc:
            log_once(f"{kind} result", exc)
            call.finish_without_response()
            return result

    return wrapper


def _helper_close_wrapper(is_async: bool):
    """End our span when an SDK stream helper closes the HTTP response behind our proxy's back."""
    if is_async:
        async def async_wrapper(wrapped, instance, args, kwargs):
            try:
                return await wrapped(*args, **kwargs)
            finally:
                safe("helper close", c.end_stream_proxy, _get(instance, "_raw_stream"))

        return async_wrapper

    def wrapper(wrapped, instance, args, kwargs):
        try:
            return wrapped(*args, **kwargs)
        finally:
            safe("helper close", c.end_stream_proxy, _get(instance, "_raw_stream"))

    return wrapper


def _resolve(module: str, path: str) -> bool:
    import importlib

    try:
        obj: Any = importlib.import_module(module)
        for part in path.split("."):
            obj = getattr(obj, part)
        return True
    except (ImportError, AttributeError):
        return False


def _warm_up() -> None:
    """Build the default tokenizer (o200k, ~300 ms) and import the lazy modules in a daemon thread.

    Otherwise the user's first request pays for it inside ``on_start``. A request that comes before
    the warm-up is done waits for it on the tokenizer's lock (never longer than building it inline).
    Never blocks ``instrument()`` and never raises.
    """
    try:
        from .. import _tiktoken_offline

        if _tiktoken_offline.O200K_BASE in _tiktoken_offline._loaded:
            return

        def run() -> None:
            try:
                from .. import cost, tokens  # noqa: F401 - imported for their side effect only

                _tiktoken_offline.get_encoding(_tiktoken_offline.O200K_BASE)
            except BaseException:  # noqa: BLE001 - a failed warm-up only means the first call pays
                pass

        threading.Thread(target=run, name="otel-ai-cost-warm-up", daemon=True).start()
    except Exception:  # noqa: BLE001
        pass


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("otel-ai-cost")
    except Exception:
        return "0.0.0"


class OpenAIInstrumentor(BaseInstrumentor):
    """Instruments the ``openai`` SDK (sync and async; create, streams, ``.stream()`` helpers,
    ``with_raw_response``) for chat completions, the Responses API and embeddings.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider``,
    ``include_stream_usage`` (default from ``OTEL_AI_COST_OPENAI_INCLUDE_USAGE``, true) and
    ``catalog`` (a pricing catalog; default: the packaged one).
    """

    # BaseInstrumentor is a singleton whose __init__ runs again on every OpenAIInstrumentor(): the
    # list of wrapped methods must not be reset there, or uninstrument() would forget them.
    _wrapped: list = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        include = kwargs.get("include_stream_usage")
        if include is None:
            include = include_usage_from_env()
        telemetry = Telemetry("otel_ai_cost.instrumentation.openai", _version(),
                              kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        config = _Config(telemetry, bool(include), kwargs.get("catalog"))
        self._wrapped = []
        for module, path, kind, is_async in _CHAT + _RESPONSES + _COMPLETIONS + _EMBEDDINGS:
            if not _resolve(module, path):
                continue
            factory = _async_wrapper if is_async else _sync_wrapper
            wrapt.wrap_function_wrapper(module, path, factory(config, kind))
            self._wrapped.append((module, path))
        for module, path, is_async in _HELPER_CLOSES:
            if not _resolve(module, path):
                continue
            wrapt.wrap_function_wrapper(module, path, _helper_close_wrapper(is_async))
            self._wrapped.append((module, path))
        _warm_up()

    def _uninstrument(self, **kwargs: Any) -> None:
        import importlib

        for module, path in self._wrapped:
            owner: Any = importlib.import_module(module)
            *parents, method = path.split(".")
            for part in parents:
                owner = getattr(owner, part)
            unwrap(owner, method)
        self._wrapped = []
