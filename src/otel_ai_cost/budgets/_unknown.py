"""What a budget does with a call to a model the pricing catalog does not know.

Such a call has no price, so without a policy it would pass every budget at $0. Each budget has an
``on_unknown_model`` policy (else the book's, else ``DEFAULT_UNKNOWN_MODEL``):

- ``block``: refuse the call before it is sent (``BudgetExceededError``, reason ``unknown_model``);
- ``allow``: let it through and count $0 (the spend is not metered: an explicit choice);
- ``price_as``: count it as if it were another model of the catalog (``price_as: gpt-4o``), or at
  a price per million tokens (``price_as: {input: 10, output: 30}``). The hold is the estimate at
  that price and the settle prices the reported usage at it.

The default prices unknown models at ``FALLBACK_INPUT_USD`` / ``FALLBACK_OUTPUT_USD`` per million
input / output tokens (the upper range of current flagship chat models), so unknown spend is metered,
and warns once per model.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Mapping, Optional, Set, Tuple

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..cost import Usage
    from ..pricing import Catalog, ModelPrice

_logger = logging.getLogger("otel_ai_cost.budgets")

ACTIONS = ("block", "allow", "price_as")
FALLBACK_INPUT_USD = Decimal("10")  # per million input tokens
FALLBACK_OUTPUT_USD = Decimal("30")  # per million output tokens


def _per_million(value: Any, what: str) -> Decimal:
    try:
        price = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ConfigError(f"{what} {value!r} is not a number of USD per million tokens") from None
    if isinstance(value, bool) or not price.is_finite() or price < 0:
        raise ConfigError(f"{what} {value!r} must be a finite, non-negative number of USD per million tokens")
    return price


@dataclass(frozen=True)
class UnknownModelPolicy:
    """``action``: block | allow | price_as. ``price_as`` takes ``model`` (a catalog model) or the
    per-million prices ``input_usd`` and ``output_usd``."""

    action: str
    model: Optional[str] = None
    input_usd: Optional[Decimal] = None
    output_usd: Optional[Decimal] = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ConfigError(f"on_unknown_model {self.action!r} is not one of block, allow, price_as")
        if self.action != "price_as":
            if self.model is not None or self.input_usd is not None or self.output_usd is not None:
                raise ConfigError(f"on_unknown_model {self.action!r} takes no model or price")
            return
        if self.model is not None:
            if not isinstance(self.model, str) or not self.model.strip():
                raise ConfigError(f"on_unknown_model price_as: the model must be a non-empty name, not {self.model!r}")
            if self.input_usd is not None or self.output_usd is not None:
                raise ConfigError("on_unknown_model price_as: give a catalog model or per-token prices, not both")
            return
        if self.input_usd is None or self.output_usd is None:
            raise ConfigError(
                "on_unknown_model price_as: give a catalog model (price_as: gpt-4o) or both prices per "
                "million tokens (price_as: {input: 10, output: 30})"
            )
        object.__setattr__(self, "input_usd", _per_million(self.input_usd, "price_as input"))
        object.__setattr__(self, "output_usd", _per_million(self.output_usd, "price_as output"))

    @property
    def priced_as(self) -> Optional[str]:
        """What the span and the ledger say the call was priced as (None: block, allow)."""
        if self.action != "price_as":
            return None
        if self.model is not None:
            return self.model
        return f"${self.input_usd}/M input, ${self.output_usd}/M output"

    def describe(self) -> str:
        return self.action if self.action != "price_as" else f"price_as {self.priced_as}"

    def price(self, catalog: "Catalog") -> Optional["ModelPrice"]:
        """The price entry this policy counts calls at (None: block, allow)."""
        if self.action != "price_as":
            return None
        from ..pricing import ModelPrice, PriceSet

        if self.model is not None:
            return catalog.resolve(self.model)
        return ModelPrice(
            id="(price_as)", provider="", mode="chat",
            prices=PriceSet(input=self.input_usd, output=self.output_usd),
        )

    def check(self, catalog: "Catalog", where: str) -> None:
        """Raise ConfigError if ``price_as`` names a model the catalog does not know."""
        if self.action == "price_as" and self.model is not None and catalog.resolve(self.model) is None:
            raise ConfigError(
                f"{where}: on_unknown_model price_as {self.model!r} is not a model of the pricing catalog "
                "(see `otel-ai-cost prices list`); name a known model or give prices per million tokens"
            )

    def cost(self, usage: "Usage", catalog: "Catalog") -> Decimal:
        """What a call with this usage counts, in USD (0 for allow)."""
        price = self.price(catalog)
        if price is None:
            return Decimal(0)
        from ..cost import compute_cost

        return compute_cost(usage, price).total


DEFAULT_UNKNOWN_MODEL = UnknownModelPolicy("price_as", input_usd=FALLBACK_INPUT_USD, output_usd=FALLBACK_OUTPUT_USD)


def block_unknown() -> UnknownModelPolicy:
    return UnknownModelPolicy("block")


def allow_unknown() -> UnknownModelPolicy:
    return UnknownModelPolicy("allow")


def price_unknown_as(model: Optional[str] = None, *, input_usd: Any = None,
                     output_usd: Any = None) -> UnknownModelPolicy:
    """``price_unknown_as("gpt-4o")`` or ``price_unknown_as(input_usd=10, output_usd=30)`` (per million)."""
    return UnknownModelPolicy("price_as", model, input_usd, output_usd)


def parse_unknown_model(value: Any) -> UnknownModelPolicy:
    """A policy from configuration: ``block``, ``allow``, ``{price_as: gpt-4o}`` or
    ``{price_as: {input: 10, output: 30}}``. Raises ConfigError with the reason."""
    if isinstance(value, UnknownModelPolicy):
        return value
    if isinstance(value, str):
        if value == "price_as":
            raise ConfigError("price_as needs what to price as: {price_as: gpt-4o} or "
                              "{price_as: {input: 10, output: 30}}")
        return UnknownModelPolicy(value)
    if isinstance(value, Mapping) and set(value) == {"price_as"}:
        target = value["price_as"]
        if isinstance(target, str):
            return UnknownModelPolicy("price_as", model=target)
        if isinstance(target, Mapping):
            extra = sorted(str(k) for k in target if k not in ("input", "output"))
            if extra:
                raise ConfigError(f"price_as: unknown key {extra[0]!r}; expected input and output "
                                  "(USD per million tokens)")
            return UnknownModelPolicy("price_as", input_usd=target.get("input"), output_usd=target.get("output"))
        raise ConfigError(f"price_as {target!r}: expected a model name or {{input: 10, output: 30}}")
    raise ConfigError(
        f"{value!r} is not block, allow, {{price_as: <model>}} or {{price_as: {{input: <USD/M>, output: <USD/M>}}}}"
    )


class _WarnedModels:
    """Warn once per unknown model (bounded), so a log is not flooded by a model used on every call."""

    def __init__(self, cap: int = 1024) -> None:
        self._seen: Set[Tuple[Optional[str], Optional[str]]] = set()
        self._cap = cap
        self._lock = threading.Lock()

    def warn(self, model: Optional[str], provider: Optional[str], what: str) -> None:
        key = (model, provider)
        with self._lock:
            if key in self._seen or len(self._seen) >= self._cap:
                return
            self._seen.add(key)
        _logger.warning(
            "otel-ai-cost: model %r (provider %s) is not in the pricing catalog; budgets %s its calls "
            "(on_unknown_model). Add the model to a price file (OTEL_AI_COST_PRICING_FILES) or set "
            "on_unknown_model per budget or at the top of the configuration. (Reported once per model.)",
            model or "(none)", provider or "unknown", what,
        )


warned_models = _WarnedModels()


@dataclass(frozen=True)
class UnknownCall:
    """A call whose model the catalog cannot price: what the budgets need to count it anyway.

    ``usage``: the estimated tokens (None when the request could not be counted); ``catalog``: the
    catalog ``price_as`` models are looked up in.
    """

    model: Optional[str]
    provider: Optional[str]
    usage: Optional["Usage"]
    catalog: "Catalog"


_STRICTNESS = {"block": 2, "price_as": 1, "allow": 0}


def strictest(policies: "Any") -> Optional[UnknownModelPolicy]:
    """The policy to report on the span when several budgets cover one call."""
    return max((p for p in policies if p is not None), key=lambda p: _STRICTNESS[p.action], default=None)
