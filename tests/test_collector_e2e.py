"""End to end with real parts: the otelcol-ai-cost distribution (built from collector/builder-config.yaml)
and a real Jaeger v2 (v1.75.0, memory storage), both on free loopback ports. Three sources send spans
to the collector, which prices them and forwards them to Jaeger; the test reads Jaeger's HTTP API:

* the demo app (the fake OpenAI provider, instrumented by otel-ai-cost): costs already on the spans
  are kept, blocked and unknown-model calls are findable;
* an app instrumented only by the official OpenAI instrumentation (tokens, no cost): the collector adds
  the cost, the same doubles the Python engine computes from the same attributes;
* raw OTLP spans with OpenInference and OpenLLMetry names, an agent span repeating its children's
  tokens, and an unknown model.

The collector also sends its metrics (signal_to_metrics, and an app's SDK metrics it receives over
OTLP) to a real Prometheus (v3.7, its OTLP receiver), which scrapes the collector's own telemetry: every
query of dashboards/otel-ai-cost-prometheus.json must return data there.

Building needs Go; scripts/build-collector caches the programs (first run: minutes; then: instant).
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from otel_ai_cost._span_pricing import span_cost_attributes
from otel_ai_cost.cost import usage_from_attributes
from otel_ai_cost.pricing import default_catalog

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "collector" / "README.md"
BUILD_TIMEOUT = 45 * 60


def _free_ports(n: int) -> List[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
        body = resp.read()
    return json.loads(body) if body[:1] in (b"{", b"[") else body.decode()


def _wait(what: str, check: Any, timeout: float, proc: Optional[subprocess.Popen] = None,
          log: Optional[Path] = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}:\n"
                                 f"{log.read_text()[-4000:] if log else ''}")
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"{what}: not ready after {timeout}s (last: {last!r})"
                         + (f"\n{log.read_text()[-4000:]}" if log else ""))


JAEGER_CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""

# Added to collector/config.yaml (the collector merges the two): the processor's anomaly detector on
# (runaway traces from 3 calls: the demo's agent loop), the metrics to Prometheus's OTLP receiver, and
# the apps' own OTLP metrics through the same pipeline.
COLLECTOR_TO_PROMETHEUS = """
processors:
  ai_cost:
    anomalies:
      enabled: true
      max_trace_calls: 2
exporters:
  otlp_http/prometheus:
    endpoint: http://127.0.0.1:{prometheus}/api/v1/otlp
service:
  pipelines:
    metrics:
      receivers: [signal_to_metrics, otlp]
      exporters: [file/metrics, debug, otlp_http/prometheus]
