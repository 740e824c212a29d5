"""The three budget stores behave the same: all-or-nothing holds, settle, release, expiry, ledger."""
from __future__ import annotations

import sqlite3

import pytest

from _redis_server import redis_server
from conftest import Clock, store_factory
from otel_ai_cost.budgets import HoldRequest, MemoryBudgetStore, Spend, SQLiteBudgetStore
from otel_ai_cost.budgets._redis import RedisBudgetStore

USD = 10**9


@pytest.fixture(params=["memory", "sqlite", "sqlite-queued", "redis", "redis-queued"])
def make_store(request, tmp_path):
    """conftest's make_store, and the SQLite and Redis stores with queued settles (settle_interval)."""
    with store_factory(request, tmp_path, request.param) as make:
        yield make


def hold(budget="b", key="k", window="w", limit=10 * USD, amount=USD, counted=(), on_expired="release"):
    # release: these tests check what an expiry removes; charge_estimate (the book's default) is
    # tested in test_budgets_expiry.py
    return HoldRequest(budget, key, window, limit, amount, counted, on_expired=on_expired)


def test_reserve_until_the_limit(make_store):
    store = make_store(Clock())
    for i in range(3):
        result = store.reserve([hold(amount=3 * USD)], f"r{i}", ttl=60)
        assert result.ok and result.usage == (Spend(0, 3 * i * USD),)
    refused = store.reserve([hold(amount=2 * USD)], "r3", ttl=60)
    assert not refused.ok and refused.refused == (0,)
    assert store.reserve([hold(amount=1 * USD)], "r4", ttl=60).ok  # exactly at the limit is allowed
    assert store.spent("b", "k", ["w"]) == Spend(0, 10 * USD)


def test_all_or_nothing_across_budgets(make_store):
    store = make_store(Clock())
    assert store.reserve([hold(budget="team", amount=8 * USD)], "first", ttl=60).ok
    result = store.reserve(
        [hold(budget="tenant", amount=5 * USD), hold(budget="team", amount=5 * USD)], "second", ttl=60
    )
    assert not result.ok and result.refused == (1,)
    assert result.usage == (Spend(0, 0), Spend(0, 8 * USD))
    assert store.spent("tenant", "k", ["w"]) == Spend(0, 0)  # nothing held on the budget that had room
    assert [(e.kind, e.budget_id) for e in store.ledger(reservation_id="second")] == [("block", "team")]


def test_shadow_requests_without_limit_are_never_refused(make_store):
    store = make_store(Clock())
    assert store.reserve([hold(limit=None, amount=50 * USD)], "r", ttl=60).ok
    assert store.spent("b", "k", ["w"]) == Spend(0, 50 * USD)


def test_settle_replaces_the_hold_by_the_actual_spend(make_store):
    store = make_store(Clock())
    store.reserve([hold(budget="a", amount=4 * USD), hold(budget="b", amount=4 * USD)], "r", ttl=60)
    store.settle("r", {("a", "k", "w"): 1 * USD, ("b", "k", "w"): 1 * USD}, {"gen_ai.response.model": "gpt-4o"})
    assert store.spent("a", "k", ["w"]) == Spend(1 * USD, 0)
    assert store.spent("b", "k", ["w"]) == Spend(1 * USD, 0)
    settle = store.ledger(budget_id="a", kind="settle")
    assert [(e.amount_nanos, e.attributes) for e in settle] == [(USD, {"gen_ai.response.model": "gpt-4o"})]
    assert str(settle[0].amount) == "1"


def test_release_drops_the_holds_without_spend(make_store):
    store = make_store(Clock())
    store.reserve([hold(budget="a", amount=4 * USD), hold(budget="b", amount=2 * USD)], "r", ttl=60)
    store.release("r")
    store.release("r")  # twice is harmless
    assert store.spent("a", "k", ["w"]) == Spend(0, 0)
    released = sorted((e.budget_id, e.amount_nanos) for e in store.ledger(kind="release"))
    assert released == [("a", 4 * USD), ("b", 2 * USD)]


