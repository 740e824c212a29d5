"""BudgetBook decisions: thresholds, blocks, shadow budgets, window roll-over, store failures."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from conftest import Clock
from otel_ai_cost.budgets import (
    Budget,
    BudgetBook,
    MemoryBudgetStore,
    Spend,
    calendar,
    downgrade,
    lifetime,
    rolling,
    throttle,
    warn,
)
from otel_ai_cost.errors import BudgetExceededError, ConfigError

USD = 10**9
NOV_15 = "2026-11-15T12:00:00+00:00"  # the clock's start, mid-month: calendar windows are not at an edge


def book_of(*budgets, clock=None, **kwargs):
    clock = clock or Clock(NOV_15)
    return BudgetBook(budgets, MemoryBudgetStore(clock), clock=clock, **kwargs)


ACME = {"tenant.id": "acme", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai"}


def test_no_matching_budget_allows_without_holding():
    book = book_of(Budget("openai-only", "1", lifetime(), selector={"gen_ai.provider.name": "anthropic"}))
    reservation = book.reserve(ACME, "5")
    assert reservation.decision.action == "allow" and reservation.decision.outcomes == ()
    assert book.store.ledger() == []


def test_thresholds_warn_downgrade_throttle_then_block():
    budget = Budget(
        "tenant", "10", lifetime(), per="tenant.id",
        thresholds=[(0.5, warn()), (0.7, throttle(1.5)), (0.9, downgrade("gpt-4o-mini"))],
    )
    book = book_of(budget)
    actions = []
    for _ in range(6):
        decision = book.reserve(ACME, "2").decision
        actions.append((decision.action, decision.model, decision.delay))
    assert actions == [
        ("allow", None, None),
        ("allow", None, None),
        ("warn", None, None),  # 6/10
        ("throttle", None, 1.5),  # 8/10
        ("downgrade", "gpt-4o-mini", None),  # 10/10: at the limit is still allowed
        ("block", None, None),
    ]
    kinds = [e.kind for e in book.store.ledger()]
    assert kinds.count("reserve") == 5 and kinds.count("block") == 1
    assert {"warn", "throttle", "downgrade"} <= set(kinds)


def test_blocked_decision_carries_the_numbers_and_raises_budget_exceeded():
    book = book_of(Budget("tenant", "10", calendar("month", tz="Europe/Paris"), per="tenant.id"))
    first = book.reserve(ACME, "4")
    book.settle(first, "3")
    book.reserve(ACME, "5")
    decision = book.reserve(ACME, "2.5").decision
    assert decision.action == "block" and not decision.allowed
    o = decision.deciding
    assert (o.budget.id, o.key, o.window_key, o.limit, o.spent, o.reserved, o.estimate) == (
        "tenant", "acme", "2026-11", Decimal(10), Decimal(3), Decimal(5), Decimal("2.5")
    )
    error = decision.error()
    assert isinstance(error, BudgetExceededError)
    assert (error.budget_id, error.limit, error.spent, error.reserved, error.estimate) == (
        "tenant", Decimal(10), Decimal(3), Decimal(5), Decimal("2.5")
    )
    assert "tenant.id=acme" in str(error) and "2026-11-30T23:00:00+00:00" in str(error)
    assert decision.span_attributes() == {
        "ai_cost.budget.decision": "block",
        "ai_cost.budget.id": "tenant",
        "ai_cost.budget.key": "acme",
        "ai_cost.budget.window": "2026-11",
        "ai_cost.budget.limit": 10.0,
        "ai_cost.budget.spent": 3.0,
        "ai_cost.budget.reserved": 5.0,
        "ai_cost.budget.shadow": False,
    }


def test_one_budget_blocks_and_the_other_holds_nothing():
    book = book_of(Budget("team", "100", lifetime()), Budget("tenant", "1", lifetime(), per="tenant.id"))
    reservation = book.reserve(ACME, "2")
    assert reservation.decision.action == "block" and reservation.decision.budget.id == "tenant"
    assert book.store.spent("team", "", ["lifetime"]) == Spend(0, 0)
    book.release(reservation)  # nothing to release
    assert [e.kind for e in book.store.ledger()] == ["block"]


def test_tenants_have_separate_budgets():
    book = book_of(Budget("tenant", "1", lifetime(), per="tenant.id"))
    assert book.reserve(ACME, "1").decision.allowed
    assert not book.reserve(ACME, "1").decision.allowed
    assert book.reserve({**ACME, "tenant.id": "globex"}, "1").decision.allowed


def test_per_trace_budget_stops_a_runaway_agent():
    book = book_of(Budget("agent-run", "1", lifetime(), per="trace"))
    assert [book.reserve(ACME, "0.4", trace_id="t1").decision.action for _ in range(3)] == ["allow", "warn", "block"]
    assert book.reserve(ACME, "0.4", trace_id="t2").decision.action == "allow"


def test_month_rolls_over_at_paris_midnight():
    clock = Clock("2026-11-30T22:59:59+00:00")
    book = book_of(Budget("monthly", "1", calendar("month", tz="Europe/Paris")), clock=clock)
    book.settle(book.reserve(ACME, "1"), "1")
    assert book.reserve(ACME, "0.01").decision.action == "block"
    clock.now += 1  # 2026-11-30T23:00:00Z = 2026-12-01T00:00 in Paris
    decision = book.reserve(ACME, "0.01").decision
    assert decision.action == "allow" and decision.outcomes[0].window_key == "2026-12"


def test_rolling_window_forgets_old_spend():
    clock = Clock(NOV_15)
    book = book_of(Budget("hourly", "1", rolling(timedelta(hours=1), steps=6)), clock=clock)
    book.settle(book.reserve(ACME, "1"), "1")
    clock.now += 3600
    assert not book.reserve(ACME, "0.5").decision.allowed  # still within duration + one step
    clock.now += 600
    assert book.reserve(ACME, "0.5").decision.allowed


def test_settle_records_actual_cost_and_frees_the_rest_of_the_hold():
    book = book_of(Budget("b", "1", lifetime()))
    reservation = book.reserve(ACME, "0.9")
    assert not book.reserve(ACME, "0.2").decision.allowed
    book.settle(reservation, "0.1")
    book.settle(reservation, "0.1")  # settling twice counts once
    assert book.store.spent("b", "", ["lifetime"]) == Spend(USD // 10, 0)
    assert book.reserve(ACME, "0.9").decision.allowed


def test_shadow_budget_records_but_never_blocks():
    shadow = Budget("proposed", "1", lifetime(), per="tenant.id", shadow=True)
    book = book_of(shadow, Budget("real", "100", lifetime()))
    decisions = [book.reserve(ACME, "0.6").decision for _ in range(3)]
    assert [d.action for d in decisions] == ["allow", "allow", "allow"]
    assert [d.outcomes[0].action for d in decisions] == ["allow", "block", "block"]
    assert all(d.outcomes[0].shadow for d in decisions)
    shadow_blocks = book.store.ledger(budget_id="proposed", kind="block")
    assert len(shadow_blocks) == 2 and all(e.attributes["shadow"] for e in shadow_blocks)
    assert book.store.spent("proposed", "acme", ["lifetime"]).reserved == 1_800_000_000  # spend still tracked


class BrokenStore(MemoryBudgetStore):
    def reserve(self, *args, **kwargs):
        raise ConnectionError("redis is down")

    def settle(self, *args, **kwargs):
        raise ConnectionError("redis is down")


def test_store_failure_fails_open_by_default():
    book = BudgetBook([Budget("b", "1", lifetime())], BrokenStore())
    reservation = book.reserve(ACME, "5")
    assert (reservation.decision.action, reservation.decision.reason) == ("allow", "store_error")
    book.settle(reservation, "5")  # logged, not raised


def test_store_failure_can_fail_closed():
    book = BudgetBook([Budget("b", "1", lifetime())], BrokenStore(), on_store_error="closed")
    decision = book.reserve(ACME, "0.01").decision
    assert (decision.action, decision.reason) == ("block", "store_error")
    assert "unavailable" in str(decision.error())


def test_book_rejects_duplicate_ids_and_bad_options():
    with pytest.raises(ConfigError, match="repeated: b"):
        BudgetBook([Budget("b", "1", lifetime()), Budget("b", "2", lifetime())])
    with pytest.raises(ConfigError, match="on_store_error"):
        BudgetBook([], on_store_error="maybe")


def test_ledger_attributes_are_limited_to_attribution_keys():
    book = book_of(Budget("b", "1", lifetime(), selector={"service.name": "api"}))
    book.reserve({**ACME, "service.name": "api", "gen_ai.prompt": "secret"}, "0.1", trace_id="t1")
    (entry,) = book.store.ledger()
    assert entry.attributes == {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "service.name": "api",
        "tenant.id": "acme",
        "trace_id": "t1",
    }


def test_usage_reports_the_current_window_of_a_partition():
    clock = Clock("2026-11-30T22:00:00+00:00")
    book = book_of(Budget("tenant", "10", calendar("month", tz="Europe/Paris"), per="tenant.id"), clock=clock)
    book.settle(book.reserve(ACME, "2"), "1.5")
    book.reserve(ACME, "3")
    now = book.usage("tenant", "acme")
    assert (now.window_key, now.limit, now.spent, now.reserved) == ("2026-11", Decimal(10), Decimal("1.5"), Decimal(3))
    clock.now += 3600
    assert book.usage("tenant", "acme").window_key == "2026-12"
    assert book.usage("tenant", "acme").spent == 0
    assert now.remaining == Decimal("5.5")
    with pytest.raises(KeyError, match="no budget 'nope'"):
        book.usage("nope")


def test_negative_or_invalid_estimates_are_refused():
    book = book_of(Budget("b", "1", lifetime()))
    for bad in ("-1", "NaN", "lots"):
        with pytest.raises(ValueError):
            book.reserve(ACME, bad)
