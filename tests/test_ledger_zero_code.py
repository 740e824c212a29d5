"""The call ledger under ``opentelemetry-instrument``: on by default, a row per priced call (ours and
other instrumentations' spans, priced at export), the same costs as the exported spans; off with
OTEL_AI_COST_LEDGER=off. The app runs with this checkout's package (PYTHONPATH=src)."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path

from test_zero_code import (  # noqa: F401 - fake_openai and receiver are fixtures
    OTHER_INSTRUMENTATION_APP,
    PLAIN_APP,
    fake_openai,
    genai_spans,
    receiver,
    run_instrumented,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def ledger_rows(path: Path):
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM calls ORDER BY end_time")]


def test_zero_code_writes_the_default_ledger_with_the_spans_costs(tmp_path, fake_openai, receiver):  # noqa: F811
    state = tmp_path / "state"
    app = PLAIN_APP + OTHER_INSTRUMENTATION_APP
    result = run_instrumented(tmp_path, app, receiver, FAKE_OPENAI_BASE_URL=fake_openai.base_url,
                              PYTHONPATH=SRC, XDG_STATE_HOME=str(state))
    assert result.returncode == 0, result.stderr
    spans = receiver.wait_for(lambda s: len(genai_spans(s)) >= 3 and s, timeout=15)
    rows = ledger_rows(state / "otel-ai-cost" / "calls.db")  # the default file: next to budgets.db
    assert len(rows) == 3
    by_cost = sorted(Decimal(repr(s["attributes"]["gen_ai.usage.cost.amount"])) for s in genai_spans(spans))
    assert sorted(Decimal(r["cost"]) for r in rows) == by_cost
    assert {r["service"] for r in rows} == {"zero-code-app"}
    assert [r["tenant"] for r in rows].count("acme") == 1
    assert all(r["pricing_status"] == "priced" for r in rows)
    # the other instrumentation's span (gen_ai.system, no cost of its own) is a row, priced at export
    assert [r["provider"] for r in rows].count("openai") == 3
    assert sum(Decimal(r["cost"]) for r in rows) == sum(by_cost)


def test_ledger_off(tmp_path, fake_openai, receiver):  # noqa: F811
    state = tmp_path / "state"
    result = run_instrumented(tmp_path, PLAIN_APP, receiver, FAKE_OPENAI_BASE_URL=fake_openai.base_url,
                              PYTHONPATH=SRC, XDG_STATE_HOME=str(state), OTEL_AI_COST_LEDGER="off")
    assert result.returncode == 0, result.stderr
    receiver.wait_for(lambda s: len(genai_spans(s)) >= 2 and s, timeout=15)
    assert not (state / "otel-ai-cost" / "calls.db").exists()


def test_a_malformed_ledger_value_switches_otel_ai_cost_off_naming_it(tmp_path, fake_openai, receiver):  # noqa: F811
    result = run_instrumented(tmp_path, PLAIN_APP, receiver, FAKE_OPENAI_BASE_URL=fake_openai.base_url,
                              PYTHONPATH=SRC, XDG_STATE_HOME=str(tmp_path), OTEL_AI_COST_LEDGER="mysql://x")
    assert result.returncode == 0, result.stderr
    assert "OTEL_AI_COST_LEDGER: expected sqlite:///absolute/path/calls.db or off" in result.stderr
    assert "Traceback" not in result.stderr
