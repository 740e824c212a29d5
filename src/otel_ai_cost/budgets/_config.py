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
        on_unknown_model: block    # or allow, or {price_as: gpt-4o}, or {price_as: {input: 10, output: 30}}
        on_expired_hold: release   # a hold left by a dead process: charge_estimate (counted) or release (dropped)
    on_unknown_model: {price_as: {input: 10, output: 30}}   # for budgets without their own (the default)
    on_expired_hold: charge_estimate   # or release; a budget may have its own (see below)
    store:
      url: sqlite:///var/lib/otel-ai-cost/budgets.db   # or redis://..., rediss://..., memory://
      hold_ttl: auto          # the default: the slowest call of the installed SDKs (see _ttl), or 15m, ...
      on_store_error: open    # or closed
      deadline: 1s            # all the store work of one call, in all
      failures: 3             # errors in a row that mark the store unavailable (a missed deadline: at once)
      probe_interval: 1s      # how often an unavailable store is tried again
      journal: auto           # settles made while the store is unavailable: a file, or false
      deadline_mode: thread   # or store: bounded by the store's own timeouts, no worker thread (faster)
      settle: queued          # the default (SQLite, Redis): settles ride with the next reserve; or immediate
      # Redis: AUTH and TLS (or in the URL: redis://user:password@host, rediss://...)
      username: otel-ai-cost  # an ACL user (Redis 6+)
      password_env: REDIS_PASSWORD   # or password: ... (kept out of logs)
      ca_file: /etc/ssl/redis-ca.pem # rediss:// only; cert_file / key_file: a client certificate
    raise_on_block: false   # let the processor raise for other instrumentations' spans
    on_anomaly: {runaway_trace: block, cost_spike: {action: downgrade, model: gpt-4o-mini}}   # see _anomaly_policy

Without a ``store`` section the budgets live in SQLite, in ``default_store_url()``: a file in the
user's state directory, shared by the processes of this user on this host and kept across restarts.

Every error names the file, the key path (``budgets[2].window.tz``) and what to write instead.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

import yaml

from .._state import sqlite_path, state_url
from ..errors import ConfigError
from ._anomaly_policy import AnomalyPolicy, parse_anomaly_policy
from ._book import BudgetBook
from ._model import CHARGE_ESTIMATE, Action, Budget, Threshold, Window, check_on_expired_hold, threshold_problem
from ._resilient import DEFAULT_DEADLINE, DEFAULT_FAILURES, DEFAULT_PROBE_INTERVAL, ResilientStore
from ._store import BudgetStore, UnavailableStore
from ._unknown import UnknownModelPolicy, parse_unknown_model
from ._windows import CALENDAR_UNITS, calendar, lifetime, parse_duration, rolling

_BUDGET_KEYS = {
    "id", "limit_usd", "window", "per", "select", "thresholds", "shadow", "on_unknown_model", "on_expired_hold",
}
_THRESHOLD_KEYS = {"at", "action", "model", "seconds"}
_STORE_KEYS = {
    "url", "hold_ttl", "on_store_error", "prefix", "deadline", "failures", "probe_interval", "journal",
    "username", "password", "password_env", "ca_file", "cert_file", "key_file", "deadline_mode", "settle",
}
# ``store: settle:`` by default, per store: queued (off the call's path, see _deferred) or immediate.
DEFAULT_SETTLE = {"sqlite": "queued", "redis": "queued"}
_REDIS_KEYS = ("username", "password", "password_env", "ca_file", "cert_file", "key_file")
# The budget that refuses every call when the configuration file is broken and asks for on_store_error: closed.
CONFIG_ERROR_BUDGET = "configuration-error"
# The top-level keys of the configuration file (OTEL_AI_COST_CONFIG).
TOP_LEVEL_KEYS = {"budgets", "store", "raise_on_block", "on_unknown_model", "on_expired_hold", "on_anomaly"}


