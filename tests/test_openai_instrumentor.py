"""The OpenAI instrumentor: configuration, request/response attributes, providers, raw responses,
errors, broken responses, metrics, content capture, uninstrument.

HTTP is faked with ``httpx2.MockTransport`` in the documented API format (tests/_fake_openai.py)
where no recording covers the case; the real ``openai`` SDK does the rest.
"""
from __future__ import annotations

import gc
import json

import httpx2
import openai
import pytest
import wrapt
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from _fake_openai import FakeOpenAI, chat_chunks, chat_completion, sse
from otel_ai_cost import _semconv as sc
from otel_ai_cost._request import current_request
from otel_ai_cost.errors import ConfigError
from otel_ai_cost.instrumentation import _core
from otel_ai_cost.instrumentation.openai import (
    OpenAIInstrumentor,
    include_usage_from_env,
    provider_from_host,
)

MESSAGES = [{"role": "user", "content": "Say this is a secret test"}]


def _is_wrapped(function) -> bool:
    return isinstance(function, wrapt.FunctionWrapper)


def _one_span(span_exporter):
    spans = span_exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return dict(spans[0].attributes), spans[0]


# --- configuration -------------------------------------------------------------------------


def test_instrumentation_dependencies():
    assert OpenAIInstrumentor().instrumentation_dependencies() == ("openai >= 1.40.0, < 4",)


@pytest.mark.parametrize("value,expected", [(None, True), ("", True), ("true", True), ("TRUE", True),
                                            ("false", False), (" False ", False)])
def test_include_usage_env(value, expected, monkeypatch):
    if value is None:
        monkeypatch.delenv("OTEL_AI_COST_OPENAI_INCLUDE_USAGE", raising=False)
    else:
        monkeypatch.setenv("OTEL_AI_COST_OPENAI_INCLUDE_USAGE", value)
    assert include_usage_from_env() is expected


def test_include_usage_env_malformed_names_the_variable(monkeypatch, tracer_provider):
    monkeypatch.setenv("OTEL_AI_COST_OPENAI_INCLUDE_USAGE", "yes please")
    with pytest.raises(ConfigError, match="OTEL_AI_COST_OPENAI_INCLUDE_USAGE"):
        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    assert not OpenAIInstrumentor().is_instrumented_by_opentelemetry
    assert not _is_wrapped(openai.resources.chat.completions.Completions.__dict__["create"])


# --- request and response attributes --------------------------------------------------------


def test_chat_request_and_response_attributes(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    result = fake.client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=100, temperature=0.5, top_p=0.9,
        stop="END", seed=42, n=2, frequency_penalty=0.1, presence_penalty=0.2, service_tier="flex",
        response_format={"type": "json_object"},
    )
    assert isinstance(result, openai.types.chat.ChatCompletion)
    attrs, span = _one_span(span_exporter)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["openai.api.type"] == "chat_completions"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.max_tokens"] == 100
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.stop_sequences"] == ("END",)
    assert attrs["gen_ai.request.seed"] == 42
    assert attrs["gen_ai.request.choice.count"] == 2
    assert attrs["gen_ai.request.frequency_penalty"] == 0.1
    assert attrs["gen_ai.request.presence_penalty"] == 0.2
    assert attrs["openai.request.service_tier"] == "flex"
    assert attrs["gen_ai.output.type"] == "json"
    assert "gen_ai.request.stream" not in attrs
    assert attrs["gen_ai.response.id"] == "chatcmpl-fake"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["openai.response.service_tier"] == "default"
    assert attrs["openai.response.system_fingerprint"] == "fp_fake"
    assert attrs["gen_ai.usage.input_tokens"] == 20
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 8
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 4


def test_choice_count_of_one_and_auto_tier_are_not_recorded(openai_instrumentor, span_exporter):
    FakeOpenAI().client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=1, service_tier="auto")
    attrs, _ = _one_span(span_exporter)
    assert "gen_ai.request.choice.count" not in attrs
    assert "openai.request.service_tier" not in attrs


