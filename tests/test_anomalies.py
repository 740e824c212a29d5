"""The anomaly detector finds each type on seeded traffic, names the cause, stays quiet on normal
traffic, keeps memory bounded, and its outputs reach the span, the counter, the hook and the log."""
from __future__ import annotations

import logging
import math
import random
from typing import Dict, Iterator, List, Optional

import pytest

from otel_ai_cost import _semconv as sc
from otel_ai_cost.anomalies import (
    AnomalyDetector,
    AnomalyMonitor,
    AnomalyReporter,
    CallRecord,
    Finding,
    finding_attributes,
    request_fingerprint,
)
from otel_ai_cost.anomalies._traffic import Traffic

T0 = 1_764_547_200.0


def steady(rng: random.Random, start: float, seconds: float, *, tenants=("acme", "globex", "initech"),
           model="gpt-4o", rate=2.0, cost_factor: Optional[Dict[str, float]] = None,
           token_factor: Optional[Dict[str, float]] = None, error_rate: Optional[Dict[str, float]] = None,
           extra_rate: Optional[Dict[str, float]] = None,
           models: Optional[Dict[str, str]] = None) -> Iterator[CallRecord]:
    """Calls at ``rate``/s from users of a few tenants, one call per trace, lognormal tokens."""
    t = start
    while t < start + seconds:
        t += rng.expovariate(rate + sum((extra_rate or {}).values()))
        weights = [1.0 + (extra_rate or {}).get(x, 0.0) / rate * len(tenants) for x in tenants]
        tenant = rng.choices(tenants, weights)[0]
        user = f"{tenant}-u{rng.randrange(10)}"
        tokens_in = int(1000 * math.exp(rng.gauss(0, 0.3)) * (token_factor or {}).get(tenant, 1.0))
        tokens_out = int(200 * math.exp(rng.gauss(0, 0.4)))
        cost = (2.5 * tokens_in + 10 * tokens_out) / 1e6 * (cost_factor or {}).get(tenant, 1.0)
        error = rng.random() < (error_rate or {}).get(tenant, 0.005)
        yield CallRecord(
            time=t, model=(models or {}).get(tenant, model), trace_id=f"{rng.getrandbits(64):x}",
            dims={"tenant.id": tenant, "enduser.id": user, "service.name": "chat", "gen_ai.prompt.name": "answer"},
            cost=None if error else cost, input_tokens=None if error else tokens_in,
            output_tokens=None if error else tokens_out, error=error, fingerprint=rng.getrandbits(64),
        )


def run(detector: AnomalyDetector, records) -> List[Finding]:
    out: List[Finding] = []
    for r in records:
        out += detector.observe(r)
    return out


def warmed(seed: int = 1, hours: float = 2.0) -> AnomalyDetector:
    detector = AnomalyDetector()
    assert run(detector, steady(random.Random(seed), T0, hours * 3600)) == []
    return detector


START = T0 + 2 * 3600


def test_no_finding_on_steady_traffic():
    detector = AnomalyDetector()
    findings = run(detector, steady(random.Random(7), T0, 4 * 3600))  # ~29,000 calls
    assert findings == []


def test_realistic_traffic_stays_under_one_false_positive_per_10000_calls():
    traffic = Traffic(seed=11, days=1.5, per_type=0)
    detector = AnomalyDetector()
    calls = list(traffic.calls())
    findings = run(detector, (c.record for c in calls))
    assert len(calls) > 50_000
    assert len(findings) <= len(calls) / 10_000, [f.describe() for f in findings]


def test_cost_spike_names_the_tenant():
    detector = warmed()
    findings = run(detector, steady(random.Random(2), START, 600, cost_factor={"globex": 6.0}))
    spikes = [f for f in findings if f.type == "cost_spike"]
    assert spikes, findings
    assert (spikes[0].cause.dimension, spikes[0].cause.value) == ("tenant.id", "globex")
    assert spikes[0].cause.share > 0.5
    assert spikes[0].observed > 2 * spikes[0].baseline
    assert not [f for f in findings if f.type == "token_spike"]


