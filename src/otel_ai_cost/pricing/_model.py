"""The in-memory shape of the pricing catalog: what one model costs.

All token prices are USD per 1,000,000 tokens, held as Decimal so that cost is exact.
A field left as None means "not priced separately": the cost engine falls back as documented
in ``otel_ai_cost.cost``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping, Optional, Tuple

# Field names of a PriceSet, in the order they appear in the catalog file.
PRICE_FIELDS = (
    "input",            # uncached input tokens
    "output",           # output tokens (text)
    "cache_read",       # input tokens read from the prompt cache
    "cache_read_audio", # audio input tokens read from the prompt cache, when priced apart from cache_read
    "cache_write",      # input tokens written to the cache (Anthropic: 5-minute TTL)
    "cache_write_1h",   # input tokens written to the cache with a 1-hour TTL
    "cache_write_12h",  # input tokens written to the cache with a 12-hour TTL (OpenAI's extended retention)
    "reasoning",        # reasoning/thinking output tokens, when priced apart from output
    "audio_input",      # audio input tokens
    "audio_output",     # audio output tokens
    "image_input",      # image input tokens, when priced apart from text input
    "image_output",     # image output tokens (image generation models priced per token)
    "video_input",      # video input tokens, when priced apart from text input
    "per_image",        # USD per generated image (not per million)
    "per_request",      # USD per request (not per million)
    "web_search",       # USD per server-side web search the provider ran (not per million)
)


@dataclass(frozen=True, slots=True)
class PriceSet:
    input: Optional[Decimal] = None
    output: Optional[Decimal] = None
    cache_read: Optional[Decimal] = None
    cache_read_audio: Optional[Decimal] = None
    cache_write: Optional[Decimal] = None
    cache_write_1h: Optional[Decimal] = None
    cache_write_12h: Optional[Decimal] = None
    reasoning: Optional[Decimal] = None
    audio_input: Optional[Decimal] = None
    audio_output: Optional[Decimal] = None
    image_input: Optional[Decimal] = None
    image_output: Optional[Decimal] = None
    video_input: Optional[Decimal] = None
    per_image: Optional[Decimal] = None
    per_request: Optional[Decimal] = None
    web_search: Optional[Decimal] = None


@dataclass(frozen=True, slots=True)
class ContextTier:
    """Prices that apply to the whole request once its input exceeds a threshold."""

    above_input_tokens: int
    prices: PriceSet
    service_tiers: Mapping[str, PriceSet] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    id: str                      # canonical model id, e.g. "gpt-4o"
    provider: str                # gen_ai.provider.name value, e.g. "openai", "aws.bedrock"
    # chat | embedding | completion | image_generation | audio_transcription | audio_speech | rerank |
    # moderation | responses
    mode: str
    prices: PriceSet
    service_tiers: Mapping[str, PriceSet] = field(default_factory=dict)   # "batch", "flex", "priority"
    context_tiers: Tuple[ContextTier, ...] = ()                            # ascending by threshold
    aliases: Tuple[str, ...] = ()
    max_input_tokens: Optional[int] = None
    max_output_tokens: Optional[int] = None
    source: str = ""
    effective_date: str = ""
