"""`otel-ai-cost demo`: runs offline, exits 0, prints the right cost for every call, and shows a budget
allowing, warning about, downgrading and blocking calls (the blocked one never reaches the API)."""
from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Tuple

import pytest

from otel_ai_cost.demo import FakeOpenAIServer, run_demo
from otel_ai_cost.demo import _app as demo_app
from otel_ai_cost.demo._anomaly import MAX_RUN_CALLS, TRACE_ID, agent_messages
from otel_ai_cost.demo._app import BUDGET_ID, CHEAPER_MODEL, TENANT, UNKNOWN_MODEL, budget_calls, demo_calls

# The anomaly section's agent run: its calls up to the one that crossed the threshold are sent, the next is refused.
ANOMALY_SENT = MAX_RUN_CALLS + 1

# gpt-4o-mini list prices, USD per 1M tokens (https://openai.com/api/pricing).
MINI_INPUT, MINI_CACHED, MINI_OUTPUT = Decimal("0.15"), Decimal("0.075"), Decimal("0.60")

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_ROW = re.compile(r"^\s+(\d+)\s{2,}")


def _refuse_network(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """Make every connection or name lookup beyond loopback fail; returns the attempts seen."""
    attempts: List[Any] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOOPBACK:
            attempts.append(address)
            raise OSError(f"test: network access to {address!r} refused")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK and host is not None:
            attempts.append(host)
            raise socket.gaierror(f"test: name lookup of {host!r} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_AI_COST_PRICING_FILES"):
        monkeypatch.delenv(name, raising=False)


def _split(output: str) -> Tuple[str, str]:
    """The output up to the budget section, and the budget section."""
    head, marker, budgets = output.partition("\n  Budgets:")
    assert marker, "the demo printed no budget section"
    return head, budgets


def _table_rows(text: str) -> Dict[int, List[str]]:
    rows = {}
    for line in text.splitlines():
        if _ROW.match(line):
            cells = re.split(r"\s{2,}", line.strip())
            rows[int(cells[0])] = cells
    return rows


def _rows(output: str) -> Dict[int, List[str]]:
    """The first table's rows by call number, each split into its cells:
    #, model, input (cached), output (reasoning), estimate, cost, call."""
    return _table_rows(_split(output)[0])


def _budget_rows(output: str) -> Dict[int, List[str]]:
    """The budget table's rows: #, call, model, estimate, cost, spent+estimate share, decision."""
    return _table_rows(_split(output)[1])


def _tokens(cell: str) -> tuple:
    total, part = re.fullmatch(r"(\d+) \((\d+)\)", cell).groups()  # type: ignore[union-attr]
    return int(total), int(part)


class _Run(NamedTuple):
    code: int
    output: str
    received: List[Tuple[str, Dict[str, Any]]]  # what the fake API received: (path, JSON body)


def _run_demo(monkeypatch: pytest.MonkeyPatch) -> _Run:
    """Run the demo in this process with no network beyond loopback, keeping what the fake API received."""
    servers: List[FakeOpenAIServer] = []

    class Recorded(FakeOpenAIServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            servers.append(self)

    monkeypatch.setattr(demo_app, "FakeOpenAIServer", Recorded)
    attempts = _refuse_network(monkeypatch)
    out = io.StringIO()
    code = run_demo(out=out)
    assert attempts == [], f"the demo tried to reach the network: {attempts}"
    assert len(servers) == 1
    return _Run(code, out.getvalue(), servers[0].received)


@pytest.fixture(scope="module")
def demo_run() -> _Run:
    """The demo, run once with no API key, no OTLP endpoint and no network beyond loopback."""
    mp = pytest.MonkeyPatch()
    try:
        _clean_env(mp)
        run = _run_demo(mp)
    finally:
        mp.undo()
    assert run.code == 0, run.output
    return run


@pytest.fixture(scope="module")
def demo_output(demo_run: _Run) -> str:
    return demo_run.output


def test_every_call_has_a_row(demo_output: str) -> None:
    rows = _rows(demo_output)
    calls = demo_calls()

    assert sorted(rows) == list(range(1, len(calls) + 1))
    for number, call in enumerate(calls, start=1):
        assert call.description in rows[number][-1]
    # the anomaly section: its sent calls, the refused one, and the ai_cost.anomaly span of the finding
    assert f"Spans exported: {len(calls) + len(budget_calls()) + ANOMALY_SENT + 1 + 1}" in demo_output


def test_rows_show_dated_model(demo_output: str) -> None:
    models = {cells[1] for cells in _rows(demo_output).values()}

    assert {"gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "o4-mini-2025-04-16", "gpt-5-mini-2025-08-07",
            "text-embedding-3-small", UNKNOWN_MODEL} <= models


def test_known_models_have_estimate_and_cost(demo_output: str) -> None:
    for cells in _rows(demo_output).values():
        if cells[1] == UNKNOWN_MODEL:
            continue
        assert re.fullmatch(r"\d+\.\d{6}", cells[4]), cells
        assert re.fullmatch(r"\d+\.\d{6}", cells[5]), cells
        assert Decimal(cells[5]) > 0, cells


def test_gpt_4o_mini_cost_matches_the_list_price(demo_output: str) -> None:
    mini_rows = [cells for cells in _rows(demo_output).values() if cells[1] == "gpt-4o-mini-2024-07-18"]
    assert len(mini_rows) >= 2
    assert any(_tokens(cells[2])[1] > 0 for cells in mini_rows), "no gpt-4o-mini call hit the prompt cache"
    for cells in mini_rows:
        input_tokens, cached = _tokens(cells[2])
        output_tokens, _ = _tokens(cells[3])
        expected = ((input_tokens - cached) * MINI_INPUT + cached * MINI_CACHED
                    + output_tokens * MINI_OUTPUT) / 1_000_000
        assert Decimal(cells[5]) == expected.quantize(Decimal("0.000001")), cells


def test_reasoning_tokens_are_shown(demo_output: str) -> None:
    reasoning = [_tokens(cells[3])[1] for cells in _rows(demo_output).values()
                 if cells[1].startswith(("o4-mini", "gpt-5-mini"))]
    assert len(reasoning) == 2 and all(r > 0 for r in reasoning)


def test_unknown_model_is_not_priced_as_zero(demo_output: str) -> None:
    (cells,) = [c for c in _rows(demo_output).values() if c[1] == UNKNOWN_MODEL]

    assert cells[4] == "\u2014" and cells[5] == "\u2014"
    assert "0.000000" not in cells
    assert "(1 not priced: model not in the catalog)" in demo_output


def test_total_is_the_sum_of_the_rows(demo_output: str) -> None:
    match = re.search(r"Total spend: \$(\d+\.\d{6}) over (\d+) priced calls", demo_output)
    assert match
    costs = [Decimal(c[5]) for c in _rows(demo_output).values() if c[5] != "\u2014"]
    assert int(match.group(2)) == len(costs)
    assert abs(Decimal(match.group(1)) - sum(costs)) <= Decimal("0.000001") * len(costs)


def test_hint_says_how_to_export_and_run_zero_code(demo_output: str) -> None:
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in demo_output
    assert "opentelemetry-instrument" in demo_output


def test_output_fits_a_100_column_terminal(demo_output: str) -> None:
    wide = [line for line in demo_output.splitlines() if len(line) > 100]
    assert wide == []


# -- the budget section


def _limit(output: str) -> Decimal:
    match = re.search(rf'budget "{BUDGET_ID}": \$(\d+\.\d{{6}}) a day', " ".join(output.split()))
    assert match, output
    return Decimal(match.group(1))


def test_budget_calls_are_allowed_then_warned_then_downgraded_then_blocked(demo_output: str) -> None:
    rows = _budget_rows(demo_output)
    calls = budget_calls()

    assert sorted(rows) == list(range(1, len(calls) + 1))
    assert [rows[n][1] for n in sorted(rows)] == [c.description for c in calls]
    assert [rows[n][-1] for n in sorted(rows)] == [
        "allow", "allow", "warn", f"downgrade -> {CHEAPER_MODEL}", "BLOCKED"]
    # The decision follows spend so far + the call's estimate, as a share of the limit.
    shares = [int(rows[n][5].rstrip("%")) for n in sorted(rows)]
    assert shares[0] < 50 and shares[1] < 50
    assert 50 <= shares[2] < 80 <= shares[3] <= 100 < shares[4]


def test_budget_warning_is_shown(demo_output: str) -> None:
    budgets = " ".join(_split(demo_output)[1].split())

    assert "Call 3, warn: the span got the event ai_cost.budget.warning" in budgets
    assert f"budget '{BUDGET_ID}' for tenant.id={TENANT}" in budgets
    assert "passed a warning threshold" in budgets


def test_downgraded_call_went_to_the_cheaper_model(demo_run: _Run) -> None:
    rows = _budget_rows(demo_run.output)
    downgraded = budget_calls()[3]
    assert downgraded.expect == "downgrade" and downgraded.model != CHEAPER_MODEL

    assert rows[4][2] == downgraded.model  # the model asked for
    assert rows[4][-1] == f"downgrade -> {CHEAPER_MODEL}"
    assert f"ai_cost.budget.requested_model={downgraded.model}" in demo_run.output
    sent = [body for _, body in demo_run.received if body.get("messages") == downgraded.messages]
    assert [body["model"] for body in sent] == [CHEAPER_MODEL]
    # It cost what the cheaper model costs: far below the estimate made for the model asked for.
    assert Decimal(rows[4][4]) < Decimal(rows[4][3]) / 10


def test_blocked_call_is_refused_before_it_is_sent(demo_run: _Run) -> None:
    rows = _budget_rows(demo_run.output)
    blocked = budget_calls()[4]
    budgets = " ".join(_split(demo_run.output)[1].split())
    limit = _limit(demo_run.output)

    assert rows[5][-1] == "BLOCKED" and rows[5][4] == "\u2014"  # no cost: nothing was sent
    assert "Call 5, BLOCKED: BudgetExceededError raised before sending, the fake API received nothing" in budgets
    match = re.search(rf"budget '{BUDGET_ID}' for tenant.id={TENANT} in window \S+ would be exceeded: "
                      r"spent \$([\d.]+) \+ reserved \$([\d.]+) \+ this call's estimate \$([\d.]+) > "
                      r"limit \$([\d.]+)", budgets)
    assert match, budgets
    spent, reserved, estimate, message_limit = (Decimal(g) for g in match.groups())
    assert message_limit == limit
    assert spent + reserved + estimate > limit
    assert abs(estimate - Decimal(rows[5][3])) < Decimal("0.000001")
    # The fake API never saw the blocked request: every other call reached it, once.
    assert not [body for _, body in demo_run.received if body.get("messages") == blocked.messages]
    assert len(demo_run.received) == len(demo_calls()) + len(budget_calls()) - 1 + ANOMALY_SENT


def test_spend_report_from_the_budget_store(demo_output: str) -> None:
    rows = _budget_rows(demo_output)
    budgets = " ".join(_split(demo_output)[1].split())
    limit = _limit(demo_output)

    assert f'Spend report from the budget store: budget "{BUDGET_ID}", tenant.id={TENANT}' in budgets
    match = re.search(r"spent \$(\d+\.\d{6}) of \$(\d+\.\d{6}) \((\d+)%\), \$(\d+\.\d{6}) remaining", budgets)
    assert match, budgets
    spent, report_limit, percent, remaining = Decimal(match[1]), Decimal(match[2]), int(match[3]), Decimal(match[4])
    costs = [Decimal(cells[4]) for cells in rows.values() if cells[4] != "\u2014"]
    assert report_limit == limit
    assert abs(spent - sum(costs)) <= Decimal("0.000001") * len(costs)
    assert abs(remaining - (limit - spent)) <= Decimal("0.000001")
    assert percent == round(spent / limit * 100)
    by_model = re.search(r"by model: (.*?) ledger:", budgets)
    assert by_model, budgets
    assert "gpt-4o-2024-08-06 $0.000" in by_model[1] and "gpt-4o-mini-2024-07-18 $0.000" in by_model[1]
    assert "(3 calls)" in by_model[1]  # two allowed gpt-4o-mini calls and the downgraded one
    assert "decisions logged: 1 warn, 1 downgrade, 1 block" in budgets


def test_the_anomaly_section_shows_the_runaway_run_its_cause_and_the_refused_call(demo_run: _Run) -> None:
    anomalies = " ".join(demo_run.output.partition("\n  Anomalies:")[2].split())
    trace_id = format(TRACE_ID, "032x")
    assert anomalies, demo_run.output
    assert (f"Call {ANOMALY_SENT} crossed the threshold (trace_calls {ANOMALY_SENT} vs {MAX_RUN_CALLS} allowed): "
            "a child span ai_cost.anomaly of its span got the event ai_cost.anomaly and "
            "ai_cost.anomaly.type=runaway_trace") in anomalies
    assert f".cause=trace={trace_id}" in anomalies
    assert "otel-ai-cost anomaly: runaway_trace (warning" in anomalies  # the log record, shown
    assert (f"Call {ANOMALY_SENT + 1}, BLOCKED: BudgetExceededError raised before sending, the fake API "
            "received nothing, ai_cost.budget.reason=anomaly") in anomalies
    assert f"anomaly runaway_trace (warning) on this trace, cause trace={trace_id}" in anomalies
    # What the fake API received of the agent's run: its first calls, not the refused one.
    sent = [body["messages"] for _, body in demo_run.received
            if body.get("messages", [{}])[0].get("content", "").startswith("You are triage-bot")]
    assert sent == [agent_messages(step) for step in range(ANOMALY_SENT)]


def test_budget_limit_follows_the_catalog_price(demo_output: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is derived from the prices: a dearer gpt-4o gives a bigger limit and the same story."""
    from otel_ai_cost.pricing import default_catalog

    prices = {"input": "7.5", "output": "30"}  # three times the list price of gpt-4o
    pricing = tmp_path / "dear-gpt-4o.json"
    pricing.write_text(json.dumps({"schema_version": 1, "models": [
        {"id": "gpt-4o", "provider": "openai", "prices": prices},
        {"id": "gpt-4o-2024-08-06", "provider": "openai", "prices": prices},
    ]}), encoding="utf-8")
    _clean_env(monkeypatch)
    monkeypatch.setenv("OTEL_AI_COST_PRICING_FILES", str(pricing))
    default_catalog.cache_clear()
    try:
        run = _run_demo(monkeypatch)
    finally:
        monkeypatch.delenv("OTEL_AI_COST_PRICING_FILES")
        default_catalog.cache_clear()

    assert run.code == 0, run.output
    assert [cells[-1] for cells in _budget_rows(run.output).values()] == [
        "allow", "allow", "warn", f"downgrade -> {CHEAPER_MODEL}", "BLOCKED"]
    assert abs(_limit(run.output) / _limit(demo_output) - 3) < Decimal("0.05")


def test_demo_runs_twice_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    first, second = io.StringIO(), io.StringIO()

    assert run_demo(out=first) == 0 and run_demo(out=second) == 0
    assert _rows(first.getvalue()) == _rows(second.getvalue())
    assert _budget_rows(first.getvalue()) == _budget_rows(second.getvalue())


def test_missing_instrumentation_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "otel_ai_cost.instrumentation.openai", None)  # makes the import fail
    out = io.StringIO()

    assert run_demo(out=out) == 1
    assert "otel-ai-cost: error:" in out.getvalue()


def test_otlp_exporter_added_when_endpoint_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otel_ai_cost.demo._app import _otlp_processor

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    out = io.StringIO()
    processor = _otlp_processor(out)
    try:
        assert isinstance(processor, BatchSpanProcessor)
        assert "http://127.0.0.1:4317" in out.getvalue()
    finally:
        processor.shutdown()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert _otlp_processor(io.StringIO()) is None


_GUARD = textwrap.dedent('''
    import os, socket
    _real_connect = socket.socket.connect
    _real_getaddrinfo = socket.getaddrinfo
    _LOOPBACK = {"127.0.0.1", "::1", "localhost"}

    def _connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOOPBACK:
            raise SystemExit("test: network access to %r refused" % (address,))
        return _real_connect(self, address)

    def _getaddrinfo(host, *args, **kwargs):
        if host is not None and host not in _LOOPBACK:
            raise SystemExit("test: name lookup of %r refused" % (host,))
        return _real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = _connect
    socket.getaddrinfo = _getaddrinfo
    open(os.environ["NETWORK_GUARD_MARKER"], "w").close()
''')


def test_python_m_demo_offline(tmp_path: Path) -> None:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(_GUARD)
    marker = tmp_path / "guard-loaded"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "OTEL_EXPORTER_OTLP", "OTEL_AI_COST_"))}
    env.update(PYTHONPATH=str(guard), NETWORK_GUARD_MARKER=str(marker))

    result = subprocess.run([sys.executable, "-m", "otel_ai_cost", "demo"], env=env, capture_output=True,
                            text=True, timeout=60)

    assert marker.exists(), "the network guard was not loaded"
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(_rows(result.stdout)) == len(demo_calls())
    assert "Total spend: $" in result.stdout
    assert [cells[-1] for cells in _budget_rows(result.stdout).values()] == [
        "allow", "allow", "warn", f"downgrade -> {CHEAPER_MODEL}", "BLOCKED"]
    assert "Spend report from the budget store" in result.stdout
    assert "Traceback" not in result.stderr
    assert "warning threshold" not in result.stderr  # the budget warning is in the report, not logged twice



_VARYING = {"server.port", "gen_ai.response.id", "openai.response.system_fingerprint"}


def _console_span(output: str) -> Dict[str, Any]:
    marker = "as ConsoleSpanExporter prints it:\n"
    assert marker in output, output[-2000:]
    text = output.split(marker, 1)[1]
    span, _ = json.JSONDecoder().raw_decode(text)
    return span


def test_demo_console_prints_the_readme_span_in_full(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from otel_ai_cost.cli import main

    _clean_env(monkeypatch)
    _refuse_network(monkeypatch)
    assert main(["demo", "--console"]) == 0
    span = _console_span(capsys.readouterr().out)

    # ConsoleSpanExporter's document: the whole span, not only its attributes.
    assert span["name"] == "chat gpt-4o-mini"
    assert span["kind"] == "SpanKind.CLIENT"
    assert re.fullmatch(r"0x[0-9a-f]{32}", span["context"]["trace_id"])
    assert span["resource"]["attributes"]["service.name"] == demo_app.SERVICE_NAME
    attributes = span["attributes"]
    assert attributes["ai_cost.pricing.status"] == "priced"
    expected = (attributes["gen_ai.usage.input_tokens"] * MINI_INPUT
                + attributes["gen_ai.usage.output_tokens"] * MINI_OUTPUT) / 1_000_000
    assert Decimal(str(attributes["gen_ai.usage.cost.amount"])) == expected

    # The README's "A priced span" shows these attributes: the same keys, the same values but for the varying ones.
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A priced span", 1)[1].split("\n## ", 1)[0]
    assert "otel-ai-cost demo\n--console" in section or "otel-ai-cost demo --console" in section
    shown = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    assert list(shown) == list(attributes)
    assert {k: v for k, v in shown.items() if k not in _VARYING} == {
        k: v for k, v in attributes.items() if k not in _VARYING}


def test_demo_without_console_prints_no_span_json(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from otel_ai_cost.cli import main

    _clean_env(monkeypatch)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "ConsoleSpanExporter" not in out
    assert '"trace_id"' not in out
