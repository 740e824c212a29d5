"""``otel-ai-cost recommend``: optimisation hints from the call ledger, each saving hand-computed.

One ledger is filled with real calls through the real ``openai`` SDK against the faked OpenAI API
(test_ledger's Pipeline); another by the LedgerSpanExporter from spans made with the SDK tracer that
carry the GenAI attributes a priced call has, so that each rule sees the tokens it needs. Expected
amounts are tokens x the catalog's prices per million (pricing/*.yaml, the entries named in comments).
"""
from __future__ import annotations

import csv
import io
import json
from contextlib import closing
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

import httpx2
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from _fake_openai import FakeOpenAI, chat_completion
from otel_ai_cost import _semconv as sc
from otel_ai_cost.cli import main
from otel_ai_cost.config import Settings
from otel_ai_cost.ledger import LedgerSpanExporter
from otel_ai_cost.ledger._recommend import Rules, recommend
from otel_ai_cost.ledger._report import Call
from otel_ai_cost.ledger._store import read_rows
from test_ledger import Pipeline

M = Decimal(1_000_000)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _call(tracer, provider, model, input_tokens, output_tokens, cost_in, cost_out, estimate=None):
    attributes = {
        sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: provider, sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_RESPONSE_MODEL: model, sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens, sc.AI_COST_PRICING_STATUS: "priced",
        sc.AI_COST_PRICING_MODEL: model, sc.GEN_AI_USAGE_COST_AMOUNT: float(cost_in + cost_out),
        sc.GEN_AI_USAGE_COST_CURRENCY: "USD", sc.AI_COST_COST_INPUT: float(cost_in),
        sc.AI_COST_COST_OUTPUT: float(cost_out),
    }
    if estimate is not None:
        attributes[sc.AI_COST_ESTIMATE_AMOUNT] = float(estimate[0])
        attributes[sc.AI_COST_ESTIMATE_OUTPUT_TOKENS] = estimate[1]
    tracer.start_span("chat " + model, attributes=attributes).end()


def _fill(path, service, calls):
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    ledger = LedgerSpanExporter(f"sqlite://{path}")
    provider.add_span_processor(SimpleSpanProcessor(ledger))
    tracer = provider.get_tracer("test")
    for args in calls:
        _call(tracer, *args)
    assert ledger.force_flush()
    provider.shutdown()


# gpt-4o (openai): $2.50/M input, $10/M output; gpt-4o-mini: $0.15/M input, $0.60/M output.
SUPPORT_COST = 1000 * Decimal("2.5") / M + 50 * Decimal(10) / M          # 0.003 per call
SUPPORT_MINI = 1000 * Decimal("0.15") / M + 50 * Decimal("0.6") / M      # 0.00018 per call
# claude-sonnet-4-5 (anthropic): $3/M input, $0.30/M cache read, $15/M output; claude-haiku-4-5: $1/M, $5/M.
RAG_COST = 2000 * Decimal(3) / M + 100 * Decimal(15) / M                 # 0.0075 per call
RAG_HAIKU = 2000 * Decimal(1) / M + 100 * Decimal(5) / M                 # 0.0025 per call
RAG_CACHE_SAVING = 2 * 2000 * (Decimal(3) - Decimal("0.3")) / M         # the 2 calls after the first: 0.0108
# gpt-4.1-mini (openai): $0.40/M input, $1.60/M output; batch tier $0.20/M, $0.80/M.
NIGHTLY_COST = 500 * Decimal("0.4") / M + 300 * Decimal("1.6") / M       # 0.00068 per call
NIGHTLY_BATCH = 500 * Decimal("0.2") / M + 300 * Decimal("0.8") / M      # 0.00034 per call
NIGHTLY_ESTIMATE = 500 * Decimal("0.4") / M + 4096 * Decimal("1.6") / M  # max_tokens 4096: 0.0067536


