"""``otel-ai-cost report``: spend over a period, from the call ledger (``--source calls``, rendered by
``ledger._cli``) or from the budget store's ledger (``--source budgets``).

    otel-ai-cost report [--source calls|budgets] [--ledger URL] [--period day|week|month|mtd|qtd]
                        [--since WHEN] [--until WHEN] [--by GROUP ...] [--view spend|calls|traces|forecast]
                        [--top N] [--format table|csv|json|focus] [--tz ZONE]
"""
from __future__ import annotations

import argparse
import os
from typing import Any, List, Sequence

from .._cli_period import add_period_options, add_tz_option, month_start, resolve_period
from ..config import ENV_CONFIG, ENV_LEDGER
from ..errors import ConfigError
from ..ledger._cli import VIEWS, add_ledger_option
from ..ledger._cli import run as report_calls
from ..ledger._report import DIMENSIONS, check_dimensions
from ..ledger._store import default_ledger_url, parse_ledger_url
from ._cli_render import REPORT_FORMATS
from ._report import GROUPS, build_report, check_groups, zone


def register_report(subparsers: "argparse._SubParsersAction[Any]", common: argparse.ArgumentParser) -> None:
    """Add the ``report`` command (``common``: the parent parser with --config)."""
    report = subparsers.add_parser(
        "report",
        parents=[common],
        help="spend by model, provider, tenant, user, service, day... over a period, from the call ledger "
        "(or, --source budgets, the budget ledger)",
        description="Spend over a period. --source calls: from the call ledger, one row per priced call "
        f"(--ledger, default ${ENV_LEDGER} or {default_ledger_url()}), with calls, failures, cost per successful "
        "call, cache savings, estimate error, the top calls and traces (--view) and a month-end forecast; "
        "--format focus writes FOCUS 1.2 rows. Without --source: calls when --ledger or $OTEL_AI_COST_LEDGER is "
        "given, else budgets when --config or $OTEL_AI_COST_CONFIG is, else calls when the default ledger file "
        "exists, else budgets. --source budgets: from the settle entries of the budget ledger, "
        "with the number of calls, "
        "of calls a budget refused (BLOCKED) and the operator adjustments (ADJUSTED: `budget adjust`, negative "
        "for a credit), listed with their notes. A call that matches several budgets counts once (with --by budget, "
        "once in each of its budgets; the total still counts it once). WHEN is a date (2026-11-01: midnight in --tz; "
        "as --until, the end of that day), a date and time (2026-11-01T12:00, with or without an offset), or a "
        "duration before now (7d, 12h). The period is --period, or --since (default: the start of the current "
        "month) up to --until (default: now).",
    )
    report.add_argument("--source", choices=("calls", "budgets"),
                        help="calls: the call ledger; budgets: the budget store's ledger (default: see above)")
    add_ledger_option(report)
    add_period_options(report,
                       period_help="day (today), week (since Monday), month (the last 30 days), mtd, qtd; "
                       "instead of --since/--until",
                       since_help="start of the period (default: the start of this month)",
                       until_help="end of the period (a date: the end of that day; default: now)")
    report.add_argument(
        "--by",
        metavar="GROUP",
        nargs="+",
        action="extend",
        help=f"group by these, in order: calls: {', '.join(DIMENSIONS)}; budgets: {', '.join(GROUPS)}; or an "
        "attribute key such as team.name (default: model)",
    )
    report.add_argument("--view", choices=VIEWS, default="spend",
                        help="calls only, for table and csv: spend (default), the top calls, the top traces, "
                        "the month-end forecast (json has them all)")
    report.add_argument("--top", metavar="N", type=int, default=10, help="how many top calls and traces (default 10)")
    report.add_argument("--format", choices=(*REPORT_FORMATS, "focus"), default="table",
                        help="default: table; focus: FOCUS 1.2 CSV (calls only)")
    add_tz_option(report, "time zone of dates and days (default: UTC)")
    report.set_defaults(func=_report)


def _source(args: argparse.Namespace) -> str:
    if args.source:
        return str(args.source)
    ledger = os.environ.get(ENV_LEDGER, "").strip()
    if args.ledger or (ledger and parse_ledger_url(ledger, ENV_LEDGER) is not None):
        return "calls"
    if args.config or os.environ.get(ENV_CONFIG):
        return "budgets"
    default = parse_ledger_url(default_ledger_url())
    return "calls" if default is not None and os.path.isfile(default) else "budgets"


def _report(args: argparse.Namespace) -> int:
    tz = zone(args.tz)
    since, until = resolve_period(args, tz, month_start)
    if args.top < 0:
        raise ConfigError(f"--top {args.top}: must be 0 or more")
    if _source(args) == "calls":
        return report_calls(args, check_dimensions(_split(args.by or ["model"])), tz, since, until)
    if args.format == "focus":
        raise ConfigError("--format focus: FOCUS rows come from the call ledger (--source calls)")
    by = check_groups(_split(args.by or ["model"]))
    from ._cli import _config, _opened

    config = _config(args)
    with _opened(config) as store:
        per = {b.id: b.per for b in config.budgets}
        report = build_report(store, since.timestamp(), until.timestamp(), by, args.tz, per=per)
    REPORT_FORMATS[args.format](report, since, until)
    return 0


def _split(values: Sequence[str]) -> List[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
