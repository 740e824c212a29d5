"""`otel-ai-cost budget ...` and `otel-ai-cost report`, end to end through the CLI's main() against a
SQLite store named by a YAML configuration file."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Tuple

import pytest

from conftest import Clock
from otel_ai_cost.budgets import BudgetBook, SQLiteBudgetStore, load_budget_config
from otel_ai_cost.budgets._report import aggregate
from otel_ai_cost.budgets._store import LedgerEntry
from otel_ai_cost.cli import main

CONFIG = """
budgets:
  - id: team
    limit_usd: 100
    window: {calendar: month, tz: Europe/Paris}
  - id: tenants
    limit_usd: 10
    window: {calendar: day}
    per: tenant.id
    thresholds:
      - {at: 0.8, action: warn}
      - {at: 0.9, action: downgrade, model: gpt-4o-mini}
  - id: proposed
    limit_usd: 5
    window: {rolling: 1h}
    shadow: true
store:
  url: sqlite://budgets.db
"""


def call(tenant: str, model: str = "gpt-4o", user: str = "u1") -> dict:
    return {"tenant.id": tenant, "gen_ai.request.model": model, "gen_ai.provider.name": "openai", "enduser.id": user}


@pytest.fixture
def config_path(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "otel-ai-cost.yaml"
    path.write_text(CONFIG)
    monkeypatch.setenv("OTEL_AI_COST_CONFIG", str(path))
    return path


@pytest.fixture
def app(config_path):
    """The application's book: the same configuration and store file, controls read on every call."""
    config = load_budget_config(config_path)
    book = BudgetBook(config.budgets, config.open_store(), override_refresh=0)
    yield book
    book.store.close()


def run(capsys, *argv: str) -> Tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def spend(book: BudgetBook, tenant: str, estimate: str, actual: str, model: str = "gpt-4o") -> None:
    reservation = book.reserve(call(tenant, model), estimate)
    assert reservation.decision.allowed
    book.settle(reservation, actual, {"gen_ai.response.model": f"{model}-2024-08-06"})
    book.store.flush()  # the settle is queued (store: settle: queued, the default): the CLI reads what landed


def line_of(out: str, *words: str) -> str:
    lines = [line for line in out.splitlines() if all(w in line.split() for w in words)]
    assert len(lines) == 1, (words, out)
    return lines[0]


# ---------------------------------------------------------------------------------------------------
# budget list / show


def test_list_shows_every_budget_and_each_partition(app, capsys):
    spend(app, "acme", "2", "3.5")
    spend(app, "globex", "1", "0.25")
    app.reserve(call("acme"), "1")  # in flight
    code, out, err = run(capsys, "budget", "list")
    assert code == 0, err
    assert out.splitlines()[0].split()[:5] == ["BUDGET", "WINDOW", "PER", "KEY", "LIMIT"]
    team = line_of(out, "team")
    assert re.search(r"month \d{4}-\d{2} \(Europe/Paris\)", team)
    assert team.split()[-5:] == ["$100.00", "$3.75", "$1.00", "$95.25", "4.8%"]
    assert line_of(out, "tenants", "acme").split()[-5:] == ["$10.00", "$3.50", "$1.00", "$5.50", "45.0%"]
    assert line_of(out, "tenants", "globex").split()[-5:] == ["$10.00", "$0.25", "$0.00", "$9.75", "2.5%"]
    proposed = line_of(out, "proposed")
    assert "rolling 1h" in proposed and proposed.endswith("shadow")


def test_list_as_json(app, capsys):
    spend(app, "acme", "2", "1.5")
    code, out, _ = run(capsys, "budget", "list", "--json")
    assert code == 0
    rows = json.loads(out)["budgets"]
    acme = next(r for r in rows if r["budget"] == "tenants")
    assert (acme["key"], acme["per"], acme["limit"], acme["spent"], acme["frozen"]) == ("acme", "tenant.id", 10.0,
                                                                                        1.5, False)


