"""OpenTelemetry instrumentor for AWS Bedrock through ``botocore`` (``boto3``) and ``aiobotocore``.

The ``bedrock-runtime`` operations ``Converse``, ``ConverseStream``, ``InvokeModel`` and
``InvokeModelWithResponseStream`` become GenAI spans (provider ``aws.bedrock``) with the token
usage and its cost in USD. The hook is ``BaseClient._make_api_call`` (and
``AioBaseClient._make_api_call``): every other service and operation goes straight through.

Where the usage comes from (Bedrock reports it differently per API):

- ``Converse``: ``usage`` (``inputTokens`` is the uncached remainder: the total input is
  ``inputTokens + cacheReadInputTokens + cacheWriteInputTokens``; ``cacheDetails`` splits the
  writes by TTL, the ``1h`` ones priced apart).
- ``ConverseStream``: the same ``usage`` in the last ``metadata`` event.
- ``InvokeModel``: the ``X-Amzn-Bedrock-Input-Token-Count`` / ``-Output-Token-Count`` /
  ``-Cache-Read-Input-Token-Count`` / ``-Cache-Write-Input-Token-Count`` response headers,
  Bedrock's own metering, the same for every model family (the input count is again the uncached
  remainder). The body is family-specific (Anthropic ``usage``, Nova ``usage``, Titan
  ``inputTextTokenCount`` / ``results[].tokenCount``, Llama ``prompt_token_count`` /
  ``generation_token_count``; Cohere and Mistral report none): it is the fallback when the headers
  are missing, and gives the response id, model and finish reasons. The sync client's body (a
  ``StreamingBody`` of a response that is not streamed: Bedrock sends it whole once generated)
  is read once and handed back to the user as an identical ``StreamingBody``; the async client's
  body is left untouched (usage from the headers only).
- ``InvokeModelWithResponseStream``: the last chunk's ``amazon-bedrock-invocationMetrics``
  (Bedrock's metering again), else the family's own stream events.

Streams are returned behind a transparent proxy that observes the events as the user reads them
(never ahead) and ends the span exactly once: exhaustion, ``close()``, an error, or garbage
collection of an abandoned stream.

Message content is never recorded: content capture is not supported for bedrock; with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` the instrumentor says so once (in the log).
"""
from __future__ import annotations

import base64
import io
import json
import time
from typing import Any, Collection, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import _semconv as sc
from .._request import LLMRequest, TokenCount
from ..cost import Usage
from . import _core as c
from ._core import Operation, Outcome, StreamState, _content, as_num, log_once, safe

# Converse / ConverseStream appeared in botocore 1.34.116 (May 2024).
_INSTRUMENTS = ("botocore >= 1.34.116, < 2",)

PROVIDER = "aws.bedrock"
SERVICE = "bedrock-runtime"

CONVERSE = "Converse"
CONVERSE_STREAM = "ConverseStream"
INVOKE = "InvokeModel"
INVOKE_STREAM = "InvokeModelWithResponseStream"
_OPERATIONS = frozenset({CONVERSE, CONVERSE_STREAM, INVOKE, INVOKE_STREAM})

# Bodies larger than this are not read by the instrumentor (usage from the headers only).
_MAX_BODY_READ = 8 * 1024 * 1024

# Cross-region inference profile prefixes of model ids ("us.anthropic...", "global.amazon...").
_REGION_PREFIXES = frozenset({"us", "eu", "apac", "ap", "global", "us-gov", "jp", "au", "ca", "mx"})

_HEADER_INPUT = "x-amzn-bedrock-input-token-count"
_HEADER_OUTPUT = "x-amzn-bedrock-output-token-count"
_HEADER_CACHE_READ = "x-amzn-bedrock-cache-read-input-token-count"
_HEADER_CACHE_WRITE = "x-amzn-bedrock-cache-write-input-token-count"


# ---------------------------------------------------------------------------------------------
# Small pure helpers


