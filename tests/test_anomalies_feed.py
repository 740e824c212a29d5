"""The anomaly detector's span feed (anomalies/_span_feed.py): the calls' spans queue, a daemon
thread runs the detector off the calls' path, shutdown runs what is still queued, a queue past its
bound is run on the caller, and the feed finds what the detector finds when fed directly."""
from __future__ import annotations

import threading
import time
from typing import Any, List

from otel_ai_cost import _semconv as sc
from otel_ai_cost.anomalies import AnomalyDetector, AnomalyMonitor, AnomalyReporter, Finding, _span_feed
from test_anomalies_wiring import Pipeline, anomaly_attributes

RUN_CALLS = 3  # the runaway threshold of these tests: the 4th call of a run is flagged


def monitored(close_later: Any) -> "tuple[Pipeline, List[Finding]]":
    found: List[Finding] = []
    monitor = AnomalyMonitor(AnomalyDetector(max_trace_calls=RUN_CALLS), AnomalyReporter(on_anomaly=found.append))
    return close_later(Pipeline(anomalies=monitor)), found


def drainers() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "otel-ai-cost-anomalies" and t.is_alive()]


def exported_findings(p: Pipeline) -> List[Any]:
    """The ``ai_cost.anomaly`` spans exported so far, without flushing the detector."""
    return [s for s in p.exporter.get_finished_spans() if s.name == sc.AI_COST_ANOMALY]


def test_the_drain_thread_reports_the_findings_without_any_flush(close_later):
    p, found = monitored(close_later)
    p.agent_loop(RUN_CALLS + 2)
    feed = p.processor.anomalies
    assert feed is not None
    deadline = time.monotonic() + 10
    while feed.drained < RUN_CALLS + 2 and time.monotonic() < deadline:  # (counted once a batch is reported)
        time.sleep(0.01)
    assert [f.type for f in found] == ["runaway_trace"]
    assert drainers(), "the detector runs on its own daemon thread"
    assert all(t.daemon for t in drainers())
    assert feed.drained == RUN_CALLS + 2 and feed.drain_cpu_ns > 0
    finding_spans = exported_findings(p)
    assert len(finding_spans) == 1
    calls = [s for s in p.exporter.get_finished_spans() if s.name.startswith("chat ")]
    flagged = calls[RUN_CALLS]  # the call past the threshold: the finding span is its child, ended with it
    assert finding_spans[0].parent.span_id == flagged.context.span_id
    assert finding_spans[0].context.trace_id == flagged.context.trace_id
    assert finding_spans[0].end_time == flagged.end_time
    assert anomaly_attributes(finding_spans[0])[sc.AI_COST_ANOMALY_TYPE] == "runaway_trace"


def test_shutdown_runs_the_queued_calls_and_stops_the_thread(close_later, monkeypatch):
    monkeypatch.setattr(_span_feed, "DRAIN_DELAY", 60.0)  # the thread would wait a minute before draining
    p, found = monitored(close_later)
    p.agent_loop(RUN_CALLS + 1)
    assert found == [] and exported_findings(p) == []  # still queued
    thread = drainers()
    p.processor.shutdown()
    assert [f.type for f in found] == ["runaway_trace"]
    assert len(exported_findings(p)) == 1
    assert not any(t.is_alive() for t in thread)
    # After shutdown, an ending call is run on the caller: nothing is left queued.
    p.agent_loop(RUN_CALLS + 1)
    feed = p.processor.anomalies
    assert feed is not None and len(feed._spans) == 0 and len(found) == 2


def test_past_its_bound_the_queue_is_run_on_the_calling_thread(close_later, monkeypatch):
    monkeypatch.setattr(_span_feed, "DRAIN_DELAY", 60.0)
    monkeypatch.setattr(_span_feed, "MAX_QUEUED", 2)
    p, found = monitored(close_later)
    p.agent_loop(RUN_CALLS + 3)  # the 3rd queued call runs calls 1-3, the 6th calls 4-6
    feed = p.processor.anomalies
    assert feed is not None and len(feed._spans) == 0
    assert [f.type for f in found] == ["runaway_trace"]  # found with the drain thread still asleep


def test_the_feed_finds_what_the_detector_finds_fed_directly(close_later):
    p, found = monitored(close_later)
    for run in range(3):
        p.agent_loop(RUN_CALLS + run)
    p.processor.force_flush()
    direct = AnomalyDetector(max_trace_calls=RUN_CALLS)
    feed = p.processor.anomalies
    assert feed is not None
    expected: List[Finding] = []
    for span in [s for s in p.exporter.get_finished_spans() if s.name.startswith("chat ")]:
        record = feed.record(span)
        assert record is not None
        expected += direct.observe(record)
    assert [(f.type, f.key, f.observed) for f in found] == [(f.type, f.key, f.observed) for f in expected]
    assert [f.type for f in found] == ["runaway_trace", "runaway_trace"]
