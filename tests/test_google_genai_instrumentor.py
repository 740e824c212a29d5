"""The google-genai instrumentor on the cases the recordings do not cover.

The real ``google-genai`` SDK talks to a loopback server (``_fake_google_genai``) that answers in the
documented API formats (GenerateContentResponse with ``usageMetadata``; Vertex AI ``predict`` for
text embeddings; the Google API error body): context caching, the > 200k-token price tier, audio
input, embeddings, request attributes, budgets, and failures inside the instrumentation. Costs are
worked out by hand from the catalog's list prices (USD per 1M tokens).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import types as pytypes
from decimal import Decimal

import pytest
from google.genai import types
from opentelemetry.trace import StatusCode

import conftest
from _fake_google_genai import FakeGoogleGenAI, error_body, generate_response
from otel_ai_cost import BudgetExceededError
from otel_ai_cost.budgets import Budget, MemoryBudgetStore, Threshold, downgrade, lifetime, throttle
from otel_ai_cost.instrumentation import google_genai as gg
from otel_ai_cost.instrumentation.google_genai import GoogleGenAIInstrumentor
from otel_ai_cost.instrumentation.google_genai import _attributes as gg_attributes
from otel_ai_cost.instrumentation.google_genai import _calls as gg_calls

M = Decimal(1_000_000)


@pytest.fixture
def fake():
    with FakeGoogleGenAI() as server:
        yield server


def only_span(span_exporter):
    (span,) = span_exporter.get_finished_spans()
    return span


def cost(span) -> Decimal:
    return Decimal(str(span.attributes["gen_ai.usage.cost.amount"]))


# --- request and response attributes ---------------------------------------------------------


def test_request_attributes_and_model_names(google_genai_instrumentor, span_exporter, fake):
    fake.queue_json(generate_response({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
                                      model="gemini-2.5-flash", finish_reason="MAX_TOKENS", response_id="r-1"))
    client = fake.gemini_client()
    client.models.generate_content(
        model="models/gemini-2.5-flash", contents="Hi",
        config=types.GenerateContentConfig(temperature=0.2, top_p=0.9, top_k=40, max_output_tokens=64,
                                           stop_sequences=["END"], seed=7, candidate_count=2,
                                           presence_penalty=0.1, frequency_penalty=0.3,
                                           response_mime_type="application/json"))
    assert fake.requests[0]["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    span = only_span(span_exporter)
    a = span.attributes
    assert span.name == "generate_content gemini-2.5-flash"
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"], a["gen_ai.request.model"]) == (
        "generate_content", "gcp.gemini", "gemini-2.5-flash")
    assert (a["server.address"], a["server.port"]) == ("127.0.0.1", fake.port)
    assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.top_k"] == 40
    assert a["gen_ai.request.max_tokens"] == 64
    assert tuple(a["gen_ai.request.stop_sequences"]) == ("END",)
    assert a["gen_ai.request.seed"] == 7 and a["gen_ai.request.choice.count"] == 2
    assert a["gen_ai.request.presence_penalty"] == 0.1 and a["gen_ai.request.frequency_penalty"] == 0.3
    assert a["gen_ai.output.type"] == "json"
    assert "gen_ai.request.stream" not in a
    assert (a["gen_ai.response.id"], a["gen_ai.response.model"]) == ("r-1", "gemini-2.5-flash")
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("length",)
    assert cost(span) == (10 * Decimal("0.30") + 5 * Decimal("2.50")) / M


def test_vertex_resource_names_are_priced_as_the_model(google_genai_instrumentor, span_exporter, fake):
    fake.queue_json(generate_response({"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 120},
                                      model="gemini-2.5-pro"))
    client = fake.vertex_client()
    client.models.generate_content(model="publishers/google/models/gemini-2.5-pro", contents="Hi")
    assert fake.requests[0]["path"] == (
        "/v1beta1/projects/test-project/locations/test-location/publishers/google/models/gemini-2.5-pro:generateContent")
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert span.attributes["gen_ai.request.model"] == "gemini-2.5-pro"
    # Vertex AI gemini-2.5-pro: input 1.25, output 10.
    assert cost(span) == (100 * Decimal("1.25") + 20 * Decimal(10)) / M


@pytest.mark.parametrize("model, expected", [
    ("gemini-2.5-flash", "gemini-2.5-flash"),
    ("models/gemini-2.5-flash", "gemini-2.5-flash"),
    ("publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash"),
    ("projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash"),
    ("google/gemini-2.5-flash", "gemini-2.5-flash"),
    ("tunedModels/abc123", "tunedModels/abc123"),
])
def test_bare_model(model, expected):
    assert gg.bare_model(model) == expected


def test_chat_sessions_are_instrumented_per_message(google_genai_instrumentor, span_exporter, fake):
    fake.queue_json(generate_response({"promptTokenCount": 5, "candidatesTokenCount": 3}, model="gemini-2.0-flash"))
    fake.queue_json(generate_response({"promptTokenCount": 12, "candidatesTokenCount": 4}, model="gemini-2.0-flash"))
    client = fake.gemini_client()
    chat = client.chats.create(model="gemini-2.0-flash")
    chat.send_message("Hi")
    chat.send_message("And again")
    assert len(fake.requests[1]["json"]["contents"]) == 3  # the history was sent
    first, second = span_exporter.get_finished_spans()
    assert (first.attributes["gen_ai.usage.input_tokens"], second.attributes["gen_ai.usage.input_tokens"]) == (5, 12)


def test_the_estimate_is_lazy(google_genai_instrumentor, span_exporter, fake, monkeypatch):
    """Without a span processor that needs it, the request is never tokenized."""
    counted = []
    monkeypatch.setattr(gg_calls, "estimate_generate_input", lambda *a: counted.append(a))
    fake.queue_json(generate_response({"promptTokenCount": 5, "candidatesTokenCount": 3}, model="gemini-2.0-flash"))
    client = fake.gemini_client()
    client.models.generate_content(model="gemini-2.0-flash", contents="Hi")
    assert counted == [] and len(span_exporter.get_finished_spans()) == 1


# --- usage: cache, thinking, tool-use prompt, tiers, modalities -------------------------------


def test_cached_content_is_inside_the_prompt_and_thoughts_outside_the_candidates(
        google_genai_instrumentor, span_exporter, fake):
    usage = {"promptTokenCount": 10000, "cachedContentTokenCount": 8000, "candidatesTokenCount": 100,
             "thoughtsTokenCount": 50, "totalTokenCount": 10150,
             "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 8000}]}
    fake.queue_json(generate_response(usage, model="gemini-2.5-flash"))
    client = fake.gemini_client()
    client.models.generate_content(model="gemini-2.5-flash", contents="Summarise the cached document.",
                                   config={"cached_content": "cachedContents/abc"})
    a = only_span(span_exporter).attributes
    assert a["gen_ai.usage.input_tokens"] == 10000
    assert a["gen_ai.usage.cache_read.input_tokens"] == 8000
    assert a["gen_ai.usage.output_tokens"] == 150
    assert a["gen_ai.usage.reasoning.output_tokens"] == 50
    # gemini-2.5-flash: input 0.30, cached input 0.03, output (thinking included) 2.50.
    expected = (2000 * Decimal("0.30") + 8000 * Decimal("0.03") + 150 * Decimal("2.50")) / M
    assert Decimal(str(a["gen_ai.usage.cost.amount"])) == expected
    assert Decimal(str(a["ai_cost.cost.cache_read"])) == 8000 * Decimal("0.03") / M


def test_prompts_above_200k_tokens_are_priced_at_the_long_context_tier(google_genai_instrumentor, span_exporter, fake):
    usage = {"promptTokenCount": 250000, "cachedContentTokenCount": 100000, "candidatesTokenCount": 1000,
             "thoughtsTokenCount": 500, "totalTokenCount": 251500}
    fake.queue_json(generate_response(usage, model="gemini-2.5-pro"))
    fake.queue_json(generate_response({"promptTokenCount": 200000, "candidatesTokenCount": 1000,
                                       "totalTokenCount": 201000}, model="gemini-2.5-pro"))
    client = fake.gemini_client()
    client.models.generate_content(model="gemini-2.5-pro", contents="A long document")
    client.models.generate_content(model="gemini-2.5-pro", contents="A long document")
    above, at = span_exporter.get_finished_spans()
    # gemini-2.5-pro, prompts > 200k tokens: input 2.50, cached 0.25, output 15.
    assert cost(above) == (150000 * Decimal("2.50") + 100000 * Decimal("0.25") + 1500 * Decimal(15)) / M
    assert above.attributes["ai_cost.pricing.context_tier"] == 200000
    # Exactly 200k is not above it: input 1.25, output 10.
    assert cost(at) == (200000 * Decimal("1.25") + 1000 * Decimal(10)) / M
    assert "ai_cost.pricing.context_tier" not in at.attributes


def test_tool_use_prompt_tokens_are_input(google_genai_instrumentor, span_exporter, fake):
    usage = {"promptTokenCount": 30, "toolUsePromptTokenCount": 500, "candidatesTokenCount": 40,
             "totalTokenCount": 570}
    fake.queue_json(generate_response(usage, model="gemini-2.0-flash"))
    client = fake.gemini_client()
    client.models.generate_content(model="gemini-2.0-flash", contents="Search the web",
                                   config={"tools": [{"google_search": {}}]})
    a = only_span(span_exporter).attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (530, 40)
    assert Decimal(str(a["gen_ai.usage.cost.amount"])) == (530 * Decimal("0.10") + 40 * Decimal("0.40")) / M


def test_audio_input_is_priced_at_the_audio_price(google_genai_instrumentor, span_exporter, fake):
    usage = {"promptTokenCount": 1200, "candidatesTokenCount": 10, "totalTokenCount": 1210,
             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 200},
                                     {"modality": "AUDIO", "tokenCount": 1000}]}
    fake.queue_json(generate_response(usage, model="gemini-2.5-flash"))
    client = fake.gemini_client()
    client.models.generate_content(model="gemini-2.5-flash", contents=[
        types.Part.from_text(text="Transcribe"), types.Part.from_bytes(data=b"RIFF0000WAVE", mime_type="audio/wav")])
    span = only_span(span_exporter)
    # gemini-2.5-flash: text input 0.30, audio input 1.00, output 2.50.
    assert cost(span) == (200 * Decimal("0.30") + 1000 * Decimal(1) + 10 * Decimal("2.50")) / M


def test_a_requested_service_tier_prices_the_call(google_genai_instrumentor, span_exporter, fake):
    fake.queue_json(generate_response({"promptTokenCount": 1000, "candidatesTokenCount": 100,
                                       "totalTokenCount": 1100}, model="gemini-2.5-flash"))
    client = fake.gemini_client()
    client.models.generate_content(model="gemini-2.5-flash", contents="Hi", config={"service_tier": "flex"})
    span = only_span(span_exporter)
    # gemini-2.5-flash flex: input 0.15, output 1.25.
    assert cost(span) == (1000 * Decimal("0.15") + 100 * Decimal("1.25")) / M
    assert span.attributes["ai_cost.pricing.service_tier"] == "flex"


# --- embeddings -------------------------------------------------------------------------------


def test_gemini_embeddings_read_the_usage_metadata(google_genai_instrumentor, span_exporter, fake):
    # batchEmbedContents response; the SDK maps its usageMetadata to EmbedContentResponse.usage_metadata.
    fake.queue_json({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}],
                     "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}})
    client = fake.gemini_client()
    client.models.embed_content(model="gemini-embedding-001", contents=["What is your name?", "Colour?"],
                                config={"output_dimensionality": 2})
    assert fake.requests[0]["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    span = only_span(span_exporter)
    a = span.attributes
    assert span.name == "embeddings gemini-embedding-001"
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"]) == ("embeddings", "gcp.gemini")
    assert a["gen_ai.embeddings.dimension.count"] == 2
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 0)
    assert cost(span) == 12 * Decimal("0.15") / M


def test_gemini_embeddings_without_usage_say_so(google_genai_instrumentor, span_exporter, fake):
    fake.queue_json({"embeddings": [{"values": [0.1, 0.2]}]})
    client = fake.gemini_client()
    client.models.embed_content(model="gemini-embedding-001", contents="What is your name?")
    a = only_span(span_exporter).attributes
    assert "gen_ai.usage.input_tokens" not in a
    assert a["ai_cost.pricing.status"] == "no_usage"


async def test_vertex_text_embeddings_sum_the_statistics(google_genai_instrumentor, span_exporter, fake):
    # Vertex AI predict response for text embeddings (documented format).
    fake.queue_json({"predictions": [
        {"embeddings": {"statistics": {"truncated": False, "token_count": 6}, "values": [0.1]}},
        {"embeddings": {"statistics": {"truncated": False, "token_count": 4}, "values": [0.2]}}],
        "metadata": {"billableCharacterCount": 27}})
    client = fake.vertex_client()
    await client.aio.models.embed_content(model="text-embedding-005", contents=["What is your name?", "Colour?"])
    assert fake.requests[0]["path"].endswith("/publishers/google/models/text-embedding-005:predict")
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert span.attributes["gen_ai.usage.input_tokens"] == 10
    assert cost(span) == 10 * Decimal("0.10") / M  # the catalog's Vertex text-embedding-005 price


# --- streams ----------------------------------------------------------------------------------


def _stream_events():
    return [
        {"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1, "totalTokenCount": 11},
         "modelVersion": "gemini-2.0-flash", "responseId": "s-1"},
        {"candidates": [{"content": {"parts": [{"text": "lo"}], "role": "model"}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2, "totalTokenCount": 12},
         "modelVersion": "gemini-2.0-flash", "responseId": "s-1"},
    ]


def test_closing_a_stream_ends_its_span_once(google_genai_instrumentor, span_exporter, fake):
    fake.queue_sse(_stream_events())
    client = fake.gemini_client()
    stream = client.models.generate_content_stream(model="gemini-2.0-flash", contents="Hi")
    next(stream)
    stream.close()
    gc.collect()
    from otel_ai_cost.instrumentation import flush_abandoned_streams

    assert flush_abandoned_streams(5.0)
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.usage.output_tokens"] == 1
    assert span.attributes["gen_ai.request.stream"] is True


def test_a_stream_read_to_the_end_has_the_final_usage_and_finish_reason(google_genai_instrumentor, span_exporter, fake):
    fake.queue_sse(_stream_events())
    client = fake.gemini_client()
    text = "".join(chunk.text for chunk in client.models.generate_content_stream(model="gemini-2.0-flash",
                                                                                contents="Hi"))
    assert text == "Hello"
    a = only_span(span_exporter).attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (10, 2)
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["gen_ai.response.id"] == "s-1"
    assert isinstance(a["gen_ai.response.time_to_first_chunk"], float)


async def test_an_async_stream_abandoned_is_ended_when_collected(google_genai_instrumentor, span_exporter, fake):
    from otel_ai_cost.instrumentation import flush_abandoned_streams

    fake.queue_sse(_stream_events())
    client = fake.gemini_client()
    stream = await client.aio.models.generate_content_stream(model="gemini-2.0-flash", contents="Hi")
    async for _chunk in stream:
        break
    await stream.aclose()
    del stream, _chunk
    for _ in range(5):  # the loop's async-generator finalizer closes the SDK's inner generators
        await asyncio.sleep(0)
    gc.collect()
    assert flush_abandoned_streams(5.0)
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.usage.output_tokens"] == 1


# --- errors and robustness --------------------------------------------------------------------


async def test_an_async_api_error_ends_the_span_with_its_type(google_genai_instrumentor, span_exporter, fake):
    from google.genai import errors

    fake.queue_json(error_body(429, "Resource has been exhausted", "RESOURCE_EXHAUSTED"), status=429)
    client = fake.gemini_client()
    with pytest.raises(errors.ClientError):
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    span = only_span(span_exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ClientError"


def test_a_failure_reading_the_response_never_breaks_the_call(google_genai_instrumentor, span_exporter, fake,
                                                            monkeypatch, caplog):
    def broken(meta):
        raise RuntimeError("boom")

    monkeypatch.setattr(gg_attributes, "usage_from_metadata", broken)
    fake.queue_json(generate_response({"promptTokenCount": 10, "candidatesTokenCount": 5}, model="gemini-2.0-flash"))
    client = fake.gemini_client()
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.instrumentation"):
        response = client.models.generate_content(model="gemini-2.0-flash", contents="Hi")
    assert response.text == "Hello there"
    assert "internal error in google_genai generate response" in caplog.text
    span = only_span(span_exporter)
    assert span.status.status_code is StatusCode.UNSET
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_a_failure_preparing_the_span_sends_the_call_untouched(google_genai_instrumentor, span_exporter, fake,
                                                             monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(gg_calls, "request_attributes", broken)
    fake.queue_json(generate_response({"promptTokenCount": 10, "candidatesTokenCount": 5}, model="gemini-2.0-flash"))
    client = fake.gemini_client()
    assert client.models.generate_content(model="gemini-2.0-flash", contents="Hi").text == "Hello there"
    assert span_exporter.get_finished_spans() == ()
    assert len(fake.requests) == 1


def test_uninstrument_removes_the_wrappers(tracer_provider, meter_provider, span_exporter, fake):
    instrumentor = GoogleGenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    assert list(instrumentor.instrumentation_dependencies()) == ["google-genai >= 1.20.0, < 4"]
    instrumentor.uninstrument()
    fake.queue_json(generate_response({"promptTokenCount": 10, "candidatesTokenCount": 5}, model="gemini-2.0-flash"))
    client = fake.gemini_client()
    client.models.generate_content(model="gemini-2.0-flash", contents="Hi")
    assert span_exporter.get_finished_spans() == ()


def test_metrics_are_recorded(google_genai_instrumentor, metric_reader, fake):
    fake.queue_json(generate_response({"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 3},
                                      model="gemini-2.5-flash"))
    client = fake.gemini_client()
    client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    points = {}
    for rm in metric_reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    points.setdefault(metric.name, []).append(p)
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in points["gen_ai.client.token.usage"]}
    assert tokens == {"input": 10, "output": 8}
    (usage_point,) = points["gen_ai.client.token.usage"][:1]
    assert usage_point.attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert usage_point.attributes["gen_ai.operation.name"] == "generate_content"
    assert "gen_ai.client.operation.duration" in points


# --- estimation -------------------------------------------------------------------------------


def test_the_estimate_counts_text_tools_and_turns():
    decl = {"name": "get_weather", "description": "Get the weather", "parameters": {
        "type": "OBJECT", "properties": {"location": {"type": "STRING", "description": "The city"}}}}
    plain = gg.estimate_generate_input("Hello there", None)
    with_tools = gg.estimate_generate_input("Hello there", {"tools": [{"function_declarations": [decl]}]})
    two_turns = gg.estimate_generate_input(
        [{"role": "user", "parts": [{"text": "Hello there"}]}, {"role": "model", "parts": [{"text": "Hi"}]}], None)
    assert plain.method == "heuristic" and plain.tokens == 3  # 2 words + the request overhead
    # + get_weather (2) + "Get the weather" (3) + location (1) + "The city" (2) + 4 per declaration
    assert with_tools.tokens == plain.tokens + 12
    assert two_turns.tokens == plain.tokens + 1 + 3  # "Hi" + one more turn
    image = gg.estimate_generate_input([types.Part.from_bytes(data=b"not an image", mime_type="image/png")], None)
    assert image.tokens == 1 + 258


# --- budgets ----------------------------------------------------------------------------------


class Pipeline(conftest.Pipeline):
    """The shared harness (AICostSpanProcessor with budgets) with the google-genai instrumentor."""

    def __init__(self, fake, **processor_kwargs):
        super().__init__(GoogleGenAIInstrumentor(), **processor_kwargs)
        self.fake = fake
        self.client = fake.gemini_client()

    def generate(self, model="gemini-2.5-pro", **config):
        config.setdefault("max_output_tokens", 400)
        return self.client.models.generate_content(model=model, contents="Summarise the refund policy in one line.",
                                                   config=config)


@pytest.fixture
def pipeline(fake, close_later):
    return lambda **kwargs: close_later(Pipeline(fake, **kwargs))


def _estimate(pipeline) -> Decimal:
    p = pipeline()
    p.fake.queue_json(generate_response({"promptTokenCount": 12, "candidatesTokenCount": 20}, model="gemini-2.5-pro"))
    p.generate()
    span = p.exporter.get_finished_spans()[-1]
    assert span.attributes["ai_cost.estimate.method"] == "heuristic"
    assert span.attributes["ai_cost.estimate.input_tokens"] == gg.estimate_generate_input(
        "Summarise the refund policy in one line.", None).tokens
    p.close()
    return Decimal(str(span.attributes["ai_cost.estimate.amount"]))


def test_a_blocked_call_raises_before_the_request_is_sent(pipeline):
    estimate = _estimate(pipeline)
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", estimate / 2, lifetime())], budget_store=store)
    sent = len(p.fake.requests)
    with pytest.raises(BudgetExceededError):
        p.generate()
    assert len(p.fake.requests) == sent  # nothing was sent
    span = p.exporter.get_finished_spans()[-1]
    assert span.name == "generate_content gemini-2.5-pro"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["ai_cost.budget.decision"] == "block"
    assert span.attributes["error.type"] == "BudgetExceededError"
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert store.spent("team", "", ["lifetime"]).reserved == 0


async def test_a_blocked_async_call_and_stream_raise_before_sending(pipeline):
    estimate = _estimate(pipeline)
    p = pipeline(budgets=[Budget("team", estimate / 2, lifetime())], budget_store=MemoryBudgetStore())
    sent = len(p.fake.requests)
    with pytest.raises(BudgetExceededError):
        await p.client.aio.models.generate_content(model="gemini-2.5-pro", contents="Summarise the refund policy "
                                                   "in one line.", config={"max_output_tokens": 400})
    with pytest.raises(BudgetExceededError):
        for _ in p.client.models.generate_content_stream(model="gemini-2.5-pro", contents="Summarise the refund "
                                                         "policy in one line.", config={"max_output_tokens": 400}):
            pass
    assert len(p.fake.requests) == sent


def test_an_allowed_call_settles_its_actual_cost(pipeline):
    estimate = _estimate(pipeline)
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", estimate * 10, lifetime())], budget_store=store)
    p.fake.queue_json(generate_response({"promptTokenCount": 12, "candidatesTokenCount": 20}, model="gemini-2.5-pro"))
    p.generate()
    span = p.exporter.get_finished_spans()[-1]
    assert span.attributes["ai_cost.budget.decision"] == "allow"
    from otel_ai_cost.budgets._model import to_nanos

    assert store.spent("team", "", ["lifetime"]).spent == to_nanos((12 * Decimal("1.25") + 20 * Decimal(10)) / M)
    assert store.spent("team", "", ["lifetime"]).reserved == 0


def test_a_downgrade_sends_the_call_to_the_cheaper_model(pipeline):
    estimate = _estimate(pipeline)
    p = pipeline(budgets=[Budget("team", estimate * 2, lifetime(),
                                 thresholds=[Threshold(Decimal("0.3"), downgrade("gemini-2.5-flash"))])],
                 budget_store=MemoryBudgetStore())
    p.fake.queue_json(generate_response({"promptTokenCount": 12, "candidatesTokenCount": 20}, model="gemini-2.5-flash"))
    p.generate()
    assert p.fake.requests[-1]["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    span = p.exporter.get_finished_spans()[-1]
    assert span.name == "generate_content gemini-2.5-flash"
    assert span.attributes["gen_ai.request.model"] == "gemini-2.5-flash"
    assert span.attributes["ai_cost.budget.requested_model"] == "gemini-2.5-pro"
    assert span.attributes["ai_cost.budget.decision"] == "downgrade"
    assert cost(span) == (12 * Decimal("0.30") + 20 * Decimal("2.50")) / M


def test_a_throttle_delays_the_call(pipeline, monkeypatch):
    estimate = _estimate(pipeline)
    slept = []
    monkeypatch.setattr(gg_calls, "time", pytypes.SimpleNamespace(sleep=slept.append))
    p = pipeline(budgets=[Budget("team", estimate * 2, lifetime(),
                                 thresholds=[Threshold(Decimal("0.3"), throttle(1.5))])],
                 budget_store=MemoryBudgetStore())
    p.fake.queue_json(generate_response({"promptTokenCount": 12, "candidatesTokenCount": 20}, model="gemini-2.5-pro"))
    sent = len(p.fake.requests)
    p.generate()
    assert slept == [1.5] and len(p.fake.requests) == sent + 1
    assert p.exporter.get_finished_spans()[-1].attributes["ai_cost.budget.delay"] == 1.5
