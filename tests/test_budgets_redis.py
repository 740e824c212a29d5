"""The Redis store's running sums of holds and its expiry queue: what a reserve costs does not grow
with the holds in flight, the sums always equal the holds, expiry is bounded per script and exact per
call, and holds written by the previous version (without sums) are migrated on first touch."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from conftest import Clock, kill_once_ready
from otel_ai_cost.budgets import HoldRequest, Spend, _redis
from otel_ai_cost.budgets._redis import RedisBudgetStore

USD = 10**9


@pytest.fixture
def open_store(open_redis_store):
    def make(clock=None, **kwargs):
        # Each settle sent at once: these stores stand for processes that see each other's settles as they
        # return (queued settles, the default: tests/test_budgets_queued_settles.py).
        kwargs.setdefault("settle_interval", None)
        return open_redis_store(clock, **kwargs)

    return make


def hold(budget="b", key="k", window="w", limit=None, amount=USD, on_expired="release"):
    # release: these tests check what an expiry removes; charge_estimate is tested in test_budgets_expiry.py
    return HoldRequest(budget, key, window, limit, amount, on_expired=on_expired)


def assert_consistent(store, budget="b", key="k"):
    """The sums per window and the expiry queue hold exactly what the holds hash holds."""
    c = store._client
    holds = c.hgetall(store._key("holds", budget, key))
    sums: Counter = Counter()
    queue = {}
    for rid, value in holds.items():
        amount, expires, window = value.split("|")[:3]
        sums[window] += int(amount)
        queue[rid] = float(expires)
    reserved = {w: int(v) for w, v in c.hgetall(store._key("reserved", budget, key)).items()}
    assert reserved == {w: s for w, s in sums.items() if s or w in reserved}
    assert dict(c.zrange(store._key("expiries", budget, key), 0, -1, withscores=True)) == queue


def commands_of(store, action):
    """The Redis commands (by name) that ``action`` makes the server run, scripts' calls included."""
    c = store._client
    c.config_resetstat()
    action()
    stats = c.info("commandstats")
    return {name[len("cmdstat_"):]: s["calls"] for name, s in stats.items()}


def test_a_reserve_does_not_read_the_holds_in_flight(open_store):
    store = open_store()
    for i in range(2000):
        store.reserve([hold(amount=i)], f"in{i}", ttl=60)
    calls = commands_of(store, lambda: store.reserve([hold(limit=10**12, amount=1)], "new", ttl=60))
    assert "hgetall" not in calls and "hvals" not in calls and "hscan" not in calls
    assert sum(n for name, n in calls.items() if name not in ("evalsha", "info", "config|resetstat")) <= 15
    settle = commands_of(store, lambda: store.settle("new", {("b", "k", "w"): 1}))
    assert "hgetall" not in settle and sum(settle.values()) <= 15
    assert store.spent("b", "k", "w") == Spend(1, sum(range(2000)))
    assert_consistent(store)


def test_the_sums_always_equal_the_holds(open_store):
    """Random reserve / settle / release / expiry on two windows and two keys, checking the sums and the
    expiry queue against the holds after every step."""
    import random

    rng = random.Random(7)
    clock = Clock()
    store = open_store(clock)
    live = []
    for step in range(400):
        op = rng.choice(["reserve", "reserve", "reserve", "settle", "release", "tick"])
        if op == "reserve":
            requests = [hold(key=k, window=rng.choice("vw"), amount=rng.choice([0, 1, 7, USD]))
                        for k in rng.sample(["k", "j"], rng.choice([1, 2]))]
            store.reserve(requests, f"r{step}", ttl=rng.choice([1, 5, 30]))
            live.append((f"r{step}", requests))
        elif op == "settle" and live:
            rid, requests = live.pop(rng.randrange(len(live)))
            store.settle(rid, {r.slot: rng.randint(0, 9) for r in requests})
        elif op == "release" and live:
            store.release(live.pop(rng.randrange(len(live)))[0])
        elif op == "tick":
            clock.now += rng.choice([0.5, 2, 10])
            store.spent("b", rng.choice("kj"), ["w"])  # expires the due holds of that key only
        for key in "kj":
            assert_consistent(store, key=key)
    clock.now += 60
    for key in "kj":
        assert store.spent("b", key, ["v", "w"]) == Spend(store.spent("b", key, ["v", "w"]).spent, 0)
        assert_consistent(store, key=key)
        for kind in ("holds", "reserved", "expiries"):
            assert not store._client.exists(store._key(kind, "b", key))  # nothing left behind


