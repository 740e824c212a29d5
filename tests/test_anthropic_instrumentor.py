"""The Anthropic instrumentor on the real ``anthropic`` SDK against a faked API (``_fake_anthropic``,
Anthropic's documented formats) for what the recordings do not cover: request attributes, metrics,
the 1-hour cache write price, stream edge cases (abandoned, closed early, an error event), raw and
streaming responses, ``count_tokens``, the Vertex AI client, budgets and never breaking the call.
The recorded interactions are replayed in test_anthropic_cassettes.py.
"""
from __future__ import annotations

import gc
import types
from contextlib import closing
from decimal import Decimal

import anthropic
import httpx2
import pydantic
import pytest
import wrapt
from opentelemetry.trace import StatusCode

import conftest
from _fake_anthropic import FakeAnthropic
from otel_ai_cost import BudgetExceededError
from otel_ai_cost import _semconv as sc
from otel_ai_cost.budgets import Budget, MemoryBudgetStore, Threshold, downgrade, lifetime, throttle
from otel_ai_cost.instrumentation import _core
from otel_ai_cost.instrumentation import anthropic as anthropic_instrumentation
from otel_ai_cost.instrumentation._stainless import _raw as stainless_raw
from otel_ai_cost.instrumentation.anthropic import AnthropicInstrumentor, estimate_messages_input
from otel_ai_cost.instrumentation.anthropic import _calls as anthropic_calls

M = Decimal(1_000_000)
MODEL = "claude-sonnet-4-5"   # list price: input 3, output 15, cache read 0.30, write 5m 3.75, 1h 6 ($/1M)
MESSAGES = [{"role": "user", "content": "Summarise the refund policy in one line."}]

# The count_tokens result is recorded once the semconv registry declares its attribute.
COUNT_ATTRIBUTE_DECLARED = hasattr(sc, "AI_COST_COUNT_TOKENS_INPUT_TOKENS")

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


@pytest.fixture
def instrumented(tracer_provider, meter_provider):
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    instrumentor.uninstrument()


def _only(span_exporter):
    (span,) = span_exporter.get_finished_spans()
    return span, dict(span.attributes)


def _metric_points(reader, name):
    points = []
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    points += list(metric.data.data_points)
    return points


# --- request and response attributes, metrics ------------------------------------------------


def test_request_attributes_response_and_metrics(instrumented, span_exporter, metric_reader):
    fake = FakeAnthropic(usage={"input_tokens": 12, "output_tokens": 6}, response_model="claude-sonnet-4-5-20250929")
    message = fake.client().messages.create(
        model=MODEL, max_tokens=300, messages=MESSAGES, system="Be brief.", stop_sequences=["\n\nHuman:"],
        extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 40},  # anthropic 2.x: sampling via extra_body
    )
    assert fake.requests[0]["temperature"] == 0.2
    assert message.content[0].text == "Hello there, friend."
    span, a = _only(span_exporter)
    assert span.name == f"chat {MODEL}"
    assert span.kind.name == "CLIENT"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.request.model"] == MODEL
    assert a["gen_ai.request.max_tokens"] == 300
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.top_k"] == 40
    assert a["gen_ai.request.stop_sequences"] == ("\n\nHuman:",)
    assert (a["server.address"], a["server.port"]) == ("api.anthropic.com", 443)
    assert "gen_ai.request.stream" not in a
    assert a["gen_ai.response.model"] == "claude-sonnet-4-5-20250929"
    assert a["gen_ai.response.id"] == "msg_01FakeFakeFake"
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 6)
    assert a["gen_ai.usage.cost.amount"] == float((12 * 3 + 6 * 15) / M)
    # Content is never recorded.
    assert not any("refund" in str(v) or "Be brief" in str(v) or "friend" in str(v) for v in a.values())

    tokens = {p.attributes["gen_ai.token.type"]: p for p in _metric_points(metric_reader, "gen_ai.client.token.usage")}
    assert (tokens["input"].sum, tokens["output"].sum) == (12, 6)
    assert tokens["input"].attributes["gen_ai.provider.name"] == "anthropic"
    assert tokens["input"].attributes["gen_ai.response.model"] == "claude-sonnet-4-5-20250929"
    (duration,) = _metric_points(metric_reader, "gen_ai.client.operation.duration")
    assert duration.count == 1
    (cost,) = _metric_points(metric_reader, "ai_cost.client.cost")
    assert cost.value == float((12 * 3 + 6 * 15) / M)