"""

# out_of_order_time_window: the collector's exporter sends with several consumers, so two exports of
# the app's metrics 0.2 s apart can reach Prometheus in either order; without it the older sample is
# refused and rate()/increase() over the in-process metrics have one sample, so no value.
PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
storage:
  tsdb:
    out_of_order_time_window: 30m
scrape_configs:
  - job_name: otelcol
    static_configs:
      - targets: ["127.0.0.1:{telemetry}"]
"""


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        (self.otlp_grpc, self.otlp_http, self.telemetry, self.jaeger_otlp, self.jaeger_http,
         self.jaeger_grpc, self.jaeger_health, self.prometheus) = _free_ports(8)
        self.metrics_file = tmp / "metrics.jsonl"
        self.procs: List[subprocess.Popen] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_grpc}"

    def start(self) -> None:
        built = subprocess.run([str(ROOT / "scripts" / "build-collector")], capture_output=True, text=True,
                               timeout=BUILD_TIMEOUT)
        assert built.returncode == 0, f"scripts/build-collector failed:\n{built.stderr[-6000:]}"
        paths = dict(line.split("=", 1) for line in built.stdout.split() if "=" in line)
        jaeger_cfg = self.tmp / "jaeger.yaml"
        jaeger_cfg.write_text(JAEGER_CONFIG.format(health=self.jaeger_health, query_http=self.jaeger_http,
                                                   query_grpc=self.jaeger_grpc, otlp=self.jaeger_otlp))
        jaeger_log = self.tmp / "jaeger.log"
        jaeger = self._spawn([paths["JAEGER"], "--config", str(jaeger_cfg)], jaeger_log, {})
        _wait("jaeger", lambda: "StatusOK" in json.dumps(_get(f"http://127.0.0.1:{self.jaeger_health}/status"))
              or _get(f"http://127.0.0.1:{self.jaeger_health}/status"), 120, jaeger, jaeger_log)
        prometheus_cfg = self.tmp / "prometheus.yml"
        prometheus_cfg.write_text(PROMETHEUS_CONFIG.format(telemetry=self.telemetry))
        prometheus_log = self.tmp / "prometheus.log"
        # signal_to_metrics makes delta sums: Prometheus's OTLP receiver refuses them unless told what
        # to do with them; stored as they come (otlp-native-delta-ingestion), sum_over_time adds them up.
        prometheus = self._spawn([paths["PROMETHEUS"], f"--config.file={prometheus_cfg}",
                                  f"--web.listen-address=127.0.0.1:{self.prometheus}", "--web.enable-otlp-receiver",
                                  "--enable-feature=otlp-native-delta-ingestion",
                                  f"--storage.tsdb.path={self.tmp / 'prometheus-data'}"], prometheus_log, {})
        _wait("prometheus", lambda: _get(f"http://127.0.0.1:{self.prometheus}/-/ready"), 120, prometheus,
              prometheus_log)
        overlay = self.tmp / "to-prometheus.yaml"
        overlay.write_text(COLLECTOR_TO_PROMETHEUS.format(prometheus=self.prometheus))
        env = {
            "AI_COST_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.otlp_grpc}",
            "AI_COST_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.otlp_http}",
            "AI_COST_TRACES_ENDPOINT": f"127.0.0.1:{self.jaeger_otlp}",
            "AI_COST_METRICS_FILE": str(self.metrics_file),
            "AI_COST_TELEMETRY_PORT": str(self.telemetry),
        }
        self.collector_log = self.tmp / "otelcol.log"
        collector = self._spawn([paths["OTELCOL"], "--config", str(ROOT / "collector" / "config.yaml"),
                                 "--config", str(overlay)], self.collector_log, env)
        _wait("otelcol-ai-cost", lambda: "otelcol_" in _get(f"http://127.0.0.1:{self.telemetry}/metrics"),
              60, collector, self.collector_log)
        _wait("otelcol-ai-cost OTLP",
              lambda: socket.create_connection(("127.0.0.1", self.otlp_grpc), 1).close() or True,
              30, collector, self.collector_log)

    def _spawn(self, cmd: List[str], log: Path, env: Dict[str, str]) -> subprocess.Popen:
        full = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        full.update(env)
        proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=full, cwd=self.tmp)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -- Jaeger HTTP API -------------------------------------------------------------------------

    def traces(self, service: str, tags: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
        query = {"service": service, "limit": "1000", "lookback": "1h"}
        if tags:
            query["tags"] = json.dumps(tags)
        return _get(f"http://127.0.0.1:{self.jaeger_http}/api/traces?{urllib.parse.urlencode(query)}")["data"] or []

    def spans(self, service: str, tags: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
        out = []
        for trace in self.traces(service, tags):
            for span in trace["spans"]:
                span["attrs"] = {t["key"]: t["value"] for t in span["tags"]}
                out.append(span)
        return out

    def wait_spans(self, service: str, count: int, timeout: float = 60) -> List[Dict[str, Any]]:
        return _wait(f"{count} spans of {service} in Jaeger", lambda: (lambda s: s if len(s) >= count else None)(
            self.spans(service)), timeout, log=self.collector_log)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("collector-e2e"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _run_python(stack: Stack, code: str, service: str, extra_env: Optional[Dict[str, str]] = None,
                args: Optional[List[str]] = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": stack.endpoint, "OTEL_SERVICE_NAME": service,
                "OTEL_BSP_SCHEDULE_DELAY": "100"}, **(extra_env or {}))
    cmd = args or [sys.executable, "-c", code]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, cwd=stack.tmp)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _python_cost(attrs: Dict[str, Any]) -> Dict[str, Any]:
    usage = usage_from_attributes(attrs)
    assert usage is not None
    return span_cost_attributes(attrs, usage, default_catalog())


def _cost_tags(attrs: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in attrs.items()
            if k.startswith(("gen_ai.usage.cost.", "ai_cost.cost.", "ai_cost.pricing."))}


# --- the demo app, instrumented by otel-ai-cost -------------------------------------------------

@pytest.fixture(scope="module")
def demo_spans(stack: Stack) -> List[Dict[str, Any]]:
    _run_python(stack, "", "e2e-demo", args=[str(Path(sys.executable).parent / "otel-ai-cost"), "demo"])
    stack.wait_spans("e2e-demo", 10)
    time.sleep(1.5)  # late batches
    return stack.spans("e2e-demo")


def test_demo_costs_are_kept_as_the_sdk_computed_them(demo_spans: List[Dict[str, Any]]) -> None:
    inference = [s for s in demo_spans if s["attrs"].get("gen_ai.operation.name") in ("chat", "embeddings")
                 and "gen_ai.usage.input_tokens" in s["attrs"]]
    priced = [s for s in inference if "gen_ai.usage.cost.amount" in s["attrs"]]
    assert len(priced) >= 5
    version = default_catalog().version
    for span in priced:
        attrs = span["attrs"]
        # Kept (override: never): as the SDK computed them, not priced a second time.
        assert attrs["gen_ai.usage.cost.source"] == "local"
        assert attrs["ai_cost.pricing.catalog_version"] == version
        assert attrs["ai_cost.pricing.status"] in ("priced", "partial")
        assert (attrs["gen_ai.usage.cost.amount"] == sum(v for k, v in attrs.items() if k.startswith("ai_cost.cost."))
                or math.isclose(attrs["gen_ai.usage.cost.amount"],
                                sum(v for k, v in attrs.items() if k.startswith("ai_cost.cost.")), rel_tol=1e-12))
    unknown = [s for s in demo_spans if s["attrs"].get("ai_cost.pricing.status") == "unknown_model"]
    assert unknown and all("gen_ai.usage.cost.amount" not in s["attrs"] for s in unknown)


# --- an app with the official OpenAI instrumentation only (tokens, no cost) ---------------------

OFFICIAL_APP = textwrap.dedent("""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    import openai
    from otel_ai_cost.demo import FakeOpenAIServer

    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument()
    with FakeOpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-fake")
        for model in ("gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"):
            client.chat.completions.create(model=model, messages=[
                {"role": "user", "content": "Summarise our refund policy for a customer in two sentences."}])
        client.embeddings.create(model="text-embedding-3-small", input=["refund policy", "double charge"])
    provider.shutdown()
""")


@pytest.fixture(scope="module")
def official_spans(stack: Stack) -> List[Dict[str, Any]]:
    _run_python(stack, OFFICIAL_APP, "e2e-official")
    return stack.wait_spans("e2e-official", 4)


def test_official_instrumentation_spans_get_the_python_engines_cost(official_spans: List[Dict[str, Any]]) -> None:
    scopes = {s["attrs"].get("otel.scope.name") for s in official_spans}
    assert scopes == {"opentelemetry.instrumentation.genai.openai"}
    assert len(official_spans) == 4
    for span in official_spans:
        attrs = span["attrs"]
        assert attrs["gen_ai.usage.input_tokens"] > 0
        got = _cost_tags(attrs)
        assert got["ai_cost.pricing.status"] == "priced"
        assert got["gen_ai.usage.cost.amount"] > 0
        # The Go processor's doubles are the Python engine's, bit for bit.
        assert got == _python_cost(attrs), span["operationName"]
    mini = next(s["attrs"] for s in official_spans if s["attrs"]["gen_ai.request.model"] == "gpt-4o-mini")
    # gpt-4o-mini list price: $0.15 / M input, $0.60 / M output.
    want = (mini["gen_ai.usage.input_tokens"] * 0.15 + mini["gen_ai.usage.output_tokens"] * 0.6) / 1e6
    assert math.isclose(mini["gen_ai.usage.cost.amount"], want, rel_tol=1e-12)


# --- raw OTLP spans with OpenInference and OpenLLMetry names -------------------------------------

RAW_APP = textwrap.dedent("""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("e2e.raw")
    with tracer.start_as_current_span("agent run", attributes={
            "openinference.span.kind": "AGENT", "llm.model_name": "gpt-4o", "llm.provider": "openai",
            "llm.token_count.prompt": 4000, "llm.token_count.completion": 600, "tenant.id": "initech"}):
        tracer.start_span("openinference llm", kind=SpanKind.INTERNAL, attributes={
            "openinference.span.kind": "LLM", "llm.provider": "openai", "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 2000, "llm.token_count.prompt_details.cache_read": 1024,
            "llm.token_count.completion": 300, "tenant.id": "initech"}).end()
        tracer.start_span("openai.chat", kind=SpanKind.CLIENT, attributes={
            "llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": "2000", "gen_ai.usage.cache_read_input_tokens": 1024,
            "gen_ai.usage.completion_tokens": 300.0, "tenant.id": "initech"}).end()
        tracer.start_span("chat my-finetune", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "ft:acme-0001",
            "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10, "tenant.id": "globex"}).end()
    provider.shutdown()
""")


@pytest.fixture(scope="module")
def raw_spans(stack: Stack) -> Dict[str, Dict[str, Any]]:
    _run_python(stack, RAW_APP, "e2e-raw")
    return {s["operationName"]: s["attrs"] for s in stack.wait_spans("e2e-raw", 4)}


def test_openinference_and_openllmetry_spans_are_priced(raw_spans: Dict[str, Dict[str, Any]]) -> None:
    # 976 uncached x $2.50/M + 1024 cached x $1.25/M + 300 out x $10/M (vector openai-gpt-4o-cached).
    for name in ("openinference llm", "openai.chat"):
        attrs = raw_spans[name]
        assert attrs["gen_ai.usage.cost.amount"] == 0.00672, name
        assert attrs["ai_cost.cost.input"] == 0.00244 and attrs["ai_cost.cost.cache_read"] == 0.00128
        assert attrs["ai_cost.cost.output"] == 0.003
        assert attrs["ai_cost.pricing.model"] == "gpt-4o" and attrs["gen_ai.usage.cost.source"] == "local"


def test_agent_span_is_not_priced_and_unknown_model_says_so(raw_spans: Dict[str, Dict[str, Any]]) -> None:
    agent = raw_spans["agent run"]
    assert not _cost_tags(agent)
    unknown = raw_spans["chat my-finetune"]
    assert unknown["ai_cost.pricing.status"] == "unknown_model"
    assert "gen_ai.usage.cost.amount" not in unknown
    assert unknown["ai_cost.pricing.catalog_version"] == default_catalog().version


# --- the README's Jaeger queries, the cost metrics and the processor's own telemetry ------------

def _readme_jaeger_queries() -> List[str]:
    text = README.read_text(encoding="utf-8")
    queries = re.findall(r"^GET (/api/traces\?\S+)$", text, re.M)
    assert len(queries) >= 4, "collector/README.md lists the Jaeger queries the test runs"
    return queries


def test_readme_jaeger_queries(stack: Stack, demo_spans: Any, official_spans: Any, raw_spans: Any) -> None:
    """The README's tag searches (service=my-service), run on each of the test's services."""
    results: Dict[str, List[Dict[str, Any]]] = {}
    for query in _readme_jaeger_queries():
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(query).query))
        assert params.pop("service") == "my-service", query
        tags = json.loads(params.pop("tags"))
        key = json.dumps(tags, sort_keys=True)
        results[key] = []
        for svc in ("e2e-demo", "e2e-official", "e2e-raw"):
            for trace in stack.traces(svc, tags):  # Jaeger returns the whole traces that have a matching span
                spans = [{**sp, "attrs": {t["key"]: t["value"] for t in sp["tags"]}} for sp in trace["spans"]]
                matching = [sp for sp in spans if all(sp["attrs"].get(k) == v for k, v in tags.items())]
                assert matching, (query, trace["traceID"])
                results[key] += matching
    by_tags = results
    unknown = by_tags[json.dumps({"ai_cost.pricing.status": "unknown_model"}, sort_keys=True)]
    assert {s["attrs"].get("gen_ai.request.model") for s in unknown} >= {"ft:acme-0001"}
    blocked = by_tags[json.dumps({"ai_cost.budget.decision": "block"}, sort_keys=True)]
    assert blocked and all(s["attrs"]["ai_cost.budget.decision"] == "block" for s in blocked)
    gpt4o = by_tags[json.dumps({"ai_cost.pricing.model": "gpt-4o"}, sort_keys=True)]
    assert gpt4o and all(s["attrs"]["ai_cost.pricing.model"] == "gpt-4o" for s in gpt4o)
    initech = by_tags[json.dumps({"tenant.id": "initech", "ai_cost.pricing.status": "priced"}, sort_keys=True)]
    assert {s["operationName"] for s in initech} >= {"openinference llm", "openai.chat"}


