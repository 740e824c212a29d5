"""The online detector: per (model, attribution key) robust baselines, per trace totals, repeats.

Per key (model, dimension, value), and for every model together on ``cross_model_dims``:
- cost, input and output tokens per call, in log space: a slow baseline (EWMA mean and mean absolute
  deviation, updates winsorised at 3 deviations so a spike barely moves it) and a fast EWMA over
  the last few calls; a spike is the fast mean above the baseline by max(ln 2, 5 deviations of the
  fast mean);
- calls: a count decayed over 60 s against the rate of a count decayed over 30 min (and, after a
  week, the same hour of the week), with a learned burstiness;
- errors: fast (EWMA 0.1) and slow error rates.
Per trace: calls and cost against a threshold learned from finished traces (2x their 99.9th
percentile, at least ``min_trace_calls``). Per request fingerprint and trace (or user): repeats
within 60 s. Everything is O(1) per call (amortised for evictions); memory is bounded by
``max_keys``, ``max_traces`` and ``max_fingerprints``.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import _semconv as sc
from ._finding import (
    COST_SPIKE,
    ERROR_SPIKE,
    NEW_MODEL,
    RETRY_STORM,
    RUNAWAY_TRACE,
    TOKEN_SPIKE,
    VOLUME_SPIKE,
    Cause,
    Finding,
)
from ._record import DEFAULT_DIMENSIONS, MODEL, PROMPT, SERVICE, TENANT, TRACE, CallRecord

TAU_FAST = 60.0
TAU_SLOW = 1800.0
ALPHA_FAST = 0.3
ALPHA_SLOW = 0.02
ALPHA_ERR_FAST = 0.1
WARM_CALLS = 50
LN2 = math.log(2.0)
FAST_NOISE = math.sqrt(ALPHA_FAST / (2 - ALPHA_FAST))
METRICS = ("cost_per_call", "input_tokens_per_call", "output_tokens_per_call")
WEEK_HOURS = 168
_TRACE_BUCKETS = 64


def _score(strength: float) -> float:
    return 1.0 - math.exp(-max(strength, 0.0))


def _severity(ratio: float) -> str:
    return "critical" if ratio >= 10 else "warning" if ratio >= 3 else "info"


class _Key:
    """The baselines of one (model, dimension, value)."""

    __slots__ = ("t", "first", "n", "cf", "cs", "tf", "ts", "rdev", "sums", "nm", "mu", "dv", "fa", "es", "ef", "cool",
                 "hour", "hcount", "season")

    def __init__(self, now: float) -> None:
        self.t = self.first = now
        self.n = 0
        self.cf = self.cs = self.tf = self.ts = self.rdev = 0.0
        self.sums = [0.0, 0.0, 0.0, 0.0]  # decayed (fast) sums of cost, input, output tokens and errors
        self.nm = [0, 0, 0]
        self.mu = [0.0, 0.0, 0.0]
        self.dv = [0.0, 0.0, 0.0]
        self.fa = [0.0, 0.0, 0.0]
        self.es = self.ef = 0.0
        self.cool: Optional[Dict[str, float]] = None
        self.hour = int(now // 3600)
        self.hcount = 0
        self.season: Optional[List[float]] = None

    def expected_fast(self, now: float) -> float:
        """Calls expected in the fast window: the slow rate (corrected for a short history), or the
        same hour of the week once a week of history exists, whichever is higher."""
        age = now - self.first
        warm = 1.0 - math.exp(-age / TAU_SLOW) if age > 0 else 0.0
        rate = self.ts / TAU_SLOW / warm if warm > 0 else 0.0
        if self.season is not None and age > 7 * 86400:
            seasonal = self.season[int(now // 3600) % WEEK_HOURS] / 60.0
            if seasonal > rate:
                rate = seasonal
        return rate * TAU_FAST

    def state(self) -> list:
        return [self.t, self.first, self.n, self.cf, self.cs, self.tf, self.ts, self.rdev, self.sums, self.nm, self.mu, self.dv, self.fa,
                self.es, self.ef, self.hour, self.hcount, self.season]

    @classmethod
    def from_state(cls, s: list) -> "_Key":
        k = cls(s[0])
        (k.t, k.first, k.n, k.cf, k.cs, k.tf, k.ts, k.rdev, k.sums, k.nm, k.mu, k.dv, k.fa, k.es, k.ef, k.hour, k.hcount,
         k.season) = s
        return k


class _TraceStats:
    """Sizes of finished traces of one trace key: decayed log histograms of calls and cost."""

    __slots__ = ("n", "calls", "cost", "thr_calls", "thr_cost")

    def __init__(self) -> None:
        self.n = 0
        self.calls = [0.0] * _TRACE_BUCKETS
        self.cost = [0.0] * _TRACE_BUCKETS
        self.thr_calls = math.inf
        self.thr_cost = math.inf


def _bucket(value: float, unit: float) -> int:
    if value <= unit:
        return 0
    return min(_TRACE_BUCKETS - 1, int(math.log(value / unit) * 4) + 1)


def _bucket_top(i: int, unit: float) -> float:
    return unit * math.exp(i / 4)


def _quantile_top(hist: List[float], q: float, unit: float) -> float:
    total = sum(hist)
    acc = 0.0
    for i, h in enumerate(hist):
        acc += h
        if acc >= q * total:
            return _bucket_top(i, unit)
    return _bucket_top(_TRACE_BUCKETS - 1, unit)


class _Trace:
    __slots__ = ("calls", "cost", "last", "tkey", "flagged", "escalated")

    def __init__(self, now: float, tkey: str) -> None:
        self.calls = 0
        self.cost = 0.0
        self.last = now
        self.tkey = tkey
        self.flagged = False
        self.escalated = False


_COST_UNIT = 1e-6  # USD, the first bucket of trace cost


class AnomalyDetector:
    """Feed it finished calls with ``observe(record)``; it returns the findings they trigger.

    Thread-safe (one lock). ``should_block(trace_id)`` says whether a trace was found runaway (for
    a budget policy to refuse its next call); ``downgrade_suggestion(model, dims)`` returns the
    active cost or token spike of a call's keys, if any.
    """

    def __init__(
        self,
        *,
        dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
        cross_model_dims: Sequence[str] = (SERVICE, TENANT),
        volume_dims: Sequence[str] = (TENANT, SERVICE),
        new_model_dims: Sequence[str] = (SERVICE, TENANT, PROMPT),
        trace_key_dims: Sequence[str] = (sc.GEN_AI_AGENT_NAME, SERVICE),
        max_keys: int = 10_000,
        max_traces: int = 10_000,
        max_fingerprints: int = 20_000,
        spike_deviations: float = 6.0,
        min_spike_ratio: float = 2.0,
        volume_ratio: float = 3.0,
        volume_deviations: float = 4.0,
        error_rate: float = 0.4,
        retry_repeats: int = 4,
        retry_window: float = 60.0,
        trace_idle: float = 300.0,
        min_trace_calls: int = 15,
        default_trace_calls: int = 50,
        max_trace_calls: Optional[int] = None,
        max_trace_cost: Optional[float] = None,
        trace_warm: int = 200,
        new_model_min_calls: int = 100,
        new_model_min_age: float = 3600.0,
        cooldown: float = 600.0,
        spike_memory: float = 600.0,
        block_types: Iterable[str] = (RUNAWAY_TRACE,),
    ) -> None:
        self.dimensions = tuple(dimensions)
        self.cross_model_dims = frozenset(cross_model_dims)
        self.volume_dims = frozenset(volume_dims)
        self.new_model_dims = tuple(d for d in (SERVICE, TENANT, PROMPT, *new_model_dims) if d in new_model_dims)
        self.trace_key_dims = tuple(trace_key_dims)
        self.max_keys, self.max_traces, self.max_fingerprints = max_keys, max_traces, max_fingerprints
        self.spike_deviations, self.min_spike_log = spike_deviations, math.log(min_spike_ratio)
        self.volume_ratio, self.volume_deviations = volume_ratio, volume_deviations
        self.error_rate = error_rate
        self.retry_repeats, self.retry_window = retry_repeats, retry_window
        self.trace_idle, self.min_trace_calls, self.default_trace_calls = trace_idle, min_trace_calls, default_trace_calls
        self.max_trace_calls, self.max_trace_cost, self.trace_warm = max_trace_calls, max_trace_cost, trace_warm
        self.new_model_min_calls, self.new_model_min_age = new_model_min_calls, new_model_min_age
        self.cooldown, self.spike_memory = cooldown, spike_memory
        self.block_types = frozenset(block_types)
        self._spike_k = spike_deviations * FAST_NOISE
        self._rank = {d: i for i, d in enumerate(self.dimensions)}
        self._keys: Dict[Tuple[str, str, str], _Key] = {}
        self._models: Dict[Tuple[str, str], list] = {}  # (dim, value) -> [n, first, {model}, log-cost mean]
        self._trace_stats: Dict[str, _TraceStats] = {}
        self._traces: "OrderedDict[str, _Trace]" = OrderedDict()
        self._repeats: "OrderedDict[Tuple[int, str], list]" = OrderedDict()
        self._blocked: "OrderedDict[str, Finding]" = OrderedDict()
        self._spikes: Dict[Tuple[str, str, str], Finding] = {}
        self._lock = threading.Lock()

    # -- the policy hooks ---------------------------------------------------------------------

    def should_block(self, trace_id: Optional[str]) -> Optional[Finding]:
        """The finding that makes this trace's next call refusable (a runaway trace), or None."""
        if not trace_id:
            return None
        return self._blocked.get(trace_id)

    def downgrade_suggestion(self, model: str, dims: Mapping[str, str], now: Optional[float] = None) -> Optional[Finding]:
        """The cost or token spike found within ``spike_memory`` seconds on one of this call's keys."""
        for dim, value in dims.items():
            finding = self._spikes.get((model, dim, value))
            if finding is not None and (now is None or now - finding.time <= self.spike_memory):
                return finding
        return None

    # -- feeding ------------------------------------------------------------------------------

    def observe(self, r: CallRecord) -> List[Finding]:
        with self._lock:
            return self._observe(r)

    def _observe(self, r: CallRecord) -> List[Finding]:
        now = r.time
        findings: List[Finding] = []
        logs: List[Optional[float]] = [
            math.log(r.cost) if r.cost else None,
            math.log(r.input_tokens) if r.input_tokens else None,
            math.log(r.output_tokens) if r.output_tokens else None,
        ]
        if r.error:
            logs = [None, None, None]
        lin = (0.0, 0.0, 0.0, 1.0) if r.error else (r.cost or 0.0, r.input_tokens or 0, r.output_tokens or 0, 0.0)
        err = 1.0 if r.error else 0.0
        model = r.model
        dims = r.dims
        keys: List[Tuple[Tuple[str, str, str], _Key, bool]] = []  # (key id, state, volume checked)
        table = self._keys
        for kid, vol in self._key_ids(model, dims):
            k = table.get(kid)
            if k is None:
                k = table[kid] = _Key(now)
                if len(table) > self.max_keys:
                    self._evict_keys(now)
            keys.append((kid, k, vol))
        trace_finding = None
        new_run = True  # calls per minute count runs (traces): the calls inside one are the trace's business
        if r.trace_id:
            new_run = r.trace_id not in self._traces
            trace_finding = self._trace(r)
        candidates: List[tuple] = []  # (type, metric index, strength, ratio, kid, key, observed, baseline)
        for kid, k, vol in keys:
            self._update(kid, k, now, logs, lin, err, vol, new_run, candidates)
        if candidates:
            findings += self._resolve(r, keys, candidates)
        if self.new_model_dims:
            f = self._new_model(r, logs[0])
            if f is not None:
                findings.append(f)
        if trace_finding is not None:
            findings.append(trace_finding)
        f = self._repeat(r)
        if f is not None:
            findings.append(f)
        return findings

    def _key_ids(self, model: str, dims: Mapping[str, str]):
        yield (model, "*", "*"), False
        for dim, value in dims.items():
            yield (model, dim, value), False
            if dim in self.cross_model_dims:
                # Calls per minute are checked over every model: one model's share of a key is burstier.
                yield ("*", dim, value), dim in self.volume_dims

    def _update(self, kid, k: _Key, now: float, logs, lin, err: float, vol: bool, new_run: bool, out: list) -> None:
        dt = now - k.t
        sums = k.sums
        if dt > 0:
            df = math.exp(-dt / TAU_FAST)
            k.cf *= df
            sums[0] = sums[0] * df + lin[0]
            sums[1] = sums[1] * df + lin[1]
            sums[2] = sums[2] * df + lin[2]
            sums[3] = sums[3] * df + lin[3]
            if vol:
                k.tf *= df
                k.ts *= math.exp(-dt / TAU_SLOW)
            k.t = now
        else:
            sums[0] += lin[0]
            sums[1] += lin[1]
            sums[2] += lin[2]
            sums[3] += lin[3]
        hour = int(now // 3600)
        if hour != k.hour:
            self._roll_hour(k, hour, now)
        k.hcount += 1
        k.n += 1
        # runs (traces) per minute, on the every-model keys of volume_dims
        if vol and new_run:
            if k.n > 50 and now - k.first >= TAU_SLOW:
                expected = k.expected_fast(now)
                scale = max(1.25 * k.rdev, math.sqrt(expected))
                dev = k.tf + 1 - expected
                threshold = max(self.volume_ratio * expected, expected + self.volume_deviations * scale + 3)
                if k.tf + 1 > threshold:
                    out.append((VOLUME_SPIKE, -1, (k.tf + 1 - expected) / (threshold - expected),
                                (k.tf + 1) / max(expected, 1e-9), kid, k, (k.tf + 1) * 60 / TAU_FAST,
                                expected * 60 / TAU_FAST))
                elif k.tf + 1 < 2 * expected + 3:  # the burstiness is learned from normal traffic only
                    k.rdev += 0.01 * (min(abs(dev), 3 * math.sqrt(expected) + 3) - k.rdev)
            k.tf += 1
            k.ts += 1
        k.cf += 1
        k.cs += 1
        # errors
        ef = k.ef = k.ef + ALPHA_ERR_FAST * (err - k.ef)
        rate = self.error_rate
        if err and k.n >= WARM_CALLS and ef >= rate and ef >= 4 * k.es + 0.05:
            out.append((ERROR_SPIKE, -2, ef / rate, ef / max(k.es, 1e-3), kid, k, ef, k.es))
        if ef < rate:  # the baseline does not learn an ongoing spike
            k.es += (1.0 / k.n if k.n < 100 else 0.01) * (err - k.es)
        # cost and tokens per call
        nm, mu, dv, fa = k.nm, k.mu, k.dv, k.fa
        min_log, dev_k = self.min_spike_log, self._spike_k
        for i in (0, 1, 2):
            x = logs[i]
            if x is None:
                continue
            n = nm[i] = nm[i] + 1
            if n == 1:
                mu[i] = fa[i] = x
                continue
            m = mu[i]
            f = fa[i] = fa[i] + ALPHA_FAST * (x - fa[i])
            scale = 1.25 * dv[i]
            if scale < 0.05:
                scale = 0.05
            d = x - m
            if n > WARM_CALLS:
                threshold = dev_k * scale
                if threshold < min_log:
                    threshold = min_log
                if f - m > threshold:
                    excess = f - m
                    out.append((TOKEN_SPIKE if i else COST_SPIKE, i, excess / threshold, math.exp(excess), kid, k,
                                math.exp(f), math.exp(m)))
                lim = 3 * scale
                d = lim if d > lim else -lim if d < -lim else d
                a = ALPHA_SLOW
            else:
                a = 1.0 / n
            mu[i] = m + a * d
            dv[i] += a * ((d if d >= 0 else -d) - dv[i])

    @staticmethod
    def _roll_hour(k: _Key, hour: int, now: float) -> None:
        if k.season is None and now - k.first >= 86400:
            k.season = [0.0] * WEEK_HOURS
        if k.season is not None:
            gap = min(hour - k.hour, WEEK_HOURS)
            for h in range(gap):
                slot = (k.hour + h) % WEEK_HOURS
                value = k.hcount if h == 0 else 0
                old = k.season[slot]
                k.season[slot] = value if old == 0 else 0.5 * old + 0.5 * value
        k.hour = hour
        k.hcount = 0

    # -- resolving candidates into findings ----------------------------------------------------

    def _resolve(self, r: CallRecord, keys, candidates: list) -> List[Finding]:
        tokens_up = {kid for (t, i, *_rest) in candidates if t == TOKEN_SPIKE for kid in [_rest[2]]}
        best: Dict[str, tuple] = {}
        for c in candidates:
            ctype, kid, k = c[0], c[4], c[5]
            if ctype == COST_SPIKE and (kid in tokens_up or self._tokens_up(k)):
                continue  # the tokens explain the cost: reported as a token spike
            if k.cool is not None and r.time - k.cool.get(ctype, -math.inf) < self.cooldown:
                continue
            if ctype not in best or c[2] > best[ctype][2]:
                best[ctype] = c
        findings = []
        for ctype, c in best.items():
            _, i, strength, ratio, kid, k, observed, baseline = c
            cause = self._cause(ctype, i, kid, k, keys, r)
            metric = {-1: "calls_per_minute", -2: "error_rate"}.get(i) or METRICS[i]
            if ctype == ERROR_SPIKE:
                severity = "critical" if observed >= 0.8 else "warning"
            else:
                severity = _severity(ratio)
            finding = Finding(ctype, _score(strength), severity, cause, metric, observed, baseline,
                              _key_name(kid), r.time, r.trace_id, r.model, dict(r.dims))
            findings.append(finding)
            for _, other, _v in keys:  # one finding per incident: the call's other keys cool down too
                if other.cool is None:
                    other.cool = {}
                other.cool[ctype] = r.time
            if ctype in (COST_SPIKE, TOKEN_SPIKE):
                for okid, _o, _v in keys:
                    self._spikes[okid] = finding
                if len(self._spikes) > self.max_keys:
                    self._spikes.clear()
        return findings

    @staticmethod
    def _tokens_up(k: _Key) -> bool:
        return any(k.nm[i] > WARM_CALLS and k.fa[i] - k.mu[i] > 0.4 for i in (1, 2))

    def _cause(self, ctype: str, i: int, kid, k: _Key, keys, r: CallRecord) -> Cause:
        """The record's key with the largest share of the excess of the reference population: the
        model's calls for a per-model key, the key itself for an every-model key (then the model
        is a candidate dimension)."""
        model_scope = kid[0]
        ref = self._keys.get((model_scope, "*", "*")) if model_scope != "*" else k
        if ref is None:
            ref = k
        base = self._baseline_value(ctype, i, ref)
        if i == -2:  # the firing key's error baseline is frozen during the spike; the model's may not be
            base = min(base, k.es)
        total = self._excess(ctype, i, ref, base, ref)
        shares: List[Tuple[float, int, str, str]] = []
        for okid, o, _v in keys:
            if okid == (model_scope, "*", "*"):
                continue
            if model_scope == "*":
                if okid[0] == "*" or okid[1:] != kid[1:] or o.cf >= 0.95 * ref.cf:
                    continue  # (a model that covers all of the key's calls explains nothing more)
                dim, value = MODEL, okid[0]
            else:
                if okid[0] == "*":
                    continue
                if ref is not k and o.cf >= 0.95 * ref.cf:
                    continue  # a value that covers all of the model's calls explains nothing more
                dim, value = okid[1], okid[2]
            e = self._excess(ctype, i, o, base, ref)
            share = min(1.0, max(0.0, e / total)) if total > 0 else 0.0
            shares.append((share, self._rank.get(dim, len(self._rank)), dim, value))
        top = max((s[0] for s in shares), default=0.0)
        if top < 0.5:
            # No one value explains it: the model, or the every-model key's own value.
            return Cause(MODEL, r.model, 1.0) if model_scope != "*" else Cause(kid[1], kid[2], 1.0)
        # The first dimension (in ``dimensions`` order) within 0.1 of the largest share.
        share, _, dim, value = min((s for s in shares if s[0] >= top - 0.1), key=lambda s: s[1])
        return Cause(dim, value, share)

    @staticmethod
    def _baseline_value(ctype: str, i: int, ref: _Key) -> float:
        if i == -1:
            return 0.0
        if i == -2:
            return ref.es
        return math.exp(ref.mu[i])

    @staticmethod
    def _excess(ctype: str, i: int, o: _Key, base: float, ref: _Key) -> float:
        if i == -1:  # runs above expectation in the fast window
            return o.tf - o.expected_fast(o.t)
        if i == -2:
            return o.sums[3] - o.cf * base
        return o.sums[i] - o.cf * base

    # -- new models ----------------------------------------------------------------------------

    def _new_model(self, r: CallRecord, log_cost: Optional[float]) -> Optional[Finding]:
        found: Optional[Finding] = None
        for dim in self.new_model_dims:
            value = r.dims.get(dim)
            if value is None:
                continue
            entry = self._models.get((dim, value))
            if entry is None:
                if len(self._models) > self.max_keys:
                    self._models.clear()  # rare: forget which models keys use rather than grow
                entry = self._models[(dim, value)] = [0, r.time, set(), None]
            entry[0] += 1
            models = entry[2]
            if r.model not in models:
                established = entry[0] > self.new_model_min_calls and r.time - entry[1] >= self.new_model_min_age
                if len(models) < 64:
                    models.add(r.model)
                if established and found is None:
                    ratio = math.exp(log_cost - entry[3]) if log_cost is not None and entry[3] is not None else 1.0
                    severity = "critical" if ratio >= 10 else "warning" if ratio >= 3 else "info"
                    baseline = math.exp(entry[3]) if entry[3] is not None else 0.0
                    found = Finding(NEW_MODEL, _score(max(ratio, 1.0)), severity, Cause(dim, value, 1.0), "cost_per_call",
                                    r.cost or 0.0, baseline, f"*/{dim}={value}", r.time, r.trace_id, r.model, dict(r.dims))
            if log_cost is not None:
                entry[3] = log_cost if entry[3] is None else entry[3] + 0.02 * (log_cost - entry[3])
        return found

    # -- traces --------------------------------------------------------------------------------

    def _trace(self, r: CallRecord) -> Optional[Finding]:
        now = r.time
        traces = self._traces
        tr = traces.get(r.trace_id)
        if tr is None:
            tkey = next((r.dims[d] for d in self.trace_key_dims if d in r.dims), "*")
            tr = traces[r.trace_id] = _Trace(now, tkey)
            if len(traces) > self.max_traces:
                self._close_trace(*traces.popitem(last=False))
        else:
            traces.move_to_end(r.trace_id)
        tr.calls += 1
        tr.cost += r.cost or 0.0
        tr.last = now
        for _ in range(2):  # close idle traces, oldest first: amortised O(1)
            oldest = next(iter(traces.values()))
            if oldest.last > now - self.trace_idle:
                break
            self._close_trace(*traces.popitem(last=False))
        if tr.escalated:
            return None
        stats = self._trace_stats.get(tr.tkey)
        thr_calls, thr_cost = self._trace_thresholds(stats)
        over_calls = tr.calls / thr_calls
        # A single expensive call is a cost or token spike; a run is runaway by cost from 3 calls on.
        over_cost = tr.cost / thr_cost if tr.calls >= 3 else 0.0
        if over_calls <= 1 and over_cost <= 1:
            return None
        strength = max(over_calls, over_cost)
        if tr.flagged and strength < 3:
            return None
        metric, observed, baseline = (
            ("trace_calls", float(tr.calls), thr_calls) if over_calls >= over_cost else ("trace_cost", tr.cost, thr_cost)
        )
        severity = "critical" if strength >= 3 or tr.flagged else "warning"
        if tr.flagged:
            tr.escalated = True
        tr.flagged = True
        finding = Finding(RUNAWAY_TRACE, _score(strength), severity, Cause(TRACE, r.trace_id, 1.0), metric,
                          observed, baseline, f"*/trace={r.trace_id}", now, r.trace_id, r.model, dict(r.dims))
        if RUNAWAY_TRACE in self.block_types:
            self._block(r.trace_id, finding)
        return finding

    def _trace_thresholds(self, stats: Optional[_TraceStats]) -> Tuple[float, float]:
        if stats is None or stats.n < self.trace_warm:
            calls, cost = float(self.default_trace_calls), math.inf
        else:
            calls, cost = stats.thr_calls, stats.thr_cost
        if self.max_trace_calls is not None:
            calls = min(calls, self.max_trace_calls)
        if self.max_trace_cost is not None:
            cost = min(cost, self.max_trace_cost)
        return calls, cost

    def _close_trace(self, trace_id: str, tr: _Trace) -> None:
        if tr.flagged:
            return  # a runaway trace is not a sample of normal traces
        stats = self._trace_stats.get(tr.tkey)
        if stats is None:
            if len(self._trace_stats) > self.max_keys:
                self._trace_stats.clear()
            stats = self._trace_stats[tr.tkey] = _TraceStats()
        stats.n += 1
        decay = 0.999 if stats.n > 1000 else 1.0
        if decay != 1.0 and stats.n % 64 == 0:
            f = decay ** 64
            stats.calls = [h * f for h in stats.calls]
            stats.cost = [h * f for h in stats.cost]
        stats.calls[_bucket(tr.calls, 1.0)] += 1
        if tr.cost > 0:
            stats.cost[_bucket(tr.cost, _COST_UNIT)] += 1
        if stats.n >= self.trace_warm and stats.n % 16 == 0:
            stats.thr_calls = max(float(self.min_trace_calls), 2 * _quantile_top(stats.calls, 0.999, 1.0))
            if sum(stats.cost) >= self.trace_warm:
                stats.thr_cost = 2 * _quantile_top(stats.cost, 0.999, _COST_UNIT)

    def _block(self, trace_id: str, finding: Finding) -> None:
        self._blocked[trace_id] = finding
        while len(self._blocked) > 1000:
            self._blocked.popitem(last=False)

    # -- repeated identical requests -----------------------------------------------------------

    def _repeat(self, r: CallRecord) -> Optional[Finding]:
        fp = r.fingerprint
        scope = r.trace_id
        if fp is None:
            tokens = r.input_tokens or r.estimated_input_tokens
            if tokens is None or not scope:
                return None
            fp = hash((r.model, tokens))  # weak: same model and input size within one trace
        elif not scope:
            scope = r.dims.get("enduser.id") or r.dims.get(TENANT) or ""
        rid = (fp, scope)
        entry = self._repeats.get(rid)
        if entry is None or r.time - entry[1] > self.retry_window:
            entry = self._repeats[rid] = [0, r.time]
            self._repeats.move_to_end(rid)
            if len(self._repeats) > self.max_fingerprints:
                self._repeats.popitem(last=False)
        entry[0] += 1
        if entry[0] != self.retry_repeats and entry[0] != 3 * self.retry_repeats:
            return None
        critical = entry[0] >= 3 * self.retry_repeats
        dim, value = (TRACE, r.trace_id) if r.trace_id else (("enduser.id", scope) if scope else (MODEL, r.model))
        finding = Finding(RETRY_STORM, _score(entry[0] / self.retry_repeats), "critical" if critical else "warning",
                          Cause(dim, value, 1.0), "repeats", float(entry[0]), 1.0, f"{r.model}/{dim}={value}",
                          r.time, r.trace_id, r.model, dict(r.dims))
        if RETRY_STORM in self.block_types and r.trace_id:
            self._block(r.trace_id, finding)
        return finding

    # -- memory --------------------------------------------------------------------------------

    def _evict_keys(self, now: float) -> None:
        """Keep the ``max_keys`` * 0.9 keys seen most recently, a key's calls counting for recency
        (an hour per e-fold of calls). O(n log n) once per 10 % of ``max_keys`` new keys."""
        keep = int(self.max_keys * 0.9)
        ranked = sorted(self._keys.items(), key=lambda kv: kv[1].t + 3600 * math.log1p(kv[1].n), reverse=True)
        self._keys = dict(ranked[:keep])

    @property
    def key_count(self) -> int:
        return len(self._keys)

    @property
    def trace_count(self) -> int:
        return len(self._traces)

    @property
    def fingerprint_count(self) -> int:
        return len(self._repeats)

    # -- persistence ---------------------------------------------------------------------------

    def snapshot(self) -> Dict[str, list]:
        """The baselines as JSON-able values, one entry per key (see ``restore``)."""
        with self._lock:
            out: Dict[str, list] = {}
            for kid, k in self._keys.items():
                out["k\x1f" + "\x1f".join(kid)] = k.state()
            for (dim, value), e in self._models.items():
                out["m\x1f" + dim + "\x1f" + value] = [e[0], e[1], sorted(e[2]), e[3]]
            for tkey, s in self._trace_stats.items():
                out["t\x1f" + tkey] = [s.n, s.calls, s.cost, s.thr_calls if s.thr_calls != math.inf else None,
                                        s.thr_cost if s.thr_cost != math.inf else None]
            return out

    def restore(self, snapshot: Mapping[str, list]) -> int:
        """Load baselines saved by ``snapshot``; a key this detector has seen more calls of is kept.
        Returns the number of entries loaded."""
        loaded = 0
        with self._lock:
            for name, s in snapshot.items():
                kind, _, rest = name.partition("\x1f")
                parts = tuple(rest.split("\x1f"))
                if kind == "k" and len(parts) == 3:
                    mine = self._keys.get(parts)
                    if mine is None or mine.n < s[2]:
                        self._keys[parts] = _Key.from_state(list(s))
                        loaded += 1
                elif kind == "m" and len(parts) == 2:
                    mine = self._models.get(parts)
                    if mine is None or mine[0] < s[0]:
                        self._models[parts] = [s[0], s[1], set(s[2]), s[3]]
                        loaded += 1
                elif kind == "t" and len(parts) == 1:
                    mine = self._trace_stats.get(parts[0])
                    if mine is None or mine.n < s[0]:
                        st = _TraceStats()
                        st.n, st.calls, st.cost = s[0], list(s[1]), list(s[2])
                        st.thr_calls = s[3] if s[3] is not None else math.inf
                        st.thr_cost = s[4] if s[4] is not None else math.inf
                        self._trace_stats[parts[0]] = st
                        loaded += 1
            if len(self._keys) > self.max_keys:
                self._evict_keys(0.0)
        return loaded


def _key_name(kid: Tuple[str, str, str]) -> str:
    model, dim, value = kid
    return f"{model}/*" if dim == "*" else f"{model}/{dim}={value}"
