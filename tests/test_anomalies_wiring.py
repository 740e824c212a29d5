"""The anomaly detector wired into AICostSpanProcessor: fed from every finished GenAI span (ours,
with the real openai SDK on the faked API, and other instrumentations') off the calls' path, its
findings on an ``ai_cost.anomaly`` span, child of the span of the call that triggered them, the
on_anomaly policy refusing a runaway trace's next call before it is sent and downgrading on a
spike, the switches (code, OTEL_AI_COST_ANOMALIES, the configuration file), baselines kept in the
budget store, and a failing detector that never breaks the call."""
from __future__ import annotations

import logging
import os
import random
import sqlite3
from contextlib import closing, contextmanager
from typing import Any, Dict, Iterator, List

import httpx2
import pytest
from opentelemetry import baggage, context
from opentelemetry.trace import SpanKind

import conftest
from _fake_openai import FakeOpenAI
from otel_ai_cost import AICostSpanProcessor, BudgetExceededError, ConfigError
from otel_ai_cost import _semconv as sc
from otel_ai_cost.anomalies import AnomalyDetector, AnomalyMonitor, AnomalyReporter, Finding, _outputs, _span_feed
from otel_ai_cost.config import Settings
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

# The detector's runaway threshold before it has seen 200 finished traces of an agent
# (AnomalyDetector(default_trace_calls=50)): a trace is runaway from its 51st call.
COLD_TRACE_CALLS = 50