def _metric_points(path: Path, name: str) -> List[Dict[str, Any]]:
    points = []
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        for rm in doc.get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for metric in sm.get("metrics", []):
                    if metric["name"] == name:
                        for dp in (metric.get("sum") or metric["gauge"])["dataPoints"]:
                            attrs = {a["key"]: next(iter(a["value"].values())) for a in dp.get("attributes", [])}
                            value = dp.get("asDouble", dp.get("asInt"))
                            points.append({"attrs": attrs, "value": float(value)})
    return points


def test_cost_metrics_and_processor_telemetry(stack: Stack, demo_spans: Any, official_spans: Any,
                                             raw_spans: Dict[str, Dict[str, Any]]) -> None:
    def cost_points() -> List[Dict[str, Any]]:
        pts = _metric_points(stack.metrics_file, "ai_cost.spans.cost") if stack.metrics_file.exists() else []
        return pts if any(p["attrs"].get("tenant.id") == "initech" for p in pts) else []

    points = _wait("cost metrics", cost_points, 30, log=stack.collector_log)
    initech = sum(p["value"] for p in points if p["attrs"].get("tenant.id") == "initech")
    assert math.isclose(initech, 2 * 0.00672, rel_tol=1e-9)
    models = {p["attrs"]["ai_cost.pricing.model"] for p in points}
    assert {"gpt-4o", "text-embedding-3-small"} <= models
    unknown = _metric_points(stack.metrics_file, "ai_cost.spans.unknown_model_operations")
    assert any(p["attrs"]["gen_ai.request.model"] == "ft:acme-0001" and p["value"] >= 1 for p in unknown)

    telemetry = _get(f"http://127.0.0.1:{stack.telemetry}/metrics")
    # The names dashboards/otel-ai-cost-prometheus.json queries (dashboards/promqlcheck/testdata/series.txt).
    outcomes = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^otelcol_processor_ai_cost_spans\{[^}]*outcome="([a-z_]+)"[^}]*\} ([0-9.e+]+)$', telemetry, re.M)}
    assert outcomes.get("priced", 0) >= 6, telemetry[-3000:]
    assert (outcomes.get("kept", 0) >= 5 and outcomes.get("not_inference", 0) >= 1
            and outcomes.get("unknown_model", 0) >= 1)
    assert re.search(r'^otelcol_processor_ai_cost_spans\{[^}]*malformed_usage="false"', telemetry, re.M)
    anomalies = re.findall(r'^otelcol_processor_ai_cost_anomalies\{ai_cost_anomaly_severity="[a-z]+",'
                           r'ai_cost_anomaly_type="([a-z_]+)"\} [0-9]+$', telemetry, re.M)
    assert "runaway_trace" in anomalies, telemetry[-3000:]
    usd = re.search(r'^otelcol_processor_ai_cost_usd(?:\{[^}]*\})? ([0-9.e+-]+)$', telemetry, re.M)
    assert usd and float(usd.group(1)) > 0, telemetry[-3000:]


