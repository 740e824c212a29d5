"""Operators' controls and corrections: limit overrides, freezes, adjust, reset, partitions, in the
three stores and in the book (which reads them from the store with a short cache)."""
from __future__ import annotations

import multiprocessing
import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from conftest import Clock
from otel_ai_cost.budgets import (
    Budget,
    BudgetBook,
    HoldRequest,
    MemoryBudgetStore,
    Spend,
    SQLiteBudgetStore,
    calendar,
    lifetime,
    rolling,
    warn,
)
from otel_ai_cost.budgets._redis import RedisBudgetStore
from otel_ai_cost.budgets._store import ADMIN_KINDS, ALL_KEYS, LEDGER_KINDS, Control
from otel_ai_cost.errors import BudgetExceededError, ConfigError

USD = 10**9
FORK = multiprocessing.get_context("fork")
ACME = {"tenant.id": "acme", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai"}
GLOBEX = {**ACME, "tenant.id": "globex"}


def hold(budget="b", key="k", window="w", limit=10 * USD, amount=USD, counted=(), frozen=False):
    return HoldRequest(budget, key, window, limit, amount, counted, None, frozen, on_expired="release")


# ---------------------------------------------------------------------------------------------------
# The stores


def test_admin_kinds_are_ledger_kinds():
    assert set(ADMIN_KINDS) <= set(LEDGER_KINDS)
    assert set(ADMIN_KINDS) == {"set_limit", "clear_limit", "freeze", "unfreeze", "adjust", "reset"}


def test_set_and_clear_a_limit_override(make_store):
    store = make_store()
    assert store.controls() == {}
    assert store.set_limit("b", ALL_KEYS, 20 * USD, {"actor": "ops", "note": "q4"}) is None
    assert store.set_limit("b", "acme", 5 * USD) is None
    assert store.set_limit("b", ALL_KEYS, 30 * USD) == 20 * USD
    assert store.controls() == {("b", ""): Control(30 * USD), ("b", "acme"): Control(5 * USD)}
    assert store.set_limit("b", ALL_KEYS, None, {"actor": "ops"}) == 30 * USD
    assert store.set_limit("b", ALL_KEYS, None) is None  # nothing to clear: still logged
    assert store.controls() == {("b", "acme"): Control(5 * USD)}
    entries = [(e.kind, e.key, e.window_key, e.amount_nanos, e.attributes) for e in store.ledger()]
    assert entries == [
        ("set_limit", "", "", 20 * USD, {"actor": "ops", "note": "q4", "previous_limit_nanos": None}),
        ("set_limit", "acme", "", 5 * USD, {"previous_limit_nanos": None}),
        ("set_limit", "", "", 30 * USD, {"previous_limit_nanos": 20 * USD}),
        ("clear_limit", "", "", 30 * USD, {"actor": "ops"}),
        ("clear_limit", "", "", 0, {}),
    ]
    assert len({e.reservation_id for e in store.ledger()}) == 5  # each change has its own id


def test_freeze_and_unfreeze(make_store):
    store = make_store()
    assert store.set_frozen("b", ALL_KEYS, True, {"actor": "ops"}) is False
    assert store.set_frozen("b", ALL_KEYS, True) is True
    assert store.controls() == {("b", ""): Control(frozen=True)}
    store.set_limit("b", ALL_KEYS, 7 * USD)
    assert store.controls() == {("b", ""): Control(7 * USD, True)}
    assert store.set_frozen("b", ALL_KEYS, False) is True
    assert store.controls() == {("b", ""): Control(7 * USD, False)}  # the override stays
    store.set_limit("b", ALL_KEYS, None)
    assert store.controls() == {}
    assert store.set_frozen("b", "acme", False) is False
    kinds = [(e.kind, e.amount_nanos, e.attributes.get("was_frozen")) for e in store.ledger()
             if e.kind in ("freeze", "unfreeze")]
    assert kinds == [("freeze", 0, False), ("freeze", 0, True), ("unfreeze", 0, True), ("unfreeze", 0, False)]
    assert store.ledger(kind="freeze")[0].attributes == {"actor": "ops", "was_frozen": False}


def test_controls_are_seen_through_another_connection(make_store):
    writer, reader = make_store(), make_store()
    writer.set_limit("a:b", "c", 3 * USD)  # ids with the separator still round-trip
    writer.set_frozen("a", "b:c", True)
    assert reader.controls() == {("a:b", "c"): Control(3 * USD), ("a", "b:c"): Control(frozen=True)}


def test_a_frozen_request_is_refused_whatever_the_spend(make_store):
    store = make_store()
    result = store.reserve([hold(budget="open"), hold(budget="frozen", frozen=True)], "r1", ttl=60,
                           attributes={"tenant.id": "acme"})
    assert not result.ok and result.refused == (1,)
    assert store.spent("open", "k", ["w"]) == Spend(0, 0)  # all or nothing
    (block,) = store.ledger(kind="block")
    assert (block.budget_id, block.attributes) == ("frozen", {"tenant.id": "acme", "frozen": True})
    assert store.reserve([hold(budget="open")], "r2", ttl=60).ok


def test_adjust_adds_and_removes_spend_never_below_zero(make_store):
    clock = Clock()
    store = make_store(clock)
    store.reserve([hold(amount=2 * USD)], "r", ttl=60)
    store.settle("r", {("b", "k", "w"): 2 * USD})
    assert store.adjust("b", "k", ["w"], 3 * USD, {"note": "invoice"}) == 3 * USD
    assert store.spent("b", "k", ["w"]) == Spend(5 * USD, 0)
    assert store.adjust("b", "k", ["w"], -4 * USD) == -4 * USD
    assert store.spent("b", "k", ["w"]) == Spend(1 * USD, 0)
    assert store.adjust("b", "k", ["w"], -5 * USD) == -1 * USD  # floored at zero
    assert store.spent("b", "k", ["w"]) == Spend(0, 0)
    assert store.adjust("other", "k", ["w"], -5 * USD) == 0  # nothing to remove
    entries = [(e.amount_nanos, e.attributes) for e in store.ledger(kind="adjust")]
    assert entries == [
        (3 * USD, {"note": "invoice", "requested_nanos": 3 * USD}),
        (-4 * USD, {"requested_nanos": -4 * USD}),
        (-1 * USD, {"requested_nanos": -5 * USD}),
        (0, {"requested_nanos": -5 * USD}),
    ]
    assert store.ledger(kind="adjust")[0].amount == Decimal(3)
    assert store.ledger(kind="adjust")[0].window_key == "w"


def test_adjust_a_rolling_window_takes_the_newest_spend_first(make_store):
    store = make_store()
    for window, amount in (("s1", 2), ("s2", 3)):
        store.reserve([hold(window=window, limit=None)], window, ttl=60)
        store.settle(window, {("b", "k", window): amount * USD})
    windows = ["s1", "s2", "s3"]  # oldest first; s3 is the current step
    assert store.adjust("b", "k", windows, 1 * USD) == USD  # a positive amount goes to the current step
    assert store.spent("b", "k", ["s3"]).spent == USD
    assert store.adjust("b", "k", windows, -5 * USD) == -5 * USD
    assert [store.spent("b", "k", [w]).spent for w in windows] == [1 * USD, 0, 0]
    assert store.adjust("b", "k", windows, -5 * USD) == -1 * USD
    assert store.spent("b", "k", windows) == Spend(0, 0)
    assert store.ledger(kind="adjust")[-1].window_key == "s3"


def test_reset_zeroes_the_spend_and_keeps_the_holds(make_store):
    store = make_store()
    store.reserve([hold(amount=2 * USD)], "done", ttl=60)
    store.settle("done", {("b", "k", "w"): 4 * USD})
    store.adjust("b", "k", ["w"], 1 * USD)
    store.reserve([hold(amount=3 * USD)], "in-flight", ttl=60)
    store.reserve([hold(key="other", amount=USD)], "other", ttl=60)
    store.settle("other", {("b", "other", "w"): USD})
    assert store.reset("b", "k", ["w"], {"actor": "ops"}) == 5 * USD
    assert store.spent("b", "k", ["w"]) == Spend(0, 3 * USD)
    assert store.spent("b", "other", ["w"]) == Spend(USD, 0)  # other partitions untouched
    assert store.reset("b", "k", ["w"]) == 0
    resets = [(e.key, e.window_key, e.amount_nanos, e.attributes) for e in store.ledger(kind="reset")]
    assert resets == [("k", "w", 5 * USD, {"actor": "ops"}), ("k", "w", 0, {})]
    store.settle("in-flight", {("b", "k", "w"): 2 * USD})
    assert store.spent("b", "k", ["w"]) == Spend(2 * USD, 0)


def test_reset_a_rolling_window_clears_every_counted_step(make_store):
    store = make_store()
    for window in ("s1", "s2"):
        store.reserve([hold(window=window, limit=None)], window, ttl=60)
        store.settle(window, {("b", "k", window): USD})
    assert store.reset("b", "k", ["s1", "s2"]) == 2 * USD
    assert store.spent("b", "k", ["s1", "s2"]) == Spend(0, 0)


def test_partitions_with_spend_or_live_holds_in_a_window(make_store):
    clock = Clock()
    store = make_store(clock)
    store.reserve([hold(key="settled")], "a", ttl=60)
    store.settle("a", {("b", "settled", "w"): USD})
    store.reserve([hold(key="holding")], "b", ttl=60)
    store.reserve([hold(key="expiring")], "c", ttl=5)
    store.reserve([hold(key="old-window", window="v")], "d", ttl=60)
    store.reserve([hold(budget="other", key="elsewhere")], "e", ttl=60)
    store.adjust("b", "adjusted", ["w"], USD)
    store.adjust("b", "zeroed", ["w"], USD)
    store.reset("b", "zeroed", ["w"])
    store.reserve([hold(key="*glob?[x]", limit=None)], "f", ttl=60)
    assert store.partitions("b", ["w"]) == sorted(["*glob?[x]", "adjusted", "expiring", "holding", "settled"])
    clock.now += 10
    assert "expiring" not in store.partitions("b", ["w"])
    assert store.partitions("b", ["v", "w"]) == sorted(["*glob?[x]", "adjusted", "holding", "old-window", "settled"])
    assert store.partitions("nobody", ["w"]) == []


def test_ledger_filters_by_kinds_and_keeps_the_last_entries(make_store):
    clock = Clock()
    store = make_store(clock)
    for i in range(5):
        clock.now += 1
        store.reserve([hold(budget="a" if i % 2 else "b")], f"r{i}", ttl=60)
        store.settle(f"r{i}", {("a" if i % 2 else "b", "k", "w"): USD})
    kinds = store.ledger(kinds=("settle",))
    assert [e.reservation_id for e in kinds] == ["r0", "r1", "r2", "r3", "r4"]
    last = store.ledger(budget_id="b", kinds=["reserve", "settle"], last=3)
    assert [(e.kind, e.reservation_id) for e in last] == [("settle", "r2"), ("reserve", "r4"), ("settle", "r4")]
    assert [(e.kind, e.reservation_id) for e in store.ledger(budget_id="a", kind="settle", last=1)] == [
        ("settle", "r3")
    ]
    assert store.ledger(last=0) == []
    assert len(store.ledger(last=100)) == 10
    assert [e.reservation_id for e in store.ledger(kinds=("reserve",), since=1_800_000_003.0, last=1)] == ["r4"]


# ---------------------------------------------------------------------------------------------------
# The book


def book_on(store, *budgets, clock=None, **kwargs):
    return BudgetBook(budgets, store, clock=clock or store._clock, **kwargs)


def test_a_limit_override_replaces_the_configured_limit(make_store):
    clock = Clock()
    budget = Budget("tenant", "10", lifetime(), per="tenant.id", thresholds=[(0.5, warn())])
    book = book_on(make_store(clock), budget)
    book.settle(book.reserve(ACME, "9"), "9")
    assert not book.reserve(ACME, "2").decision.allowed
    assert book.set_limit("tenant", "20") is None  # every partition
    decision = book.reserve(ACME, "2").decision
    assert (decision.action, decision.outcomes[0].limit) == ("warn", Decimal(20))  # 11 >= 50% of 20
    assert book.usage("tenant", "acme").limit == 20 and book.usage("tenant", "acme").overridden
    assert book.set_limit("tenant", "1", key="globex") is None  # one partition wins over the budget's
    assert not book.reserve(GLOBEX, "2").decision.allowed
    assert book.reserve(ACME, "2").decision.allowed
    assert book.set_limit("tenant", None) == Decimal(20)  # back to the configuration
    assert book.usage("tenant", "acme").limit == 10 and not book.usage("tenant", "acme").overridden
    assert not book.reserve(ACME, "0.5").decision.allowed
    assert book.usage("tenant", "globex").limit == 1


def test_an_override_keeps_the_block_fraction_of_the_limit(make_store):
    budget = Budget("b", "10", lifetime(), thresholds=[(0.5, warn()), (0.9, "block")])
    book = book_on(make_store(), budget)
    book.set_limit("b", "100")
    assert book.reserve({}, "90").decision.allowed
    assert book.reserve({}, "0.01").decision.action == "block"  # past 90% of 100


def test_a_frozen_budget_blocks_every_call(make_store):
    clock = Clock()
    book = book_on(make_store(clock), Budget("team", "100", lifetime()), Budget("tenant", "50", lifetime(),
                                                                                   per="tenant.id"))
    assert book.freeze("team", attributes={"actor": "ops"}) is False
    reservation = book.reserve(ACME, "0.01")
    decision = reservation.decision
    assert (decision.action, decision.reason, decision.budget.id) == ("block", "frozen", "team")
    assert decision.deciding.frozen and decision.deciding.frozen_by == ("",)
    assert not reservation.held
    assert book.store.spent("tenant", "acme", ["lifetime"]) == Spend(0, 0)  # holds nothing anywhere
    message = str(decision.error())
    assert "budget 'team' is frozen" in message and "`otel-ai-cost budget unfreeze team`" in message
    (block,) = book.store.ledger(kind="block")
    assert (block.budget_id, block.attributes["frozen"], block.attributes["tenant.id"]) == ("team", True, "acme")
    assert book.usage("team").frozen
    assert book.unfreeze("team") is True
    assert book.reserve(ACME, "0.01").decision.allowed


def test_a_frozen_partition_blocks_only_its_calls(make_store):
    book = book_on(make_store(), Budget("tenant", "50", lifetime(), per="tenant.id"))
    book.freeze("tenant", "acme")
    error = book.reserve(ACME, "0.01").decision.error()
    assert isinstance(error, BudgetExceededError)
    assert "budget 'tenant' for tenant.id=acme is frozen" in str(error)
    assert "`otel-ai-cost budget unfreeze tenant --key acme`" in str(error)
    assert book.reserve(GLOBEX, "0.01").decision.allowed
    assert book.usage("tenant", "acme").frozen and not book.usage("tenant", "globex").frozen
    book.freeze("tenant")  # the whole budget as well: both freezes must be lifted
    message = str(book.reserve(ACME, "0.01").decision.error())
    assert "unfreeze tenant` and `otel-ai-cost budget unfreeze tenant --key acme`" in message
    assert not book.reserve(GLOBEX, "0.01").decision.allowed
    book.unfreeze("tenant")
    assert book.reserve(GLOBEX, "0.01").decision.allowed and not book.reserve(ACME, "0.01").decision.allowed


def test_a_frozen_shadow_budget_records_a_block_but_lets_the_call_through(make_store):
    book = book_on(make_store(), Budget("proposed", "50", lifetime(), shadow=True))
    book.freeze("proposed")
    decision = book.reserve(ACME, "0.01").decision
    assert decision.allowed and decision.outcomes[0].action == "block" and decision.outcomes[0].frozen
    (block,) = book.store.ledger(kind="block")
    assert block.attributes["shadow"] is True and block.attributes["frozen"] is True


def test_changes_from_another_process_apply_within_the_refresh_time(make_store):
    clock = Clock()
    operator = book_on(make_store(clock), Budget("b", "10", lifetime()), override_refresh=0)
    app = book_on(make_store(clock), Budget("b", "10", lifetime()), override_refresh=1.0)
    assert app.reserve({}, "1").decision.allowed  # reads the controls: none
    operator.freeze("b")
    clock.now += 0.5
    assert app.reserve({}, "1").decision.allowed  # still within the refresh time
    clock.now += 0.5
    assert app.reserve({}, "1").decision.reason == "frozen"  # read again after 1 s
    operator.unfreeze("b")
    operator.set_limit("b", "2.5")
    clock.now += 0.99
    assert app.reserve({}, "1").decision.reason == "frozen"
    clock.now += 0.01
    decision = app.reserve({}, "1").decision
    assert decision.action == "block" and decision.reason is None and decision.deciding.limit == Decimal("2.5")
    clock.now -= 100  # a clock that goes back reads again rather than trust the cache
    operator.set_limit("b", None)
    assert app.reserve({}, "1").decision.allowed


def test_refresh_zero_reads_the_controls_on_every_call(make_store):
    clock = Clock()
    operator = book_on(make_store(clock), Budget("b", "10", lifetime()))
    app = book_on(make_store(clock), Budget("b", "10", lifetime()), override_refresh=0)
    assert app.reserve({}, "1").decision.allowed
    operator.freeze("b")
    assert app.reserve({}, "1").decision.reason == "frozen"


class CountingStore(MemoryBudgetStore):
    def __init__(self, clock):
        super().__init__(clock)
        self.reads = 0

    def controls(self):
        self.reads += 1
        return super().controls()


def test_controls_are_read_once_per_refresh_not_per_call():
    clock = Clock()
    store = CountingStore(clock)
    book = BudgetBook([Budget("b", "1000", lifetime())], store, clock=clock)
    for _ in range(100):
        book.settle(book.reserve({}, "0.01"), "0.01")
    assert store.reads == 1
    clock.now += 1
    book.reserve({}, "0.01")
    assert store.reads == 2


class FlakyControls(MemoryBudgetStore):
    broken = False

    def controls(self):
        if self.broken:
            raise ConnectionError("redis is down")
        return super().controls()


def test_the_last_controls_read_stay_in_force_when_the_store_fails_to_read_them():
    clock = Clock()
    store = FlakyControls(clock)
    book = BudgetBook([Budget("b", "10", lifetime())], store, clock=clock)
    store.set_frozen("b", "", True)
    assert book.reserve({}, "1").decision.reason == "frozen"
    store.broken = True
    clock.now += 5
    assert book.reserve({}, "1").decision.reason == "frozen"


class OldStore:
    """A store written before the controls existed: no controls() method."""

    def __init__(self):
        self.inner = MemoryBudgetStore()

    def __getattr__(self, name):
        if name in ("controls", "set_limit", "set_frozen", "adjust", "reset", "partitions"):
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_a_store_without_controls_still_works():
    book = BudgetBook([Budget("b", "1", lifetime())], OldStore())
    assert book.reserve({}, "1").decision.allowed
    assert not book.reserve({}, "1").decision.allowed


def test_book_adjust_reset_and_partitions_use_the_current_window(make_store):
    clock = Clock(datetime.fromisoformat("2026-11-30T22:30:00+00:00").timestamp())
    budget = Budget("tenant", "10", calendar("month", tz="Europe/Paris"), per="tenant.id")
    book = book_on(make_store(clock), budget, Budget("team", "100", calendar("day")))
    book.settle(book.reserve(ACME, "4"), "4")
    book.reserve(GLOBEX, "1")
    assert book.partitions("tenant") == ["acme", "globex"]
    assert book.adjust("tenant", "-1.5", key="acme", attributes={"note": "refund"}) == Decimal("-1.5")
    assert book.usage("tenant", "acme").spent == Decimal("2.5")
    assert book.adjust("tenant", "-10", key="acme") == Decimal("-2.5")
    assert book.adjust("team", "3") == 3
    assert book.usage("team").spent == 7
    assert book.reset("team") == 7
    assert book.usage("team").spent == 0
    entry = book.store.ledger(kind="adjust")[0]
    assert (entry.window_key, entry.attributes["note"]) == ("2026-11", "refund")
    clock.now += 3600  # December in Paris
    assert book.partitions("tenant") == []
    assert book.adjust("tenant", "2", key="acme") == 2
    assert book.usage("tenant", "acme").window_key == "2026-12" and book.usage("tenant", "acme").spent == 2
    with pytest.raises(ValueError, match="per tenant.id: name the partition"):
        book.adjust("tenant", "1")
    with pytest.raises(ValueError, match="no partitions"):
        book.reset("team", key="acme")
    with pytest.raises(ValueError, match="no partitions"):
        book.freeze("team", key="acme")
    with pytest.raises(KeyError, match="no budget 'nope'"):
        book.set_limit("nope", "1")
    with pytest.raises(ValueError):
        book.adjust("team", "lots")


def test_adjust_a_rolling_budget_through_the_book(make_store):
    clock = Clock()
    book = book_on(make_store(clock), Budget("hourly", "10", rolling(timedelta(hours=1), steps=6)))
    book.settle(book.reserve({}, "3"), "3")
    clock.now += 1200
    book.settle(book.reserve({}, "3"), "3")
    assert book.adjust("hourly", "-4") == -4
    assert book.usage("hourly").spent == 2
    assert book.reset("hourly") == 2


def test_override_refresh_must_be_zero_or_more():
    for bad in (-1, "1", float("nan"), True):
        with pytest.raises(ConfigError, match="override_refresh"):
            BudgetBook([], override_refresh=bad)


# ---------------------------------------------------------------------------------------------------
# Real processes: an app process sees a freeze made by the operator within its refresh time


def _app(target, prefix, refresh, now, commands, replies):
    """The app: a book whose clock is ``now`` (shared with the test, which moves it); one call to
    start, then one call per command, its decision's reason sent back ("" when allowed)."""
    store = open_target(target, prefix)
    book = BudgetBook([Budget("shared", "1000", lifetime())], store, clock=lambda: now.value,
                      override_refresh=refresh)
    first = book.reserve({}, "0.01").decision
    replies.send("" if first.allowed else first.reason)
    while commands.poll(timeout=30) and commands.recv() == "call":
        decision = book.reserve({}, "0.01").decision
        replies.send("" if decision.allowed else decision.reason)
    store.close()


def open_target(target, prefix):
    if target.startswith("redis://"):
        return RedisBudgetStore(target, prefix=prefix)
    return SQLiteBudgetStore(target)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_another_process_sees_a_freeze_within_its_refresh_time(backend, tmp_path, request):
    """Event-driven, no wall-clock bound: the app's clock is moved by its refresh time after the
    freeze, and its next call is refused as frozen. Waits time out only against a hung child."""
    target = str(tmp_path / "budgets.db") if backend == "sqlite" else request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix") if backend == "redis" else ""
    operator = open_target(target, prefix)
    refresh = 0.25  # exact in binary, as is the whole second the clock starts at: now + refresh - now == refresh
    now = FORK.Value("d", float(int(time.time())))
    commands, to_app = FORK.Pipe(duplex=False)
    from_app, replies = FORK.Pipe(duplex=False)
    child = FORK.Process(target=_app, args=(target, prefix, refresh, now, commands, replies))
    child.start()
    try:
        assert from_app.poll(timeout=30) and from_app.recv() == "", "the app did not start"
        operator.set_frozen("shared", "", True, {"actor": "test"})
        now.value += refresh  # the app's controls are as old as its refresh time: it reads them again
        to_app.send("call")
        assert from_app.poll(timeout=30), "the app did not answer"
        seen = from_app.recv()
        to_app.send("stop")
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    assert seen == "frozen", "the app did not see the freeze within its refresh time"
    operator.close()
