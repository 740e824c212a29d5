"""The OpenAI-compatible chat format: request attributes and usage of ``chat.completions`` and
``embeddings`` requests, as the ``openai`` SDK and the SDKs that speak the same format (``groq``,
and the finish reasons of ``mistralai``) send and receive them.

The ``openai.*`` attributes set here are those of the OpenAI API itself; a provider that is not
OpenAI drops them.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .. import _semconv as sc
from ..cost import Usage
from ._core import as_int, as_num, get, given, host_port


def output_type_from_format(fmt: Any) -> Optional[str]:
    if isinstance(fmt, type):
        return "json"  # parse(response_format=SomeModel): structured output from a pydantic class
    kind = get(fmt, "type") if fmt is not None else None
    if kind in ("json_object", "json_schema"):
        return "json"
    if kind == "text":
        return "text"
    return None


def request_attributes(operation: str, api_type: Optional[str], provider: str, model: Any,
                       client: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """The attributes every request has: operation, provider, model, server."""
    attrs: Dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: operation,
        sc.GEN_AI_PROVIDER_NAME: provider,
    }
    if api_type:
        attrs[sc.OPENAI_API_TYPE] = api_type
    if isinstance(model, str):
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    host, port = host_port(client)
    if host:
        attrs[sc.SERVER_ADDRESS] = host
        attrs[sc.SERVER_PORT] = port
    return attrs


def max_tokens(kwargs: Mapping[str, Any], *names: str) -> Optional[int]:
    """The first of the ``names`` arguments given as an int."""
    for name in names:
        value = kwargs.get(name)
        if given(value) and as_int(value) is not None:
            return value
    return None


def sampling_attributes(kwargs: Mapping[str, Any], attrs: Dict[str, Any]) -> None:
    for key, attr in (("temperature", sc.GEN_AI_REQUEST_TEMPERATURE), ("top_p", sc.GEN_AI_REQUEST_TOP_P),
                      ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY),
                      ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY)):
        value = as_num(kwargs.get(key))
        if value is not None:
            attrs[attr] = value
    tier = kwargs.get("service_tier")
    if isinstance(tier, str) and tier != "auto":
        attrs[sc.OPENAI_REQUEST_SERVICE_TIER] = tier


def chat_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    attrs = request_attributes("chat", "chat_completions", provider, kwargs.get("model"), client, kwargs)
    max_out = max_tokens(kwargs, "max_completion_tokens", "max_tokens")
    if max_out is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_out
    sampling_attributes(kwargs, attrs)
    stop = kwargs.get("stop")
    if isinstance(stop, str):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop]
    elif given(stop) and isinstance(stop, (list, tuple)):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [s for s in stop if isinstance(s, str)]
    seed = as_int(kwargs.get("seed"))
    if seed is not None:
        attrs[sc.GEN_AI_REQUEST_SEED] = seed
    n = as_int(kwargs.get("n"))
    if n is not None and n != 1:
        attrs[sc.GEN_AI_REQUEST_CHOICE_COUNT] = n
    output_type = output_type_from_format(kwargs.get("response_format")) if given(kwargs.get("response_format")) else None
    if output_type:
        attrs[sc.GEN_AI_OUTPUT_TYPE] = output_type
    if kwargs.get("stream") is True:
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


def embeddings_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    attrs = request_attributes("embeddings", None, provider, kwargs.get("model"), client, kwargs)
    fmt = kwargs.get("encoding_format")
    if isinstance(fmt, str):
        attrs[sc.GEN_AI_REQUEST_ENCODING_FORMATS] = [fmt]
    dims = as_int(kwargs.get("dimensions"))
    if dims is not None:
        attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
    return attrs


def chat_usage(usage: Any) -> Optional[Usage]:
    """Usage from a chat completion (or completions / embeddings) ``usage`` object."""
    prompt = as_int(get(usage, "prompt_tokens"))
    completion = as_int(get(usage, "completion_tokens"))
    if prompt is None and completion is None:
        return None
    prompt_details = get(usage, "prompt_tokens_details")
    completion_details = get(usage, "completion_tokens_details")
    return Usage(
        input_tokens=prompt or 0,
        output_tokens=completion or 0,
        cache_read_input_tokens=as_int(get(prompt_details, "cached_tokens")) or 0,
        reasoning_output_tokens=as_int(get(completion_details, "reasoning_tokens")) or 0,
        audio_input_tokens=as_int(get(prompt_details, "audio_tokens")) or 0,
        audio_output_tokens=as_int(get(completion_details, "audio_tokens")) or 0,
    )


def finish_reasons(choices: Any) -> Optional[list]:
    """The finish reason of every choice (``error`` where a choice has none); None for no choices."""
    if not isinstance(choices, (list, tuple)) or not choices:
        return None
    return [r if isinstance(r, str) else "error" for r in (get(ch, "finish_reason") for ch in choices)]
