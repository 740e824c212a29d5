"""Budgets hold under concurrency: threads and processes never overspend, dead processes do not leak holds."""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import NamedTuple, Union

import pytest

from otel_ai_cost.budgets import Budget, BudgetBook, MemoryBudgetStore, Spend, SQLiteBudgetStore, lifetime
from otel_ai_cost.budgets._redis import RedisBudgetStore

LIMIT = Decimal("2.00")
ESTIMATE = Decimal("0.01")  # worst case: every call costs all it held
PROCESSES, THREADS = 4, 32
BUDGET = Budget("shared", LIMIT, lifetime())
FORK = multiprocessing.get_context("fork")  # children open their own connections after the fork


class RedisTarget(NamedTuple):
    """A Redis store of one test: the shared server and the test's own key prefix."""

    url: str
    prefix: str


Target = Union[str, RedisTarget]  # a SQLite file, or a Redis store


@pytest.fixture
def redis_target(redis_url, redis_prefix) -> RedisTarget:
    return RedisTarget(redis_url, redis_prefix)


def open_store(target: Target, clock=time.time):
    if isinstance(target, RedisTarget):
        return RedisBudgetStore(target.url, clock=clock, prefix=target.prefix)
    return SQLiteBudgetStore(target, clock=clock)


def spend_until_blocked(book: BudgetBook) -> int:
    allowed = 0
    while True:
        reservation = book.reserve({"tenant.id": "acme"}, ESTIMATE)
        if not reservation.decision.allowed:
            return allowed
        book.settle(reservation, ESTIMATE)
        allowed += 1


def spend_in_threads(book: BudgetBook) -> int:
    with ThreadPoolExecutor(THREADS) as pool:
        return sum(pool.map(lambda _: spend_until_blocked(book), range(THREADS)))


def _process(target: Target, start, results) -> None:
    store = open_store(target)
    book = BudgetBook([BUDGET], store, hold_ttl=60)
    start.wait()
    results.put(spend_in_threads(book))
    store.close()


def run_processes(target: Target) -> int:
    start, results = FORK.Event(), FORK.Queue()
    processes = [FORK.Process(target=_process, args=(target, start, results)) for _ in range(PROCESSES)]
    for p in processes:
        p.start()
    start.set()
    counts = [results.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=10)
        assert p.exitcode == 0
    return sum(counts)


def assert_spent_exactly_the_limit(store, allowed: int) -> None:
    assert allowed == LIMIT / ESTIMATE
    assert store.spent("shared", "", ["lifetime"]) == Spend(int(LIMIT * 10**9), 0)
    settled = sum(e.amount for e in store.ledger(kind="settle"))
    assert settled == LIMIT
    assert len(store.ledger(kind="reserve")) == allowed
    assert len(store.ledger(kind="block")) == PROCESSES * THREADS


def test_threads_never_overspend_a_memory_budget():
    book = BudgetBook([BUDGET], MemoryBudgetStore())
    allowed = spend_in_threads(book)
    assert allowed == LIMIT / ESTIMATE
    assert book.store.spent("shared", "", ["lifetime"]) == Spend(int(LIMIT * 10**9), 0)


def test_processes_and_threads_never_overspend_a_sqlite_budget(tmp_path):
    path = str(tmp_path / "budgets.db")
    SQLiteBudgetStore(path).close()  # create the schema before the race
    allowed = run_processes(path)
    store = SQLiteBudgetStore(path)
    assert_spent_exactly_the_limit(store, allowed)
    store.close()


def test_processes_and_threads_never_overspend_a_redis_budget(redis_target):
    allowed = run_processes(redis_target)
    store = open_store(redis_target)
    assert_spent_exactly_the_limit(store, allowed)
    store.close()


def _hold_and_hang(target: Target, held) -> None:
    # release: the holds are dropped at their TTL (charge_estimate, the default, is tested in
    # test_budgets_expiry.py)
    book = BudgetBook([BUDGET], open_store(target), hold_ttl=1.0, on_expired_hold="release")
    for _ in range(3):
        assert book.reserve({}, "0.6").decision.allowed
    held.set()
    time.sleep(60)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_holds_of_a_killed_process_expire_after_their_ttl(backend, tmp_path, request):
    target = str(tmp_path / "budgets.db") if backend == "sqlite" else request.getfixturevalue("redis_target")
    if backend == "sqlite":
        SQLiteBudgetStore(target).close()
    held = FORK.Event()
    child = FORK.Process(target=_hold_and_hang, args=(target, held))
    child.start()
    try:
        assert held.wait(timeout=20), "the child did not place its holds"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=10)
    assert child.exitcode == -signal.SIGKILL

    now = open_store(target)
    assert now.spent("shared", "", ["lifetime"]) == Spend(0, 1_800_000_000)
    assert not BudgetBook([BUDGET], now).reserve({}, "0.3").decision.allowed

    offset = 1.5  # past the 1 s TTL, without waiting for it
    later = open_store(target, clock=lambda: time.time() + offset)
    assert later.spent("shared", "", ["lifetime"]) == Spend(0, 0)
    assert len(later.ledger(kind="expire")) == 3
    assert BudgetBook([BUDGET], later, clock=lambda: time.time() + offset).reserve({}, "2.00").decision.allowed
    for store in (now, later):
        store.close()


