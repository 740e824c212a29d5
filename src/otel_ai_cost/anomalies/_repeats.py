"""Retry storms: the same request repeated within ``retry_window`` seconds in one trace (or, for a
request with a fingerprint but no trace, for one user or tenant). At most ``max_fingerprints``
(fingerprint, scope) pairs are kept, the oldest forgotten first."""
from __future__ import annotations

from collections import OrderedDict
from typing import List, Optional, Tuple

from ._baseline import score
from ._finding import RETRY_STORM, Cause, Finding
from ._record import MODEL, TENANT, TRACE, USER, CallRecord


class RepeatWatch:
    """``observe`` returns a retry storm finding at ``retry_repeats`` repeats (a warning) and at 3x
    that (critical), else None."""

    def __init__(self, retry_repeats: int, retry_window: float, max_fingerprints: int) -> None:
        self.retry_repeats, self.retry_window, self.max_fingerprints = retry_repeats, retry_window, max_fingerprints
        self.repeats: "OrderedDict[Tuple[int, str], List[float]]" = OrderedDict()  # -> [count, first time]

    def observe(self, r: CallRecord) -> Optional[Finding]:
        fp = r.fingerprint
        scope = r.trace_id
        if fp is None:
            tokens = r.input_tokens or r.estimated_input_tokens
            if tokens is None or not scope:
                return None
            fp = hash((r.model, tokens))  # weak: same model and input size within one trace
        elif not scope:
            scope = r.dims.get(USER) or r.dims.get(TENANT) or ""
        rid = (fp, scope)
        entry = self.repeats.get(rid)
        if entry is None or r.time - entry[1] > self.retry_window:
            entry = self.repeats[rid] = [0, r.time]
            self.repeats.move_to_end(rid)
            if len(self.repeats) > self.max_fingerprints:
                self.repeats.popitem(last=False)
        entry[0] += 1
        if entry[0] != self.retry_repeats and entry[0] != 3 * self.retry_repeats:
            return None
        critical = entry[0] >= 3 * self.retry_repeats
        dim, value = (TRACE, r.trace_id) if r.trace_id else ((USER, scope) if scope else (MODEL, r.model))
        return Finding(RETRY_STORM, score(entry[0] / self.retry_repeats), "critical" if critical else "warning",
                       Cause(dim, value, 1.0), "repeats", float(entry[0]), 1.0, f"{r.model}/{dim}={value}",
                       r.time, r.trace_id, r.model, dict(r.dims))
