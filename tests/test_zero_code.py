"""End to end: ``opentelemetry-instrument python app.py`` on a plain app, exported over real OTLP/gRPC.

The app talks to a fake OpenAI API on loopback that answers like the real one, with fixed usage
so that the expected cost is computed by hand from the list price of gpt-4o-mini
($0.15 per million input tokens, $0.075 cached, $0.60 output).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _otlp_receiver import OTLPReceiver
from otel_ai_cost import AICostSpanProcessor, CostEnrichingSpanExporter, _zero_code

BIN = Path(sys.executable).parent
OPENTELEMETRY_INSTRUMENT = BIN / "opentelemetry-instrument"

PER_MILLION = Decimal(1_000_000)
INPUT, CACHED, OUTPUT = Decimal("0.15"), Decimal("0.075"), Decimal("0.60")

# What the fake API reports: a plain call, and a streamed call whose prompt was mostly cached.
CHAT_USAGE = {"prompt_tokens": 19, "completion_tokens": 10, "cached_tokens": 0}
STREAM_USAGE = {"prompt_tokens": 1200, "completion_tokens": 7, "cached_tokens": 1024}
CHAT_COST = float((19 * INPUT + 10 * OUTPUT) / PER_MILLION)  # 8.85e-06
STREAM_COST = float(((1200 - 1024) * INPUT + 1024 * CACHED + 7 * OUTPUT) / PER_MILLION)  # 1.074e-04


# --- a fake OpenAI API ---------------------------------------------------------------------


def _usage(u: Dict[str, int]) -> Dict[str, Any]:
    return {
        "prompt_tokens": u["prompt_tokens"],
        "completion_tokens": u["completion_tokens"],
        "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
        "prompt_tokens_details": {"cached_tokens": u["cached_tokens"], "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }


class _FakeOpenAI(BaseHTTPRequestHandler):
    server: "FakeOpenAIServer"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append({"path": self.path, "body": body})
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"Unknown path {self.path}", "type": "invalid_request_error",
                                       "code": None}})
            return
        model = body.get("model", "")
        snapshot = "gpt-4o-mini-2024-07-18" if model == "gpt-4o-mini" else model
        if body.get("stream"):
            self._stream(snapshot, bool((body.get("stream_options") or {}).get("include_usage")))
            return
        self._json(200, {
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion",
            "created": 1741569952,
            "model": snapshot,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": None,
                            "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": _usage(CHAT_USAGE),
            "service_tier": "default",
            "system_fingerprint": "fp_06737a9306",
        })

    def _json(self, status: int, payload: Dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_test")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, model: str, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.end_headers()
        base = {"id": "chatcmpl-Stream1", "object": "chat.completion.chunk", "created": 1741569953,
                "model": model, "service_tier": "default", "system_fingerprint": "fp_06737a9306"}

        def chunk(choices: List[Dict[str, Any]], **extra: Any) -> Dict[str, Any]:
            data = {**base, "choices": choices, **extra}
            if include_usage and "usage" not in extra:
                data["usage"] = None
            return data

        events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None}, "logprobs": None,
                          "finish_reason": None}])]
        for word in ("Once", " upon", " a", " time", "."):
            events.append(chunk([{"index": 0, "delta": {"content": word}, "logprobs": None, "finish_reason": None}]))
        events.append(chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
        if include_usage:
            events.append(chunk([], usage=_usage(STREAM_USAGE)))
        for event in events:
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class FakeOpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeOpenAI)
        self.requests: List[Dict[str, Any]] = []
        self.base_url = f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as r:
        yield r


# --- running an app under opentelemetry-instrument ------------------------------------------

PLAIN_APP = """
    import os

    import openai

    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI_BASE_URL"])
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=100,
    )
    print("chat:", reply.choices[0].message.content)

    # Attribution: the one piece of OpenTelemetry API an app uses to say who a call is for.
    from opentelemetry import baggage, context

    token = context.attach(baggage.set_baggage("tenant.id", "acme"))
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Tell me a very short story."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    print("stream:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))
    context.detach(token)
