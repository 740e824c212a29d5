"""Who a call is spent for: ``with otel_ai_cost.attribute(tenant="acme", user="u1"): ...``.

The attribution is OpenTelemetry baggage, so it reaches every span started inside the block, in
this process and, through the W3C ``baggage`` header that the HTTP and gRPC instrumentations
propagate, in downstream services. ``AICostSpanProcessor`` copies it onto GenAI spans, and budget
selectors and ``per`` keys see it.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Mapping, Optional

from opentelemetry import baggage, context

from . import _semconv as sc
from .config import BAGGAGE_PREFIX
from .errors import ConfigError

__all__ = ["TENANT_KEY", "USER_KEY", "attribute", "attribution_entries"]

TENANT_KEY = "tenant.id"
USER_KEY = "enduser.id"


def attribution_entries(
    tenant: Optional[str] = None,
    user: Optional[str] = None,
    cost_center: Optional[str] = None,
    attributes: Optional[Mapping[str, Any]] = None,
    **extra: Any,
) -> Dict[str, str]:
    """The baggage entries for an attribution. ``extra`` names get the ``ai_cost.`` prefix."""
    entries: Dict[str, str] = {}
    for key, value in (
        (TENANT_KEY, tenant),
        (USER_KEY, user),
        (sc.AI_COST_COST_CENTER, cost_center),
        *((BAGGAGE_PREFIX + name, value) for name, value in extra.items()),
        *((attributes or {}).items()),
    ):
        if value is None:
            continue
        if not isinstance(key, str) or not key or any(c.isspace() or c in ',;="\\' for c in key):
            raise ConfigError(f"attribute(): {key!r} is not a usable baggage key (no spaces, commas or quotes)")
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(
                f"attribute(): the value of {key} must be a string or a number, not {type(value).__name__}"
            )
        entries[key] = str(value)
    return entries


@contextlib.contextmanager
def attribute(
    tenant: Optional[str] = None,
    user: Optional[str] = None,
    cost_center: Optional[str] = None,
    *,
    attributes: Optional[Mapping[str, Any]] = None,
    **extra: Any,
) -> Iterator[Dict[str, str]]:
    """Attribute the calls made inside the block.

    ``tenant`` -> ``tenant.id``, ``user`` -> ``enduser.id``, ``cost_center`` -> ``ai_cost.cost_center``,
    any other keyword ``name`` -> ``ai_cost.name``; ``attributes`` adds entries under their own keys
    (add those keys to ``OTEL_AI_COST_BAGGAGE_KEYS`` to have them copied onto spans). Blocks nest:
    an inner block adds to and overrides the outer one. Yields the entries it set.
    """
    entries = attribution_entries(tenant, user, cost_center, attributes, **extra)
    ctx = context.get_current()
    for key, value in entries.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        yield entries
    finally:
        context.detach(token)
