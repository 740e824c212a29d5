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
"""
from __future__ import annotations

import json
import time
from typing import Any, Collection, Dict, Mapping, Optional, Tuple

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import _semconv as sc
from .._request import LLMRequest, TokenCount
from ..cost import Usage
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
    estimated_usage,
    get,
    log_once,
    materialize,
    safe,
)

PROVIDER = "cohere"

_INSTRUMENTS = ("cohere >= 5.9.0, < 8",)

_MODULE = "cohere.v2.client"
_METHODS = [
    ("V2Client.chat", "chat", False),
    ("V2Client.chat_stream", "chat_stream", False),
    ("V2Client.embed", "embeddings", False),
    ("AsyncV2Client.chat", "chat", True),
    ("AsyncV2Client.chat_stream", "chat_stream_async", None),  # an async generator function
    ("AsyncV2Client.embed", "embeddings", True),
]

TOOL_DEFINITION_TOKENS = 2
TOOL_CALL_TOKENS = 1
TOOL_RESULT_TOKENS = 1


# ---------------------------------------------------------------------------------------------
# Estimation


def _plain(value: Any) -> Any:
    dump = getattr(value, "dict", None) if not hasattr(value, "model_dump") else getattr(value, "model_dump")
    if callable(dump) and not isinstance(value, Mapping):
        try:
            return dump(exclude_none=True)
        except Exception:  # noqa: BLE001
            return value
    return value


def _count(text: Any) -> int:
    from ..tokens import heuristic_tokens

    return heuristic_tokens(text) if isinstance(text, str) and text else 0


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return _count(content)
    tokens = 0
    for part in content or () if isinstance(content, (list, tuple)) else ():
        part = _plain(part)
        if isinstance(part, Mapping):
            text = part.get("text")
            if isinstance(text, str):
                tokens += _count(text)
            elif isinstance(part.get("document"), Mapping):
                tokens += _count(json.dumps(part["document"], default=str))
        elif isinstance(part, str):
            tokens += _count(part)
    return tokens


def _tool_tokens(tool: Any) -> int:
    tool = _plain(tool)
    if not isinstance(tool, Mapping):
        return 0
    function = _plain(tool.get("function")) if "function" in tool else tool
    if not isinstance(function, Mapping):
        return 0
    tokens = TOOL_DEFINITION_TOKENS + _count(function.get("name")) + _count(function.get("description"))
    params = function.get("parameters") or {}
    props = params.get("properties") if isinstance(params, Mapping) else None
    if isinstance(props, Mapping):
        for name, schema in props.items():
            tokens += _count(str(name))
            if isinstance(schema, Mapping):
                tokens += _count(schema.get("type") if isinstance(schema.get("type"), str) else "")
                tokens += _count(schema.get("description"))
    elif params:
        tokens += _count(json.dumps(params, default=str))
    return tokens


def estimate_chat(messages: Any, tools: Any = None, documents: Any = None) -> TokenCount:
    """Billed input tokens of a Cohere v2 chat request (calibrated heuristic)."""
    from ..tokens import HEURISTIC

    try:
        tokens = 0
        for message in messages or ():
            m = _plain(message)
            if not isinstance(m, Mapping):
                tokens += _count(str(m))
                continue
            tokens += _content_tokens(m.get("content"))
            if m.get("role") == "tool":
                tokens += TOOL_RESULT_TOKENS
            tokens += _count(m.get("tool_plan"))
            for call in m.get("tool_calls") or ():
                call = _plain(call)
                function = _plain(call.get("function")) if isinstance(call, Mapping) else None
                if isinstance(function, Mapping):
                    args = function.get("arguments")
                    args = args if isinstance(args, str) else json.dumps(args, default=str)
                    tokens += TOOL_CALL_TOKENS + _count(function.get("name")) + _count(args)
        for tool in tools or ():
            tokens += _tool_tokens(tool)
        for document in documents or ():
            document = _plain(document)
            tokens += _count(document if isinstance(document, str) else json.dumps(document, default=str))
        return TokenCount(tokens, HEURISTIC)
    except Exception as exc:  # noqa: BLE001
        log_once("cohere estimate", exc)
        return TokenCount(0, HEURISTIC)


def estimate_embed(texts: Any) -> TokenCount:
    from ..tokens import HEURISTIC

    if isinstance(texts, str):
        texts = [texts]
    return TokenCount(sum(_count(t) for t in texts or () if isinstance(t, str)), HEURISTIC)


def _lazy_estimate(kind: str, kwargs: Mapping[str, Any]):
    if kind == "embeddings":
        def estimate() -> TokenCount:
            return estimate_embed(kwargs.get("texts"))
    else:
        def estimate() -> TokenCount:
            tools = kwargs.get("tools")
            documents = kwargs.get("documents")
            return estimate_chat(kwargs.get("messages") or [],
                                 tools if isinstance(tools, (list, tuple)) else None,
                                 documents if isinstance(documents, (list, tuple)) else None)
    return estimate


# ---------------------------------------------------------------------------------------------
# Request attributes


def _server(instance: Any) -> Tuple[Optional[str], Optional[int]]:
    from urllib.parse import urlsplit

    wrapper = get(instance, "_client_wrapper") or get(get(instance, "_raw_client"), "_client_wrapper")
    url = None
    get_base_url = getattr(wrapper, "get_base_url", None)
    if callable(get_base_url):
        try:
            url = get_base_url()
        except Exception:  # noqa: BLE001
            url = None
    if not isinstance(url, str) or not url:
        url = "https://api.cohere.com"
    parts = urlsplit(url)
    if not parts.hostname:
        return None, None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def request_attributes(operation: str, instance: Any, kwargs: Mapping[str, Any], stream: bool) -> Dict[str, Any]:
    attrs: Dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_PROVIDER_NAME: PROVIDER}
    model = kwargs.get("model")
    if isinstance(model, str):
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    host, port = _server(instance)
    if host:
        attrs[sc.SERVER_ADDRESS], attrs[sc.SERVER_PORT] = host, port
    if operation == "embeddings":
        formats = kwargs.get("embedding_types")
        if isinstance(formats, (list, tuple)):
            attrs[sc.GEN_AI_REQUEST_ENCODING_FORMATS] = [str(f) for f in formats if isinstance(f, str)]
        dims = as_int(kwargs.get("output_dimension"))
        if dims is not None:
            attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
        return attrs
    max_tokens = as_int(kwargs.get("max_tokens"))
    if max_tokens is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    for key, attr in (("temperature", sc.GEN_AI_REQUEST_TEMPERATURE), ("p", sc.GEN_AI_REQUEST_TOP_P),
                      ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY),
                      ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY)):
        value = as_num(kwargs.get(key))
        if value is not None:
            attrs[attr] = value
    top_k = as_int(kwargs.get("k"))
    if top_k is not None:
        attrs[sc.GEN_AI_REQUEST_TOP_K] = top_k
    stop = kwargs.get("stop_sequences")
    if isinstance(stop, (list, tuple)):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [s for s in stop if isinstance(s, str)]
    seed = as_int(kwargs.get("seed"))
    if seed is not None:
        attrs[sc.GEN_AI_REQUEST_SEED] = seed
    fmt = _plain(kwargs.get("response_format"))
    kind = fmt.get("type") if isinstance(fmt, Mapping) else get(fmt, "type")
    if kind in ("json_object", "json_schema", "json"):
        attrs[sc.GEN_AI_OUTPUT_TYPE] = "json"
    if stream:
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


# ---------------------------------------------------------------------------------------------
# Usage and responses


def _units(value: Any) -> Optional[int]:
    """A billed-unit count (the SDK types them as floats) as an int."""
    number = as_num(value)
    if number is None or number < 0:
        return None
    return int(round(number))


def cohere_usage(usage: Any) -> Optional[Usage]:
    """The billed units of a Cohere ``usage`` (or ``meta``) object; ``tokens`` only as the fallback."""
    for counts in (get(usage, "billed_units"), get(usage, "tokens")):
        if counts is None:
            continue
        inp = _units(get(counts, "input_tokens"))
        out = _units(get(counts, "output_tokens"))
        if inp is not None or out is not None:
            return Usage(input_tokens=inp or 0, output_tokens=out or 0)
    return None


def chat_outcome(response: Any) -> Outcome:
    attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: as_str(get(response, "id"))}
    reason = get(response, "finish_reason")
    if reason is not None:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [str(reason)]
    return Outcome(usage=cohere_usage(get(response, "usage")), attributes=attrs)


def embeddings_outcome(response: Any) -> Outcome:
    usage = cohere_usage(get(response, "meta"))
    if usage is not None:
        usage = Usage(input_tokens=usage.input_tokens, output_tokens=0)
    return Outcome(usage=usage, attributes={sc.GEN_AI_RESPONSE_ID: as_str(get(response, "id"))})


class CohereStreamState(StreamState):
    """Reads the id (``message-start``), finish reason and usage (``message-end``) from v2 events."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.response_id: Optional[str] = None
        self.finish_reason: Optional[str] = None
        self.usage: Optional[Usage] = None
        self.counter = CharCounter()

    def observe(self, event: Any) -> bool:
        kind = get(event, "type")
        if kind == "message-start":
            self.response_id = as_str(get(event, "id")) or self.response_id
        elif kind == "message-end":
            delta = get(event, "delta")
            reason = get(delta, "finish_reason")
            if reason is not None:
                self.finish_reason = str(reason)
            usage = cohere_usage(get(delta, "usage"))
            if usage is not None:
                self.usage = usage
        elif self.usage is None and kind in ("content-delta", "tool-plan-delta", "tool-call-delta",
                                             "tool-call-start"):
            message = get(get(event, "delta"), "message")
            self.counter.add(get(get(message, "content"), "text"))
            self.counter.add(get(get(message, "content"), "thinking"))
            self.counter.add(get(message, "tool_plan"))
            function = get(get(message, "tool_calls"), "function")
            self.counter.add(get(function, "name"))
            self.counter.add(get(function, "arguments"))
        return False

    def end(self, error: Optional[BaseException] = None) -> None:
        if self.first_chunk_at is None and not self.operation.ended:
            # ``chat_stream`` is a generator: the request is sent on the first ``next``. No event means
            # the request was never sent (a dropped generator) or failed: nothing to charge.
            self.operation.finish(Outcome(), error=error)
            return
        super().end(error)

    def outcome(self) -> Outcome:
        attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: self.response_id}
        if self.finish_reason:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self.finish_reason]
        usage, source = self.usage, sc.AiCostUsageSourceValues.PROVIDER
        if usage is None:
            usage = estimated_usage(self.operation.request, self.counter)
            source = sc.AiCostUsageSourceValues.ESTIMATED
        error = "ERROR" if self.finish_reason == "ERROR" else None
        return Outcome(usage=usage, usage_source=source, attributes=attrs, error_type=error)


