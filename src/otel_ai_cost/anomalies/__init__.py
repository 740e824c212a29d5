"""Anomalies with a root cause, caught while they happen (issue 13).

    from otel_ai_cost.anomalies import AnomalyDetector, AnomalyMonitor, AnomalyReporter, CallRecord

    monitor = AnomalyMonitor(AnomalyDetector(), AnomalyReporter(meter_provider=mp, on_anomaly=print))
    monitor.observe(CallRecord.from_attributes(span_attributes, resource, trace_id=tid), span)

See README.md in this folder for the detection rules, the outputs and the backend queries.
"""
from ._detector import AnomalyDetector
from ._finding import (
    COST_SPIKE,
    ERROR_SPIKE,
    EVENT_NAME,
    NEW_MODEL,
    RETRY_STORM,
    RUNAWAY_TRACE,
    SEVERITIES,
    TOKEN_SPIKE,
    TYPES,
    VOLUME_SPIKE,
    Cause,
    Finding,
    finding_attributes,
    most_severe,
)
from ._outputs import AnomalyMonitor, AnomalyReporter
from ._record import DEFAULT_DIMENSIONS, CallRecord, request_fingerprint
from ._store import (
    BaselineSaver,
    BaselineStore,
    MemoryBaselineStore,
    RedisBaselineStore,
    SQLiteBaselineStore,
    load_baselines,
    save_baselines,
)

__all__ = [
    "AnomalyDetector", "AnomalyMonitor", "AnomalyReporter", "BaselineSaver", "BaselineStore", "COST_SPIKE",
    "CallRecord", "Cause", "DEFAULT_DIMENSIONS", "ERROR_SPIKE", "EVENT_NAME", "Finding", "MemoryBaselineStore",
    "NEW_MODEL", "RETRY_STORM", "RUNAWAY_TRACE", "RedisBaselineStore", "SEVERITIES", "SQLiteBaselineStore",
    "TOKEN_SPIKE", "TYPES", "VOLUME_SPIKE", "finding_attributes", "load_baselines", "most_severe",
    "request_fingerprint", "save_baselines",
]
