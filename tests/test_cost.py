"""Unit tests of the cost engine with hand-built prices. Every expected amount is hand arithmetic."""
from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Dict, Optional

import pytest

from otel_ai_cost import _semconv as sc
from otel_ai_cost import cost as cost_module
from otel_ai_cost.cost import Cost, Usage, compute_cost, cost_attributes, usage_from_attributes
from otel_ai_cost.pricing._model import ContextTier, ModelPrice, PriceSet

D = Decimal


def model(
    prices: PriceSet,
    *,
    service_tiers: Optional[Dict[str, PriceSet]] = None,
    context_tiers: tuple = (),
    mode: str = "chat",
    id: str = "test-model",
) -> ModelPrice:
    return ModelPrice(
        id=id,
        provider="openai",
        mode=mode,
        prices=prices,
        service_tiers=service_tiers or {},
        context_tiers=context_tiers,
    )


def assert_sums(cost: Cost) -> None:
    assert cost.total == sum(cost.breakdown.values(), D(0))
    assert all(amount >= 0 for amount in cost.breakdown.values())


# --- components -------------------------------------------------------------------------------

def test_plain_input_and_output() -> None:
    price = model(PriceSet(input=D("2.50"), output=D("10")))
    cost = compute_cost(Usage(input_tokens=1000, output_tokens=500), price)
    # 1000 x $2.50/M = 0.0025 ; 500 x $10/M = 0.005
    assert cost.breakdown == {"input": D("0.0025"), "output": D("0.005")}
    assert cost.total == D("0.0075")
    assert cost.amount == 0.0075
    assert cost.currency == "USD"
    assert cost.model_id == "test-model"
    assert cost.service_tier is None and cost.context_tier is None


def test_exact_one_token_at_fractional_price() -> None:
    price = model(PriceSet(input=D("0.075"), output=D("0.30")))
    cost = compute_cost(Usage(input_tokens=1), price)
    assert cost.total == D("0.000000075")
    assert str(cost.total) == "7.5E-8"


def test_exactness_no_float_drift() -> None:
    # 0.1 + 0.2 style drift would show here: 3 tokens x $0.1/M + 3 tokens x $0.2/M = 0.0000009
    price = model(PriceSet(input=D("0.1"), output=D("0.2")))
    cost = compute_cost(Usage(input_tokens=3, output_tokens=3), price)
    assert cost.total == D("0.0000009")


def test_large_counts_stay_exact() -> None:
    price = model(PriceSet(input=D("0.000001"), output=D("123456.789")))
    cost = compute_cost(Usage(input_tokens=10**12 + 7, output_tokens=10**9 + 3), price)
    # (10^12+7) x 0.000001 / 10^6 = 1.000000000007
    assert cost.breakdown["input"] == D("1.000000000007")
    # (10^9+3) x 123456.789 / 10^6 = 123456.789 x 1000.000003 = 123456789 + 0.370370367
    assert cost.breakdown["output"] == D("123456789.370370367")
    assert_sums(cost)


def test_cache_read_and_writes_5m_and_1h() -> None:
    price = model(PriceSet(
        input=D("3"), output=D("15"), cache_read=D("0.30"), cache_write=D("3.75"), cache_write_1h=D("6"),
    ))
    usage = Usage(
        input_tokens=100 + 5000 + 2000 + 1000,
        cache_read_input_tokens=5000,
        cache_write_input_tokens=3000,   # 2000 five-minute + 1000 one-hour
        cache_write_1h_input_tokens=1000,
        output_tokens=400,
    )
    cost = compute_cost(usage, price)
    assert cost.breakdown == {
        "input": D("0.0003"),         # 100 x 3/M
        "cache_read": D("0.0015"),    # 5000 x 0.30/M
        "cache_write": D("0.0135"),   # 2000 x 3.75/M = 0.0075 + 1000 x 6/M = 0.006
        "output": D("0.006"),         # 400 x 15/M
    }
    assert cost.total == D("0.0213")


