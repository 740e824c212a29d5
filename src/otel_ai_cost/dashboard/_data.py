"""The dashboard's data: one JSON document for a period and a filter, computed on the server.

Every number comes from the functions behind ``otel-ai-cost report`` and ``otel-ai-cost recommend``:
``build_call_report`` (spend by model / provider / tenant, spend over time grouped by hour or day and
each of those, the top calls and traces, anomalies by type), ``forecast`` (the month-end forecast)
and ``recommend``; the records are the report's JSON records. A filter keeps the calls whose value
of a dimension (as ``report --by`` spells it, ``(none)`` for none) is the one chosen; the page asks
for a new document when a filter changes. The budget panels are the store's (``_budgets``): the
filters do not apply to them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .._cli_period import PERIODS, period
from ..budgets._report import zone
from ..errors import ConfigError
from ..ledger._cli import call_record, forecast_record, spend_record, trace_record
from ..ledger._recommend import recommend
from ..ledger._recommend_cli import record as hint_record
from ..ledger._report import Call, build_call_report, forecast
from ..ledger._store import read_rows
from ._budgets import BudgetSource, budget_panels

FILTERS = ("model", "provider", "tenant", "service", "user", "operation")
BREAKDOWNS = ("model", "provider", "tenant")
PERIOD_NAMES = (*PERIODS, "all")
DEFAULT_PERIOD = "month"
DEFAULT_JAEGER = "http://localhost:16686/trace/"
ANOMALY_LIST = 50  # the latest anomalous calls listed


@dataclass(frozen=True)
class Query:
    """What the page asks for: a period (``report --period``, or ``all``) and a value per dimension."""

    period: str = DEFAULT_PERIOD
    filters: Mapping[str, str] = field(default_factory=dict)


def parse_query(params: Mapping[str, Sequence[str]]) -> Query:
    """A Query from URL parameters (``urllib.parse.parse_qs``); ConfigError for a bad one."""
    known = {"period", *FILTERS}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"unknown parameter {unknown[0]!r}: the parameters are {', '.join(sorted(known))}")
    name = (params.get("period") or [DEFAULT_PERIOD])[-1]
    if name not in PERIOD_NAMES:
        raise ConfigError(f"period {name!r}: one of {', '.join(PERIOD_NAMES)}")
    filters = {dim: values[-1] for dim, values in params.items() if dim in FILTERS and values and values[-1]}
    return Query(name, filters)


@dataclass
class Sources:
    """Where the data is and how to show it (the ``dashboard`` command's options)."""

    ledger: str  # the call ledger's file
    budgets: Optional[BudgetSource] = None
    tz: str = "UTC"
    jaeger: str = DEFAULT_JAEGER
    top: int = 10
    catalog: Any = None  # the pricing catalog (default: the built-in one, loaded once)

    def pricing(self) -> Any:
        if self.catalog is None:
            from ..pricing import default_catalog

            self.catalog = default_catalog()
        return self.catalog


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # never 1E-7: the page shows the sums as they are
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, default=_plain, sort_keys=False)


def _window(query: Query, now: datetime) -> Tuple[float, float, Optional[str], str]:
    if query.period == "all":
        return float("-inf"), now.timestamp() + 1, None, now.isoformat(timespec="seconds")
    since, until = period(query.period, now)
    return since.timestamp(), until.timestamp() + 1e-6, since.isoformat(timespec="seconds"), \
        until.isoformat(timespec="seconds")


def _over_time(calls: Sequence[Call], since: float, until: float, bucket: str, tz: str,
               catalog: Any) -> Dict[str, Any]:
    """The cost per bucket (hour or day) and value of each breakdown, from ``build_call_report``."""
    series: Dict[str, Dict[str, Dict[str, Decimal]]] = {}
    labels = set()
    for dim in BREAKDOWNS:
        report = build_call_report(calls, [bucket, dim], since, until, tz, top=0, catalog=catalog)
        per_value = series.setdefault(dim, {})
        for row in report.rows:
            label, value = row.group
            labels.add(label)
            per_value.setdefault(value, {})[label] = row.cost
    ordered = sorted(labels)
    return {"bucket": bucket, "labels": ordered,
            "series": {dim: {value: [costs.get(label, Decimal(0)) for label in ordered]
                             for value, costs in sorted(per_value.items())}
                       for dim, per_value in series.items()}}


