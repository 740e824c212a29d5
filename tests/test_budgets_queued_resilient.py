"""Queued settles inside the ResilientStore a budget file opens (the default for Redis and SQLite):
one round trip per call on the call's path, and a queued batch that fails goes to the journal and is
replayed exactly once. Against real redis-servers (killed, stopped, restarted from their AOF) and
SQLite files, through the real openai SDK where the call's path is measured."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import redis as redis_py

from _redis_server import _answers_ping, _free_port
from otel_ai_cost.budgets import HoldRequest, Spend, load_budget_config
from otel_ai_cost.budgets._model import to_nanos
from otel_ai_cost.budgets._redis import RedisBudgetStore
from otel_ai_cost.budgets._resilient import ResilientStore, unwrap
from otel_ai_cost.errors import ConfigError
from test_budgets_resilience import DEADLINE, Pipeline, spent_nanos, wait_until, write_config

SLOT = ("team", "", "lifetime")


@pytest.fixture
def pipeline(close_later):
    return lambda config_file: close_later(Pipeline(config_file))


@pytest.fixture
def sent(monkeypatch):
    """Every write to a Redis socket (one per command, or per pipeline: one round trip each), with the
    thread that made it."""
    writes = []
    connection_class = redis_py.connection.AbstractConnection
    real = connection_class.send_packed_command

    def counting(self, command, check_health=True):
        writes.append(threading.current_thread().name)
        return real(self, command, check_health)

    monkeypatch.setattr(connection_class, "send_packed_command", counting)
    return writes


def on_the_calls_path(writes):
    """Round trips made by the calls (their thread, or the store's worker thread they wait for), not
    by the background flusher of queued settles."""
    return [w for w in writes if not w.startswith("otel-ai-cost settles")]


def evalsha_calls(client) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.parametrize("mode", ["thread", "store"])
def test_one_round_trip_per_call_through_the_sdk(tmp_path, redis_url, redis_prefix, pipeline, sent, mode):
    p = pipeline(write_config(tmp_path, redis_url, extra=f'  prefix: "{redis_prefix}"\n  deadline_mode: {mode}\n'))
    inner = unwrap(p.store)
    assert inner.settles_queued  # the default for Redis, inside the ResilientStore
    for _ in range(2):
        p.chat()  # connected, both scripts loaded on the server, controls read
    p.processor.budget_book.override_refresh = 3600  # the controls are read once a second: not in this count
    client = redis_py.Redis.from_url(redis_url)
    client.config_resetstat()
    sent.clear()
    for _ in range(20):
        p.chat()
    assert len(on_the_calls_path(sent)) == 20  # one round trip per call: the reserve, carrying earlier settles
    p.processor.force_flush()
    # Every call's reserve and settle ran on the server (the settle of the call before rode with the first).
    assert evalsha_calls(client) == 2 * 20 + 1
    assert spent_nanos(p.store) == to_nanos(p.costs())
    assert inner.spent(*SLOT[:2], [SLOT[2]]).reserved == 0
    settles = inner.ledger(kind="settle")
    assert len(settles) == len({e.reservation_id for e in settles}) == 22


def test_settle_immediate_in_the_file_sends_each_settle_at_once(tmp_path, redis_url, redis_prefix, pipeline, sent):
    p = pipeline(write_config(tmp_path, redis_url, extra=f'  prefix: "{redis_prefix}"\n  settle: immediate\n'))
    assert not unwrap(p.store).settles_queued
    p.chat()
    p.chat()
    p.processor.budget_book.override_refresh = 3600
    sent.clear()
    for _ in range(5):
        p.chat()
    assert len(on_the_calls_path(sent)) == 10  # the reserve, then the settle
    other = RedisBudgetStore(redis_url, prefix=redis_prefix, settle_interval=None)  # another process
    assert other.spent(*SLOT[:2], [SLOT[2]]).spent == to_nanos(p.costs())  # seen as soon as the call ended
    other.close()


@pytest.mark.parametrize("value, reason", [
    ("later", "store.settle: must be queued or immediate, not 'later'"),
    ("3", "store.settle: must be queued or immediate, not 3"),
])
def test_a_wrong_settle_key_fails_at_load_naming_file_key_and_reason(tmp_path, value, reason):
    path = write_config(tmp_path, "redis://127.0.0.1:1/0", extra=f"  settle: {value}\n")
    with pytest.raises(ConfigError) as error:
        load_budget_config(path)
    assert str(error.value) == f"{path}: {reason}"


def test_settle_queued_does_not_apply_to_the_memory_store(tmp_path):
    path = write_config(tmp_path, "memory://", extra="  settle: queued\n")
    with pytest.raises(ConfigError, match=r"otel-ai-cost.yaml: store.settle: applies to SQLite and Redis stores"):
        load_budget_config(path)
    assert load_budget_config(write_config(tmp_path, "memory://", extra="  settle: immediate\n")).settle == "immediate"


# --- a queued batch that fails: journaled, replayed once -------------------------------------------


def start_redis(directory: Path, port: int = 0) -> "tuple[subprocess.Popen[bytes], int]":
    """A redis-server whose data survives a kill: every write in its append-only file before it answers."""
    port = port or _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
         "--appendfsync", "always", "--dir", str(directory), "--logfile", str(directory / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while not _answers_ping(port):
        assert process.poll() is None and time.monotonic() < deadline, (directory / "redis.log").read_text()
        time.sleep(0.02)
    return process, port


@pytest.fixture
def durable_redis(tmp_path):
    started = []

    def start(port: int = 0):
        process, port = start_redis(tmp_path, port)
        started.append(process)
        return process, port

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            process.wait(5)


def resilient(url: str, tmp_path: Path, **store_options) -> ResilientStore:
    return ResilientStore(RedisBudgetStore(url, prefix="q", **store_options), name="redis", deadline=DEADLINE,
                          probe_interval=0.1, journal=str(tmp_path / "journal.db"))


def held_and_settled(store, amounts):
    """Reserve 100 nano-dollars per call, then settle each at its amount (queued)."""
    for i in range(len(amounts)):
        assert store.reserve([HoldRequest(*SLOT, None, 100)], f"r{i}", 60).ok
    for i, amount in enumerate(amounts):
        store.settle(f"r{i}", {SLOT: amount})


def one_settle_each(store, count):
    settles = store.ledger(kind="settle")
    assert sorted(e.reservation_id for e in settles) == [f"r{i}" for i in range(count)]  # none twice, none lost
    return {e.reservation_id: e for e in settles}


def test_a_batch_cut_by_a_killed_server_is_journaled_and_replayed_once(tmp_path, durable_redis):
    process, port = durable_redis()
    store = resilient(f"redis://127.0.0.1:{port}/0", tmp_path, settle_interval=30)  # no flusher: the test sends
    inner = unwrap(store)
    held_and_settled(store, [7, 5, 3])
    assert len(inner._queue) == 3
    process.send_signal(signal.SIGSTOP)
    flushing = threading.Thread(target=store.flush)  # the processor's force_flush
    flushing.start()
    wait_until(lambda: len(inner._queue) == 0)  # the batch is on its way to the stopped server
    time.sleep(0.1)
    process.kill()  # mid-batch: the server dies with the batch unread
    process.wait()
    flushing.join(5)
    assert not flushing.is_alive()
    assert store.journal.pending() == 3  # handed to the journal, not dropped
    durable_redis(port)  # back, with what it had written (the holds), from its append-only file
    wait_until(lambda: store.journal.pending() == 0)
    assert store.spent(*SLOT[:2], [SLOT[2]]) == Spend(15, 0)  # every settle counted once, every hold gone
    settles = one_settle_each(store, 3)
    assert all(e.attributes.get("journaled") for e in settles.values())
    assert store.replayed["settle"] == 3
    store.close()


def test_a_batch_carried_by_a_reserve_to_a_stopped_server_is_counted_once(tmp_path, durable_redis):
    """The reserve carries the queued settles to a stopped server and misses the call's deadline; the
    client gives up, the journal takes the settles (and a release for the reserve, which may land too);
    when the server resumes, each settle counts once, whether the batch ran or the replay did."""
    process, port = durable_redis()
    store = resilient(f"redis://127.0.0.1:{port}/0", tmp_path, settle_interval=30)
    held_and_settled(store, [7, 5, 3])
    process.send_signal(signal.SIGSTOP)
    with pytest.raises(Exception, match="no answer within the call's deadline"):
        store.reserve([HoldRequest(*SLOT, None, 100)], "r3", 60)  # the call's one round trip
    assert store.down
    wait_until(lambda: store.journal.pending() == 4)  # the 3 settles (client timeout) and the release of r3
    process.send_signal(signal.SIGCONT)
    wait_until(lambda: not store.down and store.journal.pending() == 0)
    assert store.spent(*SLOT[:2], [SLOT[2]]) == Spend(15, 0)
    one_settle_each(store, 3)
    assert store.replayed == {"settle": 3, "release": 1}
    store.close()


def test_a_batch_that_landed_before_the_connection_broke_is_not_counted_twice(tmp_path, redis_url, redis_prefix,
                                                                              monkeypatch):
    """The server ran the batch, the reply was lost: journaled, and the replay is a no-op (``once``)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    store = ResilientStore(RedisBudgetStore(redis_url, prefix=redis_prefix, settle_interval=30), name="redis",
                           deadline=DEADLINE, probe_interval=0.1, journal=str(tmp_path / "journal.db"))
    inner = unwrap(store)
    held_and_settled(store, [7, 5, 3])
    real = inner._pipeline

    def reply_lost(calls):
        real(calls)  # on the server
        raise RedisConnectionError("Connection reset by peer")

    monkeypatch.setattr(inner, "_pipeline", reply_lost)
    store.flush()
    assert store.journaled()["settle"] == 3  # (the replay may have begun: the store answers)
    monkeypatch.setattr(inner, "_pipeline", real)
    wait_until(lambda: store.journal.pending() == 0)
    assert store.replayed["settle"] == 3
    assert store.spent(*SLOT[:2], [SLOT[2]]) == Spend(15, 0)  # not 30
    settles = one_settle_each(store, 3)
    assert not any(e.attributes.get("journaled") for e in settles.values())  # the batch's, not the replay's
    store.close()


def test_a_stopped_server_at_the_flusher_journals_and_replays_once(tmp_path, durable_redis):
    process, port = durable_redis()
    store = resilient(f"redis://127.0.0.1:{port}/0", tmp_path, settle_interval=0.02)
    for i in range(2):
        assert store.reserve([HoldRequest(*SLOT, None, 100)], f"r{i}", 60).ok
    process.send_signal(signal.SIGSTOP)
    store.settle("r0", {SLOT: 4})  # queued; the flusher sends them to the stopped server
    store.settle("r1", {SLOT: 6})
    wait_until(lambda: store.journaled()["settle"] == 2)  # its client timed out: journaled
    process.send_signal(signal.SIGCONT)
    wait_until(lambda: store.journal.pending() == 0)
    assert store.spent(*SLOT[:2], [SLOT[2]]) == Spend(10, 0)
    one_settle_each(store, 2)
    store.close()


def test_a_sqlite_batch_that_meets_a_locked_file_is_journaled_and_replayed_once(tmp_path, pipeline):
    path = tmp_path / "budgets.db"
    p = pipeline(write_config(tmp_path, f"sqlite://{path}", extra="  deadline_mode: store\n"))
    store = p.store
    assert unwrap(store).settles_queued  # the default for SQLite too
    held_and_settled(store, [7, 5])
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another process holds the file past the deadline
    try:
        store.flush()  # the processor's force_flush: does not raise, the journal has them
        assert store.journaled()["settle"] == 2
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    wait_until(lambda: store.journal.pending() == 0)
    assert store.spent(*SLOT[:2], [SLOT[2]]) == Spend(12, 0)
    one_settle_each(store, 2)


# --- exit and fork ----------------------------------------------------------------------------------


def test_settles_queued_at_exit_land_through_the_config_store(tmp_path, redis_url, redis_prefix):
    config = write_config(tmp_path, redis_url, extra=f'  prefix: "{redis_prefix}"\n')
    code = textwrap.dedent(f"""\
        from otel_ai_cost.budgets import HoldRequest, load_budget_config
        from otel_ai_cost.budgets._resilient import unwrap
        store = load_budget_config({str(config)!r}).open_store()
        slot = {SLOT!r}
        assert store.reserve([HoldRequest(*slot, None, 100)], "r0", 60).ok
        store.settle("r0", {{slot: 42}})
        assert len(unwrap(store)._queue) == 1
        """)  # the script ends without flush or close: the interpreter's exit sends it
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env={**os.environ})
    other = RedisBudgetStore(redis_url, prefix=redis_prefix)
    assert other.spent(*SLOT[:2], [SLOT[2]]) == Spend(42, 0)
    other.close()


def test_a_forked_child_does_not_send_the_parents_queued_settles(tmp_path, redis_url, redis_prefix):
    store = ResilientStore(RedisBudgetStore(redis_url, prefix=redis_prefix, settle_interval=30), name="redis",
                           deadline=DEADLINE, journal=str(tmp_path / "journal.db"))
    assert store.reserve([HoldRequest(*SLOT, None, 100)], "r0", 60).ok
    store.settle("r0", {SLOT: 7})  # queued in the parent

    def child():
        assert store.reserve([HoldRequest(*SLOT, None, 100)], "r1", 60).ok  # carries nothing of the parent's
        store.settle("r1", {SLOT: 5})
        store.close()

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(20)
    assert process.exitcode == 0
    other = RedisBudgetStore(redis_url, prefix=redis_prefix, settle_interval=None)
    assert other.spent(*SLOT[:2], [SLOT[2]]) == Spend(5, 100)  # the child's settle; the parent's hold
    store.flush()
    assert other.spent(*SLOT[:2], [SLOT[2]]) == Spend(12, 0)
    assert len(other.ledger(kind="settle")) == 2
    other.close()
    store.close()
