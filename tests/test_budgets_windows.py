"""Budget windows and the budget model: keys, ends, selectors, partitions, thresholds."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from otel_ai_cost.budgets import Budget, Threshold, block, calendar, downgrade, lifetime, rolling, throttle, warn
from otel_ai_cost.budgets._windows import parse_duration
from otel_ai_cost.errors import ConfigError


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_paris_month_rolls_over_at_local_midnight():
    window = calendar("month", tz="Europe/Paris")
    before = window.span(utc("2026-11-30T22:59:59Z"))
    after = window.span(utc("2026-11-30T23:00:00Z"))
    assert (before.key, after.key) == ("2026-11", "2026-12")
    assert before.end == utc("2026-11-30T23:00:00Z")
    assert after.end == utc("2026-12-31T23:00:00Z")


def test_paris_day_follows_daylight_saving_time():
    window = calendar("day", tz="Europe/Paris")
    # Summer: UTC+2, so the local day ends at 22:00 UTC; winter: UTC+1, 23:00 UTC.
    assert window.span(utc("2026-07-14T21:59:59Z")).key == "2026-07-14"
    assert window.span(utc("2026-07-14T22:00:00Z")).key == "2026-07-15"
    # The day clocks go back (25 hours long) ends at 23:00 UTC.
    assert window.span(utc("2026-10-25T12:00:00Z")).end == utc("2026-10-25T23:00:00Z")


def test_iso_week_starts_on_monday_and_year_end_uses_iso_year():
    window = calendar("week", tz="UTC")
    assert window.span(utc("2026-11-29T23:59:59Z")).key == "2026-W48"  # Sunday
    assert window.span(utc("2026-11-30T00:00:00Z")).key == "2026-W49"  # Monday
    assert window.span(utc("2026-11-30T00:00:00Z")).end == utc("2026-12-07T00:00:00Z")
    assert window.span(utc("2027-01-01T12:00:00Z")).key == "2026-W53"


def test_december_month_ends_next_year():
    assert calendar("month").span(utc("2026-12-15T00:00:00Z")).end == utc("2027-01-01T00:00:00Z")


def test_rolling_window_counts_the_recent_steps():
    window = rolling(timedelta(hours=1), steps=4)  # 15-minute steps
    now = window.span(utc("2026-11-30T10:20:00Z"))
    later = window.span(utc("2026-11-30T11:20:00Z"))
    much_later = window.span(utc("2026-11-30T11:35:00Z"))
    assert now.key in later.counted_keys  # 1 h later the spend still counts (conservative)...
    assert now.key not in much_later.counted_keys  # ...but not after duration + one step
    assert len(now.counted_keys) == 5 and now.counted_keys[-1] == now.key
    assert now.end == utc("2026-11-30T10:30:00Z")


def test_lifetime_window_never_ends():
    span = lifetime().span(utc("2026-11-30T10:20:00Z"))
    assert (span.key, span.counted_keys, span.end) == ("lifetime", ("lifetime",), None)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800), ("1.5h", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "-1h", "0m", "1y", "abc"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_calendar_rejects_unknown_zone_and_unit():
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        calendar("month", tz="Mars/Olympus")
    with pytest.raises(ConfigError, match="fortnight"):
        calendar("fortnight")


def test_selector_matches_values_and_lists():
    selector = {"gen_ai.provider.name": "openai", "gen_ai.request.model": ["gpt-4o", "o3"]}
    budget = Budget("b", "10", lifetime(), selector=selector)
    assert budget.matches({"gen_ai.provider.name": "openai", "gen_ai.request.model": "o3"})
    assert not budget.matches({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"})
    assert not budget.matches({"gen_ai.request.model": "o3"})
    assert Budget("all", "10", lifetime()).matches({})


def test_per_partitions_by_attribute_or_trace():
    by_tenant = Budget("t", "10", lifetime(), per="tenant.id")
    assert by_tenant.key_for({"tenant.id": "acme"}) == "acme"
    assert by_tenant.key_for({}) == "(unattributed)"
    assert Budget("r", "10", lifetime(), per="trace").key_for({}, trace_id="abc123") == "abc123"
    assert Budget("g", "10", lifetime()).key_for({"tenant.id": "acme"}) == ""


def test_default_thresholds_warn_at_80_and_95_and_block_at_100():
    budget = Budget("b", "100", lifetime())
    assert [(t.at, t.action.kind) for t in budget.thresholds] == [
        (Decimal("0.8"), "warn"),
        (Decimal("0.95"), "warn"),
        (Decimal("1"), "block"),
    ]
    assert budget.hard_limit_nanos == 100 * 10**9


def test_a_block_at_100_percent_is_added_when_none_is_given():
    budget = Budget("b", "10", lifetime(), thresholds=[(0.5, warn()), (0.9, downgrade("gpt-4o-mini"))])
    assert [t.action.kind for t in budget.thresholds] == ["warn", "downgrade", "block"]
    assert budget.action_at(int(9.5e9)).action == downgrade("gpt-4o-mini")
    assert budget.action_at(int(6e9)).action == warn()
    assert budget.action_at(int(4e9)) is None


def test_an_earlier_block_lowers_the_hard_limit():
    budget = Budget("b", "10", lifetime(), thresholds=[Threshold("0.9", block()), (0.5, throttle(2))])
    assert budget.hard_limit_nanos == 9 * 10**9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"id": ""}, "id"),
        ({"limit_usd": "ten"}, "limit_usd"),
        ({"limit_usd": "-1"}, "zero or more"),
        ({"window": "month"}, "window"),
        ({"thresholds": [(0, warn())]}, "positive"),
        ({"thresholds": [(0.5, "explode")]}, "explode"),
        ({"selector": ["tenant.id"]}, "selector"),
    ],
)
def test_budget_validation(kwargs, message):
    args = {"id": "b", "limit_usd": "10", "window": lifetime(), **kwargs}
    with pytest.raises(ConfigError, match=message):
        Budget(**args)


def test_action_validation():
    with pytest.raises(ConfigError, match="model"):
        downgrade("")
    with pytest.raises(ConfigError, match="seconds"):
        throttle(0)
