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
import time
from typing import Any, Collection, Dict, Mapping, Optional, Tuple

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import _semconv as sc
from .._request import LLMRequest, TokenCount
from ..cost import Usage
from . import _chat, _content_openai
from . import _core as c
from ._chat import (
    ChatStreamState,
    chat_request_attributes,
    chat_usage,
    embeddings_request_attributes,
    max_tokens,
    output_type_from_format,
    request_attributes,
    sampling_attributes,
)
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
    given,
    host_port,
    log_once,
    materialize,
    safe,
)
from ._stainless import LegacyResponseProxy, RequestRouter, StainlessCall

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


def provider_from_client(client: Any) -> str:
    """``gen_ai.provider.name`` for an OpenAI client, from its class and base URL."""
    if type(client).__name__ in ("AzureOpenAI", "AsyncAzureOpenAI"):
        return "azure.ai.openai"
    host = host_port(client)[0] or ""
    return provider_from_host(host)


def provider_from_host(host: str) -> str:
    host = host.lower()
    if host in _PROVIDER_BY_HOST:
        return _PROVIDER_BY_HOST[host]
    if host.endswith(".openai.azure.com") or host.endswith(".cognitiveservices.azure.com"):
        return "azure.ai.openai"
    return "openai"


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
        version = as_str(get(client, "_api_version"))
        if version is None:
            query = get(client, "default_query") or get(client, "_custom_query")
            version = as_str(get(query, "api-version"))
        return version is not None and version[:10] >= _AZURE_STREAM_OPTIONS_SINCE
    return True


def _add_include_usage(call_kwargs: Dict[str, Any]) -> bool:
    """Ask for the final usage chunk unless the caller decided; True when we added it."""
    options = call_kwargs.get("stream_options")
    options = options if given(options) and isinstance(options, Mapping) else {}
    if "include_usage" in options:
        return False
    call_kwargs["stream_options"] = {**options, "include_usage": True}
    return True


def _usage_requested(call_kwargs: Mapping[str, Any]) -> bool:
    """Whether the request (as sent) asks for the final usage chunk of a stream."""
    for holder in (call_kwargs, call_kwargs.get("extra_body")):
        if isinstance(holder, Mapping):
            options = holder.get("stream_options")
            if given(options) and isinstance(options, Mapping) and options.get("include_usage") is True:
                return True
    return False


def completions_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """Legacy ``completions.create``: the chat attributes, operation ``text_completion``."""
    attrs = chat_request_attributes(provider, client, kwargs)
    attrs[sc.GEN_AI_OPERATION_NAME] = "text_completion"
    attrs.pop(sc.OPENAI_API_TYPE, None)
    return attrs


def responses_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    attrs = request_attributes("chat", "responses", provider, kwargs.get("model"), client, kwargs)
    max_out = max_tokens(kwargs, "max_output_tokens")
    if max_out is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_out
    sampling_attributes(kwargs, attrs)
    text = kwargs.get("text")
    if given(text):
        output_type = output_type_from_format(get(text, "format"))
        if output_type:
            attrs[sc.GEN_AI_OUTPUT_TYPE] = output_type
    if kwargs.get("stream") is True:
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


# ---------------------------------------------------------------------------------------------
# Usage and response attributes


def responses_usage(usage: Any) -> Optional[Usage]:
    """Usage from a Responses API ``usage`` object."""
    inp = as_int(get(usage, "input_tokens"))
    out = as_int(get(usage, "output_tokens"))
    if inp is None and out is None:
        return None
    return Usage(
        input_tokens=inp or 0,
        output_tokens=out or 0,
        cache_read_input_tokens=as_int(get(get(usage, "input_tokens_details"), "cached_tokens")) or 0,
        reasoning_output_tokens=as_int(get(get(usage, "output_tokens_details"), "reasoning_tokens")) or 0,
    )


def provider_cost(usage: Any) -> Optional[float]:
    """The cost a gateway reported in the usage (OpenRouter's ``usage.cost``, USD)."""
    return as_num(get(usage, "cost"))


