"""OpenTelemetry instrumentor for the ``google-genai`` SDK (Gemini API and Vertex AI).

Instruments ``client.models.generate_content``, ``generate_content_stream`` and ``embed_content``,
sync (``client.models``) and async (``client.aio.models``). Every request sent to the API becomes a
GenAI span with its token usage and its cost in USD; ``gen_ai.provider.name`` is ``gcp.vertex_ai``
for a client made with ``vertexai=True`` and ``gcp.gemini`` otherwise.

One span per HTTP request: the wrappers sit on the SDK's per-request methods (``_generate_content``,
``_generate_content_stream``, ``_embed_content``), below the SDK's automatic function calling and
automatic continuation loops, so each request of such a loop gets its own span, its own usage (the
API reports usage per request) and its own budget check. Chats (``client.chats``) go through the
same methods.

Usage (the traps of ``usageMetadata``):

- ``thoughtsTokenCount`` is NOT part of ``candidatesTokenCount``: output = candidates + thoughts,
  and the thoughts are the reasoning tokens (billed at the output price).
- ``toolUsePromptTokenCount`` (the prompt of a built-in tool such as code execution or search) is
  NOT part of ``promptTokenCount``: input = prompt + tool-use prompt, billed as input.
- ``cachedContentTokenCount`` IS part of ``promptTokenCount``: it is the cache-read subset.
- Audio prompt tokens (``promptTokensDetails``, modality AUDIO, minus the cached audio) are priced
  at the audio input price; audio / image output tokens at theirs where the catalog has one.
- The input total (prompt + tool-use prompt, cache included) selects the "> 200k tokens" context
  tier of the catalog, as Google bills long prompts.
- A stream reports the running usage on every chunk: the last one reported is the call's.

Estimates for budgets: Gemini has no public offline tokenizer, so the input is estimated with the
heuristic of ``otel_ai_cost.tokens`` on the text the model reads: the contents' text, function call
arguments and results (keys and values), the system instruction, and the function declarations
(name, description, parameter names, descriptions and enum values; types cost nothing), plus fixed
overheads per request, turn and declaration calibrated on the recorded requests (see
``benchmarks/estimation_error_google_genai.py``). Images count 258 tokens per 768x768 tile (258 when
both sides are at most 384 px or the size is unknown), other media 258 tokens per part. The prompt
of a server-side tool (``toolUsePromptTokenCount``) cannot be known before the call and is not
estimated. The SDK's own tokenizer (``google.genai.local_tokenizer``) downloads its model at run
time, so it is not used.

Message content (system instruction, input and output messages of generate_content) is recorded
only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (see ``_content``).
"""
from __future__ import annotations

import base64
import functools
import time
from collections.abc import Iterator as _IteratorABC
from contextvars import ContextVar
from typing import Any, Collection, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import _semconv as sc
from .._request import LLMRequest, TokenCount
from ..cost import Usage
from . import _content_google
from . import _core as c
from ._core import Operation, Outcome, StreamState, _content, as_num, log_once, safe

# 1.20.0 is the oldest version checked: older ones drop thoughtsTokenCount / toolUsePromptTokenCount
# from the response (1.0.0 does), so their thinking and tool-use tokens could not be billed.
_INSTRUMENTS = ("google-genai >= 1.20.0, < 4",)

GEMINI = "gcp.gemini"
VERTEX_AI = "gcp.vertex_ai"
GENERATE_CONTENT = "generate_content"
EMBEDDINGS = "embeddings"


_MODULE = "google.genai.models"
# kind -> candidate (class.method) paths, first found is wrapped (the public method on SDKs that
# have no per-request private one).
_METHODS: List[Tuple[str, bool, Tuple[str, ...]]] = [
    ("generate", False, ("Models._generate_content", "Models.generate_content")),
    ("stream", False, ("Models._generate_content_stream", "Models.generate_content_stream")),
    ("embed", False, ("Models._embed_content", "Models.embed_content")),
    ("generate", True, ("AsyncModels._generate_content", "AsyncModels.generate_content")),
    ("stream", True, ("AsyncModels._generate_content_stream", "AsyncModels.generate_content_stream")),
    ("embed", True, ("AsyncModels._embed_content", "AsyncModels.embed_content")),
]

