"""The call ledger (LedgerSpanExporter): one row per priced GenAI call, written off the call's path.

Calls go through the real ``openai`` SDK against the faked OpenAI API (``_fake_openai``); the
storage tests (several processes, SIGKILL, full queue, failing disk) write spans made with the SDK
tracer that carry the GenAI attributes, since what they test is the file, not the pricing.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import conftest
from _fake_openai import FakeOpenAI
from otel_ai_cost import ConfigError
from otel_ai_cost import _semconv as sc
from otel_ai_cost.attribution import attribute
from otel_ai_cost.config import Settings, check_environment
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
from otel_ai_cost.ledger import LedgerSpanExporter, default_ledger_url
from otel_ai_cost.ledger._row import COLUMN_NAMES
from otel_ai_cost.ledger._store import connect, purge, read_rows, write_rows

SRC = str(Path(__file__).resolve().parents[1] / "src")


class Pipeline(conftest.Pipeline):
    """The shared harness plus a LedgerSpanExporter after the processor, and the real SDK on the fake API."""

    def __init__(self, ledger_path: Path, **kwargs):
        super().__init__(OpenAIInstrumentor(), resource=Resource.create({"service.name": "checkout"}), **kwargs)
        self.ledger = LedgerSpanExporter(f"sqlite://{ledger_path}",
                                         baggage_keys=("tenant.id", "enduser.id", "team.name"))
        self.provider.add_span_processor(SimpleSpanProcessor(self.ledger))
        self.client = FakeOpenAI().client()

    def chat(self, **kwargs):
        kwargs.setdefault("model", "gpt-4o-mini")
        kwargs.setdefault("max_tokens", 100)
        return self.client.chat.completions.create(messages=[{"role": "user", "content": "Hi there"}], **kwargs)


def rows(path: Path):
    return [dict(r) for r in read_rows(str(path))]


def test_a_real_call_is_one_row_with_the_span_s_cost_usage_estimate_and_attribution(tmp_path):
    path = tmp_path / "calls.db"
    with closing(Pipeline(path, settings=Settings(baggage_keys=("tenant.id", "enduser.id", "team.name")))) as p:
        with attribute(tenant="acme", user="u-1", cost_center="cc-7", attributes={"team.name": "search"}):
            p.chat()
        assert p.ledger.force_flush()
        span = p.last()
    [row] = rows(path)
    a = span.attributes
    assert row["trace_id"] == format(span.context.trace_id, "032x")
    assert row["span_id"] == format(span.context.span_id, "016x")
    assert row["service"] == "checkout"
    assert (row["provider"], row["request_model"], row["response_model"]) == (
        "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert row["operation"] == "chat"
    # The fake's usage: 20 prompt tokens (8 cached), 10 completion tokens (4 reasoning).
    tokens = (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["reasoning_tokens"])
    assert tokens == (20, 10, 8, 4)
    assert Decimal(row["cost"]) == Decimal(str(a[sc.GEN_AI_USAGE_COST_AMOUNT]))
    assert json.loads(row["breakdown"]) == {k: repr(v) for k, v in a.items() if k.startswith("ai_cost.cost.")}
    assert Decimal(row["estimate"]) == Decimal(str(a[sc.AI_COST_ESTIMATE_AMOUNT]))
    assert row["pricing_status"] == "priced"
    assert (row["tenant"], row["user"], row["cost_center"]) == ("acme", "u-1", "cc-7")
    assert json.loads(row["attributes"]) == {"team.name": "search"}
    assert row["ok"] == 1 and row["error_type"] is None
    # gpt-4o-mini-2024-07-18: $0.15/M input, $0.075/M cached input, $0.60/M output
    # (https://developers.openai.com/api/docs/pricing): 12 x 0.15 + 8 x 0.075 + (6 + 4 reasoning) x 0.60
    # = 8.4 per million -> $0.0000084
    assert Decimal(row["cost"]) == Decimal("0.0000084")


def test_a_failed_call_without_usage_is_no_row_and_a_failed_priced_call_is_marked_not_ok(tmp_path):
    import httpx2
    import openai

    path = tmp_path / "calls.db"
    with closing(Pipeline(path)) as p:
        p.chat()
        error = {"error": {"message": "boom", "type": "server_error"}}
        fake = FakeOpenAI(chat=lambda body: httpx2.Response(500, json=error))
        p.client = fake.client()
        with pytest.raises(openai.InternalServerError):
            p.chat()
        p.ledger.force_flush()
        assert sc.GEN_AI_USAGE_COST_AMOUNT not in p.last().attributes
    assert [r["ok"] for r in rows(path)] == [1]  # the failed call was never priced: not a row
    exporter = LedgerSpanExporter(f"sqlite://{path}")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("chat") as s:  # a stream cut after its usage came
        s.set_attributes({sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_USAGE_COST_AMOUNT: 0.5,
                          sc.ERROR_TYPE: "ReadError"})
    provider.shutdown()
    assert [(r["ok"], r["error_type"]) for r in rows(path)] == [(1, None), (0, "ReadError")]


def test_spans_priced_on_another_span_and_non_genai_spans_are_skipped(tmp_path):
    path = tmp_path / "calls.db"
    exporter = LedgerSpanExporter(f"sqlite://{path}")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("chat gpt-4o") as s:
        s.set_attributes({sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_USAGE_INPUT_TOKENS: 5,
                          sc.AI_COST_PRICING_PRICED_ON: "00f067aa0ba902b7"})
    with tracer.start_as_current_span("GET /"):
        pass
    with tracer.start_as_current_span("chat gpt-4o") as s:
        s.set_attributes({sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_USAGE_INPUT_TOKENS: 5,
                          sc.GEN_AI_USAGE_COST_AMOUNT: 0.25})
    exporter.force_flush()
    provider.shutdown()
    assert [r["cost"] for r in rows(path)] == ["0.25"]


def _genai_span(tracer, cost: float, i: int = 0):
    with tracer.start_as_current_span("chat gpt-4o") as s:
        s.set_attributes({sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai",
                          sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.GEN_AI_USAGE_INPUT_TOKENS: i,
                          sc.GEN_AI_USAGE_COST_AMOUNT: cost})


WRITER = textwrap.dedent("""
    import sys
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from otel_ai_cost.ledger import LedgerSpanExporter
    path, n, worker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    exporter = LedgerSpanExporter("sqlite://" + path, batch_size=7, flush_interval=0.01)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("w")
    for i in range(n):
        with tracer.start_as_current_span("chat") as s:
            s.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": i,
                              "gen_ai.usage.cost.amount": 0.001, "tenant.id": "w%d" % worker})
    provider.shutdown()
    print(exporter.written, exporter.dropped)
