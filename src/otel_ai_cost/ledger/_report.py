"""Reports from the call ledger: spend by any dimension, top calls and traces, estimate error,
cache savings, cost per successful call and a month-end forecast.

Amounts are summed as Decimals of the spans' ``gen_ai.usage.cost.amount`` as written (exact: the
total of a report is the sum of the attribute over the calls it covers). A call without a cost
(``ai_cost.pricing.status`` unknown_model, no_usage, unpriced) counts as a call, in ``unpriced``.
"""
from __future__ import annotations

import calendar
import heapq
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple
from zoneinfo import ZoneInfo

from .._grouping import NONE, check_by

ZERO = Decimal(0)
_MILLION = Decimal(1_000_000)

# --by name -> the call's column (attribute keys with a dot are looked up in the copied attributes).
DIMENSIONS: Dict[str, str] = {
    "model": "model", "request_model": "request_model", "provider": "provider", "tenant": "tenant",
    "user": "user", "service": "service", "operation": "operation", "cost_center": "cost_center",
    "hour": "hour", "day": "day", "week": "week", "month": "month", "pricing_status": "pricing_status",
    "budget_decision": "budget_decision", "anomaly": "anomaly_type",
}


def check_dimensions(by: Iterable[str]) -> Tuple[str, ...]:
    return check_by(by, DIMENSIONS, "an attribute key copied from baggage (with a dot, e.g. team.name)")


def _decimal(text: Optional[str]) -> Optional[Decimal]:
    return None if text is None else Decimal(text)


@dataclass
class Call:
    """One ledger row, typed."""

    trace_id: str
    span_id: str
    start_time: float
    end_time: float
    service: Optional[str]
    provider: Optional[str]
    request_model: Optional[str]
    response_model: Optional[str]
    operation: Optional[str]
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost: Optional[Decimal]
    currency: str
    breakdown: Dict[str, Decimal]
    estimate: Optional[Decimal]
    pricing_status: Optional[str]
    pricing_model: Optional[str]
    service_tier: Optional[str]
    budget_decision: Optional[str]
    tenant: Optional[str]
    user: Optional[str]
    cost_center: Optional[str]
    attributes: Dict[str, str]
    anomaly_type: Optional[str]
    ok: bool
    error_type: Optional[str]
    estimate_output_tokens: Optional[int] = None  # the output tokens its estimate reserved (None: no estimate)

    @property
    def model(self) -> Optional[str]:
        return self.response_model or self.request_model

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Call":
        return cls(
            trace_id=row["trace_id"], span_id=row["span_id"], start_time=row["start_time"], end_time=row["end_time"],
            service=row["service"], provider=row["provider"], request_model=row["request_model"],
            response_model=row["response_model"], operation=row["operation"],
            input_tokens=row["input_tokens"] or 0, output_tokens=row["output_tokens"] or 0,
            cache_read_tokens=row["cache_read_tokens"] or 0, cache_write_tokens=row["cache_write_tokens"] or 0,
            reasoning_tokens=row["reasoning_tokens"] or 0, cost=_decimal(row["cost"]),
            currency=row["currency"] or "USD",
            breakdown={k: Decimal(v) for k, v in json.loads(row["breakdown"] or "{}").items()},
            estimate=_decimal(row["estimate"]), pricing_status=row["pricing_status"],
            pricing_model=row["pricing_model"], service_tier=row["service_tier"],
            budget_decision=row["budget_decision"], tenant=row["tenant"], user=row["user"],
            cost_center=row["cost_center"], attributes=json.loads(row["attributes"] or "{}"),
            anomaly_type=row["anomaly_type"], ok=bool(row["ok"]), error_type=row["error_type"],
            estimate_output_tokens=row["estimate_output_tokens"],
        )

    def value(self, dimension: str, tz: ZoneInfo) -> str:
        column = DIMENSIONS.get(dimension)
        if column in ("hour", "day", "week", "month"):
            moment = datetime.fromtimestamp(self.end_time, tz)
            if column == "hour":
                return moment.strftime("%Y-%m-%dT%H:00")
            if column == "day":
                return moment.date().isoformat()
            if column == "week":
                year, week, _ = moment.isocalendar()
                return f"{year}-W{week:02d}"
            return f"{moment.year}-{moment.month:02d}"
        found = getattr(self, column) if column is not None else self.attributes.get(dimension)
        return NONE if found is None or found == "" else str(found)