def test_budget_gauges_are_the_budget_numbers_of_the_spans(stack: Stack, demo_spans: List[Dict[str, Any]]) -> None:
    """ai_cost.spans.budget.spent / .limit (signal_to_metrics gauges): per budget, key and window, values
    the demo's budgeted spans carry (the dashboards chart spent against limit)."""
    spans: Dict[tuple, List[Dict[str, Any]]] = {}
    for s in demo_spans:
        a = s["attrs"]
        if "ai_cost.budget.limit" in a:
            key = (a["ai_cost.budget.id"], a["ai_cost.budget.key"], a["ai_cost.budget.window"])
            spans.setdefault(key, []).append(a)
    assert spans

    def gauges() -> List[Dict[str, Any]]:
        return _metric_points(stack.metrics_file, "ai_cost.spans.budget.limit") if stack.metrics_file.exists() else []

    limits = _wait("budget gauges", gauges, 30, log=stack.collector_log)
    spent = _metric_points(stack.metrics_file, "ai_cost.spans.budget.spent")
    assert spent
    for name, points in (("ai_cost.budget.limit", limits), ("ai_cost.budget.spent", spent)):
        for p in points:
            key = tuple(p["attrs"][k] for k in ("ai_cost.budget.id", "ai_cost.budget.key", "ai_cost.budget.window"))
            assert key in spans, (key, sorted(spans))
            assert p["value"] in {a[name] for a in spans[key]}, (name, p, spans[key])
    assert {p["value"] for p in limits} == {a["ai_cost.budget.limit"] for group in spans.values() for a in group}