""")


def test_several_processes_write_one_file(tmp_path):
    path = tmp_path / "shared" / "calls.db"
    env = {**os.environ, "PYTHONPATH": SRC}
    n, workers = 300, 4
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n), str(w)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(workers)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert [o[0].split() for o in outputs] == [[str(n), "0"]] * workers
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        per = dict(db.execute("SELECT tenant, COUNT(*) FROM calls GROUP BY tenant").fetchall())
    assert per == {f"w{w}": n for w in range(workers)}


KILLED = textwrap.dedent("""
    import sys
    from otel_ai_cost.ledger._row import COLUMN_NAMES
    from otel_ai_cost.ledger._store import connect, write_rows
    path = sys.argv[1]
    db = connect(path)
    batch = 0
    while True:
        rows = []
        for i in range(200):
            values = dict.fromkeys(COLUMN_NAMES)
            values.update(trace_id="%032x" % batch, span_id="%016x" % i, start_time=batch, end_time=batch,
                          cost="0.5", ok=1, breakdown="x" * 500)
            rows.append(tuple(values[c] for c in COLUMN_NAMES))
        write_rows(db, rows)
        batch += 1
""")


def test_a_process_killed_mid_write_leaves_a_sound_file_with_whole_batches(tmp_path):
    path = tmp_path / "calls.db"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(path)], env={**os.environ, "PYTHONPATH": SRC})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if path.exists():
                try:
                    with closing(sqlite3.connect(path, timeout=5)) as db:
                        if db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] >= 2000:
                            break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of its write loop
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counts = db.execute("SELECT trace_id, COUNT(*) FROM calls GROUP BY trace_id").fetchall()
    assert len(counts) >= 10
    assert {c for _, c in counts} == {200}  # every batch is in the file whole, none in part
    # and the file takes new rows (a new writer after the crash)
    exporter = LedgerSpanExporter(f"sqlite://{path}")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _genai_span(provider.get_tracer("t"), 1.0)
    provider.shutdown()
    assert exporter.written == 1 and exporter.dropped == 0


def test_other_instrumentations_spans_are_priced_on_the_writer_thread(tmp_path, monkeypatch):
    # A span of another instrumentation: usage, no cost (as the official openai-v2 emits). The row has
    # the cost our engine gives it: gpt-4o-2024-08-06 at $2.50 / $10.00 per million input / output tokens
    # (pricing/openai.yaml): 1,000 x 2.50e-6 + 500 x 10e-6 = $0.0075. It is priced off the call's
    # thread: export() only queues the span (enrich_span is never called on the exporting thread).
    import otel_ai_cost.ledger._exporter as ledger_exporter

    exporting = threading.get_ident()
    priced_on = []
    real_enrich = ledger_exporter.enrich_span

    def spy(span, catalog):
        priced_on.append(threading.get_ident())
        return real_enrich(span, catalog)

    monkeypatch.setattr(ledger_exporter, "enrich_span", spy)
    path = tmp_path / "calls.db"
    exporter = LedgerSpanExporter(f"sqlite://{path}")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("opentelemetry.instrumentation.openai_v2").start_as_current_span("chat gpt-4o") as s:
        s.set_attributes({sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai",
                          sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
                          sc.GEN_AI_USAGE_INPUT_TOKENS: 1000, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 500})
    with provider.get_tracer("t").start_as_current_span("GET /health") as s:
        s.set_attribute("http.request.method", "GET")  # not a GenAI span: never queued, never a row
    provider.shutdown()
    (row,) = rows(path)
    assert Decimal(row["cost"]) == Decimal("0.0075")
    assert row["pricing_status"] == "priced" and row["cost_source"] == "local"
    assert priced_on and exporting not in priced_on


def _metered_ledger(url, **kwargs):
    """(exporter, metric reader, tracer provider, tracer): a ledger behind a SimpleSpanProcessor whose
    dropped-rows counter goes to the reader."""
    reader = InMemoryMetricReader()
    exporter = LedgerSpanExporter(url, flush_interval=0.01, meter_provider=MeterProvider(metric_readers=[reader]),
                                  **kwargs)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, reader, provider, provider.get_tracer("t")


def _dropped_rows(reader):
    """The ai_cost.ledger.dropped_rows points, {drop reason: rows}."""
    out = {}
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == "ai_cost.ledger.dropped_rows":
                    assert metric.unit == "{row}" and metric.data.is_monotonic
                    for point in metric.data.data_points:
                        out[point.attributes["ai_cost.ledger.drop_reason"]] = point.value
    return out


def test_a_full_queue_drops_rows_with_a_counter_and_one_log_line(tmp_path, caplog):
    path = tmp_path / "calls.db"
    connect(str(path)).close()
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the disk is stuck: the writer waits on the lock
    exporter, reader, provider, tracer = _metered_ledger(f"sqlite://{path}", queue_size=2, batch_size=1)
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.ledger._exporter"):
        for i in range(10):
            _genai_span(tracer, 0.5, i)  # each span's end returns: export only queues
        dropped_while_stuck = exporter.dropped
        lock.execute("ROLLBACK")
        lock.close()
        assert exporter.force_flush()
    provider.shutdown()
    assert dropped_while_stuck >= 7  # at most 2 queued and 1 in the writer's hands
    assert exporter.dropped == dropped_while_stuck
    assert len(rows(path)) == 10 - exporter.dropped == exporter.written
    assert _dropped_rows(reader) == {"queue_full": exporter.dropped}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "queue is full" in warnings[0].getMessage()


def test_a_failing_disk_drops_rows_and_the_app_goes_on(tmp_path, caplog):
    (tmp_path / "not-a-dir").write_text("a file where the directory should be")
    exporter, reader, provider, tracer = _metered_ledger(f"sqlite://{tmp_path / 'not-a-dir' / 'calls.db'}")
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.ledger._exporter"):
        for i in range(3):
            _genai_span(tracer, 0.5, i)
            exporter.force_flush()
    provider.shutdown()
    assert exporter.dropped == 3 and exporter.written == 0
    assert _dropped_rows(reader) == {"write_failed": 3}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "cannot write" in warnings[0].getMessage()


def test_retention_deletes_the_calls_older_than_the_setting(tmp_path):
    path = tmp_path / "calls.db"
    db = connect(str(path))
    now = time.time()
    old, recent = dict.fromkeys(COLUMN_NAMES), dict.fromkeys(COLUMN_NAMES)
    old.update(trace_id="a" * 32, span_id="1" * 16, start_time=now - 40 * 86400, end_time=now - 40 * 86400, ok=1)
    recent.update(trace_id="b" * 32, span_id="2" * 16, start_time=now - 20 * 86400, end_time=now - 20 * 86400, ok=1)
    write_rows(db, [tuple(r[c] for c in COLUMN_NAMES) for r in (old, recent)])
    assert purge(db, 30, now) == 1
    db.close()
    assert [r["trace_id"] for r in rows(path)] == ["b" * 32]
    # the exporter purges by itself after its first write
    exporter = LedgerSpanExporter(f"sqlite://{path}", retention_days=10, flush_interval=0.01)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _genai_span(provider.get_tracer("t"), 1.0)
    exporter.force_flush()
    provider.shutdown()
    assert [r["cost"] for r in rows(path)] == ["1.0"]


@pytest.mark.parametrize("variable, value, message", [
    ("OTEL_AI_COST_LEDGER", "postgres://db/ledger",
     "OTEL_AI_COST_LEDGER: expected sqlite:///absolute/path/calls.db or off"),
    ("OTEL_AI_COST_LEDGER", "sqlite://", "OTEL_AI_COST_LEDGER: expected"),
    ("OTEL_AI_COST_LEDGER_RETENTION_DAYS", "-3", "OTEL_AI_COST_LEDGER_RETENTION_DAYS: expected a positive number"),
    ("OTEL_AI_COST_LEDGER_RETENTION_DAYS", "ninety", "OTEL_AI_COST_LEDGER_RETENTION_DAYS: expected a positive"),
])
def test_malformed_ledger_settings_fail_at_configuration_time(variable, value, message):
    with pytest.raises(ConfigError, match=message):
        check_environment({variable: value})


def test_a_directory_as_ledger_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="OTEL_AI_COST_LEDGER: .* is a directory"):
        check_environment({"OTEL_AI_COST_LEDGER": f"sqlite://{tmp_path}"})


def test_ledger_settings_from_the_environment(tmp_path):
    s = check_environment({"OTEL_AI_COST_LEDGER": f"sqlite://{tmp_path}/c.db",
                           "OTEL_AI_COST_LEDGER_RETENTION_DAYS": "90"})
    assert (s.ledger, s.ledger_retention_days) == (f"sqlite://{tmp_path}/c.db", 90.0)
    assert check_environment({"OTEL_AI_COST_LEDGER": "off"}).ledger == "off"


def test_zero_code_adds_the_ledger_by_default_next_to_the_budget_store(tmp_path, monkeypatch):
    from otel_ai_cost._zero_code import add_ledger
    from otel_ai_cost.budgets import default_store_url

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    provider = TracerProvider()
    exporter = add_ledger(provider, Settings())
    assert exporter is not None
    assert exporter.path == str(tmp_path / "otel-ai-cost" / "calls.db")
    assert os.path.dirname(exporter.path) == os.path.dirname(default_store_url()[len("sqlite://"):])
    assert default_ledger_url() == f"sqlite://{tmp_path}/otel-ai-cost/calls.db"
    _genai_span(provider.get_tracer("t"), 2.0)
    provider.shutdown()
    assert [r["cost"] for r in rows(Path(exporter.path))] == ["2.0"]
    assert add_ledger(TracerProvider(), Settings(ledger="off")) is None


def test_a_forked_worker_writes_its_own_rows(tmp_path):
    path = tmp_path / "calls.db"
    exporter = LedgerSpanExporter(f"sqlite://{path}", flush_interval=0.01)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    _genai_span(tracer, 1.0)
    exporter.force_flush()
    pid = os.fork()
    if pid == 0:  # the worker of a pre-fork server: the parent's writer thread is not here
        code = 1
        try:
            _genai_span(tracer, 2.0)
            code = 0 if exporter.force_flush(10000) and exporter.written == 2 else 3  # 1 inherited
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    provider.shutdown()
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(r["cost"] for r in rows(path)) == ["1.0", "2.0"]


def test_settings_in_code_check_the_ledger_values():
    with pytest.raises(ConfigError, match="ledger: expected sqlite:///absolute/path/calls.db or off, got 'calls.db'"):
        Settings(ledger="calls.db")
    with pytest.raises(ConfigError, match="ledger_retention_days: expected a positive number of days"):
        Settings(ledger_retention_days=0)
    assert Settings(ledger="off", ledger_retention_days=7).ledger_retention_days == 7