_OUTCOMES = {"chat": chat_outcome, "embeddings": embeddings_outcome}


# ---------------------------------------------------------------------------------------------
# Calls


class _Call(c.Call):
    """One Cohere call: its operation, and what the user gets back for the SDK's result."""

    outcomes = _OUTCOMES
    log_prefix = "cohere "

    def handle_result(self, result: Any) -> Any:
        if self.kind == "chat_stream":
            try:
                return c.StreamProxy(result, CohereStreamState(self.operation))
            except Exception as exc:
                log_once("cohere stream", exc)
                self.finish_without_response()
                return result
        self.finish_with(result)
        return result


def _prepare(config: c.WrapContext, kind: str, instance: Any, kwargs: Dict[str, Any]) -> Tuple[_Call, Dict[str, Any]]:
    _content.not_supported("cohere")  # the variable may be set after instrument()
    call_kwargs = dict(kwargs)
    if kind == "embeddings":
        materialize(call_kwargs, "texts")
        attrs = request_attributes("embeddings", instance, call_kwargs, False)
        operation, max_out = "embeddings", None
    else:
        materialize(call_kwargs, "messages")
        attrs = request_attributes("chat", instance, call_kwargs, kind != "chat")
        operation, max_out = "chat", as_int(call_kwargs.get("max_tokens"))
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    request = LLMRequest(provider=PROVIDER, operation=operation, model=model, max_output_tokens=max_out,
                         estimate_input=_lazy_estimate(kind, call_kwargs))
    name = f"{operation} {model}" if model else operation
    return _Call(Operation(config.telemetry, request, name, attrs, catalog=config.catalog), kind), call_kwargs


