"""``otel-ai-cost report`` from the call ledger: the numbers are sums over the exported spans.

Real calls go through the real ``openai`` SDK against the faked OpenAI API, with the processor, an
in-memory exporter and a LedgerSpanExporter on one provider; the report's totals are compared,
exactly, with the sum of ``gen_ai.usage.cost.amount`` over the in-memory exported spans.
"""
from __future__ import annotations

import csv
import io
import json
import re
from contextlib import closing
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from otel_ai_cost import _semconv as sc
from otel_ai_cost.attribution import attribute
from otel_ai_cost.cli import main
from otel_ai_cost.config import Settings
from otel_ai_cost.ledger._cli import period
from otel_ai_cost.ledger._focus import COLUMNS as FOCUS_COLUMNS
from otel_ai_cost.ledger._report import Call, forecast
from test_ledger import Pipeline

TENANTS = {"acme": 3, "globex": 2}


@pytest.fixture
def ledger(tmp_path):
    """A ledger of 5 real calls (acme 3, globex 2; one globex call to gpt-4o) and their exported spans."""
    path = tmp_path / "calls.db"
    with closing(Pipeline(path, settings=Settings())) as p:
        for tenant, n in TENANTS.items():
            for i in range(n):
                with attribute(tenant=tenant, user=f"{tenant}-user-{i % 2}"):
                    p.chat(model="gpt-4o" if (tenant, i) == ("globex", 1) else "gpt-4o-mini")
        assert p.ledger.force_flush()
        spans = [s for s in p.spans() if sc.GEN_AI_USAGE_COST_AMOUNT in s.attributes]
    assert len(spans) == 5
    return f"sqlite://{path}", spans


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def cost(span) -> Decimal:
    return Decimal(repr(span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT]))


def test_report_totals_equal_the_sum_over_the_exported_spans(ledger, capsys):
    url, spans = ledger
    doc = json.loads(run(capsys, "report", "--ledger", url, "--by", "tenant", "--format", "json", "--period", "day"))
    assert doc["source"] == "calls"
    assert Decimal(doc["total"]["cost"]) == sum(cost(s) for s in spans)
    assert doc["total"]["calls"] == 5 and doc["total"]["succeeded"] == 5
    by_tenant = {r["tenant"]: r for r in doc["rows"]}
    for tenant, n in TENANTS.items():
        mine = [s for s in spans if s.attributes["tenant.id"] == tenant]
        assert by_tenant[tenant]["calls"] == n == len(mine)
        assert Decimal(by_tenant[tenant]["cost"]) == sum(cost(s) for s in mine)
        assert Decimal(by_tenant[tenant]["cost_per_success"]) == sum(cost(s) for s in mine) / n
    # estimate vs actual: (sum of estimates - sum of costs) / sum of costs
    estimates = sum(Decimal(repr(s.attributes[sc.AI_COST_ESTIMATE_AMOUNT])) for s in spans)
    actual = sum(cost(s) for s in spans)
    assert Decimal(doc["total"]["estimate"]) == estimates
    assert Decimal(doc["total"]["estimate_error"]) == (estimates - actual) / actual
    # top calls and traces: each call is its own trace here; the costliest first, with its cost
    top = max(spans, key=cost)
    assert doc["top_calls"][0]["span_id"] == format(top.context.span_id, "016x")
    assert Decimal(doc["top_calls"][0]["cost"]) == cost(top)
    assert doc["top_traces"][0]["trace_id"] == format(top.context.trace_id, "032x")


@pytest.mark.parametrize("dimension, attribute_name", [
    ("model", sc.GEN_AI_RESPONSE_MODEL), ("user", "enduser.id"), ("provider", sc.GEN_AI_PROVIDER_NAME),
    ("operation", sc.GEN_AI_OPERATION_NAME),
])
def test_spend_by_each_dimension_sums_the_spans_of_each_value(ledger, capsys, dimension, attribute_name):
    url, spans = ledger
    doc = json.loads(run(capsys, "report", "--ledger", url, "--by", dimension, "--format", "json"))
    expected = {}
    for s in spans:
        key = s.attributes[attribute_name]
        expected[key] = expected.get(key, Decimal(0)) + cost(s)
    assert {r[dimension]: Decimal(r["cost"]) for r in doc["rows"]} == expected