def test_token_spike_is_not_reported_as_a_cost_spike():
    detector = warmed()
    findings = run(detector, steady(random.Random(3), START, 600, token_factor={"acme": 5.0}))
    assert {f.type for f in findings} == {"token_spike"}
    first = findings[0]
    assert first.metric == "input_tokens_per_call"
    assert (first.cause.dimension, first.cause.value) == ("tenant.id", "acme")


def test_volume_spike_names_the_tenant():
    detector = warmed()
    findings = run(detector, steady(random.Random(4), START, 300, extra_rate={"initech": 8.0}))
    volume = [f for f in findings if f.type == "volume_spike"]
    assert volume, findings
    assert (volume[0].cause.dimension, volume[0].cause.value) == ("tenant.id", "initech")
    assert volume[0].metric == "calls_per_minute"


def test_error_spike_on_one_tenant():
    detector = warmed()
    findings = run(detector, steady(random.Random(5), START, 600, error_rate={"acme": 0.9}))
    errors = [f for f in findings if f.type == "error_spike"]
    assert errors
    assert all(f.dims["tenant.id"] == "acme" for f in errors)
    assert (errors[0].cause.dimension, errors[0].cause.value) == ("tenant.id", "acme")
    assert len(errors) == 1  # one finding per incident: the other users' keys name the same cause


def test_error_spike_of_one_model_names_the_model():
    detector = AnomalyDetector()
    mixed = sorted([*steady(random.Random(1), T0, 7200), *steady(random.Random(2), T0, 7200, model="gpt-4o-mini")],
                   key=lambda r: r.time)
    assert run(detector, mixed) == []
    outage = sorted([*steady(random.Random(3), START, 600),
                     *steady(random.Random(4), START, 600, model="gpt-4o-mini",
                             error_rate={t: 0.7 for t in ("acme", "globex", "initech")})], key=lambda r: r.time)
    errors = [f for f in run(detector, outage) if f.type == "error_spike"]
    assert errors and all(f.model == "gpt-4o-mini" for f in errors)
    assert (errors[0].cause.dimension, errors[0].cause.value) == ("gen_ai.request.model", "gpt-4o-mini")


def test_a_second_spike_soon_after_the_first_is_found():
    # The baseline does not learn a spike in progress: 10 minutes of 5x input tokens, 15 minutes of
    # normal traffic, then the same spike again is found again (after the cooldown).
    detector = warmed()
    first = run(detector, steady(random.Random(3), START, 600, token_factor={"acme": 5.0}))
    gap = run(detector, steady(random.Random(9), START + 600, 900))
    assert all(f.time < START + 900 for f in gap)  # (the users' fast means may run high a little longer)
    second = run(detector, steady(random.Random(10), START + 1500, 600, token_factor={"acme": 5.0}))
    for findings in (first, second):
        spikes = [f for f in findings if f.type == "token_spike"]
        assert spikes and spikes[0].observed > 2 * spikes[0].baseline
    assert first[0].cause.value == "acme"
    # (the second is found on the first calls of the spike: before a call of another tenant, acme's
    # calls and every call, all of prompt "answer", are alike; the tie-break names the prompt)
    assert second[0].cause.value in ("acme", "answer")


def test_new_model_for_an_established_tenant():
    detector = AnomalyDetector()
    assert run(detector, steady(random.Random(1), T0, 7200, models={"acme": "gpt-4o-mini"})) == []
    # globex moves to the model acme has been using: new for globex, not for the service.
    findings = run(detector, steady(random.Random(6), START, 120,
                                  models={"globex": "gpt-4o-mini", "acme": "gpt-4o-mini"}))
    new = [f for f in findings if f.type == "new_model"]
    assert len(new) == 1  # once per key, not once per call
    assert new[0].model == "gpt-4o-mini"
    assert (new[0].cause.dimension, new[0].cause.value) == ("tenant.id", "globex")
    # A model no one used before is new for the service first.
    findings = run(detector, steady(random.Random(8), START + 200, 60,
                                  models={"globex": "gpt-4o-mini", "acme": "gpt-4o-mini",
                                          "initech": "gpt-4.5-preview"}))
    assert [(f.cause.dimension, f.cause.value) for f in findings if f.type == "new_model"] == [("service.name", "chat")]