def test_holds_expire_after_their_ttl(make_store):
    clock = Clock()
    store = make_store(clock)
    store.reserve([hold(amount=9 * USD)], "dead", ttl=30)
    clock.now += 29.9
    assert not store.reserve([hold(amount=2 * USD)], "blocked", ttl=30).ok
    clock.now += 0.1
    assert store.spent("b", "k", ["w"]) == Spend(0, 0)
    assert [(e.kind, e.reservation_id, e.amount_nanos) for e in store.ledger(kind="expire")] == [
        ("expire", "dead", 9 * USD)
    ]
    assert store.reserve([hold(amount=10 * USD)], "whole", ttl=30).ok


def test_a_late_settle_still_records_the_spend(make_store):
    clock = Clock()
    store = make_store(clock)
    store.reserve([hold(amount=2 * USD)], "slow", ttl=5)
    clock.now += 10
    store.spent("b", "k", ["w"])  # expires the hold
    store.settle("slow", {("b", "k", "w"): 3 * USD})
    assert store.spent("b", "k", ["w"]) == Spend(3 * USD, 0)
    (entry,) = store.ledger(kind="settle")
    assert entry.attributes == {"late": True}


def test_windows_and_keys_are_separate(make_store):
    store = make_store(Clock())
    store.reserve([hold(window="2026-11", amount=10 * USD)], "nov", ttl=60)
    store.settle("nov", {("b", "k", "2026-11"): 10 * USD})
    assert store.reserve([hold(window="2026-12", amount=10 * USD)], "dec", ttl=60).ok
    assert store.reserve([hold(key="other", window="2026-11", amount=10 * USD)], "other", ttl=60).ok
    assert not store.reserve([hold(window="2026-11", amount=1)], "again", ttl=60).ok


def test_counted_keys_sum_a_rolling_window(make_store):
    store = make_store(Clock())
    store.reserve([hold(window="s1", amount=4 * USD, counted=("s1",))], "a", ttl=60)
    store.settle("a", {("b", "k", "s1"): 4 * USD})
    store.reserve([hold(window="s2", amount=4 * USD, counted=("s1", "s2"))], "b", ttl=60)
    assert not store.reserve([hold(window="s2", amount=3 * USD, counted=("s1", "s2"))], "c", ttl=60).ok
    assert store.reserve([hold(window="s3", amount=3 * USD, counted=("s2", "s3"))], "d", ttl=60).ok
    assert store.spent("b", "k", ["s1", "s2", "s3"]) == Spend(4 * USD, 7 * USD)


def test_ledger_records_every_change_in_order(make_store):
    clock = Clock()
    store = make_store(clock)
    store.reserve([hold(amount=6 * USD)], "r1", ttl=60, attributes={"tenant.id": "acme"})
    clock.now += 1
    store.reserve([hold(amount=6 * USD)], "r2", ttl=60)
    store.settle("r1", {("b", "k", "w"): 5 * USD})
    store.reserve([hold(amount=1 * USD)], "r3", ttl=60)
    store.release("r3")
    kinds = [(e.kind, e.reservation_id) for e in store.ledger()]
    assert kinds == [("reserve", "r1"), ("block", "r2"), ("settle", "r1"), ("reserve", "r3"), ("release", "r3")]
    first = store.ledger()[0]
    assert (first.time, first.budget_id, first.key, first.window_key, first.attributes) == (
        1_800_000_000.0, "b", "k", "w", {"tenant.id": "acme"}
    )
    assert [e.kind for e in store.ledger(since=1_800_000_001.0)] == ["block", "settle", "reserve", "release"]


def test_sqlite_store_survives_a_restart(tmp_path):
    path = str(tmp_path / "budgets.db")
    store = SQLiteBudgetStore(path, clock=Clock())
    store.reserve([hold(amount=4 * USD)], "r", ttl=60)
    store.settle("r", {("b", "k", "w"): 4 * USD})
    store.reserve([hold(amount=2 * USD)], "in-flight", ttl=60)
    store.close()
    reopened = SQLiteBudgetStore(path, clock=Clock())
    assert reopened.spent("b", "k", ["w"]) == Spend(4 * USD, 2 * USD)
    assert len(reopened.ledger()) == 3
    reopened.close()


