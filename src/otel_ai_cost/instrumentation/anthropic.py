"""OpenTelemetry instrumentor for the ``anthropic`` SDK: the Messages API (``messages.create``,
``messages.parse``, the ``messages.stream()`` helpers, ``with_raw_response`` /
``with_streaming_response``, the beta Messages API) and token counting (``count_tokens``).

Every call becomes a GenAI span carrying the token usage and its cost in USD. The same SDK's
Bedrock (``AnthropicBedrock``, provider ``aws.bedrock``) and Vertex AI (``AnthropicVertex``,
provider ``gcp.vertex_ai``) clients use the same resource classes and are covered too.

Usage normalisation (the trap): Anthropic's ``usage.input_tokens`` EXCLUDES the cache reads
(``cache_read_input_tokens``) and the cache writes (``cache_creation_input_tokens``), while
``Usage.input_tokens`` (and ``gen_ai.usage.input_tokens``) is every input token. So
``Usage.input_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens``.
Cache writes are split into the 5-minute and the 1-hour price from ``usage.cache_creation``
(``ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``) when the API reports it. Extended
thinking is billed as output and is part of ``output_tokens``; when the API reports
``output_tokens_details.thinking_tokens`` it becomes ``reasoning_output_tokens`` (a subset of the
output, priced at the output price unless the catalog prices reasoning). Server-side web searches
(``usage.server_tool_use.web_search_requests``) are priced per search.

Streams: usage comes from ``message_start`` (input side, an early output count) and
``message_delta`` (the final totals); a field the later event reports replaces the earlier value.
A stream that ends without usage (closed before ``message_start`` was read) was still sent: it is
charged the input estimate (``ai_cost.usage.source=estimated``). A raw response
(``with_raw_response`` / ``with_streaming_response``) closed or dropped without ``parse()`` takes
its usage from the body the HTTP response already holds (read by ``.json()``, ``.text()``,
``.read()``; nothing more is read), else the input estimate.

``count_tokens`` is free: its span (``count_tokens {model}``) carries no ``gen_ai.operation.name``,
no usage and no cost, so neither budgets nor cost enrichment count it; the counted tokens are
recorded as ``ai_cost.count_tokens.input_tokens`` once the semconv registry declares that name.

Message content (system, input and output messages) is recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (see ``_content``).
"""
from __future__ import annotations

import functools
import json
import re
import time
import weakref
from contextvars import ContextVar
from typing import Any, Collection, Dict, List, Mapping, Optional, Tuple

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _semconv as sc
from .._request import LLMRequest, TokenCount
from ..cost import Usage
from . import _content_anthropic
from . import _core as c
from ._core import (
    CharCounter,
    Operation,
    Outcome,
    StreamState,
    _content,
    as_int,
    as_num,
    as_str,
    get,
    given,
    host_port,
    log_once,
    safe,
)

_INSTRUMENTS = ("anthropic >= 0.40.0, < 3",)

# The count a count_tokens call returned goes on its span once the registry declares
# ``ai_cost.count_tokens.input_tokens`` (semconv/usage.yaml, then scripts/generate_semconv.py).
AI_COST_COUNT_TOKENS_INPUT_TOKENS: Optional[str] = getattr(sc, "AI_COST_COUNT_TOKENS_INPUT_TOKENS", None)

_MESSAGES = "anthropic.resources.messages"
_BETA = "anthropic.resources.beta.messages"
# Bedrock / Vertex beta resources copy the first-party functions at class creation
# (``create = FirstPartyMessagesAPI.create``): they are wrapped on their own classes.
_BEDROCK_BETA = "anthropic.lib.bedrock._beta_messages"
_VERTEX_BETA = "anthropic.lib.vertex._beta_messages"

# (module, attribute path, kind, is_async). Missing ones (older SDKs) are skipped.
_TARGETS: List[Tuple[str, str, str, bool]] = []
for _module in (_MESSAGES, _BETA, _BEDROCK_BETA, _VERTEX_BETA):
    _TARGETS += [
        (_module, "Messages.create", "create", False),
        (_module, "AsyncMessages.create", "create", True),
        (_module, "Messages.parse", "create", False),
        (_module, "AsyncMessages.parse", "create", True),
        (_module, "Messages.stream", "stream", False),
        (_module, "AsyncMessages.stream", "stream", True),
        (_module, "Messages.count_tokens", "count_tokens", False),
        (_module, "AsyncMessages.count_tokens", "count_tokens", True),
    ]

PROVIDER = "anthropic"
PROVIDER_BEDROCK = "aws.bedrock"
PROVIDER_VERTEX = "gcp.vertex_ai"


# ---------------------------------------------------------------------------------------------
# Small pure helpers


def provider_from_client(client: Any) -> str:
    """``gen_ai.provider.name`` for an Anthropic SDK client: its class first, then its host."""
    try:
        names = {cls.__name__ for cls in type(client).__mro__}
    except Exception:
        names = set()
    if names & {"AnthropicBedrock", "AsyncAnthropicBedrock", "BaseBedrockClient"}:
        return PROVIDER_BEDROCK
    if names & {"AnthropicVertex", "AsyncAnthropicVertex", "BaseVertexClient"}:
        return PROVIDER_VERTEX
    host = (host_port(client)[0] or "").lower()
    if host.startswith("bedrock-runtime.") and host.endswith(".amazonaws.com"):
        return PROVIDER_BEDROCK
    if host.endswith("aiplatform.googleapis.com"):
        return PROVIDER_VERTEX
    return PROVIDER


