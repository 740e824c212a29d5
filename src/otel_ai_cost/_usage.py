"""Normalised token usage: the ``Usage`` of one call, its bounds (what a model and a request can
produce), and the usage read from another instrumentation's span attributes. Priced by ``cost``,
which re-exports these names."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional, Tuple

from . import _semconv as sc

if TYPE_CHECKING:
    from .pricing import Catalog
    from .pricing._model import ModelPrice

__all__ = [
    "MAX_COUNT", "MAX_INPUT_TOKENS", "MAX_OUTPUT_TOKENS", "Usage", "bound_usage", "check_written_init", "price_limits",
    "usage_from_attributes", "usage_limits",
]

logger = logging.getLogger("otel_ai_cost.cost")


@dataclass(frozen=True)
class Usage:
    """Token usage normalised to the GenAI semconv rules.

    input_tokens INCLUDES cache reads and cache writes; output_tokens INCLUDES reasoning tokens.
    The detail fields are subsets of those totals.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0        # all cache writes (default TTL + 1-hour + 12-hour)
    cache_write_1h_input_tokens: int = 0     # the 1-hour part of cache_write_input_tokens
    cache_write_12h_input_tokens: int = 0    # the 12-hour part of cache_write_input_tokens
    reasoning_output_tokens: int = 0
    audio_input_tokens: int = 0              # all audio input, cached or not
    cache_read_audio_input_tokens: int = 0   # the cached part of audio_input_tokens (also in cache_read)
    audio_output_tokens: int = 0
    image_input_tokens: int = 0              # uncached image input
    video_input_tokens: int = 0              # uncached video input
    image_output_tokens: int = 0
    images: int = 0                          # generated images (priced per image)
    requests: int = 1
    web_search_requests: int = 0             # web searches the provider ran server-side (priced per search)

    # Written out (the dataclass keeps it, and checks the fields below): one update of the instance
    # dict instead of the generated frozen __init__'s object.__setattr__ per field, a fifth of the cost.
    def __init__(self, input_tokens: int = 0, output_tokens: int = 0, cache_read_input_tokens: int = 0,
                 cache_write_input_tokens: int = 0, cache_write_1h_input_tokens: int = 0,
                 cache_write_12h_input_tokens: int = 0, reasoning_output_tokens: int = 0,
                 audio_input_tokens: int = 0, cache_read_audio_input_tokens: int = 0, audio_output_tokens: int = 0,
                 image_input_tokens: int = 0, video_input_tokens: int = 0, image_output_tokens: int = 0,
                 images: int = 0, requests: int = 1, web_search_requests: int = 0) -> None:
        self.__dict__.update(
            input_tokens=input_tokens, output_tokens=output_tokens, cache_read_input_tokens=cache_read_input_tokens,
            cache_write_input_tokens=cache_write_input_tokens, cache_write_1h_input_tokens=cache_write_1h_input_tokens,
            cache_write_12h_input_tokens=cache_write_12h_input_tokens, reasoning_output_tokens=reasoning_output_tokens,
            audio_input_tokens=audio_input_tokens, cache_read_audio_input_tokens=cache_read_audio_input_tokens,
            audio_output_tokens=audio_output_tokens, image_input_tokens=image_input_tokens,
            video_input_tokens=video_input_tokens, image_output_tokens=image_output_tokens, images=images,
            requests=requests, web_search_requests=web_search_requests,
        )


def check_written_init(cls: Any) -> None:
    """Check (at import) that the written-out ``__init__`` of the dataclass ``cls`` takes exactly its
    fields, with their defaults (none for a required field), in order: AssertionError otherwise."""
    import inspect

    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    expected = [(f.name, f.default) for f in dataclasses.fields(cls)]
    got = [(p.name, dataclasses.MISSING if p.default is p.empty else p.default) for p in params]
    if got != expected:
        raise AssertionError(f"{cls.__name__}.__init__ does not match the {cls.__name__} fields: {expected}")


check_written_init(Usage)


# The bounds of reported usage when neither the request nor the catalog gives one: above any context
# window or output limit offered today, far below what would poison a budget.
MAX_INPUT_TOKENS = 10_000_000
MAX_OUTPUT_TOKENS = 1_000_000
MAX_COUNT = 10_000  # images generated, requests, web searches in one call
# (detail field, its total): a detail count is part of its total.
_PARTS = (
    ("cache_read_input_tokens", "input_tokens"),
    ("cache_write_input_tokens", "input_tokens"),
    ("cache_write_1h_input_tokens", "cache_write_input_tokens"),
    ("cache_write_12h_input_tokens", "cache_write_input_tokens"),
    ("audio_input_tokens", "input_tokens"),
    ("cache_read_audio_input_tokens", "audio_input_tokens"),
    ("cache_read_audio_input_tokens", "cache_read_input_tokens"),
    ("image_input_tokens", "input_tokens"),
    ("video_input_tokens", "input_tokens"),
    ("reasoning_output_tokens", "output_tokens"),
    ("audio_output_tokens", "output_tokens"),
    ("image_output_tokens", "output_tokens"),
)
_COUNTS = ("images", "requests", "web_search_requests")
# The span attribute named for a clamped Usage field.
_CLAMPED_NAMES = {
    "input_tokens": sc.GEN_AI_USAGE_INPUT_TOKENS,
    "output_tokens": sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    "cache_read_input_tokens": sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "cache_write_input_tokens": sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    "reasoning_output_tokens": sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    "web_search_requests": sc.AI_COST_USAGE_WEB_SEARCH_REQUESTS,
}


