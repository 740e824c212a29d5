"""New models: a model a key (service, tenant, prompt) has never used, once the key is established
(``min_calls`` calls over ``min_age`` seconds); the finding compares the call's cost with the key's
usual cost per call. At most 64 models are remembered per key, and about ``max_entries`` keys."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ._baseline import score, severity
from ._finding import NEW_MODEL, Cause, Finding
from ._record import PROMPT, SERVICE, TENANT, CallRecord


class Usage:
    """The calls of one (dimension, value): how many, since when, with which models, log-cost mean."""

    __slots__ = ("calls", "first", "models", "log_cost")

    def __init__(self, calls: int, first: float, models: Set[str], log_cost: Optional[float]) -> None:
        self.calls, self.first, self.models, self.log_cost = calls, first, models, log_cost


class NewModelWatch:
    def __init__(self, dims: Sequence[str], min_calls: int, min_age: float, max_entries: int) -> None:
        # Checked in a fixed order (service, tenant, prompt): the first dimension that finds it is named.
        self.dims = tuple(d for d in (SERVICE, TENANT, PROMPT, *dims) if d in dims)
        self.min_calls, self.min_age, self.max_entries = min_calls, min_age, max_entries
        self.usage: Dict[Tuple[str, str], Usage] = {}
        self.generation = 0  # changes when entries are dropped or replaced (callers holding entries drop them)

    def entries(self, r: CallRecord) -> List[Usage]:
        """The usage entries of a call's dimensions (created as needed), for ``count``."""
        out = []
        for dim in self.dims:
            value = r.dims.get(dim)
            if value is None:
                continue
            entry = self.usage.get((dim, value))
            if entry is None:
                entry = self._new_entry((dim, value), r.time)
            out.append(entry)
        return out

    def count(self, entries: List[Usage], log_cost: Optional[float]) -> None:
        """A call of a (model, dims) seen before: its model is known to every entry; count the call."""
        for entry in entries:
            entry.calls += 1
            if log_cost is not None:
                mean = entry.log_cost
                entry.log_cost = log_cost if mean is None else mean + 0.02 * (log_cost - mean)

    def _new_entry(self, key: Tuple[str, str], now: float) -> Usage:
        if len(self.usage) > self.max_entries:
            self.usage.clear()  # rare: forget which models keys use rather than grow
            self.generation += 1
        entry = self.usage[key] = Usage(0, now, set(), None)
        return entry

    def observe(self, r: CallRecord, log_cost: Optional[float]) -> Optional[Finding]:
        found: Optional[Finding] = None
        for dim in self.dims:
            value = r.dims.get(dim)
            if value is None:
                continue
            entry = self.usage.get((dim, value))
            if entry is None:
                entry = self._new_entry((dim, value), r.time)
            entry.calls += 1
            models = entry.models
            if r.model not in models:
                established = entry.calls > self.min_calls and r.time - entry.first >= self.min_age
                if len(models) < 64:
                    models.add(r.model)
                if established and found is None:
                    mean = entry.log_cost
                    ratio = math.exp(log_cost - mean) if log_cost is not None and mean is not None else 1.0
                    baseline = math.exp(mean) if mean is not None else 0.0
                    found = Finding(NEW_MODEL, score(max(ratio, 1.0)), severity(ratio), Cause(dim, value, 1.0),
                                    "cost_per_call", r.cost or 0.0, baseline, f"*/{dim}={value}", r.time, r.trace_id,
                                    r.model, dict(r.dims))
            if log_cost is not None:
                mean = entry.log_cost
                entry.log_cost = log_cost if mean is None else mean + 0.02 * (log_cost - mean)
        return found

    def state(self, key: Tuple[str, str]) -> List[Any]:
        """The usage of ``key`` as JSON-able values (``restore`` reads them back)."""
        e = self.usage[key]
        return [e.calls, e.first, sorted(e.models), e.log_cost]

    def restore(self, key: Tuple[str, str], s: Sequence[Any]) -> bool:
        """Load saved usage unless this watch has seen more calls of ``key``; whether it was loaded."""
        mine = self.usage.get(key)
        if mine is not None and mine.calls >= s[0]:
            return False
        self.usage[key] = Usage(s[0], s[1], set(s[2]), s[3])
        self.generation += 1
        return True
