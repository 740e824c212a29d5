"""Issue 8, item 5: thresholds written as percentages are refused, the default warnings are 80% and
95%, `budget adjust ID -20 --note refund` records a credit the report shows, and the report counts
blocked calls in a column of their own.

Calls go through the real ``openai`` SDK to the faked OpenAI API (tests/_fake_openai.py), priced and
held by AICostSpanProcessor reading the YAML configuration; the CLI is run through ``main()`` and, once,
as a subprocess.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from _fake_openai import FakeOpenAI
from conftest import Pipeline
from otel_ai_cost import BudgetExceededError, ConfigError
from otel_ai_cost.budgets import Budget, Threshold, lifetime, load_budget_config, warn
from otel_ai_cost.budgets._model import DEFAULT_THRESHOLDS
from otel_ai_cost.cli import main
from otel_ai_cost.config import Settings
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

MESSAGES = [{"role": "user", "content": "Summarise the refund policy in one line."}]


def run(capsys, *argv: str):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- thresholds --------------------------------------------------------------------------------


@pytest.mark.parametrize("at, hint", [("80", "write 0.8 for 80%"), ("95", "write 0.95 for 95%"),
                                      ("1.5", "write 0.015 for 1.5%"), ("250", "write 0.8 for 80%")])
def test_a_threshold_above_1_is_refused_naming_the_file_and_key(tmp_path, at, hint):
    path = tmp_path / "budgets.yaml"
    path.write_text(f"budgets:\n  - {{id: team, limit_usd: 10, window: lifetime, "
                    f"thresholds: [{{at: 0.5, action: warn}}, {{at: {at}, action: warn}}]}}\n")
    with pytest.raises(ConfigError) as info:
        load_budget_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: budgets[0].thresholds[1].at: {at} is above 1")
    assert hint in message and "not percentages" in message


def test_a_threshold_above_1_is_refused_in_code_too():
    with pytest.raises(ConfigError, match=r"threshold at 80 is above 1: .*write 0.8 for 80%"):
        Threshold(80, warn())
    with pytest.raises(ConfigError, match="above 1"):
        Budget("team", 10, lifetime(), thresholds=[(Decimal("95"), "warn")])
    assert Threshold("1", warn()).at == 1  # the limit itself is a threshold


def test_a_percentage_threshold_fails_the_cli_with_one_line_and_exit_2(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - id: team\n    limit_usd: 10\n    window: lifetime\n"
                    "    thresholds:\n      - {at: 80, action: warn}\nstore:\n  url: sqlite://b.db\n")
    done = subprocess.run([sys.executable, "-m", "otel_ai_cost", "budget", "list", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "budgets[0].thresholds[0].at: 80 is above 1" in done.stderr


def test_the_default_thresholds_warn_at_80_and_95_percent_and_block_at_100(tmp_path, capsys):
    assert [(t.at, t.action.kind) for t in DEFAULT_THRESHOLDS] == [
        (Decimal("0.8"), "warn"), (Decimal("0.95"), "warn"), (Decimal("1"), "block")]
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - {id: team, limit_usd: 10, window: lifetime}\nstore:\n  url: sqlite://b.db\n")
    code, out, err = run(capsys, "budget", "show", "team", "--config", str(path))
    assert code == 0, err
    assert "thresholds:  80% warn ($8.00), 95% warn ($9.50), 100% block ($10.00)" in out
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "warnings at 80% and 95%" in readme


def test_default_warnings_fire_on_real_calls_past_80_percent(tmp_path):
    """No thresholds given: a call whose hold takes the spend to 75% of the limit gets no warning, one to
    85% and one to 97% get the warning event (the 80% and the 95% threshold)."""
    with closing(_pipeline(tmp_path, limit=None)) as p:
        p.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=400)
        estimate = Decimal(str(p.last().attributes["ai_cost.estimate.amount"]))
    # Worst-case holds: the call's hold is its estimate, so with a limit of estimate / 0.85 the call
    # takes the budget to 85%.
    for used, warned, reached in (("0.75", False, None), ("0.85", True, "0.8"), ("0.97", True, "0.95")):
        limit = (estimate / Decimal(used)).quantize(Decimal("0.000000001"))
        with closing(_pipeline(tmp_path, limit=limit, store=f"w{used}.db")) as p:
            p.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=400)
            (span,) = p.spans()
            warnings = [e for e in span.events if e.name == "ai_cost.budget.warning"]
            assert len(warnings) == (1 if warned else 0), (used, span.events)
            if warned:
                assert warnings[0].attributes["ai_cost.budget.id"] == "team"
                budget = Budget("team", limit, lifetime())
                assert budget.action_at(int(estimate * 10**9)).at == Decimal(reached)


# --- adjustments and the report ----------------------------------------------------------------


def _pipeline(tmp_path: Path, limit, store: str = "budgets.db") -> Pipeline:
    """The shared harness with the OpenAI instrumentor and ``client`` (the SDK against the fake API);
    with a limit, budget "team" (a calendar month) from a config file on the SQLite ``store``."""
    settings = Settings()
    if limit is not None:
        config = tmp_path / "otel-ai-cost.yaml"
        config.write_text(f"budgets:\n  - {{id: team, limit_usd: {limit}, window: {{calendar: month}}}}\n"
                          f"store:\n  url: sqlite://{store}\n")
        settings = Settings(config_file=str(config))
    p = Pipeline(OpenAIInstrumentor(), settings=settings)
    p.client = FakeOpenAI().client()
    return p


@pytest.fixture
def history(tmp_path, monkeypatch):
    """Two calls settled, one blocked (its worst case is past the limit), through the real SDK; then
    `budget adjust team 25 --note invoice` and `budget adjust team -20 --note refund`."""
    with closing(_pipeline(tmp_path, limit=None)) as p:
        p.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=400)
        estimate = Decimal(str(p.last().attributes["ai_cost.estimate.amount"]))
    with closing(_pipeline(tmp_path, limit=(estimate * Decimal("1.5")).quantize(Decimal("0.000001")))) as p:
        for _ in range(2):
            p.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=400)
        with pytest.raises(BudgetExceededError):
            p.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=4000)
        spend = sum(Decimal(str(s.attributes["gen_ai.usage.cost.amount"])) for s in p.spans()
                    if "gen_ai.usage.cost.amount" in s.attributes)
    monkeypatch.setenv("OTEL_AI_COST_CONFIG", str(tmp_path / "otel-ai-cost.yaml"))
    return spend


def test_a_credit_is_recorded_and_the_report_shows_it_and_the_blocked_call(history, capsys):
    spend = history
    code, out, err = run(capsys, "budget", "adjust", "team", "25", "--note", "invoice INV-1")
    assert code == 0, err
    code, out, err = run(capsys, "budget", "adjust", "team", "-20", "--note", "refund")
    assert code == 0, err
    assert "adjusted by -$20.00" in out

    code, out, err = run(capsys, "budget", "show", "team")
    assert code == 0, err
    credit = [line for line in out.splitlines() if " adjust " in line and "-$20.00" in line]
    assert len(credit) == 1 and "note=refund" in credit[0]

    code, out, err = run(capsys, "report", "--by", "budget")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split() == ["BUDGET", "CALLS", "BLOCKED", "SPEND", "ADJUSTED", "SHARE"]
    team = next(line for line in lines if line.startswith("team ")).split()
    assert team[:3] == ["team", "2", "1"]
    assert team[3] == _money(spend)
    assert team[4] == "$5.00"  # +25 and -20
    total = next(line for line in lines if line.startswith("TOTAL")).split()
    assert total[1:5] == ["2", "1", _money(spend), "$5.00"]
    adjustments = out.split("adjustments (2):\n")[1].splitlines()
    assert "team" in adjustments[0] and "$25.00" in adjustments[0] and "note='invoice INV-1'" in adjustments[0]
    assert "team" in adjustments[1] and "-$20.00" in adjustments[1] and "note='refund'" in adjustments[1]
    assert "by " in adjustments[1]  # who made it


def test_the_report_by_model_puts_the_credit_in_a_row_of_its_own(history, capsys):
    assert run(capsys, "budget", "adjust", "team", "--", "-0.000001")[0] == 0
    code, out, err = run(capsys, "report")  # --by model
    assert code == 0, err
    table = out.split("\n(ADJUSTED")[0].splitlines()[2:]
    rows = {line.split()[0]: line.split() for line in table}
    assert rows["gpt-4o-mini-2024-07-18"][1:3] == ["2", "0"]
    assert rows["gpt-4o"][1:4] == ["0", "1", "$0.00"]  # the blocked call, by the model it asked for
    assert rows["(adjustment)"][1:5] == ["0", "0", "$0.00", "-$0.000001"]


def test_a_credit_larger_than_the_spend_shows_what_was_applied(history, capsys):
    spend = history
    assert run(capsys, "budget", "adjust", "team", "-20", "--note", "refund")[0] == 0
    code, out, _ = run(capsys, "report", "--by", "budget", "--format", "json")
    assert code == 0
    document = json.loads(out)
    (row,) = document["rows"]
    assert (row["budget"], row["calls"], row["blocked"], row["adjustments"]) == ("team", 2, 1, 1)
    assert Decimal(str(row["adjusted_usd"])) == -spend
    (adjustment,) = document["adjustments"]
    assert (adjustment["budget"], adjustment["note"], adjustment["requested_usd"]) == ("team", "refund", -20.0)
    assert Decimal(str(adjustment["amount_usd"])) == -spend
    code, out, _ = run(capsys, "report", "--by", "budget", "--format", "csv")
    (parsed,) = list(csv.DictReader(io.StringIO(out)))
    assert (parsed["blocked"], Decimal(parsed["adjusted_usd"])) == ("1", -spend)
    code, out, _ = run(capsys, "report", "--by", "budget")
    assert "(asked -$20.00: the spend cannot go below zero)" in out


def _money(value: Decimal) -> str:
    from otel_ai_cost.budgets._cli_render import money

    return money(value)