def test_cache_writes_at_the_5_minute_and_1_hour_prices_and_reads(instrumented, span_exporter):
    # Anthropic's input_tokens (10) excludes the 500 cache reads and the 3000 cache writes.
    usage = {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 500,
             "cache_creation_input_tokens": 3000,
             "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}}
    FakeAnthropic(usage=usage).client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    _, a = _only(span_exporter)
    assert a["gen_ai.usage.input_tokens"] == 3510
    assert a["gen_ai.usage.cache_read.input_tokens"] == 500
    assert a["gen_ai.usage.cache_write.input_tokens"] == 3000
    assert a["gen_ai.usage.output_tokens"] == 20
    expected = (10 * 3 + 500 * Decimal("0.30") + 1000 * Decimal("3.75") + 2000 * 6 + 20 * 15) / M  # 16230e-6
    assert a["gen_ai.usage.cost.amount"] == float(expected)
    assert a["ai_cost.cost.cache_write"] == float((1000 * Decimal("3.75") + 2000 * 6) / M)


def test_web_searches_are_priced_per_search(instrumented, span_exporter):
    # Built from the documented format: usage.server_tool_use.web_search_requests, billed at
    # $10 per 1,000 searches on top of the tokens (no recording has a web search).
    usage = {"input_tokens": 2000, "output_tokens": 300, "server_tool_use": {"web_search_requests": 3}}
    FakeAnthropic(usage=usage).client().messages.create(
        model=MODEL, max_tokens=1000, messages=MESSAGES,
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}])
    _, a = _only(span_exporter)
    assert a["ai_cost.usage.web_search_requests"] == 3
    assert a["ai_cost.cost.web_search"] == 0.03
    assert a["gen_ai.usage.cost.amount"] == float((2000 * 3 + 300 * 15) / M + Decimal("0.03"))
    assert a["ai_cost.pricing.status"] == "priced"


def test_thinking_tokens_are_output_tokens(instrumented, span_exporter):
    usage = {"input_tokens": 40, "output_tokens": 300, "output_tokens_details": {"thinking_tokens": 250}}
    FakeAnthropic(usage=usage).client().messages.create(
        model=MODEL, max_tokens=2000, messages=MESSAGES, thinking={"type": "enabled", "budget_tokens": 1024})
    _, a = _only(span_exporter)
    assert (a["gen_ai.usage.output_tokens"], a["gen_ai.usage.reasoning.output_tokens"]) == (300, 250)
    assert a["gen_ai.usage.cost.amount"] == float((40 * 3 + 300 * 15) / M)  # thinking billed as output


def test_structured_output_parse(instrumented, span_exporter):
    class Answer(pydantic.BaseModel):
        answer: str

    fake = FakeAnthropic(text='{"answer": "four"}')
    parsed = fake.client().messages.parse(model=MODEL, max_tokens=100, messages=MESSAGES, output_format=Answer)
    assert parsed.parsed_output == Answer(answer="four")
    _, a = _only(span_exporter)
    assert a["gen_ai.output.type"] == "json"
    assert a["gen_ai.usage.input_tokens"] == 12


def test_an_http_error_ends_the_span_with_the_error(instrumented, span_exporter):
    fake = FakeAnthropic(error=(400, "invalid_request_error", "max_tokens: too large"))
    with pytest.raises(anthropic.BadRequestError):
        fake.client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    span, a = _only(span_exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert a["error.type"] == "BadRequestError"
    assert "gen_ai.usage.input_tokens" not in a and "gen_ai.usage.cost.amount" not in a


# --- streams -----------------------------------------------------------------------------------


def test_stream_usage_message_delta_totals_replace_message_start(instrumented, span_exporter):
    # message_start: input 12, cache read 100, output 1; message_delta: the final totals.
    fake = FakeAnthropic(usage={"input_tokens": 12, "output_tokens": 6, "cache_read_input_tokens": 100},
                         delta_usage={"input_tokens": 12, "cache_read_input_tokens": 100, "output_tokens": 42})
    stream = fake.client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    types_seen = [event.type for event in stream]
    assert types_seen[0] == "message_start" and types_seen[-1] == "message_stop"
    span, a = _only(span_exporter)
    assert a["gen_ai.request.stream"] is True
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (112, 42)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 100
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert a["gen_ai.response.time_to_first_chunk"] >= 0
    assert a["gen_ai.usage.cost.amount"] == float((12 * 3 + 100 * Decimal("0.30") + 42 * 15) / M)


async def test_async_stream_and_async_create(instrumented, span_exporter):
    fake = FakeAnthropic()
    client = fake.async_client()
    message = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert message.usage.input_tokens == 12
    stream = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    spans = span_exporter.get_finished_spans()
    assert [s.attributes["gen_ai.usage.output_tokens"] for s in spans] == [6, 6]
    assert [s.attributes.get("gen_ai.request.stream", False) for s in spans] == [False, True]


def test_stream_helper_text_stream_and_final_message(instrumented, span_exporter):
    fake = FakeAnthropic()
    with fake.client().messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == "Hello there, friend."
        assert stream.get_final_message().usage.output_tokens == 6
    span, a = _only(span_exporter)
    assert span.name == f"chat {MODEL}"
    assert a["gen_ai.request.stream"] is True
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 6)


def test_stream_helper_span_starts_when_entered_and_ends_once_on_early_exit(instrumented, span_exporter):
    fake = FakeAnthropic()
    manager = fake.client().messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert fake.requests == [] and span_exporter.get_finished_spans() == ()
    with manager as stream:
        next(iter(stream))  # message_start only: the user stops reading
    span, a = _only(span_exporter)
    assert a["gen_ai.usage.input_tokens"] == 12  # from message_start
    assert a["gen_ai.usage.output_tokens"] == 1   # message_start's early count: no message_delta was read


