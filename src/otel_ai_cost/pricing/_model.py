"""The in-memory shape of the pricing catalog: what one model costs.

All token prices are USD per 1,000,000 tokens, held as Decimal so that cost is exact.
A field left as None means "not priced separately": the cost engine falls back as documented
in ``otel_ai_cost.cost``.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping, Optional, Tuple, Union

# When a call was made: epoch nanoseconds (an OpenTelemetry span's start_time), a datetime (naive
# means UTC), a date, or None for now.
When = Union[None, int, _dt.datetime, _dt.date]
_MAX_NS = 253_402_300_800 * 1_000_000_000  # 10000-01-01T00:00:00Z in epoch nanoseconds

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
    # Dated prices. ``effective_from`` (YYYY-MM-DD, UTC) is the day the prices above took effect;
    # ``price_history`` holds the earlier price periods, oldest first, each a ModelPrice of the same model
    # with its own prices, tiers, source and effective_from. ``at`` picks the period in force.
    effective_from: str = ""
    price_history: Tuple["ModelPrice", ...] = ()

    def at(self, when: When = None) -> "ModelPrice":
        """The price period in force on the UTC day of ``when`` (None: today).

        A call before the first known period is priced at the first period.
        """
        if not self.price_history:
            return self
        day = call_day(when)
        if day >= self.effective_from:
            return self
        for period in reversed(self.price_history):
            if day >= period.effective_from:
                return period
        return self.price_history[0]


def call_day(when: When) -> str:
    """The UTC day (YYYY-MM-DD) of a call time, as the catalog's effective_from dates are written.

    Epoch nanoseconds of 0 or less (a span without a start time) or past year 9999 mean now, as in the
    collector processor.
    """
    if isinstance(when, bool):
        raise TypeError("a call time must be epoch nanoseconds, a datetime or a date, not a bool")
    if isinstance(when, int) and 0 < when < _MAX_NS:
        return _dt.datetime.fromtimestamp(when // 1_000_000_000, _dt.timezone.utc).date().isoformat()
    if when is None or isinstance(when, int):
        return _dt.datetime.now(_dt.timezone.utc).date().isoformat()
    if isinstance(when, _dt.datetime):
        if when.tzinfo is not None:
            when = when.astimezone(_dt.timezone.utc)
        return when.date().isoformat()
    return when.isoformat()
