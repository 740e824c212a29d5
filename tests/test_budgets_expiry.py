"""Holds that expire unsettled (issue 11.6), and warnings logged once per threshold (issue 11.7).

A process killed with calls in flight leaves their holds; at their TTL, ``on_expired_hold:
charge_estimate`` (the default) adds each one's estimate to the spend of the window it was taken in,
once, whichever process expires it, and the ledger says so (``expire_charge``); ``release`` drops
them, as before. A settle that comes after the charge replaces the estimate by the actual cost.

Amounts are nano-dollars (1 USD = 10**9); the estimates are the amounts the tests hold.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, Union

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import Clock, kill_once_ready
from otel_ai_cost.budgets import (
    Budget,
    BudgetBook,
    BudgetEnforcer,
    HoldRequest,
    MemoryBudgetStore,
    Spend,
    SQLiteBudgetStore,
    Threshold,
    calendar,
    lifetime,
    load_budget_config,
    warn,
)
from otel_ai_cost.budgets._cli_render import describe_entry
from otel_ai_cost.budgets._redis import RedisBudgetStore
from otel_ai_cost.budgets._report import build_report
from otel_ai_cost.errors import ConfigError

USD = 10**9
FORK = multiprocessing.get_context("fork")  # children open their own connections after the fork


def hold(amount, window="w", on_expired="charge_estimate", budget="b", key="k"):
    return HoldRequest(budget, key, window, None, amount, on_expired=on_expired)


SLOT = ("b", "k", "w")


# --- the stores -------------------------------------------------------------------------------


def test_an_expired_hold_is_charged_once_and_a_late_settle_replaces_the_estimate(make_store):
    clock = Clock()
    placing = make_store(clock)
    assert placing.reserve([hold(3 * USD)], "dead", ttl=30).ok  # never settled: its process died
    assert placing.reserve([hold(2 * USD)], "slow", ttl=30).ok  # settles after its TTL
    assert placing.reserve([hold(5 * USD, on_expired="release")], "dropped", ttl=30).ok
    assert placing.reserve([hold(4 * USD)], "failed", ttl=30).ok  # released after its TTL
    later = make_store(Clock(clock.now + 30))
    assert later.spent("b", "k", ["w"]) == Spend(3 * USD + 2 * USD + 4 * USD, 0)
    # Another process reads too: nothing is charged twice.
    again = make_store(Clock(clock.now + 31))
    assert again.spent("b", "k", ["w"]) == Spend(9 * USD, 0)
    charges = later.ledger(kind="expire_charge")
    assert sorted((e.reservation_id, e.amount_nanos) for e in charges) == [
        ("dead", 3 * USD), ("failed", 4 * USD), ("slow", 2 * USD)
    ]
    assert all(e.attributes == {"on_expired_hold": "charge_estimate"} and e.window_key == "w" for e in charges)
    assert [(e.reservation_id, e.amount_nanos) for e in later.ledger(kind="expire")] == [("dropped", 5 * USD)]

    # The slow call finishes: its actual cost ($0.75) replaces the $2 estimate charged at expiry
    # (settled with once, as a settle replayed from the journal is).
    placing.settle("slow", {SLOT: 750_000_000}, once=True)
    assert later.spent("b", "k", ["w"]) == Spend(3 * USD + 750_000_000 + 4 * USD, 0)
    # The same settle again (the journal replayed after the first landed): nothing more.
    placing.settle("slow", {SLOT: 750_000_000}, once=True)
    assert later.spent("b", "k", ["w"]) == Spend(3 * USD + 750_000_000 + 4 * USD, 0)
    (settle,) = later.ledger(kind="settle")
    assert settle.reservation_id == "slow" and settle.amount_nanos == 750_000_000
    assert settle.attributes == {"late": True, "expired_charge_nanos": 2 * USD}

    # The failed call is released: the call cost nothing, its charge is taken back.
    placing.release("failed")
    assert later.spent("b", "k", ["w"]) == Spend(3 * USD + 750_000_000, 0)
    (release,) = later.ledger(kind="release")
    assert (release.reservation_id, release.amount_nanos) == ("failed", 4 * USD)
    assert release.attributes == {"expired_charge_nanos": 4 * USD}
    placing.release("failed")  # again: nothing left to take back
    assert later.spent("b", "k", ["w"]) == Spend(3 * USD + 750_000_000, 0)
    assert len(later.ledger(kind="release")) == 1


def test_a_charge_taken_back_never_takes_the_spend_below_zero(make_store):
    clock = Clock()
    store = make_store(clock)
    assert store.reserve([hold(3 * USD)], "r", ttl=10).ok
    clock.now += 10
    assert store.spent("b", "k", ["w"]) == Spend(3 * USD, 0)
    assert store.reset("b", "k", ["w"]) == 3 * USD  # an operator zeroed the window meanwhile
    store.settle("r", {SLOT: USD})
    assert store.spent("b", "k", ["w"]) == Spend(USD, 0)
    (settle,) = store.ledger(kind="settle")
    assert settle.attributes["expired_charge_nanos"] == 0  # nothing was left to take back


def test_an_expired_hold_is_charged_to_the_window_it_was_taken_in(make_store):
    """A daily budget: a hold taken at 23:59:59 that expires the next day counts in the first day."""
    clock = Clock("2026-12-01T23:59:59+00:00")
    store = make_store(clock)
    budget = Budget("daily", 100, calendar("day"))
    book = BudgetBook([budget], store, clock=clock, hold_ttl=30)
    reservation = book.reserve({}, "1.25")
    assert reservation.decision.allowed and reservation.slots == (("daily", "", "2026-12-01"),)
    clock.now += 60  # 2026-12-02 00:00:59
    assert book.usage("daily").spent == 0 and book.usage("daily").window_key == "2026-12-02"
    first_day = book.usage("daily", at=datetime.fromisoformat("2026-12-01T12:00:00+00:00"))
    assert (first_day.window_key, first_day.spent, first_day.reserved) == ("2026-12-01", Decimal("1.25"), 0)
    (charge,) = store.ledger(kind="expire_charge")
    assert charge.window_key == "2026-12-01" and charge.amount_nanos == 1_250_000_000


def test_threads_settling_while_others_expire_charge_each_hold_once(make_store):
    """Readers with a clock past every TTL expire the holds while other threads settle or release the
    same reservations: whatever the order, each call counts once, at its actual cost when it settled,
    nothing when it was released, its estimate when it was left."""
    n, threads = 300, 5
    clock = Clock()
    placing = make_store(clock)
    for i in range(n):
        assert placing.reserve([hold(1000 + i)], f"r{i}", ttl=1).ok
    later = Clock(clock.now + 2)
    stores = [make_store(later) for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def work(t):
        store = stores[t]
        barrier.wait()
        for i in range(n):
            if t < 2:
                store.spent("b", "k", ["w"])  # expires (and charges) whatever is due
            elif (t, i % 4) in ((2, 0), (3, 2)):
                store.settle(f"r{i}", {SLOT: 7})
            elif (t, i % 4) == (4, 1):
                store.release(f"r{i}")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    # r{i}: i % 4 == 0 or 2: settled (7 each); 1: released (0); 3: left, charged its estimate.
    left = [1000 + i for i in range(n) if i % 4 == 3]
    settled = [i for i in range(n) if i % 2 == 0]
    assert stores[0].spent("b", "k", ["w"]) == Spend(7 * len(settled) + sum(left), 0)
    charged = Counter(e.reservation_id for e in stores[0].ledger(kind="expire_charge"))
    assert all(count == 1 for count in charged.values())  # charged at most once each
    assert {f"r{i}" for i in range(n) if i % 4 == 3} <= set(charged)


# --- a real kill: SQLite and a real redis-server ------------------------------------------------


class RedisTarget(NamedTuple):
    url: str
    prefix: str


Target = Union[str, RedisTarget]  # a SQLite file, or a Redis store
TENANTS = Budget("tenant-monthly", 50, lifetime(), per="tenant.id")
# What the killed process holds, in USD (hand-picked amounts, exact in nano-dollars).
IN_FLIGHT = [("acme", "0.25"), ("acme", "1.125"), ("globex", "0.5")]
SETTLED = ("acme", "0.4", "0.3")  # one call held 0.4 and settled at 0.3 before the kill


def open_store(target: Target, clock=time.time):
    if isinstance(target, RedisTarget):
        return RedisBudgetStore(target.url, clock=clock, prefix=target.prefix)
    return SQLiteBudgetStore(target, clock=clock)


def _call_and_get_killed(target: Target, policy: str, held) -> None:
    book = BudgetBook([TENANTS], open_store(target), hold_ttl=1.0, on_expired_hold=policy)
    tenant, estimate, actual = SETTLED
    book.settle(book.reserve({"tenant.id": tenant, "gen_ai.request.model": "gpt-4o"}, estimate), actual)
    for tenant, estimate in IN_FLIGHT:
        assert book.reserve({"tenant.id": tenant, "gen_ai.request.model": "gpt-4o"}, estimate).decision.allowed
    held.set()
    time.sleep(120)  # calls in flight, until SIGKILL


def kill_while_holding(target: Target, policy: str) -> None:
    kill_once_ready(_call_and_get_killed, target, policy)


@pytest.fixture(params=["sqlite", "redis"])
def target(request, tmp_path) -> Target:
    if request.param == "sqlite":
        path = str(tmp_path / "budgets.db")
        SQLiteBudgetStore(path).close()
        return path
    return RedisTarget(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))


def test_the_calls_of_a_killed_process_are_charged_at_their_estimate(target):
    kill_while_holding(target, "charge_estimate")
    now = open_store(target)
    assert now.spent("tenant-monthly", "acme", ["lifetime"]) == Spend(300_000_000, 1_375_000_000)
    assert now.spent("tenant-monthly", "globex", ["lifetime"]) == Spend(0, 500_000_000)
    assert not now.ledger(kind="expire_charge")

    offset = 1.5  # past the 1 s TTL, without waiting for it
    later = open_store(target, clock=lambda: time.time() + offset)
    # acme: 0.3 settled + 0.25 + 1.125 charged at expiry; globex: 0.5 charged.
    assert later.spent("tenant-monthly", "acme", ["lifetime"]) == Spend(1_675_000_000, 0)
    assert later.spent("tenant-monthly", "globex", ["lifetime"]) == Spend(500_000_000, 0)
    charges = later.ledger(kind="expire_charge")
    assert sorted((e.key, e.amount_nanos) for e in charges) == [
        ("acme", 250_000_000), ("acme", 1_125_000_000), ("globex", 500_000_000)
    ]
    assert not later.ledger(kind="expire")
    # budget show's ledger lines and the report tell the charges from the settled call.
    lines = [describe_entry(e) for e in later.ledger(budget_id="tenant-monthly", key="acme")]
    assert sum(" expire_charge " in line for line in lines) == 2
    assert sum(" settle " in line for line in lines) == 1
    report = build_report(later, time.time() - 60, time.time() + 60, ["tenant"])
    rows = {r.group: r for r in report.rows}
    assert (rows[("acme",)].calls, rows[("acme",)].expired, rows[("acme",)].spend_nanos) == (3, 2, 1_675_000_000)
    assert (rows[("globex",)].calls, rows[("globex",)].expired, rows[("globex",)].spend_nanos) == (1, 1, 500_000_000)
    assert report.total.spend_nanos == 2_175_000_000
    # Another process reading later still: charged once.
    latest = open_store(target, clock=lambda: time.time() + 5)
    assert latest.spent("tenant-monthly", "acme", ["lifetime"]) == Spend(1_675_000_000, 0)
    assert len(latest.ledger(kind="expire_charge")) == 3
    for store in (now, later, latest):
        store.close()


def test_with_release_the_calls_of_a_killed_process_are_dropped(target):
    kill_while_holding(target, "release")
    later = open_store(target, clock=lambda: time.time() + 1.5)
    assert later.spent("tenant-monthly", "acme", ["lifetime"]) == Spend(300_000_000, 0)
    assert later.spent("tenant-monthly", "globex", ["lifetime"]) == Spend(0, 0)
    assert sorted(e.amount_nanos for e in later.ledger(kind="expire")) == [250_000_000, 500_000_000, 1_125_000_000]
    assert not later.ledger(kind="expire_charge")
    later.close()


def _expire_at_once(target: Target, offset: float, start) -> None:
    store = open_store(target, clock=lambda: time.time() + offset)
    start.wait(timeout=30)
    store.spent("tenant-monthly", "acme", ["lifetime"])
    store.spent("tenant-monthly", "globex", ["lifetime"])
    os._exit(0)


def test_processes_racing_to_expire_charge_each_hold_once(target):
    kill_while_holding(target, "charge_estimate")
    start = FORK.Event()
    racers = [FORK.Process(target=_expire_at_once, args=(target, 1.5, start)) for _ in range(4)]
    for p in racers:
        p.start()
    start.set()
    for p in racers:
        p.join(timeout=60)
        assert p.exitcode == 0
    store = open_store(target, clock=lambda: time.time() + 1.5)
    assert store.spent("tenant-monthly", "acme", ["lifetime"]) == Spend(1_675_000_000, 0)
    assert store.spent("tenant-monthly", "globex", ["lifetime"]) == Spend(500_000_000, 0)
    assert len(store.ledger(kind="expire_charge")) == 3
    store.close()


# --- the policy: in code and in the budget file -------------------------------------------------


def test_each_budget_may_have_its_own_policy(tmp_path):
    clock = Clock()
    store = MemoryBudgetStore(clock)
    book = BudgetBook(
        [Budget("counted", 10, lifetime()), Budget("dropped", 10, lifetime(), on_expired_hold="release")],
        store, clock=clock, hold_ttl=5,
    )
    assert book.reserve({}, "2").decision.allowed
    clock.now += 5
    assert (book.usage("counted").spent, book.usage("dropped").spent) == (2, 0)
    book = BudgetBook([Budget("counted", 10, lifetime())], MemoryBudgetStore(clock), clock=clock, hold_ttl=5,
                      on_expired_hold="release")
    assert book.reserve({}, "2").decision.allowed
    clock.now += 5
    assert book.usage("counted").spent == 0


def write(tmp_path, text):
    path = tmp_path / "otel-ai-cost.yaml"
    path.write_text(text)
    return path


def test_the_budget_file_sets_the_policy(tmp_path):
    config = load_budget_config(write(tmp_path, (
        "on_expired_hold: release\n"
        "budgets:\n"
        "  - {id: a, limit_usd: 1, window: lifetime}\n"
        "  - {id: b, limit_usd: 1, window: lifetime, on_expired_hold: charge_estimate}\n"
        "store: {url: 'memory://'}\n"
    )))
    assert config.on_expired_hold == "release"
    assert [b.on_expired_hold for b in config.budgets] == [None, "charge_estimate"]
    assert config.book().on_expired_hold == "release"
    from otel_ai_cost._budget_setup import resolve_budget_book

    book = resolve_budget_book(config, None, MemoryBudgetStore(), None)  # what the processor builds from the file
    assert book is not None and book.on_expired_hold == "release"
    assert load_budget_config(write(tmp_path, "budgets: []\n")).on_expired_hold == "charge_estimate"


@pytest.mark.parametrize("text, where", [
    ("on_expired_hold: charge\n", r"otel-ai-cost.yaml: on_expired_hold: must be charge_estimate or release, "
                                   r"not 'charge'"),
    ("on_expired_hold: [release]\n", r"otel-ai-cost.yaml: on_expired_hold: must be charge_estimate or release"),
    ("budgets:\n  - {id: a, limit_usd: 1, window: lifetime, on_expired_hold: drop}\n",
     r"otel-ai-cost.yaml: budgets\[0\].on_expired_hold: must be charge_estimate or release, not 'drop'"),
])
def test_a_malformed_policy_fails_at_configuration_time(tmp_path, text, where):
    with pytest.raises(ConfigError, match=where):
        load_budget_config(write(tmp_path, text))


def test_a_malformed_policy_in_code_fails_at_once():
    with pytest.raises(ConfigError, match=r"budget 'a': on_expired_hold must be charge_estimate or release"):
        Budget("a", 1, lifetime(), on_expired_hold="keep")
    with pytest.raises(ConfigError, match=r"on_expired_hold must be charge_estimate or release, not 'x'"):
        BudgetBook([], on_expired_hold="x")


# --- warnings: logged once per threshold, key and window ----------------------------------------


def test_warnings_are_logged_once_per_threshold_key_and_window(caplog):
    """Two tenants, warnings at 50% and 80% of $1 a day, calls of $0.10: each tenant's log says 50%,
    then 80%, once each in each window, while every call past a threshold gets the span event."""
    clock = Clock("2026-12-01T10:00:00+00:00")
    budget = Budget("daily", 1, calendar("day"), per="tenant.id",
                    thresholds=[Threshold(Decimal("0.5"), warn()), Threshold(Decimal("0.8"), warn())])
    book = BudgetBook([budget], MemoryBudgetStore(clock), clock=clock)
    enforcer = BudgetEnforcer(book)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    def call(tenant: str) -> Any:
        span = tracer.start_span("chat gpt-4o")
        decision, held = enforcer.decide(span, {"tenant.id": tenant}, trace_id=None, estimate=None)
        assert decision is not None and decision.allowed and held is not None
        held.settle(Decimal("0.1"))
        span.end()

    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.budgets"):
        for _day in range(2):
            for _ in range(10):  # the 10th: $0.9 spent + its $0.000000001 hold, under the $1 limit
                call("acme")
                call("globex")
                clock.now += 60
            clock.now += 86400
    lines = [r.getMessage() for r in caplog.records if "passed a warning threshold" in r.getMessage()]
    # Per tenant and day: at the 6th call ($0.5 spent) 50%, at the 9th ($0.8) 80%.
    assert len(lines) == 2 * 2 * 2
    for tenant in ("acme", "globex"):
        for day in ("2026-12-01", "2026-12-02"):
            mine = [line for line in lines if f"tenant.id={tenant} in window {day}" in line]
            assert ["of 50%" in mine[0], "of 80%" in mine[1], len(mine)] == [True, True, 2], mine
    events = [e for s in exporter.get_finished_spans() for e in s.events if e.name == "ai_cost.budget.warning"]
    assert len(events) == 2 * 2 * 5  # calls 6 to 10 of each tenant and day: on every call


# --- what budget show and report say ------------------------------------------------------------


def test_budget_show_and_report_tell_expired_charges_from_settled_calls(tmp_path, capsys, monkeypatch):
    import json

    from otel_ai_cost.cli import main

    path = write(tmp_path, "budgets:\n  - {id: team, limit_usd: 10, window: lifetime}\nstore: {url: sqlite://b.db}\n")
    monkeypatch.setenv("OTEL_AI_COST_CONFIG", str(path))
    config = load_budget_config(path)
    before = lambda: time.time() - 100  # noqa: E731 - the calls were made 100 s ago, with a 10 s hold_ttl
    book = BudgetBook(config.budgets, SQLiteBudgetStore(str(tmp_path / "b.db"), clock=before), clock=before,
                      hold_ttl=10)
    book.settle(book.reserve({"gen_ai.request.model": "gpt-4o"}, "0.4"), "0.3")
    book.reserve({"gen_ai.request.model": "gpt-4o"}, "0.25")  # its process died
    slow = book.reserve({"gen_ai.request.model": "gpt-4o"}, "1")  # settles after its hold expired

    assert main(["budget", "show", "team", "--last", "10"]) == 0
    out = capsys.readouterr().out
    assert "  on expiry:   charge_estimate (a hold its call never settled is charged to its window" in out
    assert usage_row(out)[:4] == ["$10.00", "$1.55", "$0.00", "$8.45"]  # 0.3 + 0.25 + 1 charged
    charges = [line for line in out.splitlines() if " expire_charge " in line]
    assert len(charges) == 2 and any("$0.25" in line for line in charges) and any("$1.00" in line for line in charges)

    book.settle(slow, "0.6")  # the actual cost replaces the $1 charged
    assert main(["budget", "show", "team", "--last", "1"]) == 0
    out = capsys.readouterr().out
    assert usage_row(out)[:2] == ["$10.00", "$1.15"]
    assert "$0.60 (replaces the $1.00 charged when its hold expired)" in out

    assert main(["report", "--since", "1d", "--by", "budget", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row == {"budget": "team", "calls": 3, "expired": 2, "blocked": 0, "spend_usd": 1.15}
    assert main(["report", "--since", "1d", "--by", "budget"]) == 0
    table = capsys.readouterr().out
    assert line_of(table, "team").split() == ["team", "3", "2", "0", "$1.15", "100.0%"]
    assert "EXPIRED" in table.splitlines()[1]


def usage_row(out: str) -> list:
    """The cells of budget show's usage row of a budget without per (key "-"), after the key."""
    (row,) = [line for line in out.splitlines() if line.startswith("-  ")]
    return row.split()[1:]


