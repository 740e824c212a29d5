"""Request attributes (the server from the SDK configuration), usage and outcomes of the
``mistralai`` SDK's calls."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from ... import _semconv as sc
from ...cost import Usage
from .. import _chat
from .._chat import chat_usage, penalty_attributes, plain, stop_seed_choices_attributes
from .._core import Outcome, as_int, as_str, get

PROVIDER = "mistral_ai"

_DEFAULT_SERVER = "https://api.mistral.ai"


def _server(instance: Any, kwargs: Mapping[str, Any]) -> Tuple[Optional[str], Optional[int]]:
    url = kwargs.get("server_url")
    if not isinstance(url, str) or not url:
        url = None
        config = get(instance, "sdk_configuration")
        details = getattr(config, "get_server_details", None)
        if callable(details):
            try:
                url = details()[0]
            except Exception:  # noqa: BLE001
                url = None
    from urllib.parse import urlsplit

    parts = urlsplit(url if isinstance(url, str) and url else _DEFAULT_SERVER)
    if not parts.hostname:
        return None, None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def request_attributes(operation: str, instance: Any, kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    attrs: Dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_PROVIDER_NAME: PROVIDER}
    model = kwargs.get("model")
    if isinstance(model, str):
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    host, port = _server(instance, kwargs)
    if host:
        attrs[sc.SERVER_ADDRESS], attrs[sc.SERVER_PORT] = host, port
    if operation == "embeddings":
        dims = as_int(kwargs.get("output_dimension"))
        if dims is not None:
            attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
        return attrs
    max_tokens = as_int(kwargs.get("max_tokens"))
    if max_tokens is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    penalty_attributes(kwargs, attrs)
    stop_seed_choices_attributes(kwargs, attrs, "random_seed")
    fmt = plain(kwargs.get("response_format"))
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
        attrs[sc.GEN_AI_OUTPUT_TYPE] = "json"
    if operation == "chat" and (kwargs.get("stream") is True or kwargs.get("_otel_stream") is True):
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


def mistral_usage(usage: Any) -> Optional[Usage]:
    """The chat format's usage (either spelling of the details), without audio tokens."""
    return chat_usage(usage, audio=False)


def chat_outcome(response: Any) -> Outcome:
    outcome = _chat.chat_outcome(response, mistral_usage)
    outcome.service_tier = as_str(get(get(response, "usage"), "service_tier"))
    return outcome


def embeddings_outcome(response: Any) -> Outcome:
    outcome = _chat.embeddings_outcome(response)
    outcome.attributes = {sc.GEN_AI_RESPONSE_ID: as_str(get(response, "id"))}
    return outcome


OUTCOMES = {"chat": chat_outcome, "embeddings": embeddings_outcome}