def _int(value: Any) -> Optional[int]:
    """Like ``_common.as_int``, and a decimal string too (the token-count headers are strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []


def model_family(model_id: Optional[str]) -> Tuple[str, str]:
    """(vendor, bare model) for a Bedrock model id, inference-profile id or ARN.

    ``us.anthropic.claude-3-5-sonnet-20240620-v1:0`` -> ("anthropic", "claude-3-5-sonnet-20240620-v1:0");
    ``arn:aws:bedrock:...:inference-profile/eu.amazon.nova-pro-v1:0`` -> ("amazon", "nova-pro-v1:0").
    """
    name = (model_id or "").strip()
    if name.startswith("arn:"):
        name = name.rsplit("/", 1)[-1]
    parts = name.split(".")
    if len(parts) > 2 and parts[0].lower() in _REGION_PREFIXES:
        parts = parts[1:]
    if len(parts) < 2:
        return "", name.lower()
    return parts[0].lower(), ".".join(parts[1:]).lower()


def is_embedding_model(model_id: Optional[str]) -> bool:
    return "embed" in model_family(model_id)[1]


def _endpoint(client: Any) -> Tuple[Optional[str], Optional[int]]:
    try:
        url = client.meta.endpoint_url
    except Exception:
        return None, None
    if not isinstance(url, str):
        return None, None
    parts = urlsplit(url)
    if not parts.hostname:
        return None, None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port


def _service_name(client: Any) -> Optional[str]:
    try:
        return client.meta.service_model.service_name
    except Exception:
        return None


def _json_body(body: Any) -> Optional[Dict[str, Any]]:
    """The JSON request body of an InvokeModel call, when it is given as bytes or text."""
    if isinstance(body, (bytes, bytearray)):
        raw: Any = bytes(body)
    elif isinstance(body, str):
        raw = body
    else:
        return None  # a file-like body: never read it (it is the user's to send)
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


# ---------------------------------------------------------------------------------------------
# Request attributes


def _set_sampling(attrs: Dict[str, Any], max_tokens: Any, temperature: Any, top_p: Any, top_k: Any,
                  stop: Any) -> None:
    if _int(max_tokens) is not None and not isinstance(max_tokens, str):
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    for value, key in ((temperature, sc.GEN_AI_REQUEST_TEMPERATURE), (top_p, sc.GEN_AI_REQUEST_TOP_P),
                       (top_k, sc.GEN_AI_REQUEST_TOP_K)):
        number = as_num(value)
        if number is not None:
            attrs[key] = number
    if isinstance(stop, str):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, (list, tuple)):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [s for s in stop if isinstance(s, str)]


def converse_attributes(params: Mapping[str, Any]) -> Dict[str, Any]:
    attrs: Dict[str, Any] = {}
    config = _dict(params.get("inferenceConfig"))
    extra = _dict(params.get("additionalModelRequestFields"))
    _set_sampling(attrs, config.get("maxTokens"), config.get("temperature"), config.get("topP"),
                  extra.get("top_k", extra.get("topK")), config.get("stopSequences"))
    return attrs


def invoke_operation(model_id: Optional[str], body: Optional[Mapping[str, Any]]) -> str:
    """``gen_ai.operation.name`` of an InvokeModel call: embeddings, chat (messages) or text_completion."""
    if is_embedding_model(model_id):
        return "embeddings"
    if body is not None and "messages" not in body and ("prompt" in body or "inputText" in body):
        return "text_completion"  # Titan, Llama, Mistral, Claude 2 text prompts
    return "chat"


def invoke_attributes(model_id: Optional[str], body: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The sampling attributes from a family-specific InvokeModel body."""
    attrs: Dict[str, Any] = {}
    if body is None:
        return attrs
    vendor, model = model_family(model_id)
    if vendor == "amazon" and "textGenerationConfig" in body:  # Titan text
        cfg = _dict(body.get("textGenerationConfig"))
        _set_sampling(attrs, cfg.get("maxTokenCount"), cfg.get("temperature"), cfg.get("topP"), None,
                      cfg.get("stopSequences"))
    elif vendor == "amazon":  # Nova
        cfg = _dict(body.get("inferenceConfig"))
        _set_sampling(attrs, cfg.get("max_new_tokens", cfg.get("maxTokens")), cfg.get("temperature"),
                      cfg.get("topP", cfg.get("top_p")), cfg.get("topK", cfg.get("top_k")),
                      cfg.get("stopSequences"))
    elif vendor == "meta":
        _set_sampling(attrs, body.get("max_gen_len"), body.get("temperature"), body.get("top_p"), None, None)
    elif vendor == "cohere":
        _set_sampling(attrs, body.get("max_tokens"), body.get("temperature"), body.get("p"), body.get("k"),
                      body.get("stop_sequences"))
    elif vendor == "mistral":
        _set_sampling(attrs, body.get("max_tokens"), body.get("temperature"), body.get("top_p"),
                      body.get("top_k"), body.get("stop"))
    else:  # anthropic, ai21, deepseek, openai and other OpenAI-like bodies
        max_tokens = body.get("max_tokens", body.get("max_tokens_to_sample", body.get("max_completion_tokens")))
        _set_sampling(attrs, max_tokens, body.get("temperature"), body.get("top_p"), body.get("top_k"),
                      body.get("stop_sequences", body.get("stop")))
    return attrs


# ---------------------------------------------------------------------------------------------
# Estimation (no public tokenizer for most Bedrock models: the calibrated heuristic)

