"""Optimisation hints from the call ledger (``otel-ai-cost recommend``): estimates, never applied.

Four rules, each over groups of calls and each hint saying how its number was computed:

* ``cheaper_model``: calls with short outputs (``output_tokens <= short_output``) on a model that has a
  cheaper sibling in ``DOWNGRADES`` (same provider, same family). The ledger does not record whether a
  call used tools, so the rule looks at output length only. Saving: what the calls cost minus what the
  same tokens cost at the sibling's catalog prices (same service tier, the prices in force that day).
* ``prompt_cache``: calls with ``input_tokens >= long_input`` and no cache reads, on a model whose
  catalog entry has a ``cache_read`` price, at least ``min_repeats`` of them per group. The ledger does
  not keep prompts, so the saving is an UPPER BOUND: it assumes each such call after the first repeats
  its whole input as a prefix of an earlier call (the first one writes the cache), and it ignores
  cache-write surcharges and cache expiry. Saving: those calls' cost minus their cost with every input
  token read from the cache.
* ``batch``: groups of at least ``min_batch_calls`` calls (same service, provider, model, operation)
  not already on the batch tier, on a model the catalog prices at the ``batch`` service tier. The ledger
  does not record streaming or who waits for the answer: a big group is a candidate; whether it can wait
  for a batch job (up to 24 hours) is yours to judge. Saving: the calls' cost minus the batch-tier cost.
* ``max_tokens``: calls whose worst-case estimate reserved ``estimate_output_tokens`` (from max_tokens)
  at least ``reservation_ratio`` times the output they produced. No money is saved: the hint gives the
  budget capacity held needlessly while the calls ran (estimate minus actual cost), ranked after the
  money hints.

A call is repriced only when every part of its recorded cost is one the ledger keeps the tokens of
(input, cache read and write, output, reasoning); others (audio, images, web search) are left out.
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import _semconv as sc
from .._grouping import NONE
from .._usage import Usage
from ..cost import compute_cost
from ._report import ZERO, Call

# (provider, model family) -> the cheaper model of the same family, one step down. A call's family is its
# catalog entry's id without a trailing date (gpt-4o-2024-08-06 -> gpt-4o, claude-sonnet-4-20250514 ->
# claude-sonnet-4). A pair is used only when the catalog prices the cheaper model for that provider.
DOWNGRADES: Dict[Tuple[str, str], str] = {
    ("openai", "gpt-4o"): "gpt-4o-mini",
    ("openai", "gpt-4.1"): "gpt-4.1-mini",
    ("openai", "gpt-4.1-mini"): "gpt-4.1-nano",
    ("openai", "gpt-5"): "gpt-5-mini",
    ("openai", "gpt-5-mini"): "gpt-5-nano",
    ("anthropic", "claude-sonnet-4-5"): "claude-haiku-4-5",
    ("anthropic", "claude-sonnet-4"): "claude-3-5-haiku-latest",
    ("gcp.gemini", "gemini-2.5-pro"): "gemini-2.5-flash",
    ("gcp.gemini", "gemini-2.5-flash"): "gemini-2.5-flash-lite",
    ("mistral_ai", "mistral-large-latest"): "mistral-small-latest",
}
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
KINDS = ("cheaper_model", "prompt_cache", "batch", "max_tokens")
_REPRICEABLE = frozenset({sc.AI_COST_COST_INPUT, sc.AI_COST_COST_CACHE_READ, sc.AI_COST_COST_CACHE_WRITE,
                          sc.AI_COST_COST_OUTPUT, sc.AI_COST_COST_REASONING})


@dataclass(frozen=True)
class Rules:
    short_output: int = 256
    long_input: int = 1024
    min_repeats: int = 2
    min_batch_calls: int = 100
    reservation_ratio: int = 4


@dataclass
class Hint:
    kind: str
    service: str
    provider: str
    model: str
    operation: str
    calls: int
    cost: Decimal  # what the calls cost (max_tokens: their estimate)
    saving: Decimal  # money saved; 0 for max_tokens
    held: Decimal = ZERO  # max_tokens: budget capacity held needlessly
    suggestion: str = ""
    how: str = ""
    details: Dict[str, Any] = field(default_factory=dict)


def _usage(call: Call) -> Usage:
    return Usage(input_tokens=call.input_tokens, output_tokens=call.output_tokens,
                 cache_read_input_tokens=call.cache_read_tokens, cache_write_input_tokens=call.cache_write_tokens,
                 reasoning_output_tokens=call.reasoning_tokens)


def _priced(call: Call) -> bool:
    """A call with a cost the ledger's token columns account for."""
    return call.ok and call.cost is not None and set(call.breakdown) <= _REPRICEABLE


def _price(catalog: Any, model: Optional[str], provider: Optional[str]) -> Any:
    return catalog.resolve(model, provider=provider) if model else None


def _ns(call: Call) -> int:
    return int(call.start_time * 1e9)


def _text(value: Optional[str]) -> str:
    return value if value else NONE


