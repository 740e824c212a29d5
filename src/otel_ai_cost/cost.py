"""Cost engine: normalised usage x catalog price -> exact cost breakdown.

Rules (the shared test vectors in ``tests/vectors/`` hold the Python and Go engines to them):

* Prices are USD per 1,000,000 tokens (``per_image``, ``per_request`` and ``web_search`` are USD per unit). Every
  amount is a ``Decimal``: ``tokens * price / 1_000_000``, no rounding; ``Cost.total`` is the exact
  sum of ``Cost.breakdown``. Floats appear only in span attributes.
* Components (keys of ``Cost.breakdown``, the suffixes of the ``ai_cost.cost.*`` attributes):

  - ``input``: uncached input = input - cache_read - cache_write - uncached audio - image_input -
    video_input (image / video input only when ``image_input`` / ``video_input`` is priced; their
    cost is then added to ``input`` too, at their prices; otherwise they are text input).
  - ``cache_read``: text cache reads (cache_read - cached audio) at ``cache_read``.
  - ``cache_read_audio``: cached audio at ``cache_read_audio``.
  - ``cache_write``: default-TTL writes (cache_write - cache_write_1h - cache_write_12h; Anthropic's
    5 minutes, OpenAI's 30 minutes) at ``cache_write`` plus 1-hour writes at ``cache_write_1h`` plus
    12-hour writes (OpenAI's ``ttl_12h_tokens``) at ``cache_write_12h``.
  - ``output``: output - reasoning - audio_output - image_output (image output only when
    ``image_output`` is priced; otherwise it stays in output).
  - ``reasoning``: reasoning tokens at ``reasoning``, else at ``output``; always its own component
    so users see what thinking cost.
  - ``audio_input`` / ``audio_output``: uncached audio input (audio_input - cached audio) and audio
    output tokens at their prices.
  - ``image``: ``per_image`` x images + image output tokens at ``image_output``.
  - ``request``: ``per_request`` x requests.
  - ``web_search``: ``web_search`` x server-side web searches (Anthropic's web search tool).

  A component appears when it has a non-zero token (or unit) count and a price; its value may be 0
  (a free model). Zero usage gives an empty breakdown and a total of 0.
* Audio input: ``audio_input_tokens`` counts every audio token of the input, cached or not (as
  OpenAI's ``prompt_tokens_details.audio_tokens`` and Gemini's ``promptTokensDetails`` AUDIO do);
  ``cache_read_audio_input_tokens`` is its cached part, also counted in ``cache_read_input_tokens``.
  Cached audio = max(cache_read_audio, the overlap the totals force: cache_read + cache_write +
  audio_input + image_input + video_input - input), at most min(cache_read, audio_input). A provider that reports
  cached tokens and audio tokens but not which cached tokens are audio (OpenAI chat completions) is
  thus read as "the cache holds text first": of the splits the counts allow, the costliest at every
  listed price (uncached audio is the dearest input), so never an underestimate.
  Image and video input (``image_input_tokens``, ``video_input_tokens``) count uncached tokens only;
  cached images and video are cache reads.
* Fallbacks for a missing price field: cache_read -> input; cache_read_audio -> cache_read -> input;
  cache_write -> input; cache_write_1h -> cache_write -> input; cache_write_12h -> cache_write -> input;
  reasoning -> output; audio_input -> input; audio_output -> output. (``image_input`` and
  ``video_input`` have none: unpriced, their tokens stay text input, see ``input`` above.) A part
  whose price is missing with no fallback (e.g. output tokens on an embedding entry without an
  output price, images without ``per_image``) is charged nothing (a component with no priced part
  at all is named in ``Cost.unpriced``); the rest of the request is still priced.
* Service tier: "batch", "flex" and "priority" select ``ModelPrice.service_tiers[tier]``; OpenAI's
  "default", "auto", "standard", "scale" and None mean base prices, as does a tier the entry does not
  price. ``Cost.service_tier`` names the tier whose prices were used (None for base).
* Context tier: the tier with the highest ``above_input_tokens`` strictly below ``input_tokens``
  (input including cache) prices the whole request, as Anthropic and Gemini bill "> 200k".
* Each field is looked up, first found wins: context tier's service tier, context tier, service tier,
  base; then the fallbacks above apply to the result.
* Dated prices: an entry with ``price_history`` charges the period in force on the UTC day of the call
  (``at``: the span's start time), see ``ModelPrice.at``.
* Derived counts that come out negative (a provider reporting cache_read > input) are clamped to 0.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import (
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    localcontext,
)
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

from . import _semconv as sc
from ._usage import (
    _ZEROS,
    MAX_COUNT,
    MAX_INPUT_TOKENS,
    MAX_OUTPUT_TOKENS,
    Usage,
    _count,
    _other_counts,
    bound_usage,
    price_limits,
    usage_from_attributes,
    usage_limits,
)
from .pricing._catalog import default_catalog as _default_catalog
from .pricing._model import ContextTier, ModelPrice, PriceSet, When

if TYPE_CHECKING:
    from .pricing import Catalog

__all__ = [
    "COMPONENTS",
    "MAX_COUNT",
    "MAX_INPUT_TOKENS",
    "MAX_OUTPUT_TOKENS",
    "SERVICE_TIERS",
    "Cost",
    "Usage",
    "bound_usage",
    "compute_cost",
    "cost_attributes",
    "normalize_service_tier",
    "price_limits",
    "resolve_price",
    "select_context_tier",
    "usage_from_attributes",
    "usage_limits",
]

logger = logging.getLogger(__name__)

COMPONENTS = (
    "input",
    "cache_read",
    "cache_read_audio",
    "cache_write",
    "output",
    "reasoning",
    "audio_input",
    "audio_output",
    "image",
    "request",
    "web_search",
)

_COMPONENT_ATTRIBUTES = {
    "input": sc.AI_COST_COST_INPUT,
    "cache_read": sc.AI_COST_COST_CACHE_READ,
    "cache_read_audio": sc.AI_COST_COST_CACHE_READ_AUDIO,
    "cache_write": sc.AI_COST_COST_CACHE_WRITE,
    "output": sc.AI_COST_COST_OUTPUT,
    "reasoning": sc.AI_COST_COST_REASONING,
    "audio_input": sc.AI_COST_COST_AUDIO_INPUT,
    "audio_output": sc.AI_COST_COST_AUDIO_OUTPUT,
    "image": sc.AI_COST_COST_IMAGE,
    "request": sc.AI_COST_COST_REQUEST,
    "web_search": sc.AI_COST_COST_WEB_SEARCH,
}

SERVICE_TIERS = ("batch", "flex", "priority")
# OpenAI's response values that bill at the standard (base) prices.
_BASE_TIER_NAMES = frozenset({"", "default", "auto", "standard", "scale"})

_FALLBACKS: Dict[str, Tuple[str, ...]] = {
    "cache_read": ("input",),
    "cache_read_audio": ("cache_read", "input"),
    "cache_write": ("input",),
    "cache_write_1h": ("cache_write", "input"),
    "cache_write_12h": ("cache_write", "input"),
    "reasoning": ("output",),
    "audio_input": ("input",),
    "audio_output": ("output",),
}

_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)
_ONE = Decimal(1)
# Enough digits that no product or sum of realistic counts and prices is ever rounded.
_EXACT = Context(prec=60)


@dataclass(frozen=True)
class Cost:
    total: Decimal                           # USD, exact
    breakdown: Dict[str, Decimal]            # component -> USD; components sum to total
    currency: str = "USD"
    model_id: str = ""                       # catalog entry used
    service_tier: Optional[str] = None       # service tier whose prices were used
    context_tier: Optional[int] = None       # threshold of the context tier used, if any
    unpriced: Tuple[str, ...] = ()           # components with usage but no price: charged nothing

    @property
    def amount(self) -> float:
        return float(self.total)


def normalize_service_tier(service_tier: Optional[str]) -> Optional[str]:
    """The catalog tier name for a requested or reported service tier; None means base prices."""
    if service_tier is None:
        return None
    name = str(service_tier).strip().lower()
    if name in _BASE_TIER_NAMES:
        return None
    return name


def select_context_tier(price: ModelPrice, input_tokens: int) -> Optional[ContextTier]:
    """The tier with the highest threshold strictly below ``input_tokens``, if any."""
    chosen: Optional[ContextTier] = None
    for tier in price.context_tiers:
        if tier.above_input_tokens < input_tokens and (
            chosen is None or tier.above_input_tokens > chosen.above_input_tokens
        ):
            chosen = tier
    return chosen


class _Prices:
    """Field look-up through the chain of price sets, then the field fallbacks."""

    __slots__ = ("_chain",)

    def __init__(self, chain: List[PriceSet]) -> None:
        self._chain = chain

    def raw(self, name: str) -> Optional[Decimal]:
        for prices in self._chain:
            value: Optional[Decimal] = getattr(prices, name)
            if value is not None:
                return value
        return None

    def get(self, name: str) -> Optional[Decimal]:
        value = self.raw(name)
        if value is not None:
            return value
        for fallback in _FALLBACKS.get(name, ()):
            value = self.raw(fallback)
            if value is not None:
                return value
        return None


# The field names compute_cost reads: (name, looked up with fallbacks) pairs.
_LOOKUPS = (
    ("input", True), ("cache_read", True), ("cache_read_audio", True), ("cache_write", True), ("cache_write_1h", True),
    ("cache_write_12h", True),
    ("output", True), ("reasoning", True), ("audio_input", True), ("audio_output", True),
    ("per_image", True), ("per_request", True), ("image_input", False), ("image_output", False),
    ("video_input", False),
    ("web_search", False),
)
# (id(price), tier name, context-tier threshold) -> (price, used tier, {field: unit price}).
# Catalog entries are immutable, so the price chain of a (model, tier, context tier) resolves the
# same way every time; the entry itself is kept in the value so a reused id() cannot match.
_Resolved = Tuple[ModelPrice, Optional[str], Dict[str, Optional[Decimal]]]
_RESOLVED: Dict[Tuple[int, Optional[str], Optional[int]], _Resolved] = {}
_RESOLVED_SIZE = 1024


def _resolved_prices(price: ModelPrice, tier_name: Optional[str],
                     context_tier: Optional[ContextTier]) -> Tuple[Optional[str], Dict[str, Optional[Decimal]]]:
    key = (id(price), tier_name, context_tier.above_input_tokens if context_tier is not None else None)
    hit = _RESOLVED.get(key)
    if hit is not None and hit[0] is price:
        return hit[1], hit[2]
    used_tier, prices = _price_chain(price, tier_name, context_tier)
    resolved = {name: (prices.get(name) if fallback else prices.raw(name)) for name, fallback in _LOOKUPS}
    if len(_RESOLVED) >= _RESOLVED_SIZE:
        _RESOLVED.clear()
    _RESOLVED[key] = (price, used_tier, resolved)
    return used_tier, resolved


def _price_chain(price: ModelPrice, tier_name: Optional[str],
                 context_tier: Optional[ContextTier]) -> Tuple[Optional[str], _Prices]:
    chain: List[PriceSet] = []
    used_tier: Optional[str] = None
    if context_tier is not None:
        tier_prices = context_tier.service_tiers.get(tier_name) if tier_name else None
        if tier_prices is not None:
            chain.append(tier_prices)
            used_tier = tier_name
        chain.append(context_tier.prices)
    base_tier_prices = price.service_tiers.get(tier_name) if tier_name else None
    if base_tier_prices is not None:
        chain.append(base_tier_prices)
        used_tier = tier_name
    chain.append(price.prices)
    return used_tier, _Prices(chain)


def _charge(breakdown: Dict[str, Decimal], unpriced: List[str], component: str,
            parts: List[Tuple[int, Optional[Decimal], Decimal]]) -> None:
    """Add ``count * unit_price / divisor`` for each part that has a count (in the caller's context)."""
    amount: Optional[Decimal] = None
    missing = False
    for count, unit_price, divisor in parts:
        if count <= 0:
            continue
        if unit_price is None:
            missing = True
            continue
        part = count * unit_price / divisor
        amount = part if amount is None else amount + part
    if amount is not None:
        breakdown[component] = amount
    elif missing:
        unpriced.append(component)


# _plain_cost's arithmetic: any rounding (inexact or not) raises, and the caller falls back to _EXACT,
# so an amount is the same Decimal (value and exponent) as the one _EXACT computes, in a fraction of
# the time (a division at 60 digits costs ~15 times one at 28).
_FAST = Context(prec=28, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded])
_Priced = Tuple[Decimal, Dict[str, Decimal], str, Optional[str], Optional[int], Tuple[str, ...]]


