"""``otel-ai-cost dashboard``: its document, server, export and command; the demo's last lines.

The ledger is filled by the demo's own calls (``demo_calls``: chat, a cached long prompt, a stream, a
reasoning model, embeddings, the Responses API, a model the catalog does not know) made with the real
``openai`` SDK against the demo's fake OpenAI server on loopback, through AICostSpanProcessor with a
budget configuration (SQLite store), a LedgerSpanExporter and the real anomaly detector. Expected
numbers are sums over the ledger's rows, and the rows' costs are the spans' ``gen_ai.usage.cost.amount``.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import re
import sys
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import conftest
from otel_ai_cost import _semconv as sc
from otel_ai_cost.anomalies import (
    AnomalyDetector,
    AnomalyMonitor,
    AnomalyReporter,
    CallRecord,
    finding_attributes,
    most_severe,
)
from otel_ai_cost.attribution import attribute
from otel_ai_cost.cli import main
from otel_ai_cost.config import Settings
from otel_ai_cost.dashboard import DashboardServer, Query, Sources, document, export_html
from otel_ai_cost.dashboard._budgets import BudgetSource
from otel_ai_cost.dashboard._data import loader, parse_query, to_json
from otel_ai_cost.demo import FakeOpenAIServer, run_demo
from otel_ai_cost.demo._ledger import demo_ledger_path
from otel_ai_cost.demo._scenario import demo_calls
from otel_ai_cost.errors import ConfigError
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
from otel_ai_cost.ledger import LedgerSpanExporter
from otel_ai_cost.ledger._store import read_rows

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "otel_ai_cost" / "dashboard" / "static"
# The demo's calls: the first four for tenant acme, the others for globex.
ACME_CALLS = 4
LIMIT = Decimal("0.02")
CONFIG = """
budgets:
  - id: support-monthly
    limit_usd: 0.02
    window: {calendar: month}
    thresholds:
      - {at: 0.5, action: warn}
      - {at: 0.8, action: warn}
store:
  url: sqlite://budgets.db
on_unknown_model: allow
"""


class AnomalyMarking(SpanExporter):
    """Runs the real anomaly detector on each finished span and hands the span on to ``inner`` with the
    detector's attributes of its most severe finding (``ai_cost.anomaly.*``), as a span that the
    detector observed while it ran would carry them: a new model for the service once it made 2 calls."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.monitor = AnomalyMonitor(AnomalyDetector(new_model_min_calls=2, new_model_min_age=0),
                                      AnomalyReporter(log=False))

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        marked = []
        for span in spans:
            record = CallRecord.from_attributes(span.attributes or {}, span.resource.attributes,
                                                trace_id=format(span.context.trace_id, "032x"))
            top = most_severe(self.monitor.observe(record))
            if top is not None:
                span = ReadableSpan(
                    name=span.name, context=span.context, parent=span.parent, resource=span.resource,
                    attributes={**(span.attributes or {}), **finding_attributes(top)}, events=span.events,
                    links=span.links, kind=span.kind, status=span.status, start_time=span.start_time,
                    end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)
            marked.append(span)
        return self.inner.export(marked)

    def shutdown(self) -> None:
        self.inner.shutdown()


@dataclass
class DemoLedger:
    path: Path
    config: Path
    spans: List[Any]
    rows: List[Dict[str, Any]]

    @property
    def url(self) -> str:
        return f"sqlite://{self.path}"

    def cost(self, **where: str) -> Decimal:
        """The sum of the rows' costs (of those whose columns equal ``where``)."""
        return sum((Decimal(r["cost"]) for r in self.rows
                    if r["cost"] is not None and all(model_of(r) == v if k == "model" else r[k] == v
                                                     for k, v in where.items())), Decimal(0))

    def sources(self, **kwargs: Any) -> Sources:
        return Sources(str(self.path), BudgetSource(str(self.config)), **kwargs)


def model_of(row: Dict[str, Any]) -> str:
    return row["response_model"] or row["request_model"]