def _groups(calls: Sequence[Call], key: Callable[[Call], Tuple[str, ...]]) -> Dict[Tuple[str, ...], List[Call]]:
    groups: Dict[Tuple[str, ...], List[Call]] = {}
    for call in calls:
        groups.setdefault(key(call), []).append(call)
    return groups


def _model_key(call: Call) -> Tuple[str, ...]:
    return (_text(call.service), _text(call.provider), _text(call.pricing_model or call.model),
            _text(call.operation))


def family(model: str) -> str:
    """The model's family: its catalog id without a trailing date."""
    return _DATED.sub("", model)


@dataclass
class _Group:
    """One rule's sums over a group of calls (same service, provider, model and operation), added to
    call by call: no rule keeps the calls themselves."""

    price: Any  # the catalog entry the rule prices the group at (None: the group gives no hint)
    calls: int = 0
    paid: Decimal = ZERO  # what the calls cost
    base: Decimal = ZERO  # prompt_cache: the repeats' cost at the catalog's prices
    other: Decimal = ZERO  # what the calls would cost as the hint suggests
    estimate: Decimal = ZERO  # max_tokens: the calls' estimates
    input_tokens: int = 0
    output_tokens: int = 0
    reserved: int = 0  # max_tokens: the output tokens the estimates reserved
    most: int = 0  # max_tokens: the largest output
    broken: bool = False  # a call the suggestion cannot apply to (no cache_read / batch price that day)


class _Rule(ABC):
    """One rule: ``add`` each call, then ``hints``."""

    def __init__(self, catalog: Any, rules: Rules) -> None:
        self.catalog = catalog
        self.rules = rules
        self.groups: Dict[Tuple[str, ...], _Group] = {}  # in the order of their first call

    def group(self, call: Call) -> _Group:
        key = _model_key(call)
        found = self.groups.get(key)
        if found is None:
            found = self.groups[key] = _Group(self.price(*key))
        return found

    def price(self, service: str, provider: str, model: str, operation: str) -> Any:
        return _price(self.catalog, model, None if provider == NONE else provider)

    @abstractmethod
    def add(self, call: Call) -> None:
        """Count one call of the ledger (in its order)."""

    @abstractmethod
    def hints(self) -> List[Hint]:
        """The rule's hints over the calls added."""


class CheaperModel(_Rule):
    def price(self, service: str, provider: str, model: str, operation: str) -> Any:
        target = DOWNGRADES.get((provider, family(model)))
        price = _price(self.catalog, target, provider) if target else None
        return price if price is not None and price.provider == provider else None

    def add(self, call: Call) -> None:
        if not _priced(call) or call.output_tokens > self.rules.short_output:
            return
        g = self.group(call)
        if g.price is None:
            return
        g.calls += 1
        g.paid += call.cost or ZERO
        g.other += compute_cost(_usage(call), g.price, call.service_tier, at=_ns(call)).total
        g.input_tokens += call.input_tokens
        g.output_tokens += call.output_tokens

    def hints(self) -> List[Hint]:
        hints = []
        for (service, provider, model, operation), g in self.groups.items():
            if g.price is None or g.other >= g.paid:
                continue
            target, cost, cheaper = g.price.id, g.paid, g.other
            hints.append(Hint(
                "cheaper_model", service, provider, model, operation, g.calls, cost, cost - cheaper,
                suggestion=f"try {DOWNGRADES[(provider, family(model))]} for these short-output calls",
                how=(f"{g.calls} calls with output <= {self.rules.short_output} tokens (output length only: the "
                     f"ledger does not record tool use) cost {cost}; the same tokens ({g.input_tokens} in, "
                     f"{g.output_tokens} out) at {target}'s catalog prices cost {cheaper}"),
                details={"target": target, "target_cost": cheaper, "input_tokens": g.input_tokens,
                         "output_tokens": g.output_tokens}))
        return hints


class PromptCache(_Rule):
    def add(self, call: Call) -> None:
        if not _priced(call) or call.input_tokens < self.rules.long_input or call.cache_read_tokens:
            return
        g = self.group(call)
        g.calls += 1
        g.paid += call.cost or ZERO
        if g.calls == 1 or g.price is None or g.broken:  # the first call would write the cache
            return
        if g.price.at(_ns(call)).prices.cache_read is None:
            g.broken = True
            return
        g.base += compute_cost(_usage(call), g.price, call.service_tier, at=_ns(call)).total
        g.other += compute_cost(Usage(
            input_tokens=call.input_tokens, output_tokens=call.output_tokens,
            cache_read_input_tokens=call.input_tokens, reasoning_output_tokens=call.reasoning_tokens),
            g.price, call.service_tier, at=_ns(call)).total
        g.input_tokens += call.input_tokens

    def hints(self) -> List[Hint]:
        hints = []
        for (service, provider, model, operation), g in self.groups.items():
            if g.price is None or g.calls < self.rules.min_repeats or g.broken or g.base <= g.other:
                continue
            cost, cached, tokens = g.base, g.other, g.input_tokens
            hints.append(Hint(
                "prompt_cache", service, provider, model, operation, g.calls, g.paid, cost - cached,
                suggestion="put the repeated part of the prompt first and enable prompt caching",
                how=(f"upper bound: {g.calls} calls with input >= {self.rules.long_input} tokens and no cache "
                     f"reads; assumes the {g.calls - 1} after the first repeat their whole input ({tokens} tokens) "
                     f"as a cached prefix, billed at {g.price.id}'s cache_read price instead of input ({cost} -> "
                     f"{cached}); ignores cache-write surcharges and expiry"),
                details={"cacheable_input_tokens": tokens, "cached_cost": cached}))
        return hints