def test_list_a_per_key_budget_nobody_used(config_path, capsys):
    code, out, _ = run(capsys, "budget", "list")
    assert code == 0
    assert line_of(out, "tenants").split()[-5:] == ["$10.00", "$0.00", "$0.00", "$10.00", "0.0%"]
    assert "(none yet)" in line_of(out, "tenants")


def test_show_a_budget(app, capsys):
    spend(app, "acme", "2", "3.5")
    spend(app, "globex", "1", "0.25")
    code, out, err = run(capsys, "budget", "show", "tenants", "--last", "3")
    assert code == 0, err
    assert out.startswith("budget tenants\n")
    assert re.search(r"window: +day \d{4}-\d{2}-\d{2} \(UTC\), renews at \d{4}-\d{2}-\d{2}T00:00:00Z", out)
    assert re.search(r"per: +tenant.id", out)
    assert "thresholds:  80% warn ($8.00), 90% downgrade to gpt-4o-mini ($9.00), 100% block ($10.00)" in out
    assert re.search(r"in force: +\$10.00 \(configuration\)", out)
    assert "frozen:      no" in out
    assert line_of(out, "acme").split()[1:5] == ["$10.00", "$3.50", "$0.00", "$6.50"]
    assert "globex" in out
    ledger = out.split("ledger (last 3):\n")[1].splitlines()
    assert [line.split()[1] for line in ledger] == ["settle", "reserve", "settle"]
    assert "gen_ai.response.model=gpt-4o-2024-08-06" in ledger[-1] and "$0.25" in ledger[-1]


def test_show_one_partition_with_its_override(app, capsys):
    spend(app, "acme", "2", "3.5")
    assert run(capsys, "budget", "set", "tenants", "20", "--key", "acme")[0] == 0
    code, out, _ = run(capsys, "budget", "show", "tenants", "--key", "acme")
    assert code == 0
    assert "override:    $20.00 for acme" in out
    assert "in force:    $20.00 for tenant.id=acme (override)" in out
    assert "80% warn ($16.00)" in out
    assert line_of(out, "acme", "overridden").split()[1:6] == ["$20.00", "$3.50", "$0.00", "$16.50", "17.5%"]
    assert "set_limit" in out and "globex" not in out


# ---------------------------------------------------------------------------------------------------
# budget set / freeze / unfreeze / adjust / reset


def test_set_and_clear_a_limit(app, capsys):
    spend(app, "acme", "9", "9")
    assert not app.reserve(call("acme"), "2").decision.allowed
    code, out, err = run(capsys, "budget", "set", "tenants", "15.5", "--note", "renewal")
    assert code == 0, err
    assert out.startswith("budget 'tenants' (every partition): limit set to $15.50 (was the configured $10.00).")
    assert "within their override refresh" in out
    decision = app.reserve(call("acme"), "2").decision
    assert decision.allowed and decision.outcomes[1].limit == Decimal("15.5")
    (entry,) = app.store.ledger(kind="set_limit")
    assert entry.amount == Decimal("15.5") and entry.attributes["note"] == "renewal"
    assert entry.attributes["via"] == "otel-ai-cost budget set" and "@" in entry.attributes["actor"]
    code, out, _ = run(capsys, "budget", "set", "tenants", "--clear")
    assert code == 0
    assert "override $15.50 cleared; the limit in force is $10.00" in out
    assert not app.reserve(call("acme"), "2").decision.allowed
    code, out, _ = run(capsys, "budget", "set", "tenants", "--clear")
    assert code == 0 and "no override to clear" in out