def agent_run(trace: str, start: float, calls: int, fingerprint=None) -> Iterator[CallRecord]:
    for i in range(calls):
        yield CallRecord(time=start + 2 * i, model="gpt-4o", trace_id=trace, cost=0.01, input_tokens=2000 + 10 * i,
                         output_tokens=300, dims={"service.name": "agent", "tenant.id": "acme"},
                         fingerprint=fingerprint if fingerprint is not None else request_fingerprint(trace, i))


def test_runaway_trace_is_flagged_at_its_threshold_and_blocked():
    detector = AnomalyDetector(default_trace_calls=20)
    found = []
    for n, r in enumerate(agent_run("t1", T0, 40), start=1):
        assert (detector.should_block("t1") is not None) == bool(found)
        found += [(n, f) for f in detector.observe(r) if f.type == "runaway_trace"]
    n, finding = found[0]
    assert n == 21  # the first call over 20
    assert finding.cause.dimension == "trace" and finding.cause.value == "t1"
    assert detector.should_block("t1") is finding
    assert detector.should_block("other") is None


def test_runaway_threshold_is_learned_from_finished_traces():
    detector = AnomalyDetector(trace_warm=100, default_trace_calls=1000)
    t = T0
    rng = random.Random(1)
    for i in range(400):  # normal runs of 1..6 calls, one every 10 s; each idles out later
        run(detector, agent_run(f"n{i}", t, rng.randint(1, 6)))
        t += 10
    findings = [f for f in run(detector, agent_run("loop", t + 400, 60)) if f.type == "runaway_trace"]
    assert findings
    assert findings[0].baseline < 60 and findings[0].observed <= findings[0].baseline + 5


def test_retry_storm_on_repeated_identical_requests():
    detector = AnomalyDetector()
    findings = run(detector, agent_run("r1", T0, 6, fingerprint=request_fingerprint("gpt-4o", "same")))
    storms = [f for f in findings if f.type == "retry_storm"]
    assert len(storms) == 1 and storms[0].observed == 4
    assert storms[0].cause.value == "r1"
    assert run(AnomalyDetector(), agent_run("r2", T0, 6)) == []  # different requests: no storm


@pytest.mark.parametrize("kind", ["cost_spike", "token_spike", "volume_spike", "runaway_trace", "retry_storm",
                                  "new_model", "error_spike"])
def test_each_type_is_found_on_the_generator_scenarios(kind):
    traffic = Traffic(seed=5, days=1.6, per_type=3, types=[kind])
    detector = AnomalyDetector()
    first = {}
    for call in traffic.calls():
        for f in detector.observe(call.record):
            if f.type != kind:
                continue
            # a finding on a call of the incident, or on another call while it runs, naming its value
            for inc in traffic.incidents:
                if call.incident is inc or (inc.start <= f.time <= inc.end and f.cause.value == inc.value):
                    first.setdefault(inc.id, f)
    assert set(first) == {i.id for i in traffic.incidents}
    # The first finding names the injected cause (the tenant, the prompt, the model, the trace).
    for inc in traffic.incidents:
        cause = first[inc.id].cause
        if kind == "new_model":
            assert first[inc.id].model == inc.extra["model"] and cause.value == inc.value
        else:
            assert cause.value.lstrip("0") == inc.value.lstrip("0"), (inc, first[inc.id].describe())


def test_memory_is_bounded():
    detector = AnomalyDetector(max_keys=200, max_traces=100, max_fingerprints=300)
    for i in range(20_000):
        detector.observe(CallRecord(time=T0 + i, model=f"m{i % 7}", trace_id=f"t{i}", cost=0.01, input_tokens=10,
                                    output_tokens=10, fingerprint=i, dims={"enduser.id": f"u{i}", "tenant.id": "a"}))
        assert detector.key_count <= 200
        assert detector.trace_count <= 100
        assert detector.fingerprint_count <= 300
    assert len(detector._ring.calls) <= 1024  # the calls kept for causes
    # The busiest keys survive the evictions.
    assert ("m0", "tenant.id", "a") in detector._keys