def fill_demo_ledger(tmp_path: Path) -> DemoLedger:
    from openai import DefaultHttpxClient, OpenAI

    from otel_ai_cost import _tiktoken_offline

    # The tokenizers loaded first, as conftest's _tokenizers_loaded does for each test: the estimates are tiktoken's.
    for name in (_tiktoken_offline.O200K_BASE, _tiktoken_offline.CL100K_BASE):
        _tiktoken_offline.get_encoding(name)
    config = tmp_path / "otel-ai-cost.yaml"
    config.write_text(CONFIG)
    path = tmp_path / "calls.db"
    pipeline = conftest.Pipeline(OpenAIInstrumentor(), resource=Resource.create({"service.name": "support-bot"}),
                                 settings=Settings(), config_file=str(config))
    ledger = LedgerSpanExporter(f"sqlite://{path}")
    pipeline.provider.add_span_processor(SimpleSpanProcessor(AnomalyMarking(ledger)))
    with closing(pipeline), FakeOpenAIServer() as server:
        client = OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0,
                        http_client=DefaultHttpxClient(trust_env=False))
        with closing(client):
            for number, call in enumerate(demo_calls()):
                tenant = "acme" if number < ACME_CALLS else "globex"
                with attribute(tenant=tenant, user=f"{tenant}-agent"):
                    call.run(client)
        assert ledger.force_flush()
        spans = [s for s in pipeline.spans() if sc.GEN_AI_OPERATION_NAME in (s.attributes or {})]
    rows = [dict(r) for r in read_rows(str(path))]
    # Each row is one of the spans, with its cost as the span says it.
    by_span = {format(s.context.span_id, "016x"): s for s in spans}
    assert len(rows) == len(demo_calls()) == len(spans)
    for row in rows:
        amount = by_span[row["span_id"]].attributes.get(sc.GEN_AI_USAGE_COST_AMOUNT)
        assert (None if amount is None else Decimal(repr(amount))) == (
            None if row["cost"] is None else Decimal(row["cost"]))
    return DemoLedger(path, config, spans, rows)


@pytest.fixture(scope="module")
def demo_ledger(tmp_path_factory) -> DemoLedger:
    return fill_demo_ledger(tmp_path_factory.mktemp("dashboard"))


def usd(value: Any) -> Decimal:
    return Decimal(value)


def test_the_document_s_numbers_are_sums_over_the_ledger_rows(demo_ledger):
    doc = document(demo_ledger.sources(), Query("day"))
    total = doc["total"]
    assert usd(total["cost"]) == demo_ledger.cost() > 0
    assert total["calls"] == len(demo_ledger.rows) and total["unpriced"] == 1  # acme-support-llm: not in the catalog
    models = {model_of(r) for r in demo_ledger.rows}
    by_model = {r["model"]: r for r in doc["by"]["model"]}
    assert set(by_model) == models
    for model in models:
        assert usd(by_model[model]["cost"]) == demo_ledger.cost(model=model)
    by_tenant = {r["tenant"]: usd(r["cost"]) for r in doc["by"]["tenant"]}
    assert by_tenant == {"acme": demo_ledger.cost(tenant="acme"), "globex": demo_ledger.cost(tenant="globex")}
    # Over time (by hour for a day): each series adds up to its value's spend, all to the total.
    over = doc["over_time"]
    assert over["bucket"] == "hour"
    for model, costs in over["series"]["model"].items():
        assert sum(map(usd, costs)) == demo_ledger.cost(model=model)
    # The top call is the costliest row; its trace id links to Jaeger.
    top = max((r for r in demo_ledger.rows if r["cost"] is not None), key=lambda r: Decimal(r["cost"]))
    assert doc["top_calls"][0]["span_id"] == top["span_id"] and usd(doc["top_calls"][0]["cost"]) == usd(top["cost"])
    assert doc["jaeger"] == "http://localhost:16686/trace/"
    # The month-end forecast is the report's (everything happened this month).
    assert usd(doc["forecast"]["spent"]) == demo_ledger.cost()
    # Anomalies: the detector's new_model findings, as the rows have them.
    marked = [r for r in demo_ledger.rows if r["anomaly_type"]]
    assert marked, "the detector marked no call"
    # gpt-4o (call 3), o4-mini, text-embedding-3-small, gpt-5-mini, acme-support-llm: models new to the service
    assert len(marked) == 5
    assert {a["anomaly"]: a["calls"] for a in doc["anomalies"]["by_type"]} == {"new_model": len(marked)}
    assert {c["span_id"] for c in doc["anomalies"]["calls"]} == {r["span_id"] for r in marked}



def test_the_recommendations_are_those_of_otel_ai_cost_recommend(demo_ledger, capsys):
    doc = json.loads(to_json(document(demo_ledger.sources(), Query("day"))))
    code, out, err = run_cli(capsys, "recommend", "--ledger", demo_ledger.url, "--period", "day", "--format", "json")
    assert code == 0, err
    hints = json.loads(out)["hints"]
    assert hints, "the demo's calls make no hint"
    assert [(h["kind"], h["model"], h["calls"], usd(h["saving"]), usd(h["held"])) for h in doc["recommendations"]] == [
        (h["kind"], h["model"], h["calls"], usd(h["saving"]), usd(h["held"])) for h in hints]