async def test_async_stream_helper(instrumented, span_exporter):
    fake = FakeAnthropic()
    async with fake.async_client().messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        text = [t async for t in stream.text_stream]
    assert "".join(text) == "Hello there, friend."
    _, a = _only(span_exporter)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 6)


def test_an_abandoned_stream_ends_its_span_when_collected(instrumented, span_exporter):
    fake = FakeAnthropic()
    stream = fake.client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    next(iter(stream))
    assert span_exporter.get_finished_spans() == ()
    del stream
    gc.collect()
    assert _core.flush_abandoned_streams()
    _, a = _only(span_exporter)
    assert a["gen_ai.usage.input_tokens"] == 12


def test_a_closed_stream_ends_its_span_once(instrumented, span_exporter):
    stream = FakeAnthropic().client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    stream.close()
    gc.collect()
    _core.flush_abandoned_streams()
    assert len(span_exporter.get_finished_spans()) == 1


def test_a_stream_closed_unread_is_charged_its_input_estimate(instrumented, span_exporter):
    # The request was sent: its input is billed even if no event was read (as Groq / Mistral do).
    expected_input = estimate_messages_input(MODEL, MESSAGES).tokens
    client = FakeAnthropic(network_body=True).client()
    client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True).close()
    with client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True):
        pass
    with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES):
        pass
    spans = span_exporter.get_finished_spans()
    assert len(spans) == 3
    for span in spans:
        a = span.attributes
        assert a["ai_cost.usage.source"] == "estimated"
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (expected_input, 0)
        assert a["gen_ai.usage.cost.amount"] == float(expected_input * 3 / M)


def test_an_error_event_in_the_stream_ends_the_span_with_the_error(instrumented, span_exporter):
    fake = FakeAnthropic(stream_error_after=1)
    stream = fake.client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    with pytest.raises(anthropic.APIStatusError) as raised:
        for _ in stream:
            pass
    span, a = _only(span_exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert type(raised.value) is anthropic.APIStatusError  # what the SDK raises, unchanged
    assert a["error.type"] == "overloaded_error"  # the provider's error type
    assert a["gen_ai.usage.input_tokens"] == 12  # message_start arrived before the error


# --- raw and streaming responses -----------------------------------------------------------------


def test_with_raw_response_stream(instrumented, span_exporter):
    raw = FakeAnthropic().client().messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    assert raw.headers["content-type"] == "text/event-stream"
    assert span_exporter.get_finished_spans() == ()
    assert [e.type for e in raw.parse()][-1] == "message_stop"
    _, a = _only(span_exporter)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 6)


def test_with_streaming_response(instrumented, span_exporter):
    # A body that arrives over the network: the response is returned unread, behind our proxy.
    client = FakeAnthropic(network_body=True).client()
    with client.messages.with_streaming_response.create(model=MODEL, max_tokens=100, messages=MESSAGES) as response:
        assert response.http_response.is_closed is False
        assert span_exporter.get_finished_spans() == ()
        assert response.parse().usage.output_tokens == 6
    _, a = _only(span_exporter)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 6)
    assert a["ai_cost.usage.source"] == "provider"
    span_exporter.clear()
    with client.messages.with_streaming_response.create(model=MODEL, max_tokens=100, messages=MESSAGES) as response:
        assert response.http_response.is_closed is False
        assert response.json()["usage"]["output_tokens"] == 6  # read without parse()
    _, a = _only(span_exporter)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 6)
    assert a["ai_cost.usage.source"] == "provider"
    assert a["gen_ai.usage.cost.amount"] == float((12 * 3 + 6 * 15) / M)


@pytest.mark.parametrize("read", ["json", "text", "read"])
def test_a_streaming_response_read_without_parse_is_charged_from_the_body_it_read(instrumented, span_exporter, read):
    client = FakeAnthropic(network_body=True).client()
    with client.messages.with_streaming_response.create(model=MODEL, max_tokens=100, messages=MESSAGES) as response:
        getattr(response, read)()
    _, a = _only(span_exporter)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 6)
    assert a["ai_cost.usage.source"] == "provider"
    assert a["gen_ai.response.id"] == "msg_01FakeFakeFake"


def test_a_streamed_sse_response_read_without_parse_is_charged_from_its_events(instrumented, span_exporter):
    fake = FakeAnthropic(network_body=True,
                         usage={"input_tokens": 12, "output_tokens": 6, "cache_read_input_tokens": 100})
    with fake.client().messages.with_streaming_response.create(
            model=MODEL, max_tokens=100, messages=MESSAGES, stream=True) as response:
        assert b"message_delta" in response.read()
    _, a = _only(span_exporter)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (112, 6)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 100
    assert a["ai_cost.usage.source"] == "provider"
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)