def request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any], operation: str = "chat") -> Dict[str, Any]:
    attrs: Dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_PROVIDER_NAME: provider}
    model = kwargs.get("model")
    if isinstance(model, str):
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    max_tokens = as_int(kwargs.get("max_tokens"))
    if max_tokens is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    # anthropic < 2 takes temperature / top_p / top_k as arguments; 2.x only through extra_body.
    extra = kwargs.get("extra_body")
    sampling = {**extra, **kwargs} if isinstance(extra, Mapping) else kwargs
    for key, attr in (("temperature", sc.GEN_AI_REQUEST_TEMPERATURE), ("top_p", sc.GEN_AI_REQUEST_TOP_P)):
        value = as_num(sampling.get(key))
        if value is not None:
            attrs[attr] = value
    top_k = as_int(sampling.get("top_k"))
    if top_k is not None:
        attrs[sc.GEN_AI_REQUEST_TOP_K] = top_k
    stop = kwargs.get("stop_sequences")
    if given(stop) and isinstance(stop, (list, tuple)):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [s for s in stop if isinstance(s, str)]
    fmt = get(kwargs.get("output_config"), "format") if given(kwargs.get("output_config")) else None
    if (given(fmt) and get(fmt, "type") == "json_schema") or given(kwargs.get("output_format")):
        attrs[sc.GEN_AI_OUTPUT_TYPE] = "json"
    if kwargs.get("stream") is True:
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    host, port = host_port(client)
    if host:
        attrs[sc.SERVER_ADDRESS] = host
        attrs[sc.SERVER_PORT] = port
    return attrs


# ---------------------------------------------------------------------------------------------
# Usage


def usage_from_fields(fields: Mapping[str, Any]) -> Optional[Usage]:
    """``Usage`` from Anthropic's usage fields (a plain mapping, see ``_usage_fields``).

    Anthropic's ``input_tokens`` excludes cache reads and writes: they are added back here.
    """
    inp = as_int(fields.get("input_tokens"))
    out = as_int(fields.get("output_tokens"))
    if inp is None and out is None:
        return None
    cache_read = as_int(fields.get("cache_read_input_tokens")) or 0
    cache_write = as_int(fields.get("cache_creation_input_tokens")) or 0
    write_5m = as_int(fields.get("ephemeral_5m_input_tokens")) or 0
    write_1h = as_int(fields.get("ephemeral_1h_input_tokens")) or 0
    if not cache_write:
        cache_write = write_5m + write_1h
    write_1h = min(write_1h, cache_write)
    output = out or 0
    thinking = min(as_int(fields.get("thinking_tokens")) or 0, output)
    return Usage(
        input_tokens=(inp or 0) + cache_read + cache_write,
        output_tokens=output,
        cache_read_input_tokens=cache_read,
        cache_write_input_tokens=cache_write,
        cache_write_1h_input_tokens=write_1h,
        reasoning_output_tokens=thinking,
        web_search_requests=as_int(fields.get("web_search_requests")) or 0,
    )


def _usage_fields(usage: Any, into: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The usage fields an event or response reports; those present replace those in ``into``."""
    fields = into if into is not None else {}
    if usage is None:
        return fields
    for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        value = as_int(get(usage, name))
        if value is not None:
            fields[name] = value
    creation = get(usage, "cache_creation")
    if creation is not None:
        for name in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"):
            value = as_int(get(creation, name))
            if value is not None:
                fields[name] = value
    searches = as_int(get(get(usage, "server_tool_use"), "web_search_requests"))
    if searches is not None:
        fields["web_search_requests"] = searches
    thinking = as_int(get(get(usage, "output_tokens_details"), "thinking_tokens"))
    if thinking is not None:
        fields["thinking_tokens"] = thinking
    tier = as_str(get(usage, "service_tier"))
    if tier:
        fields["service_tier"] = tier
    return fields


def message_usage(usage: Any) -> Optional[Usage]:
    """``Usage`` from a Message's ``usage`` object (SDK model or dict)."""
    return usage_from_fields(_usage_fields(usage))


def message_outcome(message: Any) -> Outcome:
    attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: as_str(get(message, "id"))}
    reason = as_str(get(message, "stop_reason"))
    if reason:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
    fields = _usage_fields(get(message, "usage"))
    return Outcome(
        usage=usage_from_fields(fields),
        response_model=as_str(get(message, "model")),
        service_tier=fields.get("service_tier"),
        attributes=attrs,
    )


# ---------------------------------------------------------------------------------------------
# Input estimation (no public Claude tokenizer: a heuristic calibrated on the recordings)

# Claude's tokenizer yields more tokens than cl100k_base for English text; the heuristic approximates
# cl100k_base. Constants fitted on the recorded requests (benchmarks/estimation_error_anthropic.py).
_CLAUDE_TEXT_SCALE = 1.1
_REQUEST_OVERHEAD = 7          # the turn framing around the conversation
_MESSAGE_OVERHEAD = 3          # per message (role markers)
_SYSTEM_OVERHEAD = 2           # a system prompt
_THINKING_OVERHEAD = 26        # extended thinking adds its instructions
# Identifiers, hashes, base64: long runs mixing digits and both cases cost ~1 token per 1.2
# characters (the heuristic, made for words, would count a fraction of that).
_DENSE_MIN = 24
_DENSE_RUN = re.compile(r"[A-Za-z0-9+/=_-]{%d,}" % _DENSE_MIN)
_DENSE_CHARS_PER_TOKEN = 1.2
# The tool-use system prompt (tokens; tool_choice auto/none vs any/tool): Anthropic's documented
# values up to the 4.5 models; 4.6 and later measured on the recordings (~500), and assumed for
# any model not listed (an over- rather than an under-estimate).
_TOOL_PROMPT = (500, 467)
_TOOL_PROMPT_BY_MODEL = (
    ("claude-3-5-sonnet", (294, 261)),
    ("claude-3-opus", (530, 281)),
    ("claude-3-5-haiku", (264, 340)),
    ("claude-3-haiku", (264, 340)),
    ("claude-3-7-sonnet", (346, 313)),
    ("claude-sonnet-4-5", (346, 313)),
    ("claude-haiku-4-5", (346, 313)),
    ("claude-opus-4-5", (346, 313)),
    ("claude-opus-4-1", (346, 313)),
    ("claude-sonnet-4-2", (346, 313)),   # claude-sonnet-4-20250514
    ("claude-sonnet-4-0", (346, 313)),
    ("claude-opus-4-2", (346, 313)),     # claude-opus-4-20250514
    ("claude-opus-4-0", (346, 313)),
)
_TOOL_OVERHEAD = 6             # per tool definition
# Images: Anthropic documents tokens = width * height / 750 (resized to at most ~1.15 MP: ~1600).
_IMAGE_TOKENS = 1600
_DOCUMENT_TOKENS = 1500        # a PDF page or file whose size is unknown here