def _plain_part(breakdown: Dict[str, Decimal], unpriced: List[str], component: str, count: int,
                unit_price: Optional[Decimal]) -> None:
    """``_charge`` of a one-part component (divisor one million)."""
    if count <= 0:
        return
    if unit_price is None:
        unpriced.append(component)
        return
    breakdown[component] = _FAST.divide(_FAST.multiply(count, unit_price), _MILLION)


def _plain_cost(input_tokens: int, cache_read: int, output_tokens: int, reasoning: int, requests: Any,
                unit: Dict[str, Optional[Decimal]]) -> Optional[Tuple[Decimal, Dict[str, Decimal], List[str]]]:
    """(total, breakdown, unpriced) of usage with no cache writes, audio, image, video, images or web
    searches (counts already ``_count``-ed), as ``compute_cost`` charges it: cached audio is then 0,
    so input = input - cache_read and output = output - reasoning. None when an amount would round."""
    breakdown: Dict[str, Decimal] = {}
    unpriced: List[str] = []
    try:
        _plain_part(breakdown, unpriced, "input", max(input_tokens - cache_read, 0), unit["input"])
        _plain_part(breakdown, unpriced, "cache_read", cache_read, unit["cache_read"])
        _plain_part(breakdown, unpriced, "output", max(output_tokens - reasoning, 0), unit["output"])
        _plain_part(breakdown, unpriced, "reasoning", reasoning, unit["reasoning"])
        per_request = unit["per_request"]
        if per_request is not None:
            count = _count(requests)
            if count > 0:
                breakdown["request"] = _FAST.divide(_FAST.multiply(count, per_request), _ONE)
        total = _ZERO
        for amount in breakdown.values():
            total = _FAST.add(total, amount)
    except DecimalException:
        return None
    return total, breakdown, unpriced