def test_the_budget_panel_is_the_store_s_usage_with_each_threshold_and_the_forecast(demo_ledger):
    doc = document(demo_ledger.sources(), Query("day"))
    [panel] = doc["budgets"]["panels"]
    assert panel["budget"] == "support-monthly" and panel["monthly"] is True
    # on_unknown_model: allow: the budget counted exactly what the priced calls cost.
    assert usd(panel["spent"]) == demo_ledger.cost() and usd(panel["limit"]) == LIMIT
    assert [(usd(t["at"]), t["action"], usd(t["amount"])) for t in panel["thresholds"]] == [
        (Decimal("0.5"), "warn", Decimal("0.010")), (Decimal("0.8"), "warn", Decimal("0.016")), (1, "block", LIMIT)]
    burn = panel["burn"]
    today = burn["labels"].index(burn["today"])
    assert usd(burn["cumulative"][today]) == demo_ledger.cost()
    assert all(v is None for v in burn["cumulative"][today + 1:])
    assert usd(burn["forecast"]["spent"]) == demo_ledger.cost()
    assert usd(burn["forecast"]["low"]) <= usd(burn["forecast"]["forecast"]) <= usd(burn["forecast"]["high"])


def test_a_store_without_its_configuration_gives_the_spend_by_budget_without_limits(demo_ledger):
    store = f"sqlite://{demo_ledger.config.parent / 'budgets.db'}"
    doc = document(Sources(str(demo_ledger.path), BudgetSource.from_options(None, store)), Query("day"))
    [panel] = doc["budgets"]["panels"]
    assert (panel["budget"], panel["limit"], panel["thresholds"], panel["status"]) == (
        "support-monthly", None, [], "not configured")
    assert usd(panel["burn"]["forecast"]["spent"]) == demo_ledger.cost()


def test_no_budget_source_no_panels(demo_ledger, monkeypatch):
    monkeypatch.delenv("OTEL_AI_COST_CONFIG", raising=False)
    assert BudgetSource.from_options(None, None) is None
    doc = document(Sources(str(demo_ledger.path)), Query("day"))
    assert doc["budgets"]["panels"] == [] and "--config" in doc["budgets"]["note"]


def test_a_filter_keeps_the_calls_of_one_value(demo_ledger):
    doc = document(demo_ledger.sources(), Query("day", {"tenant": "globex"}))
    assert usd(doc["total"]["cost"]) == demo_ledger.cost(tenant="globex")
    assert doc["total"]["calls"] == len(demo_ledger.rows) - ACME_CALLS
    assert doc["options"]["tenant"] == ["acme", "globex"]  # the choices stay those of the period
    doc = document(demo_ledger.sources(), Query("day", {"model": "gpt-4o-2024-08-06", "tenant": "acme"}))
    assert usd(doc["total"]["cost"]) == demo_ledger.cost(model="gpt-4o-2024-08-06", tenant="acme")


def test_report_groups_by_hour_too(demo_ledger, capsys):
    code, out, err = run_cli(capsys, "report", "--ledger", demo_ledger.url, "--by", "hour", "--format", "json",
                             "--period", "day")
    assert code == 0, err
    hours = {datetime.fromtimestamp(r["end_time"], timezone.utc).strftime("%Y-%m-%dT%H:00") for r in demo_ledger.rows}
    doc = json.loads(out)
    assert {r["hour"] for r in doc["rows"]} == hours
    assert sum(usd(r["cost"]) for r in doc["rows"]) == demo_ledger.cost()


def test_the_query_names_a_known_period_and_dimensions():
    assert parse_query({"period": ["mtd"], "tenant": ["acme"], "model": [""]}) == Query("mtd", {"tenant": "acme"})
    with pytest.raises(ConfigError, match="period 'year'"):
        parse_query({"period": ["year"]})
    with pytest.raises(ConfigError, match="unknown parameter 'colour'"):
        parse_query({"colour": ["red"]})


def get(server: DashboardServer, path: str, host: str = "") -> "tuple[int, str, bytes]":
    hostname, port = server.server_address[:2]
    connection = http.client.HTTPConnection(str(hostname), int(port), timeout=30)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{port}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def test_the_server_serves_the_page_the_library_and_the_data_on_loopback(demo_ledger):
    with DashboardServer(loader(demo_ledger.sources())) as server:
        assert server.server_address[0] == "127.0.0.1"
        status, kind, body = get(server, "/")
        assert status == 200 and kind.startswith("text/html") and b'src="static/chart.umd.min.js"' in body
        status, kind, body = get(server, "/static/chart.umd.min.js")
        assert status == 200 and body == (STATIC / "chart.umd.min.js").read_bytes()
        status, kind, body = get(server, "/api/data?period=day&tenant=acme")
        assert status == 200 and kind == "application/json"
        assert usd(json.loads(body)["total"]["cost"]) == demo_ledger.cost(tenant="acme")
        status, _, body = get(server, "/api/data?period=year")
        assert status == 400 and "period 'year'" in json.loads(body)["error"]
        assert get(server, "/static/../_data.py")[0] == 404
        # DNS rebinding: a name that resolved to 127.0.0.1 for a page elsewhere is refused.
        status, _, body = get(server, "/api/data", host="attacker.example:8417")
        assert status == 403 and b"loopback" in body


