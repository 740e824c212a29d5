"""The hand-off between an instrumentor and AICostSpanProcessor.

An instrumentor describes the call it is about to make as an ``LLMRequest`` and starts the span
inside ``pending_request(req)``; the processor's ``on_start`` reads it with ``current_request()``.
Token counting is lazy: ``estimate_input`` is only called when something needs the estimate.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    method: str          # "tiktoken" | "heuristic" | "provider"


@dataclass
class LLMRequest:
    provider: str                                   # gen_ai.provider.name
    operation: str                                  # gen_ai.operation.name
    model: Optional[str]                            # gen_ai.request.model
    max_output_tokens: Optional[int] = None         # max_tokens / max_completion_tokens / max_output_tokens
    service_tier: Optional[str] = None              # requested service tier, if any
    estimate_input: Optional[Callable[[], TokenCount]] = None   # lazy input-token count
    attributes: Optional[Mapping[str, Any]] = None  # the span's start attributes (a plain dict)
    # Filled in by the processor at span start:
    estimate: Any = None                            # otel_ai_cost.processor.Estimate
    decision: Any = None                            # budget decision (otel_ai_cost.budgets.Decision)
    hold: Any = None                                # budget hold to settle at the end (budgets.Hold)
    extra: dict = field(default_factory=dict)


_current: ContextVar[Optional[LLMRequest]] = ContextVar("otel_ai_cost_request", default=None)


def current_request() -> Optional[LLMRequest]:
    return _current.get()


@contextlib.contextmanager
def pending_request(req: LLMRequest) -> Iterator[LLMRequest]:
    token = _current.set(req)
    try:
        yield req
    finally:
        _current.reset(token)
