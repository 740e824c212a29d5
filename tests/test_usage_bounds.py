"""Usage that cannot be true does not poison a budget (issue 8, item 3c).

A response that reports ``prompt_tokens=10**10`` for a call with ``max_tokens=10``, or
``audio_tokens=1e30``, is bounded by what the model and the request allow before it is priced,
put on the span or settled; the span says which counts were lowered. The real ``openai`` SDK talks
to the faked OpenAI API.
"""
from __future__ import annotations

import logging
from decimal import Decimal

import httpx2
import pytest
from opentelemetry.trace import SpanKind

from _fake_openai import chat_completion
from otel_ai_cost.budgets import Budget, MemoryBudgetStore, SQLiteBudgetStore, lifetime
from otel_ai_cost.budgets._model import to_nanos
from otel_ai_cost.cost import MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, Usage, bound_usage, compute_cost
from otel_ai_cost.pricing import default_catalog
from test_budgets_enforcement import pipeline  # noqa: F401 - the fixture

GPT4O = default_catalog().resolve("gpt-4o", "openai")
# Expectations are computed by hand, not by the catalog under test. gpt-4o: $2.50 per million input
# tokens, $10.00 per million output tokens, a 128,000-token context window
# (https://developers.openai.com/api/docs/pricing, https://platform.openai.com/docs/models/gpt-4o).
GPT4O_MAX_INPUT = 128_000
GPT4O_CONTEXT_AND_10_OUT = Decimal("0.3201")  # 128,000 x $2.50/M + 10 x $10/M = $0.32 + $0.0001
GPT4O_CONTEXT_AND_7_OUT = Decimal("0.32007")  # 128,000 x $2.50/M + 7 x $10/M = $0.32 + $0.00007


def answering(usage):
    return lambda body: httpx2.Response(200, json=chat_completion(model="gpt-4o-2024-08-06", usage=usage))


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_an_impossible_prompt_count_is_bounded_and_does_not_block_the_window(pipeline, tmp_path, store_kind, caplog):  # noqa: F811
    store = MemoryBudgetStore() if store_kind == "memory" else SQLiteBudgetStore(str(tmp_path / "b.db"))
    p = pipeline(budgets=[Budget("team", "5", lifetime())], budget_store=store)
    p.fake.chat = answering({"prompt_tokens": 10**10, "completion_tokens": 10, "total_tokens": 10**10 + 10})
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost"):
        p.chat(max_tokens=10)
        p.chat(max_tokens=10)
    span = p.last()
    assert span.attributes["gen_ai.usage.input_tokens"] == GPT4O_MAX_INPUT
    assert span.attributes["gen_ai.usage.output_tokens"] == 10
    assert list(span.attributes["ai_cost.usage.clamped"]) == ["gen_ai.usage.input_tokens"]
    bounded = GPT4O_CONTEXT_AND_10_OUT
    assert span.attributes["gen_ai.usage.cost.amount"] == float(bounded)
    assert store.spent("team", "", ["lifetime"]).spent == 2 * to_nanos(bounded)
    # The budget is not poisoned: the next call goes through.
    p.fake.chat = None
    p.chat()
    assert "ai_cost.usage.clamped" not in p.last().attributes
    logged = [r for r in caplog.records if "cannot produce" in r.getMessage()]
    assert len(logged) <= 1  # once per process (an earlier test may have logged it already)


def test_output_beyond_max_tokens_is_bounded_by_the_request(pipeline):  # noqa: F811
    p = pipeline()
    p.fake.chat = answering({"prompt_tokens": 20, "completion_tokens": 5000, "total_tokens": 5020,
                             "completion_tokens_details": {"reasoning_tokens": 9000}})
    p.chat(max_tokens=100)
    attributes = p.last().attributes
    assert attributes["gen_ai.usage.output_tokens"] == 100
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 100  # a part is at most its total
    assert set(attributes["ai_cost.usage.clamped"]) == {
        "gen_ai.usage.output_tokens", "gen_ai.usage.reasoning.output_tokens"
    }


def test_absurd_audio_tokens_cannot_settle_trillions(pipeline):  # noqa: F811
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", "5", lifetime())], budget_store=store)
    p.fake.chat = answering({"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30,
                             "prompt_tokens_details": {"audio_tokens": 10**30, "cached_tokens": 0}})
    p.chat()
    spent = store.spent("team", "", ["lifetime"]).spent
    assert 0 < spent < to_nanos("0.01")
    assert "audio_input_tokens" in p.last().attributes["ai_cost.usage.clamped"]


