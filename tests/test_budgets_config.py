"""Budgets from YAML, and errors that name the file, the key path and the reason."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from otel_ai_cost.budgets import (
    MemoryBudgetStore,
    SQLiteBudgetStore,
    calendar,
    downgrade,
    lifetime,
    load_budget_config,
    open_store,
    rolling,
    throttle,
    warn,
)
from otel_ai_cost.budgets._resilient import unwrap
from otel_ai_cost.budgets._ttl import default_hold_ttl
from otel_ai_cost.errors import ConfigError

FULL = """
budgets:
  - id: tenant-monthly
    limit_usd: 100
    window: {calendar: month, tz: Europe/Paris}
    per: tenant.id
    select: {gen_ai.provider.name: openai, gen_ai.request.model: [gpt-4o, o3]}
    thresholds:
      - {at: 0.8, action: warn}
      - {at: 0.9, action: downgrade, model: gpt-4o-mini}
      - {at: 0.95, action: throttle, seconds: 2}
      - {at: 1.0, action: block}
  - id: hourly
    limit_usd: "2.50"
    window: {rolling: 1h}
    shadow: true
  - id: forever
    limit_usd: 1000
    window: lifetime
store:
  url: sqlite://budgets.db
  hold_ttl: 5m
  on_store_error: closed
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otel-ai-cost.yaml"
    path.write_text(text)
    return path


def test_full_configuration(tmp_path):
    config = load_budget_config(write(tmp_path, FULL))
    monthly, hourly, forever = config.budgets
    assert monthly.window == calendar("month", "Europe/Paris") and monthly.per == "tenant.id"
    assert monthly.selector == {"gen_ai.provider.name": "openai", "gen_ai.request.model": ["gpt-4o", "o3"]}
    assert [t.action for t in monthly.thresholds][:3] == [warn(), downgrade("gpt-4o-mini"), throttle(2.0)]
    assert hourly.limit_usd == Decimal("2.50") and hourly.window == rolling(timedelta(hours=1)) and hourly.shadow
    assert forever.window == lifetime()
    assert (config.hold_ttl, config.on_store_error) == (300.0, "closed")
    book = config.book()
    assert isinstance(unwrap(book.store), SQLiteBudgetStore)  # inside the ResilientStore
    assert Path(book.store.path) == tmp_path / "budgets.db"  # relative to the configuration file
    assert book.reserve({"gen_ai.provider.name": "openai", "gen_ai.request.model": "o3"}, "1").decision.allowed
    book.store.close()


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config = load_budget_config(write(tmp_path, "budgets:\n  - {id: b, limit_usd: 1, window: lifetime}\n"))
    expected = "sqlite:///" + str(tmp_path / "state" / "otel-ai-cost" / "budgets.db").lstrip("/")
    # hold_ttl None: derived from the installed SDKs' request timeouts (issue 8.3d), not a flat 15 minutes.
    assert (config.store_url, config.hold_ttl, config.on_store_error) == (expected, None, "open")
    assert config.book().hold_ttl == default_hold_ttl()
    assert config.raise_on_block is False
    store = config.open_store()  # the embedded default: a SQLite file that survives restarts
    assert isinstance(unwrap(store), SQLiteBudgetStore)
    assert (tmp_path / "state" / "otel-ai-cost" / "budgets.db").exists()
    store.close()
    assert isinstance(open_store("memory://"), MemoryBudgetStore)


def test_unknown_top_level_key_and_raise_on_block(tmp_path):
    with pytest.raises(ConfigError, match=r"otel-ai-cost.yaml: budget: unknown key; expected one of budgets, "
                                          r"on_anomaly, on_expired_hold, on_unknown_model, raise_on_block, store"):
        load_budget_config(write(tmp_path, "budget: []\n"))
    with pytest.raises(ConfigError, match=r"otel-ai-cost.yaml: raise_on_block: must be true or false"):
        load_budget_config(write(tmp_path, "raise_on_block: maybe\n"))
    assert load_budget_config(write(tmp_path, "raise_on_block: true\n")).raise_on_block is True


BASE = "budgets:\n  - {id: ok, limit_usd: 1, window: lifetime}\n  - "


