"""The request attributes of OpenAI-shaped ``chat.completions`` and ``embeddings`` requests, as the
``openai`` SDK and the SDKs that speak the same format (``groq``; the sampling and stop attributes
and the content text of ``mistralai``) send them. The ``openai.*`` attributes set here are those
of the OpenAI API itself; a provider that is not OpenAI drops them.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Tuple

from ... import _semconv as sc
from .._core import as_int, as_num, get, given, host_port

Server = Tuple[Optional[str], Optional[int]]


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
                       client: Any, kwargs: Mapping[str, Any], server: Optional[Server] = None) -> Dict[str, Any]:
    """The attributes every request has: operation, provider, model, server (``server``: the client's
    ``host_port``, when the caller already read it: the SDK's ``base_url`` property costs an import)."""
    attrs: Dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: operation,
        sc.GEN_AI_PROVIDER_NAME: provider,
    }
    if api_type:
        attrs[sc.OPENAI_API_TYPE] = api_type
    if isinstance(model, str):
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    host, port = server if server is not None else host_port(client)
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


def penalty_attributes(kwargs: Mapping[str, Any], attrs: Dict[str, Any]) -> None:
    """temperature, top_p, frequency and presence penalties, where given as numbers."""
    for key, attr in (("temperature", sc.GEN_AI_REQUEST_TEMPERATURE), ("top_p", sc.GEN_AI_REQUEST_TOP_P),
                      ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY),
                      ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY)):
        value = as_num(kwargs.get(key))
        if value is not None:
            attrs[attr] = value


def stop_seed_choices_attributes(kwargs: Mapping[str, Any], attrs: Dict[str, Any], seed_key: str = "seed") -> None:
    """``stop`` (one string or a list of them), the seed (``seed_key``) and the choice count ``n``."""
    stop = kwargs.get("stop")
    if isinstance(stop, str):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, (list, tuple)):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [s for s in stop if isinstance(s, str)]
    seed = as_int(kwargs.get(seed_key))
    if seed is not None:
        attrs[sc.GEN_AI_REQUEST_SEED] = seed
    n = as_int(kwargs.get("n"))
    if n is not None and n != 1:
        attrs[sc.GEN_AI_REQUEST_CHOICE_COUNT] = n


def sampling_attributes(kwargs: Mapping[str, Any], attrs: Dict[str, Any]) -> None:
    """The penalty attributes and the OpenAI service tier asked for."""
    penalty_attributes(kwargs, attrs)
    tier = kwargs.get("service_tier")
    if isinstance(tier, str) and tier != "auto":
        attrs[sc.OPENAI_REQUEST_SERVICE_TIER] = tier


def chat_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any],
                            server: Optional[Server] = None) -> Dict[str, Any]:
    attrs = request_attributes("chat", "chat_completions", provider, kwargs.get("model"), client, kwargs, server)
    max_out = max_tokens(kwargs, "max_completion_tokens", "max_tokens")
    if max_out is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_out
    sampling_attributes(kwargs, attrs)
    stop_seed_choices_attributes(kwargs, attrs)
    fmt = kwargs.get("response_format")
    output_type = output_type_from_format(fmt) if given(fmt) else None
    if output_type:
        attrs[sc.GEN_AI_OUTPUT_TYPE] = output_type
    if kwargs.get("stream") is True:
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


def embeddings_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any],
                                  server: Optional[Server] = None) -> Dict[str, Any]:
    attrs = request_attributes("embeddings", None, provider, kwargs.get("model"), client, kwargs, server)
    fmt = kwargs.get("encoding_format")
    if isinstance(fmt, str):
        attrs[sc.GEN_AI_REQUEST_ENCODING_FORMATS] = [fmt]
    dims = as_int(kwargs.get("dimensions"))
    if dims is not None:
        attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
    return attrs


def plain(value: Any) -> Any:
    """An SDK model (pydantic) or a TypedDict message as plain data."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(exclude_none=True)
        except Exception:  # noqa: BLE001
            return value
    return value


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or a list of text (or thinking) parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            part = plain(part)
            if isinstance(part, Mapping):
                text = part.get("text") or part.get("thinking")
                if isinstance(text, list):
                    text = content_text(text)
                if isinstance(text, str):
                    parts.append(text)
                elif part.get("type") not in (None, "text"):
                    parts.append(json.dumps(part, default=str))
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return str(content)
