"""Budgets from YAML: the ``budgets`` and ``store`` sections of the configuration file.

    budgets:
      - id: tenant-monthly
        limit_usd: 100
        window: {calendar: month, tz: Europe/Paris}   # or {rolling: 1h}, or lifetime
        per: tenant.id
        select: {gen_ai.provider.name: openai, gen_ai.request.model: [gpt-4o, o3]}
        thresholds:
          - {at: 0.8, action: warn}
          - {at: 0.9, action: downgrade, model: gpt-4o-mini}
          - {at: 0.95, action: throttle, seconds: 2}
          - {at: 1.0, action: block}
        shadow: false
    store:
      url: sqlite:///var/lib/otel-ai-cost/budgets.db   # or redis://..., rediss://..., memory://
      hold_ttl: 15m
      on_store_error: open                           # or closed
    raise_on_block: false   # let the processor raise for other instrumentations' spans

Without a ``store`` section the budgets live in SQLite, in ``default_store_url()``: a file in the
user's state directory, shared by the processes of this user on this host and kept across restarts.

Every error names the file, the key path (``budgets[2].window.tz``) and what to write instead.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Tuple, Union

import yaml

from ..errors import ConfigError
from ._book import BudgetBook
from ._model import Action, Budget, Threshold, threshold_problem
from ._store import BudgetStore
from ._windows import CALENDAR_UNITS, calendar, lifetime, parse_duration, rolling

_BUDGET_KEYS = {"id", "limit_usd", "window", "per", "select", "thresholds", "shadow"}
_THRESHOLD_KEYS = {"at", "action", "model", "seconds"}
_STORE_KEYS = {"url", "hold_ttl", "on_store_error", "prefix"}
# The top-level keys of the configuration file (OTEL_AI_COST_CONFIG).
TOP_LEVEL_KEYS = {"budgets", "store", "raise_on_block"}


def default_store_url() -> str:
    """``sqlite:///$XDG_STATE_HOME/otel-ai-cost/budgets.db`` (``~/.local/state/...`` by default)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return "sqlite:///" + os.path.join(state, "otel-ai-cost", "budgets.db").lstrip("/")


@dataclass(frozen=True)
class BudgetConfig:
    budgets: Tuple[Budget, ...]
    store_url: str = field(default_factory=default_store_url)
    hold_ttl: float = 900.0
    on_store_error: str = "open"
    redis_prefix: str = "ai_cost:budget"
    base_dir: Optional[str] = None  # relative SQLite paths are relative to the configuration file
    raise_on_block: bool = False
    source: str = "<config>"  # the file, for error messages

    def open_store(self, clock: Callable[[], float] = time.time) -> BudgetStore:
        """Open the configured store. Raises ConfigError naming the file, ``store.url`` and the reason."""
        try:
            return open_store(self.store_url, clock=clock, base_dir=self.base_dir, redis_prefix=self.redis_prefix)
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: store.url: {exc}") from None
        except Exception as exc:  # sqlite3.DatabaseError (not a database), OSError (permissions), ...
            raise ConfigError(f"{self.source}: store.url: cannot open {self.store_url!r}: {exc}") from None

    def book(self, clock: Callable[[], float] = time.time) -> BudgetBook:
        return BudgetBook(
            self.budgets,
            self.open_store(clock),
            clock=clock,
            hold_ttl=self.hold_ttl,
            on_store_error=self.on_store_error,
        )


def open_store(
    url: str,
    clock: Callable[[], float] = time.time,
    base_dir: Optional[str] = None,
    redis_prefix: str = "ai_cost:budget",
) -> BudgetStore:
    """``memory://``, ``sqlite:///absolute/path.db`` or ``sqlite://relative.db``, ``redis://``,
    ``rediss://`` (TLS), ``unix://``."""
    if url == "memory://":
        from ._memory import MemoryBudgetStore

        return MemoryBudgetStore(clock=clock)
    if url.startswith("sqlite://"):
        from ._sqlite import SQLiteBudgetStore

        path = url[len("sqlite://"):]
        if path.startswith("/"):
            try:
                os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"store url {url!r}: cannot create the directory: {exc.strerror}") from None
        if not path:
            raise ConfigError(f"store url {url!r} has no file path; write sqlite:///absolute/path/budgets.db")
        if base_dir and not os.path.isabs(path):
            path = os.path.join(base_dir, path)
        return SQLiteBudgetStore(path, clock=clock)
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            from ._redis import RedisBudgetStore

            return RedisBudgetStore(url, clock=clock, prefix=redis_prefix)
        except ImportError as exc:
            raise ConfigError(f"store url {url!r} needs the redis client: pip install redis") from exc
    raise ConfigError(f"store url {url!r} is not memory://, sqlite://..., redis://... or rediss://...")


