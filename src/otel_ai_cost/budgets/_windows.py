"""Budget windows: which period a spend counts in, for a given instant.

Each window gives, for an instant, the key the spend is recorded under, the keys whose spend counts
against the limit (one for calendar and lifetime windows, the recent steps for a rolling window) and
when the period ends.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError

CALENDAR_UNITS = ("day", "week", "month")


@dataclass(frozen=True)
class WindowSpan:
    """The period an instant falls in."""

    key: str  # where a spend made now is recorded
    counted_keys: Tuple[str, ...]  # whose spend counts against the limit now
    end: Optional[datetime]  # when the period ends (UTC); None for a lifetime window
    # Rolling windows: spend recorded under prefix + N for N < index has left the window for good.
    prune: Optional[Tuple[str, int]] = None


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("window instants must be timezone-aware")
    return instant.astimezone(timezone.utc)


@dataclass(frozen=True)
class CalendarWindow:
    """A calendar day, ISO week (Monday to Sunday) or month in a time zone."""

    unit: str
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if self.unit not in CALENDAR_UNITS:
            raise ConfigError(f"calendar window unit {self.unit!r} is not one of {', '.join(CALENDAR_UNITS)}")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"time zone {self.tz!r} is unknown; use an IANA name such as 'Europe/Paris'") from exc

    def span(self, instant: datetime) -> WindowSpan:
        zone = ZoneInfo(self.tz)
        local = _utc(instant).astimezone(zone).date()
        if self.unit == "day":
            key, following = local.isoformat(), local + timedelta(days=1)
        elif self.unit == "week":
            year, week, weekday = local.isocalendar()
            key, following = f"{year}-W{week:02d}", local + timedelta(days=8 - weekday)
        else:
            key = f"{local.year:04d}-{local.month:02d}"
            following = date(local.year + local.month // 12, local.month % 12 + 1, 1)
        end = datetime(following.year, following.month, following.day, tzinfo=zone).astimezone(timezone.utc)
        return WindowSpan(key, (key,), end)

    def describe(self) -> str:
        return f"calendar {self.unit} ({self.tz})"


@dataclass(frozen=True)
class RollingWindow:
    """The last ``duration``, counted in ``steps`` steps.

    A spend leaves the window between ``duration`` and ``duration + duration / steps`` after it was
    made: the window errs on the side of counting too much, never too little.
    """

    duration: timedelta
    steps: int = 60

    def __post_init__(self) -> None:
        if self.duration <= timedelta(0):
            raise ConfigError(f"rolling window duration must be positive, not {self.duration}")
        if self.steps < 1:
            raise ConfigError(f"rolling window steps must be at least 1, not {self.steps}")

    @property
    def step_seconds(self) -> float:
        return self.duration.total_seconds() / self.steps

    def span(self, instant: datetime) -> WindowSpan:
        step = self.step_seconds
        index = math.floor(_utc(instant).timestamp() / step)
        prefix = f"r{self.duration.total_seconds():g}s/{self.steps}:"
        counted = tuple(f"{prefix}{i}" for i in range(index - self.steps, index + 1))
        end = datetime.fromtimestamp((index + 1) * step, timezone.utc)
        return WindowSpan(counted[-1], counted, end, prune=(prefix, index - self.steps))

    def describe(self) -> str:
        return f"rolling {self.duration}"


@dataclass(frozen=True)
class LifetimeWindow:
    """One window for ever: the budget never renews."""

    def span(self, instant: datetime) -> WindowSpan:
        return WindowSpan("lifetime", ("lifetime",), None)

    def describe(self) -> str:
        return "lifetime"


def calendar(unit: str, tz: str = "UTC") -> CalendarWindow:
    """A calendar window: ``calendar("month", tz="Europe/Paris")``."""
    return CalendarWindow(unit, tz)


def rolling(duration: timedelta, steps: int = 60) -> RollingWindow:
    """A rolling window: ``rolling(timedelta(hours=1))``."""
    return RollingWindow(duration, steps)


def lifetime() -> LifetimeWindow:
    """A window that never renews."""
    return LifetimeWindow()


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"7d"``, ``"2w"`` -> timedelta. Raises ValueError."""
    text = str(text).strip()
    unit = text[-1:].lower()
    if unit not in _UNITS:
        raise ValueError(f"duration {text!r} must be a number followed by one of s, m, h, d, w (e.g. '1h')")
    try:
        value = float(text[:-1])
    except ValueError:
        raise ValueError(f"duration {text!r} must be a number followed by one of s, m, h, d, w (e.g. '1h')") from None
    if not value > 0 or math.isinf(value):
        raise ValueError(f"duration {text!r} must be positive")
    return timedelta(seconds=value * _UNITS[unit])