# FinishReason names -> the semconv values where one exists; others are reported lower-cased.
_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
}

# Estimation constants, calibrated on the recorded requests (benchmarks/estimation_error_google_genai.py).
_GEMINI_TOKEN_RATIO = 1.0          # Gemini tokens per heuristic (cl100k-like) token
_REQUEST_OVERHEAD = 1              # tokens of every request (the first turn's marker)
_TURN_OVERHEAD = 3                 # tokens per content turn beyond the first
_TOOL_DECLARATION_OVERHEAD = 4     # tokens added per function declaration
_BUILTIN_TOOL_TOKENS = 1           # a built-in tool (code execution, search, ...) without a declaration
_MEDIA_TOKENS = 258                # one image tile (768x768), or a media part of unknown size
_TILE = 768


# ---------------------------------------------------------------------------------------------
# Small helpers (``_get`` and ``_int`` differ from ``_core.get`` / ``as_int``: the SDK accepts
# camelCase dict keys, and its JSON numbers may be integral floats)


def _get(obj: Any, name: str) -> Any:
    """``obj.name``, or ``obj[name]`` / ``obj[camelName]`` for a dict (the SDK accepts both)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        value = obj.get(name)
        if value is None and "_" in name:
            head, *rest = name.split("_")
            value = obj.get(head + "".join(p.title() for p in rest))
        return value
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _enum_name(value: Any) -> Optional[str]:
    """The name of an SDK enum member, or the string itself (the SDK keeps unknown values as str)."""
    if value is None:
        return None
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(value, str):
        return value
    return None


def _enum_value(value: Any) -> Optional[str]:
    if value is None:
        return None
    inner = getattr(value, "value", value)
    return inner if isinstance(inner, str) else None


def bare_model(model: Any) -> Optional[str]:
    """The model id in any of the forms the SDK accepts: ``models/X``, ``publishers/google/models/X``,
    ``projects/P/locations/L/publishers/google/models/X``, ``google/X`` -> ``X``.

    Tuned models (``tunedModels/...``) and endpoints are kept as given.
    """
    if not isinstance(model, str) or not model:
        return None
    name = model.strip()
    if "/models/" in name:
        return name.rsplit("/models/", 1)[1] or name
    if name.startswith("models/"):
        return name[len("models/"):] or name
    if name.startswith("google/") and name.count("/") == 1:
        return name[len("google/"):] or name
    return name


def _api_client(instance: Any) -> Any:
    return _get(instance, "_api_client")


def provider_of(instance: Any) -> str:
    return VERTEX_AI if _get(_api_client(instance), "vertexai") else GEMINI


def _host_port(instance: Any, config: Any) -> Tuple[Optional[str], Optional[int]]:
    base_url = _get(_get(config, "http_options"), "base_url")
    if not isinstance(base_url, str) or not base_url:
        base_url = _get(_get(_api_client(instance), "_http_options"), "base_url")
    if not isinstance(base_url, str) or not base_url:
        return None, None
    parts = urlsplit(base_url)
    host = parts.hostname
    if not host:
        return None, None
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 80 if parts.scheme == "http" else 443
    return host, port


# ---------------------------------------------------------------------------------------------
# Request attributes


def request_attributes(operation: str, instance: Any, model: Optional[str], config: Any,
                       stream: bool = False) -> Dict[str, Any]:
    attrs: Dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: operation,
        sc.GEN_AI_PROVIDER_NAME: provider_of(instance),
    }
    if model:
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    host, port = _host_port(instance, config)
    if host:
        attrs[sc.SERVER_ADDRESS] = host
        attrs[sc.SERVER_PORT] = port
    if operation == EMBEDDINGS:
        dims = _int(_get(config, "output_dimensionality"))
        if dims is not None:
            attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
        return attrs
    max_tokens = _int(_get(config, "max_output_tokens"))
    if max_tokens is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    for key, attr in (("temperature", sc.GEN_AI_REQUEST_TEMPERATURE), ("top_p", sc.GEN_AI_REQUEST_TOP_P),
                      ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY),
                      ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY)):
        value = as_num(_get(config, key))
        if value is not None:
            attrs[attr] = value
    top_k = as_num(_get(config, "top_k"))
    if top_k is not None:
        attrs[sc.GEN_AI_REQUEST_TOP_K] = int(top_k) if top_k.is_integer() else top_k
    stop = _get(config, "stop_sequences")
    if isinstance(stop, (list, tuple)):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [s for s in stop if isinstance(s, str)]
    seed = _int(_get(config, "seed"))
    if seed is not None:
        attrs[sc.GEN_AI_REQUEST_SEED] = seed
    n = _int(_get(config, "candidate_count"))
    if n is not None and n != 1:
        attrs[sc.GEN_AI_REQUEST_CHOICE_COUNT] = n
    mime = _get(config, "response_mime_type")
    if isinstance(mime, str):
        if mime == "application/json":
            attrs[sc.GEN_AI_OUTPUT_TYPE] = "json"
        elif mime == "text/plain":
            attrs[sc.GEN_AI_OUTPUT_TYPE] = "text"
    if stream:
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


# ---------------------------------------------------------------------------------------------
# Usage and response attributes


def _modality_count(details: Any, modality: str) -> int:
    total = 0
    for item in details or ():
        name = _enum_name(_get(item, "modality"))
        if name is not None and name.upper() == modality:
            total += _int(_get(item, "token_count")) or 0
    return total


def usage_from_metadata(meta: Any) -> Optional[Usage]:
    """``Usage`` from a ``usageMetadata`` (GenerateContentResponseUsageMetadata), see the module doc."""
    if meta is None:
        return None
    prompt = _int(_get(meta, "prompt_token_count"))
    candidates = _int(_get(meta, "candidates_token_count"))
    if candidates is None:
        candidates = _int(_get(meta, "response_token_count"))  # UsageMetadata (embeddings, live)
    thoughts = _int(_get(meta, "thoughts_token_count")) or 0
    tool_prompt = _int(_get(meta, "tool_use_prompt_token_count")) or 0
    if prompt is None and candidates is None and not thoughts and not tool_prompt:
        return None
    cached = _int(_get(meta, "cached_content_token_count")) or 0
    prompt_details = _get(meta, "prompt_tokens_details")
    cache_details = _get(meta, "cache_tokens_details")
    output_details = _get(meta, "candidates_tokens_details") or _get(meta, "response_tokens_details")
    audio_in = max(_modality_count(prompt_details, "AUDIO") - _modality_count(cache_details, "AUDIO"), 0)
    image_in = max(_modality_count(prompt_details, "IMAGE") - _modality_count(cache_details, "IMAGE"), 0)
    return Usage(
        input_tokens=(prompt or 0) + tool_prompt,
        output_tokens=(candidates or 0) + thoughts,
        cache_read_input_tokens=cached,
        reasoning_output_tokens=thoughts,
        audio_input_tokens=audio_in,
        image_input_tokens=image_in,
        audio_output_tokens=_modality_count(output_details, "AUDIO"),
        image_output_tokens=_modality_count(output_details, "IMAGE"),
    )


def _finish_reason(value: Any) -> Optional[str]:
    name = _enum_name(value)
    if not name or name == "FINISH_REASON_UNSPECIFIED":
        return None
    return _FINISH_REASONS.get(name.upper(), name.lower())


def _service_tier(meta: Any) -> Optional[str]:
    tier = _enum_value(_get(meta, "service_tier"))
    if tier is None and meta is not None:
        extra = getattr(meta, "model_extra", None) or {}
        tier = extra.get("service_tier") or extra.get("serviceTier")
    return tier.lower() if isinstance(tier, str) else None


def generate_outcome(response: Any) -> Outcome:
    meta = _get(response, "usage_metadata")
    attrs: Dict[str, Any] = {}
    response_id = _get(response, "response_id")
    if isinstance(response_id, str):
        attrs[sc.GEN_AI_RESPONSE_ID] = response_id
    reasons = [r for r in (_finish_reason(_get(cand, "finish_reason")) for cand in _get(response, "candidates") or ()) if r]
    if reasons:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    model = _get(response, "model_version")
    return Outcome(
        usage=usage_from_metadata(meta),
        response_model=model if isinstance(model, str) else None,
        service_tier=_service_tier(meta),
        attributes=attrs,
    )


def embed_outcome(response: Any) -> Outcome:
    usage = None
    meta = _get(response, "usage_metadata")
    prompt = _int(_get(meta, "prompt_token_count"))
    if prompt is not None:
        usage = Usage(input_tokens=prompt)
    else:
        counts = [as_num(_get(_get(e, "statistics"), "token_count")) for e in _get(response, "embeddings") or ()]
        counts = [n for n in counts if n is not None]
        if counts:
            usage = Usage(input_tokens=int(sum(counts)))
    return Outcome(usage=usage, service_tier=_service_tier(meta))


class GenerateStreamState(StreamState):
    """Reads the running usage, model, id and finish reasons off the chunks the user reads."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.meta: Any = None
        self.model: Optional[str] = None
        self.response_id: Optional[str] = None
        self.reasons: Dict[int, str] = {}

    def observe(self, item: Any) -> bool:
        meta = _get(item, "usage_metadata")
        if meta is not None:
            self.meta = meta
        model = _get(item, "model_version")
        if isinstance(model, str):
            self.model = model
        response_id = _get(item, "response_id")
        if isinstance(response_id, str):
            self.response_id = response_id
        for position, cand in enumerate(_get(item, "candidates") or ()):
            reason = _finish_reason(_get(cand, "finish_reason"))
            if reason:
                index = _int(_get(cand, "index"))
                self.reasons[index if index is not None else position] = reason
        return False

    def outcome(self) -> Outcome:
        attrs: Dict[str, Any] = {}
        if self.response_id:
            attrs[sc.GEN_AI_RESPONSE_ID] = self.response_id
        if self.reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self.reasons[i] for i in sorted(self.reasons)]
        return _with_requested_tier(self.operation, Outcome(
            usage=usage_from_metadata(self.meta), response_model=self.model,
            service_tier=_service_tier(self.meta), attributes=attrs))