@pytest.fixture
def url(tmp_path):
    path = tmp_path / "calls.db"
    _fill(path, "support", [("openai", "gpt-4o", 1000, 50, 1000 * Decimal("2.5") / M, 50 * Decimal(10) / M)] * 3
          # a long output: not a cheaper_model candidate
          + [("openai", "gpt-4o", 1000, 500, 1000 * Decimal("2.5") / M, 500 * Decimal(10) / M)])
    _fill(path, "rag", [("anthropic", "claude-sonnet-4-5", 2000, 100, 2000 * Decimal(3) / M,
                         100 * Decimal(15) / M)] * 3)
    _fill(path, "nightly", [("openai", "gpt-4.1-mini", 500, 300, 500 * Decimal("0.4") / M, 300 * Decimal("1.6") / M,
                             (NIGHTLY_ESTIMATE, 4096))] * 5)
    return f"sqlite://{path}"


def test_each_hint_s_saving_is_tokens_times_the_catalog_prices_ranked_by_money(url, capsys):
    doc = json.loads(run(capsys, "recommend", "--ledger", url, "--format", "json", "--min-batch-calls", "5"))
    assert doc["calls"] == 4 + 3 + 5
    got = [(h["kind"], h["service"], h["model"], h["calls"], Decimal(h["saving"]), Decimal(h["held"]))
           for h in doc["hints"]]
    assert got == [
        ("cheaper_model", "rag", "claude-sonnet-4-5", 3, 3 * (RAG_COST - RAG_HAIKU), 0),             # 0.015
        ("prompt_cache", "rag", "claude-sonnet-4-5", 3, RAG_CACHE_SAVING, 0),                        # 0.0108
        ("cheaper_model", "support", "gpt-4o", 3, 3 * (SUPPORT_COST - SUPPORT_MINI), 0),             # 0.00846
        ("batch", "nightly", "gpt-4.1-mini", 5, 5 * (NIGHTLY_COST - NIGHTLY_BATCH), 0),              # 0.0017
        # capacity, not money: ranked after the money hints
        ("max_tokens", "nightly", "gpt-4.1-mini", 5, 0, 5 * (NIGHTLY_ESTIMATE - NIGHTLY_COST)),      # 0.030368
    ]
    assert [h["rank"] for h in doc["hints"]] == [1, 2, 3, 4, 5]
    assert Decimal(doc["total_saving"]) == sum(g[4] for g in got)
    first, cache, support, batch, reserve = doc["hints"]
    assert first["details"]["target"] == "claude-haiku-4-5"
    assert Decimal(first["cost"]) == 3 * RAG_COST
    assert "does not record tool use" in first["how"]
    assert support["details"] == {"target": "gpt-4o-mini", "target_cost": str(3 * SUPPORT_MINI),
                                  "input_tokens": 3000, "output_tokens": 150}
    assert Decimal(cache["cost"]) == 3 * RAG_COST  # all 3 calls; the saving counts the 2 after the first
    assert cache["how"].startswith("upper bound") and cache["details"]["cacheable_input_tokens"] == 4000
    assert Decimal(batch["details"]["batch_cost"]) == 5 * NIGHTLY_BATCH
    assert reserve["details"] == {"reserved_output_tokens": 5 * 4096, "used_output_tokens": 1500,
                                  "max_output_tokens": 300}


def test_the_thresholds_decide_which_calls_count(url, capsys):
    # The default batch group size (100) leaves out the 5 nightly calls; --short-output 40 leaves out every
    # cheaper_model candidate (outputs of 50 and 100); --long-input 2001 the prompt_cache one.
    doc = json.loads(run(capsys, "recommend", "--ledger", url, "--format", "json", "--short-output", "40",
                         "--long-input", "2001"))
    assert [h["kind"] for h in doc["hints"]] == ["max_tokens"]
    doc = json.loads(run(capsys, "recommend", "--ledger", url, "--format", "json", "--kind", "prompt_cache"))
    assert [(h["kind"], Decimal(h["saving"])) for h in doc["hints"]] == [("prompt_cache", RAG_CACHE_SAVING)]


def test_the_period_decides_which_calls_count(url, capsys):
    doc = json.loads(run(capsys, "recommend", "--ledger", url, "--format", "json", "--since", "2000-01-01",
                         "--until", "2000-01-31"))
    assert (doc["calls"], doc["hints"]) == (0, [])
    doc = json.loads(run(capsys, "recommend", "--ledger", url, "--format", "json", "--since", "1h"))
    assert doc["calls"] == 12 and len(doc["hints"]) == 4  # the batch group (5 calls) is under 100
    assert doc["rules"]["min_batch_calls"] == 100
    doc = json.loads(run(capsys, "recommend", "--ledger", url, "--format", "json", "--reservation-ratio", "14"))
    assert "max_tokens" not in [h["kind"] for h in doc["hints"]]  # 4096 reserved < 14 x 300 produced