def line_of(out: str, *words: str) -> str:
    lines = [line for line in out.splitlines() if all(w in line.split() for w in words)]
    assert len(lines) == 1, (words, out)
    return lines[0]


def test_holds_placed_by_a_previous_version_are_dropped_at_expiry(tmp_path, redis_url, redis_prefix):
    """A hold without a policy (placed by a version that dropped expired holds) is dropped, as that
    version would have done: SQLite's on_expired column NULL, Redis's hold value of five fields."""
    clock = Clock()
    sqlite = SQLiteBudgetStore(str(tmp_path / "b.db"), clock=clock)
    redis = RedisBudgetStore(redis_url, clock=clock, prefix=redis_prefix)
    for store in (sqlite, redis):
        assert store.reserve([hold(2 * USD)], "old", ttl=10).ok
        assert store.reserve([hold(3 * USD)], "new", ttl=10).ok
    sqlite._db.execute("UPDATE holds SET on_expired = NULL WHERE reservation_id = 'old'")
    holds_key = redis._key("holds", "b", "k")
    value = redis._client.hget(holds_key, "old")
    redis._client.hset(holds_key, "old", value.rsplit("|", 1)[0])
    clock.now += 10
    for store in (sqlite, redis):
        assert store.spent("b", "k", ["w"]) == Spend(3 * USD, 0)
        ended = sorted((e.kind, e.reservation_id) for e in store.ledger(kinds=("expire", "expire_charge")))
        assert ended == [("expire", "old"), ("expire_charge", "new")]
        store.close()


