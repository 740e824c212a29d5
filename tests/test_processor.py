import logging
from decimal import Decimal

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from conftest import Pipeline
from otel_ai_cost import AICostSpanProcessor, CostEnrichingSpanExporter, _span_pricing
from otel_ai_cost._request import LLMRequest, TokenCount, pending_request
from otel_ai_cost.config import OutputEstimate, Settings
from otel_ai_cost.pricing import Catalog, ModelPrice, PriceSet
from otel_ai_cost.processor import DEFAULT_OUTPUT_TOKENS, Estimate

CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}

# Hand-made so the expected numbers do not depend on the shipped catalog.
TEST_CATALOG = Catalog(
    [
        ModelPrice(id="big-model", provider="openai", mode="chat",
                   prices=PriceSet(input=Decimal("2"), output=Decimal("8")), max_output_tokens=4000),
        ModelPrice(id="no-limit-model", provider="openai", mode="chat",
                   prices=PriceSet(input=Decimal("1"), output=Decimal("3"))),
    ],
    version="test",
)


@pytest.fixture(autouse=True)
def _reset_log_once(monkeypatch):
    monkeypatch.setattr(_span_pricing, "_logged", set())


def make_pipeline(**kwargs):
    """(tracer, exporter, processor) of the shared harness, without an instrumentor."""
    p = Pipeline(resource=Resource.create({"service.name": "test"}), **kwargs)
    return p.provider.get_tracer("test"), p.exporter, p.processor


def request(model="gpt-4o", max_output_tokens=500, tokens=1000, method="tiktoken", **kwargs):
    return LLMRequest(
        provider="openai",
        operation="chat",
        model=model,
        max_output_tokens=max_output_tokens,
        estimate_input=lambda: TokenCount(tokens, method),
        **kwargs,
    )


def run_call(tracer, req, attributes=None):
    """Start and end a span the way an instrumentor does: inside pending_request."""
    attributes = dict(CHAT if attributes is None else attributes)
    if req is not None and req.model:
        attributes["gen_ai.request.model"] = req.model
    with pending_request(req):
        span = tracer.start_span(f"chat {req.model}", kind=SpanKind.CLIENT, attributes=attributes)
    span.end()


def finished(exporter, name=None):
    spans = exporter.get_finished_spans()
    if name is not None:
        spans = [s for s in spans if s.name == name]
    assert len(spans) == 1, [s.name for s in exporter.get_finished_spans()]
    return spans[0]


# --- estimate ------------------------------------------------------------------------------


def test_estimate_from_max_tokens_with_the_shipped_catalog():
    tracer, exporter, _ = make_pipeline()  # default catalog: gpt-4o at $2.50 / $10 per million
    req = request(model="gpt-4o", max_output_tokens=500, tokens=1000)
    run_call(tracer, req)
    attrs = finished(exporter).attributes
    assert attrs["ai_cost.estimate.input_tokens"] == 1000
    assert attrs["ai_cost.estimate.output_tokens"] == 500
    assert attrs["ai_cost.estimate.method"] == "tiktoken"
    assert attrs["ai_cost.estimate.output_basis"] == "max_tokens"
    assert attrs["ai_cost.estimate.amount"] == 0.0075  # 1000 * 2.5 / 1e6 + 500 * 10 / 1e6
    assert req.estimate == Estimate(1000, 500, "tiktoken", "max_tokens", Decimal("0.0075"), "gpt-4o")


def test_estimate_from_the_model_limit():
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG)
    run_call(tracer, request(model="big-model", max_output_tokens=None, tokens=1000, method="heuristic"))
    attrs = finished(exporter).attributes
    assert attrs["ai_cost.estimate.output_tokens"] == 4000
    assert attrs["ai_cost.estimate.output_basis"] == "model_limit"
    assert attrs["ai_cost.estimate.method"] == "heuristic"
    assert attrs["ai_cost.estimate.amount"] == pytest.approx(1000 * 2 / 1e6 + 4000 * 8 / 1e6, rel=1e-15)


def test_estimate_falls_back_to_the_default_output():
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG)
    run_call(tracer, request(model="no-limit-model", max_output_tokens=None, tokens=2000))
    attrs = finished(exporter).attributes
    assert DEFAULT_OUTPUT_TOKENS == 1024
    assert attrs["ai_cost.estimate.output_tokens"] == 1024
    assert attrs["ai_cost.estimate.output_basis"] == "default"
    assert attrs["ai_cost.estimate.amount"] == pytest.approx(2000 * 1 / 1e6 + 1024 * 3 / 1e6, rel=1e-15)