def test_spend_by_service_and_day(ledger, capsys):
    url, spans = ledger
    doc = json.loads(run(capsys, "report", "--ledger", url, "--by", "service", "day", "--format", "json"))
    today = datetime.fromtimestamp(spans[0].end_time / 1e9, timezone.utc).date().isoformat()
    assert [(r["service"], r["day"], Decimal(r["cost"])) for r in doc["rows"]] == [
        ("checkout", today, sum(cost(s) for s in spans))]


def test_cache_savings_are_the_cached_tokens_at_the_input_minus_the_cache_price(ledger, capsys):
    url, spans = ledger
    doc = json.loads(run(capsys, "report", "--ledger", url, "--by", "model", "--format", "json"))
    rows = {r["model"]: r for r in doc["rows"]}
    # The fake's usage reads 8 tokens from the cache on every call. Prices per million
    # (https://developers.openai.com/api/docs/pricing): gpt-4o-mini-2024-07-18 input 0.15, cached 0.075;
    # the fake answers every call (gpt-4o asked or not) with that model, so all 5 calls are in its row.
    assert set(rows) == {"gpt-4o-mini-2024-07-18"}
    saved = 5 * 8 * (Decimal("0.15") - Decimal("0.075")) / 10**6
    assert Decimal(rows["gpt-4o-mini-2024-07-18"]["cache_savings"]) == saved