def test_an_eviction_keeps_the_keys_of_the_call_that_made_it():
    detector = AnomalyDetector(max_keys=100)
    for i in range(3000):  # busy keys: a few values with many calls each
        detector.observe(CallRecord(time=T0 + i, model=f"m{i % 10}", cost=0.01, input_tokens=10, output_tokens=10,
                                    dims={"tenant.id": f"t{i % 10}", "enduser.id": f"u{i % 10}"}))
    for j in range(150):  # then a new user per call: the table overflows, the busy keys outrank the new ones
        detector.observe(CallRecord(time=T0 + 3000 + j, model="m0", cost=0.01, input_tokens=10, output_tokens=10,
                                    dims={"tenant.id": "t0", "enduser.id": f"new{j}"}))
        assert ("m0", "enduser.id", f"new{j}") in detector._keys
        assert detector.key_count <= 100


def test_downgrade_suggestion_follows_a_spike():
    detector = warmed()
    run(detector, steady(random.Random(2), START, 600, cost_factor={"globex": 6.0}))
    dims = {"tenant.id": "globex"}
    assert detector.downgrade_suggestion("gpt-4o", dims, now=START + 600).type == "cost_spike"
    assert detector.downgrade_suggestion("gpt-4o", {"tenant.id": "acme"}, now=START + 600) is None


def test_record_from_span_attributes():
    attrs = {"gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 10,
             "gen_ai.usage.output_tokens": 5, sc.GEN_AI_USAGE_COST_AMOUNT: 0.002, "tenant.id": "acme",
             "service.name": "spoofed", "error.type": "429"}
    record = CallRecord.from_attributes(attrs, {"service.name": "chat"}, trace_id="ab", time=1.0)
    assert record.dims == {"tenant.id": "acme", "service.name": "chat"}
    assert (record.cost, record.input_tokens, record.error, record.provider) == (0.002, 10, True, "openai")
    assert CallRecord.from_attributes({}) is None
    assert request_fingerprint("m", [{"a": 1}]) == request_fingerprint("m", [{"a": 1}])
    assert request_fingerprint("m", [{"a": 1}]) != request_fingerprint("m", [{"a": 2}])


def test_outputs_reach_span_counter_hook_and_log(caplog):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hooked: List[Finding] = []

    def hook(finding):
        hooked.append(finding)
        raise RuntimeError("a broken hook must not break the call")

    monitor = AnomalyMonitor(AnomalyDetector(default_trace_calls=3),
                             AnomalyReporter(meter_provider=MeterProvider(metric_readers=[reader]), on_anomaly=hook))
    tracer = provider.get_tracer("t")
    caplog.set_level(logging.INFO, logger="otel_ai_cost.anomalies")
    for r in agent_run("t9", T0, 4):
        span = tracer.start_span("chat gpt-4o")
        findings = monitor.observe(r, span)
        span.end()
    assert [f.type for f in findings] == ["runaway_trace"] and hooked == findings
    last = exporter.get_finished_spans()[-1]
    assert last.attributes[sc.AI_COST_ANOMALY_TYPE] == "runaway_trace"
    assert last.attributes[sc.AI_COST_ANOMALY_CAUSE] == "trace=t9"
    assert [e.name for e in last.events] == [sc.AI_COST_ANOMALY]
    assert dict(last.events[0].attributes) == finding_attributes(findings[0])
    points = [p for m in reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics
              if m.name == sc.AI_COST_ANOMALIES for p in m.data.data_points]
    assert [(dict(p.attributes), p.value) for p in points] == [
        ({sc.AI_COST_ANOMALY_TYPE: "runaway_trace", sc.AI_COST_ANOMALY_SEVERITY: "warning"}, 1)]
    messages = [r for r in caplog.records if "anomaly: runaway_trace" in r.getMessage()]
    assert messages and messages[0].ai_cost_anomaly["cause"]["value"] == "t9"