def _text_tokens(text: str) -> float:
    from ..tokens import heuristic_tokens

    if not text:
        return 0.0
    dense = 0
    if len(text) >= _DENSE_MIN:
        def cut(match: "re.Match[str]") -> str:
            nonlocal dense
            run = match.group()
            if any(ch.isdigit() for ch in run) and not run.islower() and not run.isupper():
                dense += len(run)
                return " "
            return run

        text = _DENSE_RUN.sub(cut, text)
    return heuristic_tokens(text) * _CLAUDE_TEXT_SCALE + dense / _DENSE_CHARS_PER_TOKEN


def _block_tokens(block: Any) -> float:
    if isinstance(block, str):
        return _text_tokens(block)
    kind = get(block, "type")
    if kind == "text":
        return _text_tokens(as_str(get(block, "text")) or "")
    if kind == "image":
        return _IMAGE_TOKENS
    if kind == "document":
        source = get(block, "source")
        if get(source, "type") == "text":
            return _text_tokens(as_str(get(source, "data")) or "")
        return _DOCUMENT_TOKENS
    if kind == "tool_use":
        return _text_tokens((as_str(get(block, "name")) or "") + " " + _json(get(block, "input"))) + 3
    if kind == "tool_result":
        content = get(block, "content")
        return _content_tokens(content) + 3
    if kind in ("thinking", "redacted_thinking"):
        return 0.0  # earlier turns' thinking blocks are stripped from the context by the API
    return _text_tokens(_json(block))


def _content_tokens(content: Any) -> float:
    if content is None or not given(content):
        return 0.0
    if isinstance(content, str):
        return _text_tokens(content)
    if isinstance(content, (list, tuple)):
        return sum(_block_tokens(b) for b in content)
    return _block_tokens(content)


def _json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), default=str)
    except Exception:
        return str(value)


def _tool_prompt(model: str, tool_choice: Any) -> int:
    forced = get(tool_choice, "type") in ("any", "tool") if given(tool_choice) else False
    prompt = _TOOL_PROMPT
    for prefix, value in _TOOL_PROMPT_BY_MODEL:
        if prefix in model:
            prompt = value
            break
    return prompt[1] if forced else prompt[0]


def estimate_messages_input(model: Optional[str], messages: Any, system: Any = None, tools: Any = None,
                            tool_choice: Any = None, thinking: Any = None) -> TokenCount:
    """Estimated input tokens of a Messages API request (method ``heuristic``)."""
    model = (model or "").lower()
    total = float(_REQUEST_OVERHEAD)
    for message in messages or ():
        total += _MESSAGE_OVERHEAD + _content_tokens(get(message, "content"))
    if given(system) and system:
        total += _SYSTEM_OVERHEAD + _content_tokens(system)
    if given(tools) and tools:
        tool_list = list(tools)
        custom = [t for t in tool_list if get(t, "input_schema") is not None]
        if custom:
            total += _tool_prompt(model, tool_choice)
        for tool in tool_list:
            if get(tool, "input_schema") is None:
                total += _TOOL_OVERHEAD + _text_tokens(_json(tool))  # server / built-in tools
                continue
            total += _TOOL_OVERHEAD + _text_tokens(
                (as_str(get(tool, "name")) or "") + "\n" + (as_str(get(tool, "description")) or "") + "\n"
                + _json(get(tool, "input_schema"))
            )
    if given(thinking) and get(thinking, "type") in ("enabled", "adaptive"):
        total += _THINKING_OVERHEAD
    return TokenCount(int(round(total)), "heuristic")


def _lazy_estimate(kwargs: Mapping[str, Any]):
    model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else ""

    def estimate() -> TokenCount:
        return estimate_messages_input(model, kwargs.get("messages") or [], kwargs.get("system"),
                                       kwargs.get("tools"), kwargs.get("tool_choice"), kwargs.get("thinking"))

    return estimate


def _materialize(kwargs: Dict[str, Any], key: str) -> None:
    """Turn a one-shot iterable argument into a list so the lazy estimate cannot consume it."""
    value = kwargs.get(key)
    if value is not None and given(value) and not isinstance(value, (list, tuple, str, dict)):
        try:
            kwargs[key] = list(value)
        except TypeError:
            pass


# ---------------------------------------------------------------------------------------------
# Streams


