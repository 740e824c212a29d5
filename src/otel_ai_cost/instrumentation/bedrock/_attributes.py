"""What Bedrock's requests and responses say: the request attributes, the response readers, the usage
and the outcomes (Converse ``usage``, the InvokeModel token-count headers, the family-specific
InvokeModel bodies). Pure functions of the SDK's dicts: nothing here touches the network."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ... import _semconv as sc
from ...cost import Usage
from .._core import Outcome, as_num

# Cross-region inference profile prefixes of model ids ("us.anthropic...", "global.amazon...").
_REGION_PREFIXES = frozenset({"us", "eu", "apac", "ap", "global", "us-gov", "jp", "au", "ca", "mx"})

_HEADER_INPUT = "x-amzn-bedrock-input-token-count"
_HEADER_OUTPUT = "x-amzn-bedrock-output-token-count"
_HEADER_CACHE_READ = "x-amzn-bedrock-cache-read-input-token-count"
_HEADER_CACHE_WRITE = "x-amzn-bedrock-cache-write-input-token-count"

# ---------------------------------------------------------------------------------------------
# Small pure helpers


def to_int(value: Any) -> Optional[int]:
    """Like ``_core.as_int``, and a decimal string too (the token-count headers are strings)."""
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


def as_dict(value: Any) -> Dict[str, Any]:
    """``value`` if it is a dict, else an empty one (botocore parses every structure to a dict)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> List[Any]:
    """``value`` if it is a list, else an empty one."""
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
    """Whether the model is an embedding model (Titan / Cohere / Nova embed)."""
    return "embed" in model_family(model_id)[1]


def endpoint(client: Any) -> Tuple[Optional[str], Optional[int]]:
    """``server.address`` and ``server.port`` from the client's ``endpoint_url``."""
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


def service_name(client: Any) -> Optional[str]:
    """The botocore service of the client (only ``bedrock-runtime`` calls are instrumented)."""
    try:
        name = client.meta.service_model.service_name
    except Exception:
        return None
    return name if isinstance(name, str) else None


def json_body(body: Any) -> Optional[Dict[str, Any]]:
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
    if to_int(max_tokens) is not None and not isinstance(max_tokens, str):
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
    config = as_dict(params.get("inferenceConfig"))
    extra = as_dict(params.get("additionalModelRequestFields"))
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
        cfg = as_dict(body.get("textGenerationConfig"))
        _set_sampling(attrs, cfg.get("maxTokenCount"), cfg.get("temperature"), cfg.get("topP"), None,
                      cfg.get("stopSequences"))
    elif vendor == "amazon":  # Nova
        cfg = as_dict(body.get("inferenceConfig"))
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
# Usage


def converse_usage(usage: Any) -> Optional[Usage]:
    """Usage from a Converse ``usage`` (TokenUsage) object."""
    usage = as_dict(usage)
    inp = to_int(usage.get("inputTokens"))
    out = to_int(usage.get("outputTokens"))
    if inp is None and out is None:
        return None
    inp, out = inp or 0, out or 0
    read = to_int(usage.get("cacheReadInputTokens")) or 0
    write = to_int(usage.get("cacheWriteInputTokens")) or 0
    write_1h = sum(to_int(d.get("inputTokens")) or 0 for d in as_list(usage.get("cacheDetails"))
                   if isinstance(d, dict) and d.get("ttl") == "1h")
    # Documented (TokenUsage): inputTokens is the uncached remainder; totalTokens counts all.
    return Usage(input_tokens=inp + read + write, output_tokens=out, cache_read_input_tokens=read,
                 cache_write_input_tokens=write, cache_write_1h_input_tokens=min(write_1h, write))


def metered_usage(inp: Optional[int], out: Optional[int], read: Optional[int], write: Optional[int],
                   write_1h: int = 0) -> Optional[Usage]:
    if inp is None and out is None:
        return None
    read, write = read or 0, write or 0
    return Usage(input_tokens=(inp or 0) + read + write, output_tokens=out or 0, cache_read_input_tokens=read,
                 cache_write_input_tokens=write, cache_write_1h_input_tokens=min(write_1h, write))