def test_freeze_and_unfreeze(app, capsys):
    code, out, _ = run(capsys, "budget", "freeze", "tenants", "--key", "acme", "--note", "abuse")
    assert code == 0
    assert "budget 'tenants' for tenant.id=acme: frozen" in out
    assert "`otel-ai-cost budget unfreeze tenants --key acme`" in out
    decision = app.reserve(call("acme"), "0.01").decision
    assert decision.reason == "frozen"
    assert "unfreeze tenants --key acme" in str(decision.error())
    assert app.reserve(call("globex"), "0.01").decision.allowed
    assert "frozen" in line_of(run(capsys, "budget", "list")[1], "tenants", "acme")
    code, out, _ = run(capsys, "budget", "freeze", "team")
    assert code == 0 and "budget 'team': frozen" in out
    assert app.reserve(call("globex"), "0.01").decision.budget.id == "team"
    code, out, _ = run(capsys, "budget", "unfreeze", "tenants")
    assert code == 0 and "budget 'tenants': was not frozen." in out
    assert "still frozen: tenant.id=acme" in out
    assert run(capsys, "budget", "unfreeze", "tenants", "--key", "acme")[1].startswith(
        "budget 'tenants' for tenant.id=acme: unfrozen."
    )
    assert run(capsys, "budget", "unfreeze", "team")[0] == 0
    assert app.reserve(call("acme"), "0.01").decision.allowed
    kinds = [(e.kind, e.budget_id, e.key) for e in app.store.ledger(kinds=("freeze", "unfreeze"))]
    assert kinds == [("freeze", "tenants", "acme"), ("freeze", "team", ""), ("unfreeze", "tenants", ""),
                     ("unfreeze", "tenants", "acme"), ("unfreeze", "team", "")]
    assert app.store.ledger(kind="freeze")[0].attributes["note"] == "abuse"


@pytest.mark.parametrize("argv", [["-20"], ["--", "-20"]])
def test_adjust_by_a_negative_amount(app, capsys, argv):
    spend(app, "acme", "8", "8")
    spend(app, "globex", "7", "7")
    code, out, err = run(capsys, "budget", "adjust", "team", *argv)
    assert code == 0, err
    assert "budget 'team': spend of month" in out and "adjusted by -$20.00 (asked -$20.00" not in out
    assert "adjusted by -$15.00 (asked -$20.00: the spend cannot go below zero); now spent $0.00" in out
    assert app.usage("team").spent == 0
    code, out, err = run(capsys, "budget", "adjust", "team", "12.5")
    assert code == 0 and "adjusted by $12.50; now spent $12.50" in out


def test_adjust_up_and_down_to_zero(app, capsys):
    spend(app, "acme", "3", "3")
    code, out, _ = run(capsys, "budget", "adjust", "tenants", "2.5", "--key", "acme", "--note", "missed call")
    assert code == 0 and "adjusted by $2.50; now spent $5.50" in out
    code, out, _ = run(capsys, "budget", "adjust", "tenants", "--key", "acme", "--", "-100")
    assert code == 0
    assert "adjusted by -$5.50 (asked -$100.00: the spend cannot go below zero); now spent $0.00" in out
    assert app.usage("tenants", "acme").spent == 0
    entries = app.store.ledger(kind="adjust")
    assert [(e.amount, e.attributes["requested_nanos"]) for e in entries] == [
        (Decimal("2.5"), 2_500_000_000), (Decimal("-5.5"), -100_000_000_000)
    ]
    code, out, _ = run(capsys, "budget", "show", "tenants", "--key", "acme")
    assert "adjust" in out and "-$5.50 (asked -$100.00)" in out and "note=missed call" in out


def test_reset_keeps_the_holds(app, capsys):
    spend(app, "acme", "3", "4")
    app.reserve(call("acme"), "1.5")
    code, out, _ = run(capsys, "budget", "reset", "tenants", "--key", "acme", "--note", "new contract")
    assert code == 0
    assert "budget 'tenants' for tenant.id=acme: removed $4.00 of spend from day" in out
    assert "holds in flight ($1.50) stay" in out
    usage = app.usage("tenants", "acme")
    assert (usage.spent, usage.reserved) == (0, Decimal("1.5"))
    assert app.usage("team").spent == 4  # only that budget
    (entry,) = app.store.ledger(kind="reset")
    assert (entry.amount, entry.attributes["note"]) == (Decimal(4), "new contract")


