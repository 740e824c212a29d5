"""The Grafana dashboards of dashboards/ query names that exist.

* Prometheus: the real OpenTelemetry Python Prometheus exporter (``PrometheusMetricReader``) exposes
  what our instrumentation, budgets and anomaly reporter record for real SDK calls (the OpenAI SDK
  against the fake API of tests/_fake_openai.py). Those series are the ``sdk`` lines of
  dashboards/promqlcheck/testdata/series.txt, which the Go test (dashboards/promqlcheck, run by
  scripts/test-collector) loads to parse and evaluate every query with the Prometheus engine. The
  ``collector`` and ``telemetry`` lines are checked there against the naming code Prometheus and the
  collector run (otlptranslator); here every metric and label a query uses must be on some line.
* Tempo: no Tempo runs here (it is AGPL; dashboards/traceqlcheck parses the queries with Grafana's
  TraceQL grammar); every ``span.<attribute>`` a TraceQL query uses must be declared in semconv/
  (ours or the upstream names we use) or be an attribution baggage key.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest
import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from _fake_openai import FakeOpenAI
from otel_ai_cost import AICostSpanProcessor, BudgetExceededError
from otel_ai_cost import _semconv as sc
from otel_ai_cost.anomalies import AnomalyDetector, AnomalyMonitor, AnomalyReporter, CallRecord
from otel_ai_cost.attribution import TENANT_KEY, USER_KEY
from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime
from otel_ai_cost.config import DEFAULT_BAGGAGE_KEYS, Settings
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
from otel_ai_cost.ledger import LedgerSpanExporter

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
PROMETHEUS = DASHBOARDS / "otel-ai-cost-prometheus.json"
TEMPO = DASHBOARDS / "otel-ai-cost-tempo.json"
SERIES = DASHBOARDS / "promqlcheck" / "testdata" / "series.txt"
# Labels the scrape adds (job, instance), or Prometheus's OTLP receiver from service.name /
# service.instance.id; `le` is the bucket bound of a histogram's _bucket series.
ADDED_LABELS = {"job", "instance", "le"}
# Labels whose value differs between builds, not between behaviours.
VOLATILE = {"otel_scope_version"}
GRAFANA_VARIABLES = {"__range", "__rate_interval", "__interval", "__range_s", "__interval_ms"}

_SERIES_LINE = re.compile(r'^(sdk|collector|telemetry) ([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*?)\}(?: (\S+))?$')
_LABEL = re.compile(r'"?([a-zA-Z_][a-zA-Z0-9_.]*)"?="([^"]*)"')  # a name with dots is quoted


def _series(name: str, labels: Dict[str, str]) -> str:
    body = ",".join(f'{k}="{"" if k in VOLATILE else v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{body}}}"


def _file_series() -> List[Tuple[str, str, Dict[str, str]]]:
    """(source, name, labels) of each line of series.txt."""
    out = []
    for n, line in enumerate(SERIES.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _SERIES_LINE.match(line)
        assert m, f"{SERIES.name}:{n}: not '<source> <name>{{labels}} [values]': {line!r}"
        out.append((m.group(1), m.group(2), dict(_LABEL.findall(m.group(3)))))
    return out


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Prometheus text exposition of our metrics for: a priced chat call (gpt-4o-mini), a call a
    budget blocks (gpt-4o), a runaway agent trace the anomaly detector flags, and a call ledger whose
    disk fails (its rows are dropped)."""
    registry = CollectorRegistry()
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    processor = AICostSpanProcessor(
        meter_provider=meter_provider, settings=Settings(), budget_store=MemoryBudgetStore(),
        budgets=[Budget("gpt-4o-cap", Decimal("0.000001"), lifetime(), selector={sc.GEN_AI_REQUEST_MODEL: "gpt-4o"})],
    )
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(processor)
    not_a_dir = tmp_path_factory.mktemp("ledger") / "not-a-dir"
    not_a_dir.write_text("a file where the ledger's directory should be")
    ledger = LedgerSpanExporter(f"sqlite://{not_a_dir / 'calls.db'}", flush_interval=0.01,
                                meter_provider=meter_provider)
    tracer_provider.add_span_processor(SimpleSpanProcessor(ledger))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        client = FakeOpenAI().client()
        messages = [{"role": "user", "content": "Classify the ticket: my invoice is wrong."}]
        client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=20)
        with pytest.raises(BudgetExceededError):
            client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=20)
        monitor = AnomalyMonitor(AnomalyDetector(default_trace_calls=3), AnomalyReporter(meter_provider=meter_provider))
        findings = []
        for i in range(4):  # 4 calls in a trace whose usual size is 3: a runaway trace
            findings += monitor.observe(CallRecord(time=1_764_547_200.0 + 2 * i, model="gpt-4o", trace_id="t1",
                                                   cost=0.01, input_tokens=2000, output_tokens=300,
                                                   dims={"service.name": "agent"}, fingerprint=i), None)
        assert [f.type for f in findings] == ["runaway_trace"]
        assert ledger.force_flush() and ledger.dropped == 1  # the priced call's row
        yield generate_latest(registry).decode()
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()


