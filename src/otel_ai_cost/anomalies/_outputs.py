"""Where findings go: the span (attributes + event), a counter, the ``on_anomaly`` hook, a log record."""
from __future__ import annotations

import logging
from typing import Any, Callable, List, Optional, Set

from .. import _semconv as sc
from ._detector import AnomalyDetector
from ._finding import EVENT_NAME, Finding, finding_attributes, most_severe
from ._record import CallRecord

logger = logging.getLogger("otel_ai_cost.anomalies")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}
_logged: Set[str] = set()


def _log_once(site: str) -> None:
    if site in _logged:
        logger.debug("otel-ai-cost: %s failed.", site, exc_info=True)
        return
    _logged.add(site)
    logger.warning("otel-ai-cost: %s failed; the call goes on. Later failures are logged at debug level.", site,
                   exc_info=True)


class AnomalyReporter:
    """Sends findings to the span, the ``ai_cost.anomalies`` counter, ``on_anomaly`` and the log.
    Never raises."""

    def __init__(self, *, meter: Any = None, meter_provider: Any = None,
                 on_anomaly: Optional[Callable[[Finding], Any]] = None, log: bool = True) -> None:
        if meter is None and meter_provider is not None:
            meter = meter_provider.get_meter("otel_ai_cost.anomalies")
        self.counter = None
        if meter is not None:
            self.counter = meter.create_counter(sc.AI_COST_ANOMALIES, unit=sc.AI_COST_ANOMALIES_UNIT,
                                                description="Anomaly findings, by type and severity.")
        self.on_anomaly = on_anomaly
        self.log = log

    def report(self, findings: List[Finding], span: Any = None) -> None:
        if not findings:
            return
        if span is not None:
            try:
                if span.is_recording():
                    top = most_severe(findings)
                    if top is not None:
                        span.set_attributes(finding_attributes(top))
                    for f in findings:
                        span.add_event(EVENT_NAME, finding_attributes(f))
            except Exception:  # noqa: BLE001
                _log_once("anomaly span attributes")
        for f in findings:
            if self.counter is not None:
                try:
                    self.counter.add(1, {sc.AI_COST_ANOMALY_TYPE: f.type, sc.AI_COST_ANOMALY_SEVERITY: f.severity})
                except Exception:  # noqa: BLE001
                    _log_once("anomaly counter")
            if self.on_anomaly is not None:
                try:
                    self.on_anomaly(f)
                except Exception:  # noqa: BLE001
                    _log_once("on_anomaly hook")
            if self.log:
                logger.log(_LEVELS[f.severity], "otel-ai-cost anomaly: %s", f.describe(),
                           extra={"ai_cost_anomaly": f.as_dict()})


class AnomalyMonitor:
    """A detector and a reporter: ``observe(record, span)`` from where a GenAI call finishes."""

    def __init__(self, detector: Optional[AnomalyDetector] = None, reporter: Optional[AnomalyReporter] = None) -> None:
        self.detector = detector or AnomalyDetector()
        self.reporter = reporter or AnomalyReporter()

    def observe(self, record: Optional[CallRecord], span: Any = None) -> List[Finding]:
        if record is None:
            return []
        try:
            findings = self.detector.observe(record)
        except Exception:  # noqa: BLE001 - the detector must never break the call
            _log_once("anomaly detector")
            return []
        self.reporter.report(findings, span)
        return findings
