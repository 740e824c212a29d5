"""How ``otel-ai-cost budget ...`` and ``otel-ai-cost report`` print: amounts, tables, windows,
ledger entries, and the report as a table, CSV or JSON. The commands themselves are in ``_cli``."""
from __future__ import annotations

import csv
import json
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, List, Mapping, Sequence

from .._cli_format import money, print_table, usd_number
from ._decision import BudgetUsage
from ._model import Budget, from_nanos
from ._report import Report, zone
from ._store import ALL_KEYS, EXPIRED_CHARGE, LedgerEntry
from ._windows import CalendarWindow, RollingWindow


def percent(spent: Decimal, limit: Decimal) -> str:
    """How much of a limit is used, e.g. 42.0%."""
    if limit == 0:
        return "-" if spent == 0 else "inf%"
    return f"{spent / limit * 100:.1f}%"


def window_label(budget: Budget, window_key: str) -> str:
    """A budget's window for people: ``month 2026-11 (Europe/Paris)``, ``rolling 7d``, ``lifetime``."""
    window = budget.window
    if isinstance(window, CalendarWindow):
        return f"{window.unit} {window_key} ({window.tz})"
    if isinstance(window, RollingWindow):
        return f"rolling {duration_text(window.duration)}"
    return "lifetime"


def duration_text(duration: timedelta) -> str:
    """A window's length as configured: 30d, 12h, 90s."""
    seconds = duration.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def status_text(budget: Budget, usage: BudgetUsage) -> str:
    """The STATUS column: frozen, limit overridden, shadow."""
    flags = []
    if usage.frozen:
        flags.append("frozen")
    if usage.overridden:
        flags.append("limit overridden")
    if budget.shadow:
        flags.append("shadow")
    return ", ".join(flags)


def time_text(seconds: float, tz: Any = timezone.utc) -> str:
    """A moment in ISO 8601 to the second (``Z`` for UTC)."""
    moment = datetime.fromtimestamp(seconds, tz)
    text = moment.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z") if tz is timezone.utc else text


def describe_entry(e: LedgerEntry) -> str:
    """One ledger entry on one line, for ``budget show``."""
    amount = e.amount
    if e.kind in ("freeze", "unfreeze"):
        what = ""
    elif e.kind == "set_limit":
        previous = e.attributes.get("previous_limit_nanos")
        what = f"limit {money(amount)}" + (f" (was {money(from_nanos(previous))})" if previous is not None else "")
    elif e.kind == "clear_limit":
        what = f"override {money(amount)} removed" if e.amount_nanos else "no override to remove"
    else:
        what = money(amount)
    key = e.key if e.key != ALL_KEYS else "*"
    hidden = ("previous_limit_nanos", "requested_nanos", EXPIRED_CHARGE)
    details = {k: v for k, v in e.attributes.items() if k not in hidden}
    requested = e.attributes.get("requested_nanos")
    if e.kind == "adjust" and requested is not None and requested != e.amount_nanos:
        what += f" (asked {money(from_nanos(requested))})"
    charged = e.attributes.get(EXPIRED_CHARGE)
    if charged is not None and e.kind == "settle":
        what += f" (replaces the {money(from_nanos(int(charged)))} charged when its hold expired)"
    elif charged is not None:
        what = f"{money(from_nanos(int(charged)))} charged when its hold expired, taken back"
    extra = " ".join(f"{k}={v}" for k, v in sorted(details.items()))
    parts = [time_text(e.time), e.kind.ljust(11), f"key={key}"]
    if e.window_key:
        parts.append(f"window={e.window_key}")
    if what:
        parts.append(what)
    parts.append(f"id={e.reservation_id[:12]}")
    if extra:
        parts.append(extra)
    return "  ".join(parts)


def print_usage(rows: Sequence[Dict[str, Any]], with_budget: bool = True) -> None:
    """The usage table of ``budget list`` and ``budget show``."""
    headers = (["BUDGET", "WINDOW", "PER"] if with_budget else []) + [
        "KEY", "LIMIT", "SPENT", "RESERVED", "REMAINING", "USED", "STATUS"
    ]
    cells = [
        ([r["budget"], r["window"], r["per"] or "-"] if with_budget else [])
        + [
            r["key"], money(r["limit"]), money(r["spent"]), money(r["reserved"]), money(r["remaining"]), r["used"],
            r["status"],
        ]
        for r in rows
    ]
    first = 3 if with_budget else 0
    print_table(headers, cells, right=range(first + 1, first + 6))


def threshold_text(budget: Budget, limit: Decimal) -> str:
    """A budget's thresholds with the amounts they mean under ``limit``."""
    parts = []
    for t in budget.thresholds:
        action = t.action.kind
        if action == "downgrade":
            action = f"downgrade to {t.action.model}"
        elif action == "throttle":
            action = f"throttle {t.action.seconds:g}s"
        parts.append(f"{float(t.at * 100):g}% {action} ({money(limit * t.at)})")
    return ", ".join(parts)



# ---------------------------------------------------------------------------------------------------
# report