def test_a_sqlite_store_opened_before_a_fork_works_in_the_child(tmp_path):
    store = SQLiteBudgetStore(str(tmp_path / "budgets.db"))
    book = BudgetBook([BUDGET], store)
    book.settle(book.reserve({}, "0.5"), "0.5")

    def child() -> None:
        os._exit(0 if book.reserve({}, "0.5").decision.allowed else 1)

    process = FORK.Process(target=child)
    process.start()
    process.join(timeout=20)
    assert process.exitcode == 0
    assert store.spent("shared", "", ["lifetime"]) == Spend(500_000_000, 500_000_000)
    store.close()


# Expected-output reservations: each call holds what it is expected to cost (here 0.004) but costs
# more (0.01). Holds then under-count the calls in flight, and the budget can be overshot by at most
# (actual - estimate) for each call admitted while others were in flight: if the last call admitted
# saw spent + k holds + its estimate <= limit, the final spend is spent + (k + 1) actuals.
EXPECTED, ACTUAL = Decimal("0.004"), Decimal("0.01")


def spend_expected_until_blocked(book: BudgetBook) -> int:
    allowed = 0
    while True:
        reservation = book.reserve({"tenant.id": "acme"}, EXPECTED)
        if not reservation.decision.allowed:
            return allowed
        time.sleep(0)  # let the other threads run while this call is in flight
        book.settle(reservation, ACTUAL)
        allowed += 1


def _expected_process(target: Target, start, results) -> None:
    store = open_store(target)
    book = BudgetBook([BUDGET], store, hold_ttl=60)
    start.wait()
    with ThreadPoolExecutor(THREADS) as pool:
        results.put(sum(pool.map(lambda _: spend_expected_until_blocked(book), range(THREADS))))
    store.close()


def largest_in_flight(entries) -> int:
    """The most reservations in flight when one was admitted (itself included), from the ledger order."""
    in_flight, largest = set(), 0
    for e in entries:
        if e.kind == "reserve":
            in_flight.add(e.reservation_id)
            largest = max(largest, len(in_flight))
        elif e.kind in ("settle", "release", "expire"):
            in_flight.discard(e.reservation_id)
    return largest


ROUNDS = 3


def race_expected(target: Target):
    """One race: every thread of every process spends until refused. Returns (settled, in flight, seconds)."""
    start, results = FORK.Event(), FORK.Queue()
    processes = [FORK.Process(target=_expected_process, args=(target, start, results)) for _ in range(PROCESSES)]
    began = time.monotonic()
    for p in processes:
        p.start()
    start.set()
    allowed = sum(results.get(timeout=60) for _ in processes)
    for p in processes:
        p.join(timeout=10)
        assert p.exitcode == 0
    elapsed = time.monotonic() - began

    store = open_store(target)
    settled = sum(e.amount for e in store.ledger(kind="settle"))
    assert settled == allowed * ACTUAL
    assert store.spent("shared", "", ["lifetime"]) == Spend(int(settled * 10**9), 0)
    in_flight = largest_in_flight(store.ledger(kinds=("reserve", "settle", "release", "expire")))
    overshoot = max(settled - LIMIT, Decimal(0))
    calls = PROCESSES * THREADS
    # The bound asked for: the limit plus every call that can be in flight costing its actual cost.
    assert settled <= LIMIT + calls * ACTUAL
    # The exact bound: the part of the actual cost the holds did not count, for each call in flight.
    assert overshoot <= (ACTUAL - EXPECTED) * in_flight
    assert settled > LIMIT - ACTUAL  # the budget was used up before the calls were refused
    assert len(store.ledger(kind="block")) == calls
    store.close()
    return settled, overshoot, in_flight, elapsed


def report_overshoot(backend: str, rounds, record_property) -> None:
    calls = PROCESSES * THREADS
    print(f"\n[{backend}] expected-output reservations: {PROCESSES} processes x {THREADS} threads, each call holds"
          f" ${EXPECTED} and costs ${ACTUAL}, limit ${LIMIT}")
    for i, (settled, overshoot, in_flight, elapsed) in enumerate(rounds, 1):
        print(f"  round {i}: settled ${settled}, overshoot ${overshoot} ({overshoot / LIMIT:.1%} of the limit),"
              f" at most {in_flight} calls in flight (bound ${(ACTUAL - EXPECTED) * in_flight}), {elapsed:.2f} s")
    largest = max(r[1] for r in rounds)
    print(f"  largest overshoot: ${largest} ({largest / LIMIT:.1%} of the limit); worst case with {calls} calls in"
          f" flight: ${(ACTUAL - EXPECTED) * calls}; the bound asked for: ${calls * ACTUAL}")
    record_property(f"{backend}_largest_overshoot_usd", str(largest))


def test_overshoot_with_expected_output_reservations_on_sqlite(tmp_path, record_property):
    rounds = []
    for i in range(ROUNDS):
        path = str(tmp_path / f"budgets-{i}.db")
        SQLiteBudgetStore(path).close()
        rounds.append(race_expected(path))
    report_overshoot("sqlite", rounds, record_property)


def test_overshoot_with_expected_output_reservations_on_redis(redis_target, record_property):
    rounds = [race_expected(redis_target._replace(prefix=f"{redis_target.prefix}:{i}")) for i in range(ROUNDS)]
    report_overshoot("redis", rounds, record_property)
