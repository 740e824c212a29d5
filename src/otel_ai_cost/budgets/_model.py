"""What a budget is: which calls it covers, how it is partitioned, its window, limit and thresholds."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, FrozenSet, Mapping, Optional, Sequence, Tuple, Union

from ..errors import ConfigError
from ._unknown import UnknownModelPolicy, parse_unknown_model
from ._windows import CalendarWindow, LifetimeWindow, RollingWindow

Window = Union[CalendarWindow, RollingWindow, LifetimeWindow]

NANOS_PER_USD = 10**9
# The partition of a per-key budget for calls that do not carry the per attribute.
UNATTRIBUTED = "(unattributed)"
# `per: trace` partitions by the trace id, passed to the book separately from the attributes.
PER_TRACE = "trace"


# An amount of USD as the API takes it.
Amount = Union[Decimal, str, int, float]


def _usd(amount: Amount) -> Decimal:
    """An amount of USD as a Decimal; ValueError naming it if it is not a number."""
    try:
        return Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    except InvalidOperation:
        raise ValueError(f"amount {amount!r} is not a number of USD") from None


def to_nanos(amount: Amount) -> int:
    """USD -> integer nano-dollars, rounded up so that a hold never under-reserves."""
    value = amount if type(amount) is Decimal else _usd(amount)
    if not value.is_finite() or value < 0:
        raise ValueError(f"amount {amount!r} must be a finite, non-negative number of USD")
    return int((value * NANOS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def signed_nanos(amount: Amount) -> int:
    """USD (negative allowed: a credit or a correction) -> nano-dollars, to the nearest."""
    value = _usd(amount)
    if not value.is_finite():
        raise ValueError(f"amount {amount!r} must be a finite number of USD")
    return int((value * NANOS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_USD


@dataclass(frozen=True)
class Action:
    """What a threshold does when a call would take the budget past it."""

    kind: str  # warn | block | downgrade | throttle
    model: Optional[str] = None  # downgrade: the cheaper model to use
    seconds: Optional[float] = None  # throttle: how long to delay the call

    def __post_init__(self) -> None:
        if self.kind not in ("warn", "block", "downgrade", "throttle"):
            raise ConfigError(f"action {self.kind!r} is not one of warn, block, downgrade, throttle")
        if self.kind == "downgrade" and not self.model:
            raise ConfigError("a downgrade action needs the model to use instead")
        if self.kind == "throttle" and (self.seconds is None or not self.seconds > 0):
            raise ConfigError("a throttle action needs a positive number of seconds")


def warn() -> Action:
    return Action("warn")


def block() -> Action:
    return Action("block")


def downgrade(model: str) -> Action:
    return Action("downgrade", model=model)


def throttle(seconds: float) -> Action:
    return Action("throttle", seconds=seconds)


def threshold_problem(at: Decimal) -> Optional[str]:
    """Why ``at`` is not a threshold (a fraction of the limit in (0, 1]), or None if it is one.

    A threshold above 1 is refused rather than guessed at: ``at: 80`` is almost certainly 80%
    written as a percentage, and reading it as 0.8 would silently change what a budget does; a
    threshold past the limit is never needed (raise ``limit_usd`` instead).
    """
    if not at.is_finite() or not at > 0:
        return "must be a positive fraction of the limit (0.8 for 80%)"
    if at > 1:
        if at <= 100:
            hint = f"write {format((at / 100).normalize(), 'f')} for {format(at.normalize(), 'f')}%"
        else:
            hint = "write 0.8 for 80%"
        return (f"is above 1: thresholds are fractions of the limit, not percentages ({hint}); "
                "to allow spending past the limit, raise limit_usd")
    return None


# What a hold that reaches its TTL unsettled does (``on_expired_hold``): CHARGE_ESTIMATE adds its amount
# to the spend of the window it was taken in (ledger: expire_charge), RELEASE drops it (ledger: expire).
CHARGE_ESTIMATE = "charge_estimate"
RELEASE = "release"
ON_EXPIRED_HOLD = (CHARGE_ESTIMATE, RELEASE)


def check_on_expired_hold(value: Any) -> str:
    """``value`` if it is an ``on_expired_hold`` policy; ValueError naming the choices otherwise."""
    if not isinstance(value, str) or value not in ON_EXPIRED_HOLD:
        raise ValueError(f"must be charge_estimate or release, not {value!r}")
    return value


@dataclass(frozen=True)
class Threshold:
    """``action`` applies once a call would take the spend to ``at`` times the limit (``block``: past it)."""

    at: Decimal
    action: Action

    def __post_init__(self) -> None:
        try:
            at = Decimal(str(self.at))
        except (InvalidOperation, ValueError):
            raise ConfigError(f"threshold at {self.at!r} is not a number (write 0.8 for 80%)") from None
        problem = threshold_problem(at)
        if problem:
            raise ConfigError(f"threshold at {self.at!r} {problem}")
        object.__setattr__(self, "at", at)
        if not isinstance(self.action, Action):
            raise ConfigError(f"threshold action {self.action!r} must be an Action (warn(), block(), ...)")


DEFAULT_THRESHOLDS: Tuple[Threshold, ...] = (
    Threshold(Decimal("0.8"), warn()),
    Threshold(Decimal("0.95"), warn()),
    Threshold(Decimal("1"), block()),
)

Selector = Mapping[str, Union[Any, Sequence[Any]]]


def _as_threshold(item: Any) -> Threshold:
    if isinstance(item, Threshold):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        fraction, action = item
        return Threshold(fraction, Action(action) if isinstance(action, str) else action)
    raise ConfigError(f"threshold {item!r} must be a Threshold or a (fraction, action) pair")


# A budget's selector, prepared: (attribute key, the allowed values as strings).
PreparedSelector = Tuple[Tuple[str, FrozenSet[str]], ...]
_ABSENT: Any = object()


def prepared_selector(selector: Optional[Mapping[str, Any]]) -> PreparedSelector:
    return tuple(
        (key, frozenset(str(v) for v in wanted) if isinstance(wanted, (list, tuple, set, frozenset))
         else frozenset((str(wanted),)))
        for key, wanted in (selector or {}).items()
    )


def selected(selector: PreparedSelector, attributes: Mapping[str, Any]) -> bool:
    """Every key of the prepared selector present in ``attributes`` with (one of) its values (a list
    value matches when any of its items does)."""
    for key, allowed in selector:
        value = attributes.get(key, _ABSENT)
        if value is _ABSENT:
            return False
        if isinstance(value, (list, tuple)):
            if not any(str(v) in allowed for v in value):
                return False
        elif str(value) not in allowed:
            return False
    return True


@dataclass(frozen=True)
class Budget:
    """A spending limit in USD over a window, for the calls ``selector`` matches, per ``per`` value.

    ``thresholds`` defaults to warnings at 80% and 95% and a hard stop at 100%; a block at 100% is
    added when the given thresholds have no block. A ``shadow`` budget records its decisions but
    never changes a call. ``on_unknown_model`` (``block``, ``allow`` or a ``price_as`` policy) says
    what a call to a model the pricing catalog does not know counts; None: the book's default.
    ``on_expired_hold`` (``charge_estimate`` or ``release``) says what a hold of this budget does
    when it reaches its TTL unsettled (its process died with the call in flight): charged to the
    spend of its window, or dropped; None: the book's default (``charge_estimate``).
    """

    id: str
    limit_usd: Decimal
    window: Window
    per: Optional[str] = None
    selector: Optional[Selector] = None
    thresholds: Tuple[Threshold, ...] = DEFAULT_THRESHOLDS
    shadow: bool = False
    on_unknown_model: Optional[UnknownModelPolicy] = None
    on_expired_hold: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise ConfigError("a budget needs a non-empty string id")
        try:
            limit = Decimal(str(self.limit_usd))
        except (InvalidOperation, ValueError):
            raise ConfigError(f"budget {self.id!r}: limit_usd {self.limit_usd!r} is not a number") from None
        if not limit.is_finite() or limit < 0:
            raise ConfigError(f"budget {self.id!r}: limit_usd {self.limit_usd!r} must be zero or more")
        object.__setattr__(self, "limit_usd", limit)
        if not isinstance(self.window, (CalendarWindow, RollingWindow, LifetimeWindow)):
            raise ConfigError(f"budget {self.id!r}: window must be calendar(...), rolling(...) or lifetime()")
        if self.per is not None and (not isinstance(self.per, str) or not self.per):
            raise ConfigError(f"budget {self.id!r}: per must be an attribute key such as 'tenant.id'")
        if self.selector is not None and not isinstance(self.selector, Mapping):
            raise ConfigError(f"budget {self.id!r}: selector must map attribute keys to a value or a list")
        if self.on_unknown_model is not None and not isinstance(self.on_unknown_model, UnknownModelPolicy):
            try:
                object.__setattr__(self, "on_unknown_model", parse_unknown_model(self.on_unknown_model))
            except ConfigError as exc:
                raise ConfigError(f"budget {self.id!r}: on_unknown_model: {exc}") from None
        if self.on_expired_hold is not None:
            try:
                check_on_expired_hold(self.on_expired_hold)
            except ValueError as exc:
                raise ConfigError(f"budget {self.id!r}: on_expired_hold {exc}") from None
        thresholds = tuple(_as_threshold(t) for t in self.thresholds)
        if not any(t.action.kind == "block" for t in thresholds):
            thresholds += (Threshold(Decimal("1"), block()),)
        object.__setattr__(self, "thresholds", tuple(sorted(thresholds, key=lambda t: t.at)))

    @property
    def limit_nanos(self) -> int:
        return to_nanos(self.limit_usd)

    @property
    def hard_limit_nanos(self) -> int:
        """The spend a call may not take the budget past: the lowest block threshold."""
        at = min(t.at for t in self.thresholds if t.action.kind == "block")
        return int((self.limit_usd * at * NANOS_PER_USD).to_integral_value(rounding=ROUND_FLOOR))

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """True if every selector key is present with (one of) the selected value(s)."""
        return selected(prepared_selector(self.selector), attributes)

    def key_for(self, attributes: Mapping[str, Any], trace_id: Optional[str] = None) -> str:
        """The partition of this budget a call counts in: the value of its ``per`` attribute."""
        if self.per is None:
            return ""
        value = trace_id if self.per == PER_TRACE else attributes.get(self.per)
        if value is None or value == "":
            return UNATTRIBUTED
        return str(value)

    def action_at(self, projected_nanos: int) -> Optional[Threshold]:
        """The highest non-block threshold a projected spend reaches, if any."""
        reached = None
        for threshold in self.thresholds:
            if threshold.action.kind != "block" and projected_nanos >= self.limit_usd * threshold.at * NANOS_PER_USD:
                reached = threshold
        return reached
