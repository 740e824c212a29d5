"""The record the detector is fed: one finished GenAI call, built from its span's attributes."""
from __future__ import annotations

import hashlib
import json
import time as _time
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from .. import _semconv as sc

TENANT = "tenant.id"
USER = "enduser.id"
SERVICE = "service.name"
PROMPT = sc.GEN_AI_PROMPT_NAME
MODEL = sc.GEN_AI_REQUEST_MODEL
TRACE = "trace"
# The attribution dimensions baselines are kept for. The order is the root-cause tie-break: of two
# dimensions whose shares of an excess are within 0.1, the first is named (a few calls after the
# onset, a tenant-wide change and one user of that tenant look alike; a prompt change and a tenant
# change are the commoner causes).
DEFAULT_DIMENSIONS: Tuple[str, ...] = (PROMPT, TENANT, USER, SERVICE)


@dataclass(slots=True)
class CallRecord:
    """One finished GenAI call. ``dims`` maps attribution dimensions (``tenant.id``, ...) to values.
    The detector does not change a record it is fed (a plain, not a frozen, dataclass: five times
    faster to build, and one is built per call)."""

    time: float
    model: str
    dims: Mapping[str, str] = field(default_factory=dict)
    trace_id: Optional[str] = None
    provider: Optional[str] = None
    cost: Optional[float] = None
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    error: bool = False
    fingerprint: Optional[int] = None  # request_fingerprint(...) of the request, for repeated identical requests
    estimated_input_tokens: Optional[int] = None  # ai_cost.estimate.input_tokens, when usage is missing

    @classmethod
    def from_attributes(
        cls,
        attributes: Mapping[str, Any],
        resource: Optional[Mapping[str, Any]] = None,
        *,
        trace_id: Optional[str] = None,
        time: Optional[float] = None,
        fingerprint: Optional[int] = None,
        dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    ) -> Optional["CallRecord"]:
        """The record of a finished GenAI span's attributes (resource attributes win for
        ``service.name``), or None when the span names no model."""
        resource = resource or {}
        model = attributes.get(MODEL) or attributes.get(sc.GEN_AI_RESPONSE_MODEL)
        if not isinstance(model, str) or not model:
            return None
        dims: Dict[str, str] = {}
        for dim in dimensions:
            value = resource.get(dim) if dim in resource else attributes.get(dim)
            if value is not None and value != "":
                dims[dim] = str(value)
        cost = attributes.get(sc.GEN_AI_USAGE_COST_AMOUNT)
        return cls(
            time=_time.time() if time is None else time,
            model=model,
            dims=dims,
            trace_id=trace_id,
            provider=attributes.get(sc.GEN_AI_PROVIDER_NAME),
            cost=float(cost) if isinstance(cost, (int, float)) else None,
            input_tokens=_int(attributes.get(sc.GEN_AI_USAGE_INPUT_TOKENS)),
            output_tokens=_int(attributes.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)),
            error=sc.ERROR_TYPE in attributes,
            fingerprint=fingerprint,
            estimated_input_tokens=_int(attributes.get(sc.AI_COST_ESTIMATE_INPUT_TOKENS)),
        )


def _int(value: Any) -> Optional[int]:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def request_fingerprint(*parts: Any) -> int:
    """A 64-bit hash of a request (model, messages, parameters): equal requests, equal fingerprints.

    Only the hash is kept, never the content. Time is linear in the request's size, so compute it
    where the request is at hand (the instrumentor), not in the detector.
    """
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
