"""``otel-ai-cost budget ...`` and ``otel-ai-cost report``: see and change budgets in the configured
store, and report spend from its ledger.

    otel-ai-cost budget list [--json]
    otel-ai-cost budget show ID [--key K] [--last N]
    otel-ai-cost budget set ID LIMIT_USD [--key K] [--note TEXT]
    otel-ai-cost budget set ID --clear [--key K] [--note TEXT]
    otel-ai-cost budget adjust ID AMOUNT_USD [--key K] [--note TEXT]   # AMOUNT_USD may be negative: -20
    otel-ai-cost budget freeze|unfreeze ID [--key K] [--note TEXT]
    otel-ai-cost budget reset ID [--key K] [--note TEXT]
    otel-ai-cost report [--since WHEN] [--until WHEN] [--by GROUP ...] [--format table|csv|json] [--tz ZONE]

Every command takes ``--config FILE`` (default: ``$OTEL_AI_COST_CONFIG``), the YAML file with the
``budgets:`` and ``store:`` sections. Every change is written to the store's ledger with who made it
and the note; running processes apply limits and freezes within their refresh time (1 s by default).
"""
from __future__ import annotations

import argparse
import csv
import getpass
import json
import os
import re
import socket
import sqlite3
import sys
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from ..errors import ConfigError
from ._book import BudgetBook
from ._config import BudgetConfig, load_budget_config
from ._decision import BudgetUsage
from ._model import Budget, from_nanos
from ._report import GROUPS, Report, build_report, check_groups, zone
from ._store import ALL_KEYS, BudgetStore, LedgerEntry
from ._windows import CalendarWindow, RollingWindow

PROG = "otel-ai-cost"
ENV_CONFIG = "OTEL_AI_COST_CONFIG"
DEFAULT_LAST = 10