def default_store_url() -> str:
    """``sqlite:///$XDG_STATE_HOME/otel-ai-cost/budgets.db`` (``~/.local/state/...`` by default)."""
    return state_url("budgets.db")


def safe_url(url: str) -> str:
    """The URL without its password, for logs and errors."""
    return re.sub(r"://([^:@/]*):[^@/]*@", r"://\1:***@", url)


@dataclass(frozen=True)
class BudgetConfig:
    budgets: Tuple[Budget, ...]
    store_url: str = field(default_factory=default_store_url)
    hold_ttl: Optional[float] = None  # None: derived from the installed SDKs' request timeouts (_ttl)
    on_store_error: str = "open"
    redis_prefix: str = "ai_cost:budget"
    base_dir: Optional[str] = None  # relative SQLite paths are relative to the configuration file
    raise_on_block: bool = False
    source: str = "<config>"  # the file, for error messages
    on_unknown_model: Optional[UnknownModelPolicy] = None  # None: DEFAULT_UNKNOWN_MODEL
    on_expired_hold: str = CHARGE_ESTIMATE  # for budgets without their own
    deadline: float = DEFAULT_DEADLINE
    failures: int = DEFAULT_FAILURES
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    journal: Union[bool, str] = True  # True: a file in the user's state directory; False: none
    redis_options: Mapping[str, Any] = field(default_factory=dict)  # username, password, ca_file, ...
    failure: Optional[str] = None  # the configuration could not be read (see load_budget_config_or_refuse)
    deadline_mode: str = "thread"  # thread | store: see ResilientStore
    on_anomaly: Optional[AnomalyPolicy] = None  # what anomaly findings do to the next calls (None: nothing)
    settle: Optional[str] = None  # queued | immediate; None: the store's default (DEFAULT_SETTLE)

    def _bounded_options(self) -> Mapping[str, Any]:
        """Store timeouts equal to the deadline, for ``deadline_mode: store``."""
        if self.deadline_mode != "store":
            return {}
        if sqlite_path(self.store_url) is not None:
            return {"timeout": self.deadline}
        return {"redis_timeout": self.deadline}

    def open_raw_store(self, clock: Callable[[], float] = time.time, bounded: bool = False) -> BudgetStore:
        """Open the configured store itself. Raises ConfigError naming the file, ``store.url`` and the reason.
        ``bounded``: with the store's timeouts set to the deadline (``deadline_mode: store``)."""
        if self.failure is not None:
            raise ConfigError(self.failure)
        extra = dict(self._bounded_options()) if bounded else {}
        redis_options = dict(self.redis_options)
        if "redis_timeout" in extra:
            redis_options["timeout"] = extra.pop("redis_timeout")
        try:
            return open_store(self.store_url, clock=clock, base_dir=self.base_dir, redis_prefix=self.redis_prefix,
                              redis_options=redis_options, sqlite_timeout=extra.get("timeout"), settle=self.settle)
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: store.url: {exc}") from None
        except Exception as exc:  # sqlite3.DatabaseError (not a database), OSError (permissions), ...
            raise ConfigError(f"{self.source}: store.url: cannot open {safe_url(self.store_url)!r}: {exc}") from None

    def open_store(self, clock: Callable[[], float] = time.time) -> BudgetStore:
        """The configured store, inside a ResilientStore (one deadline per call, circuit breaker,
        journal). A store that cannot be opened now is unavailable, not an error: with
        ``on_store_error: closed`` every call under a budget is refused, with the reason, until it
        opens. With ``open``, a store that cannot be opened raises ConfigError (as a configuration
        mistake: a path that cannot be created, no redis package); one that fails later (Redis, which
        connects at the first call, or a locked SQLite file) lets calls through and journals their spend."""
        if self.failure is not None:
            return UnavailableStore(f"of {self.source}", self.failure)
        if self.store_url == "memory://":
            return self.open_raw_store(clock)  # nothing to wait for, nothing to lose
        if self.on_store_error == "open":
            try:
                store: Any = self.open_raw_store(clock, bounded=True)
            except ConfigError as exc:
                if _cannot_reach(exc):
                    store = lambda: self.open_raw_store(clock, bounded=True)  # noqa: E731 - retried by the probe
                else:
                    raise
        else:
            store = lambda: self.open_raw_store(clock, bounded=True)  # noqa: E731
        return ResilientStore(
            store, name=self.store_name, deadline=self.deadline, failures=self.failures,
            probe_interval=self.probe_interval, journal=self.journal, on_store_error=self.on_store_error,
            mode=self.deadline_mode,
        )

    @property
    def store_name(self) -> str:
        """The store as logs name it: its URL without password (and the Redis prefix if not the default)."""
        url = self.store_url
        path = sqlite_path(url)
        if path is not None and self.base_dir and not path.startswith("/"):
            url = "sqlite:///" + os.path.abspath(os.path.join(self.base_dir, path)).lstrip("/")
        name = safe_url(url)
        if url.startswith(("redis://", "rediss://", "unix://")) and self.redis_prefix != "ai_cost:budget":
            name += f" (prefix {self.redis_prefix})"
        return name

    def book(self, clock: Callable[[], float] = time.time) -> BudgetBook:
        return BudgetBook(
            self.budgets,
            self.open_store(clock),
            clock=clock,
            hold_ttl=self.hold_ttl,
            on_store_error=self.on_store_error,
            on_unknown_model=self.on_unknown_model,
            on_expired_hold=self.on_expired_hold,
        )


