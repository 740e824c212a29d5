"""``otel-ai-cost budget ...``: see and change budgets in the configured store (and the registration of
``otel-ai-cost report``, in ``_cli_report``).

    otel-ai-cost budget list [--json]
    otel-ai-cost budget show ID [--key K] [--last N]
    otel-ai-cost budget set ID LIMIT_USD [--key K] [--note TEXT]
    otel-ai-cost budget set ID --clear [--key K] [--note TEXT]
    otel-ai-cost budget adjust ID AMOUNT_USD [--key K] [--note TEXT]   # AMOUNT_USD may be negative: -20
    otel-ai-cost budget freeze|unfreeze ID [--key K] [--note TEXT]
    otel-ai-cost budget reset ID [--key K] [--note TEXT]

Every command takes ``--config FILE`` (default: ``$OTEL_AI_COST_CONFIG``), the YAML file with the
``budgets:`` and ``store:`` sections. Every change is written to the store's ledger with who made it
and the note; running processes apply limits and freezes within their refresh time (1 s by default).
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import socket
import sqlite3
import sys
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Type

from .._cli_format import money
from ..config import ENV_CONFIG
from ..errors import ConfigError
from ._book import BudgetBook
from ._cli_render import (
    describe_entry,
    percent,
    print_usage,
    status_text,
    threshold_text,
    time_text,
    window_label,
)
from ._cli_report import register_report
from ._config import BudgetConfig, load_budget_config
from ._decision import BudgetUsage
from ._model import Budget, from_nanos
from ._store import ALL_KEYS, BudgetStore

PROG = "otel-ai-cost"
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

    register_report(subparsers, common)


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


def _store_errors() -> Tuple[Type[BaseException], ...]:
    errors: List[Type[BaseException]] = [sqlite3.Error, OSError]
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
        "window": window_label(budget, usage.window_key),
        "window_key": usage.window_key,
        "per": budget.per,
        "key": key_label,
        "limit": usage.limit,
        "spent": usage.spent,
        "reserved": usage.reserved,
        "remaining": usage.remaining,
        "used": percent(usage.spent + usage.reserved, usage.limit),
        "status": status_text(budget, usage),
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
    print_usage(rows)
    return 0


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
        window = window_label(budget, usage.window_key)
        renews = f", renews at {time_text(usage.window_end.timestamp())}" if usage.window_end else ""
        print(f"budget {budget.id}", file=out)
        print(f"  window:      {window}{renews}", file=out)
        print(f"  per:         {budget.per or '- (one budget for every call it covers)'}", file=out)
        select = ", ".join(f"{k}={v}" for k, v in (budget.selector or {}).items()) or "every call"
        print(f"  select:      {select}", file=out)
        if budget.shadow:
            print("  shadow:      yes (decisions are recorded, calls are never changed)", file=out)
        print(f"  limit:       {money(budget.limit_usd)} in the configuration", file=out)
        overrides = [(k, c.limit) for k, c in sorted(controls.items()) if c.limit is not None]
        if overrides:
            def scope_of(k: str) -> str:
                return k if k != ALL_KEYS else "every partition" if budget.per else "the budget"

            text = "; ".join(f"{money(from_nanos(limit))} for {scope_of(k)}" for k, limit in overrides)
            print(f"  override:    {text}", file=out)
        frozen = [k for k, c in sorted(controls.items()) if c.frozen]
        if frozen:
            text = ", ".join("the whole budget" if k == ALL_KEYS else f"{budget.per}={k}" for k in frozen)
            print(f"  frozen:      {text}", file=out)
        else:
            print("  frozen:      no", file=out)
        in_force = "" if key is None or not budget.per else f" for {budget.per}={key}"
        origin = "override" if usage.overridden else "configuration"
        print(f"  in force:    {money(usage.limit)}{in_force} ({origin})", file=out)
        print(f"  thresholds:  {threshold_text(budget, usage.limit)}", file=out)
        policy = budget.on_expired_hold or config.on_expired_hold
        what = "charged to its window at its estimate" if policy == "charge_estimate" else "dropped"
        print(f"  on expiry:   {policy} (a hold its call never settled is {what} at hold_ttl)", file=out)

        print(f"usage ({window}):", file=out)
        if key is not None or budget.per is None:
            shown = [_usage_row(budget, book.usage(budget.id, scope), scope or "-")]
        else:
            shown = _usage_rows(config, store, [budget])
        print_usage(shown, with_budget=False)
        if hasattr(store, "holds"):  # which holds are stale (issue 8.3d)
            from ._holds import hold_lines

            for line in hold_lines(store.holds(budget.id, key), money):
                print(line, file=out)

        if args.last:
            entries = store.ledger(budget_id=budget.id, key=key if key else None, last=args.last)
            print(f"ledger (last {len(entries)}):" if entries else "ledger: no entries", file=out)
            for e in entries:
                print(f"  {describe_entry(e)}", file=out)
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
    was = f"the override {money(previous)}" if previous is not None else f"the configured {money(budget.limit_usd)}"
    if limit is None:
        if previous is None:
            print(f"{_who(budget, key)}: no override to clear; the limit in force is {money(now.limit)}.")
        else:
            print(f"{_who(budget, key)}: override {money(previous)} cleared; the limit in force is "
                  f"{money(now.limit)}. {_refresh_note()}")
    else:
        print(f"{_who(budget, key)}: limit set to {money(limit)} (was {was}). {_refresh_note()}")
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
    floor = "" if applied == amount else f" (asked {money(amount)}: the spend cannot go below zero)"
    print(f"{_who(budget, key)}: spend of {window_label(budget, usage.window_key)} adjusted by {money(applied)}"
          f"{floor}; now spent {money(usage.spent)} + reserved {money(usage.reserved)} of {money(usage.limit)}.")
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
    holds = f"; holds in flight ({money(usage.reserved)}) stay" if usage.reserved else ""
    print(f"{_who(budget, key)}: removed {money(removed)} of spend from {window_label(budget, usage.window_key)}"
          f"{holds}.")
    return 0