def test_reasoning_priced_apart() -> None:
    price = model(PriceSet(input=D("1"), output=D("4"), reasoning=D("3.5")))
    cost = compute_cost(Usage(input_tokens=0, output_tokens=1000, reasoning_output_tokens=600), price)
    assert cost.breakdown == {"output": D("0.0016"), "reasoning": D("0.0021")}  # 400 x 4 ; 600 x 3.5


def test_audio_tokens_priced_apart() -> None:
    price = model(PriceSet(
        input=D("2.5"), output=D("10"), audio_input=D("40"), audio_output=D("80"),
    ))
    usage = Usage(input_tokens=1000, audio_input_tokens=800, output_tokens=600, audio_output_tokens=500)
    cost = compute_cost(usage, price)
    assert cost.breakdown == {
        "input": D("0.0005"),         # 200 x 2.5
        "output": D("0.001"),         # 100 x 10
        "audio_input": D("0.032"),    # 800 x 40
        "audio_output": D("0.04"),    # 500 x 80
    }


def test_image_input_priced_apart_is_charged_in_input() -> None:
    price = model(PriceSet(input=D("5"), image_input=D("10"), image_output=D("40")))
    usage = Usage(input_tokens=500, image_input_tokens=300, output_tokens=1056, image_output_tokens=1056, images=1)
    cost = compute_cost(usage, price)
    # input: 200 text x 5 = 0.001 + 300 image x 10 = 0.003 ; image: 1056 x 40 = 0.04224
    assert cost.breakdown == {"input": D("0.004"), "image": D("0.04224")}
    assert cost.unpriced == ()   # images priced through their tokens: nothing left out


def test_image_tokens_stay_in_text_when_not_priced_apart() -> None:
    price = model(PriceSet(input=D("1"), output=D("2")))
    usage = Usage(input_tokens=100, image_input_tokens=60, output_tokens=10, image_output_tokens=10)
    cost = compute_cost(usage, price)
    assert cost.breakdown == {"input": D("0.0001"), "output": D("0.00002")}


def test_per_image_and_per_request() -> None:
    price = model(PriceSet(per_image=D("0.04"), per_request=D("0.005")), mode="image_generation")
    cost = compute_cost(Usage(images=3, requests=2), price)
    assert cost.breakdown == {"image": D("0.12"), "request": D("0.010")}
    assert cost.total == D("0.13")


def test_zero_usage_is_zero_with_no_components() -> None:
    price = model(PriceSet(input=D("2.5"), output=D("10")))
    cost = compute_cost(Usage(), price)
    assert cost.breakdown == {}
    assert cost.total == D(0)


def test_free_model_keeps_components_at_zero() -> None:
    price = model(PriceSet(input=D("0"), output=D("0")))
    cost = compute_cost(Usage(input_tokens=10, output_tokens=5), price)
    assert cost.breakdown == {"input": D(0), "output": D(0)}


# --- fallbacks --------------------------------------------------------------------------------

BASE = PriceSet(input=D("2"), output=D("8"))


@pytest.mark.parametrize(
    "usage, component, expected",
    [
        # cache_read -> input: 1000 x 2/M
        (Usage(input_tokens=1000, cache_read_input_tokens=1000), "cache_read", D("0.002")),
        # cache_write -> input
        (Usage(input_tokens=1000, cache_write_input_tokens=1000), "cache_write", D("0.002")),
        # cache_write_1h -> cache_write -> input (no cache_write either)
        (Usage(input_tokens=1000, cache_write_input_tokens=1000, cache_write_1h_input_tokens=1000),
         "cache_write", D("0.002")),
        # reasoning -> output: 1000 x 8/M
        (Usage(output_tokens=1000, reasoning_output_tokens=1000), "reasoning", D("0.008")),
        # audio_input -> input
        (Usage(input_tokens=1000, audio_input_tokens=1000), "audio_input", D("0.002")),
        # audio_output -> output
        (Usage(output_tokens=1000, audio_output_tokens=1000), "audio_output", D("0.008")),
    ],
)
def test_fallbacks(usage: Usage, component: str, expected: Decimal) -> None:
    cost = compute_cost(usage, model(BASE))
    assert cost.breakdown == {component: expected}


