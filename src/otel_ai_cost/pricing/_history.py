"""Dated prices in a catalog file: checks of ``effective_from`` and ``price_history``.

A model entry's ``prices`` (and tiers) are in force from its ``effective_from``; ``price_history`` lists the
earlier periods, oldest first, each in force from its own ``effective_from`` until the next one starts.
``ModelPrice.at`` picks the period for a call's time.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable, List, Mapping, Optional, Tuple


def _is_day(value: Any) -> bool:
    try:
        return isinstance(value, str) and len(value) == 10 and _dt.date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def price_periods(entry: Mapping[str, Any], i: int) -> List[Tuple[List[Any], Mapping[str, Any]]]:
    """(JSON path, period) of the price periods of model entry ``i``: the entry itself (its current
    prices), then each ``price_history`` item; only the ones that are objects."""
    found: List[Tuple[List[Any], Mapping[str, Any]]] = [(["models", i], entry)] if isinstance(entry, dict) else []
    history = entry.get("price_history")
    for k, period in enumerate(history if isinstance(history, list) else ()):
        if isinstance(period, dict):
            found.append((["models", i, "price_history", k], period))
    return found


def date_errors(entry: Mapping[str, Any], i: int) -> Iterable[Tuple[List[Any], str]]:
    """Dated prices: real calendar days, and price periods that start in order, one per day, none overlapping."""
    where = f"models[{i}]"
    hint = f" (model {entry.get('provider')}/{entry.get('id')})"
    for name in ("effective_date", "effective_from"):
        value = entry.get(name)
        if isinstance(value, str) and not _is_day(value):
            yield ["models", i, name], f"{value!r} is not a calendar date YYYY-MM-DD{hint}"
    history = entry.get("price_history")
    if not isinstance(history, list) or not history:
        return
    current = entry.get("effective_from")
    if current is None:
        yield ["models", i, "effective_from"], (
            f"required when price_history is given: the day the current prices took effect{hint}")
    previous: Optional[str] = None
    for k, period in enumerate(history):
        start = period.get("effective_from") if isinstance(period, dict) else None
        if not isinstance(start, str) or not _is_day(start):
            if isinstance(start, str):  # a missing or non-string date is the schema's error
                yield ["models", i, "price_history", k, "effective_from"], (
                    f"{start!r} is not a calendar date YYYY-MM-DD{hint}")
            continue
        key = ["models", i, "price_history", k, "effective_from"]
        if previous is not None and start <= previous:
            yield key, (f"price periods overlap: {where}.price_history[{k}] starts {start}, not after the "
                        f"period before it ({previous}); list price_history oldest first, one period per day{hint}")
        if isinstance(current, str) and _is_day(current) and start >= current:
            yield key, (f"price periods overlap: {where}.price_history[{k}] starts {start}, not before the "
                        f"current prices' effective_from {current}{hint}")
        previous = start