@pytest.mark.parametrize(
    "expected, max_tokens, output, basis",
    [(300, 500, 300, "default"), (800, 500, 500, "max_tokens"), (300, None, 300, "default")],
)
def test_expected_output_estimate_is_capped_by_max_tokens(expected, max_tokens, output, basis):
    settings = Settings(output_estimate=OutputEstimate(expected_tokens=expected))
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG, settings=settings)
    run_call(tracer, request(model="big-model", max_output_tokens=max_tokens))
    attrs = finished(exporter).attributes
    assert (attrs["ai_cost.estimate.output_tokens"], attrs["ai_cost.estimate.output_basis"]) == (output, basis)


def test_unknown_model_gets_token_estimates_but_no_amount():
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG)
    req = request(model="my-private-model", max_output_tokens=None, tokens=10)
    run_call(tracer, req)
    attrs = finished(exporter).attributes
    assert attrs["ai_cost.estimate.input_tokens"] == 10
    assert attrs["ai_cost.estimate.output_tokens"] == 1024
    assert attrs["ai_cost.estimate.output_basis"] == "default"
    assert "ai_cost.estimate.amount" not in attrs
    assert req.estimate.amount is None


def test_estimate_can_be_turned_off():
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG, estimate=False)
    req = request(model="big-model")
    run_call(tracer, req)
    assert not any(k.startswith("ai_cost.estimate") for k in finished(exporter).attributes)
    assert req.estimate is None


def test_estimate_input_raising_leaves_the_span_fine(caplog):
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG)

    def broken():
        raise RuntimeError("tokenizer exploded")

    req = LLMRequest(provider="openai", operation="chat", model="big-model", estimate_input=broken)
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.processor"):
        run_call(tracer, req)
        run_call(tracer, LLMRequest(provider="openai", operation="chat", model="big-model", estimate_input=broken))
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    assert dict(spans[0].attributes) == {**CHAT, "gen_ai.request.model": "big-model"}
    assert req.estimate is None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # logged once
    assert "big-model" in warnings[0].getMessage()


def test_no_input_counter_means_no_estimate():
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG)
    req = LLMRequest(provider="openai", operation="chat", model="big-model", max_output_tokens=10)
    run_call(tracer, req)
    assert "ai_cost.estimate.output_tokens" not in finished(exporter).attributes


def test_a_failing_catalog_never_raises_into_the_sdk():
    class BrokenCatalog:
        def resolve(self, model, provider=None):
            raise KeyError(model)

    tracer, exporter, _ = make_pipeline(catalog=BrokenCatalog())
    run_call(tracer, request())
    assert "ai_cost.estimate.input_tokens" not in finished(exporter).attributes


def test_the_before_request_hook_receives_the_span_and_the_estimate():
    seen = []

    def before_request(span, estimate):
        seen.append((span.name, estimate.output_tokens))
        return "allow"

    provider = TracerProvider()
    provider.add_span_processor(AICostSpanProcessor(catalog=TEST_CATALOG, settings=Settings(),
                                                    before_request=before_request))
    req = request(model="big-model", max_output_tokens=7)
    run_call(provider.get_tracer("t"), req)
    assert seen == [("chat big-model", 7)]
    assert req.decision.action == "allow" and req.hold is None


def test_spans_started_under_an_already_estimated_request_are_left_alone():
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG)
    req = request(model="big-model")
    with pending_request(req):
        llm = tracer.start_span("chat big-model", attributes=dict(CHAT))
        with trace.use_span(llm):
            tracer.start_span("POST").end()  # e.g. the HTTP client's span
    llm.end()
    assert dict(finished(exporter, "POST").attributes) == {}
    assert finished(exporter, "chat big-model").attributes["ai_cost.estimate.input_tokens"] == 1000


# --- attribution from baggage --------------------------------------------------------------


def with_baggage(**entries):
    ctx = context.get_current()
    for key, value in entries.items():
        ctx = baggage.set_baggage(key, value, ctx)
    return ctx


def test_baggage_is_copied_onto_genai_spans():
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG)
    token = context.attach(with_baggage(**{"tenant.id": "acme", "enduser.id": "u-1", "ai_cost.team": "search",
                                           "session": "s"}))
    try:
        run_call(tracer, request(model="big-model"))
    finally:
        context.detach(token)
    attrs = finished(exporter).attributes
    assert attrs["tenant.id"] == "acme"
    assert attrs["enduser.id"] == "u-1"
    assert attrs["ai_cost.team"] == "search"
    assert "session" not in attrs


def test_configured_baggage_keys_replace_the_defaults_but_ai_cost_keys_always_flow():
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG, baggage_keys=["team"])
    ctx = with_baggage(**{"tenant.id": "acme", "team": "search", "ai_cost.cost_center": "cc-7"})
    span = tracer.start_span("chat x", context=ctx, attributes=dict(CHAT))
    span.end()
    attrs = finished(exporter).attributes
    assert attrs["team"] == "search"
    assert attrs["ai_cost.cost_center"] == "cc-7"
    assert "tenant.id" not in attrs


