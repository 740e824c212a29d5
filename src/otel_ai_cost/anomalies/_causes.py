"""Root causes: which dimension and value holds the excess a finding saw.

The detector keeps the last calls (at most ``maxlen``, ``horizon`` seconds) in a ring: time, model,
dims, the log metrics, the error flag and the key the call's deviations are measured against (its
model and prompt, else its model and service, else its model). Nothing else is done per call: the
cause is computed only when a finding is made, by replaying the ring.

For each candidate (the finding's call's model, and each of its values, over every model and
within the call's model) the replay builds a CUSUM of the deviations of the candidate's calls, in
the scales of their reference baselines, less a drift of ``drift`` scales per call (``err_drift``
for errors: error - error rate - drift), decayed over ``tau`` seconds. The calls of the value at
fault add to it; a larger population than the cause also holds normal calls, which subtract the
drift; a smaller one (one user of the tenant at fault) holds fewer of the calls at fault. So the
cause is the candidate with the largest CUSUM. Candidates over the same calls (a model used by one
prompt only) tie; the order of the finding's type decides. For a finding on an every-model key,
the key's value within each model is a candidate too (named by the model).
"""
from __future__ import annotations

import math
from collections import deque
from typing import Deque, Dict, List, Mapping, Optional, Sequence, Tuple

from ._baseline import MIN_SCALE, WARM_CALLS, KeyBaseline
from ._finding import Cause
from ._record import MODEL

Logs = Optional[Tuple[Optional[float], Optional[float], Optional[float]]]
# (time, model, dims, log metrics or None for an error, error, reference key, the calls' shape: any
# object shared by the calls of one (model, dims), for memoising which candidates a call belongs to)
RingCall = Tuple[float, str, Mapping[str, str], Logs, bool, KeyBaseline, object]
# a candidate: its calls (model scope or None, dimension or MODEL, value), and the dimension and value it names
Candidate = Tuple[Optional[str], str, str, str, str]

CUSUM_DRIFT = 2.0  # per call, in scales of the reference baseline (cost and tokens)
CUSUM_ERR = 0.15  # per call (errors)
TAU_CAUSE = 300.0


class CallRing:
    """The last calls, for the causes of findings: O(1) per call."""

    def __init__(self, maxlen: int = 1024, horizon: float = 2 * TAU_CAUSE, tau: float = TAU_CAUSE,
                 drift: float = CUSUM_DRIFT, err_drift: float = CUSUM_ERR) -> None:
        self.calls: Deque[RingCall] = deque(maxlen=maxlen)
        self.horizon, self.tau, self.drift, self.err_drift = horizon, tau, drift, err_drift

    def add(self, call: RingCall) -> None:
        self.calls.append(call)

    def cause(self, metric: int, now: float, model: str, dims: Mapping[str, str], ranks: Mapping[str, int],
              every_model: Optional[Tuple[str, str]] = None) -> Tuple[Cause, float]:
        """The cause of an excess of ``metric`` (0..2: cost, input, output tokens; 3: errors) seen
        on a call of ``model`` with ``dims`` at ``now`` (on the every-model key ``every_model``
        = (dimension, value), if so), and the reference excess (the model's) for its share."""
        since = now - self.horizon
        calls = [c for c in self.calls if c[0] >= since]
        cands: List[Candidate] = [(None, MODEL, model, MODEL, model)]
        for dim, value in dims.items():
            cands.append((None, dim, value, dim, value))
            cands.append((model, dim, value, dim, value))
        if every_model is not None:  # which model holds the every-model key's excess
            edim, evalue = every_model
            models = {c[1] for c in calls if c[2].get(edim) == evalue}
            cands += [(m, edim, evalue, MODEL, m) for m in sorted(models)]
        cusum = [0.0] * len(cands)
        excess = [0.0] * len(cands)
        drift = self.err_drift if metric == 3 else self.drift
        tau = self.tau
        pairs = list(dims.items())  # candidate 1 + 2j: pairs[j] over every model, 2 + 2j: within the model
        by_model = {c[0]: n for n, c in enumerate(cands) if c[3] == MODEL and c[0] is not None}
        edim, evalue = every_model if every_model is not None else ("", "")
        rates: Dict[int, float] = {}  # id(reference key) -> its slow error rate
        for t, m, d, logs, err, ref, _ in calls:
            mine = []  # the candidates this call belongs to
            own = m == model
            if own:
                mine.append(0)
            for j, (dim, value) in enumerate(pairs):
                if d.get(dim) == value:
                    mine.append(1 + 2 * j)
                    if own:
                        mine.append(2 + 2 * j)
            if edim and d.get(edim) == evalue and m in by_model:
                mine.append(by_model[m])
            if not mine:
                continue
            if metric == 3:
                if ref.n < WARM_CALLS:
                    continue
                es = rates.get(id(ref))
                if es is None:
                    es = rates[id(ref)] = ref.error_rates(ref.n, now)[1]
                dev = (1.0 if err else 0.0) - es
                z = dev - drift
            else:
                if logs is None or ref.nm[metric] <= WARM_CALLS:
                    continue
                x = logs[metric]
                if x is None:
                    continue
                dev = x - ref.mu[metric]
                z = dev / max(ref.dv[metric], MIN_SCALE) - drift
            w = math.exp((t - now) / tau)  # the CUSUMs are kept scaled to ``now``
            zw, dw = z * w, dev * w
            for n in mine:
                u = cusum[n] + zw
                cusum[n] = u if u > 0 else 0.0
                excess[n] += dw
        ref_excess = excess[0]
        top = max(cusum)
        if top <= 0:  # no evidence (a cold reference): the model, or the every-model key's value
            dim, value = (MODEL, model) if every_model is None else every_model
            return Cause(dim, value, 1.0), ref_excess
        # candidates over the same calls tie: the order of the type decides
        tied = [n for n, c in enumerate(cusum) if c >= 0.99 * top]
        n = min(tied, key=lambda n: (ranks.get(cands[n][3], len(ranks)), n))
        dim, value = cands[n][3], cands[n][4]
        share = 1.0 if dim == MODEL or ref_excess <= 0 else min(1.0, max(0.0, excess[n] / ref_excess))
        return Cause(dim, value, share), ref_excess


def order(dimensions: Sequence[str], first: Sequence[str]) -> Dict[str, int]:
    """Ranks of dimensions: ``first`` (those of them in use) first, then ``dimensions``, then the model."""
    ranked = [d for d in first if d in dimensions or d == MODEL]
    ranked += [d for d in dimensions if d not in ranked]
    if MODEL not in ranked:
        ranked.append(MODEL)
    return {d: i for i, d in enumerate(ranked)}
