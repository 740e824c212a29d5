"""The online detector: per (model, attribution key) robust baselines, per trace totals, repeats.

Per key (model, dimension, value), and for every model together on ``cross_model_dims``:
- cost, input and output tokens per call, in log space, on the finest key of what a call does and
  on the keys of who makes it: a slow baseline (EWMA mean and scale, updates winsorised at 3
  scales, barely learning while the key is in a spike) and a fast EWMA over the last few calls
  (falling back to the baseline after a gap); a spike is the fast mean, and the call, above the
  baseline by max(ln 2, 6 deviations of the fast mean);
- runs: counts decayed over 1 and 5 minutes against the rate of a count decayed over 30 minutes
  (and, after a week, the same hour of the week), with a learned burstiness;
- errors: fast (EWMA 0.2) and slow error rates, caught up lazily on the calls with an error.
Per trace: calls and cost against a threshold learned from finished traces (2x their 99.9th
percentile, at least ``min_trace_calls``). Per request fingerprint and trace (or user): repeats
within 60 s. The cause of a finding is looked up in a ring of the last calls (``_causes``) when the
finding is made. Everything is O(1) per call (amortised for evictions); memory is bounded by
``max_keys``, ``max_traces``, ``max_fingerprints`` and ``cause_calls``.
"""
from __future__ import annotations

import math
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from .. import _semconv as sc
from ._baseline import (
    ALPHA_ERR_FAST,
    ALPHA_FAST,
    ALPHA_SLOW,
    FAST_NOISE,
    METRICS,
    MIN_SCALE,
    TAU_FAST,
    TAU_MID,
    TAU_RELAX,
    TAU_SLOW,
    WARM_CALLS,
    KeyBaseline,
    score,
    severity,
)
from ._causes import CallRing, order
from ._finding import COST_SPIKE, ERROR_SPIKE, RUNAWAY_TRACE, TOKEN_SPIKE, VOLUME_SPIKE, Cause, Finding
from ._new_models import NewModelWatch, Usage
from ._record import DEFAULT_DIMENSIONS, MODEL, PROMPT, SERVICE, TENANT, USER, CallRecord
from ._repeats import RepeatWatch
from ._snapshot import restore_into, snapshot_of
from ._traces import TraceWatch

KeyId = Tuple[str, str, str]  # (model or "*", dimension or "*", value or "*")
# What a key keeps: cost and token baselines (per-model keys), calls and errors only, or also runs
# per minute (the every-model keys of ``volume_dims``).
_METRICS, _COUNTS, _VOLUME = 0, 1, 2
_CONTENT = (PROMPT, SERVICE)  # the dimensions of what a call does (finest first), the others say who makes it
KeyRef = Tuple[KeyId, KeyBaseline, int]  # a key of a call: its id, its baselines, what it keeps
# A key's excess before it is resolved into a finding: (type, metric index (-1 calls per minute,
# -2 error rate), strength, ratio, key id, key, observed, baseline).
Candidate = Tuple[str, int, float, float, KeyId, KeyBaseline, float, float]
_exp, _log = math.exp, math.log
ALPHA_SPIKE = ALPHA_SLOW / 10  # how fast a key's baseline learns while the key is in a spike


class _Shape:
    """The keys of one (model, dims) (all, and by what they keep), its new-model usage entries,
    the key its calls' deviations are measured against for the cause (see ``_key_ids``), and its
    dims (one dict for the ring's calls of the shape, not one per call)."""

    __slots__ = ("keys", "metrics", "metrics_only", "counts", "volume", "usages", "ref", "dims")

    def __init__(self, keys: List[KeyRef], usages: List[Usage], ref: KeyBaseline, dims: Mapping[str, str]) -> None:
        self.keys, self.usages, self.ref, self.dims = keys, usages, ref, dict(dims)
        self.metrics = [(kid, k) for kid, k, kind in keys if kind == _METRICS]
        self.metrics_only = [k for _, k in self.metrics]
        self.counts = [k for _, k, kind in keys if kind == _COUNTS]
        self.volume = [(kid, k) for kid, k, kind in keys if kind == _VOLUME]