def test_until_alone_is_the_30_days_before_it_even_before_this_month(url, capsys):
    # --until alone once failed "the period is empty" for a day before the current month: the start of
    # this month was taken as --since before the 30 days before --until replaced it.
    doc = json.loads(run(capsys, "recommend", "--ledger", url, "--format", "json", "--until", "2020-03-10"))
    assert (doc["since"], doc["until"]) == ("2020-02-10T00:00:00+00:00", "2020-03-11T00:00:00+00:00")
    assert (doc["calls"], doc["hints"]) == (0, [])
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date()
    doc = json.loads(run(capsys, "recommend", "--ledger", url, "--format", "json", "--until", tomorrow.isoformat()))
    until = datetime.combine(tomorrow + timedelta(days=1), time(), timezone.utc)
    assert (doc["since"], doc["until"]) == ((until - timedelta(days=30)).isoformat(), until.isoformat())
    assert doc["calls"] == 12


def test_csv_and_table_show_the_same_ranked_hints(url, capsys):
    rows = list(csv.DictReader(io.StringIO(run(capsys, "recommend", "--ledger", url, "--format", "csv",
                                               "--min-batch-calls", "5"))))
    assert [(r["rank"], r["kind"], r["service"]) for r in rows] == [
        ("1", "cheaper_model", "rag"), ("2", "prompt_cache", "rag"), ("3", "cheaper_model", "support"),
        ("4", "batch", "nightly"), ("5", "max_tokens", "nightly")]
    assert Decimal(rows[2]["saving"]) == Decimal("0.00846") and rows[2]["how"]
    table = run(capsys, "recommend", "--ledger", url, "--min-batch-calls", "5")
    lines = table.splitlines()
    assert lines[0].startswith("recommendations from the call ledger") and "12 calls, 5 hints" in lines[0]
    assert lines[1].split()[:8] == ["rank", "kind", "service", "model", "calls", "cost", "saving", "held"]
    assert lines[2].split()[:7] == ["1", "cheaper_model", "rag", "claude-sonnet-4-5", "3", "$0.022500",
                                    "$0.015000"]
    assert lines[3].strip().startswith("how: ")
    assert lines[10].split()[:8] == ["5", "max_tokens", "nightly", "gpt-4.1-mini", "5", "$0.033768", "-",
                                     "$0.030368"]
    assert lines[2].split()[7] == "-"  # a money hint holds no capacity


def test_bad_options_fail_naming_the_option(url, capsys):
    assert main(["recommend", "--ledger", url, "--period", "day", "--since", "7d"]) == 2
    assert "--period" in capsys.readouterr().err
    assert main(["recommend", "--ledger", url, "--short-output", "-1"]) == 2
    assert "--short-output" in capsys.readouterr().err
    assert main(["recommend", "--ledger", url, "--min-batch-calls", "0"]) == 2
    assert "--min-batch-calls 0: must be 1 or more" in capsys.readouterr().err
    assert main(["recommend", "--ledger", "redis://x"]) == 2
    assert "--ledger" in capsys.readouterr().err