def test_response_service_tier_changes_the_price(openai_instrumentor, span_exporter):
    def chat(body):
        return httpx2.Response(200, json=chat_completion(service_tier="priority", usage={
            "prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}))

    FakeOpenAI(chat=chat).client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                           service_tier="priority")
    attrs, _ = _one_span(span_exporter)
    assert attrs["openai.response.service_tier"] == "priority"
    assert attrs[sc.AI_COST_PRICING_SERVICE_TIER] == "priority"
    # gpt-4o-mini priority list price: input 0.25, output 1.00 per 1M -> 1000 x 0.25 + 100 x 1.00 = 350 per 1M
    assert attrs["gen_ai.usage.cost.amount"] == pytest.approx(350e-6, rel=1e-12)


def test_responses_and_embeddings_attributes(openai_instrumentor, span_exporter):
    client = FakeOpenAI().client()
    client.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=50,
                            text={"format": {"type": "json_schema", "name": "x", "schema": {}}})
    client.embeddings.create(model="text-embedding-3-small", input="hi", dimensions=2, encoding_format="float")
    responses, embeddings = span_exporter.get_finished_spans()
    r = dict(responses.attributes)
    assert responses.name == "chat gpt-4o-mini"
    assert r["openai.api.type"] == "responses"
    assert r["gen_ai.request.max_tokens"] == 50
    assert r["gen_ai.output.type"] == "json"
    assert r["gen_ai.usage.input_tokens"] == 22 and r["gen_ai.usage.output_tokens"] == 6
    e = dict(embeddings.attributes)
    assert embeddings.name == "embeddings text-embedding-3-small"
    assert e["gen_ai.operation.name"] == "embeddings"
    assert e["gen_ai.request.encoding_formats"] == ("float",)
    assert e["gen_ai.embeddings.dimension.count"] == 2
    assert e["gen_ai.usage.input_tokens"] == 5 and e["gen_ai.usage.output_tokens"] == 0
    assert e["gen_ai.usage.cost.amount"] == pytest.approx(5 * 0.02 / 1e6, rel=1e-12)  # 5 x $0.02 / 1M


async def test_async_create(openai_instrumentor, span_exporter):
    client = FakeOpenAI().async_client()
    result = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert result.choices[0].message.content == "Hello there"
    await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    await client.responses.create(model="gpt-4o-mini", input="hi")
    names = [s.name for s in span_exporter.get_finished_spans()]
    assert names == ["chat gpt-4o-mini", "embeddings text-embedding-3-small", "chat gpt-4o-mini"]
    assert all(s.attributes["gen_ai.usage.input_tokens"] > 0 for s in span_exporter.get_finished_spans())


# --- the request handed to the span processor ----------------------------------------------


class _RecordingProcessor(SpanProcessor):
    def __init__(self):
        self.requests = []

    def on_start(self, span, parent_context=None):
        self.requests.append(current_request())


def test_llm_request_is_visible_at_span_start_and_estimate_is_lazy(openai_instrumentor, tracer_provider):
    recorder = _RecordingProcessor()
    tracer_provider.add_span_processor(recorder)
    calls = []
    import otel_ai_cost.tokens as tokens

    original = tokens.estimate_chat_input

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    tokens.estimate_chat_input = spy
    try:
        FakeOpenAI().client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=64,
                                                       service_tier="flex")
        (request,) = recorder.requests
        assert (request.provider, request.operation, request.model) == ("openai", "chat", "gpt-4o-mini")
        assert request.max_output_tokens == 64
        assert request.service_tier == "flex"
        assert calls == []  # never counted on the hot path
        count = request.estimate_input()
        assert count.tokens > 0 and calls
    finally:
        tokens.estimate_chat_input = original
    assert current_request() is None


def test_ai_cost_span_processor_sets_estimate(openai_instrumentor, tracer_provider, span_exporter):
    from otel_ai_cost.processor import AICostSpanProcessor

    tracer_provider.add_span_processor(AICostSpanProcessor())
    FakeOpenAI().client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=64)
    attrs, _ = _one_span(span_exporter)
    assert attrs[sc.AI_COST_ESTIMATE_INPUT_TOKENS] > 0
    assert attrs[sc.AI_COST_ESTIMATE_OUTPUT_TOKENS] == 64


def test_generator_messages_are_not_consumed_by_the_estimate(openai_instrumentor, tracer_provider, span_exporter):
    from otel_ai_cost.processor import AICostSpanProcessor

    tracer_provider.add_span_processor(AICostSpanProcessor())
    fake = FakeOpenAI()
    fake.client().chat.completions.create(model="gpt-4o-mini", messages=(m for m in MESSAGES))
    assert fake.requests[0]["messages"] == MESSAGES


# --- providers -----------------------------------------------------------------------------


