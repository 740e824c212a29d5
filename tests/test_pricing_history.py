"""Dated prices: a catalog entry's ``effective_from`` and ``price_history``, and the call time that picks
the price period (``ModelPrice.at``, ``compute_cost(at=)``, the span start time in the SDK path and in
``CostEnrichingSpanExporter``). Also: retired models priced from the provider's published price.

Expected costs are tokens x the provider's published price per million (source next to each number).
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict

import httpx2
import pytest
import yaml
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from _fake_openai import FakeOpenAI, chat_completion
from otel_ai_cost import CostEnrichingSpanExporter
from otel_ai_cost import _semconv as sc
from otel_ai_cost.cost import Usage, compute_cost, cost_attributes
from otel_ai_cost.errors import CatalogError
from otel_ai_cost.pricing import Catalog, default_catalog
from otel_ai_cost.pricing._catalog import model_from_dict, model_to_dict
from otel_ai_cost.pricing._model import call_day

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
MILLION = Decimal(1_000_000)

# gpt-4o (the alias): $5/$15 per M from its launch (https://openai.com/index/hello-gpt-4o/), $2.50/$10 once it
# pointed to gpt-4o-2024-08-06 on 2024-10-02 (https://platform.openai.com/docs/changelog).
DATED = {
    "id": "gpt-4o", "provider": "openai", "prices": {"input": "2.5", "output": "10"}, "effective_from": "2024-10-02",
    "price_history": [{"effective_from": "2024-05-13", "prices": {"input": "5", "output": "15"},
                       "service_tiers": {"batch": {"input": "2.5", "output": "7.5"}},
                       "source": "https://openai.com/index/hello-gpt-4o/"}],
}


def _ns(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=UTC).timestamp()) * 1_000_000_000


def _write(tmp_path: Path, models: Any) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"schema_version": 1, "models": models}), encoding="utf-8")
    return path


# --- picking the period -------------------------------------------------------------------------


@pytest.mark.parametrize("when,input_price", [
    (dt.date(2024, 1, 1), "5"),                          # before the first period: the first period
    (dt.date(2024, 5, 13), "5"),
    (_ns(2024, 10, 1, 23, 59, 59), "5"),                 # the last second before the change (UTC)
    (_ns(2024, 10, 2), "2.5"),                           # the change day
    (dt.datetime(2024, 10, 1, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))), "2.5"),  # 01:00 UTC on 10-02
    (dt.datetime(2024, 10, 1, 23, 0), "5"),              # naive: read as UTC
    (None, "2.5"),                                       # now
])
def test_at_picks_the_period_in_force_on_the_calls_utc_day(when, input_price):
    model = model_from_dict(DATED)
    assert model.at(when).prices.input == Decimal(input_price)
    assert model.at(when).id == "gpt-4o"


def test_call_day_is_the_utc_day():
    assert call_day(_ns(2024, 10, 2)) == "2024-10-02"
    assert call_day(_ns(2024, 10, 2) - 1) == "2024-10-01"
    today = dt.datetime.now(UTC).date().isoformat()
    assert call_day(None) == call_day(0) == call_day(-5) == call_day(2**100) == today  # no usable start time: now
    with pytest.raises(TypeError):
        call_day(True)  # type: ignore[arg-type]


def test_compute_cost_at_before_on_and_after_the_change():
    model = model_from_dict(DATED)
    usage = Usage(input_tokens=1000, output_tokens=1000)
    # 1000 x $5/M + 1000 x $15/M = 0.02 before; 1000 x $2.50/M + 1000 x $10/M = 0.0125 from 2024-10-02.
    assert compute_cost(usage, model, at=dt.date(2024, 9, 30)).total == Decimal("0.02")
    assert compute_cost(usage, model, at=dt.date(2024, 10, 2)).total == Decimal("0.0125")
    assert compute_cost(usage, model, at=dt.date(2025, 1, 1)).total == Decimal("0.0125")
    assert compute_cost(usage, model).total == Decimal("0.0125")
    # A past period's service tier: batch in July 2024, 1000 x $2.50/M + 1000 x $7.50/M = 0.01.
    batch = compute_cost(usage, model, "batch", at=dt.date(2024, 7, 1))
    assert (batch.total, batch.service_tier) == (Decimal("0.01"), "batch")


def test_cost_attributes_at():
    catalog = Catalog([model_from_dict(DATED)], "test")
    attrs = cost_attributes(Usage(input_tokens=1000, output_tokens=1000), provider="openai", request_model="gpt-4o",
                            response_model=None, catalog=catalog, at=_ns(2024, 9, 1))
    assert attrs[sc.GEN_AI_USAGE_COST_AMOUNT] == 0.02
    assert attrs[sc.AI_COST_COST_INPUT] == 0.005 and attrs[sc.AI_COST_PRICING_MODEL] == "gpt-4o"


def test_round_trip_and_user_file(tmp_path):
    model = model_from_dict(DATED)
    assert model_from_dict(model_to_dict(model)) == model
    catalog = Catalog.load(_write(tmp_path, [DATED]))  # a user override file with dated prices
    assert catalog.version.endswith("+user")
    entry = catalog.resolve("gpt-4o", "openai")
    assert entry is not None and entry.at(dt.date(2024, 6, 1)).prices.output == Decimal("15")


# --- malformed dates and overlaps fail at load, naming file, key and reason ---------------------


def _with(**changes: Any) -> Dict[str, Any]:
    entry = json.loads(json.dumps(DATED))
    entry.update(changes)
    return entry


@pytest.mark.parametrize("entry,key,reason", [
    (_with(effective_from="2024-13-01"), "models[0].effective_from", "not a calendar date"),
    (_with(effective_from="2024/10/02"), "models[0].effective_from", "does not match"),
    (_with(price_history=[{"effective_from": "2024-02-30", "prices": {"input": "5"}}]),
     "models[0].price_history[0].effective_from", "not a calendar date"),
    ({k: v for k, v in DATED.items() if k != "effective_from"}, "models[0].effective_from",
     "required when price_history is given"),
    (_with(price_history=[{"effective_from": "2024-10-02", "prices": {"input": "5"}}]),
     "models[0].price_history[0].effective_from", "price periods overlap"),
    (_with(price_history=[{"effective_from": "2024-12-01", "prices": {"input": "5"}}]),
     "models[0].price_history[0].effective_from", "not before the current prices' effective_from 2024-10-02"),
    (_with(price_history=[{"effective_from": "2024-06-01", "prices": {"input": "5"}},
                          {"effective_from": "2024-06-01", "prices": {"input": "4"}}]),
     "models[0].price_history[1].effective_from", "price periods overlap"),
    (_with(price_history=[{"effective_from": "2024-06-01", "prices": {"input": "5"}},
                          {"effective_from": "2024-05-01", "prices": {"input": "4"}}]),
     "models[0].price_history[1].effective_from", "oldest first"),
    (_with(price_history=[{"prices": {"input": "5"}}]), "models[0].price_history[0]", "'effective_from' is a required"),
    (_with(price_history=[{"effective_from": "2024-06-01", "prices": {"input": "-5"}}]),
     "models[0].price_history[0].prices.input", "price must be"),
    (_with(price_history=[{"effective_from": "2024-06-01", "prices": {"input": "5"}, "mode": "chat"}]),
     "models[0].price_history[0]", "Additional properties"),
    (_with(price_history=[{"effective_from": "2024-06-01", "prices": {"input": "5"}, "context_tiers": [
        {"above_input_tokens": 200, "prices": {"input": "6"}},
        {"above_input_tokens": 100, "prices": {"input": "7"}}]}]),
     "models[0].price_history[0].context_tiers[1].above_input_tokens", "strictly ascending"),
])
def test_malformed_dated_prices_fail_at_load(tmp_path, entry, key, reason):
    path = _write(tmp_path, [entry])
    with pytest.raises(CatalogError) as info:
        Catalog.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}"), message
    assert reason in message, message


def _build_catalog():
    spec = importlib.util.spec_from_file_location("build_catalog", ROOT / "scripts" / "build_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_yaml_source_checks_dated_prices_too(tmp_path):
    build = _build_catalog()
    model = {k: v for k, v in DATED.items() if k != "provider"}
    model.update(source="https://openai.com/api/pricing/", prices_checked="2026-12-04")
    path = tmp_path / "openai.yaml"
    path.write_text(yaml.safe_dump({"provider": "openai", "pricing_url": "https://openai.com/api/pricing/",
                                    "models": [model]}), encoding="utf-8")
    assert build.read_provider(path)[0]["price_history"][0]["effective_from"] == "2024-05-13"
    model["price_history"][0]["prices"]["input"] = 5  # a YAML number, not the reviewed decimal string
    path.write_text(yaml.safe_dump({"provider": "openai", "pricing_url": "https://openai.com/api/pricing/",
                                    "models": [model]}), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"openai.yaml: models\[0\].price_history\[0\].prices.input: price must be a "
                                           r"decimal string"):
        build.read_provider(path)
    model["price_history"][0]["prices"]["input"] = "5"
    model["price_history"][0]["effective_from"] = "2024-11-01"
    path.write_text(yaml.safe_dump({"provider": "openai", "pricing_url": "https://openai.com/api/pricing/",
                                    "models": [model]}), encoding="utf-8")
    with pytest.raises(CatalogError,
                       match=r"openai.yaml: models\[0\].price_history\[0\].effective_from: price periods"):
        build.read_provider(path)


def test_a_litellm_proposal_keeps_our_dated_prices():
    spec = importlib.util.spec_from_file_location("propose_prices", ROOT / "scripts" / "propose_prices.py")
    propose = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(propose)  # type: ignore[union-attr]
    ours = yaml.safe_load((ROOT / "pricing" / "openai.yaml").read_text(encoding="utf-8"))
    gpt_4o = next(m for m in ours["models"] if m["id"] == "gpt-4o")
    theirs = {"provider": "openai", "id": "gpt-4o", "prices": {"input": "2.4", "output": "10"}}
    kept: list = []
    new = propose.propose_model(gpt_4o, theirs, "litellm 9.9.9", "2026-12-05", kept)
    assert new is not None and new["prices"]["input"] == "2.4"  # proposed for review...
    assert new["price_history"] == gpt_4o["price_history"] and new["effective_from"] == "2024-10-02"  # ...history kept


# --- the bundled catalog's dated prices -----------------------------------------------------------


@pytest.mark.parametrize("provider,model,day,usage,expected", [
    # gpt-4o: 1000 x $5/M + 1000 x $15/M before 2024-10-02; 1000 x $2.50/M + 1000 x $10/M from then.
    ("openai", "gpt-4o", "2024-10-01", Usage(1000, 1000), "0.02"),
    ("openai", "gpt-4o", "2024-10-02", Usage(1000, 1000), "0.0125"),
    # o3, cut 80% on 2025-06-10: $10/$40 before, $2/$8 after (https://platform.openai.com/docs/changelog).
    ("openai", "o3-2025-04-16", "2025-06-09", Usage(1000, 1000), "0.05"),
    ("openai", "o3-2025-04-16", "2025-06-10", Usage(1000, 1000), "0.01"),
    # Gemini 1.5 Flash, cut on 2024-08-12: $0.35/$1.05 before, $0.075/$0.30 after (Google for Developers blog),
    # prompts up to 128k: 100k x $0.35/M + 100k x $1.05/M = 0.14; 100k x $0.075/M + 100k x $0.30/M = 0.0375.
    ("gcp.gemini", "gemini-1.5-flash", "2024-08-11", Usage(100_000, 100_000), "0.14"),
    ("gcp.gemini", "gemini-1.5-flash", "2024-08-12", Usage(100_000, 100_000), "0.0375"),
    # deepseek-chat: $0.14/$0.28 (V3 promotion) until 2025-02-08, $0.27/$1.10 from 2025-02-09 (api-docs.deepseek.com).
    ("deepseek", "deepseek-chat", "2025-02-08", Usage(1_000_000, 1_000_000), "0.42"),
    ("deepseek", "deepseek-chat", "2025-02-09", Usage(1_000_000, 1_000_000), "1.37"),
])
def test_bundled_dated_prices(provider, model, day, usage, expected):
    price = default_catalog().resolve(model, provider)
    assert price is not None and price.price_history
    assert compute_cost(usage, price, at=dt.date.fromisoformat(day)).total == Decimal(expected)


def test_every_dated_period_cites_a_source():
    dated = [m for m in default_catalog().entries() if m.price_history]
    assert len(dated) >= 8
    for model in dated:
        assert model.effective_from > model.price_history[-1].effective_from
        for period in model.price_history:
            assert period.source.startswith("https://"), (model.provider, model.id, period.effective_from)


# --- the span start time, in the SDK path and in the exporter ------------------------------------


def test_sdk_path_prices_at_the_span_start_time(openai_instrumentor, span_exporter, monkeypatch):
    # The span starts on 2025-05-01 (the SDK's clock, patched): the call is priced at o3's launch price,
    # not today's. The response names the snapshot o3-2025-04-16, which carries the same dated prices.
    import opentelemetry.sdk.trace as sdk_trace

    monkeypatch.setattr(sdk_trace, "time_ns", lambda: _ns(2025, 5, 1, 12, 0, 0))
    fake = FakeOpenAI(chat=lambda body: httpx2.Response(200, json=chat_completion(model="o3-2025-04-16")))
    fake.client().chat.completions.create(model="o3", messages=[{"role": "user", "content": "hi"}])
    (span,) = span_exporter.get_finished_spans()
    assert span.start_time == _ns(2025, 5, 1, 12, 0, 0)
    attrs = span.attributes
    # Usage 20 in (8 cached), 10 out (4 reasoning), o3 before 2025-06-10 ($10 in, $2.50 cached, $40 out,
    # https://openai.com/index/introducing-o3-and-o4-mini/): 12 x $10/M + 8 x $2.50/M + 6 x $40/M + 4 x $40/M.
    expected = (12 * Decimal(10) + 8 * Decimal("2.5") + 6 * Decimal(40) + 4 * Decimal(40)) / MILLION
    assert expected == Decimal("0.00054")
    assert attrs[sc.GEN_AI_USAGE_COST_AMOUNT] == float(expected)
    assert attrs[sc.AI_COST_PRICING_MODEL] == "o3-2025-04-16"


def test_sdk_path_without_a_patched_clock_prices_today(openai_instrumentor, span_exporter):
    fake = FakeOpenAI(chat=lambda body: httpx2.Response(200, json=chat_completion(model="o3-2025-04-16")))
    fake.client().chat.completions.create(model="o3", messages=[{"role": "user", "content": "hi"}])
    (span,) = span_exporter.get_finished_spans()
    # Today's o3 price ($2 in, $0.50 cached, $8 out, https://developers.openai.com/api/docs/pricing).
    expected = (12 * Decimal(2) + 8 * Decimal("0.5") + 6 * Decimal(8) + 4 * Decimal(8)) / MILLION
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == float(expected)


@pytest.mark.parametrize("start,expected", [
    # 19 in x $5/M + 10 out x $15/M before 2024-10-02; 19 x $2.50/M + 10 x $10/M from then (gpt-4o, see DATED).
    (_ns(2024, 9, 15, 8, 0, 0), Decimal(19) * 5 / MILLION + Decimal(10) * 15 / MILLION),
    (_ns(2024, 10, 2, 0, 0, 1), Decimal(19) * Decimal("2.5") / MILLION + Decimal(10) * 10 / MILLION),
])
def test_exporter_prices_at_the_span_start_time(start, expected):
    inner = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(CostEnrichingSpanExporter(inner)))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2", "2.1b0")
    span = tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, start_time=start, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 19, "gen_ai.usage.output_tokens": 10})
    span.end(end_time=start + 2_000_000_000)  # exported now, years after it started
    (exported,) = inner.get_finished_spans()
    assert exported.start_time == start
    assert exported.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == float(expected)
    assert exported.attributes[sc.AI_COST_PRICING_MODEL] == "gpt-4o"


# --- retired models are priced, with a source --------------------------------------------------------

RETIRED = [
    # (provider, model as users send it, input $/M, output $/M, where the price is published)
    ("anthropic", "claude-3-haiku-20240307", "0.25", "1.25", "docs.anthropic.com"),
    ("anthropic", "claude-3-opus-20240229", "15", "75", "docs.anthropic.com"),
    ("anthropic", "claude-3-sonnet-20240229", "3", "15", "anthropic.com/news/claude-3-family"),
    ("anthropic", "claude-3-5-sonnet-20240620", "3", "15", "docs.anthropic.com"),
    ("anthropic", "claude-3-5-sonnet-20241022", "3", "15", "docs.anthropic.com"),
    ("anthropic", "claude-2.1", "8", "24", "web.archive.org"),
    ("anthropic", "claude-2.0", "8", "24", "web.archive.org"),
    ("anthropic", "claude-instant-1.2", "0.8", "2.4", "web.archive.org"),
    ("cohere", "command-r", "0.15", "0.6", "cohere.com/pricing"),
    ("cohere", "command-r-plus", "2.5", "10", "cohere.com/pricing"),
    ("cohere", "command-r-08-2024", "0.15", "0.6", "litellm"),
    ("cohere", "command-r-plus-08-2024", "2.5", "10", "litellm"),
    ("cohere", "command", "1", "2", "cohere.com/pricing"),
    ("cohere", "command-light", "0.3", "0.6", "cohere.com/pricing"),
    ("groq", "llama3-8b-8192", "0.05", "0.08", "groq.com/pricing"),
    ("groq", "llama3-70b-8192", "0.59", "0.79", "groq.com/pricing"),
    ("groq", "mixtral-8x7b-32768", "0.24", "0.24", "groq.com/pricing"),
    ("openai", "gpt-3.5-turbo-0613", "1.5", "2", "developers.openai.com"),
    ("openai", "gpt-3.5-turbo-16k-0613", "3", "4", "developers.openai.com"),
    ("openai", "gpt-4-0314", "30", "60", "developers.openai.com"),
    ("openai", "gpt-4-32k", "60", "120", "developers.openai.com"),
    ("openai", "gpt-4-vision-preview", "10", "30", "developers.openai.com"),
    ("openai", "text-davinci-003", "20", "20", "web.archive.org"),
    ("openai", "babbage-002", "0.4", "0.4", "developers.openai.com"),
    ("openai", "davinci-002", "2", "2", "developers.openai.com"),
    ("gcp.gemini", "gemini-1.5-flash-latest", "0.075", "0.3", "developers.googleblog.com"),
    ("gcp.gemini", "gemini-1.5-pro-002", "1.25", "5", "developers.googleblog.com"),
    ("gcp.gemini", "gemini-1.5-flash-8b", "0.0375", "0.15", "developers.googleblog.com"),
    ("mistral_ai", "open-mistral-7b", "0.25", "0.25", "web.archive.org"),
    ("mistral_ai", "open-mixtral-8x7b", "0.7", "0.7", "web.archive.org"),
    ("mistral_ai", "open-mixtral-8x22b", "2", "6", "web.archive.org"),
    ("mistral_ai", "mistral-large-2407", "2", "6", "mistral.ai/news"),
]


@pytest.mark.parametrize("provider,model,price_in,price_out,source", RETIRED, ids=[r[1] for r in RETIRED])
def test_retired_models_are_priced_with_a_source(provider, model, price_in, price_out, source):
    attrs = cost_attributes(Usage(input_tokens=4000, output_tokens=1000), provider=provider,
                            request_model=model, response_model=None, catalog=default_catalog())
    assert attrs[sc.AI_COST_PRICING_STATUS] == "priced", attrs
    # 4000 in x input price + 1000 out x output price (per million).
    expected = (4000 * Decimal(price_in) + 1000 * Decimal(price_out)) / MILLION
    assert attrs[sc.GEN_AI_USAGE_COST_AMOUNT] == float(expected)
    entry = default_catalog().resolve(model, provider)
    assert entry is not None and source in entry.source, entry.source


def test_prices_show_lists_the_earlier_prices(capsys):
    from otel_ai_cost.cli import main

    assert main(["prices", "show", "gpt-4o", "--provider", "openai"]) == 0
    out = capsys.readouterr().out
    assert "prices above in force from 2024-10-02" in out
    assert "from 2024-05-13: input=$5/1M, output=$15/1M (https://openai.com/index/hello-gpt-4o/)" in out
    assert "batch: input=$2.5/1M, output=$7.5/1M" in out.split("2024-05-13")[1]


def test_the_generated_ottl_config_carries_the_prices_in_force_today():
    # OTTL has no rule for the call's day: the stock-collector config prices with today's period, not with
    # a price announced for later. A model whose $2/M -> $4/M change is dated 2099: today it is $2/M
    # = 2,000,000,000 femto-USD per token.
    from otel_ai_cost.collector_config import generate

    future = {"id": "m-dated", "provider": "openai", "prices": {"input": "4", "output": "8"},
              "effective_from": "2099-01-01",
              "price_history": [{"effective_from": "2024-01-01", "prices": {"input": "2", "output": "4"}}]}
    text = json.dumps(generate(Catalog([model_from_dict(future)], "test")))
    assert '\\"id\\": \\"m-dated\\", \\"i\\": 2000000000, \\"o\\": 4000000000' in text, text
