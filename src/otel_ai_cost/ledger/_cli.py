"""``otel-ai-cost report`` from the call ledger (``--source calls``): rendering and the period.

    otel-ai-cost report [--ledger URL] [--period day|week|month|mtd|qtd | --since WHEN --until WHEN]
                        [--by DIM ...] [--view spend|calls|traces|forecast] [--top N]
                        [--format table|csv|json|focus] [--tz ZONE]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .._cli_format import plain, table_lines, usd6
from .._cli_period import PERIODS, period
from ..config import ENV_LEDGER
from ..errors import ConfigError
from ._focus import COLUMNS as FOCUS_COLUMNS
from ._focus import FOCUS_VERSION, focus_row, timestamp
from ._report import Call, CallReport, CallReportBuilder, Forecast, MonthForecast, SpendRow
from ._store import default_ledger_url, iter_rows, parse_ledger_url

VIEWS = ("spend", "calls", "traces", "forecast")


def ledger_path(args: argparse.Namespace) -> str:
    url = args.ledger or os.environ.get(ENV_LEDGER, "").strip() or default_ledger_url()
    path = parse_ledger_url(url, "--ledger" if args.ledger else ENV_LEDGER)
    if path is None:
        raise ConfigError(f"{ENV_LEDGER}=off: there is no call ledger; give --ledger sqlite:///path, or "
                          "--source budgets for the budget ledger")
    return path


def add_ledger_option(parser: argparse.ArgumentParser) -> None:
    """--ledger URL (see ``ledger_path``)."""
    parser.add_argument("--ledger", metavar="URL", help=f"the call ledger, sqlite:///path (default: ${ENV_LEDGER})")


def _fraction(value: Optional[Decimal]) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def spend_record(row: SpendRow, by: Sequence[str]) -> Dict[str, Any]:
    record: Dict[str, Any] = dict(zip(by, row.group))
    record.update({
        "calls": row.calls, "succeeded": row.succeeded, "failed": row.calls - row.succeeded, "unpriced": row.unpriced,
        "cost": row.cost, "cost_per_success": row.cost_per_success,
        "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
        "cache_read_tokens": row.cache_read_tokens, "cache_savings": row.cache_savings,
        "estimated_calls": row.estimated_calls, "estimate": row.estimate, "estimated_actual": row.estimated_cost,
        "estimate_error": row.estimate_error,
    })
    return record


def call_record(call: Call) -> Dict[str, Any]:
    return {
        "time": timestamp(call.end_time), "trace_id": call.trace_id, "span_id": call.span_id,
        "service": call.service, "provider": call.provider, "model": call.model, "operation": call.operation,
        "tenant": call.tenant, "user": call.user, "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens, "cost": call.cost, "estimate": call.estimate,
    }


def trace_record(trace: Dict[str, Any]) -> Dict[str, Any]:
    return {"trace_id": trace["trace_id"], "start": timestamp(trace["start"]), "calls": trace["calls"],
            "cost": trace["cost"], "services": ",".join(trace["services"]), "models": ",".join(trace["models"])}


def forecast_record(f: Forecast) -> Dict[str, Any]:
    return {"month": f.month, "spent": f.spent, "days_elapsed": round(f.days_elapsed, 3),
            "days_in_month": f.days_in_month, "forecast": f.point, "low": f.low, "high": f.high,
            "full_days": f.full_days, "method": f.method}


def _table(records: List[Dict[str, Any]], columns: Sequence[str]) -> None:
    for line in table_lines(columns, [[_cell(r.get(c), c) for c in columns] for r in records], strip=False):
        print(line)


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "-"
    if column == "estimate_error" and isinstance(value, Decimal):
        return _fraction(value)
    if isinstance(value, Decimal):
        return usd6(value)
    return str(value)


SPEND_TABLE = ("calls", "failed", "unpriced", "cost", "cost_per_success", "cache_savings", "estimate_error")


def render(report: CallReport, fc: Optional[Forecast], view: str, fmt: str, since: datetime,
           until: datetime) -> None:
    """The report as a table, CSV or JSON (``--format focus``: see ``FocusWriter``)."""
    out = sys.stdout
    spend = [spend_record(r, report.by) for r in report.rows]
    total = spend_record(report.total, ())
    if fmt == "json":
        document = {
            "source": "calls", "since": since.isoformat(), "until": until.isoformat(), "tz": report.tz,
            "currency": report.currency, "by": list(report.by), "rows": spend, "total": total,
            "top_calls": [call_record(c) for c in report.top_calls],
            "top_traces": [trace_record(t) for t in report.top_traces],
            "forecast": forecast_record(fc) if fc is not None else None,
        }
        json.dump(document, out, indent=1, default=plain)
        print()
        return
    records, columns = _view(report, fc, view, spend, total)
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if v is None else plain(v) for k, v in record.items()})
        return
    print(f"call ledger, {since.isoformat(timespec='seconds')} to {until.isoformat(timespec='seconds')} "
          f"({report.tz}), {report.currency}")
    if view == "spend":
        _table(records + [{**{b: "TOTAL" for b in report.by[:1]}, **total}], columns)
        print("cost_per_success: the cost of all calls (failed ones too) per successful call; estimate_error: "
              "(estimate - actual) / actual; cache_savings: cache-read tokens at the input price minus the "
              "cache-read price")
    else:
        _table(records, columns)
        if view == "forecast" and fc is not None:
            print(fc.method)


def _view(report: CallReport, fc: Optional[Forecast], view: str, spend: List[Dict[str, Any]],
          total: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], Sequence[str]]:
    if view == "calls":
        records = [call_record(c) for c in report.top_calls]
        return records, ("time", "trace_id", "span_id", "service", "provider", "model", "tenant", "input_tokens",
                         "output_tokens", "cost", "estimate")
    if view == "traces":
        return [trace_record(t) for t in report.top_traces], ("trace_id", "start", "calls", "cost", "services",
                                                               "models")
    if view == "forecast":
        return ([forecast_record(fc)] if fc else []), ("month", "spent", "days_elapsed", "days_in_month",
                                                      "forecast", "low", "high", "full_days")
    return spend, (*report.by, *SPEND_TABLE, "estimate", "estimated_actual", "input_tokens", "output_tokens",
                   "cache_read_tokens")


class FocusWriter:
    """``--format focus``: the FOCUS rows of the priced calls, written as they come (the header first)."""

    def __init__(self, out: Any) -> None:
        self.writer = csv.DictWriter(out, fieldnames=list(FOCUS_COLUMNS), lineterminator="\n")
        self.writer.writeheader()

    def write(self, call: Call) -> None:
        row = focus_row(call)
        if row is not None:
            self.writer.writerow({k: "" if v is None else v for k, v in row.items()})


def run(args: argparse.Namespace, by: Sequence[str], tz: Any, since: datetime, until: datetime) -> int:
    """The report from the call ledger (the period and the groups are validated by the caller), made in
    one pass over the ledger's rows: no list of the calls."""
    path = ledger_path(args)
    now = datetime.now(tz)
    # The forecast reads the month so far, whatever the period.
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    low = min(since, month_start).timestamp()
    rows = iter_rows(path, low, max(until, now).timestamp() + 1)
    report = CallReportBuilder(by, since.timestamp(), until.timestamp(), args.tz, top=args.top)
    month = MonthForecast(now)
    focus = FocusWriter(sys.stdout) if args.format == "focus" else None
    for row in rows:
        call = Call.from_row(row)
        report.add(call)
        month.add_call(call)
        if focus is not None and report.covers(call):
            focus.write(call)
    if focus is None:
        render(report.report(), month.result(), args.view, args.format, since, until)
    return 0


__all__ = ["FOCUS_VERSION", "PERIODS", "VIEWS", "period", "run"]
