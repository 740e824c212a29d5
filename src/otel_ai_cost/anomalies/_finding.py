"""A finding: what the detector says about one call, and its span attributes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from .. import _semconv as sc

COST_SPIKE = "cost_spike"
TOKEN_SPIKE = "token_spike"
VOLUME_SPIKE = "volume_spike"
RUNAWAY_TRACE = "runaway_trace"
RETRY_STORM = "retry_storm"
NEW_MODEL = "new_model"
ERROR_SPIKE = "error_spike"
TYPES = (COST_SPIKE, TOKEN_SPIKE, VOLUME_SPIKE, RUNAWAY_TRACE, RETRY_STORM, NEW_MODEL, ERROR_SPIKE)
SEVERITIES = ("info", "warning", "critical")

EVENT_NAME = sc.AI_COST_ANOMALY


@dataclass(frozen=True)
class Cause:
    """The dimension and value contributing most, and its share (0..1) of the excess."""

    dimension: str  # tenant.id, enduser.id, service.name, gen_ai.prompt.name, gen_ai.request.model, trace
    value: str
    share: float

    def __str__(self) -> str:
        return f"{self.dimension}={self.value}"


@dataclass(frozen=True)
class Finding:
    type: str
    score: float  # 0..1; 1 - exp(-strength), strength = observed excess / threshold (0.63 at the threshold)
    severity: str  # info | warning | critical
    cause: Cause
    # cost_per_call, input_tokens_per_call, output_tokens_per_call, calls_per_minute, error_rate,
    # trace_calls, trace_cost, repeats, model
    metric: str
    observed: float
    baseline: float
    key: str  # the baseline: "<model>/<dimension>=<value>", "*" for every model
    time: float
    trace_id: Optional[str] = None
    model: Optional[str] = None
    dims: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        ratio = f" ({self.observed / self.baseline:.1f}x)" if self.baseline else ""
        return (
            f"{self.type} ({self.severity}, score {self.score:.2f}) on {self.key}: {self.metric} "
            f"{self.observed:.6g} vs baseline {self.baseline:.6g}{ratio}; cause {self.cause} "
            f"({self.cause.share:.0%} of the excess)"
        )

    def as_dict(self) -> Dict[str, Any]:
        return {
            "type": self.type, "score": self.score, "severity": self.severity,
            "cause": {"dimension": self.cause.dimension, "value": self.cause.value, "share": self.cause.share},
            "metric": self.metric, "observed": self.observed, "baseline": self.baseline, "key": self.key,
            "time": self.time, "trace_id": self.trace_id, "model": self.model, "dims": dict(self.dims),
        }


def finding_attributes(finding: Finding) -> Dict[str, Any]:
    """The span attributes (and span event attributes) of a finding, names from semconv/anomaly.yaml."""
    return {
        sc.AI_COST_ANOMALY_TYPE: finding.type,
        sc.AI_COST_ANOMALY_SEVERITY: finding.severity,
        sc.AI_COST_ANOMALY_SCORE: round(finding.score, 4),
        sc.AI_COST_ANOMALY_CAUSE: str(finding.cause),
        sc.AI_COST_ANOMALY_CAUSE_SHARE: round(finding.cause.share, 4),
        sc.AI_COST_ANOMALY_METRIC: finding.metric,
        sc.AI_COST_ANOMALY_OBSERVED: float(finding.observed),
        sc.AI_COST_ANOMALY_BASELINE: float(finding.baseline),
        sc.AI_COST_ANOMALY_KEY: finding.key,
    }


_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def most_severe(findings: "list[Finding]") -> Optional[Finding]:
    return max(findings, key=lambda f: (_RANK[f.severity], f.score), default=None)