# --- the Grafana dashboard's PromQL on a real Prometheus ------------------------------------------

# An app's SDK metrics over OTLP (cumulative, as the SDK exports them) through the collector: a priced
# call, a call a budget blocks, a runaway trace and a call ledger whose disk fails, twice, each run
# exported on its own (force_flush), so that increase() and rate() have two samples.
SDK_METRICS_APP = textwrap.dedent("""
    import pathlib
    import tempfile
    import time
    from decimal import Decimal
    import openai
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from otel_ai_cost import AICostSpanProcessor, BudgetExceededError
    from otel_ai_cost.anomalies import AnomalyDetector, AnomalyMonitor, AnomalyReporter, CallRecord
    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime
    from otel_ai_cost.config import Settings
    from otel_ai_cost.demo import FakeOpenAIServer
    from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
    from otel_ai_cost.ledger import LedgerSpanExporter

    meters = MeterProvider(resource=Resource.create(), metric_readers=[
        PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=600_000)])
    tracer = TracerProvider(resource=Resource.create())
    cap = Budget("gpt-4o-cap", Decimal("0.000001"), lifetime(), selector={"gen_ai.request.model": "gpt-4o"})
    tracer.add_span_processor(AICostSpanProcessor(meter_provider=meters, settings=Settings(),
                                                  budgets=[cap], budget_store=MemoryBudgetStore()))
    not_a_dir = pathlib.Path(tempfile.mkdtemp()) / "not-a-dir"
    not_a_dir.write_text("a file where the ledger's directory should be")
    ledger = LedgerSpanExporter(f"sqlite://{not_a_dir / 'calls.db'}", flush_interval=0.01, meter_provider=meters)
    tracer.add_span_processor(SimpleSpanProcessor(ledger))
    OpenAIInstrumentor().instrument(tracer_provider=tracer, meter_provider=meters)
    monitor = AnomalyMonitor(AnomalyDetector(default_trace_calls=3), AnomalyReporter(meter_provider=meters))
    messages = [{"role": "user", "content": "Classify the ticket: my invoice is wrong."}]
    with FakeOpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-fake", max_retries=0)
        for run in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=20)
            try:
                client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=20)
            except BudgetExceededError:
                pass
            for i in range(4):
                monitor.observe(CallRecord(time=1_764_547_200.0 + 100 * run + 2 * i, model="gpt-4o",
                                           trace_id=f"t{run}", cost=0.01, input_tokens=2000, output_tokens=300,
                                           dims={"service.name": "agent"}, fingerprint=i), None)
            ledger.force_flush()
            meters.force_flush()
            time.sleep(0.2)
    meters.shutdown()
    tracer.shutdown()
""")

