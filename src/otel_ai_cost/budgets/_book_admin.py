"""The operators' changes of a book's budgets: limits, freezes, spend corrections, and the budgets'
partitions. Each change is written to the store (and its ledger) at once, so that every book on the
store applies it within its ``override_refresh``; this process sees its own change at once."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ._model import Amount, Budget, from_nanos, signed_nanos, to_nanos
from ._store import ALL_KEYS, BudgetStore
from ._terms import ControlIndex
from ._windows import WindowSpan


class BookAdmin:
    """The operators' side of ``BudgetBook`` (which sets these attributes)."""

    budgets: Tuple[Budget, ...]
    store: BudgetStore
    _by_id: Dict[str, Budget]
    _clock: Callable[[], float]
    _controls_state: Optional[Tuple[float, ControlIndex]]

    def budget(self, budget_id: str) -> Budget:
        """The budget with this id. Raises KeyError naming the budgets there are."""
        budget = self._by_id.get(budget_id)
        if budget is None:
            raise KeyError(f"no budget {budget_id!r}; the budgets are {', '.join(b.id for b in self.budgets)}")
        return budget

    def _control_key(self, budget: Budget, key: Optional[str]) -> str:
        if key is None or key == ALL_KEYS:
            return ALL_KEYS
        if budget.per is None:
            raise ValueError(f"budget {budget.id!r} has no partitions (no per:), so it takes no key")
        return key

    def _partition(self, budget: Budget, key: Optional[str]) -> str:
        if budget.per is None:
            return self._control_key(budget, key)
        if not key:
            raise ValueError(f"budget {budget.id!r} is per {budget.per}: name the partition (the key)")
        return key

    def _changed(self) -> None:
        self._controls_state = None  # this process sees its own change at once

    def _now_span(self, budget: Budget) -> WindowSpan:
        return budget.window.span(datetime.fromtimestamp(self._clock(), timezone.utc))

    def set_limit(
        self,
        budget_id: str,
        limit_usd: Optional[Amount],
        key: Optional[str] = None,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> Optional[Decimal]:
        """Use ``limit_usd`` instead of the configured limit (thresholds stay fractions of it) for the
        partition ``key``, or every partition (None); ``limit_usd`` None goes back to the
        configuration. Returns the previous override in USD, if any."""
        budget = self.budget(budget_id)
        where = self._control_key(budget, key)
        nanos = None if limit_usd is None else to_nanos(limit_usd)
        previous = self.store.set_limit(budget.id, where, nanos, attributes)
        self._changed()
        return None if previous is None else from_nanos(previous)

    def freeze(
        self, budget_id: str, key: Optional[str] = None, attributes: Optional[Mapping[str, Any]] = None
    ) -> bool:
        """Refuse every call of a partition, or of the whole budget (``key`` None). Returns whether it
        was frozen already."""
        return self._set_frozen(budget_id, key, True, attributes)

    def unfreeze(
        self, budget_id: str, key: Optional[str] = None, attributes: Optional[Mapping[str, Any]] = None
    ) -> bool:
        """Lift a freeze set with the same ``key``. Returns whether it was frozen."""
        return self._set_frozen(budget_id, key, False, attributes)

    def _set_frozen(
        self, budget_id: str, key: Optional[str], frozen: bool, attributes: Optional[Mapping[str, Any]]
    ) -> bool:
        budget = self.budget(budget_id)
        was = self.store.set_frozen(budget.id, self._control_key(budget, key), frozen, attributes)
        self._changed()
        return was

    def adjust(
        self,
        budget_id: str,
        amount_usd: Amount,
        key: Optional[str] = None,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> Decimal:
        """Add ``amount_usd`` (negative: a credit, refund or correction) to the spend of a partition in
        its current window. Spend never goes below zero: returns the change applied, in USD."""
        budget = self.budget(budget_id)
        partition = self._partition(budget, key)
        window_keys = self._now_span(budget).counted_keys
        applied = self.store.adjust(budget.id, partition, window_keys, signed_nanos(amount_usd), attributes)
        return from_nanos(applied)

    def reset(
        self, budget_id: str, key: Optional[str] = None, attributes: Optional[Mapping[str, Any]] = None
    ) -> Decimal:
        """Zero the spend of a partition in its current window (holds in flight stay). Returns the
        spend removed, in USD."""
        budget = self.budget(budget_id)
        partition = self._partition(budget, key)
        return from_nanos(self.store.reset(budget.id, partition, self._now_span(budget).counted_keys, attributes))

    def partitions(self, budget_id: str, at: Optional[datetime] = None) -> List[str]:
        """The partitions of a budget with spend or holds in its current window (or the one ``at``)."""
        budget = self.budget(budget_id)
        span = budget.window.span(at) if at is not None else self._now_span(budget)
        return self.store.partitions(budget.id, span.counted_keys)