def report_table(report: Report, since: datetime, until: datetime) -> None:
    """``report --format table``: the groups, a TOTAL row and the period's adjustments."""
    print(f"spend from {since.isoformat(timespec='seconds')} to {until.isoformat(timespec='seconds')}, "
          f"by {', '.join(report.by)}")
    total = report.total.spend
    # The ADJUSTED column is there when the period has `budget adjust` entries.
    with_adjusted = bool(report.adjustments)
    with_expired = bool(report.total.expired)  # the EXPIRED column: when holds were charged at expiry
    headers = [name.upper() for name in report.by] + ["CALLS"] + (["EXPIRED"] if with_expired else []) + [
        "BLOCKED", "SPEND"] + (["ADJUSTED"] if with_adjusted else []) + ["SHARE"]

    def cells(r: Any, share: str) -> List[str]:
        adjusted = [money(r.adjusted) if r.adjustments else "-"] if with_adjusted else []
        expired = [str(r.expired)] if with_expired else []
        return [str(r.calls)] + expired + [str(r.blocked), money(r.spend)] + adjusted + [share]

    rows = [list(r.group) + cells(r, percent(r.spend, total) if total else "-") for r in report.rows]
    rows.append(["TOTAL"] + [""] * (len(report.by) - 1) + cells(report.total, "100.0%" if total else "-"))
    n = len(report.by)
    print_table(headers, rows, right=range(n, n + len(headers) - len(report.by)))
    if "budget" in report.by or "key" in report.by:
        print("(a call that matches several budgets counts in each of them; the total counts it once)")
    if with_expired:
        print("(EXPIRED: calls whose hold expired unsettled, their process gone: counted in CALLS and SPEND at "
              "their estimate, on_expired_hold: charge_estimate)")
    if report.adjustments:
        print("(ADJUSTED: `budget adjust` changes, negative for credits and refunds; SPEND is what calls cost)")
        print(f"adjustments ({len(report.adjustments)}):")
        for e in report.adjustments:
            print(f"  {adjustment_text(e, report.tz)}")


def adjustment_text(e: LedgerEntry, tz: str) -> str:
    """One ``budget adjust`` entry of the report, in the report's time zone."""
    key = f" --key {e.key}" if e.key else ""
    parts = [time_text(e.time, zone(tz) if tz != "UTC" else timezone.utc), f"{e.budget_id}{key}", money(e.amount)]
    requested = e.attributes.get("requested_nanos")
    if requested is not None and requested != e.amount_nanos:
        parts[-1] += f" (asked {money(from_nanos(requested))}: the spend cannot go below zero)"
    if e.attributes.get("note"):
        parts.append(f"note={e.attributes['note']!r}")
    if e.attributes.get("actor"):
        parts.append(f"by {e.attributes['actor']}")
    return "  ".join(parts)


def report_csv(report: Report, since: datetime, until: datetime) -> None:
    """``report --format csv``: one row per group, USD as plain numbers."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    with_adjusted = bool(report.adjustments)  # the adjusted_usd column: when the period has adjustments
    with_expired = bool(report.total.expired)  # the expired column: when holds were charged at expiry
    writer.writerow(list(report.by) + ["calls"] + (["expired"] if with_expired else []) + ["blocked", "spend_usd"]
                    + (["adjusted_usd"] if with_adjusted else []))
    for r in report.rows:
        writer.writerow(list(r.group) + [r.calls] + ([r.expired] if with_expired else [])
                        + [r.blocked, usd_number(r.spend)] + ([usd_number(r.adjusted)] if with_adjusted else []))


def report_json(report: Report, since: datetime, until: datetime) -> None:
    """``report --format json``: the period, the rows, the total and the adjustments."""
    def row(r: Any, group: Dict[str, str]) -> Dict[str, Any]:
        out = {**group, "calls": r.calls, "blocked": r.blocked, "spend_usd": float(r.spend)}
        if report.total.expired:  # as in the table and CSV: when holds were charged at expiry
            out["expired"] = r.expired
        if report.adjustments:  # as in the table and CSV: when the period has adjustments
            out.update(adjustments=r.adjustments, adjusted_usd=float(r.adjusted))
        return out

    def adjustment(e: LedgerEntry) -> Dict[str, Any]:
        requested = e.attributes.get("requested_nanos", e.amount_nanos)
        return {"time": time_text(e.time), "budget": e.budget_id, "key": e.key, "amount_usd": float(e.amount),
                "requested_usd": float(from_nanos(requested)), "note": e.attributes.get("note"),
                "actor": e.attributes.get("actor")}

    document = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "tz": report.tz,
        "by": list(report.by),
        "rows": [row(r, dict(zip(report.by, r.group))) for r in report.rows],
        "total": row(report.total, {}),
        "adjustments": [adjustment(e) for e in report.adjustments],
    }
    json.dump(document, sys.stdout, indent=1)
    print()


# The report's renderers, by --format.
REPORT_FORMATS: Mapping[str, Callable[[Report, datetime, datetime], None]] = {
    "table": report_table, "csv": report_csv, "json": report_json,
}


__all__ = [
    "REPORT_FORMATS", "adjustment_text", "describe_entry", "duration_text", "money", "percent", "print_table",
    "print_usage", "report_csv", "report_json", "report_table", "status_text", "threshold_text", "time_text",
    "usd_number", "window_label",
]