"""

# A span made the way other GenAI instrumentations make them (official openai-v2: gen_ai.system).
OTHER_INSTRUMENTATION_APP = """
    from opentelemetry import trace

    tracer = trace.get_tracer("opentelemetry.instrumentation.openai_v2", "2.4b0")
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT, attributes={
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 19,
        "gen_ai.usage.output_tokens": 10,
    }):
        pass
    print("done")
"""


# Under a budget from OTEL_AI_COST_CONFIG: the first call fits, the second (max_tokens=5000) would not.
BUDGET_APP = """
    import os

    import openai
    import otel_ai_cost

    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI_BASE_URL"])
    with otel_ai_cost.attribute(tenant="acme"):
        for max_tokens in (100, 5000):
            try:
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello."}], max_tokens=max_tokens,
                )
                print("sent", max_tokens)
            except otel_ai_cost.BudgetExceededError as exc:
                print("blocked", max_tokens, exc.budget_id, exc.key)
"""

BUDGET_CONFIG = """
budgets:
  - id: acme-monthly
    limit_usd: 0.001
    window: {calendar: month, tz: Europe/Paris}
    per: tenant.id
    select: {tenant.id: acme}
store:
  url: sqlite://budgets.db
"""


def run_instrumented(tmp_path: Path, app: str, receiver: OTLPReceiver, **env: str) -> subprocess.CompletedProcess:
    """Run exactly ``opentelemetry-instrument python app.py`` with the venv's scripts first on PATH."""
    (tmp_path / "app.py").write_text(textwrap.dedent(app))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    base.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="zero-code-app",
        # Only our OpenAI instrumentor: other OpenAI instrumentations may be installed in this venv.
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai",
        OPENAI_API_KEY="test",
    )
    base.pop("PYTHONPATH", None)
    base.update(env)
    assert OPENTELEMETRY_INSTRUMENT.exists(), f"{OPENTELEMETRY_INSTRUMENT} is not installed"
    return subprocess.run(
        [str(OPENTELEMETRY_INSTRUMENT), "python", "app.py"],
        cwd=tmp_path, env=base, capture_output=True, text=True, timeout=120,
    )


def span_named(name: str, scope_prefix: str = "otel_ai_cost"):
    def find(spans):
        return next((s for s in spans if s["name"] == name and s["scope"].startswith(scope_prefix)), None)

    return find


def genai_spans(spans):
    return [s for s in spans if "gen_ai.operation.name" in s["attributes"]]


# --- the tests -----------------------------------------------------------------------------


