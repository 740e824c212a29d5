"""The hand-off between an instrumentor and AICostSpanProcessor.

An instrumentor describes the call it is about to make as an ``LLMRequest`` and starts the span
inside ``pending_request(req)``; the processor's ``on_start`` reads it with ``current_request()``.
Token counting is lazy: ``estimate_input`` is only called when something needs the estimate.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Mapping, Optional, Protocol

if TYPE_CHECKING:
    from ._estimate import Estimate
    from .budgets import Hold
    from .errors import BudgetExceededError


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    method: str          # "tiktoken" | "heuristic" | "provider"


class BudgetDecision(Protocol):
    """What an instrumentor reads of the budget decision made at span start (a ``budgets.Decision``,
    or what the ``before_request`` hook decided): the action, the model of a downgrade, the delay of
    a throttle, and the error to raise for a block."""

    @property
    def action(self) -> str: ...

    @property
    def model(self) -> Optional[str]: ...

    @property
    def delay(self) -> Optional[float]: ...

    def error(self) -> "BudgetExceededError": ...


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
    estimate: Optional["Estimate"] = None           # what the call is expected to cost
    decision: Optional[BudgetDecision] = None       # the budgets' (or the before_request hook's) decision
    hold: Optional["Hold"] = None                   # the budget hold to settle (or release) when the call ends
    extra: Dict[str, Any] = field(default_factory=dict)  # processor bookkeeping, e.g. that a span took the request


_current: ContextVar[Optional[LLMRequest]] = ContextVar("otel_ai_cost_request", default=None)


def current_request() -> Optional[LLMRequest]:
    """The request whose span is starting in this context (set by ``pending_request``), or None."""
    return _current.get()


def set_pending(req: Optional[LLMRequest]) -> Token[Optional[LLMRequest]]:
    """``pending_request`` without the context manager: the token for ``reset_pending``."""
    return _current.set(req)


def reset_pending(token: Token[Optional[LLMRequest]]) -> None:
    _current.reset(token)


@contextlib.contextmanager
def pending_request(req: LLMRequest) -> Iterator[LLMRequest]:
    """Make ``req`` the current request while the instrumentor starts its span."""
    token = _current.set(req)
    try:
        yield req
    finally:
        _current.reset(token)


# The span ID (16 hex digits) of the otel-ai-cost span whose SDK call is running in this context:
# set by the call wrappers (``instrumentation._core``) around the SDK method, read by the processor
# at the start of any other span (the SDK's own, an HTTP client's, another GenAI instrumentation's),
# which is then part of that call and marked ``ai_cost.pricing.priced_on`` (never priced twice).
_calling: ContextVar[Optional[str]] = ContextVar("otel_ai_cost_calling", default=None)


def calling_span_id() -> Optional[str]:
    """The span ID of the otel-ai-cost span whose SDK call runs in this context, or None."""
    return _calling.get()


def set_calling(span_id: Optional[str]) -> Token[Optional[str]]:
    """Mark the SDK call of the otel-ai-cost span ``span_id`` as running in this context (None: no
    call): the token for ``reset_calling``."""
    return _calling.set(span_id)


def reset_calling(token: Token[Optional[str]]) -> None:
    _calling.reset(token)