# Calibrated on the recorded requests (benchmarks/estimation_error_bedrock.py): tokens added
# around the text, per model vendor: (per request, per message, tools block, per tool-call block).
# The tools block is the system prompt the model adds when tools are given: Anthropic documents
# it per model (264 Claude 3 / 3.5 Haiku, 294 Claude 3.5 Sonnet, 346 the Claude 3.7 / 4 family,
# "auto" tool choice); Nova's was measured on the recordings. A tool call or tool result in the
# history costs more than its JSON (the model's own call format around it).
_OVERHEAD = {
    "anthropic": (6, 3, 346, 35),
    "amazon": (0, 0, 348, 13),
    "meta": (0, 0, 0, 0),
    "mistral": (1, 0, 0, 0),
    "cohere": (0, 0, 0, 0),
}
_DEFAULT_OVERHEAD = (0, 3, 0, 0)
_ANTHROPIC_TOOLS_PROMPT = (("claude-3-haiku", 264), ("claude-3-5-haiku", 264), ("claude-3-5-sonnet", 294),
                           ("claude-3-opus", 530), ("claude-3-sonnet", 159))
_TITAN_CONVERSE_PER_MESSAGE = 3
_TOOL_BLOCK_KEYS = ("toolUse", "toolResult")
_TOOL_BLOCK_TYPES = ("tool_use", "tool_result")


def _overhead(model_id: Optional[str]) -> Tuple[int, int, int, int]:
    vendor, model = model_family(model_id)
    per_request, per_message, per_tools, per_call = _OVERHEAD.get(vendor, _DEFAULT_OVERHEAD)
    if vendor == "anthropic":
        for prefix, tokens in _ANTHROPIC_TOOLS_PROMPT:
            if model.startswith(prefix):
                per_tools = tokens
                break
    return per_request, per_message, per_tools, per_call


def _tool_blocks(messages: List[Any]) -> int:
    count = 0
    for message in messages:
        for block in _list(_dict(message).get("content")):
            if isinstance(block, dict) and (any(k in block for k in _TOOL_BLOCK_KEYS)
                                            or block.get("type") in _TOOL_BLOCK_TYPES):
                count += 1
    return count