def test_the_report_counts_a_late_call_once_under_budgets_of_both_policies():
    """A call under a charge_estimate budget and a release budget, settled after its holds expired:
    each budget counts it once at its actual cost, and so does the total."""
    clock = Clock()
    store = MemoryBudgetStore(clock)
    book = BudgetBook(
        # dropped first: its (plain, late) settle is the first of the call's entries the total sees
        [Budget("dropped", 10, lifetime(), on_expired_hold="release"), Budget("charged", 10, lifetime())],
        store, clock=clock, hold_ttl=5,
    )
    late = book.reserve({"gen_ai.request.model": "gpt-4o"}, "2")
    left = book.reserve({"gen_ai.request.model": "gpt-4o"}, "0.5")  # never settled
    clock.now += 5
    assert (book.usage("charged").spent, book.usage("dropped").spent) == (Decimal("2.5"), 0)
    book.settle(late, "0.75")
    assert (book.usage("charged").spent, book.usage("dropped").spent) == (Decimal("1.25"), Decimal("0.75"))
    assert left.id in {e.reservation_id for e in store.ledger(kind="expire_charge")}
    report = build_report(store, clock.now - 60, clock.now + 60, ["budget"])
    rows = {r.group: (r.calls, r.expired, r.spend_nanos) for r in report.rows}
    # charged: 0.75 (the late call) + 0.5 (left); dropped: 0.75; the total: each call once.
    assert rows == {("charged",): (2, 2, 1_250_000_000), ("dropped",): (1, 0, 750_000_000)}
    assert (report.total.calls, report.total.expired, report.total.spend_nanos) == (2, 2, 1_250_000_000)
    by_model = build_report(store, clock.now - 60, clock.now + 60, ["model"])
    assert [(r.group, r.calls, r.spend_nanos) for r in by_model.rows] == [(("gpt-4o",), 2, 1_250_000_000)]