def test_one_script_expires_a_bounded_batch_and_the_call_stays_exact(open_store, monkeypatch):
    clock = Clock()
    store = open_store(clock, expire_batch=50)
    rounds = []
    real = store._reserve
    monkeypatch.setattr(store, "_reserve", lambda keys, args: rounds.append(1) or real(keys=keys, args=args))
    for i in range(230):
        store.reserve([hold(amount=1)], f"dead{i}", ttl=10)  # a host with 230 calls in flight dies
    store.reserve([hold(amount=1000)], "alive", ttl=600)
    clock.now += 10
    rounds.clear()
    result = store.reserve([hold(limit=1001 + 5, amount=5)], "after", ttl=60)
    assert result.ok and result.usage == (Spend(0, 1000),)  # the dead holds no longer count
    assert len(rounds) == 5  # 50 + 50 + 50 + 50 + 30 expiries, the last script also reserves
    assert len(store.ledger(kind="expire")) == 230
    assert [e.kind for e in store.ledger(last=2)] == ["expire", "reserve"]
    assert store.spent("b", "k", "w") == Spend(0, 1005)
    assert_consistent(store)


def test_spent_expires_a_backlog_in_bounded_batches(open_store):
    clock = Clock()
    store = open_store(clock, expire_batch=7)
    for i in range(100):
        store.reserve([hold(amount=1)], f"dead{i}", ttl=1)
    clock.now += 1
    assert store.spent("b", "k", "w") == Spend(0, 0)
    assert len(store.ledger(kind="expire")) == 100
    assert_consistent(store)


def test_after_too_many_rounds_a_reserve_decides_counting_the_rest_as_held(open_store, monkeypatch):
    monkeypatch.setattr(_redis, "_MAX_ROUNDS", 2)
    clock = Clock()
    store = open_store(clock, expire_batch=10)
    for i in range(50):
        store.reserve([hold(amount=1)], f"dead{i}", ttl=1)
    clock.now += 1
    result = store.reserve([hold(limit=100, amount=1)], "r", ttl=60)
    assert result.ok and result.usage == (Spend(0, 30),)  # 20 expired, 30 still counted: refuses only more
    assert len(store.ledger(kind="expire")) == 20
    assert store.spent("b", "k", "w") == Spend(0, 11)  # the next calls expire the rest, as many rounds each
    assert store.spent("b", "k", "w") == Spend(0, 1)
    assert len(store.ledger(kind="expire")) == 50
    assert_consistent(store)


def write_as_the_previous_version(store, rid, budget, key, window, amount, expires_at):
    """A hold as the previous version stored it: in the holds hash and the reservation's index only."""
    holds = store._key("holds", budget, key)
    store._client.hset(holds, rid, f"{amount}|{float(expires_at)!r}|{window}")
    store._client.hset(store._index_key(rid), holds, f'["{budget}","{key}","{window}"]')


def test_holds_written_by_the_previous_version_are_migrated_on_first_touch(open_store):
    clock = Clock()
    store = open_store(clock)
    now = clock.now
    for i, (window, ttl) in enumerate([("w", 60), ("w", 60), ("v", 60), ("w", 5), ("w", 600)]):
        write_as_the_previous_version(store, f"old{i}", "b", "k", window, (i + 1) * USD, now + ttl)
    write_as_the_previous_version(store, "other", "b", "j", "w", USD, now + 60)
    assert store.spent("b", "k", ["w"]) == Spend(0, 12 * USD)  # 1 + 2 + 4 + 5
    assert_consistent(store)
    result = store.reserve([hold(limit=20 * USD, amount=8 * USD)], "new", ttl=60)
    assert result.ok and result.usage == (Spend(0, 12 * USD),)
    store.settle("old0", {("b", "k", "w"): USD})  # held: not late
    store.release("old1")
    store.release("other")  # a partition no reserve or spent touched yet
    clock.now += 10  # old3 expires
    assert store.spent("b", "k", ["v", "w"]) == Spend(USD, 3 * USD + 5 * USD + 8 * USD)
    assert store.spent("b", "j", ["w"]) == Spend(0, 0)
    assert [e.attributes for e in store.ledger(kind="settle")] == [{}]
    assert sorted(e.reservation_id for e in store.ledger(kind="release")) == ["old1", "other"]
    assert [e.reservation_id for e in store.ledger(kind="expire")] == ["old3"]
    for key in "kj":
        assert_consistent(store, key=key)