class MessageStreamState(StreamState):
    """Reads id, model, stop reason and usage from raw Messages stream events as the user reads them."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.response_id: Optional[str] = None
        self.model: Optional[str] = None
        self.stop_reason: Optional[str] = None
        self.fields: Dict[str, Any] = {}
        self.counter = CharCounter()

    def observe(self, event: Any) -> bool:
        kind = get(event, "type")
        if kind == "content_block_delta":
            delta = get(event, "delta")
            self.counter.add(get(delta, "text") or get(delta, "partial_json") or get(delta, "thinking"))
        elif kind == "message_start":
            message = get(event, "message")
            self.response_id = as_str(get(message, "id")) or self.response_id
            self.model = as_str(get(message, "model")) or self.model
            _usage_fields(get(message, "usage"), self.fields)
        elif kind == "message_delta":
            reason = as_str(get(get(event, "delta"), "stop_reason"))
            if reason:
                self.stop_reason = reason
            _usage_fields(get(event, "usage"), self.fields)  # the later totals replace the earlier
        return False

    def outcome(self) -> Outcome:
        attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: self.response_id}
        if self.stop_reason:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self.stop_reason]
        usage = usage_from_fields(self.fields)
        source = sc.AiCostUsageSourceValues.PROVIDER
        if usage is None:
            # The request was sent (there is a stream): it is billed for its input even if the
            # stream was closed before message_start was read.
            usage = c.estimated_usage(self.operation.request, self.counter, "anthropic stream input estimate")
            source = sc.AiCostUsageSourceValues.ESTIMATED
        return Outcome(usage=usage, usage_source=source, response_model=self.model,
                       service_tier=self.fields.get("service_tier"), attributes=attrs)


def _stream_types() -> Tuple[Any, Any]:
    from anthropic import AsyncStream, Stream

    return Stream, AsyncStream


def _wrap_stream(stream: Any, operation: Operation) -> Any:
    """The stream behind a proxy that ends the span; the stream itself (span ended) if unknown."""
    Stream, AsyncStream = _stream_types()
    state = MessageStreamState(operation)
    state.content = _content.stream_accumulator(operation, _content_anthropic.MessageAccumulator)
    if isinstance(stream, AsyncStream):
        return c.AsyncStreamProxy(stream, state)
    if isinstance(stream, Stream):
        return c.StreamProxy(stream, state)
    operation.finish(Outcome())
    return stream


# ---------------------------------------------------------------------------------------------
# Raw responses (with_raw_response / with_streaming_response)


class _RawResponseProxy(wrapt.ObjectProxy):
    """Proxy over a raw SDK response: the span's usage is read when the user calls ``parse()``.

    A response closed or dropped unparsed (the user read it with ``.json()``, ``.text()``,
    ``.read()``, ``iter_lines()``, ... or not at all) ends its span with ``_Call.finish_unparsed``:
    the usage from the body the HTTP response already holds, else the input estimate.
    """

    def __init__(self, wrapped: Any, call: "_Call") -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_stream: Any = None
        http = getattr(wrapped, "http_response", None)
        self._self_http = http
        # The body may never be parsed: end the span if the user drops the response unparsed
        # (the callback holds the HTTP response, not this proxy).
        self._self_finalizer = c.end_when_collected(self, functools.partial(call.finish_unparsed, http))

    def _self_handle(self, parsed: Any) -> Any:
        call = self._self_call
        self._self_finalizer.detach()
        if call.is_stream:
            if self._self_stream is None:
                self._self_stream = safe("anthropic raw stream", _wrap_stream, parsed, call.operation)
            return self._self_stream if self._self_stream is not None else parsed
        safe("anthropic raw response", call.finish_with, parsed)
        return parsed

    def _self_closed(self) -> None:
        if self._self_stream is not None:
            safe("anthropic raw stream close", c.end_stream_proxy, self._self_stream)
        else:
            self._self_finalizer.detach()
            self._self_call.finish_unparsed(self._self_http)  # no-op if parse() ended the span


class _SyncRawResponseProxy(_RawResponseProxy):
    def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            parsed = self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:  # cancellation ends the span too
            self._self_finalizer.detach()
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
            self._self_finalizer.detach()
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


_RAW_TYPES: Optional[Tuple[Any, Any]] = None


def _raw_response_types() -> Tuple[Any, Any]:
    """(raw response types, async raw response types) of the installed SDK (imported once)."""
    global _RAW_TYPES
    if _RAW_TYPES is None:
        _RAW_TYPES = _load_raw_response_types()
    return _RAW_TYPES


def _load_raw_response_types() -> Tuple[Any, Any]:
    """(BaseAPIResponse, AsyncAPIResponse) of the installed SDK, plus the 0.x legacy response."""
    bases: List[Any] = []
    async_types: List[Any] = []
    try:
        from anthropic._response import AsyncAPIResponse, BaseAPIResponse

        bases.append(BaseAPIResponse)
        async_types.append(AsyncAPIResponse)
    except ImportError:  # pragma: no cover - very old SDKs
        pass
    try:  # anthropic 0.x: with_raw_response returns a LegacyAPIResponse
        from anthropic._legacy_response import LegacyAPIResponse  # type: ignore

        bases.append(LegacyAPIResponse)
    except ImportError:
        pass
    return tuple(bases), tuple(async_types)


# ---------------------------------------------------------------------------------------------
# One call


class _Call:
    def __init__(self, operation: Operation, is_stream: bool) -> None:
        self.operation = operation
        self.is_stream = is_stream

    def finish_with(self, message: Any) -> None:
        try:
            outcome = message_outcome(message)
            _content.add_output(outcome, self.operation, _content_anthropic.message_output, message)
        except Exception as exc:
            log_once("anthropic response", exc)
            outcome = Outcome()
        self.operation.finish(outcome)

    def finish_without_response(self) -> None:
        self.operation.finish(Outcome())

    def finish_unparsed(self, http: Any) -> None:
        """End the span of a raw response closed or dropped without ``parse()``.

        The request was sent, so it is charged: with the usage in the body the HTTP response
        already holds (the user read it with ``.read()`` / ``.json()`` / ``.text()``; nothing is
        read here), else with the input estimate (``ai_cost.usage.source=estimated``).
        """
        if self.operation.ended:
            return
        outcome = safe("anthropic unparsed body", _outcome_from_body, self, http) or Outcome()
        if outcome.usage is None:
            outcome.usage = c.estimated_usage(self.operation.request, CharCounter(), "anthropic raw input estimate")
            outcome.usage_source = sc.AiCostUsageSourceValues.ESTIMATED
        self.operation.finish(outcome)

    def handle_result(self, result: Any) -> Any:
        bases, async_types = _raw_response_types()
        if bases and isinstance(result, bases):
            if type(result).__name__ == "LegacyAPIResponse" and not self.is_stream:
                self.finish_with(result.parse())  # the body is read; parse() is cached per type
                return result
            is_async = bool(async_types) and isinstance(result, async_types)
            http = getattr(result, "http_response", None)
            if not is_async and not self.is_stream and getattr(http, "is_closed", False) is True:
                # with_raw_response: the body is already read; parse() is cached per type, so the
                # user's own parse() gets this same object back.
                self.finish_with(result.parse())
                return result
            return (_AsyncRawResponseProxy if is_async else _SyncRawResponseProxy)(result, self)
        if self.is_stream:
            return _wrap_stream(result, self.operation)
        self.finish_with(result)
        return result


def _held_body(http: Any) -> Optional[bytes]:
    """The body an httpx response already holds (read by the user or the SDK), else None.

    ``Response.content`` raises ``ResponseNotRead`` instead of reading: nothing is read here.
    """
    if http is None:
        return None
    try:
        body = http.content
    except Exception:  # httpx.ResponseNotRead: the body was not read (or was iterated without keeping it)
        return None
    return body if isinstance(body, (bytes, bytearray)) and body else None


def _outcome_from_body(call: "_Call", http: Any) -> Optional[Outcome]:
    """The outcome in the body ``http`` holds: a Message (JSON) or the server-sent events of a stream."""
    body = _held_body(http)
    if body is None:
        return None
    content_type = ""
    try:
        content_type = str(http.headers.get("content-type") or "").lower()
    except Exception:
        pass
    if "text/event-stream" in content_type or (call.is_stream and "json" not in content_type):
        state = MessageStreamState(call.operation)
        for line in bytes(body).decode("utf-8", "replace").splitlines():
            if not line.startswith("data:"):
                continue
            try:
                event = json.loads(line[5:].strip())
            except ValueError:
                continue
            if isinstance(event, dict):
                state.observe(event)
        return state.outcome()  # the provider's usage, else the input estimate and the deltas read
    message = json.loads(bytes(body))
    return message_outcome(message) if isinstance(message, dict) else None


def _prepare(config: c.WrapContext, instance: Any, kwargs: Dict[str, Any], stream: bool) -> Tuple[_Call, Dict[str, Any]]:
    """Build the request attributes and the LLMRequest, and start the span."""
    client = get(instance, "_client")
    provider = provider_from_client(client)
    call_kwargs = dict(kwargs)
    _materialize(call_kwargs, "messages")
    _materialize(call_kwargs, "tools")
    _materialize(call_kwargs, "system")
    attrs = request_attributes(provider, client, {**call_kwargs, "stream": True} if stream else call_kwargs)
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    tier = call_kwargs.get("service_tier")
    request = LLMRequest(
        provider=provider,
        operation="chat",
        model=model,
        max_output_tokens=as_int(call_kwargs.get("max_tokens")),
        # "auto" / "standard_only" both bill at the standard price unless priority capacity is used.
        service_tier=None if not isinstance(tier, str) or tier in ("auto", "standard_only") else tier,
        estimate_input=_lazy_estimate(call_kwargs),
    )
    name = f"chat {model}" if model else "chat"
    op = Operation(config.telemetry, request, name, attrs, catalog=config.catalog)
    system = call_kwargs.get("system")
    _content.record_input(op, _content_anthropic.messages_input, call_kwargs.get("messages"),
                          system if given(system) else None)
    return _Call(op, stream), call_kwargs


# The throttle's sleep, looked up at call time (tests replace it here).
_async_sleep = c.async_sleep


# One SDK call is one span: an SDK method that calls another wrapped one (``parse`` calling
# ``create`` in some versions) is not instrumented twice.
_ACTIVE: ContextVar[bool] = ContextVar("otel_ai_cost_anthropic_active", default=False)


def _sync_create_wrapper(config: c.WrapContext):
    def wrapper(wrapped, instance, args, kwargs):
        if _ACTIVE.get():
            return wrapped(*args, **kwargs)
        prepared = safe("anthropic request", _prepare, config, instance, kwargs, kwargs.get("stream") is True)
        if prepared is None:
            return wrapped(*args, **kwargs)
        call, call_kwargs = prepared
        delay = call.operation.apply_decision(call_kwargs)  # raises BudgetExceededError on a block
        token = _ACTIVE.set(True)
        try:
            if delay:
                time.sleep(delay)
            result = wrapped(*args, **call_kwargs)
        except BaseException as exc:  # cancellation and interrupts end the span too
            call.operation.fail(exc)
            raise
        finally:
            _ACTIVE.reset(token)
        try:
            return call.handle_result(result)
        except Exception as exc:
            log_once("anthropic result", exc)
            call.finish_without_response()
            return result

    return wrapper


def _async_create_wrapper(config: c.WrapContext):
    async def wrapper(wrapped, instance, args, kwargs):
        if _ACTIVE.get():
            return await wrapped(*args, **kwargs)
        prepared = safe("anthropic request", _prepare, config, instance, kwargs, kwargs.get("stream") is True)
        if prepared is None:
            return await wrapped(*args, **kwargs)
        call, call_kwargs = prepared
        delay = call.operation.apply_decision(call_kwargs)  # raises BudgetExceededError on a block
        token = _ACTIVE.set(True)
        try:
            if delay:
                await _async_sleep(delay)
            result = await wrapped(*args, **call_kwargs)
        except BaseException as exc:  # a cancelled task ends the span too
            call.operation.fail(exc)
            raise
        finally:
            _ACTIVE.reset(token)
        try:
            return call.handle_result(result)
        except Exception as exc:
            log_once("anthropic result", exc)
            call.finish_without_response()
            return result

    return wrapper


# -- the .stream() helpers ---------------------------------------------------------------------
#
# ``messages.stream(...)`` returns a MessageStreamManager holding the request to make (a callable,
# or for the async client an un-awaited coroutine); the request is sent when the manager is
# entered. The span starts there: the stored request is replaced with one that starts the span,
# applies the budget decision (a block raises BudgetExceededError from the ``with`` line, before
# anything is sent) and hands the MessageStream the raw stream behind our proxy, so every helper
# (text_stream, get_final_message, until_done, close) reads through it. A manager never entered
# sends nothing and starts no span.


def _materialized(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The kwargs with one-shot iterables as lists: the request and the estimate both read them."""
    kwargs = dict(kwargs)
    _materialize(kwargs, "messages")
    _materialize(kwargs, "tools")
    _materialize(kwargs, "system")
    return kwargs