def test_negative_counts_never_reach_the_span(pipeline):  # noqa: F811
    p = pipeline()
    p.fake.chat = answering({"prompt_tokens": -50, "completion_tokens": -3, "total_tokens": -53,
                             "prompt_tokens_details": {"cached_tokens": -8}})
    p.chat()
    attributes = p.last().attributes
    usage = {k: v for k, v in attributes.items() if k.startswith("gen_ai.usage.") and "cost" not in k}
    assert usage and all(v >= 0 for v in usage.values()), usage


def test_other_instrumentations_usage_is_bounded_before_it_settles(pipeline):  # noqa: F811
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", "5", lifetime())], budget_store=store)
    tracer = p.provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                  "gen_ai.request.model": "gpt-4o", "gen_ai.request.max_tokens": 10}
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=attributes) as span:
        span.set_attributes({"gen_ai.usage.input_tokens": 10**10, "gen_ai.usage.output_tokens": 10**9})
    bounded = GPT4O_CONTEXT_AND_10_OUT  # the input bounded by the context, the output by max_tokens=10
    assert store.spent("team", "", ["lifetime"]).spent == to_nanos(bounded)


def test_bound_usage_rules():
    fine = Usage(input_tokens=100, output_tokens=10, cache_read_input_tokens=50)
    assert bound_usage(fine, max_input=1000, max_output=100) == (fine, ())  # the same object, no copy
    assert bound_usage(fine, max_input=1000, max_output=100)[0] is fine
    unknown_model = Usage(input_tokens=10**12, output_tokens=10**12)
    bounded, clamped = bound_usage(unknown_model)
    assert (bounded.input_tokens, bounded.output_tokens) == (MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS)
    assert clamped == ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
    parts = Usage(input_tokens=100, output_tokens=10, cache_read_input_tokens=80, cache_write_input_tokens=500,
                  cache_write_1h_input_tokens=900, images=10**9, web_search_requests=-2)
    bounded, clamped = bound_usage(parts)
    assert (bounded.cache_read_input_tokens, bounded.cache_write_input_tokens, bounded.cache_write_1h_input_tokens) == (
        80, 100, 100)
    assert bounded.images == 10_000 and bounded.web_search_requests == 0
    assert set(clamped) == {"gen_ai.usage.cache_write.input_tokens", "cache_write_1h_input_tokens", "images",
                            "ai_cost.usage.web_search_requests"}
    assert compute_cost(bounded, GPT4O).total < Decimal(1)


def test_the_enriching_exporter_prices_bounded_usage():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_ai_cost import CostEnrichingSpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(CostEnrichingSpanExporter(exporter)))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                  "gen_ai.usage.input_tokens": 10**10, "gen_ai.usage.output_tokens": 7}
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=attributes):
        pass
    (span,) = exporter.get_finished_spans()
    bounded = GPT4O_CONTEXT_AND_7_OUT
    assert span.attributes["gen_ai.usage.cost.amount"] == float(bounded)
    assert list(span.attributes["ai_cost.usage.clamped"]) == ["gen_ai.usage.input_tokens"]
    provider.shutdown()


def test_the_limits_are_those_of_the_entry_that_prices_the_call(instrument_openai, span_exporter):
    # The response names a snapshot in the catalog with an output limit but no context window; the
    # request's model is not in the catalog. The output is bounded by that entry's max_output_tokens
    # (the entry the cost is computed from), not by the global 1M bound.
    from _fake_openai import FakeOpenAI
    from otel_ai_cost.pricing import Catalog
    from otel_ai_cost.pricing._catalog import model_from_dict

    # A user entry, priced here: $1 per M input, $2 per M output, at most 100 output tokens.
    entry = model_from_dict({"id": "house-model-v2", "provider": "openai", "prices": {"input": "1", "output": "2"},
                             "max_output_tokens": 100})
    instrument_openai(catalog=Catalog(list(default_catalog().entries()) + [entry]))
    fake = FakeOpenAI(chat=lambda body: httpx2.Response(200, json=chat_completion(
        model="house-model-v2", usage={"prompt_tokens": 20, "completion_tokens": 5000, "total_tokens": 5020})))
    fake.client().chat.completions.create(model="house-alias", messages=[{"role": "user", "content": "hi"}])
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert a["ai_cost.pricing.model"] == "house-model-v2"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (20, 100)
    assert list(a["ai_cost.usage.clamped"]) == ["gen_ai.usage.output_tokens"]
    assert a["gen_ai.usage.cost.amount"] == float((20 * Decimal(1) + 100 * Decimal(2)) / 1_000_000)  # 220e-6
