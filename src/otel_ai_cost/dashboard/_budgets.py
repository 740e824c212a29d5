"""The dashboard's budget panels: where each budget partition stands (as ``budget list`` reads it from
the store), its thresholds in USD, and its burn-down over the month: the spend by day from the
budget store's ledger (``budgets._report.build_report``, grouped by budget, partition and day) and
the month-end forecast of that spend (``ledger._report.forecast_amounts``, the report's method).

The budget definitions (limits, windows, thresholds) are in the configuration file (``--config``,
default ``$OTEL_AI_COST_CONFIG``); ``--budgets URL`` names the store instead of the file's
``store.url``. With a store and no configuration, the panels have the spend by budget and partition
but no limit.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .._grouping import NONE
from ..budgets._cli import _opened, _usage_rows
from ..budgets._config import BudgetConfig, load_budget_config, safe_url
from ..budgets._report import build_report
from ..budgets._windows import CalendarWindow
from ..config import ENV_CONFIG
from ..errors import ConfigError
from ..ledger._cli import forecast_record
from ..ledger._report import forecast_amounts


@dataclass(frozen=True)
class BudgetSource:
    """Where the budgets are: a configuration file, a store URL (overriding the file's), or both."""

    config_path: Optional[str] = None
    store_url: Optional[str] = None

    @classmethod
    def from_options(cls, config_path: Optional[str], store_url: Optional[str]) -> Optional["BudgetSource"]:
        path = config_path or os.environ.get(ENV_CONFIG) or None
        if path is None and not store_url:
            return None
        source = cls(path, store_url)
        source.config()  # bad input fails now, at start, naming the file or the option
        return source

    def config(self) -> BudgetConfig:
        if self.config_path is not None:
            config = load_budget_config(self.config_path)
        else:
            config = BudgetConfig(budgets=(), source="--budgets")
        if self.store_url:
            config = dataclasses.replace(config, store_url=self.store_url, base_dir=None)
        if config.store_url == "memory://":
            raise ConfigError(f"{config.source}: store.url: memory:// keeps the budgets inside one process, where "
                              "the dashboard cannot see them; use sqlite:///path/budgets.db or redis://host:6379/0")
        return config


def _month(now: datetime) -> Tuple[datetime, datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def _days(start: datetime, end: datetime) -> Iterator[datetime]:
    day = start
    while day < end:
        yield day
        day += timedelta(days=1)


def _burn(daily: Dict[str, Decimal], now: datetime) -> Dict[str, Any]:
    """The cumulative spend by day of the month up to today, and the forecast from today to the month's end."""
    start, end = _month(now)
    labels = [d.date().isoformat() for d in _days(start, end)]
    fc = forecast_amounts(((datetime.fromisoformat(day).replace(tzinfo=now.tzinfo).timestamp(), amount)
                           for day, amount in daily.items()), now)
    cumulative: List[Optional[Decimal]] = []
    running = Decimal(0)
    today = now.date().isoformat()
    for label in labels:
        if label > today:
            cumulative.append(None)
            continue
        running += daily.get(label, Decimal(0))
        cumulative.append(running)
    return {"labels": labels, "cumulative": cumulative, "today": today, "forecast": forecast_record(fc)}


def _thresholds(budget: Any, limit: Decimal) -> List[Dict[str, Any]]:
    return [{"at": t.at, "action": t.action.kind, "model": t.action.model, "amount": t.at * limit}
            for t in sorted(budget.thresholds, key=lambda t: t.at)]


def budget_panels(source: BudgetSource, now: datetime, tz: str) -> Dict[str, Any]:
    """Every budget partition of the store: usage, thresholds, burn-down (see the module docstring)."""
    config = source.config()
    start, _ = _month(now)
    with _opened(config) as store:
        usage = _usage_rows(config, store, config.budgets)
        report = build_report(store, start.timestamp(), now.timestamp(), ["budget", "key", "day"], tz,
                              per={b.id: b.per for b in config.budgets})
    daily: Dict[Tuple[str, str], Dict[str, Decimal]] = {}
    for spent in report.rows:
        budget_id, key, day = spent.group
        spend = daily.setdefault((budget_id, key), {})
        spend[day] = spend.get(day, Decimal(0)) + spent.spend + spent.adjusted
    budgets = {b.id: b for b in config.budgets}
    panels = []
    seen = set()
    for row in usage:
        budget = budgets[row["budget"]]
        key = row["key"] if budget.per is not None and row["key"] != "(none yet)" else NONE
        seen.add((budget.id, key))
        monthly = isinstance(budget.window, CalendarWindow) and budget.window.unit == "month"
        panels.append({
            **{name: row[name] for name in ("budget", "window", "per", "key", "limit", "spent", "reserved",
                                             "remaining", "used", "status")},
            "monthly": monthly, "thresholds": _thresholds(budget, row["limit"]),
            "burn": _burn(daily.get((budget.id, key), {}), now),
        })
    for (budget_id, key), spend in sorted(daily.items()):  # spend of budgets the configuration does not define
        if (budget_id, key) not in seen:
            panels.append({"budget": budget_id, "key": key, "per": None, "window": None, "limit": None,
                           "spent": None, "reserved": None, "remaining": None, "used": None, "status": "not configured",
                           "monthly": False, "thresholds": [], "burn": _burn(spend, now)})
    return {"store": safe_url(config.store_url), "config": source.config_path, "panels": panels}