@pytest.mark.parametrize(
    "entry, where, reason",
    [
        ("{id: b, limit_usd: 1, window: {calendar: month, tz: Mars/Olympus}}", "budgets[1].window.tz", "Mars/Olympus"),
        ("{id: b, limit_usd: 1, window: {calendar: year}}", "budgets[1].window.calendar", "day, week, month"),
        ("{id: b, limit_usd: 1, window: {rolling: soon}}", "budgets[1].window.rolling", "s, m, h, d, w"),
        ("{id: b, limit_usd: 1, window: monthly}", "budgets[1].window", "calendar"),
        ("{id: b, limit_usd: lots, window: lifetime}", "budgets[1].limit_usd", "number"),
        ("{id: b, limit_usd: -5, window: lifetime}", "budgets[1].limit_usd", "zero or more"),
        ("{id: b, window: lifetime}", "budgets[1].limit_usd", "missing"),
        ("{id: ok, limit_usd: 1, window: lifetime}", "budgets[1].id", "already the id of budgets[0]"),
        ("{id: b, limit_usd: 1, window: lifetime, shadow: maybe}", "budgets[1].shadow", "true or false"),
        ("{id: b, limit_usd: 1, window: lifetime, selct: {}}", "budgets[1].selct", "unknown key"),
        ("{id: b, limit_usd: 1, window: lifetime, select: {tenant.id: []}}",
         "budgets[1].select.tenant.id", "non-empty"),
        ("{id: b, limit_usd: 1, window: lifetime, thresholds: [{at: 0.8, action: panic}]}",
         "budgets[1].thresholds[0].action", "panic"),
        ("{id: b, limit_usd: 1, window: lifetime, thresholds: [{at: 0.8, action: downgrade}]}",
         "budgets[1].thresholds[0].model", "model"),
        ("{id: b, limit_usd: 1, window: lifetime, thresholds: [{at: 0.8, action: throttle}]}",
         "budgets[1].thresholds[0].seconds", "seconds"),
        ("{id: b, limit_usd: 1, window: lifetime, thresholds: [{at: 0, action: warn}]}",
         "budgets[1].thresholds[0].at", "positive"),
        ("{id: b, limit_usd: 1, window: lifetime, thresholds: [{action: warn}]}",
         "budgets[1].thresholds[0].at", "missing"),
    ],
)
def test_budget_errors_name_file_key_and_reason(tmp_path, entry, where, reason):
    path = write(tmp_path, BASE + entry + "\n")
    with pytest.raises(ConfigError) as info:
        load_budget_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {where}: "), message
    assert reason in message


@pytest.mark.parametrize(
    "store, where, reason",
    [
        ("{url: postgres://db}", "store.url", "postgres://db"),
        ("{url: memory://, hold_ttl: forever}", "store.hold_ttl", "forever"),
        ("{url: memory://, on_store_error: sometimes}", "store.on_store_error", "open or closed"),
        ("{uri: memory://}", "store.uri", "unknown key"),
    ],
)
def test_store_errors(tmp_path, store, where, reason):
    path = write(tmp_path, f"store: {store}\n")
    with pytest.raises(ConfigError, match=f"^{path}: {where}: .*{reason}"):
        load_budget_config(path)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_budget_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_budget_config(write(tmp_path, "budgets: [\n"))
    with pytest.raises(ConfigError, match=r"budgets: expected a list"):
        load_budget_config(write(tmp_path, "budgets: {id: b}\n"))


def test_open_store_urls(tmp_path):
    assert isinstance(open_store("memory://"), MemoryBudgetStore)
    store = open_store(f"sqlite://{tmp_path}/b.db")
    assert store.path == f"{tmp_path}/b.db"
    store.close()
    with pytest.raises(ConfigError, match="sqlite:///absolute"):
        open_store("sqlite://")


# --- issue 8.3d: the default hold_ttl comes from the SDKs' request timeouts ------------------------


def test_sdk_timeouts_match_the_installed_sdks():
    import anthropic._constants
    import groq._constants
    import openai._constants

    from otel_ai_cost.budgets._ttl import SDK_TIMEOUTS

    for name, module in (("openai", openai._constants), ("anthropic", anthropic._constants), ("groq", groq._constants)):
        expected = SDK_TIMEOUTS[name]
        assert module.DEFAULT_TIMEOUT.read == expected.timeout, name
        assert module.DEFAULT_MAX_RETRIES + 1 == expected.attempts, name
        assert module.MAX_RETRY_DELAY == expected.backoff, name


def test_default_hold_ttl_is_the_slowest_default_call_plus_a_margin():
    from otel_ai_cost.budgets._ttl import MARGIN, default_hold_ttl, hold_ttl_for, stale_after

    # openai: 3 attempts of 600 s, 2 waits of at most 8 s between them.
    assert stale_after(["openai"]) == 3 * 600 + 2 * 8
    assert default_hold_ttl(["openai"]) == 3 * 600 + 2 * 8 + MARGIN
    assert default_hold_ttl(["groq"]) == 3 * 60 + 2 * 8 + MARGIN  # 4 min, not 15
    assert default_hold_ttl() == max(default_hold_ttl([m]) for m in ("openai", "anthropic", "groq", "botocore"))
    assert hold_ttl_for(timeout=20, max_retries=0) == 20 + MARGIN  # a client with timeout=20, max_retries=0
    from otel_ai_cost.budgets import BudgetBook

    assert BudgetBook([]).hold_ttl == default_hold_ttl()


def test_hold_ttl_auto_and_durations(tmp_path):
    config = load_budget_config(write(tmp_path, "store:\n  hold_ttl: auto\n  deadline: 250ms\n"))
    assert (config.hold_ttl, config.deadline) == (None, 0.25)
    with pytest.raises(ConfigError, match=r"store.deadline: must be more than 0"):
        load_budget_config(write(tmp_path, "store:\n  deadline: 0\n"))
    with pytest.raises(ConfigError, match=r"store.failures: must be a positive integer"):
        load_budget_config(write(tmp_path, "store:\n  failures: none\n"))
    with pytest.raises(ConfigError, match=r"store.journal: must be auto, false or a file path"):
        load_budget_config(write(tmp_path, "store:\n  journal: 3\n"))