def estimate_cost(price: ModelPrice, service_tier: Optional[str], input_tokens: int,
                  output_tokens: int) -> Tuple[Decimal, str]:
    """(total, catalog entry) of ``compute_cost(Usage(input_tokens, output_tokens), price, service_tier)``
    (the estimate made at span start), without building the Usage and the Cost."""
    price = price.at(None)
    counted = _count(input_tokens)
    context_tier = select_context_tier(price, counted) if price.context_tiers else None
    _, unit = _resolved_prices(price, normalize_service_tier(service_tier), context_tier)
    plain = _plain_cost(counted, 0, _count(output_tokens), 0, 1, unit)
    if plain is not None:
        return plain[0], price.id
    cost = compute_cost(Usage(input_tokens=input_tokens, output_tokens=output_tokens), price, service_tier)
    return cost.total, cost.model_id


def compute_cost(usage: Usage, price: ModelPrice, service_tier: Optional[str] = None, at: When = None) -> Cost:
    """Exact cost of one request priced by one catalog entry, at the prices in force when the call was
    made (``at``: epoch ns as a span's start_time, a datetime or date; None: now). See the module docstring."""
    total, breakdown, model_id, used_tier, context_tier, unpriced = _priced(usage, price, service_tier, at)
    return Cost(total=total, breakdown=breakdown, model_id=model_id, service_tier=used_tier,
                context_tier=context_tier, unpriced=unpriced)