def _api_request_attribute(manager: Any) -> Optional[str]:
    for name in vars(manager):
        if name.endswith("__api_request"):
            return name
    return None


def _adopt(message_stream: Any, holder: Dict[str, Any]) -> None:
    """anthropic 0.x: MessageStream builds its own Stream from the response instead of reading the
    one the request returned; put that one behind the proxy, with the same state (same span)."""
    proxy = holder.get("proxy")
    raw = getattr(message_stream, "_raw_stream", None)
    if not isinstance(proxy, (c.StreamProxy, c.AsyncStreamProxy)) or raw is None or raw is proxy:
        return
    if isinstance(raw, (c.StreamProxy, c.AsyncStreamProxy)):
        return
    Stream, AsyncStream = _stream_types()
    if isinstance(raw, AsyncStream):
        adopted: Any = c.AsyncStreamProxy(raw, proxy._self_state)
    elif isinstance(raw, Stream):
        adopted = c.StreamProxy(raw, proxy._self_state)
    else:
        return
    proxy._self_finalizer.detach()
    message_stream._raw_stream = adopted
    holder["proxy"] = adopted


class _StreamManagerProxy(wrapt.ObjectProxy):
    """The MessageStreamManager ``stream()`` returned; ends the span when the ``with`` block exits
    (0.x MessageStream.close() closes the HTTP response directly, not through our proxy)."""

    def __init__(self, wrapped: Any, holder: Dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_holder = holder

    def __enter__(self):
        stream = self.__wrapped__.__enter__()
        safe("anthropic stream adopt", _adopt, stream, self._self_holder)
        return stream

    def __exit__(self, exc_type, exc, tb):
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            safe("anthropic stream exit", c.end_stream_proxy, self._self_holder.get("proxy"))


class _AsyncStreamManagerProxy(wrapt.ObjectProxy):
    """The AsyncMessageStreamManager counterpart of ``_StreamManagerProxy``."""

    def __init__(self, wrapped: Any, holder: Dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_holder = holder

    async def __aenter__(self):
        stream = await self.__wrapped__.__aenter__()
        safe("anthropic stream adopt", _adopt, stream, self._self_holder)
        return stream

    async def __aexit__(self, exc_type, exc, tb):
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            safe("anthropic stream exit", c.end_stream_proxy, self._self_holder.get("proxy"))


def _sync_stream_wrapper(config: c.WrapContext):
    def wrapper(wrapped, instance, args, kwargs):
        if _ACTIVE.get():
            return wrapped(*args, **kwargs)
        kwargs = _materialized(kwargs)
        manager = wrapped(*args, **kwargs)
        try:
            attribute = _api_request_attribute(manager)
            if attribute is None:
                return manager
            original = getattr(manager, attribute)

            def api_request():
                prepared = safe("anthropic stream request", _prepare, config, instance, kwargs, True)
                if prepared is None:
                    return original()
                call, call_kwargs = prepared
                delay = call.operation.apply_decision(call_kwargs)  # raises BudgetExceededError
                token = _ACTIVE.set(True)
                try:
                    send = original
                    if call_kwargs.get("model") != kwargs.get("model"):  # downgraded: a request for the new model
                        replacement = wrapped(*args, **call_kwargs)
                        send = getattr(replacement, _api_request_attribute(replacement) or "", original)
                    if delay:
                        time.sleep(delay)
                    raw = send()
                except BaseException as exc:
                    call.operation.fail(exc)
                    raise
                finally:
                    _ACTIVE.reset(token)
                proxy = safe("anthropic stream", _wrap_stream, raw, call.operation, default=raw)
                holder["proxy"] = proxy
                return proxy

            holder: Dict[str, Any] = {}
            setattr(manager, attribute, api_request)
            return _StreamManagerProxy(manager, holder)
        except Exception as exc:
            log_once("anthropic stream helper", exc)
        return manager

    return wrapper


class _AsyncStreamRequest:
    """Stands in for the coroutine an AsyncMessageStreamManager awaits on entry.

    An object with ``__await__`` (not a coroutine): a manager never entered leaves no extra
    "never awaited" warning behind; the SDK's own coroutine is closed if it is never sent.
    """

    def __init__(self, config: c.WrapContext, wrapped: Any, instance: Any, args: Any, kwargs: Dict[str, Any],
                 original: Any) -> None:
        self._config = config
        self._wrapped = wrapped
        self._instance = instance
        self._args = args
        self._kwargs = kwargs
        self._original = original
        self.holder: Dict[str, Any] = {}

    def __await__(self):
        return self._run().__await__()

    def _close_original(self) -> None:
        close = getattr(self._original, "close", None)
        if close is not None:
            safe("anthropic stream close request", close)

    async def _run(self) -> Any:
        original, kwargs = self._original, self._kwargs
        prepared = safe("anthropic stream request", _prepare, self._config, self._instance, kwargs, True)
        if prepared is None:
            return await original
        call, call_kwargs = prepared
        send = original
        try:
            delay = call.operation.apply_decision(call_kwargs)  # raises BudgetExceededError
        except BaseException:
            self._close_original()  # never awaited: the request is not sent
            raise
        token = _ACTIVE.set(True)
        try:
            if call_kwargs.get("model") != kwargs.get("model"):  # downgraded: a request for the new model
                replacement = self._wrapped(*self._args, **call_kwargs)
                name = _api_request_attribute(replacement)
                if name is not None:
                    send = getattr(replacement, name)
                    self._close_original()
            if delay:
                await _async_sleep(delay)
            raw = await send
        except BaseException as exc:
            call.operation.fail(exc)
            raise
        finally:
            _ACTIVE.reset(token)
        proxy = safe("anthropic stream", _wrap_stream, raw, call.operation, default=raw)
        self.holder["proxy"] = proxy
        return proxy


def _async_stream_wrapper(config: c.WrapContext):
    def wrapper(wrapped, instance, args, kwargs):
        if _ACTIVE.get():
            return wrapped(*args, **kwargs)
        kwargs = _materialized(kwargs)
        manager = wrapped(*args, **kwargs)
        try:
            attribute = _api_request_attribute(manager)
            if attribute is not None:
                original = getattr(manager, attribute)
                request = _AsyncStreamRequest(config, wrapped, instance, args, kwargs, original)
                setattr(manager, attribute, request)
                return _AsyncStreamManagerProxy(manager, request.holder)
        except Exception as exc:
            log_once("anthropic stream helper", exc)
        return manager

    return wrapper


# -- count_tokens ---------------------------------------------------------------------------------


def _start_count_tokens(config: c.WrapContext, instance: Any, kwargs: Mapping[str, Any]) -> Any:
    client = get(instance, "_client")
    provider = provider_from_client(client)
    attrs = request_attributes(provider, client, kwargs)
    attrs.pop(sc.GEN_AI_OPERATION_NAME, None)  # not an inference: no budget, no cost, no usage
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    name = f"count_tokens {model}" if model else "count_tokens"
    return config.telemetry.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)


def _end_count_tokens(span: Any, result: Any = None, error: Optional[BaseException] = None) -> None:
    try:
        if error is not None:
            span.set_attribute(sc.ERROR_TYPE, c.error_type(error))
            span.set_status(Status(StatusCode.ERROR, str(error)))
        else:
            tokens = as_int(get(result, "input_tokens"))
            if tokens is not None and AI_COST_COUNT_TOKENS_INPUT_TOKENS:
                span.set_attribute(AI_COST_COUNT_TOKENS_INPUT_TOKENS, tokens)
    finally:
        span.end()


def _count_tokens_wrapper(config: c.WrapContext, is_async: bool):
    if is_async:
        async def async_wrapper(wrapped, instance, args, kwargs):
            span = safe("anthropic count_tokens", _start_count_tokens, config, instance, kwargs)
            if span is None:
                return await wrapped(*args, **kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                safe("anthropic count_tokens end", _end_count_tokens, span, error=exc)
                raise
            safe("anthropic count_tokens end", _end_count_tokens, span, result)
            return result

        return async_wrapper

    def wrapper(wrapped, instance, args, kwargs):
        span = safe("anthropic count_tokens", _start_count_tokens, config, instance, kwargs)
        if span is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            safe("anthropic count_tokens end", _end_count_tokens, span, error=exc)
            raise
        safe("anthropic count_tokens end", _end_count_tokens, span, result)
        return result

    return wrapper


# ---------------------------------------------------------------------------------------------
# with_raw_response / with_streaming_response: looked up at call time
#
# ``client.messages.with_raw_response`` is a ``cached_property`` building ``MessagesWithRawResponse``
# (likewise ``with_streaming_response``), whose ``__init__`` captures the bound ``messages.create``
# through ``to_raw_response_wrapper(messages.create)`` (``async_to_raw_response_wrapper``,
# ``to_streamed_response_wrapper``, ``async_to_streamed_response_wrapper``; 0.x:
# ``_legacy_response.to_raw_response_wrapper``) and keeps it. Left alone, an object built while
# instrumented keeps calling our wrapper after ``uninstrument()``, and one built before
# ``instrument()`` (the property was used once) never calls it. So, while instrumented:
#
# - those factories, in the modules of the wrapped resource classes, are replaced by ones handing
#   the SDK a function that looks ``create`` (``count_tokens``, ``parse``) up on the resource at
#   call time: the object calls whatever the class holds then, wrapped or not;
# - ``with_raw_response`` / ``with_streaming_response`` on those classes are data descriptors
#   (they take precedence over the instance ``__dict__`` where ``cached_property`` caches), which
#   replace an object cached before ``instrument()`` by a late-binding one, cached as before.
#
# ``uninstrument()`` restores the factories and the ``cached_property`` descriptors; the objects
# cached meanwhile stay, and call the unwrapped methods. What cannot be reached: an object the
# user took from the property before ``instrument()`` and keeps (``raw = client.messages.
# with_raw_response``, or its ``create``) holds the SDK's unwrapped method in a closure; it
# bypasses the instrumentation until it is taken from the property again.

_RAW_FACTORIES = ("to_raw_response_wrapper", "async_to_raw_response_wrapper",
                  "to_streamed_response_wrapper", "async_to_streamed_response_wrapper")
_RAW_PROPERTIES = ("with_raw_response", "with_streaming_response")
# The same objects reached from the client or the beta resource (``client.with_raw_response.messages``,
# ``client.beta.with_streaming_response.messages``): their ``messages`` cached_property, likewise.
_RAW_CONTAINERS: List[Tuple[str, str]] = [
    ("anthropic._client", "AnthropicWithRawResponse"),
    ("anthropic._client", "AsyncAnthropicWithRawResponse"),
    ("anthropic._client", "AnthropicWithStreamedResponse"),
    ("anthropic._client", "AsyncAnthropicWithStreamedResponse"),
]
for _module in ("anthropic.resources.beta.beta", "anthropic.lib.bedrock._beta", "anthropic.lib.vertex._beta"):
    _RAW_CONTAINERS += [(_module, "BetaWithRawResponse"), (_module, "AsyncBetaWithRawResponse"),
                        (_module, "BetaWithStreamingResponse"), (_module, "AsyncBetaWithStreamingResponse")]


def _late_bound(method: Any) -> Any:
    """A function calling ``getattr(method.__self__, method.__name__)`` at call time."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", None)
    if owner is None or not isinstance(name, str):
        return method

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(owner, name)(*args, **kwargs)

    call._otel_ai_cost = True  # type: ignore[attr-defined]
    return call


def _late_factory(factory: Any) -> Any:
    """The SDK's raw-response factory, handed a late-bound method instead of the bound one."""

    @functools.wraps(factory)
    def make(func: Any, *args: Any, **kwargs: Any) -> Any:
        return factory(_late_bound(func), *args, **kwargs)

    make._otel_ai_cost = True  # type: ignore[attr-defined]
    return make


# The with_raw_response / with_streaming_response objects our descriptors built (late-bound).
_LATE_OBJECTS: "weakref.WeakSet[Any]" = weakref.WeakSet()


class _RawResponseProperty:
    """Stands in for a resource's ``with_raw_response`` / ``with_streaming_response`` cached_property
    while instrumented (see above); built by ``original`` under the late-binding factories."""

    _otel_ai_cost = True

    def __init__(self, original: Any, name: str) -> None:
        self.original = original
        self.name = name
        self.build = getattr(original, "func", None) or getattr(original, "fget", None)
        self.__doc__ = getattr(original, "__doc__", None)

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self.original
        cache = getattr(instance, "__dict__", None)
        value = cache.get(self.name) if cache is not None else None
        if value is not None and _is_late(value):
            return value
        value = self.build(instance)
        try:
            _LATE_OBJECTS.add(value)
            if cache is not None:
                cache[self.name] = value
        except TypeError:  # not weak-referenceable: built again on each access
            pass
        return value

    def __set__(self, instance: Any, value: Any) -> None:  # cached_property is settable
        instance.__dict__[self.name] = value
        try:
            _LATE_OBJECTS.add(value)  # the user's own object: kept as it is
        except TypeError:
            pass

    def __delete__(self, instance: Any) -> None:
        try:
            del instance.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None


def _is_late(value: Any) -> bool:
    try:
        return value in _LATE_OBJECTS
    except TypeError:
        return False


def _patch_raw_responses(classes: List[Any], patched: List[Tuple[Any, str, Any]]) -> None:
    """Install the late-binding factories and properties for ``classes``; record them in ``patched``."""
    import sys

    if not classes:
        return
    namespaces: List[Any] = []
    for cls in classes:
        module = sys.modules.get(getattr(cls, "__module__", ""))
        if module is None:
            continue
        for namespace in (module, getattr(module, "_legacy_response", None)):
            if namespace is not None and all(namespace is not n for n in namespaces):
                namespaces.append(namespace)
    for namespace in namespaces:
        for name in _RAW_FACTORIES:
            factory = vars(namespace).get(name)
            if callable(factory) and not getattr(factory, "_otel_ai_cost", False):
                setattr(namespace, name, _late_factory(factory))
                patched.append((namespace, name, factory))
    properties = [(cls, name) for cls in classes for name in _RAW_PROPERTIES]
    for module_name, class_name in _RAW_CONTAINERS:
        container = c.resolve(module_name, class_name)
        if isinstance(container, type):
            properties.append((container, "messages"))
    for cls, name in properties:
        original = vars(cls).get(name)
        if original is None or getattr(original, "_otel_ai_cost", False):
            continue
        if getattr(original, "func", None) is None and getattr(original, "fget", None) is None:
            continue
        setattr(cls, name, _RawResponseProperty(original, name))
        patched.append((cls, name, original))


def _unpatch_raw_responses(patched: List[Tuple[Any, str, Any]]) -> None:
    for owner, name, original in reversed(patched):
        try:
            setattr(owner, name, original)
        except Exception as exc:  # pragma: no cover - never break uninstrument()
            log_once("anthropic unpatch raw responses", exc)


def _is_ours(attribute: Any) -> bool:
    """Whether ``attribute`` (a class attribute) is, or wraps, one of our wrappers.

    wrapt's ``FunctionWrapper`` keeps its wrapper function in ``_self_wrapper``; ours are marked
    ``_otel_ai_cost``. Another vendor's wrapt wrapper is not ours (we wrap on top of it); one on
    top of ours is followed through ``__wrapped__``.
    """
    for _ in range(16):
        if attribute is None:
            return False
        try:
            if getattr(getattr(attribute, "_self_wrapper", None), "_otel_ai_cost", False) is True:
                return True
            attribute = getattr(attribute, "__wrapped__", None)
        except Exception:
            return False
    return False


# ---------------------------------------------------------------------------------------------
# The instrumentor


class AnthropicInstrumentor(BaseInstrumentor):
    """Instruments the ``anthropic`` SDK (sync and async; ``messages.create`` / ``parse``, streams,
    the ``messages.stream()`` helpers, ``with_raw_response``, beta messages, ``count_tokens``;
    the Anthropic, Bedrock and Vertex AI clients).

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider`` and ``catalog`` (a
    pricing catalog; default: the packaged one).
    """

    # BaseInstrumentor is a singleton whose __init__ runs again on every AnthropicInstrumentor():
    # the list of wrapped methods must not be reset there, or uninstrument() would forget them.
    _wrapped: list = []
    _patched: list = []  # (owner, name, original) of the raw-response factories and properties

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        if c.switched_off(self):  # OTEL_AI_COST_ENABLED=false, or a bad OTEL_AI_COST_* value
            return
        telemetry = c.telemetry_from("otel_ai_cost.instrumentation.anthropic", kwargs)
        config = c.WrapContext(telemetry, kwargs.get("catalog"))
        # Resolve (import) every target first: the Bedrock / Vertex beta classes copy the
        # first-party functions when their module is imported, and must copy the unwrapped ones.
        targets = [(m, p, k, a) for m, p, k, a in _TARGETS if c.resolve(m, p) is not None]
        self._wrapped = []
        self._patched = []
        classes: List[Any] = []
        for module, path, kind, is_async in targets:
            owner_path, _, method = path.rpartition(".")
            owner = c.resolve(module, owner_path)
            if _is_ours(vars(owner).get(method)):
                continue  # already wrapped (by another copy of this instrumentor)
            if kind == "create":
                factory = _async_create_wrapper(config) if is_async else _sync_create_wrapper(config)
            elif kind == "stream":
                factory = _async_stream_wrapper(config) if is_async else _sync_stream_wrapper(config)
            else:
                factory = _count_tokens_wrapper(config, is_async)
            factory._otel_ai_cost = True  # the mark _is_ours looks for
            c.wrap(module, path, factory, self._wrapped)
            if all(owner is not known for known in classes):
                classes.append(owner)
        safe("anthropic raw responses", _patch_raw_responses, classes, self._patched)

    def _uninstrument(self, **kwargs: Any) -> None:
        _unpatch_raw_responses(self._patched)
        self._patched = []
        c.unwrap_all(self._wrapped)
        self._wrapped = []
