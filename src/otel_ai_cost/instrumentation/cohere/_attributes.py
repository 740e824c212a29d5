"""Cohere v2 request attributes, usage (the billed units, see the package doc) and outcomes."""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ... import _semconv as sc
from ...cost import Usage
from .. import _core as c
from .._core import Outcome, as_int, as_num, as_str, get

PROVIDER = "cohere"
_DEFAULT_SERVER = "https://api.cohere.com"
# Cohere names top_p ``p`` and top_k ``k``.
_SAMPLING_NUMBERS = (("temperature", sc.GEN_AI_REQUEST_TEMPERATURE), ("p", sc.GEN_AI_REQUEST_TOP_P),
                     ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY),
                     ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY))
_CHAT_COUNTS = (("max_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS), ("k", sc.GEN_AI_REQUEST_TOP_K),
                ("seed", sc.GEN_AI_REQUEST_SEED))
_EMBEDDINGS_COUNTS = (("output_dimension", sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT),)


def plain(value: Any) -> Any:
    """An SDK model (pydantic v1 or v2) as a plain dict without None fields; anything else as it is."""
    dump = getattr(value, "model_dump", None) or getattr(value, "dict", None)
    if callable(dump) and not isinstance(value, Mapping):
        try:
            return dump(exclude_none=True)
        except Exception:  # noqa: BLE001
            return value
    return value


def _server(instance: Any) -> Tuple[Optional[str], Optional[int]]:
    wrapper = get(instance, "_client_wrapper") or get(get(instance, "_raw_client"), "_client_wrapper")
    url = None
    get_base_url = getattr(wrapper, "get_base_url", None)
    if callable(get_base_url):
        try:
            url = get_base_url()
        except Exception:  # noqa: BLE001
            url = None
    return c.url_host_port(url if isinstance(url, str) and url else _DEFAULT_SERVER)


def request_attributes(operation: str, instance: Any, kwargs: Mapping[str, Any], stream: bool) -> Dict[str, Any]:
    attrs = c.base_attributes(operation, PROVIDER, kwargs.get("model"), _server(instance))
    if operation == "embeddings":
        formats = c.string_list(kwargs.get("embedding_types"))
        if formats is not None:
            attrs[sc.GEN_AI_REQUEST_ENCODING_FORMATS] = formats
        c.number_attributes(attrs, kwargs.get, _EMBEDDINGS_COUNTS, as_int)
        return attrs
    c.number_attributes(attrs, kwargs.get, _CHAT_COUNTS, as_int)
    c.number_attributes(attrs, kwargs.get, _SAMPLING_NUMBERS)
    stop = c.string_list(kwargs.get("stop_sequences"))
    if stop is not None:
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
    fmt = plain(kwargs.get("response_format"))
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


def _counts_usage(counts: Any) -> Optional[Usage]:
    """The input and output tokens of a ``billed_units`` or ``tokens`` object (None: neither)."""
    inp = _units(get(counts, "input_tokens"))
    out = _units(get(counts, "output_tokens"))
    if inp is None and out is None:
        return None
    return Usage(input_tokens=inp or 0, output_tokens=out or 0)


def cohere_usage(usage: Any) -> Optional[Usage]:
    """The billed units of a Cohere ``usage`` (or ``meta``) object; ``tokens`` only as the fallback."""
    return _counts_usage(get(usage, "billed_units")) or _counts_usage(get(usage, "tokens"))


# v2 finish reasons that say the generation failed (ChatFinishReason: ERROR, TIMEOUT).
V2_ERROR_REASONS = frozenset({"ERROR", "TIMEOUT"})


def v2_outcome(response_id: Optional[str], reason: Any, usage: Any) -> Outcome:
    """A v2 chat outcome, of a response or a stream (its ``message-end``): usage from ``usage``
    (billed units; ``tokens`` only without them), and an ``error.type`` when the finish reason says
    the generation failed (then billed units only), as ``v1_outcome``."""
    attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: response_id}
    failed = None
    if reason is not None:
        reason = str(reason)
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
        if reason in V2_ERROR_REASONS:
            failed = reason
    return Outcome(usage=billed_usage(usage) if failed else cohere_usage(usage), attributes=attrs,
                   error_type=failed)


def chat_outcome(response: Any) -> Outcome:
    return v2_outcome(as_str(get(response, "id")), get(response, "finish_reason"), get(response, "usage"))


def embeddings_outcome(response: Any) -> Outcome:
    usage = cohere_usage(get(response, "meta"))
    if usage is not None:
        usage = Usage(input_tokens=usage.input_tokens, output_tokens=0)
    return Outcome(usage=usage, attributes={sc.GEN_AI_RESPONSE_ID: as_str(get(response, "id"))})


OUTCOMES: Dict[str, Callable[[Any], Outcome]] = {"chat": chat_outcome, "embeddings": embeddings_outcome}


# ---------------------------------------------------------------------------------------------
# API v1 (``Client.chat`` / ``generate``): the same request names, ``meta`` instead of ``usage``

# v1 finish reasons that say the generation failed (FinishReason: ERROR, ERROR_TOXIC, ERROR_LIMIT).
V1_ERROR_REASONS = frozenset({"ERROR", "ERROR_TOXIC", "ERROR_LIMIT"})


def billed_usage(meta: Any) -> Optional[Usage]:
    """The billed units of a v2 ``usage`` or v1 ``meta`` only (no ``tokens`` fallback): what a failed
    call may charge."""
    return _counts_usage(get(meta, "billed_units"))


def v1_response_id(response: Any) -> Optional[str]:
    """A v1 chat response's id: ``response_id`` (``generation_id`` when there is none)."""
    return as_str(get(response, "response_id")) or as_str(get(response, "generation_id"))


def v1_outcome(response_id: Optional[str], reasons: Any, meta: Any) -> Outcome:
    """A v1 outcome: usage from ``meta`` (billed units; ``tokens`` only without them), and an
    ``error.type`` when a finish reason says the generation failed (then billed units only)."""
    attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: response_id}
    finish = [str(r) for r in reasons if r is not None]
    if finish:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = finish
    failed = next((r for r in finish if r in V1_ERROR_REASONS), None)
    usage = billed_usage(meta) if failed else cohere_usage(meta)
    return Outcome(usage=usage, attributes=attrs, error_type=failed)


def v1_chat_outcome(response: Any) -> Outcome:
    return v1_outcome(v1_response_id(response), [get(response, "finish_reason")], get(response, "meta"))


def generate_outcome(response: Any) -> Outcome:
    generations = get(response, "generations")
    reasons = [get(g, "finish_reason") for g in generations] if isinstance(generations, (list, tuple)) else []
    return v1_outcome(as_str(get(response, "id")), reasons, get(response, "meta"))


OUTCOMES.update({"v1_chat": v1_chat_outcome, "generate": generate_outcome})
