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
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from .. import _semconv as sc
from ._baseline import (
    ALPHA_ERR_FAST,
    ALPHA_FAST,
    ALPHA_SLOW,
    FAST_NOISE,
    METRICS,
    TAU_FAST,
    TAU_SLOW,
    WARM_CALLS,
    KeyBaseline,
    score,
    severity,
)
from ._finding import COST_SPIKE, ERROR_SPIKE, RUNAWAY_TRACE, TOKEN_SPIKE, VOLUME_SPIKE, Cause, Finding
from ._new_models import NewModelWatch
from ._record import DEFAULT_DIMENSIONS, MODEL, PROMPT, SERVICE, TENANT, CallRecord
from ._repeats import RepeatWatch
from ._traces import TraceWatch

KeyId = Tuple[str, str, str]  # (model or "*", dimension or "*", value or "*")
# A key's excess before it is resolved into a finding: (type, metric index (-1 calls per minute,
# -2 error rate), strength, ratio, key id, key, observed, baseline).
Candidate = Tuple[str, int, float, float, KeyId, KeyBaseline, float, float]


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
    ) -> None:
        self.dimensions = tuple(dimensions)
        self.cross_model_dims = frozenset(cross_model_dims)
        self.volume_dims = frozenset(volume_dims)
        self.max_keys = max_keys
        self.spike_deviations, self.min_spike_log = spike_deviations, math.log(min_spike_ratio)
        self.volume_ratio, self.volume_deviations = volume_ratio, volume_deviations
        self.error_rate = error_rate
        self.cooldown, self.spike_memory = cooldown, spike_memory
        self.block_types = frozenset(block_types)
        self._spike_k = spike_deviations * FAST_NOISE
        self._rank = {d: i for i, d in enumerate(self.dimensions)}
        self._keys: Dict[KeyId, KeyBaseline] = {}
        self._new_models = NewModelWatch(new_model_dims, new_model_min_calls, new_model_min_age, max_keys)
        self._traces = TraceWatch(
            trace_key_dims, max_traces=max_traces, max_keys=max_keys, trace_idle=trace_idle, trace_warm=trace_warm,
            min_trace_calls=min_trace_calls, default_trace_calls=default_trace_calls,
            max_trace_calls=max_trace_calls, max_trace_cost=max_trace_cost,
        )
        self._repeats = RepeatWatch(retry_repeats, retry_window, max_fingerprints)
        self._blocked: "OrderedDict[str, Finding]" = OrderedDict()
        self._spikes: Dict[KeyId, Finding] = {}
        self._lock = threading.Lock()

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
        keys: List[Tuple[KeyId, KeyBaseline, bool]] = []  # (key id, state, volume checked)
        table = self._keys
        for kid, vol in self._key_ids(model, dims):
            k = table.get(kid)
            if k is None:
                k = table[kid] = KeyBaseline(now)
                if len(table) > self.max_keys:
                    self._evict_keys(now)
            keys.append((kid, k, vol))
        trace_finding = None
        new_run = True  # calls per minute count runs (traces): the calls inside one are the trace's business
        if r.trace_id:
            new_run = r.trace_id not in self._traces.traces
            trace_finding = self._traces.observe(r, r.trace_id)
        candidates: List[Candidate] = []
        for kid, k, vol in keys:
            self._update(kid, k, now, logs, lin, err, vol, new_run, candidates)
        if candidates:
            findings += self._resolve(r, keys, candidates)
        if self._new_models.dims:
            f = self._new_models.observe(r, logs[0])
            if f is not None:
                findings.append(f)
        if trace_finding is not None:
            self._found(r, trace_finding, findings)
        f = self._repeats.observe(r)
        if f is not None:
            self._found(r, f, findings)
        return findings

    def _found(self, r: CallRecord, finding: Finding, findings: List[Finding]) -> None:
        """Add a trace's finding; its trace is blocked when its type is one of ``block_types``."""
        findings.append(finding)
        if finding.type in self.block_types and r.trace_id:
            self._block(r.trace_id, finding)

    def _key_ids(self, model: str, dims: Mapping[str, str]) -> Iterator[Tuple[KeyId, bool]]:
        yield (model, "*", "*"), False
        for dim, value in dims.items():
            yield (model, dim, value), False
            if dim in self.cross_model_dims:
                # Calls per minute are checked over every model: one model's share of a key is burstier.
                yield ("*", dim, value), dim in self.volume_dims

    def _update(self, kid: KeyId, k: KeyBaseline, now: float, logs: Sequence[Optional[float]], lin: Sequence[float],
                err: float, vol: bool, new_run: bool, out: List[Candidate]) -> None:
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
            k.roll_hour(hour, now)
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

    # -- resolving candidates into findings ----------------------------------------------------

    def _resolve(self, r: CallRecord, keys: Sequence[Tuple[KeyId, KeyBaseline, bool]],
                 candidates: List[Candidate]) -> List[Finding]:
        tokens_up = {kid for (t, i, *_rest) in candidates if t == TOKEN_SPIKE for kid in [_rest[2]]}
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
            cause = self._cause(ctype, i, kid, k, keys, r)
            metric = {-1: "calls_per_minute", -2: "error_rate"}.get(i) or METRICS[i]
            level = ("critical" if observed >= 0.8 else "warning") if ctype == ERROR_SPIKE else severity(ratio)
            finding = Finding(ctype, score(strength), level, cause, metric, observed, baseline,
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

    def _cause(self, ctype: str, i: int, kid: KeyId, k: KeyBaseline, keys: Sequence[Tuple[KeyId, KeyBaseline, bool]],
               r: CallRecord) -> Cause:
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
    def _baseline_value(ctype: str, i: int, ref: KeyBaseline) -> float:
        if i == -1:
            return 0.0
        if i == -2:
            return ref.es
        return math.exp(ref.mu[i])

    @staticmethod
    def _excess(ctype: str, i: int, o: KeyBaseline, base: float, ref: KeyBaseline) -> float:
        if i == -1:  # runs above expectation in the fast window
            return o.tf - o.expected_fast(o.t)
        if i == -2:
            return o.sums[3] - o.cf * base
        return o.sums[i] - o.cf * base

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
        return len(self._repeats.repeats)

    # -- persistence ---------------------------------------------------------------------------

    def snapshot(self) -> Dict[str, List[Any]]:
        """The baselines as JSON-able values, one entry per key (see ``restore``)."""
        with self._lock:
            out: Dict[str, List[Any]] = {}
            for kid, k in self._keys.items():
                out["k\x1f" + "\x1f".join(kid)] = k.state()
            for dim, value in self._new_models.usage:
                out["m\x1f" + dim + "\x1f" + value] = self._new_models.state((dim, value))
            for tkey, s in self._traces.stats.items():
                out["t\x1f" + tkey] = s.state()
            return out

    def restore(self, snapshot: Mapping[str, List[Any]]) -> int:
        """Load baselines saved by ``snapshot``; a key this detector has seen more calls of is kept.
        Returns the number of entries loaded."""
        loaded = 0
        with self._lock:
            for name, s in snapshot.items():
                kind, _, rest = name.partition("\x1f")
                parts = tuple(rest.split("\x1f"))
                if kind == "k" and len(parts) == 3:
                    kid = (parts[0], parts[1], parts[2])
                    mine = self._keys.get(kid)
                    if mine is None or mine.n < s[2]:
                        self._keys[kid] = KeyBaseline.from_state(list(s))
                        loaded += 1
                elif kind == "m" and len(parts) == 2:
                    loaded += self._new_models.restore((parts[0], parts[1]), s)
                elif kind == "t" and len(parts) == 1:
                    loaded += self._traces.restore(parts[0], s)
            if len(self._keys) > self.max_keys:
                self._evict_keys(0.0)
        return loaded


def _key_name(kid: KeyId) -> str:
    model, dim, value = kid
    return f"{model}/*" if dim == "*" else f"{model}/{dim}={value}"
