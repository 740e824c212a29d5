"""The quiet lane: a call that takes no budget near a threshold, in a store that can check that and
hold in one step (the in-memory store), decided without the general path's per-call objects.

A lane is prepared once per set of matching budgets, partition keys and windows, while no operator
control applies to them: each budget's slot, the spend its calls may reach and still be allowed
with no threshold (``quiet_max``), and what the decision reports. The store holds the call on every
slot only if each stays at or below its ``quiet_max``; otherwise it changes nothing and the book
takes the general path, which decides (warn, downgrade, throttle, block) exactly as before.
"""
from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ._model import Budget
from ._store import Slot
from ._terms import Terms
from ._windows import WindowSpan


class QuietSlot(NamedTuple):
    """One budget's part of a lane, as the store reads it."""

    slot: Slot
    counted: Tuple[str, ...]  # the window keys whose spend and holds count (HoldRequest.counted)
    prune: Optional[Tuple[str, int]]  # as HoldRequest.prune
    quiet_max: int  # the highest spend + holds + amount that reaches no threshold, in nano-dollars
    on_expired: str  # as HoldRequest.on_expired


# The store's hold_quiet(lane slots, amount, reservation id, ttl, attributes): each slot's (spend, holds), or None.
HoldQuiet = Callable[[Sequence[QuietSlot], int, str, float, Dict[str, Any]], Optional[List[Tuple[int, int]]]]


class QuietOutcome(NamedTuple):
    """What a budget of a lane reports in its BudgetOutcome (besides the spend), and on the span."""

    budget: Budget
    key: str
    window_key: str
    window_end: Optional[datetime]
    limit: Decimal
    limit_float: float  # float(limit): the span attribute


class Lane(NamedTuple):
    budgets: Tuple[Budget, ...]  # the matching budgets this lane was made for (compared by identity)
    since: float  # the lane holds for since <= now < until (the windows it was made in)
    until: float
    slots: Tuple[QuietSlot, ...]
    outcomes: Tuple[QuietOutcome, ...]
    held: Tuple[Slot, ...]  # Reservation.slots


def quiet_max(terms: Terms) -> int:
    """The highest projected spend at which a budget allows a call with no threshold: below its lowest
    warn/downgrade/throttle level, and not past its hard limit."""
    if terms.steps:
        return min(terms.hard_limit, terms.steps[0][0] - 1)
    return terms.hard_limit


def make_lane(
    budgets: Tuple[Budget, ...],
    keys: Sequence[str],
    spans: Sequence[WindowSpan],
    terms: Sequence[Terms],
    default_on_expired: str,
    now: float,
) -> Lane:
    """The lane of ``budgets`` with these partition ``keys``, their window ``spans`` at ``now`` and
    base ``terms``. It holds from ``now`` until the first of the windows ends."""
    slots = []
    outcomes = []
    for budget, key, span, t in zip(budgets, keys, spans, terms):
        slot = (budget.id, key, span.key)
        slots.append(QuietSlot(slot, span.counted_keys or (span.key,), span.prune, quiet_max(t),
                               budget.on_expired_hold or default_on_expired))
        outcomes.append(QuietOutcome(budget, key, span.key, span.end, t.limit_usd, float(t.limit_usd)))
    until = min(math.inf if s.end is None else s.end.timestamp() for s in spans)
    return Lane(budgets, now, until, tuple(slots), tuple(outcomes), tuple(s.slot for s in slots))
