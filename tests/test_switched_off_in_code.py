"""OTEL_AI_COST_ENABLED=false switches off what the user's own code builds too (issue 8, item 6)."""
from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_ai_cost import AICostSpanProcessor, ConfigError, CostEnrichingSpanExporter
from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime

FOREIGN = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
           "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}


def _spans(processor, exporter_wrapper=None):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter_wrapper(exporter) if exporter_wrapper else exporter))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=FOREIGN):
        pass
    provider.shutdown()
    return exporter.get_finished_spans()


def test_a_processor_and_exporter_built_in_code_do_nothing_when_switched_off(monkeypatch):
    monkeypatch.setenv("OTEL_AI_COST_ENABLED", "false")
    store = MemoryBudgetStore()
    # A budget of $0 would refuse the call and raise_on_block would raise: switched off, nothing does.
    processor = AICostSpanProcessor(budgets=[Budget("zero", "0", lifetime())], budget_store=store, raise_on_block=True)
    (span,) = _spans(processor, CostEnrichingSpanExporter)
    assert not [k for k in span.attributes if k.startswith("ai_cost.") or k.startswith("gen_ai.usage.cost")]
    assert store.ledger() == []


def test_the_same_code_prices_and_enforces_when_on(monkeypatch):
    monkeypatch.delenv("OTEL_AI_COST_ENABLED", raising=False)
    (span,) = _spans(AICostSpanProcessor(), CostEnrichingSpanExporter)
    assert span.attributes["gen_ai.usage.cost.amount"] > 0


def test_a_malformed_switch_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("OTEL_AI_COST_ENABLED", "maybe")
    with pytest.raises(ConfigError, match="OTEL_AI_COST_ENABLED"):
        CostEnrichingSpanExporter(InMemorySpanExporter())
    with pytest.raises(ConfigError, match="OTEL_AI_COST_ENABLED"):
        AICostSpanProcessor()