def _words(body: Dict[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body["messages"])


def chat_usage_by_size(body: Dict[str, Any]) -> httpx2.Response:
    """A chat completion (documented format) whose prompt_tokens is the request's word count, so
    that a growing agent conversation reports growing usage."""
    words = _words(body)
    return httpx2.Response(200, json={
        "id": "chatcmpl-anomaly", "object": "chat.completion", "created": 1_764_547_200, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "next step"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": words, "completion_tokens": 10, "total_tokens": words + 10},
    })


class Pipeline(conftest.Pipeline):
    """The shared harness with the OpenAI instrumentor and the real SDK against the fake API."""

    def __init__(self, **processor_kwargs: Any) -> None:
        super().__init__(OpenAIInstrumentor(), **processor_kwargs)
        self.fake = FakeOpenAI(chat=chat_usage_by_size)
        self.client = self.fake.client()
        self.tracer = self.provider.get_tracer("agent-app")

    def chat(self, messages: List[Dict[str, str]], model: str = "gpt-4o") -> Any:
        return self.client.chat.completions.create(model=model, messages=messages, max_tokens=50)

    def agent_loop(self, steps: int) -> List[BudgetExceededError]:
        """One agent run (one trace) of up to ``steps`` calls, each with the conversation so far."""
        refused: List[BudgetExceededError] = []
        messages = [{"role": "user", "content": "plan the migration"}]
        with self.tracer.start_as_current_span("invoke_agent planner"):
            for step in range(steps):
                try:
                    self.chat(messages)
                except BudgetExceededError as exc:
                    refused.append(exc)
                    break
                messages.append({"role": "assistant", "content": " ".join(["step"] * (step + 1))})
        return refused

    def spans(self) -> Any:
        self.processor.force_flush()  # (the detector's queued calls: their finding spans are exported)
        return super().spans()

    def call_spans(self) -> List[Any]:
        return [s for s in self.spans() if s.name.startswith("chat ")]

    def finding_spans(self) -> Dict[int, Any]:
        """The ``ai_cost.anomaly`` spans, by the span id of their parent (the call's span)."""
        return {s.parent.span_id: s for s in self.spans() if s.name == sc.AI_COST_ANOMALY}

    def flags(self, spans: List[Any]) -> List[Any]:
        """Per span, its ``ai_cost.anomaly`` child span, or None."""
        findings = self.finding_spans()
        return [findings.get(s.context.span_id) for s in spans]


@pytest.fixture
def pipeline(close_later):
    return lambda **kwargs: close_later(Pipeline(**kwargs))


@contextmanager
def made(processor: AICostSpanProcessor) -> Iterator[AICostSpanProcessor]:
    try:
        yield processor
    finally:
        processor.shutdown()


def anomaly_attributes(span: Any) -> Dict[str, Any]:
    return {k: v for k, v in ((span.attributes if span is not None else None) or {}).items()
            if k.startswith("ai_cost.anomaly.")}


def test_a_runaway_agent_loop_is_flagged_on_its_span_and_its_next_call_refused_before_it_is_sent(pipeline, caplog):
    found: List[Finding] = []
    p = pipeline(anomalies=AnomalyMonitor(AnomalyDetector(), AnomalyReporter(on_anomaly=found.append)),
                 anomaly_policy={"runaway_trace": "block"})
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.anomalies"):
        refused = p.agent_loop(COLD_TRACE_CALLS + 20)

    calls = p.call_spans()
    flags = p.flags(calls)
    flagged = [i for i, f in enumerate(flags) if anomaly_attributes(f).get(sc.AI_COST_ANOMALY_TYPE) == "runaway_trace"]
    assert flagged, "no ai_cost.anomaly span carries the runaway finding"
    assert len(p.finding_spans()) == 1
    first = flagged[0]
    # Flagged on the call that crossed the threshold (its 51st), well within 5 calls of it.
    assert COLD_TRACE_CALLS <= first <= COLD_TRACE_CALLS + 4
    span, finding_span = calls[first], flags[first]
    trace_id = format(span.context.trace_id, "032x")
    # The finding's span: a child of the call's span in its trace, at the call's end, with no duration.
    assert finding_span.context.trace_id == span.context.trace_id
    assert finding_span.start_time == finding_span.end_time == span.end_time
    assert finding_span.instrumentation_scope.name == "otel_ai_cost.anomalies"
    attrs = anomaly_attributes(finding_span)
    assert attrs[sc.AI_COST_ANOMALY_TYPE] == "runaway_trace"
    assert attrs[sc.AI_COST_ANOMALY_CAUSE] == f"trace={trace_id}"
    assert attrs[sc.AI_COST_ANOMALY_METRIC] == "trace_calls"
    assert attrs[sc.AI_COST_ANOMALY_OBSERVED] == first + 1
    assert attrs[sc.AI_COST_ANOMALY_SEVERITY] in ("warning", "critical")
    assert [e.name for e in finding_span.events] == [sc.AI_COST_ANOMALY]
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0  # the call itself went ahead and was priced
    assert anomaly_attributes(span) == {}  # the call's span ended before the detector ran
    assert [f.type for f in found] == ["runaway_trace"] and found[0].trace_id == trace_id
    assert any("runaway_trace" in r.getMessage() for r in caplog.records)

    # The next call was refused before it was sent: the fake API got no request for it ...
    assert len(refused) == 1
    assert len(p.fake.requests) == first + 1
    error = refused[0]
    assert "anomaly runaway_trace" in str(error) and f"cause trace={trace_id}" in str(error)
    assert error.decision.finding is found[0]
    # ... and its span is exported, marked blocked with the anomaly as the reason.
    blocked = calls[first + 1]
    assert len(calls) == first + 2
    assert blocked.attributes[sc.AI_COST_BUDGET_DECISION] == "block"
    assert blocked.attributes[sc.AI_COST_BUDGET_REASON] == "anomaly"
    assert blocked.attributes[sc.ERROR_TYPE] == "BudgetExceededError"
    assert format(blocked.context.trace_id, "032x") == trace_id
    assert flags[first + 1] is None  # a refused call is not fed to the detector

    # Another trace (the next agent run) is not refused.
    assert p.agent_loop(3) == []


def test_without_the_policy_the_runaway_is_reported_and_the_loop_goes_on(pipeline, metric_reader):
    p = pipeline(anomalies=True)
    assert p.agent_loop(COLD_TRACE_CALLS + 5) == []
    assert len(p.fake.requests) == COLD_TRACE_CALLS + 5
    types = [anomaly_attributes(f).get(sc.AI_COST_ANOMALY_TYPE) for f in p.flags(p.call_spans())]
    assert types.index("runaway_trace") == COLD_TRACE_CALLS
    points = [
        (pt.attributes[sc.AI_COST_ANOMALY_TYPE], pt.value)
        for rm in p.metrics.get_metrics_data().resource_metrics for sm in rm.scope_metrics
        for m in sm.metrics if m.name == sc.AI_COST_ANOMALIES for pt in m.data.data_points
    ]
    assert points == [("runaway_trace", 1)]


def test_a_retry_storm_is_found_and_with_the_policy_the_trace_is_refused(pipeline):
    p = pipeline(anomalies=True, anomaly_policy={"retry_storm": "block"})
    same = [{"role": "user", "content": "what is the refund policy"}]
    refused = []
    with p.tracer.start_as_current_span("retrying handler"):
        for _ in range(10):
            try:
                p.chat(same)
            except BudgetExceededError as exc:
                refused.append(exc)
                break
    calls = p.call_spans()
    # The same request a 4th time within a minute in one trace (AnomalyDetector(retry_repeats=4)).
    assert anomaly_attributes(p.flags(calls)[3])[sc.AI_COST_ANOMALY_TYPE] == "retry_storm"
    assert len(p.fake.requests) == 4 and len(refused) == 1
    assert "anomaly retry_storm" in str(refused[0])


def test_a_token_spike_downgrades_the_calls_of_the_spiking_key_to_the_cheaper_model(pipeline):
    found: List[Finding] = []
    p = pipeline(anomalies=AnomalyMonitor(reporter=AnomalyReporter(on_anomaly=found.append)),
                 anomaly_policy={"token_spike": {"action": "downgrade", "model": "gpt-4o-mini"}})
    rng = random.Random(7)
    token = context.attach(baggage.set_baggage("tenant.id", "acme"))
    try:
        for _ in range(60):  # one call per trace, ~1000 prompt tokens: the key's baseline
            p.chat([{"role": "user", "content": " ".join(["word"] * rng.randint(950, 1050))}])
        assert found == []
        spike = [{"role": "user", "content": " ".join(["word"] * 10_000)}]  # a prompt change: 10x the input
        for _ in range(5):
            p.chat(spike)
            p.processor.force_flush()  # (what the drain thread does within DRAIN_DELAY)
            if found:
                break
        assert [f.type for f in found] == ["token_spike"]
        assert p.fake.requests[-1]["model"] == "gpt-4o"  # the spiking call itself went ahead as asked
        p.chat(spike)
    finally:
        context.detach(token)
    assert p.fake.requests[-1]["model"] == "gpt-4o-mini"
    span = p.call_spans()[-1]
    assert span.attributes[sc.AI_COST_BUDGET_DECISION] == "downgrade"
    assert span.attributes[sc.AI_COST_BUDGET_REASON] == "anomaly"
    assert span.attributes[sc.AI_COST_BUDGET_REQUESTED_MODEL] == "gpt-4o"


def test_a_span_of_another_instrumentation_is_priced_and_gets_the_findings(pipeline):
    found: List[Finding] = []
    # A trace is runaway once its calls cost more than $0.01 (from its 3rd call on).
    monitor = AnomalyMonitor(AnomalyDetector(max_trace_cost=0.01), AnomalyReporter(on_anomaly=found.append))
    p = pipeline(anomalies=monitor)
    other = p.provider.get_tracer("opentelemetry.instrumentation.other_genai")
    attributes = {
        sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 1000, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100, "tenant.id": "acme",
    }
    with p.tracer.start_as_current_span("agent run"):
        for _ in range(3):
            with other.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=attributes):
                pass
        # Not one model call: an agent span with the same numbers, and a span whose call is priced on another.
        with other.start_as_current_span("invoke_agent", kind=SpanKind.CLIENT,
                                         attributes={**attributes, sc.GEN_AI_OPERATION_NAME: "invoke_agent"}):
            pass
        with other.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT,
                                         attributes={**attributes, sc.AI_COST_PRICING_PRICED_ON: "00f067aa0ba902b7"}):
            pass
    spans = [s for s in p.spans() if s.instrumentation_scope.name == "opentelemetry.instrumentation.other_genai"]
    flags = p.flags(spans)
    assert [anomaly_attributes(f).get(sc.AI_COST_ANOMALY_TYPE) for f in flags] == [
        None, None, "runaway_trace", None, None]
    third = anomaly_attributes(flags[2])
    assert third[sc.AI_COST_ANOMALY_METRIC] == "trace_cost"
    # Priced as the exporter path prices it: gpt-4o at $2.50 input / $10 output per million tokens
    # (pricing/openai.yaml, source litellm): 3 x (1000 x 2.5 + 100 x 10) / 1e6 = $0.0105.
    assert third[sc.AI_COST_ANOMALY_OBSERVED] == pytest.approx(0.0105)
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in spans[2].attributes  # the cost is still the exporter's to add
    assert [f.type for f in found] == ["runaway_trace"]
    assert found[0].dims["tenant.id"] == "acme"