def test_cache_write_1h_falls_back_to_cache_write_before_input() -> None:
    price = model(PriceSet(input=D("3"), cache_write=D("3.75")))
    usage = Usage(input_tokens=1000, cache_write_input_tokens=1000, cache_write_1h_input_tokens=1000)
    assert compute_cost(usage, price).breakdown == {"cache_write": D("0.00375")}


def test_missing_price_without_fallback_charges_nothing_and_says_so() -> None:
    embedding = model(PriceSet(input=D("0.02")), mode="embedding")
    cost = compute_cost(Usage(input_tokens=1000, output_tokens=7), embedding)
    assert cost.breakdown == {"input": D("0.00002")}
    assert cost.unpriced == ("output",)
    images = compute_cost(Usage(images=2), model(PriceSet(input=D("1"))))
    assert images.breakdown == {} and images.unpriced == ("image",)


# --- service tiers ----------------------------------------------------------------------------

TIERED = model(
    PriceSet(input=D("1.25"), output=D("10"), cache_read=D("0.125")),
    service_tiers={
        "batch": PriceSet(input=D("0.625"), output=D("5")),
        "flex": PriceSet(input=D("0.625"), output=D("5"), cache_read=D("0.0625")),
        "priority": PriceSet(input=D("2.5"), output=D("20"), cache_read=D("0.25")),
    },
)
TIER_USAGE = Usage(input_tokens=2000, cache_read_input_tokens=1000, output_tokens=100)


def test_service_tier_prices() -> None:
    cost = compute_cost(TIER_USAGE, TIERED, "priority")
    # 1000 x 2.5 + 1000 x 0.25 + 100 x 20
    assert cost.breakdown == {"input": D("0.0025"), "cache_read": D("0.00025"), "output": D("0.002")}
    assert cost.service_tier == "priority"


def test_service_tier_field_missing_falls_back_to_base_field() -> None:
    cost = compute_cost(TIER_USAGE, TIERED, "batch")
    # batch has no cache_read: base cache_read 0.125 (not batch input 0.625)
    assert cost.breakdown == {"input": D("0.000625"), "cache_read": D("0.000125"), "output": D("0.0005")}
    assert cost.service_tier == "batch"


@pytest.mark.parametrize("name", [None, "", "default", "auto", "standard", "scale", "Default", "turbo"])
def test_base_and_unknown_service_tiers_use_base_prices(name: Optional[str]) -> None:
    cost = compute_cost(TIER_USAGE, TIERED, name)
    assert cost.breakdown == {"input": D("0.00125"), "cache_read": D("0.000125"), "output": D("0.001")}
    assert cost.service_tier is None


def test_tier_the_model_does_not_price_uses_base() -> None:
    cost = compute_cost(TIER_USAGE, model(PriceSet(input=D("1"), output=D("1"))), "flex")
    assert cost.service_tier is None
    assert cost.total == D("0.0021")  # 2000 x 1 + 100 x 1


def test_service_tier_name_is_case_insensitive() -> None:
    assert compute_cost(TIER_USAGE, TIERED, "FLEX").service_tier == "flex"


# --- context tiers ----------------------------------------------------------------------------

LONG = model(
    PriceSet(input=D("3"), output=D("15"), cache_read=D("0.30"), cache_write=D("3.75")),
    service_tiers={"batch": PriceSet(input=D("1.5"), output=D("7.5"))},
    context_tiers=(
        ContextTier(
            above_input_tokens=200_000,
            prices=PriceSet(input=D("6"), output=D("22.5"), cache_read=D("0.60")),
            service_tiers={"batch": PriceSet(input=D("3"))},
        ),
    ),
)


def test_exactly_at_threshold_is_base() -> None:
    cost = compute_cost(Usage(input_tokens=200_000, output_tokens=1000), LONG)
    assert cost.context_tier is None
    assert cost.breakdown == {"input": D("0.6"), "output": D("0.015")}