def _texts(value: Any, out: List[str]) -> None:
    """Every text in a Converse / Anthropic / Nova content structure (images and documents skipped)."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _texts(item, out)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("image", "document", "video", "source", "cachePoint", "cache_control", "bytes",
                       "toolUseId", "tool_use_id", "id", "type", "role", "signature", "p"):
                continue
            if key in ("input", "json", "inputSchema", "input_schema") and not isinstance(item, str):
                out.append(json.dumps(item, separators=(",", ":")))
                continue
            _texts(item, out)


def _count(texts: List[str], model: str) -> Tuple[int, str]:
    from ..tokens import count_text

    total = 0
    method = "heuristic"
    for text in texts:
        counted = count_text(text, model)
        total += counted.tokens
        method = counted.method
    return total, method


def estimate_converse_input(model_id: Optional[str], params: Mapping[str, Any]) -> TokenCount:
    vendor, model = model_family(model_id)
    per_request, per_message, per_tools, per_call = _overhead(model_id)
    if vendor == "amazon" and model.startswith("titan"):
        per_message = _TITAN_CONVERSE_PER_MESSAGE
    messages = _list(params.get("messages"))
    texts: List[str] = []
    _texts(messages, texts)
    _texts(params.get("system"), texts)
    tools = _list(_dict(params.get("toolConfig")).get("tools"))
    _texts(tools, texts)
    tokens, method = _count(texts, model_id or "")
    tokens += per_request + per_message * len(messages) + (per_tools if tools else 0)
    tokens += per_call * _tool_blocks(messages)
    return TokenCount(tokens, method)


def estimate_invoke_input(model_id: Optional[str], body: Optional[Mapping[str, Any]]) -> TokenCount:
    if body is None:
        return TokenCount(0, "heuristic")
    per_request, per_message, per_tools, per_call = _overhead(model_id)
    texts: List[str] = []
    messages = _list(body.get("messages"))
    if is_embedding_model(model_id):
        per_request = per_message = per_tools = per_call = 0
        _texts(body.get("inputText"), texts)
        _texts(body.get("texts"), texts)
    elif messages:
        _texts(messages, texts)
        _texts(body.get("system"), texts)
    else:
        per_message = 0
        for key in ("inputText", "prompt", "message", "chat_history", "documents"):
            _texts(body.get(key), texts)
    tools = _list(body.get("tools")) or _list(_dict(body.get("toolConfig")).get("tools"))
    _texts(tools, texts)
    tokens, method = _count(texts, model_id or "")
    tokens += per_request + per_message * len(messages) + (per_tools if tools else 0)
    tokens += per_call * _tool_blocks(messages)
    return TokenCount(tokens, method)


# ---------------------------------------------------------------------------------------------
# Usage


def converse_usage(usage: Any) -> Optional[Usage]:
    """Usage from a Converse ``usage`` (TokenUsage) object."""
    usage = _dict(usage)
    inp = _int(usage.get("inputTokens"))
    out = _int(usage.get("outputTokens"))
    if inp is None and out is None:
        return None
    inp, out = inp or 0, out or 0
    read = _int(usage.get("cacheReadInputTokens")) or 0
    write = _int(usage.get("cacheWriteInputTokens")) or 0
    write_1h = sum(_int(d.get("inputTokens")) or 0 for d in _list(usage.get("cacheDetails"))
                   if isinstance(d, dict) and d.get("ttl") == "1h")
    # Documented (TokenUsage): inputTokens is the uncached remainder; totalTokens counts all.
    return Usage(input_tokens=inp + read + write, output_tokens=out, cache_read_input_tokens=read,
                 cache_write_input_tokens=write, cache_write_1h_input_tokens=min(write_1h, write))


def _metered_usage(inp: Optional[int], out: Optional[int], read: Optional[int], write: Optional[int],
                   write_1h: int = 0) -> Optional[Usage]:
    if inp is None and out is None:
        return None
    read, write = read or 0, write or 0
    return Usage(input_tokens=(inp or 0) + read + write, output_tokens=out or 0, cache_read_input_tokens=read,
                 cache_write_input_tokens=write, cache_write_1h_input_tokens=min(write_1h, write))


def header_usage(headers: Mapping[str, Any], write_1h: int = 0) -> Optional[Usage]:
    """Usage from the ``X-Amzn-Bedrock-*-Token-Count`` headers of an InvokeModel response."""
    lower = {str(k).lower(): v for k, v in headers.items()}
    return _metered_usage(_int(lower.get(_HEADER_INPUT)), _int(lower.get(_HEADER_OUTPUT)),
                          _int(lower.get(_HEADER_CACHE_READ)), _int(lower.get(_HEADER_CACHE_WRITE)), write_1h)


def _anthropic_1h(usage: Mapping[str, Any]) -> int:
    return _int(_dict(usage.get("cache_creation")).get("ephemeral_1h_input_tokens")) or 0


def body_usage(body: Mapping[str, Any]) -> Optional[Usage]:
    """Usage from a family-specific InvokeModel response body (when the headers are missing)."""
    usage = _dict(body.get("usage"))
    if "input_tokens" in usage or "output_tokens" in usage:  # Anthropic (uncached remainder + cache)
        return _metered_usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")),
                              _int(usage.get("cache_read_input_tokens")),
                              _int(usage.get("cache_creation_input_tokens")), _anthropic_1h(usage))
    if "inputTokens" in usage or "outputTokens" in usage:  # Nova
        return _metered_usage(_int(usage.get("inputTokens")), _int(usage.get("outputTokens")),
                              _int(usage.get("cacheReadInputTokenCount")),
                              _int(usage.get("cacheWriteInputTokenCount")))
    if "inputTextTokenCount" in body:  # Titan text and Titan embeddings
        results = _list(body.get("results"))
        out = sum(_int(r.get("tokenCount")) or 0 for r in results if isinstance(r, dict))
        return _metered_usage(_int(body.get("inputTextTokenCount")), out, None, None)
    if "prompt_token_count" in body or "generation_token_count" in body:  # Llama
        return _metered_usage(_int(body.get("prompt_token_count")), _int(body.get("generation_token_count")),
                              None, None)
    if "prompt_tokens" in usage:  # OpenAI-compatible bodies (gpt-oss, DeepSeek)
        return _metered_usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")), None, None)
    return None


def body_attributes(body: Mapping[str, Any]) -> Tuple[Optional[str], Dict[str, Any]]:
    """(response model, response attributes) from an InvokeModel response body."""
    attrs: Dict[str, Any] = {}
    model = body.get("model") if isinstance(body.get("model"), str) else None
    response_id = body.get("id")
    if not isinstance(response_id, str):
        response_id = body.get("generation_id") if isinstance(body.get("generation_id"), str) else None
    if response_id:
        attrs[sc.GEN_AI_RESPONSE_ID] = response_id
    reasons: List[str] = []
    for key in ("stop_reason", "stopReason", "finish_reason"):
        if isinstance(body.get(key), str):
            reasons.append(body[key])
    for item in _list(body.get("results")) + _list(body.get("outputs")) + _list(body.get("choices")) \
            + _list(body.get("generations")):
        if isinstance(item, dict):
            for key in ("completionReason", "stop_reason", "finish_reason"):
                if isinstance(item.get(key), str):
                    reasons.append(item[key])
    if reasons:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    return model, attrs


def _service_tier(value: Any) -> Optional[str]:
    if isinstance(value, dict):
        value = value.get("type")
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------------------------------------
# Outcomes


def converse_outcome(result: Mapping[str, Any]) -> Outcome:
    attrs: Dict[str, Any] = {}
    stop = result.get("stopReason")
    if isinstance(stop, str):
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [stop]
    tier = _service_tier(result.get("serviceTier"))
    return Outcome(usage=converse_usage(result.get("usage")), service_tier=tier, attributes=attrs)


def _headers(result: Mapping[str, Any]) -> Mapping[str, Any]:
    return _dict(_dict(result.get("ResponseMetadata")).get("HTTPHeaders"))


def invoke_outcome(result: Mapping[str, Any], body: Optional[Mapping[str, Any]]) -> Outcome:
    write_1h = _anthropic_1h(_dict(body.get("usage"))) if body else 0
    usage = header_usage(_headers(result), write_1h)
    model: Optional[str] = None
    attrs: Dict[str, Any] = {}
    if body is not None:
        if usage is None:
            usage = body_usage(body)
        model, attrs = body_attributes(body)
    tier = _service_tier(result.get("serviceTier"))
    return Outcome(usage=usage, response_model=model, service_tier=tier, attributes=attrs)


class ConverseStreamState(StreamState):
    """Reads a ConverseStream's events: ``messageStop`` (stop reason), ``metadata`` (usage)."""

    def __init__(self, operation: Operation, tier: Optional[str]) -> None:
        super().__init__(operation)
        self.usage: Optional[Usage] = None
        self.finish_reasons: List[str] = []
        self.tier = tier

    def observe(self, item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        stop = item.get("messageStop")
        if isinstance(stop, dict) and isinstance(stop.get("stopReason"), str):
            self.finish_reasons.append(stop["stopReason"])
        metadata = item.get("metadata")
        if isinstance(metadata, dict):
            usage = converse_usage(metadata.get("usage"))
            if usage is not None:
                self.usage = usage
            self.tier = _service_tier(metadata.get("serviceTier")) or self.tier
        return False

    def outcome(self) -> Outcome:
        attrs: Dict[str, Any] = {}
        if self.finish_reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = list(self.finish_reasons)
        return Outcome(usage=self.usage, service_tier=self.tier, attributes=attrs)


class InvokeStreamState(StreamState):
    """Reads InvokeModelWithResponseStream chunks: Bedrock's ``amazon-bedrock-invocationMetrics``
    (in the last chunk) first, the model family's own usage events as the fallback."""

    def __init__(self, operation: Operation, tier: Optional[str]) -> None:
        super().__init__(operation)
        self.metered: Optional[Usage] = None
        self.family_input: Optional[int] = None
        self.family_output: Optional[int] = None
        self.family_read: Optional[int] = None
        self.family_write: Optional[int] = None
        self.write_1h = 0
        self.model: Optional[str] = None
        self.response_id: Optional[str] = None
        self.finish_reasons: List[str] = []
        self.tier = tier

    def observe(self, item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        chunk = item.get("chunk")
        if not isinstance(chunk, dict):
            return False
        raw = chunk.get("bytes")
        if isinstance(raw, str):
            raw = base64.b64decode(raw)
        if not isinstance(raw, (bytes, bytearray)) or not raw:
            return False
        try:
            event = json.loads(raw)
        except ValueError:
            return False
        if isinstance(event, dict):
            self._event(event)
        return False

    def _event(self, event: Dict[str, Any]) -> None:
        metrics = event.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            self.metered = _metered_usage(
                _int(metrics.get("inputTokenCount")), _int(metrics.get("outputTokenCount")),
                _int(metrics.get("cacheReadInputTokenCount")), _int(metrics.get("cacheWriteInputTokenCount")),
            )
        kind = event.get("type")
        if kind == "message_start":  # Anthropic
            message = _dict(event.get("message"))
            self.model = message.get("model") if isinstance(message.get("model"), str) else self.model
            self.response_id = message.get("id") if isinstance(message.get("id"), str) else self.response_id
            self._anthropic_usage(_dict(message.get("usage")))
        elif kind == "message_delta":
            stop = _dict(event.get("delta")).get("stop_reason")
            if isinstance(stop, str):
                self.finish_reasons.append(stop)
            self._anthropic_usage(_dict(event.get("usage")))
        if isinstance(event.get("messageStop"), dict):  # Nova
            stop = event["messageStop"].get("stopReason")
            if isinstance(stop, str):
                self.finish_reasons.append(stop)
        if isinstance(event.get("metadata"), dict):
            usage = _dict(event["metadata"].get("usage"))
            self.family_input = _int(usage.get("inputTokens"))
            self.family_output = _int(usage.get("outputTokens"))
            self.family_read = _int(usage.get("cacheReadInputTokenCount"))
            self.family_write = _int(usage.get("cacheWriteInputTokenCount"))
        if "inputTextTokenCount" in event:  # Titan
            self.family_input = _int(event.get("inputTextTokenCount"))
        if "totalOutputTextTokenCount" in event:
            self.family_output = _int(event.get("totalOutputTextTokenCount"))
        if "prompt_token_count" in event and event.get("prompt_token_count") is not None:  # Llama
            self.family_input = _int(event.get("prompt_token_count"))
        if "generation_token_count" in event:
            self.family_output = _int(event.get("generation_token_count"))
        for key in ("completionReason", "stop_reason", "finish_reason"):
            if kind is None and isinstance(event.get(key), str):
                self.finish_reasons.append(event[key])
        for output in _list(event.get("outputs")):  # Mistral
            if isinstance(output, dict) and isinstance(output.get("stop_reason"), str):
                self.finish_reasons.append(output["stop_reason"])

    def _anthropic_usage(self, usage: Dict[str, Any]) -> None:
        if not usage:
            return
        for key, attr in (("input_tokens", "family_input"), ("output_tokens", "family_output"),
                          ("cache_read_input_tokens", "family_read"),
                          ("cache_creation_input_tokens", "family_write")):
            value = _int(usage.get(key))
            if value is not None:
                setattr(self, attr, value)
        self.write_1h = _anthropic_1h(usage) or self.write_1h

    def outcome(self) -> Outcome:
        usage = self.metered
        if usage is not None and self.write_1h:
            usage = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                          cache_read_input_tokens=usage.cache_read_input_tokens,
                          cache_write_input_tokens=usage.cache_write_input_tokens,
                          cache_write_1h_input_tokens=min(self.write_1h, usage.cache_write_input_tokens))
        if usage is None:
            usage = _metered_usage(self.family_input, self.family_output, self.family_read, self.family_write,
                                   self.write_1h)
        attrs: Dict[str, Any] = {}
        if self.response_id:
            attrs[sc.GEN_AI_RESPONSE_ID] = self.response_id
        if self.finish_reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = list(self.finish_reasons)
        return Outcome(usage=usage, response_model=self.model, service_tier=self.tier, attributes=attrs)


# ---------------------------------------------------------------------------------------------
# Stream proxies over botocore's EventStream (iterable, not an iterator) and aiobotocore's


class EventStreamProxy(c.StreamProxyBase):
    """Transparent proxy over a botocore ``EventStream``: observes each event the user reads."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped, state)
        self._self_iterator = None

    def __iter__(self):
        return self

    def __next__(self):
        state = self._self_state
        if self._self_iterator is None:
            self._self_iterator = iter(self.__wrapped__)
        iterator = self._self_iterator
        state.reading += 1
        try:
            item = next(iterator)
        except StopIteration:
            self._self_end()
            raise
        except BaseException as exc:  # a stream error event, a broken connection, an interrupt
            self._self_end(exc)
            raise
        finally:
            state.reading -= 1
            state.last_active = time.monotonic()
        state.observe_safely(item)
        return item

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()


class AsyncEventStreamProxy(c.StreamProxyBase):
    """The aiobotocore ``AioEventStream`` counterpart of ``EventStreamProxy``."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped, state)
        self._self_iterator = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        state = self._self_state
        if self._self_iterator is None:
            self._self_iterator = self.__wrapped__.__aiter__()
        iterator = self._self_iterator
        state.reading += 1
        try:
            item = await iterator.__anext__()
        except StopAsyncIteration:
            self._self_end()
            raise
        except BaseException as exc:  # a stream error event, a broken connection, a cancellation
            self._self_end(exc)
            raise
        finally:
            state.reading -= 1
            state.last_active = time.monotonic()
        state.observe_safely(item)
        return item

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()


# ---------------------------------------------------------------------------------------------
# One call


class _Call:
    def __init__(self, operation: Operation, api_operation: str, model_id: Optional[str]) -> None:
        self.operation = operation
        self.api_operation = api_operation
        self.model_id = model_id

    def finish_without_response(self) -> None:
        self.operation.finish(Outcome())

    def handle_result(self, result: Any, is_async: bool) -> Any:
        if not isinstance(result, dict):
            self.finish_without_response()
            return result
        name = self.api_operation
        # The tier the response reports prices the call; else the one the request asked for.
        requested = self.operation.request.service_tier
        if name in (CONVERSE, INVOKE):
            read_error: Optional[BaseException] = None
            if name == CONVERSE:
                outcome = converse_outcome(result)
            else:
                body, read_error = (None, None) if is_async else self._read_body(result)
                outcome = invoke_outcome(result, body)
            outcome.service_tier = outcome.service_tier or requested
            self.operation.finish(outcome, error=read_error)
        else:
            key = "stream" if name == CONVERSE_STREAM else "body"
            tier = _service_tier(result.get("serviceTier")) or requested
            state: StreamState = (ConverseStreamState(self.operation, tier) if name == CONVERSE_STREAM
                                  else InvokeStreamState(self.operation, tier))
            stream = result.get(key)
            if stream is None:
                self.finish_without_response()
                return result
            proxy_class = AsyncEventStreamProxy if is_async else EventStreamProxy
            result[key] = proxy_class(stream, state)
        return result

    def _read_body(self, result: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], Optional[BaseException]]:
        """Read the (already generated, not streamed) InvokeModel body once and give the user an
        identical ``StreamingBody`` over the same bytes. Returns (parsed JSON body, read error).

        If reading fails (the connection broke), the user's body raises that same error when read,
        as it would have without us, and the span records it.
        """
        from botocore.response import StreamingBody

        body = result.get("body")
        if not isinstance(body, StreamingBody):
            return None, None
        headers = {str(k).lower(): v for k, v in _headers(result).items()}
        length = _int(headers.get("content-length"))
        if length is not None and length > _MAX_BODY_READ:
            return None, None
        # Without a Content-Length (a chunked body) the size is known only by reading: never more
        # than the cap + 1 bytes.
        parts: List[bytes] = []
        size = 0
        try:
            while size <= _MAX_BODY_READ:
                part = body.read(_MAX_BODY_READ + 1 - size)
                if not part:
                    break
                parts.append(part)
                size += len(part)
        except Exception as exc:  # the user's read would have failed the same way
            result["body"] = _failed_body(exc)
            return None, exc
        data = b"".join(parts)
        if size > _MAX_BODY_READ:
            # Too large to parse: the user reads the bytes buffered so far, then the rest (unread by us).
            result["body"] = StreamingBody(_PrefixedStream(data, body), None)
            return None, None
        result["body"] = StreamingBody(io.BytesIO(data), len(data))
        try:
            parsed = json.loads(data)
        except ValueError:
            return None, None
        return (parsed if isinstance(parsed, dict) else None), None