def test_real_openai_calls_through_the_fake_api(tmp_path, capsys):
    """Three real gpt-4o calls with max_tokens=100, answered by gpt-4o-2024-08-06 with the fake's usage:
    20 prompt tokens (8 of them cached), 10 completion tokens."""
    path = tmp_path / "calls.db"
    with closing(Pipeline(path, settings=Settings())) as p:
        p.client = FakeOpenAI(chat=lambda body: httpx2.Response(
            200, json=chat_completion(model="gpt-4o-2024-08-06"))).client()
        for _ in range(3):
            p.chat(model="gpt-4o")
        assert p.ledger.force_flush()
        spans = [s for s in p.spans() if sc.GEN_AI_USAGE_COST_AMOUNT in s.attributes]
    assert len(spans) == 3
    doc = json.loads(run(capsys, "recommend", "--ledger", f"sqlite://{path}", "--format", "json"))
    cheaper, reserve = doc["hints"]
    # gpt-4o-2024-08-06: 12 uncached x $2.50/M + 8 cached x $1.25/M + 10 output x $10/M = $0.00014 a call;
    # gpt-4o-mini: 12 x $0.15/M + 8 x $0.075/M + 10 x $0.60/M = $0.0000084 a call.
    assert (cheaper["kind"], cheaper["service"], cheaper["details"]["target"]) == ("cheaper_model", "checkout",
                                                                                   "gpt-4o-mini")
    assert Decimal(cheaper["cost"]) == sum(Decimal(repr(s.attributes[sc.GEN_AI_USAGE_COST_AMOUNT])) for s in spans)
    assert Decimal(cheaper["saving"]) == 3 * (Decimal("0.00014") - Decimal("0.0000084"))
    # max_tokens 100 reserved for 10 produced: the estimates minus the costs, held needlessly
    assert reserve["kind"] == "max_tokens" and Decimal(reserve["saving"]) == 0
    est_in = spans[0].attributes[sc.AI_COST_ESTIMATE_INPUT_TOKENS]
    estimate = est_in * Decimal("2.5") / M + 100 * Decimal(10) / M
    assert Decimal(reserve["held"]) == 3 * (estimate - Decimal("0.00014"))
    assert reserve["details"]["reserved_output_tokens"] == 300


def test_rules_skip_calls_the_ledger_cannot_reprice(tmp_path):
    """A failed call, or one with cost parts the ledger keeps no tokens for, is left out."""
    path = tmp_path / "calls.db"
    _fill(path, "svc", [("openai", "gpt-4o", 1000, 50, 1000 * Decimal("2.5") / M, 50 * Decimal(10) / M)])
    recorded = [Call.from_row(r) for r in read_rows(str(path))]
    assert [h.kind for h in recommend(recorded, rules=Rules())] == ["cheaper_model"]
    recorded[0].breakdown[sc.AI_COST_COST_AUDIO_INPUT] = Decimal("0.001")
    assert recommend(recorded, rules=Rules()) == []
    recorded[0].breakdown.pop(sc.AI_COST_COST_AUDIO_INPUT)
    recorded[0].ok = False
    assert recommend(recorded, rules=Rules()) == []


def test_every_downgrade_pair_is_a_cheaper_model_the_catalog_prices_for_that_provider():
    from otel_ai_cost.ledger._recommend import DOWNGRADES, family
    from otel_ai_cost.pricing import default_catalog

    catalog = default_catalog()
    for (provider, model), target in DOWNGRADES.items():
        small = catalog.resolve(target, provider=provider)
        assert small is not None and small.provider == provider, (provider, target)
        # every catalog entry of the family (dated ones too) costs more than the cheaper model
        bigs = [e for e in catalog.entries() if e.provider == provider and family(e.id) == model]
        assert bigs, (provider, model)
        for big in bigs:
            assert small.prices.input < big.prices.input and small.prices.output < big.prices.output, big.id
    assert family("gpt-4o-2024-08-06") == "gpt-4o" and family("claude-sonnet-4-20250514") == "claude-sonnet-4"
    assert family("gpt-4o-mini") == "gpt-4o-mini"


def test_no_cache_hint_without_a_cache_read_price_and_no_batch_hint_for_batch_calls(tmp_path):
    path = tmp_path / "calls.db"
    # claude-3-5-haiku on gcp.vertex_ai: $0.80/M input, $4/M output, no cache_read price in the catalog
    _fill(path, "svc", [("gcp.vertex_ai", "claude-3-5-haiku", 2000, 300, 2000 * Decimal("0.8") / M,
                         300 * Decimal(4) / M)] * 3)
    recorded = [Call.from_row(r) for r in read_rows(str(path))]
    assert recommend(recorded, rules=Rules(min_batch_calls=1)) == []
    path = tmp_path / "batch.db"
    _fill(path, "svc", [("openai", "gpt-4.1-mini", 500, 300, 500 * Decimal("0.4") / M, 300 * Decimal("1.6") / M)] * 2)
    recorded = [Call.from_row(r) for r in read_rows(str(path))]
    assert [h.kind for h in recommend(recorded, rules=Rules(min_batch_calls=2))] == ["batch"]
    for r in recorded:
        r.service_tier = "batch"
    assert recommend(recorded, rules=Rules(min_batch_calls=2)) == []