def header_usage(headers: Mapping[str, Any], write_1h: int = 0) -> Optional[Usage]:
    """Usage from the ``X-Amzn-Bedrock-*-Token-Count`` headers of an InvokeModel response."""
    lower = {str(k).lower(): v for k, v in headers.items()}
    return metered_usage(to_int(lower.get(_HEADER_INPUT)), to_int(lower.get(_HEADER_OUTPUT)),
                          to_int(lower.get(_HEADER_CACHE_READ)), to_int(lower.get(_HEADER_CACHE_WRITE)), write_1h)


def anthropic_1h(usage: Mapping[str, Any]) -> int:
    return to_int(as_dict(usage.get("cache_creation")).get("ephemeral_1h_input_tokens")) or 0


def body_usage(body: Mapping[str, Any]) -> Optional[Usage]:
    """Usage from a family-specific InvokeModel response body (when the headers are missing)."""
    usage = as_dict(body.get("usage"))
    if "input_tokens" in usage or "output_tokens" in usage:  # Anthropic (uncached remainder + cache)
        return metered_usage(to_int(usage.get("input_tokens")), to_int(usage.get("output_tokens")),
                              to_int(usage.get("cache_read_input_tokens")),
                              to_int(usage.get("cache_creation_input_tokens")), anthropic_1h(usage))
    if "inputTokens" in usage or "outputTokens" in usage:  # Nova
        return metered_usage(to_int(usage.get("inputTokens")), to_int(usage.get("outputTokens")),
                              to_int(usage.get("cacheReadInputTokenCount")),
                              to_int(usage.get("cacheWriteInputTokenCount")))
    if "inputTextTokenCount" in body:  # Titan text and Titan embeddings
        results = as_list(body.get("results"))
        out = sum(to_int(r.get("tokenCount")) or 0 for r in results if isinstance(r, dict))
        return metered_usage(to_int(body.get("inputTextTokenCount")), out, None, None)
    if "prompt_token_count" in body or "generation_token_count" in body:  # Llama
        return metered_usage(to_int(body.get("prompt_token_count")), to_int(body.get("generation_token_count")),
                              None, None)
    if "prompt_tokens" in usage:  # OpenAI-compatible bodies (gpt-oss, DeepSeek)
        return metered_usage(to_int(usage.get("prompt_tokens")), to_int(usage.get("completion_tokens")), None, None)
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
    for item in as_list(body.get("results")) + as_list(body.get("outputs")) + as_list(body.get("choices")) \
            + as_list(body.get("generations")):
        if isinstance(item, dict):
            for key in ("completionReason", "stop_reason", "finish_reason"):
                if isinstance(item.get(key), str):
                    reasons.append(item[key])
    if reasons:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    return model, attrs


def service_tier(value: Any) -> Optional[str]:
    """The tier name of a ``serviceTier`` (a ``{"type": ...}`` structure, or the bare name)."""
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
    tier = service_tier(result.get("serviceTier"))
    return Outcome(usage=converse_usage(result.get("usage")), service_tier=tier, attributes=attrs)


def response_headers(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """The HTTP headers botocore keeps in a response's ``ResponseMetadata``."""
    return as_dict(as_dict(result.get("ResponseMetadata")).get("HTTPHeaders"))


def invoke_outcome(result: Mapping[str, Any], body: Optional[Mapping[str, Any]]) -> Outcome:
    write_1h = anthropic_1h(as_dict(body.get("usage"))) if body else 0
    usage = header_usage(response_headers(result), write_1h)
    model: Optional[str] = None
    attrs: Dict[str, Any] = {}
    if body is not None:
        if usage is None:
            usage = body_usage(body)
        model, attrs = body_attributes(body)
    tier = service_tier(result.get("serviceTier"))
    return Outcome(usage=usage, response_model=model, service_tier=tier, attributes=attrs)