# Grafana's variables, for instant queries at the end of the test: the last minutes hold all the data.
GRAFANA_VARIABLES = {"__range": "15m", "__rate_interval": "10m", "__interval": "15m",
                     "service": ".*", "provider": ".*", "tenant": ".*"}


def _dashboard_queries() -> List[Dict[str, str]]:
    doc = json.loads((ROOT / "dashboards" / "otel-ai-cost-prometheus.json").read_text(encoding="utf-8"))
    return [{"panel": p["title"], "expr": re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARIABLES[m.group(1)], t["expr"])}
            for p in doc["panels"] for t in p.get("targets", [])]


def test_every_dashboard_query_returns_data_on_prometheus(stack: Stack, demo_spans: Any, official_spans: Any,
                                                          raw_spans: Any) -> None:
    _run_python(stack, SDK_METRICS_APP, "e2e-sdk-metrics")
    prometheus = f"http://127.0.0.1:{stack.prometheus}/api/v1"

    def query(expr: str) -> List[Dict[str, Any]]:
        answer = _get(f"{prometheus}/query?{urllib.parse.urlencode({'query': expr})}")
        assert answer["status"] == "success", (expr, answer)
        return [r for r in answer["data"]["result"] if r["value"][1] not in ("NaN", "+Inf", "-Inf")]

    # Names and labels as Prometheus made them from the collector's OTLP, and its scrape of the telemetry.
    needed = ['ai_cost_spans_cost_total{tenant_id="initech"}', 'ai_cost_spans_budget_limit',
              'ai_cost_spans_unknown_model_operations_total{gen_ai_request_model="ft:acme-0001"}',
              'otelcol_processor_ai_cost_spans{outcome="priced"}', 'otelcol_processor_ai_cost_usd',
              'ai_cost_client_cost_total{job="e2e-sdk-metrics"}', 'ai_cost_anomalies_total',
              'ai_cost_budget_decisions_total{ai_cost_budget_decision="block"}', 'gen_ai_client_token_usage_bucket',
              'ai_cost_ledger_dropped_rows_total{ai_cost_ledger_drop_reason="write_failed"}',
              # Scraped by Prometheus 3 (UTF-8 names), the processor's anomaly counter keeps the dots.
              'otelcol_processor_ai_cost_anomalies{"ai_cost.anomaly.type"="runaway_trace"}']
    try:
        _wait("the metrics in Prometheus", lambda: all(query(n) for n in needed), 60)
    except AssertionError:
        raise AssertionError(f"not in Prometheus: {[n for n in needed if not query(n)]}\n"
                             + stack.collector_log.read_text()[-3000:]) from None
    # The collector's cost counter, made cumulative by Prometheus, adds up to the spans' costs (initech:
    # 2 calls of $0.00672, as in test_cost_metrics_and_processor_telemetry).
    initech = query('sum(last_over_time(ai_cost_spans_cost_total{tenant_id="initech"}[15m]))')
    assert math.isclose(float(initech[0]["value"][1]), 2 * 0.00672, rel_tol=1e-9)
    # rate() and increase() need two samples of a series: the app's later exports reach Prometheus
    # through the collector's batching a little after the first, so wait for them.
    def without_data() -> List[Dict[str, str]]:
        return [q for q in _dashboard_queries() if not query(q["expr"])]

    try:
        _wait("every dashboard query to return data", lambda: not without_data(), 60)
    except AssertionError:
        pass  # the assertion below names the queries
    empty = without_data()
    assert not empty, "queries without data:\n" + "\n".join(f"{q['panel']}: {q['expr']}" for q in empty)
