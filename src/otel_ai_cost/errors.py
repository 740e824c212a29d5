"""Errors raised to the user. Every message names what is wrong and where."""
from __future__ import annotations

__all__ = ["BudgetExceededError", "CatalogError", "ConfigError"]


class ConfigError(ValueError):
    """Invalid configuration: a file, a key or an environment value. Raised at configuration time."""


class CatalogError(ConfigError):
    """A pricing catalog file is malformed. The message names the file, the key and the reason."""


class BudgetExceededError(Exception):
    """A call was refused before it was sent because a budget would be exceeded."""