@pytest.mark.parametrize("host,provider", [
    ("api.openai.com", "openai"),
    ("myres.openai.azure.com", "azure.ai.openai"),
    ("myres.cognitiveservices.azure.com", "azure.ai.openai"),
    ("openrouter.ai", "openrouter"),
    ("api.groq.com", "groq"),
    ("api.together.xyz", "together_ai"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.mistral.ai", "mistral_ai"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("localhost", "openai"),
])
def test_provider_from_host(host, provider):
    assert provider_from_host(host) == provider


@pytest.mark.parametrize("base_url,provider,address,port", [
    ("https://api.groq.com/openai/v1", "groq", "api.groq.com", 443),
    ("https://api.deepseek.com/v1", "deepseek", "api.deepseek.com", 443),
    ("http://127.0.0.1:8080/v1", "openai", "127.0.0.1", 8080),
])
def test_provider_and_server_from_base_url(base_url, provider, address, port, openai_instrumentor, span_exporter):
    FakeOpenAI().client(base_url=base_url).chat.completions.create(model="some-model", messages=MESSAGES)
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.provider.name"] == provider
    assert attrs["server.address"] == address
    assert attrs["server.port"] == port


def test_azure_client_class_is_azure(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    client = openai.AzureOpenAI(api_key="x", base_url="https://gateway.example.com/openai/deployments/d",
                                api_version="2024-06-01", max_retries=0,
                                http_client=httpx2.Client(transport=httpx2.MockTransport(fake.handle)))
    client.chat.completions.create(model="d", messages=MESSAGES)
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.provider.name"] == "azure.ai.openai"


def test_openrouter_provider_cost_is_kept(openai_instrumentor, span_exporter):
    def chat(body):
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": 0.000123,
                 "is_byok": False}
        return httpx2.Response(200, json=chat_completion(model="openai/gpt-4o-mini", usage=usage))

    FakeOpenAI(chat=chat).client(base_url="https://openrouter.ai/api/v1").chat.completions.create(
        model="openai/gpt-4o-mini", messages=MESSAGES, extra_body={"usage": {"include": True}})
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.provider.name"] == "openrouter"
    assert attrs["gen_ai.usage.cost.amount"] == 0.000123
    assert attrs["gen_ai.usage.cost.source"] == "provider"
    assert attrs["gen_ai.usage.cost.currency"] == "USD"
    assert attrs["ai_cost.pricing.status"] == "provider"
    assert attrs["gen_ai.usage.input_tokens"] == 10


def test_unknown_model_has_no_amount(openai_instrumentor, span_exporter):
    def chat(body):
        return httpx2.Response(200, json=chat_completion(model="my-private-finetune-xyz"))

    FakeOpenAI(chat=chat).client().chat.completions.create(model="my-private-finetune-xyz", messages=MESSAGES)
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.pricing.status"] == "unknown_model"
    assert "gen_ai.usage.cost.amount" not in attrs
    assert attrs["gen_ai.usage.input_tokens"] == 20


# --- raw responses -------------------------------------------------------------------------


def test_with_raw_response_parses_once(openai_instrumentor, span_exporter, monkeypatch):
    from openai._legacy_response import LegacyAPIResponse

    parses = []
    original = LegacyAPIResponse._parse

    def counting(self, *args, **kwargs):
        parses.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LegacyAPIResponse, "_parse", counting)
    raw = FakeOpenAI().client().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert type(raw) is LegacyAPIResponse  # the very object the SDK returned
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20
    completion = raw.parse()
    assert completion is raw.parse()
    assert completion.choices[0].message.content == "Hello there"
    assert len(parses) == 1
    assert raw.headers["content-type"] == "application/json"


def test_with_raw_response_stream(openai_instrumentor, span_exporter):
    raw = FakeOpenAI().client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert raw.status_code == 200
    stream = raw.parse()
    assert all(chunk.choices for chunk in stream)
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20


async def test_async_with_raw_response(openai_instrumentor, span_exporter):
    raw = await FakeOpenAI().async_client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES)
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20
    assert raw.parse().usage.prompt_tokens == 20


def test_with_streaming_response(openai_instrumentor, span_exporter):
    client = FakeOpenAI().client()
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES) as resp:
        completion = resp.parse()
    assert completion.usage.prompt_tokens == 20
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20


def test_with_streaming_response_never_parsed(openai_instrumentor, span_exporter):
    client = FakeOpenAI().client()
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES) as resp:
        assert resp.status_code == 200
    del resp
    gc.collect()
    assert _core.flush_abandoned_streams()
    attrs, _ = _one_span(span_exporter)
    # The request was sent and its input billed: the input estimate is settled, marked estimated.
    assert attrs["ai_cost.usage.source"] == "estimated"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] == 0
    assert attrs["ai_cost.pricing.status"] == "priced"