def test_one_above_threshold_prices_whole_request_at_tier() -> None:
    usage = Usage(input_tokens=200_001, cache_read_input_tokens=100_000, cache_write_input_tokens=1, output_tokens=1000)
    cost = compute_cost(usage, LONG)
    assert cost.context_tier == 200_000
    assert cost.breakdown == {
        "input": D("0.6"),               # 100000 x 6
        "cache_read": D("0.06"),         # 100000 x 0.60
        "cache_write": D("0.00000375"),  # tier has no cache_write: base 3.75
        "output": D("0.0225"),           # 1000 x 22.5
    }


def test_threshold_counts_cached_input() -> None:
    usage = Usage(input_tokens=250_000, cache_read_input_tokens=240_000, output_tokens=0)
    assert compute_cost(usage, LONG).context_tier == 200_000


def test_context_and_service_tier_chain() -> None:
    cost = compute_cost(Usage(input_tokens=300_000, output_tokens=1000), LONG, "batch")
    # input: tier.batch 3 ; output: tier 22.5 (before base batch 7.5)
    assert cost.breakdown == {"input": D("0.9"), "output": D("0.0225")}
    assert cost.service_tier == "batch" and cost.context_tier == 200_000


def test_context_tier_then_base_service_tier() -> None:
    price = model(
        PriceSet(input=D("1"), output=D("2"), cache_read=D("0.1")),
        service_tiers={"batch": PriceSet(input=D("0.5"), output=D("1"), cache_read=D("0.05"))},
        context_tiers=(ContextTier(above_input_tokens=10, prices=PriceSet(input=D("4"))),),
    )
    usage = Usage(input_tokens=11, cache_read_input_tokens=1, output_tokens=1)
    cost = compute_cost(usage, price, "batch")
    # input: tier 4 ; cache_read: base batch 0.05 ; output: base batch 1
    assert cost.breakdown == {"input": D("0.00004"), "cache_read": D("0.00000005"), "output": D("0.000001")}


def test_highest_matching_context_tier_wins() -> None:
    price = model(
        PriceSet(input=D("1"), output=D("1")),
        context_tiers=(
            ContextTier(above_input_tokens=272_000, prices=PriceSet(input=D("3"))),
            ContextTier(above_input_tokens=128_000, prices=PriceSet(input=D("2"))),
        ),
    )
    assert compute_cost(Usage(input_tokens=200_000), price).context_tier == 128_000
    assert compute_cost(Usage(input_tokens=300_000), price).context_tier == 272_000
    assert compute_cost(Usage(input_tokens=300_000), price).total == D("0.9")


# --- clamping ---------------------------------------------------------------------------------

def test_cache_read_above_input_is_clamped() -> None:
    price = model(PriceSet(input=D("2"), output=D("8"), cache_read=D("0.5")))
    cost = compute_cost(Usage(input_tokens=100, cache_read_input_tokens=150), price)
    assert cost.breakdown == {"cache_read": D("0.000075")}  # uncached input clamped to 0
    assert_sums(cost)


def test_reasoning_above_output_and_negative_counts_are_clamped() -> None:
    price = model(PriceSet(input=D("2"), output=D("8")))
    cost = compute_cost(Usage(input_tokens=-5, output_tokens=10, reasoning_output_tokens=50), price)
    assert cost.breakdown == {"reasoning": D("0.0004")}  # 50 x 8 ; text output clamped to 0
    assert_sums(cost)


def test_cache_write_1h_above_total_writes() -> None:
    price = model(PriceSet(input=D("3"), cache_write=D("3.75"), cache_write_1h=D("6")))
    cost = compute_cost(Usage(input_tokens=1000, cache_write_input_tokens=0, cache_write_1h_input_tokens=1000), price)
    assert cost.breakdown == {"cache_write": D("0.006")}


# --- cost_attributes --------------------------------------------------------------------------

class FakeCatalog:
    version = "test-2026-11-23"

    def __init__(self, models: Dict[str, ModelPrice]) -> None:
        self.models = models
        self.calls: list = []

    def resolve(self, name: str, provider: Optional[str] = None) -> Optional[ModelPrice]:
        self.calls.append((name, provider))
        return self.models.get(name)


GPT = model(PriceSet(input=D("2.5"), output=D("10"), cache_read=D("1.25")), id="gpt-4o")