def test_an_old_hold_settled_before_any_migration_is_taken_once(open_store):
    clock = Clock()
    store = open_store(clock)
    write_as_the_previous_version(store, "old", "b", "k", "w", 2 * USD, clock.now + 60)
    write_as_the_previous_version(store, "kept", "b", "k", "w", 3 * USD, clock.now + 60)
    store.settle("old", {("b", "k", "w"): USD})
    assert store.spent("b", "k", "w") == Spend(USD, 3 * USD)
    store.release("kept")
    assert store.spent("b", "k", "w") == Spend(USD, 0)
    assert [e.attributes for e in store.ledger(kind="settle")] == [{}]
    assert_consistent(store)


def test_settles_racing_expiries_take_each_hold_once(open_store):
    """Threads settle or release reservations while others read (and so expire) with a clock past
    many of their TTLs: each reservation ends once, by settle (not late), release or expire, and no
    hold is left in the sums."""
    n, threads = 600, 6
    clock = Clock()
    placing = open_store(clock)
    for i in range(n):
        assert placing.reserve([hold(amount=i + 1)], f"r{i}", ttl=1 + i % 3).ok
    later = Clock(clock.now + 2.5)  # past the TTL of two thirds of them
    stores = [open_store(later) for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def work(t):
        store = stores[t]
        barrier.wait()
        for i in range(t, n, threads):
            if t % 3 == 0:
                store.spent("b", "k", "w")
                store.reserve([hold(amount=0)], f"probe{i}", ttl=0.1)  # expires and adds a short hold
            elif i % 2:
                store.settle(f"r{i}", {("b", "k", "w"): 1})
            else:
                store.release(f"r{i}")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    later.now += 10
    assert placing.spent("b", "k", "w").reserved == 0
    ends = Counter(
        e.reservation_id
        for e in placing.ledger(kinds=("settle", "release", "expire"))
        if e.reservation_id.startswith("r") and not e.attributes.get("late")
    )
    assert ends == {f"r{i}": 1 for i in range(n)}  # each hold taken once: by a settle, a release or an expiry
    kinds = Counter(e.kind for e in placing.ledger(kinds=("settle", "release", "expire")))
    assert kinds["expire"] > 0 and kinds["settle"] > 0 and kinds["release"] > 0
    assert_consistent(placing)


def _hold_many_and_hang(url, prefix, held) -> None:
    store = RedisBudgetStore(url, prefix=prefix)
    for i in range(300):
        assert store.reserve([hold(amount=i + 1)], f"dead{i}", ttl=1.0).ok
    held.set()
    time.sleep(60)


def test_the_holds_of_a_killed_process_expire_in_batches_and_leave_nothing(redis_url, redis_prefix):
    prefix = redis_prefix
    kill_once_ready(_hold_many_and_hang, redis_url, prefix)
    now = RedisBudgetStore(redis_url, prefix=prefix)
    assert now.spent("b", "k", "w") == Spend(0, sum(range(1, 301)))
    assert_consistent(now)
    later = RedisBudgetStore(redis_url, prefix=prefix, clock=lambda: time.time() + 1.5, expire_batch=64)
    result = later.reserve([hold(limit=USD, amount=USD)], "after", ttl=60)
    assert result.ok and result.usage == (Spend(0, 0),)
    assert len(later.ledger(kind="expire")) == 300
    later.release("after")
    for kind in ("holds", "reserved", "expiries"):
        assert not later._client.exists(later._key(kind, "b", "k"))
    for store in (now, later):
        store.close()