def chat_outcome(completion: Any) -> Outcome:
    """The chat format's outcome, plus OpenAI's service tier, system fingerprint and a gateway's cost."""
    outcome = _chat.chat_outcome(completion)
    attrs = outcome.attributes if outcome.attributes is not None else {}
    attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] = outcome.service_tier
    attrs[sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = as_str(get(completion, "system_fingerprint"))
    outcome.attributes = attrs
    outcome.provider_cost = provider_cost(get(completion, "usage"))
    return outcome


def responses_outcome(response: Any) -> Outcome:
    attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: as_str(get(response, "id"))}
    status = as_str(get(response, "status"))
    if status == "incomplete":
        reason = as_str(get(get(response, "incomplete_details"), "reason"))
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason or status]
    elif status:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [status]
    tier = as_str(get(response, "service_tier"))
    attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] = tier
    usage_obj = get(response, "usage")
    return Outcome(
        usage=responses_usage(usage_obj),
        response_model=as_str(get(response, "model")),
        service_tier=tier,
        provider_cost=provider_cost(usage_obj),
        attributes=attrs,
    )


def embeddings_outcome(response: Any) -> Outcome:
    outcome = _chat.embeddings_outcome(response)
    outcome.provider_cost = provider_cost(get(response, "usage"))
    return outcome


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


