"""Redis settles off the call's path (``RedisBudgetStore(settle_interval=...)``, the default): a settle
is queued and sent in the round trip of the next reserve, or by the background flusher; reads, ``flush``, ``close``
and the processor's ``force_flush`` send it first; a lost settle leaves its hold to be charged at
expiry. Against a real redis-server (conftest ``redis_url``)."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from conftest import Clock
from otel_ai_cost.budgets import Budget, BudgetBook, HoldRequest, Spend, calendar
from otel_ai_cost.budgets._resilient import ResilientStore

USD = 10**9
SLOT = ("b", "k", "w")


@pytest.fixture
def open_store(open_redis_store):
    return open_redis_store  # RedisBudgetStore's defaults: settles queued


def hold(amount=USD, limit=None, on_expired="release"):
    return HoldRequest(*SLOT, limit, amount, on_expired=on_expired)


@pytest.fixture
def round_trips(monkeypatch):
    """Counts the writes to Redis sockets (one per command, or per pipeline: one round trip each)."""
    sent = []
    connection_class = redis.connection.AbstractConnection
    real = connection_class.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(1)
        return real(self, command, check_health)

    monkeypatch.setattr(connection_class, "send_packed_command", counting)
    return sent


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_a_queued_settle_rides_in_the_next_reserves_round_trip(open_store, round_trips):
    clock = Clock()
    queued = open_store(clock, settle_interval=30)  # a flusher too slow to interfere
    other = open_store(clock)  # another process: sees only what reached the server
    queued._client.script_load(queued._settle.script)  # as after the first call (the server knows it)
    assert queued.reserve([hold()], "r1", ttl=60).ok
    round_trips.clear()
    queued.settle("r1", {SLOT: 3})
    assert round_trips == []  # nothing sent on the call's path at its end
    assert other.spent(*SLOT[:2], ["w"]) == Spend(0, USD)  # the hold counts until the settle lands
    round_trips.clear()
    result = queued.reserve([hold(amount=5)], "r2", ttl=60)
    assert len(round_trips) == 1  # the settle and the reserve: one round trip
    assert result.ok and result.usage == (Spend(3, 0),)  # the reserve saw the settle that went first
    assert other.spent(*SLOT[:2], ["w"]) == Spend(3, 5)
    settle = queued.ledger(kind="settle", reservation_id="r1")
    assert len(settle) == 1 and settle[0].amount_nanos == 3 and not settle[0].attributes.get("late")


def test_the_flusher_sends_a_settle_no_reserve_carried(open_store):
    queued = open_store(settle_interval=0.02)
    other = open_store()
    assert queued.reserve([hold()], "r1", ttl=60).ok
    queued.settle("r1", {SLOT: 7})
    wait_until(lambda: other.spent(*SLOT[:2], ["w"]) == Spend(7, 0))


@pytest.mark.parametrize("how", ["read", "flush", "close", "release"])
def test_reads_flush_and_close_send_the_queued_settles_first(open_store, how):
    queued = open_store(settle_interval=30)
    other = open_store()
    assert queued.reserve([hold()], "r1", ttl=60).ok
    assert queued.reserve([hold()], "r2", ttl=60).ok
    queued.settle("r1", {SLOT: 7})
    if how == "read":
        assert queued.spent(*SLOT[:2], ["w"]) == Spend(7, USD)  # a process reads its own settles
    elif how == "flush":
        queued.flush()
    elif how == "close":
        queued.close()
    else:
        queued.release("r2")
    expected = Spend(7, 0) if how == "release" else Spend(7, USD)
    assert other.spent(*SLOT[:2], ["w"]) == expected


def test_settles_survive_a_script_flush(open_store):
    """The server lost its scripts (restarted, SCRIPT FLUSH): the pipeline loads them and runs again."""
    queued = open_store(settle_interval=30)
    assert queued.reserve([hold()], "r1", ttl=60).ok
    queued.settle("r1", {SLOT: 7})
    queued._client.script_flush()
    assert queued.reserve([hold(amount=2)], "r2", ttl=60).usage == (Spend(7, 0),)
    queued.settle("r2", {SLOT: 1})
    queued._client.script_flush()
    queued.flush()
    assert queued.spent(*SLOT[:2], ["w"]) == Spend(8, 0)


def test_a_lost_settle_is_not_sent_twice_and_its_hold_is_charged_at_expiry(open_store, monkeypatch, caplog):
    clock = Clock()
    queued = open_store(clock, settle_interval=30)
    assert queued.reserve([hold(on_expired="charge_estimate")], "r1", ttl=60).ok
    queued.settle("r1", {SLOT: 7})
    real = queued._pipeline

    def broken(calls):
        raise RedisConnectionError("connection reset (the batch may have landed)")

    monkeypatch.setattr(queued, "_pipeline", broken)
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.budgets"):
        with pytest.raises(RedisConnectionError):
            queued.flush()
    assert any("could not be sent" in r.getMessage() and "on_expired_hold" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(queued, "_pipeline", real)
    queued.flush()  # nothing is left to send: the batch is not sent again
    assert queued.spent(*SLOT[:2], ["w"]) == Spend(0, USD)
    clock.now += 61
    assert queued.spent(*SLOT[:2], ["w"]) == Spend(USD, 0)  # the hold's amount counts: no spend is lost
    assert [e.kind for e in queued.ledger(reservation_id="r1")] == ["reserve", "expire_charge"]


def test_a_resilient_store_keeps_the_settles_queued(open_store, round_trips):
    """Inside ResilientStore the settle still rides with the next reserve (a batch that fails goes to its
    journal: tests/test_budgets_queued_resilient.py)."""
    inner = open_store(settle_interval=30)
    store = ResilientStore(inner, name="redis", journal=False)
    other = open_store(settle_interval=None)
    inner._client.script_load(inner._settle.script)
    assert store.reserve([hold()], "r1", ttl=60).ok
    round_trips.clear()
    store.settle("r1", {SLOT: 7})
    assert round_trips == []
    assert other.spent(*SLOT[:2], ["w"]) == Spend(0, USD)  # the hold counts until the settle lands
    round_trips.clear()
    assert store.reserve([hold(amount=5)], "r2", ttl=60).usage == (Spend(7, 0),)
    assert len(round_trips) == 1  # the settle and the reserve
    store.close()


def test_a_resilient_store_without_journal_leaves_a_failed_batch_to_expire(open_store, monkeypatch):
    clock = Clock()
    inner = open_store(clock, settle_interval=30)
    store = ResilientStore(inner, name="redis", journal=False)
    assert store.reserve([hold(on_expired="charge_estimate")], "r1", ttl=60).ok
    store.settle("r1", {SLOT: 7})

    def broken(calls):
        raise RedisConnectionError("connection reset")

    real = inner._pipeline
    monkeypatch.setattr(inner, "_pipeline", broken)
    with pytest.raises(RedisConnectionError):
        store.flush()  # nowhere to keep it: the failure is the caller's to see
    monkeypatch.setattr(inner, "_pipeline", real)
    clock.now += 61
    assert store.spent(*SLOT[:2], ["w"]) == Spend(USD, 0)  # charged at expiry: no spend lost
    store.close()


def test_the_processor_force_flush_and_shutdown_send_the_queued_settles(open_store):
    from otel_ai_cost.processor import AICostSpanProcessor

    clock = Clock()
    queued = open_store(clock, settle_interval=30)
    other = open_store(clock)
    budget = Budget("b", Decimal("10"), calendar("month"))
    book = BudgetBook([budget], queued, clock=clock)
    processor = AICostSpanProcessor(budget_book=book)
    window = budget.window.span(datetime.fromtimestamp(clock.now, timezone.utc)).key
    reservation = book.reserve({}, Decimal("1"))
    assert reservation.held
    book.settle(reservation, Decimal("0.25"))
    assert other.spent("b", "", [window]) == Spend(0, USD)
    assert processor.force_flush() is True
    assert other.spent("b", "", [window]) == Spend(USD // 4, 0)
    second = book.reserve({}, Decimal("1"))
    book.settle(second, Decimal("0.5"))
    processor.shutdown()
    assert other.spent("b", "", [window]) == Spend(3 * USD // 4, 0)


# --- SQLite: the queued settles go into the next reserve's transaction ----------------------------


@pytest.fixture
def sqlite_store(tmp_path):
    from otel_ai_cost.budgets import SQLiteBudgetStore

    opened = []

    def make(clock=None, **kwargs):
        store = SQLiteBudgetStore(str(tmp_path / "budgets.db"), clock=clock or Clock(), **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_sqlite_a_queued_settle_goes_in_the_next_reserves_transaction(sqlite_store):
    clock = Clock()
    queued = sqlite_store(clock, settle_interval=30)
    other = sqlite_store(clock)
    statements = []
    queued._db.set_trace_callback(statements.append)
    assert queued.reserve([hold()], "r1", ttl=60).ok
    statements.clear()
    queued.settle("r1", {SLOT: 3})
    assert statements == []  # nothing written at the call's end
    assert other.spent(*SLOT[:2], ["w"]) == Spend(0, USD)  # the hold counts until the settle lands
    result = queued.reserve([hold(amount=5)], "r2", ttl=60)
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert result.ok and result.usage == (Spend(3, 0),)
    assert other.spent(*SLOT[:2], ["w"]) == Spend(3, 5)
    settle = other.ledger(kind="settle", reservation_id="r1")
    assert len(settle) == 1 and settle[0].amount_nanos == 3 and not settle[0].attributes.get("late")


def test_sqlite_the_flusher_and_close_apply_the_queued_settles(sqlite_store):
    flushed = sqlite_store(settle_interval=0.02)
    closing = sqlite_store(settle_interval=30)
    other = sqlite_store()
    assert flushed.reserve([hold()], "r1", ttl=60).ok
    assert closing.reserve([hold()], "r2", ttl=60).ok
    flushed.settle("r1", {SLOT: 7})
    wait_until(lambda: other.spent(*SLOT[:2], ["w"]).spent == 7)
    closing.settle("r2", {SLOT: 5})
    assert other.spent(*SLOT[:2], ["w"]) == Spend(7, USD)
    closing.close()
    assert other.spent(*SLOT[:2], ["w"]) == Spend(12, 0)


def test_sqlite_a_resilient_store_keeps_the_settles_queued(sqlite_store):
    store = ResilientStore(sqlite_store(settle_interval=30), name="sqlite", journal=False)
    other = sqlite_store()
    assert store.reserve([hold()], "r1", ttl=60).ok
    store.settle("r1", {SLOT: 7})
    assert other.spent(*SLOT[:2], ["w"]) == Spend(0, USD)
    assert store.reserve([hold(amount=5)], "r2", ttl=60).usage == (Spend(7, 0),)
    assert other.spent(*SLOT[:2], ["w"]) == Spend(7, 5)
    store.close()


def test_settles_queued_when_the_interpreter_exits_are_applied(tmp_path):
    """A process that ends without closing its store (no flush, no close): the atexit hook applies them."""
    import subprocess
    import sys

    from otel_ai_cost.budgets import SQLiteBudgetStore

    path = str(tmp_path / "budgets.db")
    code = (
        "from otel_ai_cost.budgets import HoldRequest, SQLiteBudgetStore\n"
        f"store = SQLiteBudgetStore({path!r}, settle_interval=30)\n"
        f"slot = {SLOT!r}\n"
        "assert store.reserve([HoldRequest(*slot, None, 10**9)], 'r1', 60).ok\n"
        "store.settle('r1', {slot: 7})\n"
        "assert len(store._queue) == 1\n"  # queued, not applied, when the script ends
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    store = SQLiteBudgetStore(path)
    try:
        assert store.spent(*SLOT[:2], ["w"]) == Spend(7, 0)
    finally:
        store.close()


def test_the_flusher_thread_ends_when_idle_and_starts_again(sqlite_store, monkeypatch):
    from otel_ai_cost.budgets import _deferred

    monkeypatch.setattr(_deferred, "_IDLE", 0.05)
    store = sqlite_store(settle_interval=0.01)
    other = sqlite_store()
    assert store.reserve([hold()], "r1", ttl=60).ok
    store.settle("r1", {SLOT: 7})
    wait_until(lambda: store._queue._thread is None)  # sent, then idle: the thread is gone
    assert other.spent(*SLOT[:2], ["w"]) == Spend(7, 0)
    assert store.reserve([hold()], "r2", ttl=60).ok
    store.settle("r2", {SLOT: 5})
    assert store._queue._thread is not None
    wait_until(lambda: other.spent(*SLOT[:2], ["w"]) == Spend(12, 0))