class AnomalyDetector:
    """Feed it finished calls with ``observe(record)``; it returns the findings they trigger.

    Thread-safe (one lock). ``should_block(trace_id)`` says whether a trace was found runaway (for
    a budget policy to refuse its next call); ``downgrade_suggestion(model, dims)`` returns the
    active cost or token spike of a call's keys, if any.
    """

    def __init__(
        self,
        *,
        # the keys: attribution dimensions, those also kept over every model, and for calls per minute
        dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
        cross_model_dims: Sequence[str] = (SERVICE, TENANT),
        volume_dims: Sequence[str] = (TENANT, SERVICE),
        new_model_dims: Sequence[str] = (SERVICE, TENANT, PROMPT),
        trace_key_dims: Sequence[str] = (sc.GEN_AI_AGENT_NAME, SERVICE),
        max_keys: int = 10_000, max_traces: int = 10_000, max_fingerprints: int = 20_000,  # memory bounds
        spike_deviations: float = 6.0, min_spike_ratio: float = 2.0,  # cost and token spikes
        volume_ratio: float = 3.0, volume_deviations: float = 4.0,  # calls per minute
        error_rate: float = 0.4,
        retry_repeats: int = 4, retry_window: float = 60.0,  # retry storms
        # runaway traces
        trace_idle: float = 300.0, min_trace_calls: int = 15, default_trace_calls: int = 50,
        max_trace_calls: Optional[int] = None, max_trace_cost: Optional[float] = None, trace_warm: int = 200,
        new_model_min_calls: int = 100, new_model_min_age: float = 3600.0,  # new models
        cooldown: float = 600.0, spike_memory: float = 600.0,  # one finding per incident; downgrade hints
        block_types: Iterable[str] = (RUNAWAY_TRACE,),
        cause_calls: int = 1024,  # the last calls kept for the causes of findings
    ) -> None:
        self.dimensions = tuple(dimensions)
        self.cross_model_dims = frozenset(cross_model_dims)
        self.volume_dims = frozenset(volume_dims)
        self.max_keys = max_keys
        self.spike_deviations, self.min_spike_log = spike_deviations, math.log(min_spike_ratio)
        self.volume_ratio, self.volume_deviations = volume_ratio, volume_deviations
        # Runs under 2 x expected + 3 are then under both thresholds, max(ratio x e, e + deviations
        # x sqrt(e) + 3), whatever the expected e: they are not checked further.
        self._volume_fast = volume_ratio > 2 and 3 / (volume_ratio - 2) <= volume_deviations ** 2
        self.error_rate = error_rate
        self.cooldown, self.spike_memory = cooldown, spike_memory
        self.block_types = frozenset(block_types)
        self._spike_k = spike_deviations * FAST_NOISE
        self._rank = {d: i for i, d in enumerate(self.dimensions)}
        # The tie-break of causes, by type: a prompt change moves tokens, a price (a tenant's or a
        # user's deployment, tier or route) moves cost per call with the tokens unchanged, and
        # errors come from the provider or model first.
        self._ranks = {
            TOKEN_SPIKE: order(self.dimensions, ()),
            COST_SPIKE: order(self.dimensions, (TENANT, USER, SERVICE)),
            ERROR_SPIKE: order(self.dimensions, (MODEL, SERVICE, TENANT, USER)),
        }
        self._keys: Dict[KeyId, KeyBaseline] = {}
        self._ring = CallRing(cause_calls)
        self._ring_calls = self._ring.calls
        self._shapes: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], _Shape] = {}
        self._new_models = NewModelWatch(new_model_dims, new_model_min_calls, new_model_min_age, max_keys)
        self._traces = TraceWatch(
            trace_key_dims, max_traces=max_traces, max_keys=max_keys, trace_idle=trace_idle, trace_warm=trace_warm,
            min_trace_calls=min_trace_calls, default_trace_calls=default_trace_calls,
            max_trace_calls=max_trace_calls, max_trace_cost=max_trace_cost,
        )
        self._generation = self._new_models.generation
        self._repeats = RepeatWatch(retry_repeats, retry_window, max_fingerprints)
        self._blocked: "OrderedDict[str, Finding]" = OrderedDict()
        self._spikes: Dict[KeyId, Finding] = {}
        self._by_cause: Dict[Tuple[str, str, str], Finding] = {}  # (type, dimension, value) -> the last reported
        self._lock = threading.Lock()  # the per-key rules
        self._trace_lock = threading.Lock()  # the per-trace rules
        _DETECTORS.add(self)

    # -- the policy hooks ---------------------------------------------------------------------

    def should_block(self, trace_id: Optional[str]) -> Optional[Finding]:
        """The finding that makes this trace's next call refusable (a runaway trace), or None."""
        if not trace_id:
            return None
        return self._blocked.get(trace_id)

    def downgrade_suggestion(
        self, model: str, dims: Mapping[str, str], now: Optional[float] = None
    ) -> Optional[Finding]:
        """The cost or token spike found within ``spike_memory`` seconds on one of this call's keys."""
        for dim, value in dims.items():
            finding = self._spikes.get((model, dim, value))
            if finding is not None and (now is None or now - finding.time <= self.spike_memory):
                return finding
        return None

    # -- feeding ------------------------------------------------------------------------------

    def observe(self, r: CallRecord) -> List[Finding]:
        """The findings call ``r`` triggers: ``observe_keys(r, observe_trace(r))``, its per-key ones first."""
        new_run, trace_found = self.observe_trace(r)
        return self.observe_keys(r, new_run) + trace_found

    def observe_trace(self, r: CallRecord) -> Tuple[bool, List[Finding]]:
        """The per-trace rules of call ``r`` (runaway traces, retry storms): whether it starts a run
        (``observe_keys``'s ``new_run``) and its findings. Calls go through it in order, and then,
        in the same order, through ``observe_keys``, which may come later (another thread: the two
        hold their own locks, and a trace is blocked as soon as this returns)."""
        with self._trace_lock:
            return self._observe_trace(r)

    def observe_keys(self, r: CallRecord, new_run: bool) -> List[Finding]:
        """The per-key rules of call ``r`` (cost, token, volume and error spikes, new models)."""
        with self._lock:
            return self._observe_keys(r, new_run)

    def _observe_trace(self, r: CallRecord) -> Tuple[bool, List[Finding]]:
        """The per-trace rules (under the trace lock): whether the call starts a run (a trace's first
        call, or a call without a trace), and its runaway-trace and retry-storm findings."""
        found: List[Finding] = []
        new_run = True  # calls per minute count runs (traces): the calls inside one are the trace's business
        trace_id = r.trace_id
        if trace_id:
            traces = self._traces
            new_run = trace_id not in traces.traces
            f = traces.observe(r, trace_id)
            if f is not None:
                self._found(r, f, found)
        f = self._repeats.observe(r)
        if f is not None:
            self._found(r, f, found)
        return new_run, found

    def _observe_keys(self, r: CallRecord, new_run: bool) -> List[Finding]:
        """The per-key rules (under the lock)."""
        now = r.time
        err = r.error
        logs: Optional[Tuple[Optional[float], Optional[float], Optional[float]]] = None
        if not err:
            c, i, o = r.cost, r.input_tokens, r.output_tokens
            logs = (_log(c) if c is not None and c > 0 else None, _log(i) if i is not None and i > 0 else None,
                    _log(o) if o is not None and o > 0 else None)
        dims = r.dims
        if self._generation != self._new_models.generation:
            self._shapes.clear()
            self._generation = self._new_models.generation
        shape_id = (r.model, tuple(dims.items()))
        shape = self._shapes.get(shape_id)
        findings: List[Finding] = []
        if shape is None:
            shape = self._shape(r, shape_id)
            if self._new_models.dims:
                f = self._new_models.observe(r, logs[0] if logs is not None else None)
                if f is not None:
                    findings.append(f)
        else:  # (NewModelWatch.count, inlined: the model is known to every entry; count the call)
            log_cost = logs[0] if logs is not None else None
            for entry in shape.usages:
                entry.calls += 1
                if log_cost is not None:
                    mean = entry.log_cost
                    entry.log_cost = log_cost if mean is None else mean + 0.02 * (log_cost - mean)
        candidates: List[Candidate] = []
        self._ring_calls.append((now, r.model, shape.dims, logs, err, shape.ref, shape))  # (CallRing.add)
        for k in shape.counts:
            k.n += 1
            k.t = now
        if new_run:
            for kid, k in shape.volume:
                self._volume(kid, k, now, candidates)
        else:
            for _, k in shape.volume:
                k.n += 1
        if logs is not None:
            update = self._update
            for kid, k in shape.metrics:
                update(kid, k, now, logs, candidates)
        else:
            for k in shape.metrics_only:
                k.n += 1
                k.t = now
        if err:
            self._errors(shape.keys, now, candidates)
        if candidates:
            findings += self._resolve(r, shape.keys, candidates)
        return findings

    def _shape(self, r: CallRecord, shape_id: Tuple[str, Tuple[Tuple[str, str], ...]]) -> "_Shape":
        """The keys of a (model, dims): looked up once, then cached until keys are evicted."""
        table = self._keys
        now = r.time
        keys: List[KeyRef] = []
        for kid, kind in self._key_ids(r.model, r.dims):
            k = table.get(kid)
            if k is None:
                k = table[kid] = KeyBaseline(now)
            keys.append((kid, k, kind))
        if len(table) > self.max_keys:
            self._evict_keys(now)  # (clears the cache) this call's keys stay, evicted or not
            table = self._keys
            for kid, k, _ in keys:
                table.setdefault(kid, k)
        if len(self._shapes) >= 4 * self.max_keys:
            self._shapes.clear()
        ref = next((k for kid, k, _ in keys if kid[1] == PROMPT and kid[0] != "*"),
                   next((k for kid, k, _ in keys if kid[1] == SERVICE and kid[0] != "*"), keys[0][1]))  # (see _key_ids)
        shape = self._shapes[shape_id] = _Shape(keys, self._new_models.entries(r), ref, r.dims)
        return shape

    def _found(self, r: CallRecord, finding: Finding, findings: List[Finding]) -> None:
        """Add a trace's finding; its trace is blocked when its type is one of ``block_types``."""
        findings.append(finding)
        if finding.type in self.block_types and r.trace_id:
            self._block(r.trace_id, finding)

    def _key_ids(self, model: str, dims: Mapping[str, str]) -> Iterator[Tuple[KeyId, int]]:
        """The keys of a call. Cost and token baselines are kept on the finest key of what the call
        does (its model and prompt, else service, else the model alone: the reference of its
        deviations) and on the keys of who makes it (tenant, user, other dimensions); the model's
        and the service's coarser keys keep calls and errors only."""
        content = PROMPT if PROMPT in dims else SERVICE if SERVICE in dims else None
        yield (model, "*", "*"), (_METRICS if content is None else _COUNTS)
        for dim, value in dims.items():
            yield (model, dim, value), (_COUNTS if dim in _CONTENT and dim != content else _METRICS)
            if dim in self.cross_model_dims:
                # Calls per minute are checked over every model: one model's share of a key is burstier.
                yield ("*", dim, value), (_VOLUME if dim in self.volume_dims else _COUNTS)

    def _errors(self, keys: Sequence[KeyRef], now: float, out: List[Candidate]) -> None:
        """A call with an error (its keys' call counts already include it)."""
        rate = self.error_rate
        for kid, k, _ in keys:
            n = k.n
            ef, es = k.error_rates(n - 1, now)
            ef += ALPHA_ERR_FAST * (1.0 - ef)
            if n >= WARM_CALLS and ef >= rate and ef >= 4 * es + 0.05:
                out.append((ERROR_SPIKE, -2, ef / rate, ef / max(es, 1e-3), kid, k, ef, es))
            if ef < rate:  # the baseline does not learn an ongoing spike
                es += (1.0 / n if n < 100 else 0.01) * (1.0 - es)
            k.ef, k.es, k.en, k.et = ef, es, n, now

    def _update(self, kid: KeyId, k: KeyBaseline, now: float,
                logs: Tuple[Optional[float], Optional[float], Optional[float]], out: List[Candidate]) -> None:
        """A call without error on a key with cost and token baselines."""
        dt = now - k.t
        relax = _exp(-dt / TAU_RELAX) if dt > 60.0 else 0.0  # what is left of the fast means' excess after a gap
        k.t = now
        k.n += 1
        # cost and tokens per call (log space)
        nm, mu, dv, fa = k.nm, k.mu, k.dv, k.fa
        min_log, dev_k = self.min_spike_log, self._spike_k
        for i in (0, 1, 2):
            x = logs[i]
            if x is None:
                continue
            c = nm[i] = nm[i] + 1
            m = mu[i]
            d = x - m
            if c > WARM_CALLS:
                f = fa[i]
                if relax:
                    f = m + (f - m) * relax
                f = fa[i] = f + ALPHA_FAST * (x - f)
                scale = dv[i]
                if scale < MIN_SCALE:
                    scale = MIN_SCALE
                threshold = dev_k * scale
                if threshold < min_log:
                    threshold = min_log
                excess = f - m
                if excess > 0.5 * threshold:
                    # A key in (or entering) a spike: its baseline barely learns, its scale not at all.
                    if excess > threshold and d > threshold:  # (the call itself is part of the spike)
                        out.append((TOKEN_SPIKE if i else COST_SPIKE, i, excess / threshold, _exp(excess), kid, k,
                                    _exp(f), _exp(m)))
                    mu[i] = m + ALPHA_SPIKE * (scale if d > scale else -scale if d < -scale else d)
                    continue
                lim = 3 * scale
                if d > lim:
                    d = lim
                elif d < -lim:
                    d = -lim
                mu[i] = m + ALPHA_SLOW * d
                dv[i] = scale + ALPHA_SLOW * (1.25 * (d if d >= 0 else -d) - scale)
            elif c == 1:
                mu[i] = fa[i] = x
            else:  # warming up: plain means
                fa[i] += ALPHA_FAST * (x - fa[i])
                a = 1.0 / c
                mu[i] = m + a * d
                dv[i] += a * (1.25 * (d if d >= 0 else -d) - dv[i])

    def _volume(self, kid: KeyId, k: KeyBaseline, now: float, out: List[Candidate]) -> None:
        """A new run on a volume key: runs in the last minute and 5 minutes against the expected
        (the counts are decayed at new runs only: ``t`` is the last run's time)."""
        dt = now - k.t
        if dt > 0:
            k.tf *= _exp(-dt / TAU_FAST)
            k.t5 *= _exp(-dt / TAU_MID)
            k.ts *= _exp(-dt / TAU_SLOW)
            k.t = now
        k.n += 1
        weight = 1.0  # of this run in the slow count
        age = now - k.first
        if k.n > 50 and age >= TAU_SLOW:
            rate = k.ts / TAU_SLOW / (1.0 - _exp(-age / TAU_SLOW)) if age < 20 * TAU_SLOW else k.ts / TAU_SLOW
            if k.season is not None and age > 7 * 86400:
                rate = k.expected_rate(now)
            e1, e5 = rate * TAU_FAST, rate * TAU_MID
            o1, o5 = k.tf + 1, k.t5 + 1
            cap1, cap5 = 2 * e1 + 3, 2 * e5 + 3  # (under the thresholds, see __init__)
            if o1 < cap1 and o5 < cap5 and self._volume_fast:
                # normal traffic: the burstiness is learned from it only
                dev = o1 - e1 if o1 > e1 else e1 - o1
                if dev > 3.0:
                    lim = 3 * math.sqrt(e1) + 3
                    if dev > lim:
                        dev = lim
                k.rdev += 0.01 * (dev - k.rdev)
            else:
                root = math.sqrt(e1)
                burst = 1.25 * k.rdev / root if root > 0 else 1.0  # learned overdispersion
                if burst < 1.0:
                    burst = 1.0
                thr1 = max(self.volume_ratio * e1, e1 + self.volume_deviations * burst * root + 3)
                thr5 = max(self.volume_ratio * e5, e5 + self.volume_deviations * burst * math.sqrt(e5) + 3)
                if o1 > thr1 or o5 > thr5:
                    s1, s5 = (o1 - e1) / (thr1 - e1), (o5 - e5) / (thr5 - e5)
                    if s1 >= s5:
                        out.append((VOLUME_SPIKE, -1, s1, o1 / max(e1, 1e-9), kid, k, o1 * 60 / TAU_FAST,
                                    e1 * 60 / TAU_FAST))
                    else:
                        out.append((VOLUME_SPIKE, -1, s5, o5 / max(e5, 1e-9), kid, k, o5 * 60 / TAU_MID,
                                    e5 * 60 / TAU_MID))
                if o1 < cap1 and o5 < cap5:
                    k.rdev += 0.01 * (min(abs(o1 - e1), 3 * root + 3) - k.rdev)
                else:  # nor does the slow rate learn a spike at full weight
                    weight = min(1.0, cap1 / o1, cap5 / o5)
        k.tf += 1
        k.t5 += 1
        k.ts += weight
        hour = int(now // 3600)
        if hour != k.hour:
            k.roll_hour(hour, now)
        k.hcount += weight

    # -- resolving candidates into findings ----------------------------------------------------

    def _resolve(self, r: CallRecord, keys: Sequence[KeyRef], candidates: List[Candidate]) -> List[Finding]:
        tokens_up = {c[4] for c in candidates if c[0] == TOKEN_SPIKE}
        best: Dict[str, Candidate] = {}
        for c in candidates:
            ctype, kid, k = c[0], c[4], c[5]
            if ctype == COST_SPIKE and (kid in tokens_up or k.tokens_up()):
                continue  # the tokens explain the cost: reported as a token spike
            if k.cool is not None and r.time - k.cool.get(ctype, -math.inf) < self.cooldown:
                continue
            if ctype not in best or c[2] > best[ctype][2]:
                best[ctype] = c
        findings = []
        for ctype, c in best.items():
            _, i, strength, ratio, kid, k, observed, baseline = c
            # One finding per incident: a finding of the type within the cooldown whose cause is one
            # of this call's values (or its model) holds this one too; else the cause is looked up
            # and a finding of the same type and cause within the cooldown is not reported again.
            earlier = self._earlier(ctype, r)
            if earlier is None:
                cause = self._cause(ctype, i, kid, keys, r)
                metric = {-1: "calls_per_minute", -2: "error_rate"}.get(i) or METRICS[i]
                level = ("critical" if observed >= 0.8 else "warning") if ctype == ERROR_SPIKE else severity(ratio)
                finding = Finding(ctype, score(strength), level, cause, metric, observed, baseline,
                                  _key_name(kid), r.time, r.trace_id, r.model, dict(r.dims))
                by_cause = (ctype, cause.dimension, cause.value)
                earlier = self._by_cause.get(by_cause)
                if earlier is not None and r.time - earlier.time >= self.cooldown:
                    earlier = None
            if earlier is not None:
                finding = earlier
            else:
                if len(self._by_cause) >= self.max_keys:
                    self._by_cause.clear()
                self._by_cause[by_cause] = finding
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

    def _earlier(self, ctype: str, r: CallRecord) -> Optional[Finding]:
        """A finding of ``ctype`` within the cooldown whose cause is the call's model or one of its values."""
        by_cause = self._by_cause
        if not by_cause:
            return None
        for dim, value in ((MODEL, r.model), *r.dims.items()):
            f = by_cause.get((ctype, dim, value))
            if f is not None and r.time - f.time < self.cooldown:
                return f
        return None

    def _cause(self, ctype: str, i: int, kid: KeyId, keys: Sequence[KeyRef], r: CallRecord) -> Cause:
        """The dimension and value holding the excess (see ``_causes``); computed only for a finding."""
        if i == -1:
            return self._volume_cause(kid, r.time)
        every_model = (kid[1], kid[2]) if kid[0] == "*" else None
        cause, _ = self._ring.cause(i if i >= 0 else 3, r.time, r.model, r.dims, self._ranks[ctype], every_model)
        return cause

    def _volume_cause(self, kid: KeyId, now: float) -> Cause:
        """Of the firing key and the every-model keys of the other volume dimensions, the one with
        the fewest expected runs whose runs in the last minute exceed the expected by at least 80 %
        of the largest such excess (a tenant's burst spread over services names the tenant; a
        burst of every tenant of a service, the service). A scan of the volume keys, made only when
        a volume spike is found."""
        own = self._keys.get(kid)
        if own is None:
            return Cause(kid[1], kid[2], 1.0)
        cands: List[Tuple[float, float, KeyId]] = []  # (excess, expected, key)
        for okid, o in [(kid, own)] + [(okid, o) for okid, o in self._keys.items()
                                       if okid[0] == "*" and okid[1] != kid[1] and okid[1] in self.volume_dims]:
            if o.n > 50:
                expected = o.expected_fast(now)
                cands.append((o.tf * _exp(-(now - o.t) / TAU_FAST) - expected, expected, okid))
        top = max((c[0] for c in cands), default=0.0)
        if top <= 0:
            return Cause(kid[1], kid[2], 1.0)
        excess, _, best = min((c for c in cands if c[0] >= 0.8 * top), key=lambda c: c[1])
        return Cause(best[1], best[2], min(1.0, max(0.0, excess / top)))

    def _block(self, trace_id: str, finding: Finding) -> None:
        self._blocked[trace_id] = finding
        while len(self._blocked) > 1000:
            self._blocked.popitem(last=False)

    # -- memory --------------------------------------------------------------------------------

    def _evict_keys(self, now: float) -> None:
        """Keep the ``max_keys`` * 0.9 keys seen most recently, a key's calls counting for recency
        (an hour per e-fold of calls). O(n log n) once per 10 % of ``max_keys`` new keys."""
        keep = int(self.max_keys * 0.9)
        ranked = sorted(self._keys.items(), key=lambda kv: kv[1].t + 3600 * math.log1p(kv[1].n), reverse=True)
        self._keys = dict(ranked[:keep])
        self._shapes.clear()

    @property
    def key_count(self) -> int:
        """Keys (model, dimension, value) with baselines: at most ``max_keys`` after an eviction."""
        return len(self._keys)

    @property
    def trace_count(self) -> int:
        """Open traces: at most ``max_traces``."""
        return len(self._traces.traces)

    @property
    def fingerprint_count(self) -> int:
        """(request fingerprint, trace or user) pairs watched for repeats: at most ``max_fingerprints``."""
        return len(self._repeats)

    # -- persistence (``_snapshot``) ----------------------------------------------------------

    def snapshot(self) -> Dict[str, List[Any]]:
        """The baselines as JSON-able values, one entry per key (see ``restore``)."""
        with self._trace_lock, self._lock:
            return snapshot_of(self._keys, self._new_models, self._traces)

    def restore(self, snapshot: Mapping[str, List[Any]]) -> int:
        """Load baselines saved by ``snapshot``; a key this detector has seen more calls of is kept.
        Returns the number of entries loaded."""
        with self._trace_lock, self._lock:
            loaded = restore_into(self._keys, self._new_models, self._traces, snapshot)
            self._shapes.clear()
            if len(self._keys) > self.max_keys:
                self._evict_keys(0.0)
        return loaded

    def _after_fork(self) -> None:
        """In a forked child: new locks (the parent's other threads may have held them)."""
        self._lock, self._trace_lock = threading.Lock(), threading.Lock()


_DETECTORS: "weakref.WeakSet[AnomalyDetector]" = weakref.WeakSet()


def _reset_after_fork() -> None:
    for detector in list(_DETECTORS):
        detector._after_fork()  # noqa: SLF001


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _key_name(kid: KeyId) -> str:
    model, dim, value = kid
    return f"{model}/*" if dim == "*" else f"{model}/{dim}={value}"