def test_errors_in_the_detector_never_break_the_call(pipeline, monkeypatch, caplog):
    p = pipeline(anomalies=True)
    monkeypatch.setattr(_outputs, "_logged", set())

    def broken(*args):
        raise RuntimeError("detector bug")

    monkeypatch.setattr(p.processor.anomalies.detector, "observe_trace", broken)
    monkeypatch.setattr(p.processor.anomalies.detector, "observe_keys", broken)
    with caplog.at_level(logging.WARNING):
        p.chat([{"role": "user", "content": "hello"}])
        p.chat([{"role": "user", "content": "hello again"}])
    spans = p.call_spans()
    assert len(spans) == 2 and all(s.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0 for s in spans)
    warnings = [r for r in caplog.records if "anomaly detector failed" in r.getMessage()]
    assert len(warnings) == 1  # logged once

    def broken_record(self, span):
        raise ValueError("bad span")

    monkeypatch.setattr(_span_feed.SpanFeed, "record", broken_record)
    with caplog.at_level(logging.WARNING):
        p.chat([{"role": "user", "content": "and again"}])
    assert len(p.call_spans()) == 3
    assert any("building the anomaly record" in r.getMessage() for r in caplog.records)


def test_the_switches_in_code_and_in_the_environment(monkeypatch):
    assert Settings.from_env({}).anomalies is None
    assert Settings.from_env({"OTEL_AI_COST_ANOMALIES": "on"}).anomalies is True
    assert Settings.from_env({"OTEL_AI_COST_ANOMALIES": " OFF "}).anomalies is False
    with pytest.raises(ConfigError, match="OTEL_AI_COST_ANOMALIES: expected on or off, got 'sometimes'"):
        Settings.from_env({"OTEL_AI_COST_ANOMALIES": "sometimes"})
    # Off by default; on from the environment's setting or in code.
    with made(AICostSpanProcessor(settings=Settings())) as processor:
        assert processor.anomalies is None
    with made(AICostSpanProcessor(settings=Settings(anomalies=True))) as processor:
        assert processor.anomalies is not None and processor.enforcer is None
    with made(AICostSpanProcessor(settings=Settings(anomalies=True), anomalies=False)) as processor:
        assert processor.anomalies is None
    with pytest.raises(ConfigError, match="anomalies: expected True, False or an AnomalyMonitor"):
        AICostSpanProcessor(settings=Settings(), anomalies="yes")
    with pytest.raises(ConfigError, match="OTEL_AI_COST_ANOMALIES=off turns the anomaly detector off"):
        AICostSpanProcessor(settings=Settings(anomalies=False), anomaly_policy={"runaway_trace": "block"})
    with pytest.raises(ConfigError, match=r"anomaly_policy\.cost_spike\.model: a downgrade needs the model"):
        AICostSpanProcessor(settings=Settings(), anomaly_policy={"cost_spike": "downgrade"})


