"""The estimate made when a GenAI call's span starts: its input tokens counted, its output tokens
assumed (``OutputEstimate.tokens``), both priced from the catalog before the request is sent."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Dict, Optional

from . import _semconv as sc
from . import _tiktoken_offline
from ._request import LLMRequest
from ._usage import check_written_init
from .config import OutputEstimate
from .cost import estimate_cost

if TYPE_CHECKING:
    from .pricing import Catalog


@dataclass(frozen=True)
class Estimate:
    """What a call is expected to cost, computed before it is sent."""

    input_tokens: int
    output_tokens: int
    method: str  # how input_tokens was counted: "tiktoken" | "heuristic" | "upper_bound" | "provider"
    output_basis: str  # "max_tokens" | "model_limit" | "default"
    amount: Optional[Decimal] = None  # USD; None when the model is not in the catalog
    model_id: Optional[str] = None  # catalog entry used for the amount

    # Written out (kept by the dataclass, checked below): one dict update per estimate instead of the
    # frozen __init__'s object.__setattr__ per field.
    def __init__(self, input_tokens: int, output_tokens: int, method: str, output_basis: str,
                 amount: Optional[Decimal] = None, model_id: Optional[str] = None) -> None:
        self.__dict__.update(input_tokens=input_tokens, output_tokens=output_tokens, method=method,
                             output_basis=output_basis, amount=amount, model_id=model_id)

    def attributes(self) -> Dict[str, Any]:
        attributes: Dict[str, Any] = {
            sc.AI_COST_ESTIMATE_INPUT_TOKENS: self.input_tokens,
            sc.AI_COST_ESTIMATE_OUTPUT_TOKENS: self.output_tokens,
            sc.AI_COST_ESTIMATE_METHOD: self.method,
            sc.AI_COST_ESTIMATE_OUTPUT_BASIS: self.output_basis,
        }
        if self.amount is not None:
            attributes[sc.AI_COST_ESTIMATE_AMOUNT] = float(self.amount)
        return attributes


check_written_init(Estimate)


def estimate_request(
    request: LLMRequest, catalog: "Catalog", output: OutputEstimate, when_loading: str = _tiktoken_offline.WAIT
) -> Optional[Estimate]:
    """The estimate for a request, or None when its input cannot be counted (no ``estimate_input``).

    ``when_loading``: what to do when the request's tokenizer is not loaded yet. ``"wait"`` (the
    default) waits for it. ``"heuristic"`` never waits: the tokenizer loads in the background and this
    estimate counts with the heuristic; the processor passes it when no budget or hook reads the
    estimate, so that the call is never held up. ``"upper_bound"`` (budgets and hooks) waits for a
    load from the disk cache (a few ms) but not for a first parse of the tokenizer (~0.1-0.3 s): the
    input is then counted as its UTF-8 bytes, never less than tiktoken's count, so that the money held
    is never under-estimated (``method`` says which).

    Raises what counting or pricing raises: the processor logs it and goes on without an estimate.
    """
    if request.estimate_input is None:
        return None
    counted = _tiktoken_offline.counting(when_loading, request.estimate_input)
    price = catalog.resolve(request.model, request.provider) if request.model else None
    output_tokens, output_basis = output.tokens(request.max_output_tokens, price.max_output_tokens if price else None)
    amount: Optional[Decimal] = None
    model_id: Optional[str] = None
    if price is not None:
        amount, model_id = estimate_cost(price, request.service_tier, counted.tokens, output_tokens)
    return Estimate(
        input_tokens=counted.tokens,
        output_tokens=output_tokens,
        method=counted.method,
        output_basis=output_basis,
        amount=amount,
        model_id=model_id,
    )