def test_with_streaming_response_stream_outlives_the_response_object(openai_instrumentor, span_exporter):
    client = FakeOpenAI().client()
    resp = client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True).__enter__()
    stream = resp.parse()
    del resp
    gc.collect()
    assert _core.flush_abandoned_streams()
    assert span_exporter.get_finished_spans() == ()  # the stream, not the response, owns the span
    assert all(chunk.choices for chunk in stream)
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20


async def test_async_with_streaming_response(openai_instrumentor, span_exporter):
    client = FakeOpenAI().async_client()
    async with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True) as resp:
        stream = await resp.parse()
        chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20


# --- legacy completions ------------------------------------------------------------------


def test_legacy_completions_stream_with_injected_usage(openai_instrumentor, span_exporter):
    def handler(request):
        body = json.loads(request.read())
        assert body["stream_options"] == {"include_usage": True}
        base = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "davinci-002"}
        chunks = [{**base, "choices": [{"index": 0, "text": t, "finish_reason": None, "logprobs": None}]}
                  for t in ["Hello", " world"]]
        chunks.append({**base, "choices": [{"index": 0, "text": "", "finish_reason": "length", "logprobs": None}]})
        chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 16,
                                                        "total_tokens": 24}})
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse(chunks))

    client = openai.OpenAI(api_key="x", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    chunks = list(client.completions.create(model="davinci-002", prompt="Say hello", stream=True, max_tokens=16))
    assert len(chunks) == 3
    attrs, span = _one_span(span_exporter)
    assert span.name == "text_completion davinci-002"
    assert attrs["gen_ai.request.max_tokens"] == 16
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)
    assert attrs["gen_ai.usage.input_tokens"] == 8 and attrs["gen_ai.usage.output_tokens"] == 16
    # davinci-002: (8 + 16) x $2.00 / 1M
    assert attrs["gen_ai.usage.cost.amount"] == pytest.approx(48e-6, rel=1e-12)


# --- errors and broken responses -----------------------------------------------------------


def test_sdk_error_is_reraised_unchanged(openai_instrumentor, span_exporter):
    def chat(body):
        return httpx2.Response(429, json={"error": {"message": "Rate limit", "type": "rate_limit", "code": None}})

    with pytest.raises(openai.RateLimitError) as info:
        FakeOpenAI(chat=chat).client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.status_code == 429
    attrs, span = _one_span(span_exporter)
    assert attrs["error.type"] == "RateLimitError"
    assert span.status.status_code == StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


@pytest.mark.parametrize("mutate,usage_ok", [
    (lambda body: body.update(usage="garbage"), False),
    (lambda body: body.pop("choices"), True),
    (lambda body: body.update(usage={"prompt_tokens": "12", "completion_tokens": None}), False),
    (lambda body: body.update(choices="nope", model=7), True),
])
def test_broken_response_shape_never_raises(mutate, usage_ok, openai_instrumentor, span_exporter):
    def chat(body):
        payload = chat_completion()
        mutate(payload)
        return httpx2.Response(200, json=payload)

    fake = FakeOpenAI(chat=chat)
    result = fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert isinstance(result, openai.types.chat.ChatCompletion)
    expected = chat_completion()
    mutate(expected)
    assert result.id == expected["id"]
    attrs, span = _one_span(span_exporter)
    assert span.status.status_code == StatusCode.UNSET
    if usage_ok:
        assert attrs["gen_ai.usage.input_tokens"] == 20
    else:
        assert "gen_ai.usage.input_tokens" not in attrs
        assert attrs["ai_cost.pricing.status"] == "no_usage"


