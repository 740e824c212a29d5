"""Budgets: spending limits that hold an estimate before a call and settle its cost after.

    from otel_ai_cost.budgets import Budget, BudgetBook, calendar, warn, downgrade

    book = BudgetBook([Budget("tenants", "100", calendar("month", tz="Europe/Paris"), per="tenant.id")],
                      SQLiteBudgetStore("budgets.db"))
    reservation = book.reserve({"tenant.id": "acme", "gen_ai.request.model": "gpt-4o"}, estimate="0.04")
    if not reservation.decision.allowed:
        raise reservation.decision.error()
    ...
    book.settle(reservation, actual="0.031")

Operators change budgets at run time through the store, from ``otel-ai-cost budget ...`` or the
book: ``set_limit``, ``freeze`` / ``unfreeze``, ``adjust``, ``reset``. Every book on the store applies
limits and freezes within its ``override_refresh`` (1 s by default).
"""
from ._book import BudgetBook
from ._config import (
    BudgetConfig,
    default_store_url,
    load_budget_config,
    load_budget_config_or_refuse,
    open_store,
    parse_budget_config,
)
from ._decision import BudgetOutcome, BudgetUsage, Decision, Reservation
from ._enforcer import BudgetEnforcer, Hold
from ._memory import MemoryBudgetStore
from ._model import Action, Budget, Threshold, block, downgrade, throttle, warn
from ._resilient import ResilientStore
from ._sqlite import SQLiteBudgetStore
from ._store import (
    ALL_KEYS,
    LEDGER_KINDS,
    BudgetStore,
    Control,
    HoldInfo,
    HoldRequest,
    LedgerEntry,
    ReserveResult,
    Spend,
    StoreUnavailableError,
)
from ._unknown import (
    DEFAULT_UNKNOWN_MODEL,
    UnknownModelPolicy,
    allow_unknown,
    block_unknown,
    price_unknown_as,
)
from ._windows import calendar, lifetime, rolling


def __getattr__(name: str) -> type:
    # The Redis store needs the optional `redis` client; import it only when asked for.
    if name == "RedisBudgetStore":
        from ._redis import RedisBudgetStore

        return RedisBudgetStore
    raise AttributeError(name)


__all__ = [
    "ALL_KEYS",
    "DEFAULT_UNKNOWN_MODEL",
    "LEDGER_KINDS",
    "Action",
    "Budget",
    "BudgetBook",
    "BudgetConfig",
    "BudgetEnforcer",
    "BudgetOutcome",
    "BudgetStore",
    "BudgetUsage",
    "Control",
    "Decision",
    "Hold",
    "HoldInfo",
    "HoldRequest",
    "LedgerEntry",
    "MemoryBudgetStore",
    "RedisBudgetStore",
    "Reservation",
    "ReserveResult",
    "ResilientStore",
    "SQLiteBudgetStore",
    "Spend",
    "StoreUnavailableError",
    "Threshold",
    "UnknownModelPolicy",
    "allow_unknown",
    "block",
    "block_unknown",
    "calendar",
    "default_store_url",
    "downgrade",
    "lifetime",
    "price_unknown_as",
    "load_budget_config",
    "load_budget_config_or_refuse",
    "open_store",
    "parse_budget_config",
    "rolling",
    "throttle",
    "warn",
]