# --- the same through the real OpenAI SDK and the processor -------------------------------------

SDK_MESSAGES = [{"role": "user", "content": "Summarise the refund policy in one line."}]
SDK_MAX_TOKENS = (100, 200, 400)  # one call in flight each


def _sdk_calls_in_flight_then_killed(target: Target, started) -> None:
    import conftest
    from _fake_openai import FakeOpenAI
    from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

    book = BudgetBook([Budget("team", 50, lifetime())], open_store(target), hold_ttl=1.0)
    pipeline = conftest.Pipeline(OpenAIInstrumentor(), budget_book=book)
    never = threading.Event()
    fake = FakeOpenAI(chat=lambda body: (started.put(body["max_tokens"]), never.wait())[1])  # sent, never answered
    client = fake.client()
    for max_tokens in SDK_MAX_TOKENS:
        threading.Thread(target=client.chat.completions.create, daemon=True,
                         kwargs={"model": "gpt-4o", "messages": SDK_MESSAGES, "max_tokens": max_tokens}).start()
    never.wait(120)
    pipeline.close()


def sdk_estimates() -> list:
    """The processor's estimate of each call (span attribute ai_cost.estimate.amount), in nano-dollars,
    made unbudgeted against a fake that answers."""
    import conftest
    from _fake_openai import FakeOpenAI
    from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

    pipeline = conftest.Pipeline(OpenAIInstrumentor())
    client = FakeOpenAI().client()
    try:
        for max_tokens in SDK_MAX_TOKENS:
            client.chat.completions.create(model="gpt-4o", messages=SDK_MESSAGES, max_tokens=max_tokens)
        return [round(Decimal(str(s.attributes["ai_cost.estimate.amount"])) * USD) for s in pipeline.spans()]
    finally:
        pipeline.close()


def test_sdk_calls_in_flight_in_a_killed_process_are_charged_at_their_estimates(target):
    estimates = sdk_estimates()
    # gpt-4o: $10 per million output tokens (pricing/openai.yaml); the estimates bound output by
    # max_tokens, so 100 more max_tokens is $0.001 more, with the same input.
    assert [b - a for a, b in zip(estimates, estimates[1:])] == [1_000_000, 2_000_000]
    started = FORK.Queue()
    child = FORK.Process(target=_sdk_calls_in_flight_then_killed, args=(target, started))
    child.start()
    try:
        assert sorted(started.get(timeout=30) for _ in SDK_MAX_TOKENS) == list(SDK_MAX_TOKENS)  # all 3 sent
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=10)
    assert child.exitcode == -signal.SIGKILL
    now = open_store(target)
    assert now.spent("team", "", ["lifetime"]) == Spend(0, sum(estimates))
    later = open_store(target, clock=lambda: time.time() + 1.5)
    assert later.spent("team", "", ["lifetime"]) == Spend(sum(estimates), 0)
    assert sorted(e.amount_nanos for e in later.ledger(kind="expire_charge")) == estimates
    for store in (now, later):
        store.close()