def _config(tmp_path, text: str) -> str:
    path = tmp_path / "otel-ai-cost.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("policy, key, reason", [
    ("{runaway_trace: stop}", "on_anomaly.runaway_trace.action", "'stop' is not one of block, downgrade"),
    ("{volume_spike: block}", "on_anomaly.volume_spike", "no policy acts on this type"),
    ("{cost_spike: {action: downgrade}}", "on_anomaly.cost_spike.model", "a downgrade needs the model"),
    ("{runaway_trace: {action: block, model: gpt-4o-mini}}", "on_anomaly.runaway_trace.model",
     "only a downgrade takes a model"),
    ("{token_spike: {action: block, after: 3}}", "on_anomaly.token_spike.after", "unknown key"),
    ("[runaway_trace]", "on_anomaly", "expected a mapping of anomaly type to action"),
])
def test_a_bad_policy_fails_at_load_naming_the_file_the_key_and_the_reason(tmp_path, policy, key, reason):
    path = _config(tmp_path, f"on_anomaly: {policy}\n")
    with pytest.raises(ConfigError) as error:
        AICostSpanProcessor(settings=Settings(), config_file=path)
    assert str(error.value).startswith(f"{path}: {key}: ")
    assert reason in str(error.value)


def test_the_file_policy_switches_the_detector_on_and_its_baselines_live_in_the_budget_store(pipeline, tmp_path):
    db = tmp_path / "budgets.db"
    path = _config(tmp_path, f"""
budgets:
  - {{id: everything, limit_usd: 100, window: lifetime}}
store: {{url: "sqlite:///{db}"}}
on_anomaly: {{runaway_trace: block}}
""")
    p = pipeline(config_file=path)
    refused = p.agent_loop(COLD_TRACE_CALLS + 5)
    assert len(refused) == 1 and len(p.fake.requests) == COLD_TRACE_CALLS + 1
    assert refused[0].decision.finding.type == "runaway_trace"
    keys = p.processor.anomalies.detector.key_count
    assert keys > 0
    p.processor.shutdown()  # saves the baselines into the budget store's file
    with closing(sqlite3.connect(db)) as con:
        rows = con.execute("SELECT COUNT(*) FROM anomaly_baselines WHERE namespace = 'default'").fetchone()[0]
    assert rows >= keys
    # A restart is not blind: the next process starts from the saved baselines.
    with made(AICostSpanProcessor(settings=Settings(), config_file=path)) as again:
        assert again.anomalies is not None and again.anomalies.detector.key_count == keys