def test_a_raw_response_ended_without_its_body_is_charged_the_input_estimate(instrumented, span_exporter):
    expected_input = estimate_messages_input(MODEL, MESSAGES).tokens
    client = FakeAnthropic(network_body=True).client()
    # Closed unread; closed after iter_lines() (the lines are not kept: nothing to read usage from);
    # a raw stream dropped unparsed. The body the user did not read is never read for them.
    with client.messages.with_streaming_response.create(model=MODEL, max_tokens=100, messages=MESSAGES) as unread:
        pass
    with pytest.raises(httpx2.ResponseNotRead):
        _ = unread.http_response.content
    with client.messages.with_streaming_response.create(
            model=MODEL, max_tokens=100, messages=MESSAGES, stream=True) as lines:
        assert any("message_stop" in line for line in lines.iter_lines())
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    del raw
    gc.collect()
    assert _core.flush_abandoned_streams()
    spans = span_exporter.get_finished_spans()
    assert len(spans) == 3
    for span in spans:
        a = span.attributes
        assert a["ai_cost.usage.source"] == "estimated"
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (expected_input, 0)
        assert a["gen_ai.usage.cost.amount"] == float(expected_input * 3 / M)
        assert a["ai_cost.pricing.status"] == "priced"


def test_with_raw_response_ends_the_span_at_once_and_parse_returns_the_same_message(instrumented, span_exporter):
    raw = FakeAnthropic().client().messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    _, a = _only(span_exporter)  # the body was read: no need to wait for parse()
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 6)
    assert raw.parse() is raw.parse() and raw.parse().usage.output_tokens == 6
    assert len(span_exporter.get_finished_spans()) == 1


async def test_async_with_raw_response_and_an_unparsed_streaming_response(instrumented, span_exporter):
    client = FakeAnthropic(network_body=True).async_client()
    raw = await client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert (await raw.parse()).usage.input_tokens == 12
    async with client.messages.with_streaming_response.create(model=MODEL, max_tokens=100, messages=MESSAGES):
        pass  # closed unread: the request was sent, it is charged its input estimate
    async with client.messages.with_streaming_response.create(
            model=MODEL, max_tokens=100, messages=MESSAGES) as response:
        assert (await response.json())["usage"]["output_tokens"] == 6  # read without parse()
    parsed, unparsed, read = span_exporter.get_finished_spans()
    assert parsed.attributes["gen_ai.usage.input_tokens"] == 12
    assert unparsed.attributes["ai_cost.usage.source"] == "estimated"
    assert unparsed.attributes["gen_ai.usage.input_tokens"] == estimate_messages_input(MODEL, MESSAGES).tokens
    assert unparsed.attributes["gen_ai.usage.output_tokens"] == 0
    assert unparsed.status.status_code is StatusCode.UNSET
    assert (read.attributes["gen_ai.usage.input_tokens"], read.attributes["gen_ai.usage.output_tokens"]) == (12, 6)
    assert read.attributes["ai_cost.usage.source"] == "provider"


# --- count_tokens, Vertex, Bedrock ---------------------------------------------------------------


def test_count_tokens_has_a_span_without_usage_or_cost(instrumented, span_exporter):
    result = FakeAnthropic(count_tokens=14).client().messages.count_tokens(model=MODEL, messages=MESSAGES)
    assert result.input_tokens == 14
    span, a = _only(span_exporter)
    assert span.name == f"count_tokens {MODEL}"
    assert a.get("ai_cost.count_tokens.input_tokens") == (14 if COUNT_ATTRIBUTE_DECLARED else None)
    assert a["gen_ai.provider.name"] == "anthropic" and a["gen_ai.request.model"] == MODEL
    assert "gen_ai.operation.name" not in a  # not an inference: no budget, no cost enrichment
    assert not any(k.startswith("gen_ai.usage.") for k in a)


async def test_async_count_tokens(instrumented, span_exporter):
    result = await FakeAnthropic(count_tokens=9).async_client().messages.count_tokens(model=MODEL, messages=MESSAGES)
    assert result.input_tokens == 9
    _, a = _only(span_exporter)
    assert a.get("ai_cost.count_tokens.input_tokens") == (9 if COUNT_ATTRIBUTE_DECLARED else None)
    assert a["gen_ai.request.model"] == MODEL and "gen_ai.operation.name" not in a


def test_vertex_client(instrumented, span_exporter):
    fake = FakeAnthropic(usage={"input_tokens": 12, "output_tokens": 6})
    client = fake.vertex_client()
    client.messages.create(model="claude-sonnet-4-5@20250929", max_tokens=100, messages=MESSAGES)
    with client.messages.stream(model="claude-sonnet-4-5@20250929", max_tokens=100, messages=MESSAGES) as s:
        s.until_done()
    assert [r["_path"].rsplit(":", 1)[-1] for r in fake.requests] == ["rawPredict", "streamRawPredict"]
    for span in span_exporter.get_finished_spans():
        a = span.attributes
        assert a["gen_ai.provider.name"] == "gcp.vertex_ai"
        assert a["server.address"] == "us-east5-aiplatform.googleapis.com"
        assert a["gen_ai.request.model"] == "claude-sonnet-4-5@20250929"
        assert a["gen_ai.usage.cost.amount"] == float((12 * 3 + 6 * 15) / M)  # Vertex list price = Anthropic's


