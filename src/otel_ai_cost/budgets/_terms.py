"""A budget's terms in force: its limit (configured, or an operator's override) and thresholds as
spend levels, and the operators' controls (limits, freezes) indexed by budget."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Dict, Optional, Tuple

from ._model import NANOS_PER_USD, Budget, Threshold, from_nanos
from ._store import ALL_KEYS, Control, Controls


@dataclass(frozen=True)
class Terms:
    """A budget's limit in force and its thresholds as spend levels, in nano-dollars."""

    limit_usd: Decimal
    hard_limit: int  # the lowest block threshold
    overridden: bool
    # The other thresholds, lowest first, as spend levels in whole nano-dollars (rounded up: a projected
    # spend reaches a level when it reaches this).
    steps: Tuple[Tuple[int, Threshold], ...]

    @classmethod
    def of(cls, budget: Budget, limit_nanos: Optional[int] = None) -> "Terms":
        effective = budget if limit_nanos is None else dataclasses.replace(budget, limit_usd=from_nanos(limit_nanos))
        steps = tuple(
            (int((effective.limit_usd * t.at * NANOS_PER_USD).to_integral_value(rounding=ROUND_CEILING)), t)
            for t in effective.thresholds if t.action.kind != "block"
        )
        return cls(effective.limit_usd, effective.hard_limit_nanos, limit_nanos is not None, steps)

    def action_at(self, projected_nanos: int) -> Optional[Threshold]:
        """The highest non-block threshold a projected spend reaches (as ``Budget.action_at``)."""
        reached = None
        for level, threshold in self.steps:
            if projected_nanos >= level:
                reached = threshold
        return reached


class ControlIndex:
    """The controls in force, by budget: the whole budget's and each partition's."""

    def __init__(self, controls: Controls) -> None:
        self.by_budget: Dict[str, Tuple[Optional[Control], Dict[str, Control]]] = {}
        for (budget_id, key), control in controls.items():
            whole, keys = self.by_budget.setdefault(budget_id, (None, {}))
            if key == ALL_KEYS:
                self.by_budget[budget_id] = (control, keys)
            else:
                keys[key] = control

    def resolve(self, budget: Budget, key: str) -> Tuple[Optional[int], Tuple[str, ...]]:
        """The override limit (nano-dollars; None: the configured one) and the freezes of a partition."""
        entry = self.by_budget.get(budget.id)
        if entry is None:
            return None, ()
        whole, keys = entry
        own = keys.get(key) if budget.per is not None and key != ALL_KEYS else None
        limit = None
        if own is not None and own.limit is not None:
            limit = own.limit
        elif whole is not None:
            limit = whole.limit
        frozen_by = tuple(k for k, c in ((ALL_KEYS, whole), (key, own)) if c is not None and c.frozen)
        return limit, frozen_by


NO_CONTROLS = ControlIndex({})
