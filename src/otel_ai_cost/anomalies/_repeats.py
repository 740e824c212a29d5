"""Retry storms: the same request repeated within ``retry_window`` seconds in one trace (or, for a
request with a fingerprint but no trace, for one user or tenant). At most ``max_fingerprints``
(fingerprint, scope) pairs are kept: two generations of plain dicts, the older dropped when the
newer is a window old or half full (an entry older than the window is of no use: its count restarts)."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ._baseline import score
from ._finding import RETRY_STORM, Cause, Finding
from ._record import MODEL, TENANT, TRACE, USER, CallRecord


class RepeatWatch:
    """``observe`` returns a retry storm finding at ``retry_repeats`` repeats (a warning) and at 3x
    that (critical), else None."""

    def __init__(self, retry_repeats: int, retry_window: float, max_fingerprints: int) -> None:
        self.retry_repeats, self.retry_window, self.max_fingerprints = retry_repeats, retry_window, max_fingerprints
        # (fingerprint, scope) -> [count, first time]: this generation and the one before
        self.current: Dict[Tuple[int, str], List[float]] = {}
        self.previous: Dict[Tuple[int, str], List[float]] = {}
        self._since = -float("inf")  # the start of the current generation
        self._half = max(1, max_fingerprints // 2)

    @property
    def repeats(self) -> Dict[Tuple[int, str], List[float]]:
        """Every (fingerprint, scope) watched (a copy)."""
        return {**self.previous, **self.current}

    def __len__(self) -> int:
        return len(self.current) + len(self.previous)

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
        now = r.time
        current = self.current
        entry = current.get(rid)
        if entry is None:
            entry = self.previous.get(rid)
        if entry is None or now - entry[1] > self.retry_window:
            if now - self._since > self.retry_window or len(current) >= self._half:
                self.previous, current = current, {}
                self.current, self._since = current, now
            entry = current[rid] = [0, now]
        entry[0] += 1
        if entry[0] != self.retry_repeats and entry[0] != 3 * self.retry_repeats:
            return None
        critical = entry[0] >= 3 * self.retry_repeats
        dim, value = (TRACE, r.trace_id) if r.trace_id else ((USER, scope) if scope else (MODEL, r.model))
        return Finding(RETRY_STORM, score(entry[0] / self.retry_repeats), "critical" if critical else "warning",
                       Cause(dim, value, 1.0), "repeats", float(entry[0]), 1.0, f"{r.model}/{dim}={value}",
                       r.time, r.trace_id, r.model, dict(r.dims))
