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


def cheaper_model(calls: Sequence[Call], catalog: Any, rules: Rules) -> List[Hint]:
    hints = []
    short = [c for c in calls if _priced(c) and c.output_tokens <= rules.short_output]
    for (service, provider, model, operation), group in _groups(short, _model_key).items():
        target = DOWNGRADES.get((provider, family(model)))
        price = _price(catalog, target, provider) if target else None
        if target is None or price is None or price.provider != provider:
            continue
        cost = sum((c.cost or ZERO for c in group), ZERO)
        cheaper = sum((compute_cost(_usage(c), price, c.service_tier, at=_ns(c)).total for c in group), ZERO)
        if cheaper >= cost:
            continue
        tokens = (sum(c.input_tokens for c in group), sum(c.output_tokens for c in group))
        hints.append(Hint(
            "cheaper_model", service, provider, model, operation, len(group), cost, cost - cheaper,
            suggestion=f"try {target} for these short-output calls",
            how=(f"{len(group)} calls with output <= {rules.short_output} tokens (output length only: the ledger "
                 f"does not record tool use) cost {cost}; the same tokens ({tokens[0]} in, {tokens[1]} out) at "
                 f"{price.id}'s catalog prices cost {cheaper}"),
            details={"target": price.id, "target_cost": cheaper, "input_tokens": tokens[0],
                     "output_tokens": tokens[1]}))
    return hints


def prompt_cache(calls: Sequence[Call], catalog: Any, rules: Rules) -> List[Hint]:
    hints = []
    long = [c for c in calls if _priced(c) and c.input_tokens >= rules.long_input and not c.cache_read_tokens]
    for (service, provider, model, operation), group in _groups(long, _model_key).items():
        price = _price(catalog, model, None if provider == NONE else provider)
        if price is None or len(group) < rules.min_repeats:
            continue
        repeats = group[1:]  # the first call would write the cache
        cost = ZERO
        cached = ZERO
        for c in repeats:
            at = price.at(_ns(c))
            if at.prices.cache_read is None:
                break
            usage = _usage(c)
            cost += compute_cost(usage, price, c.service_tier, at=_ns(c)).total
            cached += compute_cost(Usage(
                input_tokens=c.input_tokens, output_tokens=c.output_tokens, cache_read_input_tokens=c.input_tokens,
                reasoning_output_tokens=c.reasoning_tokens), price, c.service_tier, at=_ns(c)).total
        else:
            if cost <= cached:
                continue
            tokens = sum(c.input_tokens for c in repeats)
            paid = sum((c.cost or ZERO for c in group), ZERO)
            hints.append(Hint(
                "prompt_cache", service, provider, model, operation, len(group), paid, cost - cached,
                suggestion="put the repeated part of the prompt first and enable prompt caching",
                how=(f"upper bound: {len(group)} calls with input >= {rules.long_input} tokens and no cache reads; "
                     f"assumes the {len(repeats)} after the first repeat their whole input ({tokens} tokens) as a "
                     f"cached prefix, billed at {price.id}'s cache_read price instead of input ({cost} -> "
                     f"{cached}); ignores cache-write surcharges and expiry"),
                details={"cacheable_input_tokens": tokens, "cached_cost": cached}))
    return hints


def batch(calls: Sequence[Call], catalog: Any, rules: Rules) -> List[Hint]:
    hints = []
    eligible = [c for c in calls if _priced(c) and (c.service_tier or "").lower() != "batch"]
    for (service, provider, model, operation), group in _groups(eligible, _model_key).items():
        price = _price(catalog, model, None if provider == NONE else provider)
        if price is None or len(group) < rules.min_batch_calls:
            continue
        if any("batch" not in price.at(_ns(c)).service_tiers for c in group):
            continue
        cost = sum((c.cost or ZERO for c in group), ZERO)
        batched = sum((compute_cost(_usage(c), price, "batch", at=_ns(c)).total for c in group), ZERO)
        if batched >= cost:
            continue
        hints.append(Hint(
            "batch", service, provider, model, operation, len(group), cost, cost - batched,
            suggestion="if these calls can wait (up to 24 h), send them through the provider's batch API",
            how=(f"{len(group)} calls (>= {rules.min_batch_calls}; the ledger does not record streaming or "
                 f"interactivity: judge whether they can wait) cost {cost}; the same tokens at {price.id}'s "
                 f"batch-tier catalog prices cost {batched}"),
            details={"batch_cost": batched}))
    return hints


def max_tokens(calls: Sequence[Call], rules: Rules) -> List[Hint]:
    hints = []
    over = [c for c in calls if c.ok and c.estimate_output_tokens is not None and c.estimate is not None
            and c.cost is not None and c.estimate_output_tokens >= rules.reservation_ratio * max(c.output_tokens, 1)]
    for (service, provider, model, operation), group in _groups(over, _model_key).items():
        reserved = sum(c.estimate_output_tokens or 0 for c in group)
        used = sum(c.output_tokens for c in group)
        estimate = sum((c.estimate or ZERO for c in group), ZERO)
        cost = sum((c.cost or ZERO for c in group), ZERO)
        most = max(c.output_tokens for c in group)
        if estimate <= cost:  # the estimate's input fell short of the actual input: nothing was held
            continue
        hints.append(Hint(
            "max_tokens", service, provider, model, operation, len(group), estimate, ZERO, held=estimate - cost,
            suggestion=f"lower max_tokens (the most these calls produced: {most} output tokens)",
            how=(f"{len(group)} calls reserved {reserved} output tokens (max_tokens, >= {rules.reservation_ratio}x "
                 f"what they produced) and produced {used}; their worst-case estimates ({estimate}) held "
                 f"{estimate - cost} more budget than they settled (their cost) while they ran: capacity, not money"),
            details={"reserved_output_tokens": reserved, "used_output_tokens": used, "max_output_tokens": most}))
    return hints


def recommend(calls: Iterable[Call], catalog: Any = None, rules: Rules = Rules()) -> List[Hint]:
    """Every hint: the money hints by saving (largest first), then the max_tokens hints by capacity held."""
    if catalog is None:
        from ..pricing import default_catalog

        catalog = default_catalog()
    calls = list(calls)
    money = cheaper_model(calls, catalog, rules) + prompt_cache(calls, catalog, rules) + batch(calls, catalog, rules)
    money.sort(key=lambda h: (-h.saving, h.kind, h.service, h.model))
    capacity = sorted(max_tokens(calls, rules), key=lambda h: (-h.held, h.service, h.model))
    return money + capacity