def cache_savings(call: Call, catalog: Any) -> Optional[Decimal]:
    """What the call's cache-read tokens saved: those tokens at the input price minus at the cache-read
    price (the catalog's base prices in force on the call's day; None when either price is unknown)."""
    if not call.cache_read_tokens:
        return ZERO
    model = call.pricing_model or call.model
    price = catalog.resolve(model, provider=call.provider) if model else None
    if price is None:
        return None
    prices = price.at(int(call.start_time * 1e9)).prices
    full: Optional[Decimal] = prices.input
    cached: Optional[Decimal] = prices.cache_read
    if full is None or cached is None:
        return None
    return call.cache_read_tokens * (full - cached) / _MILLION


@dataclass
class SpendRow:
    group: Tuple[str, ...]
    calls: int = 0
    succeeded: int = 0
    unpriced: int = 0
    cost: Decimal = ZERO
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    estimated_calls: int = 0
    estimate: Decimal = ZERO  # the estimates of the calls that have both an estimate and a cost
    estimated_cost: Decimal = ZERO  # the actual cost of those calls
    cache_savings: Decimal = ZERO
    cache_savings_unknown: int = 0  # calls with cache reads whose prices the catalog does not have

    def add(self, call: Call, savings: Optional[Decimal]) -> None:
        self.calls += 1
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        self.cache_read_tokens += call.cache_read_tokens
        if call.cost is None:
            self.unpriced += 1
        else:
            self.cost += call.cost
            if call.estimate is not None:
                self.estimated_calls += 1
                self.estimate += call.estimate
                self.estimated_cost += call.cost
        if call.ok:
            self.succeeded += 1
        if savings is None:
            self.cache_savings_unknown += 1
        else:
            self.cache_savings += savings

    @property
    def cost_per_success(self) -> Optional[Decimal]:
        """The cost of all the calls (failed ones included: they were paid too) per successful call."""
        return self.cost / self.succeeded if self.succeeded else None

    @property
    def estimate_error(self) -> Optional[Decimal]:
        """(estimate - actual) / actual over the calls with both: positive when the estimates were high."""
        return (self.estimate - self.estimated_cost) / self.estimated_cost if self.estimated_cost else None


@dataclass
class CallReport:
    by: Tuple[str, ...]
    since: float
    until: float
    tz: str
    rows: List[SpendRow] = field(default_factory=list)
    total: SpendRow = field(default_factory=lambda: SpendRow(()))
    top_calls: List[Call] = field(default_factory=list)
    top_traces: List[Dict[str, Any]] = field(default_factory=list)
    currency: str = "USD"


class CallReportBuilder:
    """A ``CallReport`` made from calls given one at a time (``add``), in the ledger's order: it keeps the
    groups, the traces and the ``top`` costliest calls, not every call."""

    def __init__(self, by: Sequence[str], since: float, until: float, tz: str = "UTC", top: int = 10,
                 catalog: Any = None) -> None:
        self.by = check_dimensions(by)
        self.since, self.until, self.tz = since, until, tz
        self._zone = ZoneInfo(tz)
        if catalog is None:
            from ..pricing import default_catalog

            catalog = default_catalog()
        self._catalog = catalog
        self._rows: Dict[Tuple[str, ...], SpendRow] = {}
        self._total = SpendRow(())
        self._traces: Dict[str, Dict[str, Any]] = {}
        self._top = max(0, top)
        # The top calls so far as a heap whose root is the one to drop first: (cost, -end time, -order, call)
        # is kept largest, the order of sorted(calls, key=(-cost, end time))[:top] (ties: the first read).
        self._heap: List[Tuple[Decimal, float, int, Call]] = []
        self._read = 0
        self._currencies: Set[str] = set()

    def covers(self, call: Call) -> bool:
        """The call ended in [since, until)."""
        return self.since <= call.end_time < self.until

    def add(self, call: Call) -> None:
        """Count ``call`` (calls outside [since, until) are left out)."""
        if not self.covers(call):
            return
        savings = cache_savings(call, self._catalog)
        group = tuple(call.value(name, self._zone) for name in self.by)
        row = self._rows.get(group)
        if row is None:
            row = self._rows[group] = SpendRow(group)
        row.add(call, savings)
        self._total.add(call, savings)
        trace = self._traces.setdefault(call.trace_id, {"trace_id": call.trace_id, "calls": 0, "cost": ZERO,
                                                        "start": call.start_time, "services": set(), "models": set()})
        trace["calls"] += 1
        trace["cost"] += call.cost or ZERO
        trace["start"] = min(trace["start"], call.start_time)
        trace["services"].add(call.service or NONE)
        trace["models"].add(call.model or NONE)
        self._currencies.add(call.currency)
        if call.cost is not None and self._top:
            self._read += 1
            entry = (call.cost, -call.end_time, -self._read, call)
            if len(self._heap) < self._top:
                heapq.heappush(self._heap, entry)
            elif entry[:3] > self._heap[0][:3]:
                heapq.heapreplace(self._heap, entry)

    def report(self) -> CallReport:
        ordered = sorted(self._rows.values(), key=lambda r: (-r.cost, -r.calls, r.group))
        top_calls = [entry[3] for entry in sorted(self._heap, key=lambda e: e[:3], reverse=True)]
        top_traces = sorted(self._traces.values(), key=lambda t: (-t["cost"], t["start"]))[:self._top]
        for trace in top_traces:
            trace["services"] = sorted(trace["services"])
            trace["models"] = sorted(trace["models"])
        currencies = self._currencies
        return CallReport(self.by, self.since, self.until, self.tz, ordered, self._total, top_calls, top_traces,
                          next(iter(currencies)) if len(currencies) == 1 else "USD")