def _sync_wrapper(config: c.WrapContext, kind: str):
    # ``_prepare`` and ``time`` are looked up at call time (tests replace them on this module).
    return c.sync_call_wrapper(f"cohere {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                               lambda delay: time.sleep(delay))


def _async_wrapper(config: c.WrapContext, kind: str):
    return c.async_call_wrapper(f"cohere {kind}", lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                lambda delay: c.async_sleep(delay))


class _AsyncEvents:
    """The async generator of ``AsyncV2Client.chat_stream``, after an optional throttle delay."""

    def __init__(self, agen: Any, delay: Optional[float]) -> None:
        self._agen = agen
        self._delay = delay

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._delay:
            delay, self._delay = self._delay, None
            await c.async_sleep(delay)
        return await self._agen.__anext__()

    async def close(self) -> None:
        await self._agen.aclose()

    aclose = close


def _async_stream_wrapper(config: c.WrapContext, kind: str):
    """``AsyncV2Client.chat_stream`` is an async generator function: called without ``await``."""

    def wrapper(wrapped, instance, args, kwargs):
        prepared = safe(f"cohere {kind} request", _prepare, config, kind, instance, kwargs)
        if prepared is None:
            return wrapped(*args, **kwargs)
        call, call_kwargs = prepared
        op = call.operation
        delay = op.apply_decision(call_kwargs)  # raises BudgetExceededError on a block
        try:
            result = wrapped(*args, **call_kwargs)
        except BaseException as exc:
            op.fail(exc)
            raise
        try:
            return c.AsyncStreamProxy(_AsyncEvents(result, delay), CohereStreamState(op))
        except Exception as exc:
            log_once("cohere async stream", exc)
            op.finish(Outcome())
            return result

    return wrapper


class CohereInstrumentor(BaseInstrumentor):
    """Instruments the ``cohere`` SDK's v2 API: ``chat``, ``chat_stream`` and ``embed``, sync and async.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider``, ``catalog``.
    """

    _wrapped: list = []  # BaseInstrumentor is a singleton: see OpenAIInstrumentor

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        if c.switched_off(self):  # OTEL_AI_COST_ENABLED=false, or a bad OTEL_AI_COST_* value
            return
        _content.not_supported("cohere")  # says so once when content capture is asked for
        telemetry = c.telemetry_from("otel_ai_cost.instrumentation.cohere", kwargs)
        config = c.WrapContext(telemetry, kwargs.get("catalog"))
        self._wrapped = []
        for path, kind, is_async in _METHODS:
            if c.resolve(_MODULE, path) is None:
                continue
            if is_async is None:
                factory = _async_stream_wrapper
            else:
                factory = _async_wrapper if is_async else _sync_wrapper
            c.wrap(_MODULE, path, factory(config, "chat_stream" if is_async is None else kind), self._wrapped)

    def _uninstrument(self, **kwargs: Any) -> None:
        c.unwrap_all(self._wrapped)
        self._wrapped = []