@pytest.fixture(scope="module")
def exposed(exposition: str) -> Dict[str, Set[str]]:
    """Sample name -> the series of our metrics in the exposition (normalized)."""
    out: Dict[str, Set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name.startswith(("ai_cost_", "gen_ai_")):
                out.setdefault(sample.name, set()).add(_series(sample.name, sample.labels))
    return out


def test_the_exporter_names_our_metrics_as_the_dashboards_expect(exposed: Dict[str, Set[str]]) -> None:
    # Dots become underscores, `{...}` units are dropped, `s` becomes _seconds, counters get _total.
    assert set(exposed) == {
        "ai_cost_client_cost_total", "ai_cost_budget_decisions_total", "ai_cost_anomalies_total",
        "ai_cost_ledger_dropped_rows_total",
        "gen_ai_client_token_usage_bucket", "gen_ai_client_token_usage_sum", "gen_ai_client_token_usage_count",
        "gen_ai_client_operation_duration_seconds_bucket", "gen_ai_client_operation_duration_seconds_sum",
        "gen_ai_client_operation_duration_seconds_count",
    }
    [cost] = exposed["ai_cost_client_cost_total"]
    assert 'gen_ai_request_model="gpt-4o-mini"' in cost and 'gen_ai_provider_name="openai"' in cost
    [decision] = exposed["ai_cost_budget_decisions_total"]
    assert 'ai_cost_budget_decision="block"' in decision and 'ai_cost_budget_id="gpt-4o-cap"' in decision
    [anomaly] = exposed["ai_cost_anomalies_total"]
    assert 'ai_cost_anomaly_type="runaway_trace"' in anomaly and 'ai_cost_anomaly_severity="warning"' in anomaly
    [dropped] = exposed["ai_cost_ledger_dropped_rows_total"]
    assert 'ai_cost_ledger_drop_reason="write_failed"' in dropped


def test_the_sdk_lines_of_series_txt_are_the_exposition(exposed: Dict[str, Set[str]]) -> None:
    """The Go test evaluates the dashboards' queries on these lines: they must be what is exposed."""
    real = set().union(*exposed.values())
    in_file = {_series(name, labels) for source, name, labels in _file_series() if source == "sdk"}
    assert in_file == real, ("series.txt's sdk lines differ from the exposition; the exposition's lines:\n"
                             + "\n".join("sdk " + s for s in sorted(real)))


def _prometheus_queries() -> List[Tuple[str, str]]:
    """(where, PromQL or label_values(...) query) of every panel target and query variable."""
    doc = json.loads(PROMETHEUS.read_text(encoding="utf-8"))
    out = [(f"panel {p['title']!r}", t["expr"]) for p in doc["panels"] for t in p.get("targets", [])]
    out += [(f"variable {v['name']!r}", v["query"]["query"]) for v in doc["templating"]["list"] if v["type"] == "query"]
    assert len(out) > 20
    return out


_BRACES = re.compile(r"\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_METRIC = re.compile(r"\b((?:ai_cost|gen_ai|otelcol)_[a-z0-9_]+)\b")


def _names_in(query: str) -> Tuple[Set[str], Set[str]]:
    """(metric names, label names) a query uses. A coarse reading: the Go test reads each query with
    the Prometheus parser and checks each selector and grouping on its own."""
    labels: Set[str] = set()
    metrics: Set[str] = set()
    for body in _BRACES.findall(query):
        for matcher in filter(None, (m.strip() for m in body.split(","))):
            name = re.match(r"\"?([a-zA-Z_][a-zA-Z0-9_.]*)\"?\s*(=~|!~|!=|=)\s*\"(.*)\"$", matcher)
            assert name, f"unreadable matcher {matcher!r} in {query!r}"
            if name.group(1) == "__name__":
                metrics.update(n for n in name.group(3).split("|") if n and not n.endswith(".*"))
            else:
                labels.add(name.group(1))
    rest = _BRACES.sub("", query)
    for body in _GROUPING.findall(rest):
        labels.update(n.strip().strip('"') for n in body.split(",") if n.strip())
    rest = _GROUPING.sub("", rest)
    values = re.match(r"^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$", rest)
    if values:
        labels.add(values.group(2))
        rest = values.group(1)
    metrics.update(_METRIC.findall(rest))
    return metrics, labels


def test_prometheus_queries_use_only_exposed_metrics_and_labels(exposed: Dict[str, Set[str]]) -> None:
    labels_of: Dict[str, Set[str]] = {}
    for name, series in exposed.items():  # the real exposition for the sdk metrics
        for s in series:
            labels_of.setdefault(name, set()).update(_LABEL_NAMES.findall(s))
    for source, name, labels in _file_series():  # series.txt for the collector's (checked by the Go test)
        if source != "sdk":
            labels_of.setdefault(name, set()).update(labels)
    used_metrics: Set[str] = set()
    for where, query in _prometheus_queries():
        metrics, labels = _names_in(query)
        assert metrics, f"{where}: no metric of ours in {query!r}"
        unknown = metrics - set(labels_of)
        assert not unknown, f"{where}: {sorted(unknown)} is neither exposed nor in series.txt: {query!r}"
        available = set().union(*(labels_of[m] for m in metrics)) | ADDED_LABELS
        assert labels <= available, f"{where}: labels {sorted(labels - available)} are on none of {sorted(metrics)}"
        used_metrics |= metrics
    # Every metric of ours that Prometheus gets has a panel.
    assert used_metrics >= {"ai_cost_client_cost_total", "ai_cost_budget_decisions_total", "ai_cost_anomalies_total",
                            "ai_cost_ledger_dropped_rows_total", "otelcol_processor_ai_cost_anomalies",
                            "gen_ai_client_token_usage_sum", "gen_ai_client_operation_duration_seconds_bucket",
                            "ai_cost_spans_cost_total", "ai_cost_spans_unknown_model_operations_total",
                            "ai_cost_spans_budget_spent", "ai_cost_spans_budget_limit"}


_LABEL_NAMES = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')


def test_the_coarse_reading_finds_metrics_and_labels() -> None:
    metrics, labels = _names_in('100 * max by (ai_cost_budget_id) (last_over_time(ai_cost_spans_budget_spent'
                                '{job=~"$service"}[1h])) / on (ai_cost_budget_id) sum(x_total{__name__="ai_cost_a"})')
    assert metrics == {"ai_cost_spans_budget_spent", "ai_cost_a"} and labels == {"ai_cost_budget_id", "job"}
    assert _names_in('label_values({__name__=~"ai_cost_spans_cost_total|ai_cost_client_cost_total"}, tenant_id)') == (
        {"ai_cost_spans_cost_total", "ai_cost_client_cost_total"}, {"tenant_id"})


# --- Tempo -------------------------------------------------------------------------------------


def _declared_attributes() -> Set[str]:
    keys: Set[str] = set()
    for path in (ROOT / "semconv").glob("*.yaml"):
        keys.update(a["key"] for a in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("attributes", []))
    upstream = yaml.safe_load((ROOT / "semconv" / "upstream" / "gen_ai.yaml").read_text(encoding="utf-8"))
    keys.update(a["key"] for a in upstream["attributes"])
    # Attribution: copied from baggage onto the span (otel_ai_cost.attribution, OTEL_AI_COST_BAGGAGE_KEYS).
    return keys | {TENANT_KEY, USER_KEY, *DEFAULT_BAGGAGE_KEYS}


def _traceql_queries() -> List[Tuple[str, Dict[str, Any]]]:
    doc = json.loads(TEMPO.read_text(encoding="utf-8"))
    out = [(p["title"], t) for p in doc["panels"] for t in p.get("targets", [])]
    assert len(out) >= 12
    return out


_TRACEQL_ATTRIBUTE = re.compile(r"\b(span|resource|event|link|instrumentation)\.([a-zA-Z_][a-zA-Z0-9_.]*[a-zA-Z0-9_])")


def test_traceql_queries_use_declared_attributes() -> None:
    declared = _declared_attributes()
    used: Set[str] = set()
    for title, target in _traceql_queries():
        query = target["query"]
        assert target["queryType"] == "traceql", title
        scopes = _TRACEQL_ATTRIBUTE.findall(query)
        assert scopes, f"{title}: no attribute in {query!r}"
        for scope, key in scopes:
            assert scope in ("span", "resource"), f"{title}: {scope}.{key}"
            if scope == "resource":
                assert key == "service.name", f"{title}: resource.{key} is not a resource attribute we rely on"
            else:
                assert key in declared, f"{title}: span.{key} is not declared in semconv/: {query!r}"
                used.add(key)
        metrics = bool(re.search(r"\|\s*(sum_over_time|max_over_time|count_over_time|rate)\(", query))
        assert (target.get("metricsQueryType") == "range") == metrics, f"{title}: metrics query type"
        assert query.count("{") == query.count("}") and query.count("(") == query.count(")"), title
    assert {sc.GEN_AI_USAGE_COST_AMOUNT, sc.AI_COST_PRICING_MODEL, sc.AI_COST_BUDGET_SPENT, sc.AI_COST_BUDGET_LIMIT,
            sc.AI_COST_ANOMALY_TYPE, sc.AI_COST_ANOMALY_SEVERITY, TENANT_KEY} <= used


def test_the_attribute_check_catches_an_undeclared_name() -> None:
    assert _TRACEQL_ATTRIBUTE.findall("{ span.gen_ai.usage.cost > 1 } | by(resource.service.name)") == [
        ("span", "gen_ai.usage.cost"), ("resource", "service.name")]
    assert "gen_ai.usage.cost" not in _declared_attributes()
    assert "gen_ai.usage.cost.amount" in _declared_attributes() and "tenant.id" in _declared_attributes()


# --- both dashboards -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [PROMETHEUS, TEMPO], ids=lambda p: p.name)
def test_dashboard_is_importable(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    datasource_type = "prometheus" if path == PROMETHEUS else "tempo"
    assert doc["uid"].startswith("otel-ai-cost-") and doc["title"] and doc["schemaVersion"] >= 36
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == datasource_type
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": datasource_type, "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            query = target.get("expr", target.get("query"))
            for name in re.findall(r"\$\{?([a-zA-Z_][a-zA-Z0-9_]*)", query + " " + panel["title"]):
                assert name in variables or name in GRAFANA_VARIABLES, f"{panel['title']}: ${name} is not defined"