def _settle_interval(settle: Optional[str], kind: str) -> Optional[float]:
    """The store's ``settle_interval`` for ``store: settle:`` (None: each settle sent at once)."""
    from ._deferred import DEFAULT_INTERVAL

    return DEFAULT_INTERVAL if (settle or DEFAULT_SETTLE[kind]) == "queued" else None


def _cannot_reach(error: ConfigError) -> bool:
    """A store that failed to open for a reason that passes (another process holds the SQLite file's
    lock), not a configuration mistake (a path that cannot be created, a file that is not a database,
    no redis package), which fails open mode at start as a ConfigError."""
    return "database is locked" in str(error)


def open_store(
    url: str,
    clock: Callable[[], float] = time.time,
    base_dir: Optional[str] = None,
    redis_prefix: str = "ai_cost:budget",
    redis_options: Optional[Mapping[str, Any]] = None,
    sqlite_timeout: Optional[float] = None,
    settle: Optional[str] = None,
) -> BudgetStore:
    """``memory://``, ``sqlite:///absolute/path.db`` or ``sqlite://relative.db``, ``redis://``,
    ``rediss://`` (TLS), ``unix://``. ``settle``: queued or immediate (None: ``DEFAULT_SETTLE``)."""
    if url == "memory://":
        from ._memory import MemoryBudgetStore

        return MemoryBudgetStore(clock=clock)
    path = sqlite_path(url)
    if path is not None:
        from ._sqlite import SQLiteBudgetStore

        if path.startswith("/"):
            try:
                os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"store url {url!r}: cannot create the directory: {exc.strerror}") from None
        if not path:
            raise ConfigError(f"store url {url!r} has no file path; write sqlite:///absolute/path/budgets.db")
        if base_dir and not os.path.isabs(path):
            path = os.path.join(base_dir, path)
        timeout = {} if sqlite_timeout is None else {"timeout": sqlite_timeout}
        return SQLiteBudgetStore(path, clock=clock, settle_interval=_settle_interval(settle, "sqlite"), **timeout)
    if url.startswith(("redis://", "rediss://", "unix://")):
        options = dict(redis_options or {})
        env = options.pop("password_env", None)
        if env:
            if not os.environ.get(env):
                raise ConfigError(f"store.password_env: the environment variable {env} is not set")
            options["password"] = os.environ[env]
        try:
            from ._redis import RedisBudgetStore

            return RedisBudgetStore(url, clock=clock, prefix=redis_prefix,
                                    settle_interval=_settle_interval(settle, "redis"), **options)
        except ImportError as exc:  # the redis client, imported by the store
            raise ConfigError(
                f"store url {safe_url(url)!r} needs the redis client: pip install 'otel-ai-cost[redis]'"
            ) from exc
        except ValueError as exc:
            raise ConfigError(f"store url {safe_url(url)!r}: {exc}") from None
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