# ---------------------------------------------------------------------------------------------
# Estimation


def _image_tokens(data: Any) -> int:
    size = None
    try:
        from ..tokens import image_size

        raw = base64.b64decode(data) if isinstance(data, str) else data
        if isinstance(raw, (bytes, bytearray)):
            size = image_size(bytes(raw))
    except Exception:
        size = None
    if not size:
        return _MEDIA_TOKENS
    width, height = size
    if width <= 384 and height <= 384:
        return _MEDIA_TOKENS
    tiles = -(-width // _TILE) * -(-height // _TILE)
    return _MEDIA_TOKENS * max(tiles, 1)


class _Counter:
    """Accumulates heuristic text tokens and media tokens over the parts of a request."""

    def __init__(self) -> None:
        self.texts: List[str] = []
        self.media = 0
        self.fixed = 0

    def text(self, value: Any) -> None:
        if isinstance(value, str) and value:
            self.texts.append(value)

    def values(self, value: Any, depth: int = 0) -> None:
        """The keys and scalar values of a JSON-like value (function call arguments, results)."""
        if value is None or depth > 32:
            return
        if hasattr(value, "model_dump"):
            value = value.model_dump(exclude_none=True, mode="json")
        if isinstance(value, dict):
            for key, item in value.items():
                self.text(str(key))
                self.values(item, depth + 1)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.values(item, depth + 1)
        elif isinstance(value, str):
            self.text(value)
        elif isinstance(value, bool) or value is None:
            self.texts.append(str(value).lower())
        elif isinstance(value, (int, float)):
            self.texts.append(str(value))
        else:
            self.text(str(value))

    def schema(self, schema: Any, depth: int = 0) -> None:
        """Property names, descriptions and enum values of a parameter schema (types cost nothing)."""
        if schema is None or depth > 32:
            return
        if hasattr(schema, "model_dump"):
            schema = schema.model_dump(exclude_none=True, mode="json")
        if not isinstance(schema, dict):
            return
        self.text(schema.get("description"))
        for value in schema.get("enum") or ():
            self.text(str(value))
        for name, prop in (schema.get("properties") or {}).items():
            self.text(str(name))
            self.schema(prop, depth + 1)
        self.schema(schema.get("items"), depth + 1)

    def declaration(self, declaration: Any) -> None:
        self.text(_get(declaration, "name"))
        self.text(_get(declaration, "description"))
        parameters = _get(declaration, "parameters")
        if parameters is None:
            parameters = _get(declaration, "parameters_json_schema")
        self.schema(parameters)
        self.fixed += _TOOL_DECLARATION_OVERHEAD

    def part(self, part: Any) -> None:
        if part is None:
            return
        if isinstance(part, str):
            self.text(part)
            return
        if isinstance(part, (bytes, bytearray)):
            self.media += _MEDIA_TOKENS
            return
        text = _get(part, "text")
        if isinstance(text, str):
            self.text(text)
        call = _get(part, "function_call")
        if call is not None:
            self.text(_get(call, "name"))
            self.values(_get(call, "args"))
        result = _get(part, "function_response")
        if result is not None:
            self.text(_get(result, "name"))
            self.values(_get(result, "response"))
        code = _get(part, "executable_code")
        if code is not None:
            self.text(_get(code, "code"))
        outcome = _get(part, "code_execution_result")
        if outcome is not None:
            self.text(_get(outcome, "output"))
        blob = _get(part, "inline_data")
        if blob is not None:
            mime = _get(blob, "mime_type") or ""
            if isinstance(mime, str) and mime.startswith("image/"):
                self.media += _image_tokens(_get(blob, "data"))
            else:
                self.media += _MEDIA_TOKENS
        if _get(part, "file_data") is not None:
            self.media += _MEDIA_TOKENS
        if type(part).__name__ in ("Image", "JpegImageFile", "PngImageFile"):  # PIL images
            self.media += _MEDIA_TOKENS

    def content(self, content: Any) -> int:
        """Count one content (a turn); returns how many turns it was."""
        if content is None:
            return 0
        if isinstance(content, (str, bytes, bytearray)):
            self.part(content)
            return 1
        parts = _get(content, "parts")
        if parts is not None:
            for part in parts:
                self.part(part)
            return 1
        self.part(content)  # a bare Part (or Part dict)
        return 1

    def contents(self, contents: Any) -> None:
        if contents is None:
            return
        items: Iterable[Any] = contents if isinstance(contents, (list, tuple)) else [contents]
        turns = sum(self.content(item) for item in items)
        self.fixed += _REQUEST_OVERHEAD + _TURN_OVERHEAD * max(turns - 1, 0)

    def tools(self, tools: Any) -> None:
        for tool in tools or ():
            if callable(tool) and not hasattr(tool, "function_declarations"):
                # A Python function (automatic function calling): its name, docstring and parameters.
                import inspect

                self.text(getattr(tool, "__name__", ""))
                self.text(inspect.getdoc(tool) or "")
                try:
                    for name in inspect.signature(tool).parameters:
                        self.text(name)
                except (TypeError, ValueError):
                    pass
                self.fixed += _TOOL_DECLARATION_OVERHEAD
                continue
            declarations = _get(tool, "function_declarations")
            if declarations:
                for declaration in declarations:
                    self.declaration(declaration)
            else:
                self.fixed += _BUILTIN_TOOL_TOKENS

    def total(self) -> int:
        from ..tokens import heuristic_tokens

        text = sum(heuristic_tokens(t) for t in self.texts)
        return int(round(text * _GEMINI_TOKEN_RATIO)) + self.media + self.fixed


def estimate_generate_input(contents: Any, config: Any) -> TokenCount:
    """Estimated ``promptTokenCount`` of a generate_content request (heuristic: no offline tokenizer)."""
    try:
        counter = _Counter()
        counter.contents(contents)
        system = _get(config, "system_instruction")
        if system is not None:
            counter.content(system)
        counter.tools(_get(config, "tools"))
        return TokenCount(counter.total(), "heuristic")
    except Exception as exc:  # noqa: BLE001
        log_once("google_genai estimate", exc)
        return TokenCount(0, "heuristic")


def estimate_embed_input(contents: Any) -> TokenCount:
    try:
        counter = _Counter()
        counter.contents(contents)
        return TokenCount(counter.total(), "heuristic")
    except Exception as exc:  # noqa: BLE001
        log_once("google_genai estimate", exc)
        return TokenCount(0, "heuristic")


# ---------------------------------------------------------------------------------------------
# One call


def _materialize(call_kwargs: Dict[str, Any], key: str) -> Any:
    """A one-shot iterator argument becomes a list, so the lazy estimate cannot consume it."""
    value = call_kwargs.get(key)
    if isinstance(value, _IteratorABC):
        value = call_kwargs[key] = list(value)
    return value


def _prepare(config: c.WrapContext, kind: str, instance: Any, kwargs: Dict[str, Any]) -> Tuple[Operation, Dict[str, Any]]:
    call_kwargs = dict(kwargs)
    model_arg = call_kwargs.get("model")
    model = bare_model(model_arg)
    gen_config = call_kwargs.get("config")
    provider = provider_of(instance)
    if kind == "embed":
        operation = EMBEDDINGS
        key = next((k for k in ("contents", "batch_contents", "content") if call_kwargs.get(k) is not None), None)
        contents = _materialize(call_kwargs, key) if key else None
        estimate = (lambda: estimate_embed_input(contents))
        max_out = None
        service_tier = None
    else:
        operation = GENERATE_CONTENT
        contents = _materialize(call_kwargs, "contents")
        estimate = (lambda: estimate_generate_input(contents, gen_config))
        max_out = _int(_get(gen_config, "max_output_tokens"))
        service_tier = _enum_value(_get(gen_config, "service_tier"))
    attrs = request_attributes(operation, instance, model, gen_config, stream=kind == "stream")
    request = LLMRequest(
        provider=provider,
        operation=operation,
        model=model,
        max_output_tokens=max_out,
        service_tier=service_tier.lower() if isinstance(service_tier, str) else None,
        estimate_input=estimate,
    )
    name = f"{operation} {model}" if model else operation
    op = Operation(config.telemetry, request, name, attrs, catalog=config.catalog)
    if kind != "embed":
        _content.record_input(op, _content_google.generate_input, contents, gen_config)
    return op, call_kwargs


def _with_requested_tier(op: Operation, outcome: Outcome) -> Outcome:
    """The SDK drops the ``serviceTier`` the API reports: price at the requested tier then."""
    if outcome.service_tier is None and op.request.service_tier:
        outcome.service_tier = op.request.service_tier
    return outcome


class _Call(c.Call):
    """One google-genai call: its operation, and what the user gets back for the SDK's result."""

    log_prefix = "google_genai "

    def __init__(self, operation: Operation, kind: str, is_async: bool) -> None:
        super().__init__(operation, kind)
        self.is_async = is_async

    def outcome(self, response: Any) -> Outcome:
        if self.kind == "embed":
            outcome = embed_outcome(response)
        else:
            outcome = generate_outcome(response)
            _content.add_output(outcome, self.operation, _content_google.generate_output, response, _finish_reason)
        return _with_requested_tier(self.operation, outcome)

    def handle_result(self, result: Any) -> Any:
        if self.kind == "stream":
            try:
                proxy = c.AsyncStreamProxy if self.is_async else c.StreamProxy
                state = GenerateStreamState(self.operation)
                state.content = _content.stream_accumulator(
                    self.operation, lambda: _content_google.GenerateAccumulator(_finish_reason))
                wrapped = proxy(result, state)
                scope = _STREAM_SCOPE.get()
                if scope is not None:  # read through generate_content_stream: it ends with it
                    scope.append(state)
                return wrapped
            except Exception as exc:  # noqa: BLE001
                log_once("google_genai stream", exc)
                self.finish_without_response()
                return result
        self.finish_with(result)
        return result


def _start(config: c.WrapContext, kind: str, is_async: bool, instance: Any,
           kwargs: Dict[str, Any]) -> Tuple[_Call, Dict[str, Any]]:
    op, call_kwargs = _prepare(config, kind, instance, kwargs)
    return _Call(op, kind, is_async), call_kwargs


def _decide(call: _Call, call_kwargs: Dict[str, Any]) -> Optional[float]:
    # Downgrades swap the model of generate_content calls; embeddings go ahead unchanged.
    return call.operation.apply_decision(call_kwargs)


def _sync_wrapper(config: c.WrapContext, kind: str):
    # ``time`` is looked up at call time (tests replace it on this module).
    return c.sync_call_wrapper(f"google_genai {kind}",
                               lambda instance, kwargs: _start(config, kind, False, instance, kwargs),
                               lambda delay: time.sleep(delay), _decide)


def _async_wrapper(config: c.WrapContext, kind: str):
    return c.async_call_wrapper(f"google_genai {kind}",
                                lambda instance, kwargs: _start(config, kind, True, instance, kwargs),
                                lambda delay: c.async_sleep(delay), _decide)


# ---------------------------------------------------------------------------------------------
# The public generate_content_stream: its close ends the spans of the requests it streamed
#
# The SDK's public stream is a generator over generators over the per-request stream we proxy,
# iterated with ``for`` / ``async for``, which never close what they iterate: closing the public
# stream only drops the inner ones, and the async SDK leaves their closing to the event loop, a
# turn or more later. So the public stream is proxied too; while the user reads it, the requests
# it sends register their stream state (``_STREAM_SCOPE``), and its ``close()`` / ``aclose()``
# (or its being dropped) ends them, before returning.

_STREAM_SCOPE: "ContextVar[Optional[List[StreamState]]]" = ContextVar("otel_ai_cost_genai_stream_scope", default=None)


def _end_all(states: List[StreamState]) -> None:
    for state in list(states):
        state.end()


class _PublicStreamBase(wrapt.ObjectProxy):
    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self._self_states: List[StreamState] = []
        self._self_finalizer = c.end_when_collected(self, functools.partial(_end_all, self._self_states), watch=False)

    def _self_end(self) -> None:
        self._self_finalizer.detach()
        _end_all(self._self_states)


class PublicStreamProxy(_PublicStreamBase):
    """``Models.generate_content_stream``'s generator: ``close()`` ends its requests' spans."""

    def __iter__(self):
        return self

    def __next__(self):
        token = _STREAM_SCOPE.set(self._self_states)
        try:
            return self.__wrapped__.__next__()
        except BaseException:  # exhausted, failed or interrupted: nothing more is read
            self._self_end()
            raise
        finally:
            _STREAM_SCOPE.reset(token)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()


class AsyncPublicStreamProxy(_PublicStreamBase):
    """``AsyncModels.generate_content_stream``'s async generator: ``aclose()`` ends its requests' spans."""

    def __aiter__(self):
        return self

    async def __anext__(self):
        token = _STREAM_SCOPE.set(self._self_states)
        try:
            return await self.__wrapped__.__anext__()
        except BaseException:
            self._self_end()
            raise
        finally:
            _STREAM_SCOPE.reset(token)

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            self._self_end()


def _public_stream_wrapper(wrapped, instance, args, kwargs):
    result = wrapped(*args, **kwargs)
    return safe("google_genai public stream", PublicStreamProxy, result, default=result)


async def _async_public_stream_wrapper(wrapped, instance, args, kwargs):
    result = await wrapped(*args, **kwargs)
    return safe("google_genai public stream", AsyncPublicStreamProxy, result, default=result)


# ---------------------------------------------------------------------------------------------
# The instrumentor


class GoogleGenAIInstrumentor(BaseInstrumentor):
    """Instruments the ``google-genai`` SDK (``google.genai.Client``): generate_content (sync, async,
    streamed) and embed_content, on the Gemini API and on Vertex AI.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider`` and ``catalog`` (a
    pricing catalog; default: the packaged one).
    """

    # BaseInstrumentor is a singleton: the list of wrapped methods must survive a second __init__.
    _wrapped: list = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        if c.switched_off(self):  # OTEL_AI_COST_ENABLED=false, or a bad OTEL_AI_COST_* value
            return
        telemetry = c.telemetry_from("otel_ai_cost.instrumentation.google_genai", kwargs)
        config = c.WrapContext(telemetry, kwargs.get("catalog"))
        self._wrapped = []
        for kind, is_async, paths in _METHODS:
            for path in paths:
                if c.resolve(_MODULE, path) is None:
                    continue
                factory = _async_wrapper if is_async else _sync_wrapper
                c.wrap(_MODULE, path, factory(config, kind), self._wrapped)
                if kind == "stream" and path.endswith("._generate_content_stream"):
                    public = path.replace("._generate_content_stream", ".generate_content_stream")
                    if c.resolve(_MODULE, public) is not None:
                        c.wrap(_MODULE, public, _async_public_stream_wrapper if is_async else _public_stream_wrapper,
                               self._wrapped)
                break

    def _uninstrument(self, **kwargs: Any) -> None:
        c.unwrap_all(self._wrapped)
        self._wrapped = []