def test_bedrock_client_and_its_beta_resource_make_one_span_each(instrumented, span_exporter):
    fake = FakeAnthropic(usage={"input_tokens": 12, "output_tokens": 6})
    bedrock = anthropic.AnthropicBedrock(api_key="x", aws_region="us-east-1", max_retries=0,
                                         http_client=httpx2.Client(transport=fake.transport()))
    model = "anthropic.claude-haiku-4-5-20251001-v1:0"
    bedrock.messages.create(model=model, max_tokens=10, messages=MESSAGES)
    bedrock.beta.messages.create(model=model, max_tokens=10, messages=MESSAGES)
    assert [r["_path"] for r in fake.requests] == [f"/model/{model}/invoke"] * 2
    spans = span_exporter.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        a = span.attributes
        assert a["gen_ai.provider.name"] == "aws.bedrock"
        assert a["server.address"] == "bedrock-runtime.us-east-1.amazonaws.com"
        assert a["gen_ai.request.model"] == model
        assert a["gen_ai.usage.cost.amount"] == float((12 * 1 + 6 * 5) / M)  # Haiku 4.5 on Bedrock: 1 / 5 ($/1M)


def test_provider_names_of_the_clients():
    from otel_ai_cost.instrumentation.anthropic import provider_from_client

    assert provider_from_client(anthropic.Anthropic(api_key="x")) == "anthropic"
    assert provider_from_client(anthropic.AnthropicBedrock(api_key="x", aws_region="us-west-2")) == "aws.bedrock"
    assert provider_from_client(anthropic.AsyncAnthropicVertex(region="europe-west1", project_id="p",
                                                               access_token="t")) == "gcp.vertex_ai"


# --- never break the call; instrument / uninstrument -------------------------------------------


def test_an_internal_error_reading_the_response_never_breaks_the_call(instrumented, span_exporter, monkeypatch):
    def boom(message):
        raise RuntimeError("bug")

    monkeypatch.setattr(anthropic_calls, "message_outcome", boom)
    message = FakeAnthropic().client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert message.usage.input_tokens == 12
    span, a = _only(span_exporter)
    assert "gen_ai.usage.input_tokens" not in a


def test_an_internal_error_preparing_the_request_sends_it_uninstrumented(instrumented, span_exporter, monkeypatch):
    monkeypatch.setattr(anthropic_calls, "request_attributes", lambda *a, **k: 1 / 0)
    fake = FakeAnthropic()
    fake.client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert len(fake.requests) == 1 and span_exporter.get_finished_spans() == ()


def test_one_shot_iterables_are_sent_whole(instrumented, span_exporter):
    fake = FakeAnthropic()
    fake.client().messages.create(model=MODEL, max_tokens=100, messages=iter(MESSAGES))
    with fake.client().messages.stream(model=MODEL, max_tokens=100, messages=iter(MESSAGES)) as s:
        s.until_done()
    assert [r["messages"] for r in fake.requests] == [MESSAGES, MESSAGES]


def test_uninstrument_restores_the_sdk(tracer_provider, span_exporter):
    instrumentor = AnthropicInstrumentor()
    assert instrumentor.instrumentation_dependencies() == ("anthropic >= 0.40.0, < 3",)
    from anthropic import _response
    from anthropic.resources.messages import messages as messages_module

    properties = {(cls, name): cls.__dict__[name]
                  for cls in (anthropic.resources.messages.Messages, anthropic.resources.messages.AsyncMessages,
                              anthropic.resources.beta.messages.Messages)
                  for name in ("with_raw_response", "with_streaming_response")}
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        assert isinstance(anthropic.resources.messages.Messages.__dict__["create"], wrapt.FunctionWrapper)
        assert isinstance(anthropic.resources.beta.messages.Messages.__dict__["stream"], wrapt.FunctionWrapper)
        assert messages_module.to_raw_response_wrapper is not _response.to_raw_response_wrapper
    finally:
        instrumentor.uninstrument()
    for cls in (anthropic.resources.messages.Messages, anthropic.resources.messages.AsyncMessages,
                anthropic.resources.beta.messages.Messages):
        for name in ("create", "stream", "parse", "count_tokens"):
            assert not isinstance(cls.__dict__[name], wrapt.FunctionWrapper), (cls, name)
    for (cls, name), original in properties.items():
        assert cls.__dict__[name] is original, (cls, name)
    for cls in (anthropic._client.AnthropicWithRawResponse, anthropic._client.AsyncAnthropicWithStreamedResponse,
                anthropic.resources.beta.beta.BetaWithRawResponse):
        assert type(cls.__dict__["messages"]).__name__ == "cached_property", cls
    for name in ("to_raw_response_wrapper", "async_to_raw_response_wrapper", "to_streamed_response_wrapper",
                 "async_to_streamed_response_wrapper"):
        assert getattr(messages_module, name) is getattr(_response, name), name
    FakeAnthropic().client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert span_exporter.get_finished_spans() == ()