class _PrefixedStream:
    """The raw stream of a body the instrumentor started to read: ``prefix`` (the bytes it read),
    then the rest of the original ``StreamingBody`` (which still verifies its Content-Length)."""

    def __init__(self, prefix: bytes, rest: Any) -> None:
        self._prefix = prefix
        self._offset = 0
        self._rest = rest

    def read(self, amt: Optional[int] = None) -> bytes:
        start = self._offset
        if amt is None or amt < 0:
            self._offset = len(self._prefix)
            return self._prefix[start:] + self._rest.read()
        head = self._prefix[start:start + amt]
        self._offset += len(head)
        if len(head) < amt:
            return head + self._rest.read(amt - len(head))
        return head

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def readlines(self) -> List[bytes]:
        return self.read().splitlines(True)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._rest.close()


def _failed_body_class() -> Any:
    from botocore.response import StreamingBody

    class FailedBody(StreamingBody):
        """A response body whose reading failed while the instrumentor read it: raises that error."""

        def __init__(self, error: BaseException) -> None:
            super().__init__(io.BytesIO(b""), 0)
            self._error = error

        def read(self, amt: Optional[int] = None) -> bytes:
            raise self._error

        def readinto(self, b: Any) -> int:
            raise self._error

    return FailedBody


def _failed_body(error: BaseException) -> Any:
    return _failed_body_class()(error)


