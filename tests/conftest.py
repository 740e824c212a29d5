"""Shared fixtures: in-memory span exporter and metric reader, SDK providers, instrumentation."""
from __future__ import annotations

import os

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture(scope="session", autouse=True)
def _cache_home(tmp_path_factory):
    """Caches (the tokenizer tables) go to a folder of the test run, never to the user's home;
    subprocesses the tests start inherit it. The collector's Go caches are the exception."""
    previous = os.environ.get("XDG_CACHE_HOME")
    # The Go module and build caches of the collector tests stay where they survive between runs.
    os.environ.setdefault(
        "OTEL_AI_COST_GO_CACHE",
        os.path.join(previous or os.path.join(os.path.expanduser("~"), ".cache"), "otel-ai-cost", "go"),
    )
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture
def span_exporter():
    return InMemorySpanExporter()


@pytest.fixture
def metric_reader():
    return InMemoryMetricReader()


@pytest.fixture
def tracer_provider(span_exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def meter_provider(metric_reader):
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def openai_instrumentor(tracer_provider, meter_provider, monkeypatch):
    """The OpenAI instrumentor, instrumented for the test and uninstrumented after it."""
    from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

    monkeypatch.delenv("OTEL_AI_COST_OPENAI_INCLUDE_USAGE", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def instrument_openai(tracer_provider, meter_provider):
    """Instrument with custom keyword arguments: ``instrument_openai(include_stream_usage=False)``."""
    from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()

    def instrument(**kwargs):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **kwargs)
        return instrumentor

    yield instrument
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