def test_uninstrument_stops_raw_responses_of_clients_used_while_instrumented(tracer_provider, span_exporter):
    # The SDK caches client.messages.with_raw_response, which captured messages.create when built.
    client = FakeAnthropic().client()
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        held = client.messages.with_raw_response
        held.create(model=MODEL, max_tokens=100, messages=MESSAGES).parse()
        with client.messages.with_streaming_response.create(model=MODEL, max_tokens=100, messages=MESSAGES) as r:
            r.parse()
        assert len(span_exporter.get_finished_spans()) == 2
    finally:
        instrumentor.uninstrument()
    span_exporter.clear()
    held.create(model=MODEL, max_tokens=100, messages=MESSAGES).parse()
    client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES).parse()
    with client.messages.with_streaming_response.create(model=MODEL, max_tokens=100, messages=MESSAGES) as r:
        r.parse()
    assert span_exporter.get_finished_spans() == ()


async def test_raw_responses_first_used_before_instrument_are_instrumented(tracer_provider, span_exporter):
    fake = FakeAnthropic()
    client, async_client = fake.client(), fake.async_client()
    # Built (and cached by the SDK) before instrument(): they hold the unwrapped create.
    for resource in (client.messages, client.beta.messages, async_client.messages):
        _ = resource.with_raw_response, resource.with_streaming_response
    _ = client.with_raw_response.messages, client.beta.with_streaming_response.messages
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES).parse()
        client.beta.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES).parse()
        client.with_raw_response.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES).parse()
        with client.beta.with_streaming_response.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES) as r:
            r.parse()
        with client.messages.with_streaming_response.create(model=MODEL, max_tokens=100, messages=MESSAGES) as r:
            r.parse()
        raw = await async_client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        await raw.parse()
        async with async_client.messages.with_streaming_response.create(
                model=MODEL, max_tokens=100, messages=MESSAGES) as r:
            await r.parse()
        # The property still returns one cached object per resource.
        assert client.messages.with_raw_response is client.messages.with_raw_response
    finally:
        instrumentor.uninstrument()
    spans = span_exporter.get_finished_spans()
    assert len(spans) == 7
    assert all(s.attributes["gen_ai.usage.output_tokens"] == 6 for s in spans)
    span_exporter.clear()
    client.with_raw_response.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES).parse()
    client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES).parse()
    assert span_exporter.get_finished_spans() == ()  # uninstrumented again


def test_a_foreign_wrapt_wrapper_installed_first_is_wrapped_over(tracer_provider, span_exporter, monkeypatch):
    # Another vendor's instrumentation wrapped Messages.create first. On wrapt 1.x its
    # FunctionWrapper is a wrapt.ObjectProxy: simulated here on the installed wrapt.
    calls = []

    def foreign(wrapped, instance, args, kwargs):
        calls.append(1)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper("anthropic.resources.messages", "Messages.create", foreign)
    try:
        proxy_base = next(k for k in type(anthropic.resources.messages.Messages.__dict__["create"]).__mro__
                          if k.__name__ == "ObjectProxy")
        monkeypatch.setattr(stainless_raw, "wrapt", types.SimpleNamespace(ObjectProxy=proxy_base))
        instrumentor = AnthropicInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider)
        try:
            FakeAnthropic().client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        finally:
            instrumentor.uninstrument()
    finally:
        wrapt_unwrap = anthropic.resources.messages.Messages.__dict__["create"]
        anthropic.resources.messages.Messages.create = wrapt_unwrap.__wrapped__
    assert calls == [1]
    _, a = _only(span_exporter)
    assert a["gen_ai.usage.output_tokens"] == 6
    assert not isinstance(anthropic.resources.messages.Messages.__dict__["create"], wrapt.FunctionWrapper)


def test_a_second_copy_of_the_instrumentor_does_not_wrap_twice(tracer_provider, span_exporter):
    import importlib.util
    import sys

    name = "otel_ai_cost.instrumentation._anthropic_copy"
    spec = importlib.util.spec_from_file_location(name, anthropic_instrumentation.__file__)
    copy = importlib.util.module_from_spec(spec)
    sys.modules[name] = copy
    try:
        spec.loader.exec_module(copy)
        ours = AnthropicInstrumentor()
        ours.instrument(tracer_provider=tracer_provider)
        other = copy.AnthropicInstrumentor()
        other.instrument(tracer_provider=tracer_provider)
        try:
            create = anthropic.resources.messages.Messages.__dict__["create"]
            assert isinstance(create, wrapt.FunctionWrapper)
            assert not isinstance(create.__wrapped__, wrapt.FunctionWrapper)  # one layer: ours
            FakeAnthropic().client().messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
            assert len(span_exporter.get_finished_spans()) == 1
        finally:
            other.uninstrument()
            ours.uninstrument()
    finally:
        del sys.modules[name]
    assert not isinstance(anthropic.resources.messages.Messages.__dict__["create"], wrapt.FunctionWrapper)


