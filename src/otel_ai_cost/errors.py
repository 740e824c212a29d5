"""Errors raised to the user. Every message names what is wrong and where."""
from __future__ import annotations

from decimal import Decimal
from typing import Optional

__all__ = ["BudgetExceededError", "CatalogError", "ConfigError"]


class ConfigError(ValueError):
    """Invalid configuration: a file, a key or an environment value. Raised at configuration time."""


class CatalogError(ConfigError):
    """A pricing catalog file is malformed. The message names the file, the key and the reason."""


class BudgetExceededError(Exception):
    """A call was refused before it was sent because a budget would be exceeded (or is frozen, or
    refuses a model it cannot price, or its store is unavailable and the book fails closed).

    ``decision`` is the decision that refused the call (a ``budgets.Decision``, or the decision of a
    ``before_request`` hook). ``budget_id``, ``key``, ``window_key`` and the USD amounts ``limit``,
    ``spent`` and ``reserved`` are those of the budget that decided, None when no budget did (the
    store was unavailable); ``estimate`` is the call's estimated cost in USD.
    """

    def __init__(
        self, message: str, decision: object = None, *, budget_id: Optional[str] = None, key: Optional[str] = None,
        window_key: Optional[str] = None, limit: Optional[Decimal] = None, spent: Optional[Decimal] = None,
        reserved: Optional[Decimal] = None, estimate: Optional[Decimal] = None,
    ) -> None:
        super().__init__(message)
        self.decision = decision
        self.budget_id, self.key, self.window_key = budget_id, key, window_key
        self.limit, self.spent, self.reserved, self.estimate = limit, spent, reserved, estimate
