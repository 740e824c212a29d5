"""The baselines of one key (model, dimension, value), and the constants of the detector's windows.

A key keeps, in log space, a slow baseline (EWMA mean and mean absolute deviation) and a fast EWMA
of cost, input and output tokens per call; decayed fast and slow call counts with a learned
burstiness and, after a day, calls per hour of the week; fast and slow error rates. The detector
(``_detector``) updates keys and turns their excesses into findings.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

TAU_FAST = 60.0
TAU_SLOW = 1800.0
TAU_MID = 300.0  # the second window of runs per minute: sustained spikes at low rates
TAU_RELAX = 600.0  # a key's fast means fall back to its baseline when it has no calls
ALPHA_FAST = 0.3
ALPHA_SLOW = 0.02
ALPHA_ERR_FAST = 0.2
WARM_CALLS = 50
LN2 = math.log(2.0)
FAST_NOISE = math.sqrt(ALPHA_FAST / (2 - ALPHA_FAST))
METRICS = ("cost_per_call", "input_tokens_per_call", "output_tokens_per_call")
WEEK_HOURS = 168
STATE_VERSION = 2  # of KeyBaseline.state(); states of other versions are not restored
MIN_SCALE = 0.05  # of a log metric: a key whose calls are all alike still has some spread


def score(strength: float) -> float:
    """A finding's score in 0..1: 1 - exp(-strength) (0.63 at the threshold)."""
    return 1.0 - math.exp(-max(strength, 0.0))


def severity(ratio: float) -> str:
    """The severity of an excess ``ratio`` times the baseline."""
    return "critical" if ratio >= 10 else "warning" if ratio >= 3 else "info"


class KeyBaseline:
    """The baselines of one (model, dimension, value).

    ``tf`` / ``t5`` / ``ts``: runs in the last minute, 5 minutes and 30 minutes (decayed counts, on
    the volume keys only). ``mu`` / ``dv`` / ``fa``: per metric, the slow mean, the slow scale (1.25
    x the mean absolute deviation) and the fast mean (log space). ``es`` / ``ef``: slow and fast
    error rates as of call ``en`` at time ``et`` (the last error): the calls since had none, which
    ``error_rates`` accounts for (nothing is done for the error rates on a call without error).
    """

    __slots__ = ("t", "first", "n", "tf", "t5", "ts", "rdev", "nm", "mu", "dv", "fa", "es", "ef", "en", "et",
                 "cool", "hour", "hcount", "season")

    def __init__(self, now: float) -> None:
        self.t = self.first = now
        self.n = 0
        self.tf = self.t5 = self.ts = self.rdev = 0.0
        self.nm = [0, 0, 0]
        self.mu = [0.0, 0.0, 0.0]
        self.dv = [0.0, 0.0, 0.0]
        self.fa = [0.0, 0.0, 0.0]
        self.es = self.ef = 0.0
        self.en = 0
        self.et = now
        self.cool: Optional[Dict[str, float]] = None
        self.hour = int(now // 3600)
        self.hcount = 0.0  # runs this hour (a run during a spike counts for less, see the detector)
        self.season: Optional[List[float]] = None

    def expected_rate(self, now: float) -> float:
        """Runs per second expected: the slow rate (corrected for a short history), or the same
        hour of the week once a week of history exists, whichever is higher."""
        age = now - self.first
        warm = 1.0 - math.exp(-age / TAU_SLOW) if age > 0 else 0.0
        rate = self.ts / TAU_SLOW / warm if warm > 0 else 0.0
        if self.season is not None and age > 7 * 86400:
            seasonal = self.season[int(now // 3600) % WEEK_HOURS] / 3600.0
            if seasonal > rate:
                rate = seasonal
        return rate

    def expected_fast(self, now: float) -> float:
        """Runs expected in the last minute."""
        return self.expected_rate(now) * TAU_FAST

    def roll_hour(self, hour: int, now: float) -> None:
        """Close the hours since the last run into the hour-of-week counts (kept after a day)."""
        if self.season is None and now - self.first >= 86400:
            self.season = [0.0] * WEEK_HOURS
        if self.season is not None:
            gap = min(hour - self.hour, WEEK_HOURS)
            for h in range(gap):
                slot = (self.hour + h) % WEEK_HOURS
                value = self.hcount if h == 0 else 0
                old = self.season[slot]
                self.season[slot] = value if old == 0 else 0.5 * old + 0.5 * value
        self.hour = hour
        self.hcount = 0

    def error_rates(self, n: int, now: float) -> Tuple[float, float]:
        """The fast and slow error rates after call ``n`` at ``now``, no call since ``en`` having
        had an error: per call, the fast rate loses ALPHA_ERR_FAST of itself and the slow one
        1 / n of itself (0.01 from the 100th call); over time, the fast one falls back to the slow
        one (TAU_RELAX)."""
        ef, es, a = self.ef, self.es, self.en
        if n > a:
            hi = n if n < 99 else 99
            if a < hi:
                es *= a / hi
            lo = a if a > 99 else 99
            if n > lo:
                es *= 0.99 ** (n - lo)
            ef *= (1.0 - ALPHA_ERR_FAST) ** (n - a)
        dt = now - self.et
        if dt > 10.0:
            ef = es + (ef - es) * math.exp(-dt / TAU_RELAX)
        return ef, es

    def tokens_up(self) -> bool:
        """Whether the fast input or output tokens per call run well above their baseline."""
        return any(self.nm[i] > WARM_CALLS and self.fa[i] - self.mu[i] > 0.4 for i in (1, 2))

    def state(self) -> List[Any]:
        """The baselines as JSON-able values (``from_state`` reads them back)."""
        ef, es = self.error_rates(self.n, self.t)
        return [STATE_VERSION, self.t, self.first, self.n, self.tf, self.t5, self.ts, self.rdev, self.nm,
                self.mu, self.dv, self.fa, es, ef, self.hour, self.hcount, self.season]

    @classmethod
    def from_state(cls, s: List[Any]) -> Optional["KeyBaseline"]:
        """The baselines saved by ``state``, or None for a state of another version."""
        if not s or s[0] != STATE_VERSION or len(s) != 17:
            return None
        k = cls(s[1])
        (_, k.t, k.first, k.n, k.tf, k.t5, k.ts, k.rdev, k.nm, k.mu, k.dv, k.fa, k.es, k.ef, k.hour,
         k.hcount, k.season) = s
        k.nm, k.mu, k.dv, k.fa = list(k.nm), list(k.mu), list(k.dv), list(k.fa)
        k.en, k.et = k.n, k.t
        return k
