"""The period of ``otel-ai-cost report`` and ``recommend`` (and the dashboard's named periods): a
``--period`` name, or ``--since``/``--until`` as dates, dates and times, or durations before now."""
from __future__ import annotations

import argparse
import re
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Tuple

from .errors import ConfigError

PERIODS = ("day", "week", "month", "mtd", "qtd")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DURATION = re.compile(r"^\d+(\.\d+)?[smhdw]$")
# The start of the period when --since is not given: f(until, now).
DefaultSince = Callable[[datetime, datetime], datetime]


def period(name: str, now: datetime) -> Tuple[datetime, datetime]:
    """day: since midnight today; week: since Monday; month: the last 30 days; mtd / qtd: since the
    first day of this month / quarter. All up to now, in ``now``'s time zone."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if name == "day":
        return midnight, now
    if name == "week":
        return midnight - timedelta(days=now.weekday()), now
    if name == "month":
        return now - timedelta(days=30), now
    if name == "mtd":
        return midnight.replace(day=1), now
    if name == "qtd":
        return midnight.replace(month=(now.month - 1) // 3 * 3 + 1, day=1), now
    raise ConfigError(f"--period {name!r}: one of {', '.join(PERIODS)}")


def when(text: str, option: str, tz: Any, now: datetime, end_of_day: bool = False) -> datetime:
    """A WHEN of --since / --until: a date (midnight in ``tz``; ``end_of_day``: the next midnight), a date
    and time (with or without an offset) or a duration before ``now`` (7d, 12h)."""
    text = text.strip()
    if _DATE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{option} {text!r}: not a date (YYYY-MM-DD)") from None
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time(), tz)
    if _DURATION.match(text):
        from .budgets._windows import parse_duration

        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected a date (2026-11-01), a date and time (2026-11-01T12:00, optionally with "
            "an offset) or a duration before now (7d, 12h)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def month_start(until: datetime, now: datetime) -> datetime:
    """``report``'s default --since: the start of the current month."""
    return datetime(now.year, now.month, 1, tzinfo=now.tzinfo)


def thirty_days_before(until: datetime, now: datetime) -> datetime:
    """``recommend``'s default --since: 30 days before --until (now by default: --period month)."""
    return until - timedelta(days=30)


def resolve_period(args: argparse.Namespace, tz: Any, default_since: DefaultSince) -> Tuple[datetime, datetime]:
    """[since, until) from ``args.period`` or ``args.since`` / ``args.until`` (until: now by default;
    since: ``default_since(until, now)``). Raises ConfigError naming the option."""
    if args.period and (args.since or args.until):
        raise ConfigError("--period: give either --period or --since/--until, not both")
    now = datetime.now(tz)
    if args.period:
        return period(args.period, now)
    until = when(args.until, "--until", tz, now, end_of_day=True) if args.until else now
    since = when(args.since, "--since", tz, now) if args.since else default_since(until, now)
    if since >= until:
        raise ConfigError(f"the period is empty: --since {since.isoformat()} is not before --until {until.isoformat()}")
    return since, until


def add_period_options(parser: argparse.ArgumentParser, period_help: str, since_help: str, until_help: str) -> None:
    """--period, --since and --until (WHEN: see ``when``)."""
    parser.add_argument("--period", choices=PERIODS, help=period_help)
    parser.add_argument("--since", metavar="WHEN", help=since_help)
    parser.add_argument("--until", metavar="WHEN", help=until_help)


def add_tz_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--tz ZONE, UTC by default."""
    parser.add_argument("--tz", metavar="ZONE", default="UTC", help=help_text)
