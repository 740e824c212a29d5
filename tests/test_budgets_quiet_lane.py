"""The in-memory store's quiet lane (budgets/_quiet.py) decides and records exactly as the general path.

The same sequence of calls runs twice: on MemoryBudgetStore (the book takes the quiet lane for calls
far from every threshold) and on a subclass (the book never takes it: a subclass may change what
reserve does). Decisions, span-facing numbers, spend and ledger entries must be the same, with the
calls crossing warning, downgrade and block thresholds, per-key partitions, a shadow budget, a
rolling window, an operator's freeze and expired holds on the way.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from conftest import Clock
from otel_ai_cost._estimate import Estimate
from otel_ai_cost.budgets import (
    Budget,
    BudgetBook,
    MemoryBudgetStore,
    calendar,
    downgrade,
    lifetime,
    rolling,
    warn,
)

NOV_15 = "2026-11-15T12:00:00+00:00"


class GeneralPathStore(MemoryBudgetStore):
    """The same store, but not the exact type: the book takes the general path."""


def budgets():
    return [
        Budget("org", "5", calendar("month"), thresholds=((Decimal("0.5"), warn()), (0.9, downgrade("small")))),
        Budget("tenant", "4", lifetime(), per="tenant.id", selector={"gen_ai.provider.name": "openai"}),
        Budget("shadow", "3", lifetime(), shadow=True),
        Budget("hourly", "6", rolling(timedelta(hours=1), steps=6), selector={"gen_ai.operation.name": "chat"}),
    ]


def run(store_type):
    clock = Clock(NOV_15)
    store = store_type(clock)
    book = BudgetBook(budgets(), store, clock=clock, hold_ttl=600)
    seen = []
    for i in range(60):
        tenant = ("acme", "globex", None)[i % 3]
        attributes = {"gen_ai.provider.name": "openai" if i % 4 else "anthropic",
                      "gen_ai.operation.name": "chat" if i % 5 else "embeddings",
                      "gen_ai.request.model": "gpt-4o"}
        if tenant:
            attributes["tenant.id"] = tenant
        if i == 30:
            book.store.set_frozen("tenant", "globex", True)
        if i == 40:
            book.store.set_frozen("tenant", "globex", False)
            clock.now += 2 * 3600  # the rolling window forgets, held calls below expire
        reservation = book.reserve(attributes, Decimal("0.0731") * (1 + i % 4), trace_id=f"{i:032x}")
        d = reservation.decision
        seen.append((d.action, d.reason, d.estimate, reservation.slots, reservation.held,
                     [(o.budget.id, o.key, o.window_key, o.action, o.limit, o.spent, o.reserved, o.estimate,
                       o.model, o.threshold, o.frozen_by, o.span_attributes()) for o in d.outcomes],
                     d.span_attributes()))
        if i % 7 == 3:
            continue  # never settled: its holds expire after the clock moves
        if i % 6 == 1:
            book.release(reservation)
        else:
            book.settle(reservation, Decimal("0.13") * (i % 3), {"gen_ai.response.model": "gpt-4o"})
        clock.now += 1
    ids = {}  # reservation ids differ between runs: compare them by order of appearance
    ledger = [(e.time, e.kind, e.budget_id, e.key, e.window_key, e.amount_nanos,
               ids.setdefault(e.reservation_id, len(ids)), e.attributes)
              for e in store.ledger() if e.kind not in ("freeze", "unfreeze")]
    usage = [book.usage(b, k) for b, k in (("org", ""), ("tenant", "acme"), ("tenant", "globex"), ("shadow", ""),
                                             ("hourly", ""))]
    return seen, ledger, usage


def test_quiet_lane_decides_and_records_as_the_general_path():
    quiet, general = run(MemoryBudgetStore), run(GeneralPathStore)
    actions = {s[0] for s in quiet[0]}
    assert {"allow", "warn", "downgrade", "block"} <= actions  # the sequence crosses the thresholds
    assert quiet[0] == general[0]
    assert quiet[1] == general[1]
    assert quiet[2] == general[2]
    kinds = {e[1] for e in quiet[1]}
    assert {"reserve", "settle", "release", "expire_charge", "block", "warn", "downgrade"} <= kinds


def test_quiet_lane_takes_the_holds_of_the_general_path():
    clock = Clock(NOV_15)
    book = BudgetBook([Budget("b", "1", lifetime())], MemoryBudgetStore(clock), clock=clock)
    first = book.reserve({}, "0.3")
    second = book.reserve({}, "0.3")
    assert [o.reserved for o in second.decision.outcomes] == [Decimal("0.3")]
    assert book.usage("b").reserved == Decimal("0.6") and first.held and second.held
    third = book.reserve({}, "0.5")  # 0.6 held + 0.5 > 1: refused, nothing held
    assert third.decision.action == "block" and book.usage("b").reserved == Decimal("0.6")


def test_a_call_that_reaches_a_threshold_exactly_takes_the_general_path():
    clock = Clock(NOV_15)
    book = BudgetBook([Budget("b", "1", lifetime(), thresholds=((0.5, warn()),))], MemoryBudgetStore(clock),
                      clock=clock)
    below = book.reserve({}, "0.499999999")  # 1 nano-dollar under the warning level: quiet
    book.release(below)
    at = book.reserve({}, "0.5")  # exactly at 50% of the limit: the warning applies
    assert (below.decision.action, at.decision.action) == ("allow", "warn")
    assert at.decision.deciding is not None and at.decision.deciding.threshold == Decimal("0.5")
    assert [e.kind for e in book.store.ledger()] == ["reserve", "release", "reserve", "warn"]


def spans_of(store_type, budget_list):
    from opentelemetry.sdk.trace import TracerProvider

    from otel_ai_cost.budgets import BudgetEnforcer

    clock = Clock(NOV_15)
    enforcer = BudgetEnforcer(BudgetBook(budget_list, store_type(clock), clock=clock))
    tracer = TracerProvider().get_tracer("test")
    seen = []
    for i in range(40):
        span = tracer.start_span("chat")
        attributes = {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "tenant.id": "acme"}
        estimate = Estimate(input_tokens=10, output_tokens=20, method="heuristic", output_basis="max_tokens",
                            amount=Decimal("0.0917") * (1 + i % 3))
        decision, hold = enforcer.decide(span, attributes, trace_id=f"{i:032x}", estimate=estimate)
        span.end()
        seen.append((decision.action, dict(span.attributes), [e.name for e in span.events], span.status.status_code))
        if hold is not None and i % 2:
            hold.settle(0.0417 * (i % 4), {"gen_ai.response.model": "gpt-4o"})
    return seen


def test_quiet_lane_sets_the_span_attributes_of_the_general_path():
    one = [Budget("tenant", "3", calendar("month"), per="tenant.id")]  # the lane of one budget
    two = one + [Budget("org", "5", lifetime(), thresholds=((0.6, warn()),))]  # outcomes made when read
    for budget_list in (one, two):
        quiet, general = spans_of(MemoryBudgetStore, budget_list), spans_of(GeneralPathStore, budget_list)
        assert {"allow", "warn", "block"} <= {s[0] for s in quiet}
        assert quiet == general
        assert all(s[1]["ai_cost.budget.id"] for s in quiet)


def test_start_attributes_are_on_the_span_before_a_hook_and_with_a_quiet_allow():
    from opentelemetry.sdk.trace import TracerProvider

    from otel_ai_cost.budgets import BudgetEnforcer

    tracer = TracerProvider().get_tracer("test")
    started = {"ai_cost.estimate.amount": 0.25, "ai_cost.estimate.input_tokens": 10}
    seen_by_hook = []

    def hook(span, estimate):
        seen_by_hook.append(span.attributes.get("ai_cost.estimate.amount"))

    for before_request in (None, hook):
        clock = Clock(NOV_15)
        book = BudgetBook([Budget("b", "1", lifetime())], MemoryBudgetStore(clock), clock=clock)
        enforcer = BudgetEnforcer(book, before_request=before_request)
        for amount, action in (("0.25", "allow"), ("0.6", "warn"), ("0.9", "block")):
            span = tracer.start_span("chat")
            estimate = Estimate(input_tokens=10, output_tokens=1, method="heuristic", output_basis="max_tokens",
                                amount=Decimal(amount))
            decision, _ = enforcer.decide(span, {}, trace_id=None, estimate=estimate, start_attributes=started)
            assert decision.action == action
            attributes = dict(span.attributes)
            assert list(attributes)[:2] == list(started)  # the estimate's first, as when set before deciding
            assert attributes["ai_cost.budget.decision"] == action and attributes["ai_cost.budget.id"] == "b"
            span.end()
    assert seen_by_hook == [0.25, 0.25, 0.25]


def test_threads_on_the_quiet_lane_never_overspend():
    from concurrent.futures import ThreadPoolExecutor

    from otel_ai_cost.budgets import block

    # No warning threshold: every call up to the limit takes the quiet lane.
    book = BudgetBook([Budget("shared", "2", lifetime(), thresholds=((1, block()),))], MemoryBudgetStore())

    def spend_until_blocked(_):
        allowed = 0
        while True:
            reservation = book.reserve({}, "0.01")
            if not reservation.decision.allowed:
                return allowed
            assert type(reservation.decision).__name__ == "QuietDecision"
            book.settle(reservation, "0.01")
            allowed += 1

    with ThreadPoolExecutor(8) as pool:
        allowed = sum(pool.map(spend_until_blocked, range(8)))
    assert allowed == 200  # $2 / $0.01, exactly
    assert book.usage("shared").spent == Decimal("2") and book.usage("shared").reserved == 0
    assert len(book.store.ledger(kind="reserve")) == 200 and len(book.store.ledger(kind="block")) == 8


def test_start_attributes_stay_on_the_span_when_deciding_fails():
    import pytest
    from opentelemetry.sdk.trace import TracerProvider

    from otel_ai_cost.budgets import BudgetEnforcer

    book = BudgetBook([Budget("b", "1", lifetime())], MemoryBudgetStore())
    enforcer = BudgetEnforcer(book)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the book")

    book.reserve = broken
    span = TracerProvider().get_tracer("test").start_span("chat")
    estimate = Estimate(input_tokens=10, output_tokens=1, method="heuristic", output_basis="max_tokens",
                        amount=Decimal("0.25"))
    with pytest.raises(RuntimeError):
        enforcer.decide(span, {}, trace_id=None, estimate=estimate, start_attributes={"ai_cost.estimate.amount": 0.25})
    assert span.attributes["ai_cost.estimate.amount"] == 0.25