def test_cost_attributes_priced() -> None:
    catalog = FakeCatalog({"gpt-4o": GPT})
    attrs = cost_attributes(
        Usage(input_tokens=2000, cache_read_input_tokens=1000, output_tokens=100),
        provider="openai", request_model="gpt-4o", response_model="gpt-4o-2099-01-01", catalog=catalog,
    )
    assert catalog.calls == [("gpt-4o-2099-01-01", "openai"), ("gpt-4o", "openai")]
    assert attrs == {
        sc.GEN_AI_USAGE_COST_AMOUNT: 0.00475,  # 1000 x 2.5 + 1000 x 1.25 + 100 x 10
        sc.GEN_AI_USAGE_COST_CURRENCY: "USD",
        sc.GEN_AI_USAGE_COST_SOURCE: "local",
        sc.AI_COST_COST_INPUT: 0.0025,
        sc.AI_COST_COST_CACHE_READ: 0.00125,
        sc.AI_COST_COST_OUTPUT: 0.001,
        sc.AI_COST_PRICING_STATUS: "priced",
        sc.AI_COST_PRICING_CATALOG_VERSION: "test-2026-11-23",
        sc.AI_COST_PRICING_MODEL: "gpt-4o",
    }
    assert all(isinstance(v, float) for k, v in attrs.items() if k.startswith("ai_cost.cost."))


def test_cost_attributes_response_model_first() -> None:
    other = model(PriceSet(input=D("1")), id="gpt-4o-snapshot")
    catalog = FakeCatalog({"gpt-4o": GPT, "gpt-4o-snapshot": other})
    attrs = cost_attributes(Usage(input_tokens=1000), provider="openai", request_model="gpt-4o",
                            response_model="gpt-4o-snapshot", catalog=catalog)
    assert attrs[sc.AI_COST_PRICING_MODEL] == "gpt-4o-snapshot"
    assert attrs[sc.GEN_AI_USAGE_COST_AMOUNT] == 0.001


def test_cost_attributes_tiers_reported() -> None:
    catalog = FakeCatalog({"long": LONG})
    attrs = cost_attributes(Usage(input_tokens=300_000), provider="anthropic", request_model="long",
                            response_model=None, service_tier="batch", catalog=catalog)
    assert attrs[sc.AI_COST_PRICING_SERVICE_TIER] == "batch"
    assert attrs[sc.AI_COST_PRICING_CONTEXT_TIER] == 200_000
    assert attrs[sc.GEN_AI_USAGE_COST_AMOUNT] == 0.9


def test_cost_attributes_unknown_model_has_no_amount() -> None:
    attrs = cost_attributes(Usage(input_tokens=10, output_tokens=10), provider="openai",
                            request_model="my-finetune", response_model="my-finetune-2",
                            catalog=FakeCatalog({}))
    assert attrs == {
        sc.AI_COST_PRICING_STATUS: "unknown_model",
        sc.AI_COST_PRICING_CATALOG_VERSION: "test-2026-11-23",
    }


def test_cost_attributes_no_model_is_unknown() -> None:
    attrs = cost_attributes(Usage(input_tokens=1), provider=None, request_model=None, response_model=None,
                            catalog=FakeCatalog({"gpt-4o": GPT}))
    assert attrs[sc.AI_COST_PRICING_STATUS] == "unknown_model"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in attrs


def test_cost_attributes_without_usage() -> None:
    attrs = cost_attributes(None, provider="openai", request_model="gpt-4o", response_model=None,
                            catalog=FakeCatalog({"gpt-4o": GPT}))
    assert attrs == {sc.AI_COST_PRICING_STATUS: "no_usage"}


class ExplodingCatalog:
    version = "boom"

    def resolve(self, name: str, provider: Optional[str] = None) -> Any:
        raise RuntimeError("catalog exploded")