def build_call_report(calls: Iterable[Call], by: Sequence[str], since: float, until: float, tz: str = "UTC",
                      top: int = 10, catalog: Any = None) -> CallReport:
    """Group ``calls`` (those that ended in [since, until)) by ``by``; the ``top`` costliest calls and traces."""
    builder = CallReportBuilder(by, since, until, tz, top, catalog)
    for call in calls:
        builder.add(call)
    return builder.report()


@dataclass
class Forecast:
    """The month-end forecast: see ``forecast``."""

    month: str
    spent: Decimal
    days_elapsed: float
    days_in_month: int
    point: Decimal
    low: Decimal
    high: Decimal
    full_days: int
    method: str


FORECAST_METHOD = (
    "point = spend so far / days elapsed x days in the month (the month-to-date daily rate, carried on); "
    "range = spend so far + days left x the lowest and the highest daily spend among the full days of the "
    "month so far (the point when there is no full day yet)"
)


def forecast(calls: Iterable[Call], now: datetime) -> Forecast:
    """The spend at the end of ``now``'s month (in ``now``'s zone) from the calls of the month so far."""
    return forecast_amounts(((c.end_time, c.cost) for c in calls if c.cost is not None), now)


def forecast_amounts(spend: Iterable[Tuple[float, Decimal]], now: datetime) -> Forecast:
    """``forecast`` of (time, amount) pairs: the calls' costs, or a budget's spend by day."""
    month = MonthForecast(now)
    for when, amount in spend:
        month.add(when, amount)
    return month.result()


class MonthForecast:
    """``forecast`` of amounts given one at a time (``add``): it keeps the daily sums of the month."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.start = datetime(now.year, now.month, 1, tzinfo=now.tzinfo)
        self.spent = ZERO
        self.daily: Dict[date, Decimal] = {}

    def add(self, when: float, amount: Decimal) -> None:
        moment = datetime.fromtimestamp(when, self.now.tzinfo)
        if self.start <= moment < self.now:
            self.spent += amount
            self.daily[moment.date()] = self.daily.get(moment.date(), ZERO) + amount

    def add_call(self, call: Call) -> None:
        if call.cost is not None:
            self.add(call.end_time, call.cost)

    def result(self) -> Forecast:
        now, start, spent, daily = self.now, self.start, self.spent, self.daily
        days_in_month = calendar.monthrange(now.year, now.month)[1]
        elapsed = max((now - start).total_seconds() / 86400, 1e-9)
        full = [(start + timedelta(days=i)).date() for i in range(int(elapsed))]
        left = Decimal(repr(days_in_month - elapsed))
        point = spent / Decimal(repr(elapsed)) * Decimal(days_in_month)
        if full:
            amounts = [daily.get(day, ZERO) for day in full]
            low, high = spent + left * min(amounts), spent + left * max(amounts)
        else:
            low = high = point
        return Forecast(f"{now.year}-{now.month:02d}", spent, elapsed, days_in_month, point,
                        min(low, point), max(high, point), len(full), FORECAST_METHOD)
