"""``otel-ai-cost recommend``: optimisation hints from the call ledger, as a table, CSV or JSON.

    otel-ai-cost recommend [--ledger URL] [--period day|week|month|mtd|qtd | --since WHEN --until WHEN]
                           [--kind KIND ...] [--short-output N] [--long-input N] [--min-batch-calls N]
                           [--reservation-ratio N]
                           [--format table|csv|json] [--tz ZONE]
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict
from decimal import Decimal
from typing import Any, Dict, List

from .._cli_format import plain, table_lines, usd6
from .._cli_period import add_period_options, add_tz_option, resolve_period, thirty_days_before
from ..errors import ConfigError
from ._cli import add_ledger_option, ledger_path
from ._recommend import KINDS, Hint, Recommender, Rules
from ._report import Call
from ._store import iter_rows

FORMATS = ("table", "csv", "json")
COLUMNS = ("rank", "kind", "service", "provider", "model", "operation", "calls", "cost", "saving", "held",
           "suggestion", "how")


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Add the ``recommend`` command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "recommend",
        help="optimisation hints from the call ledger, ranked by money saved (never applied)",
        description="Hints from the call ledger: a cheaper model of the same family for short-output calls, "
        "prompt caching for long inputs sent without cache reads (an upper bound), the batch tier for big groups "
        "of calls, and max_tokens far above the output produced (budget capacity held, ranked after the money "
        "hints). Each hint says how its number was computed. Nothing is changed. The period is --period, or "
        "--since/--until (as in `report`), or by default the last 30 days.",
    )
    add_ledger_option(p)
    add_period_options(p, period_help="day, week, month (the last 30 days, the default), mtd, qtd",
                       since_help="start of the period (a date, date and time, or 7d)",
                       until_help="end of the period (default: now)")
    p.add_argument("--kind", action="append", choices=KINDS, help="only these hints (repeatable; default: all)")
    defaults = Rules()
    p.add_argument("--short-output", type=int, default=defaults.short_output, metavar="N",
                   help=f"cheaper_model: a short output is at most N tokens (default {defaults.short_output})")
    p.add_argument("--long-input", type=int, default=defaults.long_input, metavar="N",
                   help=f"prompt_cache: a long input is at least N tokens (default {defaults.long_input})")
    p.add_argument("--min-batch-calls", type=int, default=defaults.min_batch_calls, metavar="N",
                   help=f"batch: a group needs at least N calls (default {defaults.min_batch_calls})")
    p.add_argument("--reservation-ratio", type=int, default=defaults.reservation_ratio, metavar="N",
                   help="max_tokens: calls that reserved at least N times the output they produced "
                   f"(default {defaults.reservation_ratio})")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (default), csv or json")
    add_tz_option(p, "time zone of dates (default: UTC)")
    p.set_defaults(func=run)


def record(rank: int, hint: Hint) -> Dict[str, Any]:
    return {"rank": rank, "kind": hint.kind, "service": hint.service, "provider": hint.provider, "model": hint.model,
            "operation": hint.operation, "calls": hint.calls, "cost": hint.cost, "saving": hint.saving,
            "held": hint.held, "suggestion": hint.suggestion, "how": hint.how, "details": hint.details}


def run(args: argparse.Namespace) -> int:
    from ..budgets._report import zone

    tz = zone(args.tz)
    since, until = resolve_period(args, tz, thirty_days_before)  # by default, the last 30 days
    for name, low in (("short_output", 0), ("long_input", 0), ("min_batch_calls", 1), ("reservation_ratio", 1)):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be {low} or more")
    rules = Rules(short_output=args.short_output, long_input=args.long_input, min_batch_calls=args.min_batch_calls,
                  reservation_ratio=args.reservation_ratio)
    rows = iter_rows(ledger_path(args), since.timestamp(), until.timestamp())
    recommender = Recommender(rules=rules)
    for row in rows:  # one pass: no list of the calls
        recommender.add(Call.from_row(row))
    calls = recommender.calls
    hints = [h for h in recommender.hints() if not args.kind or h.kind in args.kind]
    records = [record(i, h) for i, h in enumerate(hints, 1)]
    out = sys.stdout
    if args.format == "json":
        saving = sum((h.saving for h in hints), Decimal(0))
        json.dump({"since": since.isoformat(), "until": until.isoformat(), "calls": calls,
                   "currency": "USD", "total_saving": saving, "rules": asdict(rules), "hints": records},
                  out, indent=1, default=plain)
        print()
        return 0
    if args.format == "csv":
        writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow({k: plain(v) for k, v in r.items()})
        return 0
    print(f"recommendations from the call ledger, {since.isoformat(timespec='seconds')} to "
          f"{until.isoformat(timespec='seconds')}: {calls} calls, {len(hints)} hints (USD; nothing applied)")
    _table(records)
    return 0


def _table(records: List[Dict[str, Any]]) -> None:
    shown = ("rank", "kind", "service", "model", "calls", "cost", "saving", "held")
    # The money hints save money and hold no capacity; max_tokens the other way round.
    cells = [[_cell(r[c]) if (c, r["kind"] == "max_tokens") not in (("held", False), ("saving", True)) else "-"
              for c in shown] for r in records]
    header, *lines = table_lines(shown, cells, strip=False)
    print(header + "  suggestion")
    for r, line in zip(records, lines):
        print(line + "  " + r["suggestion"])
        print("      how: " + r["how"])


def _cell(value: Any) -> str:
    return usd6(value) if isinstance(value, Decimal) else str(value)