class OpenAIChatStreamState(ChatStreamState):
    """``ChatStreamState`` of the ``openai`` SDK: a fast path for its own parsed chunks, the system
    fingerprint, OpenRouter's ``usage.cost``, refusals, legacy completions' ``text``; a choice is
    ``error`` until its finish reason comes; the final usage chunk asked for on the caller's behalf
    is hidden."""

    pending_reason = "error"
    delta_texts = ("refusal",)
    legacy_text = True

    def __init__(self, operation: Operation, hide_usage_chunk: bool, usage_expected: bool = False) -> None:
        counter = (CharCounter() if usage_expected or hide_usage_chunk
                   else _FallbackCounter(operation.request.model))
        super().__init__(operation, counter, hide_usage_chunk)
        self.fingerprint: Optional[str] = None

    def observe(self, chunk: Any) -> bool:
        if type(chunk) is _sdk_chunk_types()[0]:
            try:
                return self._observe_sdk_chunk(chunk)
            except AttributeError:  # a field this SDK version lacks: read it the generic way
                pass
        if self.fingerprint is None:
            self.fingerprint = as_str(get(chunk, "system_fingerprint")) or None
        return super().observe(chunk)

    def _observe_sdk_chunk(self, chunk: Any) -> bool:
        """``observe`` for the SDK's own parsed chunk: its fields are plain attributes (no _get)."""
        _, choice_type, delta_type = _sdk_chunk_types()
        if not self.response_id:
            self.response_id = as_str(chunk.id)
        if not self.model:
            self.model = as_str(chunk.model)
        tier = chunk.service_tier
        if tier is not None and type(tier) is str:
            self.service_tier = tier or self.service_tier
        if self.fingerprint is None:
            self.fingerprint = as_str(chunk.system_fingerprint) or None
        choices = chunk.choices
        usage = chunk.usage
        usage_ok = usage is not None and chat_usage(usage) is not None
        if usage_ok:
            self.usage_obj = usage
        if type(choices) is not list:
            return super().observe(chunk)  # not parsed: the generic path (reads the same fields again)
        for choice in choices:
            if type(choice) is not choice_type or type(choice.delta) is not delta_type:
                return super().observe(chunk)
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
                add = self.counter.add
                add(delta.content)
                add(delta.refusal)
                for call in delta.tool_calls or ():
                    function = get(call, "function")
                    add(get(function, "name"))
                    add(get(function, "arguments"))
        # Only the usage chunk we asked for on the caller's behalf is hidden, and only if it is one.
        return self.hide_usage_chunk and len(choices) == 0 and usage_ok

    def outcome(self) -> Outcome:
        outcome = super().outcome()
        attrs = outcome.attributes if outcome.attributes is not None else {}
        attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] = self.service_tier
        attrs[sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = self.fingerprint
        outcome.attributes = attrs
        outcome.provider_cost = provider_cost(self.usage_obj)
        return outcome


_RESPONSE_FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")


class ResponsesStreamState(StreamState):
    """Reads the final response (with usage) from Responses API stream events."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.response: Any = None
        self.final: Any = None
        self.final_kind: Optional[str] = None
        # The Responses API always ends a stream with the final response and its usage.
        self.counter = CharCounter()

    def observe(self, event: Any) -> bool:
        kind = get(event, "type")
        response = get(event, "response")
        if response is not None:
            if kind in _RESPONSE_FINAL_EVENTS:
                self.final = response
                self.final_kind = kind
            elif self.response is None:
                self.response = response
        elif kind in ("response.output_text.delta", "response.refusal.delta",
                      "response.function_call_arguments.delta"):
            self.counter.add(get(event, "delta"))
        return False

    def outcome(self) -> Outcome:
        final = self.final if self.final is not None else self.response
        outcome = responses_outcome(final) if final is not None else Outcome()
        if self.final_kind == "response.failed":
            # The stream ended normally but the response failed: an error, and no guessed usage.
            outcome.error_type = str(get(get(final, "error"), "code") or "response.failed")
            return outcome
        if self.final is None or outcome.usage is None:
            outcome.usage = estimated_usage(self.operation.request, self.counter)
            outcome.usage_source = sc.AiCostUsageSourceValues.ESTIMATED
        return outcome


# ---------------------------------------------------------------------------------------------
# One call


# Output message content (only built when capture is asked for, see ``_content``).
_OUTPUT_CONTENT = {"chat": _content_openai.chat_output, "responses": _content_openai.responses_output}


class _Call(StainlessCall):
    """The instrumented state of one SDK call, between request and response."""

    outcomes = _OUTCOMES
    sdk = "openai"
    # with_raw_response is a LegacyAPIResponse (handled below); a with_streaming_response closed or
    # dropped unparsed ends with the input estimate (see the module doc).
    uses_held_body = False

    def __init__(self, operation: Operation, kind: str, is_stream: bool, hide_usage_chunk: bool,
                 usage_expected: bool = False) -> None:
        super().__init__(operation, kind, is_stream)
        self.hide_usage_chunk = hide_usage_chunk
        self.usage_expected = usage_expected

    def outcome(self, response: Any) -> Outcome:
        outcome = super().outcome(response)
        convert = _OUTPUT_CONTENT.get(self.kind)
        if convert is not None:
            _content.add_output(outcome, self.operation, convert, response)
        return outcome

    def stream_state(self) -> StreamState:
        if self.kind == "responses":
            state: StreamState = ResponsesStreamState(self.operation)
            state.content = _content.stream_accumulator(self.operation, _content_openai.ResponsesAccumulator)
        else:
            state = OpenAIChatStreamState(self.operation, self.hide_usage_chunk, self.usage_expected)
            if self.kind == "chat":
                state.content = _content.stream_accumulator(self.operation, _content_openai.ChatAccumulator)
        return state

    def handle_result(self, result: Any) -> Any:
        """The object handed back to the user for the SDK's ``result``: itself, or a proxy."""
        from openai._legacy_response import LegacyAPIResponse

        if isinstance(result, LegacyAPIResponse):
            if self.is_stream:
                return LegacyResponseProxy(result, self, stream=self.wrap_stream(result.parse()))
            # The SDK caches parse() per type: the user's parse() gets this same object back.
            self.finish_with(result.parse())
            return result
        return super().handle_result(result)


class _Config(c.WrapContext):
    def __init__(self, telemetry: c.Telemetry, include_stream_usage: bool, catalog: Any) -> None:
        super().__init__(telemetry, catalog)
        self.include_stream_usage = include_stream_usage


def _lazy_estimate(kind: str, kwargs: Mapping[str, Any]):
    model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else ""

    def tools() -> Any:
        value = kwargs.get("tools")
        return value if given(value) else None

    if kind == "chat":
        def estimate() -> TokenCount:
            from ..tokens import estimate_chat_input

            return estimate_chat_input(model, kwargs.get("messages") or [], tools())
    elif kind == "responses":
        def estimate() -> TokenCount:
            from ..tokens import estimate_responses_input

            instructions = kwargs.get("instructions")
            return estimate_responses_input(
                model, kwargs.get("input") if given(kwargs.get("input")) else "",
                instructions if given(instructions) else None, tools(),
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
    client = get(instance, "_client")
    provider = provider_from_client(client)
    call_kwargs = dict(kwargs)
    is_stream = call_kwargs.get("stream") is True and kind != "embeddings"
    hide_usage_chunk = False
    if kind == "chat":
        materialize(call_kwargs, "messages")
        if is_stream and config.include_stream_usage and may_add_stream_options(provider, client, call_kwargs):
            hide_usage_chunk = _add_include_usage(call_kwargs)
        attrs = chat_request_attributes(provider, client, call_kwargs)
        max_out = max_tokens(call_kwargs, "max_completion_tokens", "max_tokens")
        operation = "chat"
    elif kind == "completions":
        if is_stream and config.include_stream_usage and may_add_stream_options(provider, client, call_kwargs):
            hide_usage_chunk = _add_include_usage(call_kwargs)
        attrs = completions_request_attributes(provider, client, call_kwargs)
        max_out = max_tokens(call_kwargs, "max_tokens")
        operation = "text_completion"
    elif kind == "responses":
        materialize(call_kwargs, "input")
        attrs = responses_request_attributes(provider, client, call_kwargs)
        max_out = max_tokens(call_kwargs, "max_output_tokens")
        operation = "chat"
    else:
        materialize(call_kwargs, "input")
        attrs = embeddings_request_attributes(provider, client, call_kwargs)
        max_out = None
        operation = "embeddings"
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
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
    if kind == "chat":
        _content.record_input(op, _content_openai.chat_input, call_kwargs.get("messages"))
    elif kind == "responses":
        instructions = call_kwargs.get("instructions")
        _content.record_input(op, _content_openai.responses_input, call_kwargs.get("input"),
                              instructions if given(instructions) else None)
    return _Call(op, kind, is_stream, hide_usage_chunk, is_stream and _usage_requested(call_kwargs)), call_kwargs


# (URL path suffix, kind), the most specific first ("/chat/completions" before "/completions").
_REQUEST_PATHS = (("/chat/completions", "chat"), ("/responses", "responses"), ("/completions", "completions"),
                  ("/embeddings", "embeddings"))
_REQUEST_METHODS = [
    ("openai._base_client", "SyncAPIClient.request", False),
    ("openai._base_client", "AsyncAPIClient.request", True),
]
# Which instrumentation is in force, and the clients' request() fallback (see _stainless).
_router = RequestRouter("openai", _REQUEST_PATHS)


def _sync_wrapper(config, kind: str):
    # ``_prepare`` and ``time`` are looked up at call time (tests replace them on this module).
    inner = c.sync_call_wrapper(kind, lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                lambda delay: time.sleep(delay))
    return _router.method_wrapper(config, inner, is_async=False)


# The throttle's sleep, looked up at call time (tests replace it here).
_async_sleep = c.async_sleep


def _async_wrapper(config, kind: str):
    inner = c.async_call_wrapper(kind, lambda instance, kwargs: _prepare(config, kind, instance, kwargs),
                                 lambda delay: _async_sleep(delay))
    return _router.method_wrapper(config, inner, is_async=True)


def _method_wrapper(config, kind: str, is_async: bool):
    return (_async_wrapper if is_async else _sync_wrapper)(config, kind)


def _helper_close_wrapper(is_async: bool):
    """End our span when an SDK stream helper closes the HTTP response behind our proxy's back."""
    if is_async:
        async def async_wrapper(wrapped, instance, args, kwargs):
            try:
                return await wrapped(*args, **kwargs)
            finally:
                safe("helper close", c.end_stream_proxy, get(instance, "_raw_stream"))

        return async_wrapper

    def wrapper(wrapped, instance, args, kwargs):
        try:
            return wrapped(*args, **kwargs)
        finally:
            safe("helper close", c.end_stream_proxy, get(instance, "_raw_stream"))

    return wrapper


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
        if c.switched_off(self):  # OTEL_AI_COST_ENABLED=false, or a bad OTEL_AI_COST_* value
            return
        include = kwargs.get("include_stream_usage")
        if include is None:
            include = include_usage_from_env()
        telemetry = c.telemetry_from("otel_ai_cost.instrumentation.openai", kwargs)
        config = _Config(telemetry, bool(include), kwargs.get("catalog"))
        self._wrapped = []
        _router.current = config
        for module, path, kind, is_async in _CHAT + _RESPONSES + _COMPLETIONS + _EMBEDDINGS:
            if c.resolve(module, path) is None:
                continue
            c.wrap(module, path, _method_wrapper(config, kind, is_async), self._wrapped)
        _router.wrap_requests(config, _REQUEST_METHODS, _method_wrapper, self._wrapped)
        for module, path, is_async in _HELPER_CLOSES:
            if c.resolve(module, path) is None:
                continue
            c.wrap(module, path, _helper_close_wrapper(is_async), self._wrapped)
        _warm_up()

    def _uninstrument(self, **kwargs: Any) -> None:
        _router.current = None
        c.unwrap_all(self._wrapped)
        self._wrapped = []
