"""google-genai request attributes, response readers, usage and outcomes (see the package doc for
the traps of ``usageMetadata``)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ... import _semconv as sc
from ...cost import Usage
from .. import _core as c
from .._core import Operation, Outcome, as_num

GEMINI = "gcp.gemini"
VERTEX_AI = "gcp.vertex_ai"
GENERATE_CONTENT = "generate_content"
EMBEDDINGS = "embeddings"

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

# (config field, attribute) of the counts of a request
_GENERATE_COUNTS = (("max_output_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS), ("seed", sc.GEN_AI_REQUEST_SEED))
_EMBEDDINGS_COUNTS = (("output_dimensionality", sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT),)


# ---------------------------------------------------------------------------------------------
# SDK readers. ``field`` and ``integral`` are not the core's ``get`` / ``as_int``: the SDK accepts
# camelCase dict keys, and its JSON numbers may be integral floats. They stay single functions (not
# wrappers of the core's) because the stream state reads several fields per chunk.


def field(obj: Any, name: str) -> Any:
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


def integral(value: Any) -> Optional[int]:
    """An int (not a bool), or an integral float, as an int; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def enum_name(value: Any) -> Optional[str]:
    """The name of an SDK enum member, or the string itself (the SDK keeps unknown values as str)."""
    if value is None:
        return None
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(value, str):
        return value
    return None


def enum_value(value: Any) -> Optional[str]:
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
    return field(instance, "_api_client")


def provider_of(instance: Any) -> str:
    return VERTEX_AI if field(_api_client(instance), "vertexai") else GEMINI


def _host_port(instance: Any, config: Any) -> Tuple[Optional[str], Optional[int]]:
    base_url = field(field(config, "http_options"), "base_url")
    if not isinstance(base_url, str) or not base_url:
        base_url = field(field(_api_client(instance), "_http_options"), "base_url")
    return c.url_host_port(base_url)


# ---------------------------------------------------------------------------------------------
# Request attributes


def request_attributes(operation: str, instance: Any, model: Optional[str], config: Any,
                       stream: bool = False) -> Dict[str, Any]:
    attrs = c.base_attributes(operation, provider_of(instance), model, _host_port(instance, config))

    def read(key: str) -> Any:
        return field(config, key)

    if operation == EMBEDDINGS:
        c.number_attributes(attrs, read, _EMBEDDINGS_COUNTS, integral)
        return attrs
    c.number_attributes(attrs, read, _GENERATE_COUNTS, integral)
    c.number_attributes(attrs, read)
    top_k = as_num(read("top_k"))
    if top_k is not None:
        attrs[sc.GEN_AI_REQUEST_TOP_K] = int(top_k) if top_k.is_integer() else top_k
    stop = c.string_list(read("stop_sequences"))
    if stop is not None:
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
    n = integral(read("candidate_count"))
    if n is not None and n != 1:
        attrs[sc.GEN_AI_REQUEST_CHOICE_COUNT] = n
    mime = read("response_mime_type")
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
        name = enum_name(field(item, "modality"))
        if name is not None and name.upper() == modality:
            total += integral(field(item, "token_count")) or 0
    return total


def usage_from_metadata(meta: Any) -> Optional[Usage]:
    """``Usage`` from a ``usageMetadata`` (GenerateContentResponseUsageMetadata), see the package doc."""
    if meta is None:
        return None
    prompt = integral(field(meta, "prompt_token_count"))
    candidates = integral(field(meta, "candidates_token_count"))
    if candidates is None:
        candidates = integral(field(meta, "response_token_count"))  # UsageMetadata (embeddings, live)
    thoughts = integral(field(meta, "thoughts_token_count")) or 0
    tool_prompt = integral(field(meta, "tool_use_prompt_token_count")) or 0
    if prompt is None and candidates is None and not thoughts and not tool_prompt:
        return None
    cached = integral(field(meta, "cached_content_token_count")) or 0
    prompt_details = field(meta, "prompt_tokens_details")
    cache_details = field(meta, "cache_tokens_details")
    output_details = field(meta, "candidates_tokens_details") or field(meta, "response_tokens_details")
    # Audio: all of it, and its cached part (priced at the cached-audio price); images and video: the
    # uncached part (cached ones are cache reads), priced apart where the catalog has their price;
    # text: the rest of the input.
    audio_in = _modality_count(prompt_details, "AUDIO")
    cached_audio = min(_modality_count(cache_details, "AUDIO"), audio_in)
    image_in = max(_modality_count(prompt_details, "IMAGE") - _modality_count(cache_details, "IMAGE"), 0)
    video_in = max(_modality_count(prompt_details, "VIDEO") - _modality_count(cache_details, "VIDEO"), 0)
    return Usage(
        input_tokens=(prompt or 0) + tool_prompt,
        output_tokens=(candidates or 0) + thoughts,
        cache_read_input_tokens=cached,
        reasoning_output_tokens=thoughts,
        audio_input_tokens=audio_in,
        cache_read_audio_input_tokens=cached_audio,
        image_input_tokens=image_in,
        video_input_tokens=video_in,
        audio_output_tokens=_modality_count(output_details, "AUDIO"),
        image_output_tokens=_modality_count(output_details, "IMAGE"),
    )


def finish_reason(value: Any) -> Optional[str]:
    """A candidate's ``finishReason`` as the semconv value (None when unspecified)."""
    name = enum_name(value)
    if not name or name == "FINISH_REASON_UNSPECIFIED":
        return None
    return _FINISH_REASONS.get(name.upper(), name.lower())


def service_tier(meta: Any) -> Optional[str]:
    """The service tier a ``usageMetadata`` reports, lower-cased (None when it reports none)."""
    tier = enum_value(field(meta, "service_tier"))
    if tier is None and meta is not None:
        extra = getattr(meta, "model_extra", None) or {}
        tier = extra.get("service_tier") or extra.get("serviceTier")
    return tier.lower() if isinstance(tier, str) else None


def with_requested_tier(op: Operation, outcome: Outcome) -> Outcome:
    """The SDK drops the ``serviceTier`` the API reports: price at the requested tier then."""
    if outcome.service_tier is None and op.request.service_tier:
        outcome.service_tier = op.request.service_tier
    return outcome


def generate_outcome(response: Any) -> Outcome:
    meta = field(response, "usage_metadata")
    attrs: Dict[str, Any] = {}
    response_id = field(response, "response_id")
    if isinstance(response_id, str):
        attrs[sc.GEN_AI_RESPONSE_ID] = response_id
    reasons = [r for r in (finish_reason(field(cand, "finish_reason")) for cand in field(response, "candidates") or ())
               if r]
    if reasons:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    model = field(response, "model_version")
    return Outcome(
        usage=usage_from_metadata(meta),
        response_model=model if isinstance(model, str) else None,
        service_tier=service_tier(meta),
        attributes=attrs,
    )


def embed_outcome(response: Any) -> Outcome:
    usage = None
    meta = field(response, "usage_metadata")
    prompt = integral(field(meta, "prompt_token_count"))
    if prompt is not None:
        usage = usage_from_metadata(meta)  # multimodal embeddings: audio, image and video have their prices
    else:
        counts = [as_num(field(field(e, "statistics"), "token_count")) for e in field(response, "embeddings") or ()]
        numbers = [n for n in counts if n is not None]
        if numbers:
            usage = Usage(input_tokens=int(sum(numbers)))
    return Outcome(usage=usage, service_tier=service_tier(meta))