class _Where:
    """A file and key path, to name in errors."""

    def __init__(self, source: str, path: str = "") -> None:
        self.source, self.path = source, path

    def __truediv__(self, part: Union[str, int]) -> "_Where":
        if isinstance(part, int):
            return _Where(self.source, f"{self.path}[{part}]")
        return _Where(self.source, f"{self.path}.{part}" if self.path else part)

    def error(self, reason: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.path}: {reason}")


def _mapping(value: Any, where: _Where, known: set) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(f"expected a mapping with keys {', '.join(sorted(known))}, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise (where / unknown[0]).error(f"unknown key; expected one of {', '.join(sorted(known))}")
    return value


def _decimal(value: Any, where: _Where, what: str) -> Decimal:
    if isinstance(value, bool):
        raise where.error(f"{what} must be a number, not {value!r}")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise where.error(f"{what} must be a number, not {value!r}") from None
    if not number.is_finite():
        raise where.error(f"{what} must be a finite number, not {value!r}")
    return number


def _window(value: Any, where: _Where):
    if value == "lifetime" or (isinstance(value, Mapping) and set(value) == {"lifetime"}):
        return lifetime()
    if isinstance(value, Mapping) and "calendar" in value:
        _mapping(value, where, {"calendar", "tz"})
        unit = value["calendar"]
        if unit not in CALENDAR_UNITS:
            raise (where / "calendar").error(f"{unit!r} is not one of {', '.join(CALENDAR_UNITS)}")
        tz = value.get("tz", "UTC")
        try:
            return calendar(unit, str(tz))
        except ConfigError:
            raise (where / "tz").error(f"unknown time zone {tz!r}; use an IANA name such as Europe/Paris") from None
    if isinstance(value, Mapping) and "rolling" in value:
        _mapping(value, where, {"rolling", "steps"})
        try:
            duration = parse_duration(value["rolling"])
        except ValueError as exc:
            raise (where / "rolling").error(str(exc)) from None
        steps = value.get("steps", 60)
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise (where / "steps").error(f"must be a positive integer, not {steps!r}")
        return rolling(duration, steps)
    raise where.error(
        f"{value!r} is not a window; write {{calendar: day|week|month, tz: Europe/Paris}}, {{rolling: 1h}} or lifetime"
    )


def _threshold(value: Any, where: _Where) -> Threshold:
    item = _mapping(value, where, _THRESHOLD_KEYS)
    for required in ("at", "action"):
        if required not in item:
            raise (where / required).error("missing; a threshold needs `at` (0.8 for 80%) and `action`")
    at = _decimal(item["at"], where / "at", "the fraction of the limit")
    problem = threshold_problem(at)
    if problem:
        raise (where / "at").error(f"{item['at']!r} {problem}")
    kind = item["action"]
    if kind not in ("warn", "block", "downgrade", "throttle"):
        raise (where / "action").error(f"{kind!r} is not one of warn, block, downgrade, throttle")
    if kind == "downgrade" and not isinstance(item.get("model"), str):
        raise (where / "model").error("a downgrade needs the model to use instead, e.g. model: gpt-4o-mini")
    seconds = None
    if kind == "throttle":
        if "seconds" not in item:
            raise (where / "seconds").error("a throttle needs the delay in seconds, e.g. seconds: 2")
        seconds = float(_decimal(item["seconds"], where / "seconds", "the delay"))
        if seconds <= 0:
            raise (where / "seconds").error(f"must be positive, not {item['seconds']!r}")
    return Threshold(at, Action(kind, model=item.get("model") if kind == "downgrade" else None, seconds=seconds))


def _selector(value: Any, where: _Where) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error("expected a mapping of attribute key to a value or a list of values")
    for key, wanted in value.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or any(isinstance(v, (Mapping, list)) or v is None for v in values):
            raise (where / str(key)).error(f"expected a value or a non-empty list of values, not {wanted!r}")
    return dict(value)


def _budget(value: Any, where: _Where) -> Budget:
    item = _mapping(value, where, _BUDGET_KEYS)
    for required in ("id", "limit_usd", "window"):
        if required not in item:
            raise (where / required).error("missing; every budget needs id, limit_usd and window")
    budget_id = item["id"]
    if not isinstance(budget_id, str) or not budget_id.strip():
        raise (where / "id").error(f"must be a non-empty string, not {budget_id!r}")
    limit = _decimal(item["limit_usd"], where / "limit_usd", "the limit in USD")
    if limit < 0:
        raise (where / "limit_usd").error(f"must be zero or more, not {item['limit_usd']!r}")
    per = item.get("per")
    if per is not None and (not isinstance(per, str) or not per):
        raise (where / "per").error(f"must be an attribute key such as tenant.id, or trace; not {per!r}")
    shadow = item.get("shadow", False)
    if not isinstance(shadow, bool):
        raise (where / "shadow").error(f"must be true or false, not {shadow!r}")
    thresholds_value = item.get("thresholds")
    thresholds: Optional[Tuple[Threshold, ...]] = None
    if thresholds_value is not None:
        if not isinstance(thresholds_value, list) or not thresholds_value:
            raise (where / "thresholds").error("expected a non-empty list of {at: 0.8, action: warn} entries")
        thresholds = tuple(_threshold(t, where / "thresholds" / i) for i, t in enumerate(thresholds_value))
    selector = _selector(item["select"], where / "select") if item.get("select") is not None else None
    kwargs = {"thresholds": thresholds} if thresholds is not None else {}
    window = _window(item["window"], where / "window")
    try:
        return Budget(budget_id, limit, window, per, selector, shadow=shadow, **kwargs)
    except ConfigError as exc:
        raise where.error(str(exc)) from None


def parse_budget_config(document: Any, source: str = "<config>", base_dir: Optional[str] = None) -> BudgetConfig:
    """Read a configuration document: ``budgets``, ``store`` and ``raise_on_block``."""
    root = _Where(source)
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(document).__name__}")
    unknown = sorted(str(k) for k in document if k not in TOP_LEVEL_KEYS)
    if unknown:
        raise (root / unknown[0]).error(f"unknown key; expected one of {', '.join(sorted(TOP_LEVEL_KEYS))}")
    raise_on_block = document.get("raise_on_block", False)
    if not isinstance(raise_on_block, bool):
        raise (root / "raise_on_block").error(f"must be true or false, not {raise_on_block!r}")
    items = document.get("budgets") or []
    if not isinstance(items, list):
        raise (root / "budgets").error("expected a list of budgets")
    budgets: List[Budget] = []
    seen = {}
    for i, item in enumerate(items):
        budget = _budget(item, root / "budgets" / i)
        if budget.id in seen:
            raise (root / "budgets" / i / "id").error(f"{budget.id!r} is already the id of budgets[{seen[budget.id]}]")
        seen[budget.id] = i
        budgets.append(budget)
    store = _mapping(document.get("store") or {}, root / "store", _STORE_KEYS)
    url = store.get("url", None)
    if url is None:
        url = default_store_url()
    if not isinstance(url, str):
        raise (root / "store" / "url").error(f"must be a string, not {url!r}")
    if not url.startswith(("memory://", "sqlite://", "redis://", "rediss://", "unix://")):
        raise (root / "store" / "url").error(f"{url!r} is not memory://, sqlite:///path, redis://... or rediss://...")
    hold_ttl = 900.0
    if "hold_ttl" in store:
        try:
            hold_ttl = parse_duration(store["hold_ttl"]).total_seconds()
        except ValueError as exc:
            raise (root / "store" / "hold_ttl").error(str(exc)) from None
    on_error = store.get("on_store_error", "open")
    if on_error not in ("open", "closed"):
        raise (root / "store" / "on_store_error").error(f"must be open or closed, not {on_error!r}")
    prefix = store.get("prefix", "ai_cost:budget")
    if not isinstance(prefix, str) or not prefix:
        raise (root / "store" / "prefix").error(f"must be a non-empty string, not {prefix!r}")
    return BudgetConfig(tuple(budgets), url, hold_ttl, on_error, prefix, base_dir, raise_on_block, source)


def load_budget_config(path: Union[str, Path]) -> BudgetConfig:
    """Read budgets from a YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the budget configuration: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_budget_config(document, str(path), base_dir=str(path.parent))