def _mapping(value: Any, where: _Where, known: Set[str]) -> Mapping[str, Any]:
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


def _window(value: Any, where: _Where) -> Window:
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
    kwargs: Dict[str, Any] = {"thresholds": thresholds} if thresholds is not None else {}
    if item.get("on_unknown_model") is not None:
        kwargs["on_unknown_model"] = _unknown_policy(item["on_unknown_model"], where / "on_unknown_model")
    if item.get("on_expired_hold") is not None:
        kwargs["on_expired_hold"] = _on_expired_hold(item["on_expired_hold"], where / "on_expired_hold")
    window = _window(item["window"], where / "window")
    try:
        return Budget(budget_id, limit, window, per, selector, shadow=shadow, **kwargs)
    except ConfigError as exc:
        raise where.error(str(exc)) from None


def _on_expired_hold(value: Any, where: _Where) -> str:
    try:
        return check_on_expired_hold(value)
    except ValueError as exc:
        raise where.error(f"{exc} (what a hold left by a call that never settled does at its TTL)") from None


def _unknown_policy(value: Any, where: _Where) -> UnknownModelPolicy:
    try:
        return parse_unknown_model(value)
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
    seen: Dict[str, int] = {}  # budget id -> its index
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
    hold_ttl: Optional[float] = None
    if store.get("hold_ttl", "auto") != "auto":
        hold_ttl = _seconds(store["hold_ttl"], root / "store" / "hold_ttl", "15m, 90s or auto")
    on_error = store.get("on_store_error", "open")
    if on_error not in ("open", "closed"):
        raise (root / "store" / "on_store_error").error(f"must be open or closed, not {on_error!r}")
    prefix = store.get("prefix", "ai_cost:budget")
    if not isinstance(prefix, str) or not prefix:
        raise (root / "store" / "prefix").error(f"must be a non-empty string, not {prefix!r}")
    deadline = DEFAULT_DEADLINE
    if "deadline" in store:
        deadline = _seconds(store["deadline"], root / "store" / "deadline", "1s or 500ms")
    probe = DEFAULT_PROBE_INTERVAL
    if "probe_interval" in store:
        probe = _seconds(store["probe_interval"], root / "store" / "probe_interval", "1s")
    failures = store.get("failures", DEFAULT_FAILURES)
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 1:
        raise (root / "store" / "failures").error(f"must be a positive integer, not {failures!r}")
    journal: Union[bool, str] = True
    if "journal" in store:
        value = store["journal"]
        if value is False or value == "off":
            journal = False
        elif value is True or value == "auto":
            journal = True
        elif isinstance(value, str) and value:
            journal = value if os.path.isabs(value) or not base_dir else os.path.join(base_dir, value)
        else:
            raise (root / "store" / "journal").error(f"must be auto, false or a file path, not {value!r}")
    redis_options = {}
    for name in _REDIS_KEYS:
        if name in store:
            value = store[name]
            if not isinstance(value, str) or not value:
                raise (root / "store" / name).error("must be a non-empty string")
            if not url.startswith(("redis://", "rediss://", "unix://")):
                raise (root / "store" / name).error(f"applies to a Redis store only, and the url is {safe_url(url)!r}")
            if name.endswith("_file"):
                if not url.startswith("rediss://"):
                    raise (root / "store" / name).error("a CA file or client certificate needs TLS: use rediss://")
                if base_dir and not os.path.isabs(value):
                    value = os.path.join(base_dir, value)
                if not os.path.isfile(value):
                    raise (root / "store" / name).error(f"no such file: {value}")
            redis_options[name] = value
    deadline_mode = store.get("deadline_mode", "thread")
    if deadline_mode not in ("thread", "store"):
        raise (root / "store" / "deadline_mode").error(f"must be thread or store, not {deadline_mode!r}")
    settle = store.get("settle")
    if settle is not None:
        if settle not in ("queued", "immediate"):
            raise (root / "store" / "settle").error(f"must be queued or immediate, not {settle!r}")
        if url == "memory://" and settle == "queued":
            raise (root / "store" / "settle").error("applies to SQLite and Redis stores: memory:// settles in place")
    if "password" in redis_options and "password_env" in redis_options:
        raise (root / "store" / "password_env").error("give password or password_env, not both")
    unknown_model = None
    if document.get("on_unknown_model") is not None:
        unknown_model = _unknown_policy(document["on_unknown_model"], root / "on_unknown_model")
    on_expired_hold = CHARGE_ESTIMATE
    if document.get("on_expired_hold") is not None:
        on_expired_hold = _on_expired_hold(document["on_expired_hold"], root / "on_expired_hold")
    return BudgetConfig(
        tuple(budgets), url, hold_ttl, on_error, prefix, base_dir, raise_on_block, source,
        deadline=deadline, failures=failures, probe_interval=probe, journal=journal, redis_options=redis_options,
        deadline_mode=deadline_mode, on_unknown_model=unknown_model, on_expired_hold=on_expired_hold, settle=settle,
        on_anomaly=parse_anomaly_policy(document.get("on_anomaly"), root / "on_anomaly"),
    )


