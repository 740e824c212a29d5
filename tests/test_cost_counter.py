"""``ai_cost.client.cost``: summed in process and observed at collection (``_core._telemetry.CostCounter``).

The real openai SDK on the faked HTTP of tests/_fake_openai.py; the expected sums are the spans' own
``gen_ai.usage.cost.amount`` (whose pricing tests/test_openai_instrumentor.py checks).
"""
from __future__ import annotations

import pytest
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

from _fake_openai import FakeOpenAI
from otel_ai_cost import _semconv as sc
from otel_ai_cost.instrumentation._core import _telemetry
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

MESSAGES = [{"role": "user", "content": "Say this is a secret test"}]


def _cost_points(reader):
    points = []
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == sc.AI_COST_CLIENT_COST:
                    assert metric.unit == sc.AI_COST_CLIENT_COST_UNIT
                    assert metric.data.is_monotonic
                    points.extend(metric.data.data_points)
    return points


def _span_costs(span_exporter):
    return [s.attributes["gen_ai.usage.cost.amount"] for s in span_exporter.get_finished_spans()]


def _call(model="gpt-4o-mini"):
    FakeOpenAI().client().chat.completions.create(model=model, messages=MESSAGES)


def test_sums_per_attribute_set_with_the_duration_attributes(openai_instrumentor, span_exporter, metric_reader):
    _call()
    _call()
    _call("gpt-4o")
    points = {p.attributes["gen_ai.request.model"]: p for p in _cost_points(metric_reader)}
    assert set(points) == {"gpt-4o-mini", "gpt-4o"}
    costs = _span_costs(span_exporter)
    assert points["gpt-4o-mini"].value == pytest.approx(costs[0] + costs[1])
    assert points["gpt-4o"].value == pytest.approx(costs[2])
    attributes = dict(points["gpt-4o"].attributes)
    # As semconv/metrics.yaml declares: the cost's status and source; no currency (always USD).
    assert attributes[sc.AI_COST_PRICING_STATUS] == "priced"
    assert attributes[sc.GEN_AI_USAGE_COST_SOURCE] == "local"
    assert sc.GEN_AI_USAGE_COST_CURRENCY not in attributes
    assert attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert attributes["gen_ai.response.model"].startswith("gpt-4o")


def test_reinstrumenting_keeps_one_monotonic_sum(tracer_provider, meter_provider, metric_reader, span_exporter):
    # The SDK keeps the first callback of an instrument registered twice on a meter: a second
    # instrument() must add to the same totals, not to ones nobody observes.
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        _call()
        first = [p.value for p in _cost_points(metric_reader)]
        instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        _call()
    finally:
        instrumentor.uninstrument()
    (point,) = _cost_points(metric_reader)
    costs = _span_costs(span_exporter)
    assert first == [pytest.approx(costs[0])]
    assert point.value == pytest.approx(costs[0] + costs[1])


def test_delta_temporality_reports_what_was_added_since_the_last_collection(tracer_provider, span_exporter):
    reader = InMemoryMetricReader(preferred_temporality={ObservableCounter: AggregationTemporality.DELTA})
    provider = MeterProvider(metric_readers=[reader])
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=provider)
    try:
        _call()
        (first,) = _cost_points(reader)
        _call()
        _call()
        (second,) = _cost_points(reader)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    costs = _span_costs(span_exporter)
    assert first.value == pytest.approx(costs[0])
    assert second.value == pytest.approx(costs[1] + costs[2])


def test_attribute_sets_past_the_limit_go_to_one_overflow_point(monkeypatch):
    monkeypatch.setattr(_telemetry, "_COST_SETS_MAX", 2)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = _telemetry.CostCounter(provider.get_meter("test"))
    for model, amount in (("a", 1.0), ("b", 2.0), ("c", 4.0), ("d", 8.0), ("a", 16.0)):
        counter.add(amount, {"gen_ai.request.model": model}, "priced", None)
    points = {tuple(sorted(p.attributes.items())): p.value for p in _cost_points(reader)}
    provider.shutdown()
    assert points == {
        (("ai_cost.pricing.status", "priced"), ("gen_ai.request.model", "a")): 17.0,
        (("ai_cost.pricing.status", "priced"), ("gen_ai.request.model", "b")): 2.0,
        (("otel.metric.overflow", True),): 12.0,
    }


def test_one_counter_per_scope_of_the_proxy_provider_set_later(tracer_provider, span_exporter):
    # Before a global meter provider is set, the API's proxy provider makes a new meter on every
    # get_meter; the counter is kept by provider and scope, so a re-instrumented instrumentor (no
    # meter_provider given) adds to the one callback the real provider will observe.
    proxy = metrics_internal._ProxyMeterProvider()
    first = _telemetry.cost_counter(proxy.get_meter("scope", "1"), proxy, "scope", "1")
    again = _telemetry.cost_counter(proxy.get_meter("scope", "1"), proxy, "scope", "1")
    other = _telemetry.cost_counter(proxy.get_meter("other", "1"), proxy, "other", "1")
    assert first is again and other is not first
    reader = InMemoryMetricReader()
    real = MeterProvider(metric_readers=[reader])
    proxy.on_set_meter_provider(real)
    first.add(0.5, {"gen_ai.request.model": "m"}, "priced", "local")
    again.add(0.25, {"gen_ai.request.model": "m"}, "priced", "local")
    (point,) = _cost_points(reader)
    real.shutdown()
    assert point.value == 0.75