def test_sqlite_store_recovers_from_a_failed_commit(tmp_path):
    # A COMMIT that fails (e.g. the disk fills at commit) must not leave the connection inside the
    # transaction: the reserve raises, nothing of it is kept, and the next reserve works.
    path = str(tmp_path / "budgets.db")
    store = SQLiteBudgetStore(path, clock=Clock())
    real = store._db

    class FailingCommit:
        failed = False

        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *args):
            if sql == "COMMIT" and not FailingCommit.failed:
                FailingCommit.failed = True
                raise sqlite3.OperationalError("database or disk is full")
            return real.execute(sql, *args)

    store._db = FailingCommit()
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        store.reserve([hold(amount=3 * USD)], "lost", ttl=60)
    assert not real.in_transaction
    assert store.reserve([hold(amount=4 * USD)], "kept", ttl=60).ok
    assert store.spent("b", "k", ["w"]) == Spend(0, 4 * USD)
    store.close()


def test_redis_keys_do_not_collide_when_ids_contain_colons(redis_url, redis_prefix):
    store = RedisBudgetStore(redis_url, clock=Clock(), prefix=redis_prefix)
    store.reserve([hold(budget="a:b", key="c", amount=10 * USD)], "r1", ttl=60)
    assert store.reserve([hold(budget="a", key="b:c", amount=10 * USD)], "r2", ttl=60).ok
    store.close()


def test_rolling_spend_that_left_the_window_is_pruned(make_store):
    store = make_store(Clock())
    for i in range(1, 6):
        store.reserve([hold(window=f"r60s/6:{i}", limit=None)], f"r{i}", ttl=60)
        store.settle(f"r{i}", {("b", "k", f"r60s/6:{i}"): USD})
    store.reserve([hold(window="2026-11", limit=None)], "calendar", ttl=60)
    store.settle("calendar", {("b", "k", "2026-11"): USD})
    everything = ["2026-11"] + [f"r60s/6:{i}" for i in range(1, 6)]
    assert store.spent("b", "k", everything).spent == 6 * USD
    request = hold(window="r60s/6:5", limit=None, amount=0, counted=("r60s/6:4", "r60s/6:5"))
    store.reserve([HoldRequest(**{**request.__dict__, "prune": ("r60s/6:", 4)})], "prune", ttl=60)
    assert store.spent("b", "k", everything).spent == 3 * USD  # 4, 5 and the calendar month remain


def test_redis_store_connects_with_a_password_from_the_url(tmp_path):
    import redis

    with redis_server(tmp_path, password="s3cret") as url:
        assert url.startswith("redis://:s3cret@127.0.0.1:")
        store = RedisBudgetStore(url, clock=Clock())
        assert store.reserve([hold()], "r", ttl=60).ok
        store.close()
        anonymous = RedisBudgetStore(url.replace(":s3cret@", ""), clock=Clock())
        with pytest.raises(redis.AuthenticationError):
            anonymous.reserve([hold()], "r2", ttl=60)
        anonymous.close()


def test_redis_store_connects_over_tls(tmp_path):
    import redis

    with redis_server(tmp_path, password="s3cret", tls=True) as url:
        assert url.startswith("rediss://:s3cret@127.0.0.1:")
        store = RedisBudgetStore(url, clock=Clock())
        assert store.reserve([hold()], "r", ttl=60).ok
        assert store.spent("b", "k", "w") == Spend(0, USD)
        store.close()
        plain = RedisBudgetStore(url.replace("rediss://", "redis://").split("?")[0], clock=Clock())
        with pytest.raises(redis.ConnectionError):  # the port speaks only TLS
            plain.spent("b", "k", "w")
        plain.close()