def _seconds(value: Any, where: _Where, example: str) -> float:
    """A duration: 90s, 15m, 500ms, or a number of seconds."""
    text = value.strip() if isinstance(value, str) else value
    try:
        if isinstance(text, str) and text.endswith("ms") and text[:-2].strip().replace(".", "", 1).isdigit():
            seconds = float(text[:-2]) / 1000
        elif isinstance(text, (int, float)) and not isinstance(text, bool):
            seconds = float(text)
        else:
            seconds = parse_duration(str(text)).total_seconds()
    except ValueError as exc:
        raise where.error(f"{exc} (e.g. {example})") from None
    if not seconds > 0:
        raise where.error(f"must be more than 0, not {value!r}")
    return seconds


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


_CLOSED_LINE = re.compile(r"^\s*on_store_error\s*:\s*[\"']?closed[\"']?\s*(#.*)?$", re.MULTILINE)


def _asks_for_closed(text: str) -> bool:
    """Whether a configuration file that could not be read asks for on_store_error: closed (read as
    YAML if it parses, else line by line)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return bool(_CLOSED_LINE.search(text))
    store = document.get("store") if isinstance(document, Mapping) else None
    if isinstance(store, Mapping):
        return store.get("on_store_error") == "closed"
    return bool(_CLOSED_LINE.search(text))


def load_budget_config_or_refuse(path: Union[str, Path]) -> BudgetConfig:
    """``load_budget_config`` for the processor: a file that cannot be read raises ConfigError, unless
    it asks for ``on_store_error: closed``. Then budgets must not silently turn off: the result refuses
    every GenAI call (one budget, ``configuration-error``, over a store that is unavailable with the
    error as its reason) until the file is fixed and the application restarted; one log line says so."""
    try:
        return load_budget_config(path)
    except ConfigError as exc:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            raise exc from None
        if not _asks_for_closed(text):
            raise
        error = str(exc)
    import logging

    logging.getLogger("otel_ai_cost.budgets").error(
        "otel-ai-cost: %s. The file asks for on_store_error: closed, so every GenAI call is refused"
        " (BudgetExceededError) until it is fixed and the application restarted.", error,
    )
    refuse_all = Budget(CONFIG_ERROR_BUDGET, Decimal(0), lifetime())
    return BudgetConfig(
        (refuse_all,), "memory://", None, "closed", source=str(path), journal=False,
        failure=f"the configuration cannot be read: {error}", probe_interval=3600.0,
    )