@pytest.mark.parametrize(
    "usage, catalog",
    [
        (Usage(input_tokens=1), ExplodingCatalog()),
        ("not a usage", FakeCatalog({"gpt-4o": GPT})),
        (Usage(input_tokens=1), FakeCatalog({"gpt-4o": "not a price"})),  # type: ignore[dict-item]
        (Usage(input_tokens=1), object()),
    ],
)
def test_cost_attributes_never_raises(usage: Any, catalog: Any, caplog: pytest.LogCaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost_module, "_logged_failure", False)
    with caplog.at_level(logging.DEBUG, logger="otel_ai_cost.cost"):
        first = cost_attributes(usage, provider="openai", request_model="gpt-4o", response_model=None,
                                catalog=catalog)
        second = cost_attributes(usage, provider="openai", request_model="gpt-4o", response_model=None,
                                 catalog=catalog)
    assert first == {} and second == {}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # logged once


def test_cost_attributes_with_garbage_counts_does_not_raise() -> None:
    usage = Usage(input_tokens="12", output_tokens=None, cache_read_input_tokens=object())  # type: ignore[arg-type]
    attrs = cost_attributes(usage, provider="openai", request_model="gpt-4o", response_model=None,
                            catalog=FakeCatalog({"gpt-4o": GPT}))
    assert attrs[sc.GEN_AI_USAGE_COST_AMOUNT] == 0.00003  # "12" read as 12 x 2.5


# --- usage_from_attributes --------------------------------------------------------------------

def test_usage_from_attributes_new_names() -> None:
    usage = usage_from_attributes({
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        "gen_ai.usage.cache_read.input_tokens": 300,
        "gen_ai.usage.cache_write.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 50,
    })
    assert usage == Usage(input_tokens=1000, output_tokens=200, cache_read_input_tokens=300,
                          cache_write_input_tokens=100, reasoning_output_tokens=50)


def test_usage_from_attributes_deprecated_cache_creation_name() -> None:
    usage = usage_from_attributes({
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.cache_creation.input_tokens": 7,
    })
    assert usage == Usage(input_tokens=10, cache_write_input_tokens=7)


def test_usage_from_attributes_prefers_new_cache_write_name() -> None:
    usage = usage_from_attributes({
        "gen_ai.usage.output_tokens": 1,
        "gen_ai.usage.cache_write.input_tokens": 9,
        "gen_ai.usage.cache_creation.input_tokens": 7,
    })
    assert usage is not None and usage.cache_write_input_tokens == 9 and usage.input_tokens == 0


def test_usage_from_attributes_deprecated_prompt_completion_names() -> None:
    usage = usage_from_attributes({"gen_ai.usage.prompt_tokens": 3, "gen_ai.usage.completion_tokens": 4})
    assert usage == Usage(input_tokens=3, output_tokens=4)


@pytest.mark.parametrize(
    "attrs",
    [{}, {"gen_ai.usage.cache_read.input_tokens": 5}, {"gen_ai.usage.input_tokens": "many"},
     {"gen_ai.usage.input_tokens": True}],
)
def test_usage_from_attributes_none_without_input_or_output(attrs: Dict[str, Any]) -> None:
    assert usage_from_attributes(attrs) is None


def test_usage_from_attributes_garbage_mapping() -> None:
    assert usage_from_attributes(None) is None  # type: ignore[arg-type]


def test_cost_attributes_usage_without_any_price_is_unpriced_not_zero() -> None:
    # An image model the catalog prices per pixel (which it cannot hold): nothing of this usage has a price.
    pixel_priced = model(PriceSet(output=D("0")), id="dall-e-3", mode="image_generation")
    attrs = cost_attributes(Usage(images=1), provider="azure.ai.openai", request_model="dall-e-3",
                            response_model=None, catalog=FakeCatalog({"dall-e-3": pixel_priced}))
    assert attrs == {
        sc.AI_COST_PRICING_STATUS: "unpriced",
        sc.AI_COST_PRICING_CATALOG_VERSION: "test-2026-11-23",
        sc.AI_COST_PRICING_MODEL: "dall-e-3",
    }