def _other_counts(usage: Usage) -> Tuple[Any, ...]:
    """The counts other than input, output, cache reads, reasoning and requests (zero in most calls:
    a zero, of any type, is never lowered below)."""
    return (usage.cache_write_input_tokens, usage.cache_write_1h_input_tokens, usage.cache_write_12h_input_tokens,
            usage.audio_input_tokens, usage.cache_read_audio_input_tokens, usage.audio_output_tokens,
            usage.image_input_tokens, usage.video_input_tokens, usage.image_output_tokens, usage.images,
            usage.web_search_requests)


_ZEROS = (0,) * 11


def bound_usage(
    usage: Usage, *, max_input: Optional[int] = None, max_output: Optional[int] = None
) -> Tuple[Usage, Tuple[str, ...]]:
    """``usage`` bounded by what the model and the request allow, and the names of the counts lowered.

    ``max_input``: the model's context window; ``max_output``: the request's ``max_tokens``, else
    the model's output limit (None: ``MAX_INPUT_TOKENS`` / ``MAX_OUTPUT_TOKENS``). A count that is not
    an int is read as ``_count`` reads it (a float truncated, a numeric string parsed, True as 1,
    anything else 0), a negative one becomes 0, a detail count at most its total. Returns ``usage``
    itself when nothing was lowered (the common case: no copy).
    """
    input_limit = max_input if max_input and max_input > 0 else MAX_INPUT_TOKENS
    output_limit = max_output if max_output and max_output > 0 else MAX_OUTPUT_TOKENS
    inp, out, cached, reasoning, requests = (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
                                              usage.reasoning_output_tokens, usage.requests)
    if (type(inp) is int and type(out) is int and type(cached) is int and type(reasoning) is int
            and type(requests) is int and 0 <= inp <= input_limit and 0 <= out <= output_limit
            and 0 <= cached <= inp and 0 <= reasoning <= out and 0 <= requests <= MAX_COUNT
            and _other_counts(usage) == _ZEROS):
        return usage, ()  # the common case, checked without the loops below: nothing to lower
    limits = {"input_tokens": input_limit, "output_tokens": output_limit}
    values = {}
    clamped = []
    for name in ("input_tokens", "output_tokens"):
        value = getattr(usage, name)
        bounded = min(_count(value), limits[name])
        values[name] = bounded
        if bounded != value:
            clamped.append(name)
    for name, total in _PARTS:
        value = getattr(usage, name)
        if not value and type(value) is int:
            values[name] = 0
            continue
        # A part listed under two totals (cached audio) is bounded by both.
        bounded = min(values.get(name, _count(value)), values[total])
        values[name] = bounded
        if bounded != value and name not in clamped:
            clamped.append(name)
    for name in _COUNTS:
        value = getattr(usage, name)
        bounded = min(_count(value), MAX_COUNT)
        values[name] = bounded
        if bounded != value:
            clamped.append(name)
    if not clamped:
        return usage, ()
    return Usage(**values), tuple(_CLAMPED_NAMES.get(name, name) for name in clamped)


def usage_limits(
    catalog: Optional["Catalog"], model: Optional[str], provider: Optional[str], max_tokens: Any = None
) -> Tuple[Optional[int], Optional[int]]:
    """(max input, max output) tokens for a call: the model's limits, the request's ``max_tokens`` first."""
    price = catalog.resolve(model, provider) if catalog is not None and model else None
    return price_limits(price, max_tokens)


def price_limits(price: Optional["ModelPrice"], max_tokens: Any = None) -> Tuple[Optional[int], Optional[int]]:
    """``usage_limits`` of a catalog entry already resolved (None: no model limits)."""
    max_input = price.max_input_tokens if price is not None else None
    max_output = max_tokens if type(max_tokens) is int and max_tokens > 0 else None
    if max_output is None and price is not None:
        max_output = price.max_output_tokens
    return max_input, max_output


def _count(value: Any) -> int:
    """A token count as a non-negative int: an int as it is (0 if negative); otherwise ``int(value)``
    (a float truncated, a numeric string such as "12" parsed, True as 1), 0 if that fails."""
    if type(value) is int:
        return value if value > 0 else 0
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(value)
        except (TypeError, ValueError, OverflowError):
            return 0
    return value if value > 0 else 0


def usage_from_attributes(attrs: Mapping[str, Any]) -> Optional[Usage]:
    """Usage read from the ``gen_ai.usage.*`` attributes of a span made by another instrumentation.

    Reads the cache-write count from ``cache_write.input_tokens`` or its older name
    ``cache_creation.input_tokens``. None when neither input nor output tokens are present.
    """
    try:
        input_tokens = _first(attrs, sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_PROMPT_TOKENS)
        output_tokens = _first(attrs, sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_COMPLETION_TOKENS)
        if input_tokens is None and output_tokens is None:
            return None
        cache_write = _first(
            attrs, sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
        )
        return Usage(
            input_tokens=input_tokens or 0,
            output_tokens=output_tokens or 0,
            cache_read_input_tokens=_first(attrs, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) or 0,
            cache_write_input_tokens=cache_write or 0,
            reasoning_output_tokens=_first(attrs, sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS) or 0,
            web_search_requests=_first(attrs, sc.AI_COST_USAGE_WEB_SEARCH_REQUESTS) or 0,
        )
    except Exception:  # noqa: BLE001 - a malformed span must not break the exporter
        logger.debug("could not read usage attributes", exc_info=True)
        return None


def _first(attrs: Mapping[str, Any], *names: str) -> Optional[int]:
    """The first of ``names`` present in ``attrs`` as a non-negative int count."""
    for name in names:
        value = attrs.get(name)
        if value is None or isinstance(value, bool):
            continue
        try:
            count = int(value)
        except (TypeError, ValueError, OverflowError):
            continue
        return count if count > 0 else 0
    return None