def test_broken_stream_chunk_never_raises(openai_instrumentor, span_exporter):
    def chat(body):
        chunks = chat_chunks(["a", "b"])
        chunks[1]["choices"] = "garbage"
        chunks.append({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                       "choices": [], "usage": "garbage"})
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse(chunks))

    chunks = list(FakeOpenAI(chat=chat).client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert len(chunks) == 5  # nothing hidden: the usage chunk is garbage, so we pass it on
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "estimated"


def test_internal_failure_leaves_the_call_untouched(openai_instrumentor, span_exporter, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("bug in otel-ai-cost")

    monkeypatch.setattr("otel_ai_cost.instrumentation.openai._calls.chat_request_attributes", boom)
    result = FakeOpenAI().client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert result.choices[0].message.content == "Hello there"
    assert span_exporter.get_finished_spans() == ()


# --- metrics -------------------------------------------------------------------------------


def _metrics(metric_reader):
    data = metric_reader.get_metrics_data()
    out = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                out[metric.name] = metric
    return out


def test_metrics(openai_instrumentor, span_exporter, metric_reader):
    client = FakeOpenAI().client()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    def chat(body):
        return httpx2.Response(500, json={"error": {"message": "boom", "type": "server_error"}})

    with pytest.raises(openai.InternalServerError):
        FakeOpenAI(chat=chat).client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    metrics = _metrics(metric_reader)
    tokens = metrics["gen_ai.client.token.usage"]
    assert tokens.unit == "{token}"
    points = {p.attributes["gen_ai.token.type"]: p for p in tokens.data.data_points}
    assert set(points) == {"input", "output"}
    assert points["input"].sum == 20 and points["output"].sum == 10
    assert tuple(points["input"].explicit_bounds) == _core.TOKEN_USAGE_BUCKETS
    assert points["input"].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert points["input"].attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert points["input"].attributes["gen_ai.provider.name"] == "openai"
    assert points["input"].attributes["server.address"] == "api.openai.com"

    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    by_error = {p.attributes.get("error.type"): p for p in duration.data.data_points}
    assert set(by_error) == {None, "InternalServerError"}
    assert tuple(by_error[None].explicit_bounds) == _core.DURATION_BUCKETS

    cost = metrics[sc.AI_COST_CLIENT_COST]
    assert cost.unit == sc.AI_COST_CLIENT_COST_UNIT
    (point,) = cost.data.data_points
    span_cost = span_exporter.get_finished_spans()[0].attributes["gen_ai.usage.cost.amount"]
    assert point.value == pytest.approx(span_cost)
    assert "gen_ai.client.operation.time_to_first_chunk" not in metrics  # no stream yet


def test_time_to_first_chunk_metric_for_streams(openai_instrumentor, span_exporter, metric_reader):
    list(FakeOpenAI().client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    ttfc = _metrics(metric_reader)["gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc.unit == "s"
    (point,) = ttfc.data.data_points
    assert point.count == 1
    assert tuple(point.explicit_bounds) == _core.DURATION_BUCKETS
    span_ttfc = span_exporter.get_finished_spans()[0].attributes["gen_ai.response.time_to_first_chunk"]
    assert point.sum == pytest.approx(span_ttfc)
    assert point.attributes["gen_ai.request.model"] == "gpt-4o-mini"


# --- content -------------------------------------------------------------------------------


def test_content_is_not_captured_by_default(openai_instrumentor, span_exporter):
    client = FakeOpenAI().client()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    client.responses.create(model="gpt-4o-mini", input="Say this is a secret test")
    for span in span_exporter.get_finished_spans():
        assert "gen_ai.input.messages" not in span.attributes
        assert "gen_ai.output.messages" not in span.attributes
        values = json.dumps([str(v) for v in span.attributes.values()])
        assert "secret" not in values and "Hello there" not in values and "This is a test" not in values


# --- uninstrument --------------------------------------------------------------------------


def test_uninstrument_restores_originals_and_reinstrument_works(tracer_provider, meter_provider, span_exporter):
    from openai.resources.chat.completions import AsyncCompletions, Completions
    from openai.resources.embeddings import Embeddings
    from openai.resources.responses import Responses

    originals = [Completions.create, AsyncCompletions.create, Embeddings.create, Responses.create]
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    assert _is_wrapped(Completions.__dict__["create"])
    instrumentor.uninstrument()
    assert [Completions.create, AsyncCompletions.create, Embeddings.create, Responses.create] == originals
    assert not _is_wrapped(Completions.__dict__["create"])

    FakeOpenAI().client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert span_exporter.get_finished_spans() == ()

    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        FakeOpenAI().client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    assert len(span_exporter.get_finished_spans()) == 1


def test_uninstrument_through_a_second_handle_unwraps(tracer_provider, meter_provider):
    # BaseInstrumentor is a singleton: OpenAIInstrumentor() again returns the same object and
    # re-runs __init__, which must not make it forget what it wrapped.
    from openai.resources.chat.completions import Completions

    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    assert _is_wrapped(Completions.__dict__["create"])
    OpenAIInstrumentor().uninstrument()
    assert not _is_wrapped(Completions.__dict__["create"])


def test_structured_output_parse_helpers_are_instrumented(openai_instrumentor, span_exporter):
    import pydantic

    class Answer(pydantic.BaseModel):
        colour: str

    def chat(body):
        completion = chat_completion()
        completion["choices"][0]["message"]["content"] = json.dumps({"colour": "red"})
        return httpx2.Response(200, json=completion)

    reply = FakeOpenAI(chat=chat).client().chat.completions.parse(
        model="gpt-4o-mini", messages=MESSAGES, response_format=Answer)
    assert reply.choices[0].message.parsed == Answer(colour="red")
    attrs, span = _one_span(span_exporter)
    assert span.name == "chat gpt-4o-mini"
    assert attrs["gen_ai.output.type"] == "json"
    assert attrs["gen_ai.usage.input_tokens"] == 20 and attrs["gen_ai.usage.cost.amount"] > 0

    response = FakeOpenAI().client().responses.parse(model="gpt-4o-mini", input="Say this is a test")
    assert response.output_text == "This is a test."
    assert span_exporter.get_finished_spans()[-1].attributes["gen_ai.usage.input_tokens"] == 22


# --- with_raw_response objects cached before instrument() / across uninstrument() ----------------
# The SDK caches ``with_raw_response`` / ``with_streaming_response`` per resource, bound to the
# ``create`` found the first time: the clients' ``request`` (looked up at call time) catches the calls
# no current wrapper saw, and a wrapper of an earlier instrument() calls the SDK untouched.


def test_with_raw_response_bound_before_instrument_is_instrumented(tracer_provider, meter_provider, span_exporter):
    fake = FakeOpenAI()
    client = fake.client()
    raw_chat = client.chat.completions.with_raw_response
    raw_responses = client.responses.with_raw_response
    raw_embeddings = client.embeddings.with_raw_response
    streaming_chat = client.chat.completions.with_streaming_response
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        raw_chat.create(model="gpt-4o-mini", messages=MESSAGES).parse()
        raw_responses.create(model="gpt-4o-mini", input="Say this is a test").parse()
        raw_embeddings.create(model="text-embedding-3-small", input="hi").parse()
        with streaming_chat.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as response:
            chunks = list(response.parse())
    finally:
        instrumentor.uninstrument()
    assert all(chunk.choices for chunk in chunks)  # the injected usage chunk is hidden, as usual
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}
    spans = span_exporter.get_finished_spans()
    assert [s.name for s in spans] == ["chat gpt-4o-mini", "chat gpt-4o-mini", "embeddings text-embedding-3-small",
                                       "chat gpt-4o-mini"]
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in spans] == [20, 22, 5, 20]
    assert all(s.attributes["gen_ai.provider.name"] == "openai" for s in spans)
    assert spans[0].attributes["server.address"] == "api.openai.com"


async def test_async_with_raw_response_bound_before_instrument_is_instrumented(tracer_provider, meter_provider,
                                                                              span_exporter):
    client = FakeOpenAI().async_client()
    raw_chat = client.chat.completions.with_raw_response
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        (await raw_chat.create(model="gpt-4o-mini", messages=MESSAGES)).parse()  # legacy: parse() is sync
    finally:
        instrumentor.uninstrument()
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20


def test_a_budget_blocks_a_with_raw_response_bound_before_instrument(tracer_provider, span_exporter):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from otel_ai_cost import AICostSpanProcessor, BudgetExceededError
    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime
    from otel_ai_cost.config import Settings

    fake = FakeOpenAI()
    raw_chat = fake.client().chat.completions.with_raw_response
    provider = TracerProvider()
    provider.add_span_processor(AICostSpanProcessor(settings=Settings(), budget_store=MemoryBudgetStore(),
                                                    budgets=[Budget("zero", 0, lifetime())]))
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with pytest.raises(BudgetExceededError):
            raw_chat.create(model="gpt-4o", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    assert fake.requests == []
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.budget.decision"] == "block"


def test_uninstrument_stops_a_with_raw_response_used_before(tracer_provider, meter_provider, span_exporter):
    client = FakeOpenAI().client()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES).parse()
        with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES) as r:
            r.parse()
    finally:
        instrumentor.uninstrument()
    assert len(span_exporter.get_finished_spans()) == 2
    span_exporter.clear()
    client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES).parse()
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES) as r:
        r.parse()
    assert span_exporter.get_finished_spans() == ()
    # instrumented again: one span per call through the old cached object, not two, not none
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES).parse()
    finally:
        instrumentor.uninstrument()
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20
