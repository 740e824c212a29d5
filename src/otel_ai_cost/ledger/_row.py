"""One ledger row from one finished GenAI call span: the columns the call ledger keeps.

A span is a GenAI call when it carries ``gen_ai.operation.name`` and token usage or a cost. A span
marked ``ai_cost.pricing.priced_on`` is skipped: another span (named there) prices the same call,
and that one is the row. Every name comes from ``_semconv``.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from .. import _semconv as sc
from ..config import BAGGAGE_PREFIX, DEFAULT_BAGGAGE_KEYS

# The cost breakdown attributes (ai_cost.cost.*), kept as a JSON object {attribute: amount}.
BREAKDOWN = (
    sc.AI_COST_COST_INPUT, sc.AI_COST_COST_CACHE_READ, sc.AI_COST_COST_CACHE_READ_AUDIO, sc.AI_COST_COST_CACHE_WRITE,
    sc.AI_COST_COST_OUTPUT, sc.AI_COST_COST_REASONING, sc.AI_COST_COST_AUDIO_INPUT, sc.AI_COST_COST_AUDIO_OUTPUT,
    sc.AI_COST_COST_IMAGE, sc.AI_COST_COST_REQUEST, sc.AI_COST_COST_WEB_SEARCH,
)
USAGE = (sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_PROMPT_TOKENS,
         sc.GEN_AI_USAGE_COMPLETION_TOKENS)

# (column, SQL type) in table order. Amounts are TEXT: the attribute's decimal spelling, summed exactly.
COLUMNS: Tuple[Tuple[str, str], ...] = (
    ("trace_id", "TEXT NOT NULL"), ("span_id", "TEXT NOT NULL"),
    ("start_time", "REAL NOT NULL"), ("end_time", "REAL NOT NULL"),
    ("service", "TEXT"), ("provider", "TEXT"), ("request_model", "TEXT"), ("response_model", "TEXT"),
    ("operation", "TEXT"),
    ("input_tokens", "INTEGER"), ("output_tokens", "INTEGER"), ("cache_read_tokens", "INTEGER"),
    ("cache_write_tokens", "INTEGER"), ("reasoning_tokens", "INTEGER"),
    ("cost", "TEXT"), ("currency", "TEXT"), ("cost_source", "TEXT"), ("breakdown", "TEXT"),
    ("estimate", "TEXT"), ("estimate_input_tokens", "INTEGER"), ("estimate_output_tokens", "INTEGER"),
    ("pricing_status", "TEXT"), ("pricing_model", "TEXT"), ("service_tier", "TEXT"),
    ("budget_decision", "TEXT"), ("budget_id", "TEXT"),
    ("tenant", "TEXT"), ("user", "TEXT"), ("cost_center", "TEXT"), ("attributes", "TEXT"),
    ("anomaly_type", "TEXT"), ("ok", "INTEGER NOT NULL"), ("error_type", "TEXT"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)


# Our own attribute names: an ``ai_cost.`` attribute not among them was copied from baggage.
_OURS = frozenset(value for name, value in vars(sc).items() if name.isupper() and isinstance(value, str))


def _is_attribution(key: str, baggage_keys: Sequence[str]) -> bool:
    """A baggage entry copied onto the span, other than tenant.id and enduser.id (columns of their own)."""
    if key in ("tenant.id", "enduser.id", sc.AI_COST_COST_CENTER):
        return False
    return key in baggage_keys or (key.startswith(BAGGAGE_PREFIX) and key not in _OURS)


def is_call(attributes: Mapping[str, Any]) -> bool:
    """A GenAI call span the ledger keeps (see the module docstring)."""
    if sc.GEN_AI_OPERATION_NAME not in attributes or sc.AI_COST_PRICING_PRICED_ON in attributes:
        return False
    return (sc.GEN_AI_USAGE_COST_AMOUNT in attributes or sc.AI_COST_PRICING_STATUS in attributes
            or any(name in attributes for name in USAGE))


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _amount(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return repr(value) if isinstance(value, float) else str(value)


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def to_row(span: ReadableSpan, baggage_keys: Sequence[str] = DEFAULT_BAGGAGE_KEYS) -> Optional[Tuple[Any, ...]]:
    """The row of ``span`` (in COLUMNS order), or None when the span is not a call the ledger keeps."""
    attributes = span.attributes or {}
    if not is_call(attributes) or span.context is None:
        return None
    resource = span.resource.attributes if span.resource is not None else {}
    get = attributes.get
    breakdown = {name: amount for name in BREAKDOWN if (amount := _amount(get(name))) is not None}
    copied = {key: _text(value) for key, value in attributes.items() if _is_attribution(key, baggage_keys)}
    error_type = _text(get(sc.ERROR_TYPE))
    ok = span.status.status_code != StatusCode.ERROR and error_type is None
    input_tokens = _int(get(sc.GEN_AI_USAGE_INPUT_TOKENS))
    output_tokens = _int(get(sc.GEN_AI_USAGE_OUTPUT_TOKENS))
    values: Dict[str, Any] = {
        "trace_id": format(span.context.trace_id, "032x"), "span_id": format(span.context.span_id, "016x"),
        "start_time": (span.start_time or 0) / 1e9, "end_time": (span.end_time or span.start_time or 0) / 1e9,
        "service": _text(resource.get("service.name")),
        "provider": _text(get(sc.GEN_AI_PROVIDER_NAME) or get(sc.GEN_AI_SYSTEM)),
        "request_model": _text(get(sc.GEN_AI_REQUEST_MODEL)), "response_model": _text(get(sc.GEN_AI_RESPONSE_MODEL)),
        "operation": _text(get(sc.GEN_AI_OPERATION_NAME)),
        "input_tokens": input_tokens if input_tokens is not None else _int(get(sc.GEN_AI_USAGE_PROMPT_TOKENS)),
        "output_tokens": output_tokens if output_tokens is not None else _int(get(sc.GEN_AI_USAGE_COMPLETION_TOKENS)),
        "cache_read_tokens": _int(get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
        "cache_write_tokens": _int(get(sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS)
                                   or get(sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)),
        "reasoning_tokens": _int(get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
        "cost": _amount(get(sc.GEN_AI_USAGE_COST_AMOUNT)), "currency": _text(get(sc.GEN_AI_USAGE_COST_CURRENCY)),
        "cost_source": _text(get(sc.GEN_AI_USAGE_COST_SOURCE)),
        "breakdown": json.dumps(breakdown, sort_keys=True) if breakdown else None,
        "estimate": _amount(get(sc.AI_COST_ESTIMATE_AMOUNT)),
        "estimate_input_tokens": _int(get(sc.AI_COST_ESTIMATE_INPUT_TOKENS)),
        "estimate_output_tokens": _int(get(sc.AI_COST_ESTIMATE_OUTPUT_TOKENS)),
        "pricing_status": _text(get(sc.AI_COST_PRICING_STATUS)), "pricing_model": _text(get(sc.AI_COST_PRICING_MODEL)),
        "service_tier": _text(get(sc.AI_COST_PRICING_SERVICE_TIER)),
        "budget_decision": _text(get(sc.AI_COST_BUDGET_DECISION)), "budget_id": _text(get(sc.AI_COST_BUDGET_ID)),
        "tenant": _text(get("tenant.id")), "user": _text(get("enduser.id")),
        "cost_center": _text(get(sc.AI_COST_COST_CENTER)),
        "attributes": json.dumps(copied, sort_keys=True) if copied else None,
        "anomaly_type": _text(get(sc.AI_COST_ANOMALY_TYPE)), "ok": 1 if ok else 0, "error_type": error_type,
    }
    return tuple(values[name] for name in COLUMN_NAMES)