def test_table_and_csv_show_the_same_totals(ledger, capsys):
    url, spans = ledger
    total = sum(cost(s) for s in spans)
    table = run(capsys, "report", "--ledger", url, "--by", "tenant")
    assert "TOTAL" in table and f"${total:,.6f}" in table and "acme" in table
    text = run(capsys, "report", "--ledger", url, "--by", "tenant", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sum(Decimal(r["cost"]) for r in rows) == total
    text = run(capsys, "report", "--ledger", url, "--view", "traces", "--format", "csv")
    traces = list(csv.DictReader(io.StringIO(text)))
    assert len(traces) == 5 and sum(Decimal(r["cost"]) for r in traces) == total


# FOCUS v1.2 (https://focus.finops.org/focus-specification/v1-2): the columns a Cost and Usage dataset
# must have, and their types. ServiceCategory values of the spec; ChargeCategory: Usage, Purchase, Tax,
# Credit, Adjustment; ChargeFrequency: One-Time, Recurring, Usage-Based.
MANDATORY = {
    "BilledCost": "decimal", "BillingAccountId": "string", "BillingAccountName": "string",
    "BillingCurrency": "currency", "BillingPeriodEnd": "datetime", "BillingPeriodStart": "datetime",
    "ChargeCategory": "string", "ChargeClass": "nullable", "ChargeDescription": "string",
    "ChargePeriodEnd": "datetime", "ChargePeriodStart": "datetime", "ContractedCost": "decimal",
    "EffectiveCost": "decimal", "InvoiceIssuerName": "string", "ListCost": "decimal",
    "PricingQuantity": "decimal", "PricingUnit": "string", "ProviderName": "string", "PublisherName": "string",
    "ServiceCategory": "string", "ServiceName": "string",
}
CONDITIONAL_FILLED = {"ConsumedQuantity": "decimal", "ConsumedUnit": "string", "ResourceId": "string",
                      "ResourceName": "string", "ResourceType": "string", "SkuId": "string", "Tags": "json",
                      "ChargeFrequency": "string", "ServiceSubcategory": "string", "SubAccountId": "string"}
# Allowed values (FOCUS_Spec specification/columns/servicecategory.md, chargecategory.md, chargefrequency.md,
# pricingcategory.md).
SERVICE_CATEGORIES = {
    "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
    "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
    "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other",
}
ALLOWED = {"ServiceCategory": SERVICE_CATEGORIES,
           "ChargeCategory": {"Usage", "Purchase", "Tax", "Credit", "Adjustment"},
           "ChargeFrequency": {"One-Time", "Recurring", "Usage-Based"},
           "PricingCategory": {"Standard", "Dynamic", "Committed", "Other"}}
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def check_type(kind: str, value: str) -> bool:
    if kind == "nullable":
        return value == ""
    if not value:
        return False
    if kind == "decimal":
        return Decimal(value).is_finite()
    if kind == "datetime":
        return bool(DATETIME.match(value))
    if kind == "currency":
        return bool(re.fullmatch(r"[A-Z]{3}", value))
    if kind == "json":
        return isinstance(json.loads(value), dict)
    return True


def test_focus_rows_have_the_v1_2_columns_with_their_types_and_the_spans_costs(ledger, capsys):
    url, spans = ledger
    text = run(capsys, "report", "--ledger", url, "--format", "focus")
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    assert set(MANDATORY) <= set(header)
    for name in header:  # every column is FOCUS's or ours, x_ prefixed
        assert name in FOCUS_COLUMNS and (name[0].isupper() or name.startswith("x_"))
    rows = list(reader)
    assert len(rows) == 5
    for row in rows:
        for name, kind in {**MANDATORY, **CONDITIONAL_FILLED}.items():
            assert check_type(kind, row[name]), (name, row[name])
        for name, values in ALLOWED.items():
            assert row[name] in values, (name, row[name])
        assert row["ChargeCategory"] == "Usage" and row["ChargeFrequency"] == "Usage-Based"
        assert row["ServiceCategory"] == "AI and Machine Learning" and row["ServiceSubcategory"] == "Generative AI"
        assert row["BilledCost"] == row["EffectiveCost"] == row["ListCost"] == row["ContractedCost"]
        assert row["ChargePeriodStart"] <= row["ChargePeriodEnd"]
        assert row["BillingPeriodStart"] <= row["ChargePeriodStart"] < row["BillingPeriodEnd"]
        assert (row["ProviderName"], row["ResourceType"], row["SubAccountId"]) == ("OpenAI", "Model", "checkout")
        assert json.loads(row["Tags"])["tenant.id"] in TENANTS
        assert Decimal(row["ConsumedQuantity"]) == 30  # 20 input + 10 output tokens
    assert sum(Decimal(r["BilledCost"]) for r in rows) == sum(cost(s) for s in spans)
    by_span = {format(s.context.span_id, "016x"): cost(s) for s in spans}
    assert {r["x_SpanId"]: Decimal(r["BilledCost"]) for r in rows} == by_span


def _call(end: datetime, amount: str) -> Call:
    t = end.timestamp()
    return Call(trace_id="t" * 32, span_id="s" * 16, start_time=t, end_time=t, service="a", provider="openai",
                request_model="gpt-4o", response_model=None, operation="chat", input_tokens=1, output_tokens=1,
                cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0, cost=Decimal(amount), currency="USD",
                breakdown={}, estimate=None, pricing_status="priced", pricing_model=None, service_tier=None,
                budget_decision=None, tenant=None, user=None, cost_center=None, attributes={}, anomaly_type=None,
                ok=True, error_type=None)


def test_month_end_forecast_and_its_range():
    utc = ZoneInfo("UTC")
    # November (30 days), now = 11-11 00:00: 10 full days, $2/day on days 1-9 and $12 on day 10 -> $30 so far.
    calls = [_call(datetime(2026, 11, d, 12, tzinfo=utc), "2") for d in range(1, 10)]
    calls.append(_call(datetime(2026, 11, 10, 12, tzinfo=utc), "12"))
    calls.append(_call(datetime(2026, 10, 31, 12, tzinfo=utc), "100"))  # last month: not counted
    f = forecast(calls, datetime(2026, 11, 11, tzinfo=utc))
    assert (f.spent, f.full_days, f.days_in_month) == (Decimal(30), 10, 30)
    assert f.point == Decimal(30) / Decimal(10) * 30  # $3/day so far x 30 days = $90
    assert (f.low, f.high) == (30 + 20 * Decimal(2), 30 + 20 * Decimal(12))  # 20 days left at $2 or $12/day


def test_periods():
    now = datetime(2026, 11, 19, 15, 30, tzinfo=ZoneInfo("Europe/Paris"))  # a Thursday
    assert period("day", now)[0] == datetime(2026, 11, 19, tzinfo=ZoneInfo("Europe/Paris"))
    assert period("week", now)[0].date().isoformat() == "2026-11-16"
    assert period("mtd", now)[0].date().isoformat() == "2026-11-01"
    assert period("qtd", now)[0].date().isoformat() == "2026-10-01"
    assert (now - period("month", now)[0]).days == 30
    assert all(period(p, now)[1] == now for p in ("day", "week", "month", "mtd", "qtd"))


@pytest.mark.parametrize("argv, message", [
    (["--by", "colour"], "--by 'colour': group by one of model"),
    (["--period", "day", "--since", "7d"], "give either --period or --since/--until"),
    (["--top", "-1"], "--top -1: must be 0 or more"),
])
def test_report_errors_name_the_option(ledger, capsys, argv, message):
    url, _ = ledger
    assert main(["report", "--ledger", url, *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_ledger_file_says_so(tmp_path, capsys):
    assert main(["report", "--ledger", f"sqlite://{tmp_path}/none.db"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_the_budget_ledger_report_stays_reachable(tmp_path, capsys, monkeypatch):
    """With --config (or $OTEL_AI_COST_CONFIG) and no --ledger the report reads the budget ledger, as
    before; --source budgets asks for it whatever is set; --format focus is for the call ledger only."""
    config = tmp_path / "b.yaml"
    config.write_text(f"store:\n  url: sqlite://{tmp_path}/budgets.db\n"
                      "budgets:\n  - id: team\n    limit_usd: 5\n    window: {calendar: month}\n")
    monkeypatch.delenv("OTEL_AI_COST_LEDGER", raising=False)
    doc = json.loads(run(capsys, "report", "--config", str(config), "--format", "json"))
    assert "spend_usd" in doc["total"] and "source" not in doc  # the budget ledger's report
    monkeypatch.setenv("OTEL_AI_COST_CONFIG", str(config))
    doc = json.loads(run(capsys, "report", "--format", "json"))
    assert "spend_usd" in doc["total"]
    monkeypatch.setenv("OTEL_AI_COST_LEDGER", f"sqlite://{tmp_path}/calls.db")
    assert main(["report"]) == 2  # $OTEL_AI_COST_LEDGER given: the call ledger, which is not there yet
    assert "no such file" in capsys.readouterr().err
    doc = json.loads(run(capsys, "report", "--source", "budgets", "--format", "json"))
    assert "spend_usd" in doc["total"]
    assert main(["report", "--config", str(config), "--source", "budgets", "--format", "focus"]) == 2
    assert "--format focus" in capsys.readouterr().err


def test_groups_by_cost_center_and_a_baggage_key_and_counts_unpriced_and_failed_calls():
    from dataclasses import replace

    from otel_ai_cost.ledger._report import build_call_report
    from otel_ai_cost.pricing import default_catalog

    t = datetime(2026, 11, 3, tzinfo=ZoneInfo("UTC"))
    base = _call(t, "1.5")
    calls = [
        replace(base, cost_center="cc-1", attributes={"team.name": "search"}),
        replace(base, cost_center="cc-1", attributes={"team.name": "search"}, ok=False, error_type="ReadError"),
        replace(base, cost_center="cc-2", cost=None, pricing_status="unknown_model"),
    ]
    report = build_call_report(calls, ["cost_center", "team.name"], 0, 2e9, catalog=default_catalog())
    rows = {r.group: r for r in report.rows}
    cc1 = rows[("cc-1", "search")]
    assert (cc1.calls, cc1.succeeded, cc1.cost) == (2, 1, Decimal(3))
    assert cc1.cost_per_success == Decimal(3)  # both calls were paid; one succeeded
    cc2 = rows[("cc-2", "(none)")]
    assert (cc2.calls, cc2.unpriced, cc2.cost, cc2.cost_per_success) == (1, 1, Decimal(0), Decimal(0))
    assert (report.total.calls, report.total.cost) == (3, Decimal(3))