def _prepare(config: c.WrapContext, client: Any, api_operation: str, params: Mapping[str, Any]) -> Tuple[_Call, Dict[str, Any]]:
    _content.not_supported("bedrock")  # the variable may be set after instrument()
    call_params = dict(params)
    model_id = call_params.get("modelId") if isinstance(call_params.get("modelId"), str) else None
    if api_operation in (CONVERSE, CONVERSE_STREAM):
        operation = "chat"
        attrs = converse_attributes(call_params)

        def estimate() -> TokenCount:
            return estimate_converse_input(call_params.get("modelId"), call_params)
    else:
        body = _json_body(call_params.get("body"))
        operation = invoke_operation(model_id, body)
        attrs = invoke_attributes(model_id, body)

        def estimate() -> TokenCount:
            return estimate_invoke_input(model_id, body)
    start: Dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_PROVIDER_NAME: PROVIDER}
    if model_id:
        start[sc.GEN_AI_REQUEST_MODEL] = model_id
    host, port = _endpoint(client)
    if host:
        start[sc.SERVER_ADDRESS] = host
        start[sc.SERVER_PORT] = port
    start.update(attrs)
    if api_operation in (CONVERSE_STREAM, INVOKE_STREAM):
        start[sc.GEN_AI_REQUEST_STREAM] = True
    tier = call_params.get("serviceTier")
    request = LLMRequest(
        provider=PROVIDER,
        operation=operation,
        model=model_id,
        max_output_tokens=attrs.get(sc.GEN_AI_REQUEST_MAX_TOKENS),
        service_tier=_service_tier(tier),
        estimate_input=estimate,
    )
    name = f"{operation} {model_id}" if model_id else operation
    op = Operation(config.telemetry, request, name, start, catalog=config.catalog)
    return _Call(op, api_operation, model_id), call_params


