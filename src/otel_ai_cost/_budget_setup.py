"""The budgets an AICostSpanProcessor enforces: from code (``budgets`` + ``budget_store``, or a
ready ``budget_book``) or from the YAML configuration file. The budgets package is imported only
when there is a budget."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Tuple

from .errors import ConfigError

if TYPE_CHECKING:
    from .anomalies._span_feed import SpanFeed
    from .budgets import Budget, BudgetBook, BudgetConfig, BudgetStore
    from .budgets._anomaly_policy import AnomalyGate
    from .config import Settings


def resolve_budget_book(
    config: Optional["BudgetConfig"],
    budgets: Optional[Sequence["Budget"]],
    store: Optional["BudgetStore"],
    book: Optional["BudgetBook"],
) -> Optional["BudgetBook"]:
    """The budget book from code (``budget_book``, or ``budgets`` + ``budget_store``) or the file."""
    if book is not None:
        return book
    if budgets is None and (config is None or not config.budgets):
        return None  # no budget: the budgets package is not even imported
    from .budgets import BudgetBook

    if budgets is not None and config is not None and config.budgets:
        raise ConfigError(
            f"budgets are given both in code (AICostSpanProcessor(budgets=...)) and in {config.source}; "
            "keep one of the two (the file's store: section still applies to budgets given in code)"
        )
    if store is None:
        store = config.open_store() if config is not None else default_store()
    if config is None:
        assert budgets is not None
        return BudgetBook(budgets, store)
    return BudgetBook(
        budgets if budgets is not None else config.budgets, store,
        hold_ttl=config.hold_ttl, on_store_error=config.on_store_error, on_unknown_model=config.on_unknown_model,
        on_expired_hold=config.on_expired_hold,
    )


def default_store() -> "BudgetStore":
    """The store of budgets given in code without one: the SQLite file of ``default_store_url()``."""
    from .budgets import default_store_url, open_store

    return open_store(default_store_url())


def load_file_config(path: Optional[str]) -> Optional["BudgetConfig"]:
    """The parsed configuration file. Raises ConfigError naming the file, the key and the reason."""
    if not path:
        return None
    from .budgets import load_budget_config_or_refuse

    # A file that asks for on_store_error: closed refuses every call when it cannot be read (issue 8.2).
    return load_budget_config_or_refuse(path)


def resolve_anomalies(
    option: Any, policy: Any, settings: "Settings", config: Optional["BudgetConfig"],
    book: Optional["BudgetBook"], catalog: Any, meter_provider: Any = None,
) -> Tuple[Optional["SpanFeed"], Optional["AnomalyGate"]]:
    """The anomaly detector's span feed and the on_anomaly policy gate (``anomalies._wiring``), or
    (None, None) when nothing asks for them: the anomalies package is then not even imported."""
    from_file = config.on_anomaly if config is not None else None
    if option is None and policy is None and settings.anomalies is None and from_file is None:
        return None, None
    from .anomalies._wiring import resolve_anomalies as resolve

    return resolve(option, policy, settings, config, book, catalog, meter_provider)