def test_the_server_listens_on_loopback_only():
    with pytest.raises(ConfigError, match="loopback only"):
        DashboardServer(lambda q: {}, host="0.0.0.0")


def test_the_export_is_one_self_contained_page(demo_ledger, tmp_path):
    page, doc = export_html(loader(demo_ledger.sources()), Query("day"))
    # Nothing to fetch: no script or style sheet by URL, Chart.js itself inlined.
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet", page)
    assert "Chart.js v4.6.1" in page and "Released under the MIT License" in page
    data = re.search(r'<script id="dashboard-data" type="application/json">(.*?)</script>', page, re.S)
    assert data is not None
    assert usd(json.loads(data.group(1))["total"]["cost"]) == demo_ledger.cost() == usd(doc["total"]["cost"])


def run_cli(capsys, *argv: str) -> "tuple[int, str, str]":
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_exports_with_the_filters_given(demo_ledger, tmp_path, capsys):
    target = tmp_path / "cost.html"
    code, out, err = run_cli(capsys, "dashboard", "--ledger", demo_ledger.url, "--config", str(demo_ledger.config),
                             "--period", "day", "--tenant", "acme", "--export", str(target))
    assert code == 0, err
    assert f"${demo_ledger.cost(tenant='acme')}" in out and "4 calls" in out
    assert "support-monthly" in target.read_text()


@pytest.mark.parametrize("argv, message", [
    (["--ledger", "sqlite:///nowhere/calls.db"], "no such file"),
    (["--host", "0.0.0.0"], "loopback only"),
    (["--port", "70000"], "--port 70000"),
    (["--jaeger", "localhost:16686"], "--jaeger"),
    (["--tz", "Mars/Olympus"], "--tz 'Mars/Olympus'"),
    (["--config", "/nowhere/otel-ai-cost.yaml"], "/nowhere/otel-ai-cost.yaml"),
    (["--budgets", "memory://"], "memory://"),
])
def test_bad_options_fail_at_start_naming_the_option(demo_ledger, capsys, argv, message):
    if "--ledger" not in argv:
        argv = ["--ledger", demo_ledger.url, *argv]
    code, _, err = run_cli(capsys, "dashboard", *argv, "--export", "/dev/null")
    assert code == 2 and message in err


def test_a_file_that_is_not_a_ledger_fails_at_start(tmp_path, capsys):
    path = tmp_path / "notes.db"
    path.write_text("not a database")
    code, _, err = run_cli(capsys, "dashboard", "--ledger", f"sqlite://{path}", "--export", str(tmp_path / "x.html"))
    assert code == 2 and f"call ledger '{path}'" in err and not (tmp_path / "x.html").exists()


def test_the_bundled_chart_js_is_the_one_the_provenance_names():
    provenance = (STATIC / "PROVENANCE.md").read_text()
    digest = hashlib.sha256((STATIC / "chart.umd.min.js").read_bytes()).hexdigest()
    assert f"file `package/dist/chart.umd.min.js`: sha256 `{digest}`" in provenance
    assert "MIT License" in (STATIC / "chart.js.LICENSE.md").read_text()
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "dashboard/static/*" in package_data["otel_ai_cost"]  # the wheel ships the page and Chart.js
    assert "recursive-include src/otel_ai_cost/dashboard/static *" in (ROOT / "MANIFEST.in").read_text()


def test_the_demo_ends_pointing_at_the_dashboard_and_the_report_of_its_ledger(capsys):
    out = io.StringIO()
    assert run_demo(out) == 0
    # The last lines: the two commands, continued on a second line (the demo's output fits 100 columns).
    commands = out.getvalue().rstrip().replace(" \\\n", " ").splitlines()[-2:]
    dashboard, report = (" ".join(line.split()) for line in commands)
    match = re.fullmatch(r"otel-ai-cost dashboard --ledger (sqlite:///\S+)", dashboard)
    assert match is not None, commands
    url = match.group(1)
    assert report == f"otel-ai-cost report --by model --ledger {url}"
    assert url == f"sqlite://{demo_ledger_path()}"
    rows = read_rows(url[len("sqlite://"):])
    assert rows
    code, printed, err = run_cli(capsys, "report", "--ledger", url, "--format", "json")
    assert code == 0, err
    assert json.loads(printed)["total"]["calls"] == len(rows)
    assert Decimal(json.loads(printed)["total"]["cost"]) == sum(
        (Decimal(r["cost"]) for r in rows if r["cost"] is not None), Decimal(0))