def test_plain_app_gets_cost_estimate_and_attribution(tmp_path, fake_openai, receiver):
    result = run_instrumented(tmp_path, PLAIN_APP, receiver, FAKE_OPENAI_BASE_URL=fake_openai.base_url)
    assert result.returncode == 0, result.stderr
    assert "chat: Hello! How can I help you today?" in result.stdout
    assert "stream: Once upon a time." in result.stdout
    assert [r["body"]["model"] for r in fake_openai.requests] == ["gpt-4o-mini", "gpt-4o-mini"]

    spans = receiver.wait_for(lambda s: len(genai_spans(s)) >= 2 and s, timeout=15)
    chat, stream = sorted(genai_spans(spans), key=lambda s: bool(s["attributes"].get("gen_ai.request.stream")))
    for span in (chat, stream):
        assert span["name"] == "chat gpt-4o-mini"
        assert span["kind"] == "CLIENT"
        assert span["resource"]["service.name"] == "zero-code-app"
        assert span["attributes"]["gen_ai.provider.name"] == "openai"
        assert span["attributes"]["gen_ai.usage.cost.currency"] == "USD"
        assert span["attributes"]["ai_cost.estimate.input_tokens"] > 0
        assert span["attributes"]["ai_cost.estimate.method"] in ("tiktoken", "heuristic")

    c = chat["attributes"]
    assert c["gen_ai.usage.input_tokens"] == 19
    assert c["gen_ai.usage.output_tokens"] == 10
    assert c["gen_ai.usage.cost.amount"] == pytest.approx(CHAT_COST, rel=1e-12)
    assert c["ai_cost.estimate.output_tokens"] == 100
    assert c["ai_cost.estimate.output_basis"] == "max_tokens"
    expected_estimate = (Decimal(c["ai_cost.estimate.input_tokens"]) * INPUT + 100 * OUTPUT) / PER_MILLION
    assert c["ai_cost.estimate.amount"] == pytest.approx(float(expected_estimate), rel=1e-12)
    assert "tenant.id" not in c

    s = stream["attributes"]
    assert s["gen_ai.usage.input_tokens"] == 1200
    assert s["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert s["gen_ai.usage.output_tokens"] == 7
    assert s["gen_ai.usage.cost.amount"] == pytest.approx(STREAM_COST, rel=1e-12)
    assert s["ai_cost.estimate.output_basis"] in ("model_limit", "default")
    assert s["tenant.id"] == "acme"
    # Prompt and completion content are never recorded by default.
    flat = json.dumps([chat, stream])
    assert "Say hello." not in flat and "Once upon" not in flat


def test_other_instrumentations_spans_get_cost_at_export(tmp_path, receiver):
    result = run_instrumented(tmp_path, OTHER_INSTRUMENTATION_APP, receiver)
    assert result.returncode == 0, result.stderr
    span = receiver.wait_for(span_named("chat gpt-4o-mini", "opentelemetry.instrumentation.openai_v2"), timeout=15)
    assert span["attributes"]["gen_ai.usage.cost.amount"] == pytest.approx(CHAT_COST, rel=1e-12)
    assert span["attributes"]["gen_ai.usage.cost.source"] == "local"
    assert span["attributes"]["ai_cost.pricing.status"] == "priced"
    assert span["resource"]["service.name"] == "zero-code-app"


def test_enrich_export_can_be_turned_off(tmp_path, receiver):
    result = run_instrumented(tmp_path, OTHER_INSTRUMENTATION_APP, receiver, OTEL_AI_COST_ENRICH_EXPORT="false")
    assert result.returncode == 0, result.stderr
    span = receiver.wait_for(span_named("chat gpt-4o-mini", "opentelemetry.instrumentation.openai_v2"), timeout=15)
    assert "gen_ai.usage.cost.amount" not in span["attributes"]


def test_budgets_from_the_configuration_file_block_before_sending(tmp_path, fake_openai, receiver):
    (tmp_path / "otel-ai-cost.yaml").write_text(BUDGET_CONFIG)
    result = run_instrumented(
        tmp_path, BUDGET_APP, receiver, FAKE_OPENAI_BASE_URL=fake_openai.base_url,
        OTEL_AI_COST_CONFIG=str(tmp_path / "otel-ai-cost.yaml"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["sent 100", "blocked 5000 acme-monthly acme"]
    assert [r["body"]["max_tokens"] for r in fake_openai.requests] == [100]  # the blocked call was never sent
    spans = receiver.wait_for(lambda s: len(genai_spans(s)) >= 2 and s, timeout=15)
    sent, blocked = sorted(genai_spans(spans), key=lambda s: s["attributes"]["ai_cost.estimate.output_tokens"])
    assert sent["attributes"]["ai_cost.budget.decision"] == "allow"
    assert sent["attributes"]["tenant.id"] == "acme"
    assert blocked["status"] == "ERROR"
    assert blocked["attributes"]["error.type"] == "BudgetExceededError"
    assert blocked["attributes"]["ai_cost.budget.decision"] == "block"
    assert blocked["attributes"]["ai_cost.budget.spent"] == pytest.approx(CHAT_COST, rel=1e-6)
    assert (tmp_path / "budgets.db").exists()  # the SQLite store, next to the configuration file


def test_malformed_variable_is_reported_by_name(tmp_path, receiver):
    result = run_instrumented(tmp_path, OTHER_INSTRUMENTATION_APP, receiver, OTEL_AI_COST_ESTIMATE="maybe")
    assert "OTEL_AI_COST_ESTIMATE: expected true or false, got 'maybe'" in result.stderr
    # One log line, no traceback (issue 8, item 6); the app runs on, without cost tracking.
    assert "Traceback" not in result.stderr and "Failed to auto initialize" not in result.stderr
    assert "done" in result.stdout
    span = receiver.wait_for(span_named("chat gpt-4o-mini", "opentelemetry.instrumentation.openai_v2"), timeout=15)
    assert "gen_ai.usage.cost.amount" not in span["attributes"]


# --- register_processor in process ---------------------------------------------------------


@pytest.fixture
def global_provider(monkeypatch):
    """An SDK provider installed as the global one for the test, as the distro's configurator does."""
    provider = TracerProvider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    return provider


def processors(provider):
    return provider._active_span_processor._span_processors  # noqa: SLF001 - asserting the wiring


def test_register_adds_the_processor_once_and_wraps_exporters(global_provider, monkeypatch):
    for name in [n for n in os.environ if n.startswith("OTEL_AI_COST_")]:
        monkeypatch.delenv(name)
    batch = BatchSpanProcessor(InMemorySpanExporter())
    simple = SimpleSpanProcessor(InMemorySpanExporter())
    global_provider.add_span_processor(batch)
    global_provider.add_span_processor(simple)

    first = _zero_code.register_processor()
    second = _zero_code.register_processor()
    assert isinstance(first, AICostSpanProcessor)
    assert second is first
    # the call ledger (on by default) comes after the processor, not wrapped: it prices other
    # instrumentations' spans on its own writer thread, off the call's (tests/test_ledger.py)
    assert [type(p) for p in processors(global_provider)] == [
        BatchSpanProcessor, SimpleSpanProcessor, AICostSpanProcessor, SimpleSpanProcessor]
    ledger = processors(global_provider)[-1].span_exporter
    assert type(ledger).__name__ == "LedgerSpanExporter"
    assert ledger._catalog is first.catalog  # the processor's catalog (OTEL_AI_COST_PRICING_FILE)
    assert isinstance(batch.span_exporter, CostEnrichingSpanExporter)
    assert isinstance(simple.span_exporter, CostEnrichingSpanExporter)
    assert not isinstance(simple.span_exporter.exporter, CostEnrichingSpanExporter)  # wrapped once
    batch.shutdown()


def test_register_does_nothing_when_disabled(global_provider, monkeypatch):
    monkeypatch.setenv("OTEL_AI_COST_ENABLED", "false")
    assert _zero_code.register_processor() is None
    assert processors(global_provider) == ()


def test_register_without_enrichment_leaves_exporters_alone(global_provider, monkeypatch):
    monkeypatch.setenv("OTEL_AI_COST_ENRICH_EXPORT", "no")
    simple = SimpleSpanProcessor(InMemorySpanExporter())
    global_provider.add_span_processor(simple)
    assert _zero_code.register_processor() is not None
    assert isinstance(simple.span_exporter, InMemorySpanExporter)


def test_register_warns_once_without_an_sdk_provider(monkeypatch, caplog):
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(_zero_code, "_warned_no_sdk", False)
    with caplog.at_level("WARNING", logger="otel_ai_cost._zero_code"):
        assert _zero_code.register_processor() is None
        assert _zero_code.register_processor() is None
    assert len(caplog.records) == 1
    assert "not an OpenTelemetry SDK TracerProvider" in caplog.records[0].getMessage()


def test_register_logs_the_bad_variable_and_stays_off(global_provider, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_AI_COST_OUTPUT_ESTIMATE", "lots")
    monkeypatch.setattr(_zero_code, "_logged_off", set())
    with caplog.at_level("INFO", logger="otel_ai_cost._zero_code"):
        assert _zero_code.register_processor() is None
    assert processors(global_provider) == ()
    (record,) = caplog.records
    assert record.getMessage().startswith("otel-ai-cost: OTEL_AI_COST_OUTPUT_ESTIMATE: ")
    assert "'lots'" in record.getMessage() and "otel-ai-cost is off" in record.getMessage()


def test_wrapping_survives_changed_sdk_internals(caplog):
    class Odd:
        _active_span_processor = None

    with caplog.at_level("WARNING", logger="otel_ai_cost._zero_code"):
        assert _zero_code.wrap_exporters(Odd()) == 0  # type: ignore[arg-type]
    assert "could not wrap" in caplog.records[0].getMessage()


# --- issue 8, item 6: off means off; every bad value the same ------------------------------


def test_enabled_false_leaves_no_span_or_cost_of_ours(tmp_path, fake_openai, receiver):
    result = run_instrumented(tmp_path, PLAIN_APP, receiver, FAKE_OPENAI_BASE_URL=fake_openai.base_url,
                              OTEL_AI_COST_ENABLED="false")
    assert result.returncode == 0, result.stderr
    assert "chat: Hello! How can I help you today?" in result.stdout
    assert len(fake_openai.requests) == 2  # the app's calls went out untouched
    other = run_instrumented(tmp_path, OTHER_INSTRUMENTATION_APP, receiver, OTEL_AI_COST_ENABLED="false")
    assert other.returncode == 0, other.stderr
    span = receiver.wait_for(span_named("chat gpt-4o-mini", "opentelemetry.instrumentation.openai_v2"), timeout=15)
    spans = receiver.wait_for(lambda s: s, timeout=5)
    assert not [s for s in spans if s["scope"].startswith("otel_ai_cost")]  # no span of ours
    assert not [k for s in spans for k in s["attributes"] if k.startswith(("ai_cost.", "gen_ai.usage.cost"))]
    assert "gen_ai.usage.cost.amount" not in span["attributes"]
    assert "Traceback" not in result.stderr + other.stderr


@pytest.mark.parametrize("variable, value, reason", [
    ("OTEL_AI_COST_ENABLED", "perhaps", "expected true or false"),
    ("OTEL_AI_COST_ESTIMATE", "maybe", "expected true or false"),
    ("OTEL_AI_COST_ENRICH_EXPORT", "2", "expected true or false"),
    ("OTEL_AI_COST_RAISE_ON_BLOCK", "sometimes", "expected true or false"),
    ("OTEL_AI_COST_OPENAI_INCLUDE_USAGE", "yes please", "expected true or false"),
    ("OTEL_AI_COST_BAGGAGE_KEYS", "tenant id", "whitespace"),
    ("OTEL_AI_COST_OUTPUT_ESTIMATE", "lots", "expected 'max_tokens' or 'expected:N'"),
    ("OTEL_AI_COST_AZURE_DEPLOYMENTS", "prod", "expected DEPLOYMENT=MODEL"),
    ("OTEL_AI_COST_PRICING_FILES", "/nonexistent/prices.json", "no such file"),
    ("OTEL_AI_COST_CONFIG", "/nonexistent/otel-ai-cost.yaml", "/nonexistent/otel-ai-cost.yaml"),
])
def test_every_bad_variable_is_one_log_line_and_otel_ai_cost_off(tmp_path, fake_openai, receiver, variable,
                                                                 value, reason):
    result = run_instrumented(tmp_path, PLAIN_APP, receiver, FAKE_OPENAI_BASE_URL=fake_openai.base_url,
                              **{variable: value})
    assert result.returncode == 0, result.stderr
    assert "chat: Hello! How can I help you today?" in result.stdout  # the app is unaffected
    assert "stream: Once upon a time." in result.stdout
    ours = [line for line in result.stderr.splitlines() if "otel-ai-cost" in line or "OTEL_AI_COST" in line]
    assert len(ours) == 1, result.stderr
    assert variable in ours[0] and reason in ours[0] and "otel-ai-cost is off" in ours[0]
    assert "Traceback" not in result.stderr and "Failed to auto initialize" not in result.stderr
    assert len(fake_openai.requests) == 2
    # No span of ours: the instrumentors wrapped nothing (or were undone).
    import time

    time.sleep(1.0)
    assert not [s for s in receiver.spans if s["scope"].startswith("otel_ai_cost")]
