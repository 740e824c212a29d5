"""The examples run as documented: against a fake OpenAI endpoint, into a fake OTLP receiver."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent import futures
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

COMPLETION = {
    "id": "chatcmpl-example",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Red, green, blue."}}
    ],
    "usage": {"prompt_tokens": 15, "completion_tokens": 5, "total_tokens": 20},
}


_ANSWER = {"completion": COMPLETION}  # a test may answer with other usage (monkeypatch.setitem)


class _FakeOpenAI(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server API)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(_ANSWER["completion"]).encode()
        self.send_response(200 if self.path.endswith("/chat/completions") else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self):
        self.spans = []

    def Export(self, request, context):  # noqa: N802 (gRPC API)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def endpoints():
    http = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    receiver = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    env = {
        **os.environ,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{http.server_address[1]}/v1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        # Other OpenAI instrumentations installed in the dev environment would add a second span.
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",
    }
    yield env, receiver
    server.stop(0)
    http.shutdown()


def _attributes(span) -> dict:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "examples/openai_chat.py"],
        [str(BIN / "opentelemetry-instrument"), sys.executable, "examples/zero_code_app.py"],
    ],
    ids=["openai_chat", "zero_code_app"],
)
def test_example_exports_a_costed_span(endpoints, command):
    env, receiver = endpoints
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Red, green, blue." in result.stdout
    chat = [s for s in receiver.spans if s.name.startswith("chat ")]
    assert len(chat) == 1, [s.name for s in receiver.spans]
    attributes = _attributes(chat[0])
    assert attributes["gen_ai.usage.input_tokens"] == 15
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert attributes["ai_cost.pricing.status"] == "priced"
    assert attributes["gen_ai.usage.cost.currency"] == "USD"
    assert attributes["gen_ai.usage.cost.amount"] > 0


def test_budgets_example_stops_the_agent_run_before_sending(endpoints, tmp_path, monkeypatch):
    env, receiver = endpoints
    # Each step of the agent costs 1,000 input and 290 output tokens of gpt-4o; a run capped at
    # 3.5 steps' worth is refused before the 5th step is sent (each step also holds its worst case).
    usage = {"prompt_tokens": 1000, "completion_tokens": 290, "total_tokens": 1290}
    monkeypatch.setitem(_ANSWER, "completion", {**COMPLETION, "model": "gpt-4o-2024-08-06", "usage": usage})
    # gpt-4o-2024-08-06 at $2.50/M input, $10/M output (https://developers.openai.com/api/docs/pricing):
    # 1,000 x $2.50/M + 290 x $10/M = $0.0025 + $0.0029 a step.
    step = Decimal("0.0054")
    env = {**env, "AGENT_RUN_BUDGET_USD": str(step * Decimal("3.5"))}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "budgets.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [f"step {n}: Red, green, blue." for n in (1, 2, 3)]
    assert lines[-1].startswith(f"step {len(lines)}: not sent: budget 'agent-run' for trace=")
    assert len(lines) <= 4  # 3 steps settled + the 4th's hold would pass 3.5 steps
    assert (tmp_path / "budgets.db").exists()
    chat = [s for s in receiver.spans if s.name.startswith("chat ")]
    assert len(chat) == len(lines)  # the refused call's span is exported too
    assert _attributes(chat[-1])["ai_cost.budget.decision"] == "block"
    assert _attributes(chat[0])["tenant.id"] == "acme"


def test_example_configuration_file_is_valid(tmp_path):
    from otel_ai_cost.budgets import load_budget_config

    config = load_budget_config(ROOT / "examples" / "otel-ai-cost.yaml")
    assert [b.id for b in config.budgets] == ["tenant-monthly", "agent-run", "gpt-4o-daily-shadow"]
    assert config.store_url == "sqlite://budgets.db" and config.hold_ttl == 900
