"""Calls to models the pricing catalog does not know, under budgets (issue 8, item 1).

Without a policy such a call would pass every budget at $0. The real ``openai`` SDK talks to the
faked OpenAI API, which answers with the model that was asked for (a self-hosted or brand-new model
the catalog has never heard of).
"""
from __future__ import annotations

import logging
from decimal import Decimal

import httpx2
import pytest
from opentelemetry.trace import SpanKind

from _fake_openai import chat_completion
from otel_ai_cost import BudgetExceededError, ConfigError
from otel_ai_cost.budgets import (
    DEFAULT_UNKNOWN_MODEL,
    Budget,
    BudgetBook,
    MemoryBudgetStore,
    UnknownModelPolicy,
    allow_unknown,
    block_unknown,
    lifetime,
    parse_budget_config,
    price_unknown_as,
)
from otel_ai_cost.budgets._model import to_nanos
from otel_ai_cost.budgets._report import build_report
from otel_ai_cost.cost import Usage
from otel_ai_cost.pricing import default_catalog
from test_budgets_enforcement import Pipeline, pipeline  # noqa: F401 - the fixture

UNKNOWN = "acme-llm-70b-instruct"
USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}


def answering_with_the_requested_model(body):
    return httpx2.Response(200, json=chat_completion(model=body["model"], usage=USAGE))


def unknown_pipeline(pipeline, **kwargs):  # noqa: F811
    p = pipeline(**kwargs)
    p.fake.chat = answering_with_the_requested_model
    return p


def spent(store, budget_id="team", key=""):
    return store.spent(budget_id, key, ["lifetime"]).spent


def fallback_nanos(input_tokens, output_tokens):
    return to_nanos(Decimal(input_tokens) * 10 / 10**6 + Decimal(output_tokens) * 30 / 10**6)