class Batch(_Rule):
    def add(self, call: Call) -> None:
        if not _priced(call) or (call.service_tier or "").lower() == "batch":
            return
        g = self.group(call)
        g.calls += 1
        g.paid += call.cost or ZERO
        if g.price is None or g.broken:
            return
        if "batch" not in g.price.at(_ns(call)).service_tiers:
            g.broken = True
            return
        g.other += compute_cost(_usage(call), g.price, "batch", at=_ns(call)).total

    def hints(self) -> List[Hint]:
        hints = []
        for (service, provider, model, operation), g in self.groups.items():
            if g.price is None or g.calls < self.rules.min_batch_calls or g.broken or g.other >= g.paid:
                continue
            cost, batched = g.paid, g.other
            hints.append(Hint(
                "batch", service, provider, model, operation, g.calls, cost, cost - batched,
                suggestion="if these calls can wait (up to 24 h), send them through the provider's batch API",
                how=(f"{g.calls} calls (>= {self.rules.min_batch_calls}; the ledger does not record streaming or "
                     f"interactivity: judge whether they can wait) cost {cost}; the same tokens at {g.price.id}'s "
                     f"batch-tier catalog prices cost {batched}"),
                details={"batch_cost": batched}))
        return hints


class MaxTokens(_Rule):
    def price(self, service: str, provider: str, model: str, operation: str) -> Any:
        return None  # no repricing: the estimates and the costs are the ledger's

    def add(self, call: Call) -> None:
        reserved = call.estimate_output_tokens
        if (not call.ok or reserved is None or call.estimate is None or call.cost is None
                or reserved < self.rules.reservation_ratio * max(call.output_tokens, 1)):
            return
        g = self.group(call)
        g.calls += 1
        g.reserved += reserved
        g.output_tokens += call.output_tokens
        g.estimate += call.estimate
        g.paid += call.cost
        g.most = max(g.most, call.output_tokens)

    def hints(self) -> List[Hint]:
        hints = []
        ratio = self.rules.reservation_ratio
        for (service, provider, model, operation), g in self.groups.items():
            estimate, cost = g.estimate, g.paid
            if estimate <= cost:  # the estimate's input fell short of the actual input: nothing was held
                continue
            hints.append(Hint(
                "max_tokens", service, provider, model, operation, g.calls, estimate, ZERO, held=estimate - cost,
                suggestion=f"lower max_tokens (the most these calls produced: {g.most} output tokens)",
                how=(f"{g.calls} calls reserved {g.reserved} output tokens (max_tokens, >= {ratio}x what they "
                     f"produced) and produced {g.output_tokens}; their worst-case estimates ({estimate}) held "
                     f"{estimate - cost} more budget than they settled (their cost) while they ran: capacity, "
                     "not money"),
                details={"reserved_output_tokens": g.reserved, "used_output_tokens": g.output_tokens,
                         "max_output_tokens": g.most}))
        return hints


class Recommender:
    """The four rules over calls given one at a time (``add``): nothing is kept per call."""

    def __init__(self, catalog: Any = None, rules: Rules = Rules()) -> None:
        if catalog is None:
            from ..pricing import default_catalog

            catalog = default_catalog()
        self.calls = 0
        self._money = (CheaperModel(catalog, rules), PromptCache(catalog, rules), Batch(catalog, rules))
        self._capacity = MaxTokens(catalog, rules)

    def add(self, call: Call) -> None:
        self.calls += 1
        for rule in self._money:
            rule.add(call)
        self._capacity.add(call)

    def hints(self) -> List[Hint]:
        """Every hint: the money hints by saving (largest first), then the max_tokens hints by capacity held."""
        money = [h for rule in self._money for h in rule.hints()]
        money.sort(key=lambda h: (-h.saving, h.kind, h.service, h.model))
        capacity = sorted(self._capacity.hints(), key=lambda h: (-h.held, h.service, h.model))
        return money + capacity


def recommend(calls: Iterable[Call], catalog: Any = None, rules: Rules = Rules()) -> List[Hint]:
    """Every hint over ``calls`` (see ``Recommender.hints``)."""
    recommender = Recommender(catalog, rules)
    for call in calls:
        recommender.add(call)
    return recommender.hints()