def _call_row(call: Call) -> Dict[str, Any]:
    return {**call_record(call), "anomaly_type": call.anomaly_type, "ok": call.ok,
            "pricing_status": call.pricing_status}


def document(sources: Sources, query: Query, now: Optional[datetime] = None) -> Dict[str, Any]:
    """The dashboard's document for ``query`` (see the module docstring)."""
    tz = zone(sources.tz)
    now = now if now is not None else datetime.now(tz)
    catalog = sources.pricing()
    since, until, since_text, until_text = _window(query, now)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    rows = read_rows(sources.ledger, min(since, month_start), max(until, now.timestamp() + 1))
    read = [Call.from_row(r) for r in rows]
    in_period = [c for c in read if since <= c.end_time < until]

    def keep(call: Call) -> bool:
        return all(call.value(dim, tz) == value for dim, value in query.filters.items())

    calls = [c for c in read if keep(c)]

    def report(by: Sequence[str], of: Sequence[Call] = calls, top: int = 0) -> Any:
        return build_call_report(of, by, since, until, sources.tz, top=top, catalog=catalog)

    main = report(["model"], top=sources.top)
    span = (until - since) if since != float("-inf") else float("inf")
    bucket = "hour" if span <= timedelta(days=2).total_seconds() else "day"
    anomalous = [c for c in calls if c.anomaly_type]
    anomalies = report(["anomaly"], anomalous)
    latest = sorted((c for c in anomalous if since <= c.end_time < until), key=lambda c: -c.end_time)
    hints = recommend([c for c in calls if since <= c.end_time < until], catalog)
    return {
        "generated": now.isoformat(timespec="seconds"), "ledger": sources.ledger, "tz": sources.tz,
        "currency": main.currency, "jaeger": sources.jaeger,
        "period": {"name": query.period, "since": since_text, "until": until_text, "names": list(PERIOD_NAMES)},
        "filters": dict(query.filters),
        "options": {dim: sorted({c.value(dim, tz) for c in in_period}) for dim in FILTERS},
        "total": spend_record(main.total, ()),
        "by": {dim: [spend_record(r, (dim,)) for r in report([dim]).rows] for dim in BREAKDOWNS},
        "over_time": _over_time(calls, since, until, bucket, sources.tz, catalog),
        "top_calls": [_call_row(c) for c in main.top_calls],
        "top_traces": [trace_record(t) for t in main.top_traces],
        "forecast": forecast_record(forecast(calls, now)),
        "anomalies": {"by_type": [spend_record(r, ("anomaly",)) for r in anomalies.rows],
                      "calls": [_call_row(c) for c in latest[:ANOMALY_LIST]]},
        "recommendations": [hint_record(i, h) for i, h in enumerate(hints, 1)],
        "budgets": _budgets(sources, now),
    }


def _budgets(sources: Sources, now: datetime) -> Dict[str, Any]:
    if sources.budgets is None:
        return {"store": None, "config": None, "panels": [],
                "note": "no budget store: give --config FILE (or set OTEL_AI_COST_CONFIG) or --budgets URL"}
    return budget_panels(sources.budgets, now, sources.tz)


Loader = Callable[[Query], Dict[str, Any]]


def loader(sources: Sources) -> Loader:
    return lambda query: document(sources, query)


__all__: List[str] = ["DEFAULT_JAEGER", "FILTERS", "PERIOD_NAMES", "Query", "Sources", "document", "parse_query",
                      "to_json"]