def test_by_default_an_unknown_model_is_priced_at_the_stated_fallback_and_warned_once(pipeline, caplog):  # noqa: F811
    store = MemoryBudgetStore()
    p = unknown_pipeline(pipeline, budgets=[Budget("team", "5", lifetime())], budget_store=store)
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost"):
        p.chat(model=UNKNOWN)
        p.chat(model=UNKNOWN)
    span = p.last()
    assert span.attributes["ai_cost.pricing.status"] == "unknown_model"
    assert "gen_ai.usage.cost.amount" not in span.attributes  # the span does not invent a price
    assert span.attributes["ai_cost.budget.unknown_model"] == "price_as"
    assert span.attributes["ai_cost.budget.priced_as"] == "$10/M input, $30/M output"
    assert span.attributes["ai_cost.budget.decision"] == "allow"
    # The hold was the fallback price of the estimate, not a token amount of $0.000000001.
    estimate = fallback_nanos(span.attributes["ai_cost.estimate.input_tokens"],
                              span.attributes["ai_cost.estimate.output_tokens"])
    reserves = store.ledger(kinds=("reserve",))
    assert [e.amount_nanos for e in reserves] == [estimate, estimate]
    assert reserves[0].attributes["unknown_model"] == "price_as"
    # Each call settled its reported usage at the fallback price.
    assert spent(store) == 2 * fallback_nanos(1200, 300)
    warnings = [r for r in caplog.records if UNKNOWN in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "not in the pricing catalog" in warnings[0].getMessage()
    assert "price as $10/M input, $30/M output" in warnings[0].getMessage()


def test_an_exhausted_budget_refuses_unknown_models_too(pipeline):  # noqa: F811
    store = MemoryBudgetStore()
    # The estimate at the fallback price (~$0.012 for max_tokens=400) fits once: the first call
    # settles $0.021, and the second call's estimate would take the spend past $0.03.
    p = unknown_pipeline(pipeline, budgets=[Budget("team", "0.03", lifetime())], budget_store=store)
    p.chat(model=UNKNOWN)
    with pytest.raises(BudgetExceededError, match="would be exceeded"):
        p.chat(model=UNKNOWN)
    assert len(p.fake.requests) == 1
    assert spent(store) == fallback_nanos(1200, 300)


def test_a_budget_may_refuse_unknown_models_before_the_request_is_sent(pipeline):  # noqa: F811
    store = MemoryBudgetStore()
    p = unknown_pipeline(
        pipeline,
        budgets=[Budget("strict", "5", lifetime(), on_unknown_model=block_unknown()), Budget("team", "5", lifetime())],
        budget_store=store,
    )
    with pytest.raises(BudgetExceededError) as caught:
        p.chat(model=UNKNOWN)
    assert p.fake.requests == []  # never sent
    message = str(caught.value)
    assert UNKNOWN in message and "on_unknown_model: block" in message and "'strict'" in message
    span = p.last()
    assert span.attributes["ai_cost.budget.decision"] == "block"
    assert span.attributes["ai_cost.budget.reason"] == "unknown_model"
    assert span.attributes["ai_cost.budget.unknown_model"] == "block"
    assert span.attributes["ai_cost.budget.id"] == "strict"
    assert span.attributes["error.type"] == "BudgetExceededError"
    # Nothing is held, and the ledger says why the call was refused.
    assert store.spent("strict", "", ["lifetime"]) == store.spent("team", "", ["lifetime"])
    assert store.spent("team", "", ["lifetime"]).reserved == 0
    blocks = store.ledger(kinds=("block",))
    assert [(e.budget_id, e.attributes["reason"], e.attributes["unknown_model"]) for e in blocks] == [
        ("strict", "unknown_model", "block")
    ]
    # Known models still go through the same budgets.
    p.fake.chat = None
    p.chat(model="gpt-4o")
    assert spent(store, "strict") > 0


def test_allow_lets_unknown_models_through_unmetered_and_says_so(pipeline):  # noqa: F811
    store = MemoryBudgetStore()
    p = unknown_pipeline(pipeline, budgets=[Budget("team", "5", lifetime(), on_unknown_model="allow")],
                         budget_store=store)
    p.chat(model=UNKNOWN)
    assert p.last().attributes["ai_cost.budget.unknown_model"] == "allow"
    assert "ai_cost.budget.priced_as" not in p.last().attributes
    assert spent(store) == 0
    (settle,) = store.ledger(kinds=("settle",))
    assert settle.attributes["unknown_model"] == "allow"


def test_price_as_a_catalog_model_counts_the_usage_at_its_price(pipeline):  # noqa: F811
    store = MemoryBudgetStore()
    p = unknown_pipeline(pipeline, budgets=[Budget("team", "5", lifetime(), on_unknown_model={"price_as": "gpt-4o"})],
                         budget_store=store)
    p.chat(model=UNKNOWN)
    # gpt-4o at its list price, $2.50/M input and $10/M output (https://developers.openai.com/api/docs/pricing):
    # 1,200 x $2.50/M + 300 x $10/M = $0.003 + $0.003.
    assert spent(store) == to_nanos(Decimal("0.006"))
    assert p.last().attributes["ai_cost.budget.priced_as"] == "gpt-4o"
    (settle,) = store.ledger(kinds=("settle",))
    assert (settle.attributes["unknown_model"], settle.attributes["priced_as"]) == ("price_as", "gpt-4o")


def test_the_configuration_file_sets_a_default_and_per_budget_policies(pipeline, tmp_path):  # noqa: F811
    config = tmp_path / "otel-ai-cost.yaml"
    config.write_text(
        "on_unknown_model: {price_as: {input: 2, output: 4}}\n"
        "budgets:\n"
        "  - {id: team, limit_usd: 5, window: lifetime}\n"
        "  - {id: free, limit_usd: 5, window: lifetime, on_unknown_model: allow}\n"
        "store: {url: 'memory://'}\n"
    )
    p = unknown_pipeline(pipeline, config_file=str(config))
    p.chat(model=UNKNOWN)
    store = p.processor.budget_book.store
    assert spent(store, "team") == to_nanos(Decimal(1200) * 2 / 10**6 + Decimal(300) * 4 / 10**6)
    assert spent(store, "free") == 0
    # The span reports the strictest policy of the budgets that cover the call.
    assert p.last().attributes["ai_cost.budget.unknown_model"] == "price_as"
    assert p.last().attributes["ai_cost.budget.priced_as"] == "$2/M input, $4/M output"


@pytest.mark.parametrize(
    "value, message",
    [
        ("refuse", "'refuse' is not one of block, allow, price_as"),
        ("price_as", "price_as needs what to price as"),
        ({"price_as": {"input": 2}}, "give a catalog model"),
        ({"price_as": {"input": -1, "output": 2}}, "non-negative"),
        ({"price_as": {"inputs": 1, "output": 2}}, "unknown key 'inputs'"),
        ({"price_as": 3}, "expected a model name"),
    ],
)
def test_a_malformed_policy_names_the_file_key_and_reason(value, message):
    document = {"budgets": [{"id": "team", "limit_usd": 5, "window": "lifetime", "on_unknown_model": value}]}
    with pytest.raises(ConfigError,
                       match="budgets.yaml: budgets\\[0\\].on_unknown_model: .*" + message.replace("(", "\\(")):
        parse_budget_config(document, "budgets.yaml")
    with pytest.raises(ConfigError, match="budgets.yaml: on_unknown_model: "):
        parse_budget_config({"on_unknown_model": value}, "budgets.yaml")


def test_price_as_a_model_the_catalog_does_not_know_fails_at_configuration(pipeline):  # noqa: F811
    with pytest.raises(ConfigError,
                       match="budget 'team': on_unknown_model price_as 'gpt-17' is not a model of the pricing catalog"):
        pipeline(budgets=[Budget("team", "5", lifetime(), on_unknown_model=price_unknown_as("gpt-17"))],
                 budget_store=MemoryBudgetStore())


def test_other_instrumentations_unknown_models_settle_from_their_usage(pipeline):  # noqa: F811
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", "5", lifetime())], budget_store=store)
    tracer = p.provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": UNKNOWN}
    with tracer.start_as_current_span("chat " + UNKNOWN, kind=SpanKind.CLIENT, attributes=attributes) as span:
        span.set_attributes({"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500})
    assert spent(store) == fallback_nanos(1000, 500)


def test_the_report_shows_how_unknown_models_were_counted(pipeline):  # noqa: F811
    store = MemoryBudgetStore()
    p = unknown_pipeline(pipeline, budgets=[Budget("team", "5", lifetime())], budget_store=store)
    p.chat(model=UNKNOWN)
    p.fake.chat = None
    p.chat(model="gpt-4o")
    report = build_report(store, 0, float("inf"), by=["model"])
    rows = {row.group[0]: row for row in report.rows}
    assert rows[UNKNOWN].unknown_model == 1 and rows[UNKNOWN].spend_nanos == fallback_nanos(1200, 300)
    assert sum(r.unknown_model for r in rows.values()) == 1
    assert report.total.unknown_model == 1


def test_the_book_prices_unknown_calls_per_budget_without_a_processor():
    from otel_ai_cost.budgets._unknown import UnknownCall

    store = MemoryBudgetStore()
    book = BudgetBook([Budget("a", "5", lifetime()), Budget("b", "5", lifetime(), on_unknown_model=allow_unknown())],
                      store, on_unknown_model=UnknownModelPolicy("price_as", input_usd=1, output_usd=1))
    call = UnknownCall(UNKNOWN, "openai", Usage(input_tokens=1000, output_tokens=1000), default_catalog())
    reservation = book.reserve({}, "0", unknown=call)
    assert reservation.decision.allowed and reservation.decision.unknown.action == "price_as"
    assert [o.estimate for o in reservation.decision.outcomes] == [Decimal("0.002"), Decimal(0)]
    book.settle(reservation, None, usage=Usage(input_tokens=3000, output_tokens=1000))
    assert spent(store, "a") == to_nanos("0.004") and spent(store, "b") == 0
    assert DEFAULT_UNKNOWN_MODEL.priced_as == "$10/M input, $30/M output"