def _priced(usage: Usage, price: ModelPrice, service_tier: Optional[str], at: When) -> _Priced:
    """``compute_cost`` as (total, breakdown, model id, service tier, context tier, unpriced)."""
    price = price.at(at)
    input_tokens = _count(usage.input_tokens)
    tier_name = normalize_service_tier(service_tier)
    context_tier = select_context_tier(price, input_tokens) if price.context_tiers else None
    used_tier, unit = _resolved_prices(price, tier_name, context_tier)
    threshold = context_tier.above_input_tokens if context_tier is not None else None
    if _other_counts(usage) == _ZEROS:  # almost every call: text, cache reads, reasoning
        plain = _plain_cost(input_tokens, _count(usage.cache_read_input_tokens), _count(usage.output_tokens),
                            _count(usage.reasoning_output_tokens), usage.requests, unit)
        if plain is not None:
            return plain[0], plain[1], price.id, used_tier, threshold, tuple(plain[2])

    breakdown: Dict[str, Decimal] = {}
    unpriced: List[str] = []

    with localcontext(_EXACT):

        def charge(component: str, parts: List[Tuple[int, Optional[Decimal], Decimal]]) -> None:
            _charge(breakdown, unpriced, component, parts)

        cache_read = _count(usage.cache_read_input_tokens)
        cache_write_1h = _count(usage.cache_write_1h_input_tokens)
        cache_write_12h = _count(usage.cache_write_12h_input_tokens)
        cache_write_5m = max(_count(usage.cache_write_input_tokens) - cache_write_1h - cache_write_12h, 0)
        cache_write_all = cache_write_5m + cache_write_1h + cache_write_12h
        audio_input = _count(usage.audio_input_tokens)
        image_input_price = unit["image_input"]
        image_input = _count(usage.image_input_tokens) if image_input_price is not None else 0
        video_input_price = unit["video_input"]
        video_input = _count(usage.video_input_tokens) if video_input_price is not None else 0
        cached_audio = min(
            max(_count(usage.cache_read_audio_input_tokens),
                cache_read + cache_write_all + audio_input + image_input + video_input - input_tokens),
            cache_read, audio_input,
        )
        text_input = max(
            input_tokens - cache_read - cache_write_all - (audio_input - cached_audio)
            - image_input - video_input, 0
        )

        output_tokens = _count(usage.output_tokens)
        reasoning = _count(usage.reasoning_output_tokens)
        audio_output = _count(usage.audio_output_tokens)
        image_output_price = unit["image_output"]
        image_output = _count(usage.image_output_tokens) if image_output_price is not None else 0
        text_output = max(output_tokens - reasoning - audio_output - image_output, 0)

        charge("input", [
            (text_input, unit["input"], _MILLION),
            (image_input, image_input_price, _MILLION),
            (video_input, video_input_price, _MILLION),
        ])
        if cache_read > cached_audio:
            charge("cache_read", [(cache_read - cached_audio, unit["cache_read"], _MILLION)])
        if cached_audio > 0:
            charge("cache_read_audio", [(cached_audio, unit["cache_read_audio"], _MILLION)])
        if cache_write_all > 0:
            charge("cache_write", [
                (cache_write_5m, unit["cache_write"], _MILLION),
                (cache_write_1h, unit["cache_write_1h"], _MILLION),
                (cache_write_12h, unit["cache_write_12h"], _MILLION),
            ])
        charge("output", [(text_output, unit["output"], _MILLION)])
        if reasoning > 0:
            charge("reasoning", [(reasoning, unit["reasoning"], _MILLION)])
        if audio_input > cached_audio:
            charge("audio_input", [(audio_input - cached_audio, unit["audio_input"], _MILLION)])
        if audio_output > 0:
            charge("audio_output", [(audio_output, unit["audio_output"], _MILLION)])
        images = _count(usage.images)
        if images > 0 or image_output > 0:
            charge("image", [
                (images, unit["per_image"], _ONE),
                (image_output, image_output_price, _MILLION),
            ])
        per_request = unit["per_request"]
        if per_request is not None:
            charge("request", [(_count(usage.requests), per_request, _ONE)])
        web_searches = _count(usage.web_search_requests)
        if web_searches > 0:
            charge("web_search", [(web_searches, unit["web_search"], _ONE)])

        total = sum(breakdown.values(), _ZERO)

    return total, breakdown, price.id, used_tier, threshold, tuple(unpriced)