def test_cost_attributes_partly_priced_usage_is_marked_partial() -> None:
    text_only = model(PriceSet(input=D("1")), id="text-only")
    attrs = cost_attributes(Usage(input_tokens=1000, images=2), provider="openai", request_model="text-only",
                            response_model=None, catalog=FakeCatalog({"text-only": text_only}))
    assert attrs[sc.AI_COST_PRICING_STATUS] == "partial"
    assert attrs[sc.GEN_AI_USAGE_COST_AMOUNT] == 0.001  # 1000 x $1/M; the two images have no price


# --- the plain-usage path (text, cache reads, reasoning) gives the general path's Decimals -----------


_PLAIN_PRICE = ModelPrice(
    id="plain-model", provider="openai", mode="chat",
    # $/1M tokens, made up: odd digits so that every product and quotient keeps its exponent visible
    prices=PriceSet(input=Decimal("2.50"), cache_read=Decimal("1.25"), output=Decimal("10"),
                    reasoning=Decimal("12.5"), per_request=Decimal("0.0004")),
    service_tiers={"batch": PriceSet(input=Decimal("1.250"), output=Decimal("5.00"))},
    context_tiers=(ContextTier(above_input_tokens=1000, prices=PriceSet(input=Decimal("5"), output=Decimal("20"))),),
)


@pytest.mark.parametrize("usage", [
    Usage(input_tokens=1342, output_tokens=63, cache_read_input_tokens=1024),
    Usage(input_tokens=900, output_tokens=700, reasoning_output_tokens=600),
    Usage(input_tokens=0, output_tokens=0),
    Usage(input_tokens=10**30, output_tokens=3),  # 31 digits: the fast context would round, so general path
    Usage(input_tokens=5, output_tokens=5, requests=3),
])
@pytest.mark.parametrize("tier", [None, "batch"])
def test_plain_path_gives_the_same_decimals_as_the_general_path(monkeypatch, usage, tier):
    fast = compute_cost(usage, _PLAIN_PRICE, tier)
    monkeypatch.setattr(cost_module, "_plain_cost", lambda *args: None)  # force the general path
    general = compute_cost(usage, _PLAIN_PRICE, tier)
    assert fast == general
    # Same values and the same exponents (str shows both): 1342-1024=318 x 2.50 / 1e6 = 0.000795 etc.
    assert str(fast.total) == str(general.total)
    assert {k: str(v) for k, v in fast.breakdown.items()} == {k: str(v) for k, v in general.breakdown.items()}


def test_plain_path_amounts_by_hand():
    # 318 uncached x $2.50 + 1024 cached x $1.25 + 63 output x $10, per million; + 1 request x $0.0004
    cost = compute_cost(Usage(input_tokens=1342, output_tokens=63, cache_read_input_tokens=1024), _PLAIN_PRICE)
    assert cost.context_tier == 1000  # 1342 > 1000: the context tier's input and output prices
    assert cost.breakdown == {
        "input": Decimal(318) * 5 / 10**6,
        "cache_read": Decimal(1024) * Decimal("1.25") / 10**6,
        "output": Decimal(63) * 20 / 10**6,
        "request": Decimal("0.0004"),
    }
    assert cost.total == sum(cost.breakdown.values())


def test_check_written_init_tells_a_required_field_from_one_defaulting_to_none():
    # Usage and Estimate write their __init__ out for speed; the import-time check compares it with the fields.
    import dataclasses

    from otel_ai_cost._usage import check_written_init

    @dataclasses.dataclass
    class Good:
        a: int
        b: Optional[int] = None

        def __init__(self, a: int, b: Optional[int] = None) -> None:
            self.__dict__.update(a=a, b=b)

    @dataclasses.dataclass
    class RequiredMadeOptional:
        a: int
        b: Optional[int] = None

        def __init__(self, a: Optional[int] = None, b: Optional[int] = None) -> None:
            self.__dict__.update(a=a, b=b)

    @dataclasses.dataclass
    class Reordered:
        a: int = 0
        b: int = 1

        def __init__(self, b: int = 1, a: int = 0) -> None:
            self.__dict__.update(a=a, b=b)

    check_written_init(Good)
    for bad in (RequiredMadeOptional, Reordered):
        with pytest.raises(AssertionError, match=f"{bad.__name__}.__init__ does not match"):
            check_written_init(bad)