def test_genai_spans_of_other_instrumentations_get_baggage_but_no_estimate():
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG)
    ctx = with_baggage(**{"tenant.id": "acme"})
    span = tracer.start_span("chat gpt-4o", context=ctx,
                             attributes={"gen_ai.operation.name": "chat", "gen_ai.system": "openai"})
    span.end()
    attrs = finished(exporter).attributes
    assert attrs["tenant.id"] == "acme"
    assert not any(k.startswith("ai_cost.estimate") for k in attrs)


def test_non_genai_spans_are_untouched():
    tracer, exporter, _ = make_pipeline(catalog=TEST_CATALOG)
    ctx = with_baggage(**{"tenant.id": "acme", "ai_cost.team": "search"})
    span = tracer.start_span("GET /health", context=ctx, attributes={"http.request.method": "GET"})
    span.end()
    assert dict(finished(exporter).attributes) == {"http.request.method": "GET"}


def test_processor_reads_the_environment_when_given_no_settings(monkeypatch):
    monkeypatch.setenv("OTEL_AI_COST_BAGGAGE_KEYS", "team")
    monkeypatch.setenv("OTEL_AI_COST_ESTIMATE", "false")
    ai_cost = AICostSpanProcessor(catalog=TEST_CATALOG)
    assert ai_cost.settings.baggage_keys == ("team",)
    assert ai_cost.settings.estimate is False


def test_processor_rejects_a_malformed_environment_at_construction(monkeypatch):
    from otel_ai_cost import ConfigError

    monkeypatch.setenv("OTEL_AI_COST_ESTIMATE", "maybe")
    with pytest.raises(ConfigError, match="OTEL_AI_COST_ESTIMATE: expected true or false, got 'maybe'"):
        AICostSpanProcessor(catalog=TEST_CATALOG)


# --- CostEnrichingSpanExporter -------------------------------------------------------------