# ---------------------------------------------------------------------------------------------------
# Errors: a message that names the problem, exit code 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["budget", "show", "nope"],
         "no budget 'nope' in .*otel-ai-cost.yaml; the budgets are: team, tenants, proposed"),
        (["budget", "set", "nope", "1"], "no budget 'nope'"),
        (["budget", "set", "team"], "give either LIMIT_USD or --clear"),
        (["budget", "set", "team", "5", "--clear"], "give either LIMIT_USD or --clear"),
        (["budget", "set", "team", "lots"], "LIMIT_USD 'lots': not a number of USD"),
        (["budget", "set", "team", "-5"], "LIMIT_USD '-5': must be zero or more"),
        (["budget", "set", "team", "5", "--key", "acme"], "budget 'team' has no per: attribute.*drop --key"),
        (["budget", "freeze", "team", "--key", "acme"], "has no per: attribute"),
        (["budget", "adjust", "tenants", "5"], r"budget 'tenants' is per tenant.id: give the partition with --key K"),
        (["budget", "adjust", "team", "NaN"], "AMOUNT_USD 'NaN': not a number"),
        (["budget", "reset", "tenants"], "give the partition with --key K"),
        (["budget", "show", "team", "--last", "-1"], "--last -1: must be 0 or more"),
        (["report", "--by", "colour"], "--by 'colour': group by one of model, provider, tenant, user"),
        (["report", "--tz", "Mars/Olympus"], "--tz 'Mars/Olympus': unknown time zone"),
        (["report", "--since", "last tuesday"], "--since 'last tuesday': expected a date"),
        (["report", "--since", "2026-11-02", "--until", "2026-11-01"], "the period is empty"),
    ],
)
def test_errors_exit_2_with_a_message(config_path, capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert re.search(message, err), err
    assert err.startswith("otel-ai-cost: error: ")


def test_adjust_without_key_lists_the_partitions_with_spend(app, capsys):
    spend(app, "acme", "1", "1")
    code, _, err = run(capsys, "budget", "adjust", "tenants", "5")
    assert code == 2 and "(with spend now: acme)" in err


def test_no_configuration_says_what_to_set(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("OTEL_AI_COST_CONFIG", raising=False)
    # No call ledger either (``report`` would read the default one when it exists).
    monkeypatch.delenv("OTEL_AI_COST_LEDGER", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    for argv in (["budget", "list"], ["report"]):
        code, _, err = run(capsys, *argv)
        assert code == 2
        assert "no configuration: give --config FILE or set OTEL_AI_COST_CONFIG" in err


def test_config_option_wins_over_the_environment(config_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OTEL_AI_COST_CONFIG", str(tmp_path / "missing.yaml"))
    code, _, err = run(capsys, "budget", "list")
    assert code == 2 and "missing.yaml: cannot read the budget configuration" in err
    code, out, _ = run(capsys, "budget", "list", "--config", str(config_path))
    assert code == 0 and "tenants" in out


def test_bad_configuration_names_the_file_and_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("budgets:\n  - {id: b, limit_usd: lots, window: lifetime}\nstore: {url: sqlite://b.db}\n")
    code, _, err = run(capsys, "budget", "list", "--config", str(path))
    assert code == 2 and f"{path}: budgets[0].limit_usd: the limit in USD must be a number" in err


def test_a_memory_store_is_refused(tmp_path, capsys):
    path = tmp_path / "memory.yaml"
    path.write_text("budgets:\n  - {id: b, limit_usd: 1, window: lifetime}\nstore: {url: 'memory://'}\n")
    code, _, err = run(capsys, "budget", "freeze", "b", "--config", str(path))
    assert code == 2 and "memory:// keeps the budgets inside one process" in err and "sqlite:///" in err


def test_an_unreachable_store_is_named(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    path = tmp_path / "redis.yaml"
    path.write_text(f"budgets:\n  - {{id: b, limit_usd: 1, window: lifetime}}\n"
                    f"store: {{url: 'redis://:secret@127.0.0.1:{port}/0'}}\n")
    code, _, err = run(capsys, "budget", "list", "--config", str(path))
    assert code == 2
    assert f"budget store redis://***@127.0.0.1:{port}/0:" in err and "secret" not in err


def test_budget_without_a_subcommand_is_a_usage_error(capsys):
    code, _, err = run(capsys, "budget")
    assert code == 2 and "list,show,set,adjust,freeze,unfreeze,reset" in err


# ---------------------------------------------------------------------------------------------------
# report

NOV_10 = datetime(2026, 11, 10, 12, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def history(config_path):
    """Calls on 10 and 11 November 2026 in the configured store, written with a fake clock."""
    clock = Clock(NOV_10)
    config = load_budget_config(config_path)
    store = SQLiteBudgetStore(str(config_path.parent / "budgets.db"), clock=clock)
    book = BudgetBook(config.budgets, store, clock=clock)

    def make(tenant, model, user, estimate, actual, response=None, hours=0.0):
        clock.now = NOV_10 + hours * 3600
        reservation = book.reserve(call(tenant, model, user), estimate)
        if reservation.decision.allowed:
            attributes = {"gen_ai.response.model": response} if response else None
            book.settle(reservation, actual, attributes)
        return reservation

    make("acme", "gpt-4o", "alice", "1", "1.25", response="gpt-4o-2024-08-06")
    make("acme", "gpt-4o", "bob", "1", "0.75", response="gpt-4o-2024-08-06")
    make("globex", "o3", "carol", "1", "2")  # no response model: the request model
    make("acme", "gpt-4o-mini", "alice", "0.5", "0.5", hours=13)  # 11 November 01:00 UTC
    for _ in range(2):
        blocked = make("globex", "o3", "carol", "20", "0", hours=14)  # past the tenants' limit
        assert not blocked.decision.allowed
    yield book
    store.close()


def test_report_by_model_counts_each_call_once(history, capsys):
    code, out, err = run(capsys, "report", "--since", "2026-11-01", "--until", "2026-11-30")
    assert code == 0, err
    assert out.splitlines()[0] == "spend from 2026-11-01T00:00:00+00:00 to 2026-12-01T00:00:00+00:00, by model"
    assert line_of(out, "gpt-4o-2024-08-06").split()[1:] == ["2", "0", "$2.00", "44.4%"]
    assert line_of(out, "o3").split()[1:] == ["1", "2", "$2.00", "44.4%"]  # three budgets, one call
    assert line_of(out, "gpt-4o-mini").split()[1:] == ["1", "0", "$0.50", "11.1%"]
    assert line_of(out, "TOTAL").split()[1:] == ["4", "2", "$4.50", "100.0%"]


def test_report_csv_by_tenant_and_user_parses_back(history, capsys):
    code, out, _ = run(capsys, "report", "--since", "2026-11-01", "--until", "2026-11-30", "--by", "tenant", "user",
                       "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows == [
        {"tenant": "globex", "user": "carol", "calls": "1", "blocked": "2", "spend_usd": "2"},
        {"tenant": "acme", "user": "alice", "calls": "2", "blocked": "0", "spend_usd": "1.75"},
        {"tenant": "acme", "user": "bob", "calls": "1", "blocked": "0", "spend_usd": "0.75"},
    ]
    assert sum(Decimal(r["spend_usd"]) for r in rows) == Decimal("4.5")


def test_report_json_by_day_in_a_time_zone(history, capsys):
    code, out, _ = run(capsys, "report", "--since", "2026-11-10", "--until", "2026-11-11", "--by", "day",
                       "--format", "json", "--tz", "Asia/Tokyo")
    assert code == 0
    document = json.loads(out)
    assert (document["since"], document["until"]) == ("2026-11-10T00:00:00+09:00", "2026-11-12T00:00:00+09:00")
    assert (document["tz"], document["by"]) == ("Asia/Tokyo", ["day"])
    # In Tokyo (UTC+9) 12:00 UTC is the 10th at 21:00; 01:00 and 02:00 UTC on the 11th are the 11th.
    assert document["rows"] == [
        {"day": "2026-11-10", "calls": 3, "blocked": 0, "spend_usd": 4.0},
        {"day": "2026-11-11", "calls": 1, "blocked": 2, "spend_usd": 0.5},
    ]
    assert document["total"] == {"calls": 4, "blocked": 2, "spend_usd": 4.5}


def test_report_by_budget_counts_a_call_in_each_of_its_budgets(history, capsys):
    code, out, _ = run(capsys, "report", "--since", "2026-11-01", "--until", "2026-11-30", "--by", "budget",
                       "--format", "json")
    assert code == 0
    document = json.loads(out)
    rows = {r["budget"]: (r["calls"], r["blocked"], r["spend_usd"]) for r in document["rows"]}
    assert rows == {"team": (4, 0, 4.5), "tenants": (4, 2, 4.5), "proposed": (4, 0, 4.5)}
    assert document["total"] == {"calls": 4, "blocked": 2, "spend_usd": 4.5}


def test_report_period_bounds(history, capsys):
    code, out, _ = run(capsys, "report", "--since", "2026-11-10T12:00:00Z", "--until", "2026-11-11T00:00:00+00:00",
                       "--by", "user", "--format", "csv")
    assert code == 0
    assert list(csv.reader(io.StringIO(out)))[1:] == [["carol", "1", "0", "2"], ["alice", "1", "0", "1.25"],
                                                       ["bob", "1", "0", "0.75"]]
    code, out, _ = run(capsys, "report", "--since", "2026-12-01", "--until", "2026-12-31", "--format", "json")
    assert json.loads(out)["rows"] == [] and json.loads(out)["total"]["calls"] == 0


def test_report_by_provider_and_an_attribute_key(history, capsys):
    code, out, _ = run(capsys, "report", "--since", "2026-11-01", "--until", "2026-11-30", "--by",
                       "provider,enduser.id", "--format", "csv")
    assert code == 0
    assert out.splitlines()[0] == "provider,enduser.id,calls,blocked,spend_usd"
    assert "openai,carol,1,2,2" in out.splitlines()


def test_report_defaults_to_this_month_so_far(app, capsys):
    spend(app, "acme", "1", "0.4", model="gpt-4o")
    code, out, _ = run(capsys, "report")
    assert code == 0
    now = datetime.now(timezone.utc)
    assert out.startswith(f"spend from {now:%Y-%m}-01T00:00:00+00:00 to ")
    assert line_of(out, "gpt-4o-2024-08-06").split()[1:] == ["1", "0", "$0.40", "100.0%"]


def entry(kind, rid, budget="b", amount=10**9, time=NOV_10, **attributes):
    return LedgerEntry(time, kind, budget, "", "w", amount, rid, attributes)


def test_aggregate_attributes_come_from_the_reserve_or_the_block_entry():
    reserve_attrs = {"r1": {"tenant.id": "acme", "gen_ai.request.model": "gpt-4o"},
                     "r2": {"tenant.id": "globex", "gen_ai.request.model": "o3", "shadow": False}}
    entries = [
        entry("settle", "r1", **{"gen_ai.response.model": "gpt-4o-2024"}),
        entry("settle", "r1", budget="c", **{"gen_ai.response.model": "gpt-4o-2024"}),
        entry("settle", "r2", amount=3 * 10**9),  # a refused call made anyway: its attributes are the block's
        entry("settle", "r3", amount=10**9),  # reserve entry not found: grouped as (none)
        entry("block", "r4", shadow=True, **{"tenant.id": "acme"}),  # a shadow refusal is not a blocked call
        entry("release", "r5"),
    ]
    report = aggregate(entries, reserve_attrs, ["tenant", "model"])
    assert [(r.group, r.calls, r.blocked, r.spend) for r in report.rows] == [
        (("globex", "o3"), 1, 0, Decimal(3)),
        (("(none)", "(none)"), 1, 0, Decimal(1)),
        (("acme", "gpt-4o-2024"), 1, 0, Decimal(1)),
    ]
    assert (report.total.calls, report.total.spend) == (3, Decimal(5))


def test_report_finds_the_reserve_entry_of_a_call_reserved_long_before(config_path, capsys):
    clock = Clock(NOV_10)
    config = load_budget_config(config_path)
    store = SQLiteBudgetStore(str(config_path.parent / "budgets.db"), clock=clock)
    book = BudgetBook(config.budgets, store, clock=clock, hold_ttl=10 * 86400)
    reservation = book.reserve(call("acme", "gpt-4o", "alice"), "1")
    clock.now += 3 * 86400  # settled three days later
    book.settle(reservation, "0.5")
    store.close()
    code, out, _ = run(capsys, "report", "--since", "2026-11-12", "--until", "2026-11-30", "--by", "tenant,model",
                       "--format", "csv")
    assert code == 0
    assert out.splitlines()[1:] == ["acme,gpt-4o,1,0,0.5"]


def test_report_since_a_duration_ago(app, capsys):
    spend(app, "acme", "1", "0.4", model="o3")
    code, out, _ = run(capsys, "report", "--since", "2d", "--by", "tenant", "--format", "csv")
    assert code == 0
    assert out.splitlines()[1:] == ["acme,1,0,0.4"]
    code, out, _ = run(capsys, "report", "--since", "2d", "--until", "1d", "--format", "csv")
    assert code == 0 and out.splitlines()[1:] == []


def test_show_a_budget_without_partitions_and_without_ledger_lines(app, capsys):
    spend(app, "acme", "1", "0.5")
    code, out, _ = run(capsys, "budget", "show", "team", "--last", "0")
    assert code == 0
    assert re.search(r"per: +- \(one budget for every call it covers\)", out)
    assert line_of(out, "-", "$100.00").split()[1:5] == ["$100.00", "$0.50", "$0.00", "$99.50"]
    assert "ledger" not in out


# --- issue 8.3d: which holds are stale ---------------------------------------------------------------


def _hold_and_die(path: str, held) -> None:
    import time as _time

    store = SQLiteBudgetStore(path)
    config = load_budget_config(Path(path).parent / "otel-ai-cost.yaml")
    book = BudgetBook(config.budgets, store, hold_ttl=3600)
    assert book.reserve(call("dead"), "0.75").decision.allowed
    held.set()
    _time.sleep(60)


def test_show_says_which_holds_are_stale(app, capsys, tmp_path):
    import multiprocessing
    import os
    import signal
    import time as _time

    from otel_ai_cost.budgets._ttl import stale_after

    fork = multiprocessing.get_context("fork")
    held = fork.Event()
    child = fork.Process(target=_hold_and_die, args=(str(tmp_path / "budgets.db"), held))
    child.start()
    assert held.wait(20)
    os.kill(child.pid, signal.SIGKILL)  # its hold stays until hold_ttl
    child.join(10)
    assert app.reserve(call("alive"), "0.5").decision.allowed  # this process: running, recent
    # A hold placed longer ago than any SDK call lasts (by a store whose clock is that far back).
    old = SQLiteBudgetStore(str(tmp_path / "budgets.db"), clock=lambda: _time.time() - stale_after() - 120)
    BudgetBook(app.budgets, old, hold_ttl=86400).reserve(call("old"), "0.25")
    old.close()

    code, out, err = run(capsys, "budget", "show", "tenants")
    assert code == 0, err
    section = out.split("holds in flight: ")[1].splitlines()
    assert section[0] == "3 ($1.50); 2 stale ($1.00), counted until they expire"
    lines = {line.split()[1]: line for line in section[1:4]}
    assert f"STALE: process {child.pid} is not running" in lines["dead"] and "$0.75" in lines["dead"]
    assert "STALE: older than the longest SDK call" in lines["old"]
    assert "STALE" not in lines["alive"] and f":{os.getpid()}," in lines["alive"]