def test_recorded_decisions_join_the_ledger(make_store):
    from otel_ai_cost.budgets import LedgerEntry

    store = make_store(Clock())
    store.reserve([hold()], "r", ttl=60)
    warning = LedgerEntry(1_800_000_000.5, "warn", "b", "k", "w", USD, "r", {"shadow": False, "delay": 1.5})
    store.record([warning])
    assert store.ledger(kind="warn") == [warning]
    assert [e.kind for e in store.ledger(reservation_id="r")] == ["reserve", "warn"]


def test_random_operations_match_a_simple_model(make_store):
    """Reserve, settle, release, expire (charged or dropped, by each hold's on_expired), adjust and reset
    in a random order: the store's spend and holds always equal those of a plain recomputation, and a
    reservation is refused exactly when it would pass a limit or a budget is frozen. A settle or
    release after a charge at expiry takes that charge back (never below zero)."""
    import random

    rng = random.Random(20261123)
    clock = Clock()
    store = make_store(clock)
    slots = [(b, k, "w") for b in ("a", "b") for k in ("x", "y")]
    spend = {s: 0 for s in slots}
    holds = {}  # reservation id -> [(slot, amount, expires_at, on_expired)]
    gone = {}  # reservation id -> the slots of its holds that expired
    charged = {}  # reservation id -> slot -> amount charged at expiry

    def reserved(slot):
        return sum(a for hs in holds.values() for s, a, e, _ in hs if s == slot and e > clock.now)

    def expire():
        for rid in list(holds):
            if holds[rid][0][2] <= clock.now:  # one TTL per reservation
                for s, a, _, policy in holds.pop(rid):
                    gone.setdefault(rid, []).append(s)
                    if policy == "charge_estimate":
                        spend[s] += a
                        charged.setdefault(rid, {})[s] = a

    def uncharge(rid, s):
        amount = charged.get(rid, {}).pop(s, None)
        if amount is not None:
            spend[s] -= min(spend[s], amount)

    for step in range(400):
        op = rng.choice(["reserve", "reserve", "reserve", "settle", "release", "tick", "adjust", "reset"])
        if op == "reserve":
            policy = rng.choice(["charge_estimate", "release"])
            requests = [
                HoldRequest(s[0], s[1], s[2], rng.choice([None, 5 * USD, 8 * USD]), rng.randint(1, 3) * USD // 2,
                            frozen=rng.random() < 0.05, on_expired=policy)
                for s in rng.sample(slots, rng.choice([1, 2]))
            ]
            refused = tuple(
                i for i, r in enumerate(requests)
                if r.frozen or (r.limit is not None and spend[r.slot] + reserved(r.slot) + r.amount > r.limit)
            )
            ttl = rng.choice([5, 30])
            result = store.reserve(requests, f"r{step}", ttl=ttl)
            assert (result.ok, result.refused) == (not refused, refused), step
            assert result.usage == tuple(Spend(spend[r.slot], reserved(r.slot)) for r in requests)
            if result.ok:
                holds[f"r{step}"] = [(r.slot, r.amount, clock.now + ttl, policy) for r in requests]
        elif op == "settle" and (holds or gone):
            rid = rng.choice(sorted(set(holds) | set(gone)))
            ended = [h[0] for h in holds.pop(rid)] if rid in holds else gone.pop(rid)
            actual = {s: rng.randint(0, 4) * USD // 4 for s in ended}
            store.settle(rid, actual)
            for s, amount in actual.items():
                uncharge(rid, s)
                spend[s] += amount
        elif op == "release" and (holds or gone):
            rid = rng.choice(sorted(set(holds) | set(gone)))
            ended = [h[0] for h in holds.pop(rid)] if rid in holds else gone.pop(rid)
            store.release(rid)
            for s in ended:
                uncharge(rid, s)
        elif op == "tick":
            clock.now += rng.choice([1, 4, 10])
            expire()
        elif op == "adjust":
            s = rng.choice(slots)
            amount = rng.randint(-6, 6) * USD // 2
            applied = store.adjust(s[0], s[1], [s[2]], amount)
            assert applied == max(amount, -spend[s])
            spend[s] += applied
        elif op == "reset":
            s = rng.choice(slots)
            assert store.reset(s[0], s[1], [s[2]]) == spend[s]
            spend[s] = 0
        for s in slots:
            assert store.spent(s[0], s[1], [s[2]]) == Spend(spend[s], reserved(s)), (step, op, s)
    kinds = {e.kind for e in store.ledger()}
    assert {"reserve", "settle", "release", "expire", "expire_charge", "block", "adjust", "reset"} <= kinds
    reconciled = [e for e in store.ledger(kinds=("settle", "release")) if "expired_charge_nanos" in e.attributes]
    assert {e.kind for e in reconciled} == {"settle", "release"}


def test_the_memory_store_keeps_a_bounded_ledger():
    from otel_ai_cost.budgets._store import HoldRequest

    store = MemoryBudgetStore(ledger_size=10)
    for i in range(20):
        store.reserve([HoldRequest("b", "", "lifetime", None, 1)], f"r{i}", 60)
        store.settle(f"r{i}", {("b", "", "lifetime"): 1})
    entries = store.ledger()
    assert len(entries) == 10 and entries[-1].reservation_id == "r19"
    assert store.spent("b", "", ["lifetime"]).spent == 20  # the spend itself is never dropped


def test_a_redis_store_that_does_not_answer_times_out_and_the_book_fails_closed():
    import socket
    import time as _time

    from otel_ai_cost.budgets import Budget, BudgetBook, lifetime
    from otel_ai_cost.budgets._redis import RedisBudgetStore

    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        port = silent.getsockname()[1]
        store = RedisBudgetStore(f"redis://127.0.0.1:{port}/0?socket_timeout=0.2", prefix="test:silent")
        book = BudgetBook([Budget("b", "1", lifetime())], store, on_store_error="closed")
        started = _time.monotonic()
        decision = book.reserve({}, "0.01").decision
        assert _time.monotonic() - started < 5
        assert (decision.action, decision.reason) == ("block", "store_error")
    finally:
        silent.close()


# ---------------------------------------------------------------------------------------------------
# Many holds in flight: the stores keep running sums of the holds and expire only those that are due;
# these check that the sums stay exact and every hold leaves them exactly once.


def test_many_holds_in_flight_then_reserve(make_store):
    clock = Clock()
    store = make_store(clock)
    n = 2000
    for i in range(n):
        window = "w" if i % 2 else "v"
        assert store.reserve([hold(window=window, limit=None, amount=i + 1)], f"in{i}", ttl=60).ok
    held_w = sum(i + 1 for i in range(n) if i % 2)
    held_v = sum(i + 1 for i in range(n) if not i % 2)
    assert store.spent("b", "k", ["w"]) == Spend(0, held_w)
    assert store.spent("b", "k", ["v", "w"]) == Spend(0, held_v + held_w)
    # Exactly at the limit is allowed, one nano-dollar more is not: the sum is exact.
    limit = held_w + 5
    refused = store.reserve([hold(limit=limit, amount=6)], "over", ttl=60)
    assert (refused.ok, refused.usage) == (False, (Spend(0, held_w),))
    assert store.reserve([hold(limit=limit, amount=5)], "fits", ttl=60).ok
    # Settle, release and expire some: the sums follow.
    for i in range(1, 200, 2):
        store.settle(f"in{i}", {("b", "k", "w"): 1})
    for i in range(201, 400, 2):
        store.release(f"in{i}")
    gone = sum(i + 1 for i in range(1, 400, 2))
    assert store.spent("b", "k", ["w"]) == Spend(100, held_w - gone + 5)
    clock.now += 60
    assert store.spent("b", "k", ["v", "w"]) == Spend(100, 0)
    assert len(store.ledger(kind="expire")) == n + 1 - 200


def test_only_the_holds_whose_time_has_come_expire(make_store):
    clock = Clock()
    store = make_store(clock)
    ttls = {f"r{i}": (10, 20, 30)[i % 3] for i in range(30)}
    for rid, ttl in ttls.items():
        store.reserve([hold(limit=None, amount=ttl)], rid, ttl=ttl)
    start = clock.now
    for elapsed in (9.999, 10, 15, 20, 29, 30):
        clock.now = start + elapsed
        live = sum(ttl for ttl in ttls.values() if ttl > elapsed)
        assert store.spent("b", "k", ["w"]) == Spend(0, live), elapsed
        expired = {e.reservation_id for e in store.ledger(kind="expire")}
        assert expired == {rid for rid, ttl in ttls.items() if ttl <= elapsed}, elapsed
    assert len(store.ledger(kind="expire")) == 30  # each once
    assert store.reserve([hold(limit=10 * USD, amount=10 * USD)], "whole", ttl=30).ok


def test_settle_release_and_expiry_each_remove_a_hold_once(make_store):
    clock = Clock()
    store = make_store(clock)
    store.reserve([hold(amount=USD)], "stays", ttl=600)  # must stay counted whatever happens to the others
    store.reserve([hold(amount=2 * USD)], "settled", ttl=60)
    store.reserve([hold(amount=3 * USD)], "released", ttl=60)
    store.reserve([hold(amount=4 * USD)], "expired", ttl=5)
    store.settle("settled", {("b", "k", "w"): 2 * USD})
    store.release("released")
    clock.now += 10
    assert store.spent("b", "k", ["w"]) == Spend(2 * USD, USD)
    # Each again, and the other two ways: none takes anything more off the holds.
    store.settle("settled", {("b", "k", "w"): 0})
    store.release("released")
    store.release("settled")
    store.release("expired")
    store.settle("released", {("b", "k", "w"): 0})
    store.settle("expired", {("b", "k", "w"): USD})
    clock.now += 10
    assert store.spent("b", "k", ["w"]) == Spend(3 * USD, USD)
    assert [e.reservation_id for e in store.ledger(kind="expire")] == ["expired"]
    assert [e.reservation_id for e in store.ledger(kind="release")] == ["released"]
    settles = [(e.reservation_id, e.attributes.get("late", False)) for e in store.ledger(kind="settle")]
    assert settles == [("settled", False), ("settled", True), ("released", True), ("expired", True)]
    result = store.reserve([hold(amount=9 * USD)], "next", ttl=60)
    assert result.usage == (Spend(3 * USD, USD),) and not result.ok
    assert store.reserve([hold(amount=6 * USD)], "next", ttl=60).ok


def test_a_settle_after_the_ttl_before_any_expiry_takes_the_hold_once(make_store):
    """The hold is past its TTL but nothing has expired it yet: the settle takes it (not late), and no
    later read expires it again."""
    clock = Clock()
    store = make_store(clock)
    store.reserve([hold(amount=USD)], "stays", ttl=600)
    store.reserve([hold(amount=2 * USD)], "racing", ttl=5)
    clock.now += 10
    store.settle("racing", {("b", "k", "w"): 3 * USD})
    assert store.spent("b", "k", ["w"]) == Spend(3 * USD, USD)
    assert store.ledger(kind="expire") == []
    (entry,) = store.ledger(kind="settle")
    assert entry.attributes == {}
    assert store.reserve([hold(amount=6 * USD)], "fits", ttl=60).ok
    assert store.spent("b", "k", ["w"]) == Spend(3 * USD, 7 * USD)


def test_a_reservation_placed_again_is_released_whole(make_store):
    store = make_store(Clock())
    store.reserve([hold(amount=2 * USD)], "again", ttl=60)
    store.reserve([hold(amount=3 * USD)], "again", ttl=60)
    assert store.spent("b", "k", ["w"]).reserved in (3 * USD, 5 * USD)  # stores may keep both
    store.release("again")
    assert store.spent("b", "k", ["w"]) == Spend(0, 0)


# --- issue 8.3c: settles are atomic and overflow-proof ------------------------------------------------

from otel_ai_cost.budgets._store import MAX_NANOS  # noqa: E402

HUGE = 10**30  # nano-dollars: far past int64 (SQLite INTEGER, Redis HINCRBY) and exact doubles


def test_a_settle_above_int64_settles_clamped_and_frees_the_hold(make_store):
    """Before: SQLite raised OverflowError and rolled back, keeping the hold; Redis's script stopped
    half-way. Now the amount is counted as MAX_NANOS, the hold is gone, the ledger says what was asked."""
    store = make_store(Clock())
    store.reserve([hold(limit=None, amount=USD)], "huge", ttl=60)
    store.settle("huge", {("b", "k", "w"): HUGE})
    assert store.spent("b", "k", ["w"]) == Spend(MAX_NANOS, 0)
    (entry,) = store.ledger(kind="settle")
    assert entry.amount_nanos == MAX_NANOS and entry.attributes["clamped_from_nanos"] == str(HUGE)
    assert entry.attributes.get("late") is None  # it took its hold


def test_a_settle_of_several_slots_with_one_overflowing_is_all_or_nothing(make_store):
    store = make_store(Clock())
    store.reserve([hold(budget="a", limit=None), hold(budget="b", limit=None)], "two", ttl=60)
    store.settle("two", {("a", "k", "w"): 3 * USD, ("b", "k", "w"): HUGE})
    assert store.spent("a", "k", ["w"]) == Spend(3 * USD, 0)
    assert store.spent("b", "k", ["w"]) == Spend(MAX_NANOS, 0)
    assert sorted(e.budget_id for e in store.ledger(kind="settle")) == ["a", "b"]


def test_spend_saturates_instead_of_overflowing(make_store):
    store = make_store(Clock())
    for i in range(3):
        store.settle(f"s{i}", {("b", "k", "w"): MAX_NANOS})  # each alone fits; their sum would not
    assert store.spent("b", "k", ["w"]).spent == MAX_NANOS
    assert not store.reserve([hold(limit=10 * USD)], "after", ttl=60).ok  # a saturated budget blocks
    assert store.reserve([hold(limit=None, amount=HUGE)], "shadow", ttl=60).ok  # a huge hold is clamped too
    assert store.spent("b", "k", ["w"]).reserved == MAX_NANOS


def test_a_huge_hold_is_refused_by_a_limited_budget(make_store):
    store = make_store(Clock())
    result = store.reserve([hold(limit=10 * USD, amount=HUGE)], "huge", ttl=60)
    assert not result.ok and result.refused == (0,)
    assert store.spent("b", "k", ["w"]) == Spend(0, 0)


def test_settle_once_ignores_a_second_settle_of_the_same_reservation(make_store):
    store = make_store(Clock())
    store.reserve([hold(amount=USD)], "r", ttl=60)
    store.settle("r", {("b", "k", "w"): 2 * USD}, once=True)
    store.settle("r", {("b", "k", "w"): 2 * USD}, {"journaled": True}, once=True)  # a replay: nothing
    assert store.spent("b", "k", ["w"]) == Spend(2 * USD, 0)
    assert len(store.ledger(kind="settle")) == 1
    store.settle("r", {("b", "k", "w"): USD})  # without once, as before: a late settle adds
    assert store.spent("b", "k", ["w"]).spent == 3 * USD


def test_holds_list_who_placed_them_and_when(make_store):
    import os
    import socket

    clock = Clock()
    store = make_store(clock)
    store.reserve([hold(amount=USD)], "first", ttl=60)
    clock.now += 5
    store.reserve([hold(key="other", amount=2 * USD)], "second", ttl=60)
    holds = store.holds("b")
    assert [(h.reservation_id, h.key, h.amount_nanos, h.placed_at, h.expires_at) for h in holds] == [
        ("first", "k", USD, clock.now - 5, clock.now + 55), ("second", "other", 2 * USD, clock.now, clock.now + 60)]
    assert {h.holder for h in holds} == {f"{socket.gethostname()}:{os.getpid()}"}
    assert [h.reservation_id for h in store.holds("b", "other")] == ["second"]
    clock.now += 56
    assert [h.reservation_id for h in store.holds("b")] == ["second"]  # the first one expired