def test_with_a_redis_budget_store_the_baselines_live_in_redis(pipeline, redis_url, redis_prefix):
    import redis

    from otel_ai_cost.budgets import Budget, lifetime
    from otel_ai_cost.budgets._redis import RedisBudgetStore

    store = RedisBudgetStore(redis_url, prefix=redis_prefix)
    p = pipeline(anomalies=True, budgets=[Budget("everything", 100, lifetime())], budget_store=store)
    p.chat([{"role": "user", "content": "hello"}])
    p.processor.force_flush()  # (the detector runs off the call's path)
    saved = set(p.processor.anomalies.detector.snapshot())
    p.processor.shutdown()
    client = redis.Redis.from_url(redis_url)
    try:
        assert {k.decode() for k in client.hkeys(f"{redis_prefix}:anomaly:default")} == saved != set()
    finally:
        client.close()


def test_a_bad_value_is_found_by_the_zero_code_check():
    from otel_ai_cost.config import check_environment

    with pytest.raises(ConfigError, match="OTEL_AI_COST_ANOMALIES: expected on or off, got 'maybe'"):
        check_environment({"OTEL_AI_COST_ANOMALIES": "maybe"})
    assert check_environment({"OTEL_AI_COST_ANOMALIES": "on"}).anomalies is True


def test_zero_code_with_the_variable_on_flags_a_runaway_run_of_another_instrumentation(monkeypatch, tmp_path):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_ai_cost import _zero_code

    for name in [n for n in os.environ if n.startswith("OTEL_AI_COST_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_AI_COST_ANOMALIES", "on")
    monkeypatch.setenv("OTEL_AI_COST_LEDGER", f"sqlite:///{tmp_path / 'calls.db'}")
    provider = TracerProvider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    processor = _zero_code.register_processor()
    try:
        assert processor is not None and processor.anomalies is not None
        other = provider.get_tracer("opentelemetry.instrumentation.other_genai")
        attributes = {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai",
                      sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", sc.GEN_AI_USAGE_INPUT_TOKENS: 300,
                      sc.GEN_AI_USAGE_OUTPUT_TOKENS: 40}
        with other.start_as_current_span("agent run"):
            for step in range(COLD_TRACE_CALLS + 1):  # the conversation grows by 10 tokens a step
                step_attributes = {**attributes, sc.GEN_AI_USAGE_INPUT_TOKENS: 300 + 10 * step}
                with other.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=step_attributes):
                    pass
        processor.force_flush()  # (what the drain thread does within DRAIN_DELAY)
        spans = exporter.get_finished_spans()
        calls = [s for s in spans if s.name == "chat gpt-4o-mini"]
        findings = {s.parent.span_id: s for s in spans if s.name == sc.AI_COST_ANOMALY}
        assert list(findings) == [calls[-1].context.span_id]
        assert findings[calls[-1].context.span_id].attributes[sc.AI_COST_ANOMALY_TYPE] == "runaway_trace"
        assert calls[-1].attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0  # and the exporter priced it
    finally:
        provider.shutdown()
    # The call ledger's row of that call says so too (it reads the exported span).
    with closing(sqlite3.connect(tmp_path / "calls.db")) as con:
        types = [t for (t,) in con.execute("SELECT anomaly_type FROM calls ORDER BY end_time")]
    assert len(types) == COLD_TRACE_CALLS + 1 and types[-1] == "runaway_trace" and set(types[:-1]) == {None}