_logged_failure = False


def resolve_price(catalog: "Catalog", provider: Optional[str], response_model: Optional[str],
                  request_model: Optional[str]) -> Optional[ModelPrice]:
    """The catalog entry that prices a call: the response model's (it names the snapshot that was
    billed), else the request model's; None when neither is in the catalog."""
    for model in (response_model, request_model):
        if model:
            price = catalog.resolve(model, provider)
            if price is not None:
                return price
    return None


class _Unresolved:
    """``cost_attributes``' default ``price``: not resolved yet (None is a model not in the catalog)."""


_UNRESOLVED = _Unresolved()


def cost_attributes(
    usage: Optional[Usage],
    *,
    provider: Optional[str],
    request_model: Optional[str],
    response_model: Optional[str],
    service_tier: Optional[str] = None,
    catalog: Optional["Catalog"] = None,
    at: When = None,
    price: "Union[ModelPrice, None, _Unresolved]" = _UNRESOLVED,
) -> Dict[str, Any]:
    """Span attributes for the cost of one call. Never raises: on an internal error, logs once and returns {}.
    ``at``: when the call was made (the span's start time; None: now), for models whose price changed.

    The response model is looked up first (it names the snapshot that was billed), then the request
    model (``resolve_price``), unless the caller passes the entry it resolved so (``price``; None: not in
    the catalog). An unknown model yields ``ai_cost.pricing.status = unknown_model`` and no amount.
    """
    global _logged_failure
    try:
        if catalog is None:
            catalog = _default_catalog()
        if usage is None:
            return {sc.AI_COST_PRICING_STATUS: "no_usage"}
        if isinstance(price, _Unresolved):
            price = resolve_price(catalog, provider, response_model, request_model)
        if price is None:
            return {
                sc.AI_COST_PRICING_STATUS: "unknown_model",
                sc.AI_COST_PRICING_CATALOG_VERSION: catalog.version,
            }
        total, breakdown, model_id, used_tier, context_tier, unpriced = _priced(usage, price, service_tier, at)
        if unpriced and not total:
            # Usage the catalog cannot price at all: say so rather than report a silent $0.
            return {
                sc.AI_COST_PRICING_STATUS: "unpriced",
                sc.AI_COST_PRICING_CATALOG_VERSION: catalog.version,
                sc.AI_COST_PRICING_MODEL: model_id,
            }
        attributes: Dict[str, Any] = {
            sc.GEN_AI_USAGE_COST_AMOUNT: float(total),
            sc.GEN_AI_USAGE_COST_CURRENCY: "USD",
            sc.GEN_AI_USAGE_COST_SOURCE: "local",
        }
        for component, amount in breakdown.items():
            attributes[_COMPONENT_ATTRIBUTES[component]] = float(amount)
        attributes[sc.AI_COST_PRICING_STATUS] = "partial" if unpriced else "priced"
        attributes[sc.AI_COST_PRICING_CATALOG_VERSION] = catalog.version
        attributes[sc.AI_COST_PRICING_MODEL] = model_id
        if used_tier is not None:
            attributes[sc.AI_COST_PRICING_SERVICE_TIER] = used_tier
        if context_tier is not None:
            attributes[sc.AI_COST_PRICING_CONTEXT_TIER] = context_tier
        return attributes
    except Exception:  # noqa: BLE001 - cost must never break the host application
        if not _logged_failure:
            _logged_failure = True
            logger.warning(
                "otel-ai-cost could not compute the cost of a call (model %r / %r); "
                "the span is left without cost. Further failures are logged at debug level.",
                response_model, request_model, exc_info=True,
            )
        else:
            logger.debug("cost computation failed", exc_info=True)
        return {}
