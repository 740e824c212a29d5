"""Request attributes, response readers, usage and outcomes of the Anthropic Messages API.

Anthropic's ``input_tokens`` EXCLUDES the cache reads and writes: ``usage_from_fields`` adds them
back (see the package docstring).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from ... import _semconv as sc
from ...cost import Usage
from .._core import Outcome, as_int, as_num, as_str, get, given, host_port

PROVIDER = "anthropic"
PROVIDER_BEDROCK = "aws.bedrock"
PROVIDER_VERTEX = "gcp.vertex_ai"


# ---------------------------------------------------------------------------------------------
# Small pure helpers


def provider_from_client(client: Any, server: Optional[Tuple[Optional[str], Optional[int]]] = None) -> str:
    """``gen_ai.provider.name`` for an Anthropic SDK client: its class first, then its host
    (``server``: the client's ``host_port`` when the caller already read it)."""
    try:
        names = {cls.__name__ for cls in type(client).__mro__}
    except Exception:
        names = set()
    if names & {"AnthropicBedrock", "AsyncAnthropicBedrock", "BaseBedrockClient"}:
        return PROVIDER_BEDROCK
    if names & {"AnthropicVertex", "AsyncAnthropicVertex", "BaseVertexClient"}:
        return PROVIDER_VERTEX
    host = ((server if server is not None else host_port(client))[0] or "").lower()
    if host.startswith("bedrock-runtime.") and host.endswith(".amazonaws.com"):
        return PROVIDER_BEDROCK
    if host.endswith("aiplatform.googleapis.com"):
        return PROVIDER_VERTEX
    return PROVIDER


def request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any], operation: str = "chat",
                       server: Optional[Tuple[Optional[str], Optional[int]]] = None) -> Dict[str, Any]:
    """The request attributes (``server``: the client's ``host_port`` when the caller already read it:
    the SDK's ``base_url`` property costs an import at each read)."""
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
    host, port = server if server is not None else host_port(client)
    if host:
        attrs[sc.SERVER_ADDRESS] = host
        attrs[sc.SERVER_PORT] = port
    return attrs


# ---------------------------------------------------------------------------------------------
# Usage


def usage_from_fields(fields: Mapping[str, Any]) -> Optional[Usage]:
    """``Usage`` from Anthropic's usage fields (a plain mapping, see ``usage_fields``).

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


def usage_fields(usage: Any, into: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
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
    return usage_from_fields(usage_fields(usage))


def message_outcome(message: Any) -> Outcome:
    attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: as_str(get(message, "id"))}
    reason = as_str(get(message, "stop_reason"))
    if reason:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
    fields = usage_fields(get(message, "usage"))
    return Outcome(
        usage=usage_from_fields(fields),
        response_model=as_str(get(message, "model")),
        service_tier=fields.get("service_tier"),
        attributes=attrs,
    )