# ---------------------------------------------------------------------------------------------------
# Arguments


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Add the ``budget`` and ``report`` commands to the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help=f"the YAML file with the budgets: and store: sections (default: ${ENV_CONFIG})"
    )
    changes = argparse.ArgumentParser(add_help=False)
    changes.add_argument("--note", metavar="TEXT", help="why: recorded in the ledger with the change")

    budget = subparsers.add_parser(
        "budget",
        help="see and change the budgets in the configured store",
        description="See the budgets of the configuration file and their usage in the store, and change them at "
        "run time: override a limit, freeze, adjust or reset the spend. Every change goes to the store's ledger; "
        "running processes apply limits and freezes within their refresh time (1 s by default).",
    )
    sub = budget.add_subparsers(dest="budget_command", metavar="{list,show,set,adjust,freeze,unfreeze,reset}")
    sub.required = True

    listing = sub.add_parser(
        "list", parents=[common], help="every budget and its usage in the current window (one line per partition)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)

    show = sub.add_parser("show", parents=[common], help="a budget's definition, limit in force, usage and ledger")
    show.add_argument("budget_id", metavar="ID")
    show.add_argument("--key", metavar="K", help="one partition of a per-key budget (e.g. a tenant id)")
    show.add_argument("--last", metavar="N", type=int, default=DEFAULT_LAST,
                      help=f"how many of the latest ledger entries to show (default: {DEFAULT_LAST})")
    show.set_defaults(func=_show)

    set_ = sub.add_parser(
        "set",
        parents=[common, changes],
        help="override a budget's limit (or --clear the override)",
        description="Use LIMIT_USD instead of the configured limit_usd, for every partition of the budget or, with "
        "--key, for one. Thresholds stay fractions of the limit. --clear goes back to the configuration.",
    )
    set_.add_argument("budget_id", metavar="ID")
    set_.add_argument("limit", metavar="LIMIT_USD", nargs="?", help="the new limit in USD, e.g. 150 or 12.50")
    set_.add_argument("--clear", action="store_true", help="remove the override: use the configured limit again")
    set_.add_argument("--key", metavar="K", help="one partition of a per-key budget (default: every partition)")
    set_.set_defaults(func=_set)

    adjust = sub.add_parser(
        "adjust",
        parents=[common, changes],
        help="add to (or, negative, remove from) the spend of the current window",
        description="Add AMOUNT_USD to the spend of the budget's current window: positive for a cost the budget "
        "did not see, negative for a credit, refund or correction: `budget adjust team -20` (a negative number is "
        "taken as the amount; `budget adjust team --key acme -- -20` works too, with the options before --). "
        "The spend never goes below zero.",
    )
    adjust.add_argument("budget_id", metavar="ID")
    adjust.add_argument("amount", metavar="AMOUNT_USD", help="USD to add; negative to remove, e.g. -20")
    adjust.add_argument("--key", metavar="K", help="the partition of a per-key budget (required for those)")
    adjust.set_defaults(func=_adjust)

    for name, help_text in (
        ("freeze", "refuse every call a budget (or, with --key, one partition) covers"),
        ("unfreeze", "lift a freeze (give the same --key it was set with)"),
    ):
        command = sub.add_parser(name, parents=[common, changes], help=help_text)
        command.add_argument("budget_id", metavar="ID")
        command.add_argument("--key", metavar="K", help="one partition of a per-key budget (default: the whole budget)")
        command.set_defaults(func=_freeze, frozen=name == "freeze")

    reset = sub.add_parser(
        "reset",
        parents=[common, changes],
        help="zero the spend of the current window (holds in flight stay)",
    )
    reset.add_argument("budget_id", metavar="ID")
    reset.add_argument("--key", metavar="K", help="the partition of a per-key budget (required for those)")
    reset.set_defaults(func=_reset)

    report = subparsers.add_parser(
        "report",
        parents=[common],
        help="spend by model, tenant, user, day or budget over a period, from the budget ledger",
        description="Spend over a period from the settle entries of the budget ledger, with the number of calls, "
        "of calls a budget refused (BLOCKED) and the operator adjustments (ADJUSTED: `budget adjust`, negative "
        "for a credit), listed with their notes. A call that matches several budgets counts once (with --by budget, once "
        "in each of its budgets; the total still counts it once). WHEN is a date (2026-11-01: midnight in --tz; "
        "as --until, the end of that day), a date and time (2026-11-01T12:00, with or without an offset), or a "
        "duration before now (7d, 12h). The period is --since (default: the start of the current month) up to "
        "--until (default: now).",
    )
    report.add_argument("--since", metavar="WHEN", help="start of the period (default: the start of this month)")
    report.add_argument("--until", metavar="WHEN", help="end of the period (a date: the end of that day; default: now)")
    report.add_argument(
        "--by",
        metavar="GROUP",
        nargs="+",
        action="extend",
        help=f"group by these, in order: {', '.join(GROUPS)}, or an attribute key such as service.name "
        "(default: model)",
    )
    report.add_argument("--format", choices=("table", "csv", "json"), default="table", help="default: table")
    report.add_argument("--tz", metavar="ZONE", default="UTC", help="time zone of dates and days (default: UTC)")
    report.set_defaults(func=_report)


# ---------------------------------------------------------------------------------------------------
# Configuration and store


def _config(args: argparse.Namespace) -> BudgetConfig:
    path = args.config or os.environ.get(ENV_CONFIG)
    if not path:
        raise ConfigError(
            f"no configuration: give --config FILE or set {ENV_CONFIG} to the YAML file with the budgets: and "
            "store: sections"
        )
    config = load_budget_config(path)
    if config.store_url == "memory://":
        raise ConfigError(
            f"{path}: store.url: memory:// keeps the budgets inside one process, where this command cannot see them; "
            "use a shared store: sqlite:///path/budgets.db or redis://host:6379/0"
        )
    return config


def _store_errors() -> Tuple[type, ...]:
    errors: List[type] = [sqlite3.Error, OSError]
    try:
        import redis

        errors.append(redis.RedisError)
    except ImportError:  # pragma: no cover - redis is optional
        pass
    return tuple(errors)


@contextmanager
def _opened(config: BudgetConfig) -> Iterator[BudgetStore]:
    """The configured store; its failures become ConfigErrors naming the store."""
    store = None
    try:
        store = config.open_raw_store()  # an operator's command: the store itself, errors as they come
        yield store
    except _store_errors() as exc:
        raise ConfigError(f"budget store {_safe_url(config.store_url)}: {exc}") from exc
    finally:
        if store is not None:
            try:
                store.close()
            except Exception:  # noqa: BLE001 - closing must not hide the result
                pass


def _safe_url(url: str) -> str:
    return re.sub(r"://[^@/]*@", "://***@", url)  # no password in messages


def _book(config: BudgetConfig, store: BudgetStore) -> BudgetBook:
    # override_refresh=0: this command reads the controls in force now.
    return BudgetBook(
        config.budgets, store, hold_ttl=config.hold_ttl, on_store_error=config.on_store_error, override_refresh=0
    )


def _budget(config: BudgetConfig, budget_id: str, args: argparse.Namespace) -> Budget:
    for budget in config.budgets:
        if budget.id == budget_id:
            return budget
    where = args.config or os.environ.get(ENV_CONFIG)
    known = ", ".join(b.id for b in config.budgets) or "(none)"
    raise ConfigError(f"no budget {budget_id!r} in {where}; the budgets are: {known}")


def _control_key(budget: Budget, key: Optional[str]) -> str:
    """--key for set/freeze/unfreeze: none = the whole budget."""
    if key is None:
        return ALL_KEYS
    if budget.per is None:
        raise ConfigError(f"budget {budget.id!r} has no per: attribute, so it has no partitions: drop --key")
    if key == ALL_KEYS:
        raise ConfigError("--key: give a partition key, or leave --key out for the whole budget")
    return key


def _partition(book: BudgetBook, budget: Budget, key: Optional[str]) -> str:
    """--key for adjust/reset: required for a per-key budget."""
    if budget.per is None:
        return _control_key(budget, key)
    if not key:
        keys = book.partitions(budget.id)
        hint = f" (with spend now: {', '.join(keys[:10])}{', ...' if len(keys) > 10 else ''})" if keys else ""
        raise ConfigError(f"budget {budget.id!r} is per {budget.per}: give the partition with --key K{hint}")
    return key


def _audit(args: argparse.Namespace, command: str) -> Dict[str, Any]:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    attributes: Dict[str, Any] = {"actor": f"{user}@{socket.gethostname()}", "via": f"{PROG} budget {command}"}
    if getattr(args, "note", None):
        attributes["note"] = args.note
    return attributes


# ---------------------------------------------------------------------------------------------------
# Formatting


def _money(value: Decimal) -> str:
    """$12.50, $0.0123, -$3.00: two decimals at least, six at most."""
    value = value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
    sign = "-" if value < 0 else ""
    value = abs(value)
    text = f"{value:.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{sign}${whole}.{fraction.ljust(2, '0')}"


def _usd_number(value: Decimal) -> str:
    """A plain USD number for CSV and JSON: 0.031, 12.5."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _percent(spent: Decimal, limit: Decimal) -> str:
    if limit == 0:
        return "-" if spent == 0 else "inf%"
    return f"{spent / limit * 100:.1f}%"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = (), out: Optional[TextIO] = None
) -> None:
    out = out or sys.stdout
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    print(line(headers), file=out)
    for row in rows:
        print(line(row), file=out)


def _window_label(budget: Budget, window_key: str) -> str:
    window = budget.window
    if isinstance(window, CalendarWindow):
        return f"{window.unit} {window_key} ({window.tz})"
    if isinstance(window, RollingWindow):
        return f"rolling {_duration(window.duration)}"
    return "lifetime"


def _duration(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _status(budget: Budget, usage: BudgetUsage) -> str:
    flags = []
    if usage.frozen:
        flags.append("frozen")
    if usage.overridden:
        flags.append("limit overridden")
    if budget.shadow:
        flags.append("shadow")
    return ", ".join(flags)


def _time(seconds: float, tz: Any = timezone.utc) -> str:
    moment = datetime.fromtimestamp(seconds, tz)
    text = moment.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z") if tz is timezone.utc else text


def _describe_entry(e: LedgerEntry) -> str:
    amount = e.amount
    if e.kind in ("freeze", "unfreeze"):
        what = ""
    elif e.kind == "set_limit":
        previous = e.attributes.get("previous_limit_nanos")
        what = f"limit {_money(amount)}" + (f" (was {_money(from_nanos(previous))})" if previous is not None else "")
    elif e.kind == "clear_limit":
        what = f"override {_money(amount)} removed" if e.amount_nanos else "no override to remove"
    else:
        what = _money(amount)
    key = e.key if e.key != ALL_KEYS else "*"
    details = {k: v for k, v in e.attributes.items() if k not in ("previous_limit_nanos", "requested_nanos")}
    requested = e.attributes.get("requested_nanos")
    if e.kind == "adjust" and requested is not None and requested != e.amount_nanos:
        what += f" (asked {_money(from_nanos(requested))})"
    extra = " ".join(f"{k}={v}" for k, v in sorted(details.items()))
    parts = [_time(e.time), e.kind.ljust(11), f"key={key}"]
    if e.window_key:
        parts.append(f"window={e.window_key}")
    if what:
        parts.append(what)
    parts.append(f"id={e.reservation_id[:12]}")
    if extra:
        parts.append(extra)
    return "  ".join(parts)


# ---------------------------------------------------------------------------------------------------
# budget list / show


def _partitions(book: BudgetBook, budget: Budget, store: BudgetStore) -> List[str]:
    """The partitions to show: those with usage now, and those with a control of their own."""
    if budget.per is None:
        return [ALL_KEYS]
    keys = set(book.partitions(budget.id))
    keys |= {k for (b, k) in store.controls() if b == budget.id and k != ALL_KEYS}
    return sorted(keys)


def _usage_row(budget: Budget, usage: BudgetUsage, key_label: str) -> Dict[str, Any]:
    return {
        "budget": budget.id,
        "window": _window_label(budget, usage.window_key),
        "window_key": usage.window_key,
        "per": budget.per,
        "key": key_label,
        "limit": usage.limit,
        "spent": usage.spent,
        "reserved": usage.reserved,
        "remaining": usage.remaining,
        "used": _percent(usage.spent + usage.reserved, usage.limit),
        "status": _status(budget, usage),
        "overridden": usage.overridden,
        "frozen": usage.frozen,
    }


def _usage_rows(config: BudgetConfig, store: BudgetStore, budgets: Sequence[Budget]) -> List[Dict[str, Any]]:
    book = _book(config, store)
    rows = []
    for budget in budgets:
        keys = _partitions(book, budget, store)
        if not keys:  # a per-key budget nobody has used in this window: show its limit in force
            rows.append(_usage_row(budget, book.usage(budget.id, ALL_KEYS), "(none yet)"))
        for key in keys:
            rows.append(_usage_row(budget, book.usage(budget.id, key), key or "-"))
    return rows


def _print_usage(rows: Sequence[Dict[str, Any]], with_budget: bool = True) -> None:
    headers = (["BUDGET", "WINDOW", "PER"] if with_budget else []) + [
        "KEY", "LIMIT", "SPENT", "RESERVED", "REMAINING", "USED", "STATUS"
    ]
    cells = [
        ([r["budget"], r["window"], r["per"] or "-"] if with_budget else [])
        + [
            r["key"], _money(r["limit"]), _money(r["spent"]), _money(r["reserved"]), _money(r["remaining"]), r["used"],
            r["status"],
        ]
        for r in rows
    ]
    first = 3 if with_budget else 0
    _table(headers, cells, right=range(first + 1, first + 6))


def _list(args: argparse.Namespace) -> int:
    config = _config(args)
    with _opened(config) as store:
        rows = _usage_rows(config, store, config.budgets)
    if args.json:
        def plain(row: Dict[str, Any]) -> Dict[str, Any]:
            return {k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}

        json.dump({"budgets": [plain(r) for r in rows]}, sys.stdout, indent=1)
        print()
        return 0
    if not config.budgets:
        print(f"no budgets in {args.config or os.environ.get(ENV_CONFIG)}")
        return 0
    _print_usage(rows)
    return 0


def _threshold_text(budget: Budget, limit: Decimal) -> str:
    parts = []
    for t in budget.thresholds:
        action = t.action.kind
        if action == "downgrade":
            action = f"downgrade to {t.action.model}"
        elif action == "throttle":
            action = f"throttle {t.action.seconds:g}s"
        parts.append(f"{float(t.at * 100):g}% {action} ({_money(limit * t.at)})")
    return ", ".join(parts)


def _show(args: argparse.Namespace) -> int:
    config = _config(args)
    budget = _budget(config, args.budget_id, args)
    key = None if args.key is None else _control_key(budget, args.key)
    if args.last < 0:
        raise ConfigError(f"--last {args.last}: must be 0 or more")
    out = sys.stdout
    with _opened(config) as store:
        book = _book(config, store)
        controls = {k: c for (b, k), c in store.controls().items() if b == budget.id}
        scope = key if key is not None else ALL_KEYS
        usage = book.usage(budget.id, scope)
        window = _window_label(budget, usage.window_key)
        renews = f", renews at {_time(usage.window_end.timestamp())}" if usage.window_end else ""
        print(f"budget {budget.id}", file=out)
        print(f"  window:      {window}{renews}", file=out)
        print(f"  per:         {budget.per or '- (one budget for every call it covers)'}", file=out)
        select = ", ".join(f"{k}={v}" for k, v in (budget.selector or {}).items()) or "every call"
        print(f"  select:      {select}", file=out)
        if budget.shadow:
            print("  shadow:      yes (decisions are recorded, calls are never changed)", file=out)
        print(f"  limit:       {_money(budget.limit_usd)} in the configuration", file=out)
        overrides = [(k, c.limit) for k, c in sorted(controls.items()) if c.limit is not None]
        if overrides:
            def scope_of(k: str) -> str:
                return k if k != ALL_KEYS else "every partition" if budget.per else "the budget"

            text = "; ".join(f"{_money(from_nanos(limit))} for {scope_of(k)}" for k, limit in overrides)
            print(f"  override:    {text}", file=out)
        frozen = [k for k, c in sorted(controls.items()) if c.frozen]
        if frozen:
            text = ", ".join("the whole budget" if k == ALL_KEYS else f"{budget.per}={k}" for k in frozen)
            print(f"  frozen:      {text}", file=out)
        else:
            print("  frozen:      no", file=out)
        in_force = "" if key is None or not budget.per else f" for {budget.per}={key}"
        origin = "override" if usage.overridden else "configuration"
        print(f"  in force:    {_money(usage.limit)}{in_force} ({origin})", file=out)
        print(f"  thresholds:  {_threshold_text(budget, usage.limit)}", file=out)

        print(f"usage ({window}):", file=out)
        if key is not None or budget.per is None:
            shown = [_usage_row(budget, book.usage(budget.id, scope), scope or "-")]
        else:
            shown = _usage_rows(config, store, [budget])
        _print_usage(shown, with_budget=False)
        if hasattr(store, "holds"):  # which holds are stale (issue 8.3d)
            from ._holds import hold_lines

            for line in hold_lines(store.holds(budget.id, key), _money):
                print(line, file=out)

        if args.last:
            entries = store.ledger(budget_id=budget.id, key=key if key else None, last=args.last)
            print(f"ledger (last {len(entries)}):" if entries else "ledger: no entries", file=out)
            for e in entries:
                print(f"  {_describe_entry(e)}", file=out)
    return 0


# ---------------------------------------------------------------------------------------------------
# budget set / adjust / freeze / unfreeze / reset


def _amount(text: str, what: str, negative: bool = False) -> Decimal:
    try:
        value = Decimal(text.strip().lstrip("$"))
    except (InvalidOperation, AttributeError):
        value = None
    if value is None or not value.is_finite():
        raise ConfigError(f"{what} {text!r}: not a number of USD (e.g. 150 or 12.50)")
    if value < 0 and not negative:
        raise ConfigError(f"{what} {text!r}: must be zero or more")
    return value


def _who(budget: Budget, key: str) -> str:
    if key == ALL_KEYS:
        return f"budget {budget.id!r}" + (" (every partition)" if budget.per else "")
    return f"budget {budget.id!r} for {budget.per}={key}"


def _refresh_note() -> str:
    return "Running processes apply it within their override refresh (1 s by default)."


def _set(args: argparse.Namespace) -> int:
    if args.clear == (args.limit is not None):
        raise ConfigError("budget set: give either LIMIT_USD or --clear")
    config = _config(args)
    budget = _budget(config, args.budget_id, args)
    key = _control_key(budget, args.key)
    limit = None if args.clear else _amount(args.limit, "LIMIT_USD")
    with _opened(config) as store:
        book = _book(config, store)
        previous = book.set_limit(budget.id, limit, key, _audit(args, "set"))
        now = book.usage(budget.id, key)
    was = f"the override {_money(previous)}" if previous is not None else f"the configured {_money(budget.limit_usd)}"
    if limit is None:
        if previous is None:
            print(f"{_who(budget, key)}: no override to clear; the limit in force is {_money(now.limit)}.")
        else:
            print(f"{_who(budget, key)}: override {_money(previous)} cleared; the limit in force is "
                  f"{_money(now.limit)}. {_refresh_note()}")
    else:
        print(f"{_who(budget, key)}: limit set to {_money(limit)} (was {was}). {_refresh_note()}")
    return 0


def _adjust(args: argparse.Namespace) -> int:
    config = _config(args)
    budget = _budget(config, args.budget_id, args)
    amount = _amount(args.amount, "AMOUNT_USD", negative=True)
    with _opened(config) as store:
        book = _book(config, store)
        key = _partition(book, budget, args.key)
        applied = book.adjust(budget.id, amount, key, _audit(args, "adjust"))
        usage = book.usage(budget.id, key)
    floor = "" if applied == amount else f" (asked {_money(amount)}: the spend cannot go below zero)"
    print(f"{_who(budget, key)}: spend of {_window_label(budget, usage.window_key)} adjusted by {_money(applied)}"
          f"{floor}; now spent {_money(usage.spent)} + reserved {_money(usage.reserved)} of {_money(usage.limit)}.")
    return 0


def _freeze(args: argparse.Namespace) -> int:
    config = _config(args)
    budget = _budget(config, args.budget_id, args)
    key = _control_key(budget, args.key)
    command = "freeze" if args.frozen else "unfreeze"
    with _opened(config) as store:
        book = _book(config, store)
        change = book.freeze if args.frozen else book.unfreeze
        was = change(budget.id, key, _audit(args, command))
        others = [k for (b, k), c in store.controls().items() if b == budget.id and c.frozen and k != key]
    who = _who(budget, key) if key else f"budget {budget.id!r}"
    unfreeze = f"{PROG} budget unfreeze {budget.id}" + (f" --key {key}" if key else "")
    if args.frozen:
        state = "was frozen already" if was else "frozen"
        print(f"{who}: {state}; every call it covers is refused until `{unfreeze}`. {_refresh_note()}")
    else:
        state = "unfrozen" if was else "was not frozen"
        print(f"{who}: {state}." + (f" {_refresh_note()}" if was else ""))
        if others:
            where = ", ".join("the whole budget" if k == ALL_KEYS else f"{budget.per}={k}" for k in sorted(others))
            print(f"still frozen: {where}")
    return 0


def _reset(args: argparse.Namespace) -> int:
    config = _config(args)
    budget = _budget(config, args.budget_id, args)
    with _opened(config) as store:
        book = _book(config, store)
        key = _partition(book, budget, args.key)
        removed = book.reset(budget.id, key, _audit(args, "reset"))
        usage = book.usage(budget.id, key)
    holds = f"; holds in flight ({_money(usage.reserved)}) stay" if usage.reserved else ""
    print(f"{_who(budget, key)}: removed {_money(removed)} of spend from {_window_label(budget, usage.window_key)}"
          f"{holds}.")
    return 0


# ---------------------------------------------------------------------------------------------------
# report

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _when(text: str, option: str, tz: Any, now: datetime, end_of_day: bool = False) -> datetime:
    text = text.strip()
    if _DATE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{option} {text!r}: not a date (YYYY-MM-DD)") from None
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time(), tz)
    if re.match(r"^\d+(\.\d+)?[smhdw]$", text):
        from ._windows import parse_duration

        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected a date (2026-11-01), a date and time (2026-11-01T12:00, optionally with "
            "an offset) or a duration before now (7d, 12h)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def _period(args: argparse.Namespace, tz: Any) -> Tuple[datetime, datetime]:
    now = datetime.now(tz)
    until = _when(args.until, "--until", tz, now, end_of_day=True) if args.until else now
    if args.since:
        since = _when(args.since, "--since", tz, now)
    else:
        since = datetime(now.year, now.month, 1, tzinfo=tz)
    if since >= until:
        raise ConfigError(f"the period is empty: --since {since.isoformat()} is not before --until {until.isoformat()}")
    return since, until


def _report(args: argparse.Namespace) -> int:
    by = check_groups(_split(args.by or ["model"]))
    tz = zone(args.tz)
    since, until = _period(args, tz)
    config = _config(args)
    with _opened(config) as store:
        per = {b.id: b.per for b in config.budgets}
        report = build_report(store, since.timestamp(), until.timestamp(), by, args.tz, per=per)
    {"table": _report_table, "csv": _report_csv, "json": _report_json}[args.format](report, since, until)
    return 0


def _split(values: Sequence[str]) -> List[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _report_table(report: Report, since: datetime, until: datetime) -> None:
    print(f"spend from {since.isoformat(timespec='seconds')} to {until.isoformat(timespec='seconds')}, "
          f"by {', '.join(report.by)}")
    total = report.total.spend
    # The ADJUSTED column is there when the period has `budget adjust` entries.
    with_adjusted = bool(report.adjustments)
    headers = [name.upper() for name in report.by] + ["CALLS", "BLOCKED", "SPEND"] + (
        ["ADJUSTED"] if with_adjusted else []) + ["SHARE"]

    def cells(r: Any, share: str) -> List[str]:
        adjusted = [_money(r.adjusted) if r.adjustments else "-"] if with_adjusted else []
        return [str(r.calls), str(r.blocked), _money(r.spend)] + adjusted + [share]

    rows = [list(r.group) + cells(r, _percent(r.spend, total) if total else "-") for r in report.rows]
    rows.append(["TOTAL"] + [""] * (len(report.by) - 1) + cells(report.total, "100.0%" if total else "-"))
    n = len(report.by)
    _table(headers, rows, right=range(n, n + len(headers) - len(report.by)))
    if "budget" in report.by or "key" in report.by:
        print("(a call that matches several budgets counts in each of them; the total counts it once)")
    if report.adjustments:
        print("(ADJUSTED: `budget adjust` changes, negative for credits and refunds; SPEND is what calls cost)")
        print(f"adjustments ({len(report.adjustments)}):")
        for e in report.adjustments:
            print(f"  {_adjustment_text(e, report.tz)}")


def _adjustment_text(e: LedgerEntry, tz: str) -> str:
    key = f" --key {e.key}" if e.key else ""
    parts = [_time(e.time, zone(tz) if tz != "UTC" else timezone.utc), f"{e.budget_id}{key}", _money(e.amount)]
    requested = e.attributes.get("requested_nanos")
    if requested is not None and requested != e.amount_nanos:
        parts[-1] += f" (asked {_money(from_nanos(requested))}: the spend cannot go below zero)"
    if e.attributes.get("note"):
        parts.append(f"note={e.attributes['note']!r}")
    if e.attributes.get("actor"):
        parts.append(f"by {e.attributes['actor']}")
    return "  ".join(parts)


def _report_csv(report: Report, since: datetime, until: datetime) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    with_adjusted = bool(report.adjustments)  # the adjusted_usd column: when the period has adjustments
    writer.writerow(list(report.by) + ["calls", "blocked", "spend_usd"] + (["adjusted_usd"] if with_adjusted else []))
    for r in report.rows:
        writer.writerow(list(r.group) + [r.calls, r.blocked, _usd_number(r.spend)]
                        + ([_usd_number(r.adjusted)] if with_adjusted else []))


def _report_json(report: Report, since: datetime, until: datetime) -> None:
    def row(r: Any, group: Dict[str, str]) -> Dict[str, Any]:
        out = {**group, "calls": r.calls, "blocked": r.blocked, "spend_usd": float(r.spend)}
        if report.adjustments:  # as in the table and CSV: when the period has adjustments
            out.update(adjustments=r.adjustments, adjusted_usd=float(r.adjusted))
        return out

    def adjustment(e: LedgerEntry) -> Dict[str, Any]:
        requested = e.attributes.get("requested_nanos", e.amount_nanos)
        return {"time": _time(e.time), "budget": e.budget_id, "key": e.key, "amount_usd": float(e.amount),
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