# --- estimation ----------------------------------------------------------------------------------


def test_estimate_is_heuristic_and_counts_system_tools_and_thinking():
    base = estimate_messages_input(MODEL, MESSAGES)
    assert base.method == "heuristic" and 10 <= base.tokens <= 25
    with_system = estimate_messages_input(MODEL, MESSAGES, system="You are a careful assistant.")
    assert with_system.tokens > base.tokens
    tool = {"name": "get_weather", "description": "Get the weather", "input_schema": {
        "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}
    # The tool-use system prompt Anthropic documents for Sonnet 4.5: 346 tokens (auto), 313 (forced).
    assert estimate_messages_input(MODEL, MESSAGES, tools=[tool]).tokens - base.tokens > 346
    forced = estimate_messages_input(MODEL, MESSAGES, tools=[tool], tool_choice={"type": "any"}).tokens
    assert forced == estimate_messages_input(MODEL, MESSAGES, tools=[tool]).tokens - (346 - 313)
    thinking = estimate_messages_input(MODEL, MESSAGES, thinking={"type": "enabled", "budget_tokens": 1024})
    assert thinking.tokens > base.tokens


# --- budgets -------------------------------------------------------------------------------------


class Pipeline(conftest.Pipeline):
    """The shared harness with the Anthropic instrumentor and the fake Anthropic API."""

    def __init__(self, **processor_kwargs):
        super().__init__(AnthropicInstrumentor(), **processor_kwargs)
        self.fake = FakeAnthropic()


@pytest.fixture
def pipeline(close_later):
    return lambda **kwargs: close_later(Pipeline(**kwargs))


@pytest.fixture(scope="module")
def estimate() -> Decimal:
    """The processor's estimate of one MESSAGES call to MODEL with max_tokens=400 (no budget)."""
    with closing(Pipeline()) as p:
        p.fake.client().messages.create(model=MODEL, max_tokens=400, messages=MESSAGES)
        (span,) = p.spans()
    a = span.attributes
    assert a["ai_cost.estimate.method"] == "heuristic"
    assert a["ai_cost.estimate.input_tokens"] == estimate_messages_input(MODEL, MESSAGES).tokens
    assert a["ai_cost.estimate.output_tokens"] == 400
    return Decimal(str(a["ai_cost.estimate.amount"]))


def _assert_blocked(p):
    assert p.fake.requests == []  # nothing was sent
    (span,) = p.spans()
    assert span.name == f"chat {MODEL}"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "BudgetExceededError"
    assert span.attributes["ai_cost.budget.decision"] == "block"
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_a_blocked_create_raises_before_the_request_is_sent(pipeline, estimate):
    p = pipeline(budgets=[Budget("team", estimate / 2, lifetime())], budget_store=MemoryBudgetStore())
    with pytest.raises(BudgetExceededError):
        p.fake.client().messages.create(model=MODEL, max_tokens=400, messages=MESSAGES)
    _assert_blocked(p)


def test_a_blocked_stream_helper_raises_on_enter_before_the_request_is_sent(pipeline, estimate):
    p = pipeline(budgets=[Budget("team", estimate / 2, lifetime())], budget_store=MemoryBudgetStore())
    manager = p.fake.client().messages.stream(model=MODEL, max_tokens=400, messages=MESSAGES)
    with pytest.raises(BudgetExceededError):
        with manager:
            pass
    _assert_blocked(p)


async def test_async_blocked_create_and_stream_helper(pipeline, estimate):
    p = pipeline(budgets=[Budget("team", estimate / 2, lifetime())], budget_store=MemoryBudgetStore())
    client = p.fake.async_client()
    with pytest.raises(BudgetExceededError):
        await client.messages.create(model=MODEL, max_tokens=400, messages=MESSAGES, stream=True)
    _assert_blocked(p)
    with pytest.raises(BudgetExceededError):
        async with client.messages.stream(model=MODEL, max_tokens=400, messages=MESSAGES):
            pass
    assert p.fake.requests == [] and len(p.spans()) == 2


def test_an_allowed_call_settles_its_actual_cost(pipeline, estimate):
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", estimate * 10, lifetime())], budget_store=store)
    with p.fake.client().messages.stream(model=MODEL, max_tokens=400, messages=MESSAGES) as s:
        s.until_done()
    (span,) = p.spans()
    assert span.attributes["ai_cost.budget.decision"] == "allow"
    spent = store.spent("team", "", ["lifetime"])
    assert spent.reserved == 0
    assert Decimal(spent.spent) / Decimal(10**9) == (12 * 3 + 6 * 15) / M


def test_count_tokens_is_never_budgeted(pipeline):
    p = pipeline(budgets=[Budget("none", "0", lifetime())], budget_store=MemoryBudgetStore())
    assert p.fake.client().messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens == 14
    (span,) = p.spans()
    assert not any(k.startswith(("ai_cost.budget.", "ai_cost.estimate.", "gen_ai.usage.")) for k in span.attributes)


def test_a_downgrade_sends_create_and_stream_helper_to_the_cheaper_model(pipeline, estimate):
    p = pipeline(
        budgets=[Budget("team", estimate * 2, lifetime(),
                        thresholds=[Threshold(Decimal("0.3"), downgrade("claude-haiku-4-5"))])],
        budget_store=MemoryBudgetStore(),
    )
    client = p.fake.client()
    client.messages.create(model=MODEL, max_tokens=400, messages=MESSAGES)
    with client.messages.stream(model=MODEL, max_tokens=400, messages=MESSAGES) as s:
        s.until_done()
    assert [r["model"] for r in p.fake.requests] == ["claude-haiku-4-5", "claude-haiku-4-5"]
    for span in p.spans():
        assert span.name == "chat claude-haiku-4-5"
        assert span.attributes["ai_cost.budget.requested_model"] == MODEL
        # Haiku 4.5 list price: input 1, output 5 ($/1M).
        assert span.attributes["gen_ai.usage.cost.amount"] == float((12 * 1 + 6 * 5) / M)


def test_a_throttle_delays_the_call(pipeline, estimate, monkeypatch):
    slept = []
    monkeypatch.setattr(anthropic_calls, "time", types.SimpleNamespace(sleep=slept.append))
    p = pipeline(
        budgets=[Budget("team", estimate * 2, lifetime(), thresholds=[Threshold(Decimal("0.3"), throttle(1.5))])],
        budget_store=MemoryBudgetStore(),
    )
    p.fake.client().messages.create(model=MODEL, max_tokens=400, messages=MESSAGES)
    assert slept == [1.5] and len(p.fake.requests) == 1


def test_the_bedrock_client_is_budgeted_by_provider(pipeline):
    p = pipeline(budgets=[Budget("bedrock", "0", lifetime(), selector={"gen_ai.provider.name": "aws.bedrock"})],
                 budget_store=MemoryBudgetStore())
    bedrock = anthropic.AnthropicBedrock(api_key="x", aws_region="us-east-1", max_retries=0,
                                         http_client=httpx2.Client(transport=p.fake.transport()))
    with pytest.raises(BudgetExceededError):
        bedrock.messages.create(model="anthropic.claude-haiku-4-5-20251001-v1:0", max_tokens=10, messages=MESSAGES)
    p.fake.client().messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)  # not Bedrock: allowed
    assert len(p.fake.requests) == 1


async def test_async_downgrade_of_the_stream_helper(pipeline, estimate):
    p = pipeline(
        budgets=[Budget("team", estimate * 2, lifetime(),
                        thresholds=[Threshold(Decimal("0.3"), downgrade("claude-haiku-4-5"))])],
        budget_store=MemoryBudgetStore(),
    )
    async with p.fake.async_client().messages.stream(model=MODEL, max_tokens=400, messages=MESSAGES) as s:
        await s.until_done()
    assert [r["model"] for r in p.fake.requests] == ["claude-haiku-4-5"]
    (span,) = p.spans()
    assert span.name == "chat claude-haiku-4-5"
    assert span.attributes["gen_ai.usage.cost.amount"] == float((12 * 1 + 6 * 5) / M)


async def test_async_throttle_sleeps_before_sending(pipeline, estimate, monkeypatch):
    slept = []

    async def fake_sleep(seconds):
        slept.append((seconds, len(p.fake.requests)))

    monkeypatch.setattr(anthropic_calls, "_async_sleep", fake_sleep)
    p = pipeline(
        budgets=[Budget("team", estimate * 2, lifetime(), thresholds=[Threshold(Decimal("0.3"), throttle(2.5))])],
        budget_store=MemoryBudgetStore(),
    )
    client = p.fake.async_client()
    await client.messages.create(model=MODEL, max_tokens=400, messages=MESSAGES)
    async with client.messages.stream(model=MODEL, max_tokens=400, messages=MESSAGES) as s:
        await s.until_done()
    assert slept == [(2.5, 0), (2.5, 1)]  # each call waited before it was sent
    assert len(p.fake.requests) == 2


def test_raw_responses_and_streams_ended_unread_are_charged_to_the_budget(pipeline, estimate):
    # Each of these requests was sent: its hold is settled with the input estimate, not released.
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", estimate * 10, lifetime())], budget_store=store)
    p.fake.network_body = True
    client = p.fake.client()
    with client.messages.with_streaming_response.create(model=MODEL, max_tokens=400, messages=MESSAGES):
        pass
    client.messages.create(model=MODEL, max_tokens=400, messages=MESSAGES, stream=True).close()
    assert len(p.fake.requests) == 2
    spans = p.spans()
    assert [s.attributes["ai_cost.usage.source"] for s in spans] == ["estimated", "estimated"]
    spent = store.spent("team", "", ["lifetime"])
    assert spent.reserved == 0
    expected_input = estimate_messages_input(MODEL, MESSAGES).tokens
    assert Decimal(spent.spent) / Decimal(10**9) == 2 * expected_input * 3 / M