def openai_v2_span(tracer, **overrides):
    """A span shaped like the official opentelemetry-instrumentation-openai-v2 (default, v1.30 conventions)."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": "chatcmpl-A1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 19,
        "gen_ai.usage.output_tokens": 10,
        "server.address": "api.openai.com",
    }
    attributes.update(overrides)
    attributes = {k: v for k, v in attributes.items() if v is not None}
    with tracer.start_as_current_span("parent"):
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=attributes)
        span.add_event("gen_ai.choice", {"index": 0})
        span.set_status(Status(StatusCode.OK))
        span.end()
    return span


def enriching_pipeline(catalog=None):
    inner = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(CostEnrichingSpanExporter(inner, catalog=catalog)))
    return provider.get_tracer("opentelemetry.instrumentation.openai_v2", "2.1b0"), inner


def test_exporter_prices_spans_of_the_official_openai_instrumentation():
    tracer, inner = enriching_pipeline()
    original = openai_v2_span(tracer)
    exported = finished(inner, "chat gpt-4o-mini")
    attrs = exported.attributes
    assert attrs["gen_ai.usage.cost.amount"] == float(
        Decimal(19) * Decimal("0.15") / 10**6 + Decimal(10) * Decimal("0.6") / 10**6)
    assert attrs["gen_ai.usage.cost.amount"] == pytest.approx(8.85e-06, rel=1e-15)
    assert attrs["gen_ai.usage.cost.currency"] == "USD"
    assert attrs["gen_ai.usage.cost.source"] == "local"
    assert attrs["ai_cost.pricing.status"] == "priced"
    assert attrs["ai_cost.pricing.model"].startswith("gpt-4o-mini")
    # Everything else about the span is kept.
    for key, value in original.attributes.items():
        assert attrs[key] == value
    assert exported.context == original.context
    assert exported.parent == original.parent
    assert exported.resource == original.resource
    assert exported.kind is SpanKind.CLIENT
    assert exported.status.status_code is StatusCode.OK
    assert (exported.start_time, exported.end_time) == (original.start_time, original.end_time)
    assert [e.name for e in exported.events] == ["gen_ai.choice"]
    assert exported.instrumentation_scope == original.instrumentation_scope
    assert exported.instrumentation_scope.name == "opentelemetry.instrumentation.openai_v2"
    assert exported.dropped_attributes == original.dropped_attributes == 0
    assert "gen_ai.usage.cost.amount" in exported.to_json()
    assert finished(inner, "parent").attributes == {}


def test_exporter_reads_the_newer_provider_name_too():
    tracer, inner = enriching_pipeline(catalog=TEST_CATALOG)
    openai_v2_span(tracer, **{"gen_ai.system": None, "gen_ai.provider.name": "openai",
                              "gen_ai.request.model": "big-model", "gen_ai.response.model": None,
                              "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100})
    attrs = finished(inner, "chat gpt-4o-mini").attributes
    assert attrs["gen_ai.usage.cost.amount"] == pytest.approx(1000 * 2 / 1e6 + 100 * 8 / 1e6, rel=1e-15)


def test_exporter_marks_unknown_models():
    tracer, inner = enriching_pipeline(catalog=TEST_CATALOG)
    openai_v2_span(tracer)
    attrs = finished(inner, "chat gpt-4o-mini").attributes
    assert attrs["ai_cost.pricing.status"] == "unknown_model"
    assert "gen_ai.usage.cost.amount" not in attrs


@pytest.mark.parametrize(
    "overrides",
    [
        {"gen_ai.usage.cost.amount": 0.5, "gen_ai.usage.cost.currency": "USD", "gen_ai.usage.cost.source": "provider"},
        {"ai_cost.pricing.status": "unknown_model"},
        {"gen_ai.usage.input_tokens": None, "gen_ai.usage.output_tokens": None},
        {"gen_ai.operation.name": None},
    ],
    ids=["already-priced", "already-marked", "no-usage", "not-genai"],
)
def test_exporter_passes_other_spans_through_untouched(overrides):
    inner = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(inner))
    span = openai_v2_span(provider.get_tracer("t"), **overrides)
    wrapper = CostEnrichingSpanExporter(InMemorySpanExporter(), catalog=TEST_CATALOG)
    assert wrapper.enrich(span) is span


@pytest.mark.parametrize(
    "overrides",
    [
        {"gen_ai.usage.input_tokens": "lots", "gen_ai.usage.output_tokens": ("a", "b")},
        {"gen_ai.request.model": 42, "gen_ai.response.model": (1, 2)},
        {"gen_ai.system": True, "openai.response.service_tier": 3},
    ],
    ids=["garbage-tokens", "garbage-models", "garbage-provider"],
)
def test_exporter_survives_garbage_attribute_values(overrides):
    tracer, inner = enriching_pipeline()
    openai_v2_span(tracer, **overrides)
    assert finished(inner, "chat gpt-4o-mini").name == "chat gpt-4o-mini"


def test_exporter_exports_the_original_span_when_costing_fails(monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(_span_pricing, "cost_attributes", explode)
    inner = InMemorySpanExporter()
    wrapper = CostEnrichingSpanExporter(inner)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(inner))
    span = openai_v2_span(provider.get_tracer("t"))
    inner.clear()
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.processor"):
        assert wrapper.export([span, span]) is SpanExportResult.SUCCESS
    assert inner.get_finished_spans() == (span, span)
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_exporter_delegates_flush_and_shutdown():
    calls = []

    class Recording(InMemorySpanExporter):
        def force_flush(self, timeout_millis=30000):
            calls.append(("flush", timeout_millis))
            return True

        def shutdown(self):
            calls.append(("shutdown",))

    wrapper = CostEnrichingSpanExporter(Recording())
    assert wrapper.force_flush(123) is True
    wrapper.shutdown()
    assert calls == [("flush", 123), ("shutdown",)]


# --- configuration and the package surface ---------------------------------------------------


def test_a_missing_pricing_file_fails_at_construction():
    from otel_ai_cost import CatalogError

    with pytest.raises(CatalogError, match="/nope.json"):
        AICostSpanProcessor(settings=Settings(pricing_files=["/nope.json"]))


def test_importing_the_package_is_light():
    import subprocess
    import sys

    code = (
        "import sys; import otel_ai_cost; "
        "heavy = [m for m in ('opentelemetry.sdk.trace', 'tiktoken', 'otel_ai_cost.pricing') if m in sys.modules]; "
        "print(heavy); "
        "from otel_ai_cost import AICostSpanProcessor, CostEnrichingSpanExporter, BudgetExceededError, "
        "ConfigError, CatalogError, Usage, Cost, compute_cost, __version__; print(__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"  # how long the import takes is measured in benchmarks/bench_import.py
    from importlib.metadata import version

    assert out[1] == version("otel-ai-cost")


def test_exporter_maps_renamed_legacy_system_values():
    # gen_ai.system "az.ai.openai" became gen_ai.provider.name "azure.ai.openai" (semconv v1.37).
    tracer, inner = enriching_pipeline()
    openai_v2_span(tracer, **{"gen_ai.system": "az.ai.openai", "gen_ai.request.model": "gpt-4o-mini",
                              "gen_ai.response.model": None,
                              "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100})
    attrs = finished(inner, "chat gpt-4o-mini").attributes
    assert attrs["ai_cost.pricing.status"] == "priced"
    # Azure OpenAI gpt-4o-mini (global) list price: $0.15/M input, $0.60/M output.
    assert attrs["gen_ai.usage.cost.amount"] == pytest.approx(1000 * 0.15 / 1e6 + 100 * 0.60 / 1e6, rel=1e-12)
