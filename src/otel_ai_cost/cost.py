"""Cost engine: normalised usage x catalog price -> exact cost breakdown.

(Contract stub: implemented in full by the cost-engine work.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Dict, Optional

from .pricing._model import ModelPrice


@dataclass(frozen=True)
class Usage:
    """Token usage normalised to the GenAI semconv rules.

    input_tokens INCLUDES cache reads and cache writes; output_tokens INCLUDES reasoning tokens.
    The detail fields are subsets of those totals.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0        # all cache writes (5-minute + 1-hour)
    cache_write_1h_input_tokens: int = 0     # the 1-hour part of cache_write_input_tokens
    reasoning_output_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    image_input_tokens: int = 0
    image_output_tokens: int = 0
    images: int = 0                          # generated images (priced per image)
    requests: int = 1


@dataclass(frozen=True)
class Cost:
    total: Decimal                           # USD, exact
    breakdown: Dict[str, Decimal]            # component -> USD; components sum to total
    currency: str = "USD"
    model_id: str = ""                       # catalog entry used
    service_tier: Optional[str] = None       # service tier whose prices were used
    context_tier: Optional[int] = None       # threshold of the context tier used, if any

    @property
    def amount(self) -> float:
        return float(self.total)


def compute_cost(usage: Usage, price: ModelPrice, service_tier: Optional[str] = None) -> Cost:
    raise NotImplementedError