def _arguments(args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> Tuple[Any, Any]:
    operation_name = args[0] if args else kwargs.get("operation_name")
    api_params = args[1] if len(args) > 1 else kwargs.get("api_params")
    return operation_name, api_params


def _targets(instance: Any, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> Optional[Tuple[str, Mapping[str, Any]]]:
    operation_name, api_params = _arguments(args, kwargs)
    if operation_name not in _OPERATIONS or not isinstance(api_params, Mapping):
        return None
    if _service_name(instance) != SERVICE:
        return None
    return operation_name, api_params


def _model_key(api_operation: str) -> Optional[str]:
    # Only the Converse body is model-agnostic: an InvokeModel body is in one family's format,
    # so a budget downgrade cannot swap its model (the call goes ahead, recorded as allowed).
    return "modelId" if api_operation in (CONVERSE, CONVERSE_STREAM) else None


def _sync_wrapper(config: c.WrapContext):
    def wrapper(wrapped, instance, args, kwargs):
        target = _targets(instance, args, kwargs)
        if target is None:
            return wrapped(*args, **kwargs)
        api_operation, params = target
        prepared = safe(f"bedrock {api_operation} request", _prepare, config, instance, api_operation, params)
        if prepared is None:
            return wrapped(*args, **kwargs)
        call, call_params = prepared
        delay = call.operation.apply_decision(call_params, _model_key(api_operation))  # raises on a block
        if delay:
            try:
                time.sleep(delay)
            except BaseException as exc:  # interrupted while throttled: the call is never sent
                call.operation.fail(exc)
                raise
        try:
            result = wrapped(api_operation, call_params)
        except BaseException as exc:
            call.operation.fail(exc)
            raise
        try:
            return call.handle_result(result, is_async=False)
        except Exception as exc:
            log_once(f"bedrock {api_operation} result", exc)
            call.finish_without_response()
            return result

    return wrapper


async def _async_sleep(seconds: float) -> None:
    """aiobotocore runs on asyncio only (not ``c.async_sleep``: no anyio import on this path)."""
    import asyncio

    await asyncio.sleep(seconds)


def _async_wrapper(config: c.WrapContext):
    async def wrapper(wrapped, instance, args, kwargs):
        target = _targets(instance, args, kwargs)
        if target is None:
            return await wrapped(*args, **kwargs)
        api_operation, params = target
        prepared = safe(f"bedrock {api_operation} request", _prepare, config, instance, api_operation, params)
        if prepared is None:
            return await wrapped(*args, **kwargs)
        call, call_params = prepared
        delay = call.operation.apply_decision(call_params, _model_key(api_operation))  # raises on a block
        if delay:
            try:
                await _async_sleep(delay)
            except BaseException as exc:  # cancelled while throttled: the call is never sent
                call.operation.fail(exc)
                raise
        try:
            result = await wrapped(api_operation, call_params)
        except BaseException as exc:
            call.operation.fail(exc)
            raise
        try:
            return call.handle_result(result, is_async=True)
        except Exception as exc:
            log_once(f"bedrock {api_operation} result", exc)
            call.finish_without_response()
            return result

    return wrapper


_TARGETS = (
    ("botocore.client", "BaseClient._make_api_call", False),
    ("aiobotocore.client", "AioBaseClient._make_api_call", True),
)


class BedrockInstrumentor(BaseInstrumentor):
    """Instruments the ``bedrock-runtime`` client of ``botocore`` / ``boto3`` (and of
    ``aiobotocore`` when installed): Converse, ConverseStream, InvokeModel and
    InvokeModelWithResponseStream.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider`` and ``catalog``
    (a pricing catalog; default: the packaged one).
    """

    # BaseInstrumentor is a singleton: keep the wrapped list on the class (see OpenAIInstrumentor).
    _wrapped: list = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        if c.switched_off(self):  # OTEL_AI_COST_ENABLED=false, or a bad OTEL_AI_COST_* value
            return
        _content.not_supported("bedrock")  # says so once when content capture is asked for
        telemetry = c.telemetry_from("otel_ai_cost.instrumentation.bedrock", kwargs)
        config = c.WrapContext(telemetry, kwargs.get("catalog"))
        self._wrapped = []
        for module, path, is_async in _TARGETS:
            if c.resolve(module, path) is None:
                continue
            factory = _async_wrapper if is_async else _sync_wrapper
            c.wrap(module, path, factory(config), self._wrapped)

    def _uninstrument(self, **kwargs: Any) -> None:
        c.unwrap_all(self._wrapped)
        self._wrapped = []
