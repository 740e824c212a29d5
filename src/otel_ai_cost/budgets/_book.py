"""The budget book: decides whether a call may go ahead, holds its estimate, settles its cost.

Operators change budgets at run time through the store (``otel-ai-cost budget set|freeze|...``): a
limit that replaces the configured one, a freeze. The book reads them from the store at most once per
``override_refresh`` seconds, so a change made by another process applies within that time.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .. import _semconv as sc
from ..errors import ConfigError
from ._book_admin import BookAdmin
from ._decision import BudgetOutcome, BudgetUsage, Decision, QuietDecision, Reservation, usd_of
from ._model import (
    CHARGE_ESTIMATE,
    Amount,
    Budget,
    check_on_expired_hold,
    from_nanos,
    prepared_selector,
    selected,
    to_nanos,
)
from ._quiet import HoldQuiet, Lane, make_lane
from ._store import MAX_NANOS, BudgetStore, HoldRequest, LedgerEntry, Slot, StoreUnavailableError, new_id
from ._terms import NO_CONTROLS, ControlIndex, Terms
from ._unknown import DEFAULT_UNKNOWN_MODEL, UnknownCall, UnknownModelPolicy, strictest, warned_models
from ._windows import WindowSpan

_logger = logging.getLogger(__name__)

# Worst first: when several budgets decide, the call gets the strictest decision.
_SEVERITY = {"allow": 0, "warn": 1, "throttle": 2, "downgrade": 3, "block": 4}
DEFAULT_LEDGER_ATTRIBUTES = (
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    "tenant.id",
    "enduser.id",
)


class _Planned(NamedTuple):  # a tuple: built on every call
    budget: Budget
    request: HoldRequest
    window_end: Optional[datetime]
    terms: Terms
    frozen_by: Tuple[str, ...] = ()


_MISSING: Any = object()
_MATCHED_CAP = 4096
class BudgetBook(BookAdmin):
    """Budgets over one store.

    ``reserve(attributes, estimate)`` returns a Reservation whose ``decision`` says what to do with
    the call; a blocked call holds nothing. ``on_store_error``: ``"open"`` lets calls through when
    the store fails, ``"closed"`` blocks them. ``override_refresh``: how long (seconds, by
    ``clock``) the operators' controls read from the store are used before they are read again; 0
    reads them on every call. ``on_unknown_model``: what a call to a model the catalog does not
    know counts, for budgets without their own policy (default ``DEFAULT_UNKNOWN_MODEL``: priced
    at a stated fallback, warned once per model). ``on_expired_hold``: what a hold that reaches
    ``hold_ttl`` unsettled does, for budgets without their own: ``charge_estimate`` (the default:
    its amount counts as spend in the window it was taken in) or ``release`` (dropped).
    """

    def __init__(
        self,
        budgets: Iterable[Budget],
        store: Optional[BudgetStore] = None,
        *,
        clock: Callable[[], float] = time.time,
        hold_ttl: Optional[float] = None,
        on_store_error: str = "open",
        ledger_attributes: Sequence[str] = DEFAULT_LEDGER_ATTRIBUTES,
        override_refresh: float = 1.0,
        on_unknown_model: Optional[UnknownModelPolicy] = None,
        on_expired_hold: str = CHARGE_ESTIMATE,
    ) -> None:
        from ._memory import MemoryBudgetStore

        self.budgets = tuple(budgets)
        ids = [b.id for b in self.budgets]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigError(f"budget ids must be unique; repeated: {', '.join(duplicates)}")
        if on_store_error not in ("open", "closed"):
            raise ConfigError(f"on_store_error must be 'open' or 'closed', not {on_store_error!r}")
        if hold_ttl is None:
            from ._ttl import default_hold_ttl

            hold_ttl = default_hold_ttl()
        if not hold_ttl > 0:
            raise ConfigError(f"hold_ttl must be a positive number of seconds, not {hold_ttl!r}")
        if isinstance(override_refresh, bool) or not (
            isinstance(override_refresh, (int, float)) and 0 <= override_refresh < math.inf
        ):
            raise ConfigError(f"override_refresh must be 0 or more seconds, not {override_refresh!r}")
        if on_unknown_model is not None and not isinstance(on_unknown_model, UnknownModelPolicy):
            from ._unknown import parse_unknown_model

            on_unknown_model = parse_unknown_model(on_unknown_model)
        self.on_unknown_model: UnknownModelPolicy = on_unknown_model or DEFAULT_UNKNOWN_MODEL
        try:
            self.on_expired_hold = check_on_expired_hold(on_expired_hold)
        except ValueError as exc:
            raise ConfigError(f"on_expired_hold {exc}") from None
        self.store = store if store is not None else MemoryBudgetStore(clock=clock)
        self._clock = clock
        self.hold_ttl = float(hold_ttl)
        self.on_store_error = on_store_error
        keys = set(ledger_attributes)
        for b in self.budgets:
            keys |= set(b.selector or {}) | ({b.per} if b.per else set())
        self._ledger_keys = keys
        self.override_refresh = float(override_refresh)
        self._by_id = {b.id: b for b in self.budgets}
        self._base_terms = {b.id: Terms.of(b) for b in self.budgets}
        self._override_terms: Dict[Tuple[str, int], Terms] = {}
        # (read at, controls) or None; replaced whole, so readers need no lock.
        self._controls_state: Optional[Tuple[float, ControlIndex]] = None
        self._controls_lock = threading.Lock()
        # budget id -> (computed at, end, span): a window span holds from any instant in it to its end.
        self._spans: Dict[str, Tuple[float, float, WindowSpan]] = {}
        # Budget matching, prepared once: each budget's selector as (key, the allowed values as strings),
        # and the budgets that match, by the values of every selector key (when they are all strings).
        self._selectors = tuple((b, prepared_selector(b.selector)) for b in self.budgets)
        self._selector_keys = tuple(sorted({k for b in self.budgets for k in (b.selector or {})}))
        self._matched: Dict[Tuple[Any, ...], Tuple[Budget, ...]] = {}
        # The quiet lane (see _quiet): only with the in-memory store itself (a subclass may change what
        # its reserve does).
        store = self.store
        self._hold_quiet: Optional[HoldQuiet] = (
            store.hold_quiet if isinstance(store, MemoryBudgetStore) and type(store) is MemoryBudgetStore else None
        )
        self._lanes: Dict[Any, Lane] = {}

    # Operators' controls, read from the store.

    def _controls(self, now: float) -> ControlIndex:
        state = self._controls_state
        if state is not None and 0 <= now - state[0] < self.override_refresh:
            return state[1]
        # One thread reads them again; the others go on with the last read meanwhile (or, before the
        # first read or with a refresh of 0, wait and read them too).
        if not self._controls_lock.acquire(blocking=state is None or self.override_refresh == 0):
            return state[1]  # type: ignore[index]  # not None: only a book with a read does not wait
        try:
            state = self._controls_state
            if state is not None and 0 <= now - state[0] < self.override_refresh:
                return state[1]
            reader = getattr(self.store, "controls", None)
            index = state[1] if state is not None else NO_CONTROLS
            if reader is not None:
                try:
                    controls = reader()
                    index = ControlIndex(controls) if controls else NO_CONTROLS
                except Exception:
                    _logger.warning("budget store failed to read the budget controls; using the last read",
                                    exc_info=True)
            self._controls_state = (now, index)
            return index
        finally:
            self._controls_lock.release()

    def _terms(self, budget: Budget, limit_nanos: Optional[int]) -> Terms:
        if limit_nanos is None:
            return self._base_terms[budget.id]
        terms = self._override_terms.get((budget.id, limit_nanos))
        if terms is None:
            if len(self._override_terms) > 1024:
                self._override_terms.clear()
            terms = self._override_terms[(budget.id, limit_nanos)] = Terms.of(budget, limit_nanos)
        return terms

    def _span(self, budget: Budget, now: float) -> WindowSpan:
        cached = self._spans.get(budget.id)
        if cached is not None and cached[0] <= now < cached[1]:
            return cached[2]
        span = budget.window.span(datetime.fromtimestamp(now, timezone.utc))
        self._spans[budget.id] = (now, span.end.timestamp() if span.end is not None else math.inf, span)
        return span

    def _matching(self, attributes: Mapping[str, Any]) -> Tuple[Budget, ...]:
        """The budgets whose selector matches these attributes (as ``Budget.matches``), cached by the
        values of the selector keys when they are strings (the usual case)."""
        get = attributes.get
        values = []
        for k in self._selector_keys:  # a plain loop: no comprehension frames on the call's path
            v = get(k, _MISSING)
            if type(v) is not str and v is not _MISSING:
                return self._match(attributes)
            values.append(v)
        key = tuple(values)
        found = self._matched.get(key)
        if found is None:
            if len(self._matched) >= _MATCHED_CAP:
                self._matched.clear()
            found = self._matched[key] = self._match(attributes)
        return found

    def _match(self, attributes: Mapping[str, Any]) -> Tuple[Budget, ...]:
        return tuple(b for b, selector in self._selectors if selected(selector, attributes))

    def _plan(self, attributes: Mapping[str, Any], estimate: int, trace_id: Optional[str]) -> List[_Planned]:
        now = self._clock()
        controls = self._controls(now)
        spans = self._spans
        planned = []
        for budget in self._matching(attributes):
            cached = spans.get(budget.id)  # as _span, without its call on the usual path
            span = cached[2] if cached is not None and cached[0] <= now < cached[1] else self._span(budget, now)
            key = "" if budget.per is None else budget.key_for(attributes, trace_id)
            if controls.by_budget:
                limit_nanos, frozen_by = controls.resolve(budget, key)
                terms = self._terms(budget, limit_nanos)
            else:
                frozen_by, terms = (), self._base_terms[budget.id]
            limit = None if budget.shadow else terms.hard_limit
            frozen = bool(frozen_by) and not budget.shadow
            request = HoldRequest(budget.id, key, span.key, limit, estimate, span.counted_keys, span.prune, frozen,
                                  budget.on_expired_hold or self.on_expired_hold)
            planned.append(_Planned(budget, request, span.end, terms, frozen_by))
        return planned

    def reserve(
        self,
        attributes: Mapping[str, Any],
        estimate: Amount,
        *,
        trace_id: Optional[str] = None,
        unknown: Optional[UnknownCall] = None,
    ) -> Reservation:
        """Decide on a call with these attributes (span + resource + baggage) and estimated cost in USD.

        ``trace_id`` partitions the budgets with ``per: trace``. ``unknown``: the call's model is not
        in the catalog; each budget's ``on_unknown_model`` policy decides what it holds (and whether
        it refuses the call). A negative or non-numeric estimate raises ValueError.
        """
        estimate_nanos = to_nanos(estimate)
        hold_quiet = self._hold_quiet
        if unknown is None and hold_quiet is not None and estimate_nanos <= MAX_NANOS:
            quiet = self._reserve_quiet(hold_quiet, attributes, estimate_nanos, trace_id)
            if quiet is not None:
                return quiet
        estimate_usd = held_usd = from_nanos(estimate_nanos)
        planned = self._plan(attributes, estimate_nanos, trace_id)
        rid = new_id()
        if not planned:
            return Reservation(rid, Decision("allow", estimate_usd))
        policies: Tuple[UnknownModelPolicy, ...] = ()
        applied: Optional[UnknownModelPolicy] = None
        if unknown is not None:
            planned, policies = self._price_unknown(planned, unknown, estimate_nanos)
            applied = strictest(p for p, pl in zip(policies, planned) if not pl.budget.shadow) or strictest(policies)
            estimate_usd = from_nanos(max(p.request.amount for p in planned))
        audit = self._audit(attributes, trace_id)
        if applied is not None:
            audit["unknown_model"] = applied.action
            if applied.priced_as is not None:
                audit["priced_as"] = applied.priced_as
        requests = [p.request for p in planned]
        slots = tuple([(r.budget_id, r.key, r.window_key) for r in requests])
        if unknown is not None and any(
            pol.action == "block" and not p.budget.shadow for p, pol in zip(planned, policies)
        ):
            return self._refuse_unknown(rid, planned, policies, unknown, audit, estimate_usd, applied)
        try:
            result = self.store.reserve(requests, rid, self.hold_ttl, audit)
        except Exception as exc:
            if not isinstance(exc, StoreUnavailableError):  # that one's store logs each change of state once
                _logger.warning("budget store failed; failing %s", self.on_store_error, exc_info=True)
            action = "allow" if self.on_store_error == "open" else "block"
            detail = str(exc) or type(exc).__name__
            decision = Decision(action, estimate_usd, reason="store_error", unknown=applied,
                                unknown_model=unknown.model if unknown else None, detail=detail)
            return Reservation(rid, decision, slots, unknown=unknown, policies=policies)
        outcomes = []
        notable = False  # any decision besides allow, to log
        refused = result.refused
        for i, (p, usage) in enumerate(zip(planned, result.usage)):
            budget, terms, amount = p.budget, p.terms, p.request.amount
            projected = usage.spent + usage.reserved + amount
            action, model, delay, level = "allow", None, None, None
            if (refused and i in refused) or (budget.shadow and (
                p.frozen_by or (bool(policies) and policies[i].action == "block") or projected > terms.hard_limit
            )):
                action = "block"
            elif terms.steps and projected >= terms.steps[0][0]:
                threshold = terms.action_at(projected)
                if threshold is not None:
                    action, model, delay = threshold.action.kind, threshold.action.model, threshold.action.seconds
                    level = threshold.at
            notable = notable or action != "allow"
            outcomes.append(
                BudgetOutcome(
                    budget, p.request.key, p.request.window_key, p.window_end, action, terms.limit_usd,
                    usd_of(usage.spent), usd_of(usage.reserved),
                    held_usd if amount == estimate_nanos else from_nanos(amount), model, delay, p.frozen_by, level,
                )
            )
        deciding = None
        if notable:
            enforced = [o for o in outcomes if not o.shadow and o.action != "allow"]
            deciding = max(
                enforced, key=lambda o: (_SEVERITY[o.action], o.frozen, o.spent + o.reserved - o.limit), default=None
            )
        reason = "frozen" if deciding is not None and deciding.frozen else None
        decision = Decision(
            deciding.action if deciding else "allow", estimate_usd, tuple(outcomes), deciding, reason,
            unknown=applied, unknown_model=unknown.model if unknown else None,
        )
        if notable:
            self._record_decisions(rid, outcomes, audit, blocked=not result.ok)
        return Reservation(rid, decision, slots, held=result.ok, unknown=unknown, policies=policies)

    def _audit(self, attributes: Mapping[str, Any], trace_id: Optional[str]) -> Dict[str, Any]:
        """The ledger attributes of a reservation: the ledger keys the call has, and its trace id."""
        audit: Dict[str, Any] = {}
        get = attributes.get
        for k in self._ledger_keys:
            v = get(k, _MISSING)
            if v is not _MISSING:
                audit[k] = v if type(v) is str else str(v)
        if trace_id is not None:
            audit["trace_id"] = trace_id
        return audit

    def _reserve_quiet(
        self, hold_quiet: HoldQuiet, attributes: Mapping[str, Any], estimate_nanos: int, trace_id: Optional[str]
    ) -> Optional[Reservation]:
        """The reservation of a call no budget is near a threshold for, without operators' controls on
        them (see _quiet); None: take the general path (nothing was held)."""
        now = self._clock()
        state = self._controls_state  # as _controls, without its call while the last read holds
        fresh = state is not None and 0 <= now - state[0] < self.override_refresh
        controls = state[1] if fresh and state is not None else self._controls(now)
        if controls.by_budget:
            return None
        budgets = self._matching(attributes)
        if not budgets:
            return None
        lane = self._lanes.get(id(budgets))
        if lane is None or lane.budgets is not budgets or not lane.since <= now < lane.until:
            lane = self._lane(budgets, attributes, trace_id, now)
        rid = new_id()
        usage = hold_quiet(lane.slots, estimate_nanos, rid, self.hold_ttl, self._audit(attributes, trace_id))
        if usage is None:
            return None
        return Reservation(rid, QuietDecision(from_nanos(estimate_nanos), lane.outcomes, usage), lane.held, held=True)

    def _lane(
        self, budgets: Tuple[Budget, ...], attributes: Mapping[str, Any], trace_id: Optional[str], now: float
    ) -> Lane:
        """The quiet lane of these budgets for this call's partitions, made if needed. A lane of budgets
        without ``per`` is kept under the id of their tuple, else under it and the partition keys."""
        keys = []
        for b in budgets:  # a plain loop, as _matching
            keys.append("" if b.per is None else b.key_for(attributes, trace_id))
        where: Any = id(budgets)
        if any(b.per is not None for b in budgets):
            where = (where, tuple(keys))
            lane = self._lanes.get(where)
            if lane is not None and lane.budgets is budgets and lane.since <= now < lane.until:
                return lane
        lane = make_lane(budgets, keys, [self._span(b, now) for b in budgets],
                         [self._base_terms[b.id] for b in budgets], self.on_expired_hold, now)
        if len(self._lanes) >= _MATCHED_CAP:
            self._lanes.clear()
        self._lanes[where] = lane  # holds ``budgets``: its id is not reused while the lane is kept
        return lane

    def _price_unknown(
        self, planned: List[_Planned], unknown: UnknownCall, estimate_nanos: int
    ) -> Tuple[List[_Planned], Tuple[UnknownModelPolicy, ...]]:
        """Each budget's policy for a call to an unknown model, and what it holds under it."""
        policies = []
        repriced = []
        for p in planned:
            policy = p.budget.on_unknown_model or self.on_unknown_model
            policies.append(policy)
            if policy.action == "price_as" and unknown.usage is not None:
                try:
                    amount = max(to_nanos(policy.cost(unknown.usage, unknown.catalog)), estimate_nanos)
                    p = p._replace(request=dataclasses.replace(p.request, amount=amount))
                except Exception:  # a price_as model gone from a reloaded catalog: hold the estimate
                    _logger.warning("could not price %r as %s", unknown.model, policy.describe(), exc_info=True)
            repriced.append(p)
        shown = strictest(policies)
        if shown is not None:
            what = {"block": "refuse", "allow": "let through, unmetered,"}.get(
                shown.action, f"price as {shown.priced_as}"
            )
            warned_models.warn(unknown.model, unknown.provider, what)
        return repriced, tuple(policies)

    def _refuse_unknown(
        self,
        rid: str,
        planned: Sequence[_Planned],
        policies: Sequence[UnknownModelPolicy],
        unknown: UnknownCall,
        audit: Mapping[str, Any],
        estimate_usd: Decimal,
        applied: Optional[UnknownModelPolicy],
    ) -> Reservation:
        """A budget refuses calls to models the catalog does not know: refuse without holding."""
        now = self._clock()
        outcomes = []
        entries = []
        for p, policy in zip(planned, policies):
            try:
                usage = self.store.spent(p.budget.id, p.request.key, p.request.counted)
                spent, reserved = usage.spent, usage.reserved
            except Exception:  # the refusal needs no store; the numbers are only for the span
                _logger.debug("budget store failed to read the spend of %s", p.budget.id, exc_info=True)
                spent = reserved = 0
            action = "block" if policy.action == "block" else "allow"
            outcome = BudgetOutcome(
                p.budget, p.request.key, p.request.window_key, p.window_end, action, p.terms.limit_usd,
                from_nanos(spent), from_nanos(reserved), from_nanos(p.request.amount), frozen_by=p.frozen_by,
            )
            outcomes.append(outcome)
            if action == "block":
                details = {**audit, "shadow": outcome.shadow, "reason": "unknown_model"}
                entries.append(LedgerEntry(now, "block", p.budget.id, p.request.key, p.request.window_key,
                                           p.request.amount, rid, details))
        try:
            self.store.record(entries)
        except Exception:
            _logger.warning("budget store failed to record decisions", exc_info=True)
        deciding = next(o for o in outcomes if o.action == "block" and not o.shadow)
        decision = Decision("block", estimate_usd, tuple(outcomes), deciding, "unknown_model",
                            unknown=applied, unknown_model=unknown.model)
        slots = tuple(p.request.slot for p in planned)
        return Reservation(rid, decision, slots, unknown=unknown, policies=tuple(policies))

    def _record_decisions(
        self, rid: str, outcomes: Sequence[BudgetOutcome], audit: Mapping[str, Any], blocked: bool
    ) -> None:
        # The store logs reserve and enforced blocks itself; the other decisions are logged here.
        now = self._clock()

        def worth_logging(o: BudgetOutcome) -> bool:
            if o.action == "block":
                return o.shadow  # the store logged the enforced blocks
            return o.action != "allow" and not blocked  # a refused call's warnings are moot

        entries = []
        for o in filter(worth_logging, outcomes):
            details = {**audit, "shadow": o.shadow}
            if o.frozen:
                details["frozen"] = True
            if o.model:
                details["model"] = o.model
            if o.delay:
                details["delay"] = o.delay
            entries.append(
                LedgerEntry(now, o.action, o.budget.id, o.key, o.window_key, to_nanos(o.estimate), rid, details)
            )
        if entries:
            try:
                self.store.record(entries)
            except Exception:
                _logger.warning("budget store failed to record decisions", exc_info=True)

    def usage(self, budget_id: str, key: str = "", at: Optional[datetime] = None) -> "BudgetUsage":
        """Where one partition of a budget stands now (or ``at``): limit in force, spend and holds in USD."""
        budget = self.budget(budget_id)
        now = self._clock()
        span = budget.window.span(at or datetime.fromtimestamp(now, timezone.utc))
        limit_nanos, frozen_by = self._controls(now).resolve(budget, key)
        terms = self._terms(budget, limit_nanos)
        usage = self.store.spent(budget.id, key, span.counted_keys)
        return BudgetUsage(
            budget, key, span.key, span.end, terms.limit_usd, from_nanos(usage.spent), from_nanos(usage.reserved),
            overridden=terms.overridden, frozen=bool(frozen_by),
        )

    def amounts(self, reservation: Reservation, actual: Optional[Amount], usage: Any = None) -> Dict[Slot, int]:
        """What the call counts in each budget it was held on, in nano-dollars.

        ``actual``: its cost in USD (None: it could not be priced). A call to a model the catalog
        does not know is counted by each budget's ``on_unknown_model`` policy from ``usage`` (the
        ``cost.Usage`` the response reported); a budget that refuses unknown models but whose
        refusal could not stop the call (shadow, another instrumentation's span) counts it at the
        default fallback price, so that its spend is never lost.
        """
        if actual is not None or not reservation.policies or reservation.unknown is None or usage is None:
            return dict.fromkeys(reservation.slots, to_nanos(actual) if actual is not None else 0)
        catalog = reservation.unknown.catalog
        amounts = {}
        for slot, policy in zip(reservation.slots, reservation.policies):
            counted = DEFAULT_UNKNOWN_MODEL if policy.action == "block" else policy
            amounts[slot] = to_nanos(counted.cost(usage, catalog))
        return amounts

    def settle(
        self,
        reservation: Reservation,
        actual: Optional[Amount],
        attributes: Optional[Mapping[str, Any]] = None,
        usage: Any = None,
    ) -> None:
        """Record the actual cost in USD of the call against every budget it was held on.

        ``actual`` None: the call could not be priced; a call to an unknown model is then counted
        from ``usage`` by the budgets' ``on_unknown_model`` policies (see ``amounts``).
        """
        if reservation.done or not reservation.slots or reservation.decision.action == "block":
            return
        if reservation.unknown is None:  # as amounts and settle_attributes for a known model, without the calls
            nanos = to_nanos(actual) if actual is not None else 0
            amounts: Mapping[Slot, int] = dict.fromkeys(reservation.slots, nanos)
        else:
            amounts = self.amounts(reservation, actual, usage)
            attributes = self.settle_attributes(reservation, actual, attributes)
        reservation.done = True
        try:
            self.store.settle(reservation.id, amounts, attributes)
        except StoreUnavailableError:
            _logger.debug("budget store unavailable: reservation %s not settled", reservation.id, exc_info=True)
        except Exception:
            _logger.warning("budget store failed to settle reservation %s", reservation.id, exc_info=True)

    @staticmethod
    def settle_attributes(
        reservation: Reservation, actual: Optional[Amount], attributes: Optional[Mapping[str, Any]]
    ) -> Optional[Mapping[str, Any]]:
        """The ledger attributes of a settle: the caller's, and how an unknown model was counted."""
        applied = reservation.decision.unknown
        if applied is None or actual is not None:
            return attributes
        extra = dict(attributes or {})
        extra["unknown_model"] = applied.action
        if applied.priced_as is not None:
            extra["priced_as"] = applied.priced_as
        return extra

    def release(self, reservation: Reservation) -> None:
        """Drop the holds of a call that was not made (or failed before costing anything)."""
        if reservation.done or not reservation.held:
            return
        reservation.done = True
        try:
            self.store.release(reservation.id)
        except StoreUnavailableError:
            _logger.debug("budget store unavailable: reservation %s not released", reservation.id, exc_info=True)
        except Exception:
            _logger.warning("budget store failed to release reservation %s", reservation.id, exc_info=True)
