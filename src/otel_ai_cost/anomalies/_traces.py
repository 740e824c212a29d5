"""Runaway traces: calls and cost per trace against a threshold learned from finished traces.

A trace is keyed by its first call's agent or service name (``trace_key_dims``); finished (idle)
traces of a key feed decayed log histograms of their calls and cost, and the threshold is twice
their 99.9th percentile (at least ``min_trace_calls``; ``default_trace_calls`` until ``trace_warm``
traces are known). O(1) amortised per call; at most ``max_traces`` open traces.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._baseline import score
from ._finding import RUNAWAY_TRACE, Cause, Finding
from ._record import TRACE, CallRecord

TRACE_BUCKETS = 64
COST_UNIT = 1e-6  # USD, the first bucket of trace cost


class TraceStats:
    """Sizes of finished traces of one trace key: decayed log histograms of calls and cost."""

    __slots__ = ("n", "calls", "cost", "thr_calls", "thr_cost")

    def __init__(self) -> None:
        self.n = 0
        self.calls = [0.0] * TRACE_BUCKETS
        self.cost = [0.0] * TRACE_BUCKETS
        self.thr_calls = math.inf
        self.thr_cost = math.inf

    def state(self) -> List[Any]:
        """JSON-able values (no infinities): ``from_state`` reads them back."""
        return [self.n, self.calls, self.cost, self.thr_calls if self.thr_calls != math.inf else None,
                self.thr_cost if self.thr_cost != math.inf else None]

    @classmethod
    def from_state(cls, s: Sequence[Any]) -> "TraceStats":
        st = cls()
        st.n, st.calls, st.cost = s[0], list(s[1]), list(s[2])
        st.thr_calls = s[3] if s[3] is not None else math.inf
        st.thr_cost = s[4] if s[4] is not None else math.inf
        return st


def _bucket(value: float, unit: float) -> int:
    if value <= unit:
        return 0
    return min(TRACE_BUCKETS - 1, int(math.log(value / unit) * 4) + 1)


def _bucket_top(i: int, unit: float) -> float:
    return unit * math.exp(i / 4)


def _quantile_top(hist: List[float], q: float, unit: float) -> float:
    total = sum(hist)
    acc = 0.0
    for i, h in enumerate(hist):
        acc += h
        if acc >= q * total:
            return _bucket_top(i, unit)
    return _bucket_top(TRACE_BUCKETS - 1, unit)


class _Trace:
    __slots__ = ("calls", "cost", "last", "tkey", "flagged", "escalated", "thr_calls", "thr_cost")

    def __init__(self, now: float, tkey: str, thresholds: Tuple[float, float]) -> None:
        self.calls = 0
        self.cost = 0.0
        self.last = now
        self.tkey = tkey
        self.flagged = False
        self.escalated = False
        self.thr_calls, self.thr_cost = thresholds  # learned from the traces finished before this one


class TraceWatch:
    """The open traces and the learned sizes of finished ones; ``observe`` returns a runaway trace
    finding (a warning, then once a critical one when it grows to 3x the threshold) or None."""

    def __init__(
        self,
        trace_key_dims: Sequence[str],
        *,
        max_traces: int, max_keys: int, trace_idle: float, trace_warm: int,
        min_trace_calls: int, default_trace_calls: int,
        max_trace_calls: Optional[int], max_trace_cost: Optional[float],
    ) -> None:
        self.trace_key_dims = tuple(trace_key_dims)
        self.max_traces, self.max_keys, self.trace_idle, self.trace_warm = max_traces, max_keys, trace_idle, trace_warm
        self.min_trace_calls, self.default_trace_calls = min_trace_calls, default_trace_calls
        self.max_trace_calls, self.max_trace_cost = max_trace_calls, max_trace_cost
        self.traces: "OrderedDict[str, _Trace]" = OrderedDict()
        self.stats: Dict[str, TraceStats] = {}

    def observe(self, r: CallRecord, trace_id: str) -> Optional[Finding]:
        """Count call ``r`` of trace ``trace_id`` (``r.trace_id``, set)."""
        now = r.time
        traces = self.traces
        tr = traces.get(trace_id)
        if tr is None:
            tkey = "*"
            for d in self.trace_key_dims:
                v = r.dims.get(d)
                if v is not None:
                    tkey = v
                    break
            tr = traces[trace_id] = _Trace(now, tkey, self._thresholds(self.stats.get(tkey)))
            if len(traces) > self.max_traces:
                self._close(traces.popitem(last=False)[1])
        else:
            traces.move_to_end(trace_id)
        tr.calls += 1
        tr.cost += r.cost or 0.0
        tr.last = now
        idle = now - self.trace_idle
        if next(iter(traces.values())).last <= idle:  # close idle traces, oldest first: amortised O(1)
            self._close(traces.popitem(last=False)[1])
            if traces and next(iter(traces.values())).last <= idle:
                self._close(traces.popitem(last=False)[1])
        if tr.escalated:
            return None
        thr_calls, thr_cost = tr.thr_calls, tr.thr_cost
        # A single expensive call is a cost or token spike; a run is runaway by cost from 3 calls on.
        if tr.calls <= thr_calls and (tr.calls < 3 or tr.cost <= thr_cost):
            return None
        over_calls = tr.calls / thr_calls
        over_cost = tr.cost / thr_cost if tr.calls >= 3 else 0.0
        strength = max(over_calls, over_cost)
        if tr.flagged and strength < 3:
            return None
        if over_calls >= over_cost:
            metric, observed, baseline = "trace_calls", float(tr.calls), thr_calls
        else:
            metric, observed, baseline = "trace_cost", tr.cost, thr_cost
        severity = "critical" if strength >= 3 or tr.flagged else "warning"
        if tr.flagged:
            tr.escalated = True
        tr.flagged = True
        return Finding(RUNAWAY_TRACE, score(strength), severity, Cause(TRACE, trace_id, 1.0), metric,
                       observed, baseline, f"*/trace={trace_id}", now, trace_id, r.model, dict(r.dims))

    def restore(self, tkey: str, s: Sequence[Any]) -> bool:
        """Load saved sizes unless this watch has seen more finished traces of ``tkey``; whether it was loaded."""
        mine = self.stats.get(tkey)
        if mine is not None and mine.n >= s[0]:
            return False
        self.stats[tkey] = TraceStats.from_state(s)
        return True

    def _thresholds(self, stats: Optional[TraceStats]) -> Tuple[float, float]:
        if stats is None or stats.n < self.trace_warm:
            calls, cost = float(self.default_trace_calls), math.inf
        else:
            calls, cost = stats.thr_calls, stats.thr_cost
        if self.max_trace_calls is not None:
            calls = min(calls, self.max_trace_calls)
        if self.max_trace_cost is not None:
            cost = min(cost, self.max_trace_cost)
        return calls, cost

    def _close(self, tr: _Trace) -> None:
        if tr.flagged:
            return  # a runaway trace is not a sample of normal traces
        stats = self.stats.get(tr.tkey)
        if stats is None:
            if len(self.stats) > self.max_keys:
                self.stats.clear()
            stats = self.stats[tr.tkey] = TraceStats()
        stats.n += 1
        decay = 0.999 if stats.n > 1000 else 1.0
        if decay != 1.0 and stats.n % 64 == 0:
            f = decay ** 64
            stats.calls = [h * f for h in stats.calls]
            stats.cost = [h * f for h in stats.cost]
        stats.calls[_bucket(tr.calls, 1.0)] += 1
        if tr.cost > 0:
            stats.cost[_bucket(tr.cost, COST_UNIT)] += 1
        if stats.n >= self.trace_warm and stats.n % 16 == 0:
            stats.thr_calls = max(float(self.min_trace_calls), 2 * _quantile_top(stats.calls, 0.999, 1.0))
            if sum(stats.cost) >= self.trace_warm:
                stats.thr_cost = 2 * _quantile_top(stats.cost, 0.999, COST_UNIT)
