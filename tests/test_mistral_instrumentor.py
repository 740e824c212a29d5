"""The Mistral instrumentor, driven through the real ``mistralai`` SDK (an ``httpx`` client).

Recorded interactions (openllmetry and openinference cassettes, see PROVENANCE-mistral-cohere-groq.json)
are replayed through ``httpx.MockTransport``: a non-streamed and a streamed ``mistral-tiny`` chat,
two streamed ``mistral-small-latest`` chats (one ending in a tool call) and a ``mistral-embed``
embedding. Features no recording covers (cached and reasoning tokens, errors) are answered by
``FakeAPI`` with bodies in Mistral's documented chat completion format (docs.mistral.ai API
reference: ``usage.prompt_tokens_details.cached_tokens`` for prompt caching,
``usage.completion_tokens_details.reasoning_tokens`` where reported).

List prices (USD per 1M tokens, as in the packaged catalog): mistral-tiny 0.25 in / 0.25 out;
mistral-small-latest 0.15 in / 0.015 cached / 0.60 out; mistral-embed 0.10;
magistral-medium-latest 1.50 in / 0.15 cached / 7.50 out.
"""
from __future__ import annotations

import asyncio
import gc
from decimal import Decimal

import httpx
import pytest

try:  # mistralai 2 and later
    from mistralai.client import Mistral
    from mistralai.client import errors as mistral_errors
except ImportError:  # mistralai 1.x
    from mistralai import Mistral
    from mistralai import models as mistral_errors
from opentelemetry.trace import StatusCode

from _cassettes import Cassette
from _fake_groq import FakeAPI, cassette_transport, sse
from conftest import Pipeline
from otel_ai_cost.instrumentation import _core
from otel_ai_cost.instrumentation.mistral import MistralInstrumentor, estimate_chat, estimate_embeddings
from otel_ai_cost.instrumentation.mistral import _calls as mistral_instrumentation

M = Decimal(1_000_000)
TRACELOOP = "traceloop/openllmetry/packages/opentelemetry-instrumentation-mistralai/tests/cassettes/"
ARIZE = ("Arize-ai/openinference/python/instrumentation/openinference-instrumentation-mistralai/tests/"
         "openinference/instrumentation/mistralai/cassettes/test_instrumentor/")
CHAT = TRACELOOP + "test_chat/test_mistralai_chat_legacy.yaml"
STREAM = TRACELOOP + "test_chat/test_mistralai_streaming_chat_legacy.yaml"
EMBED = TRACELOOP + "test_embeddings/test_mistral_embeddings_legacy.yaml"
ARIZE_STREAM = ARIZE + "test_synchronous_streaming_chat_completions_emits_expected_span[False].yaml"
ARIZE_TOOLS = (ARIZE + "test_synchronous_streaming_chat_completions_with_tool_call_response_emits_expected_spans"
               "[False].yaml")

# usage.jsonl facts for these recordings: (prompt_tokens, completion_tokens).
RECORDED = {CHAT: (11, 96), STREAM: (11, 80), EMBED: (10, 0), ARIZE_STREAM: (26, 4), ARIZE_TOOLS: (96, 23)}
MESSAGES = [{"role": "user", "content": "Summarise the refund policy in one line."}]


@pytest.fixture
def instrument(tracer_provider, meter_provider):
    instrumentor = MistralInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def _client(transport):
    return Mistral(api_key="test", client=httpx.Client(transport=transport),
                   async_client=httpx.AsyncClient(transport=transport))


def _sdk_kwargs(body: dict) -> dict:
    """The recorded JSON body as the SDK call's keyword arguments."""
    kwargs = dict(body)
    kwargs.pop("stream", None)
    if "input" in kwargs:
        kwargs["inputs"] = kwargs.pop("input")
    return kwargs


def _common_attrs(span, model, stream=False):
    a = span.attributes
    assert span.name == f"chat {model}"
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"]) == ("chat", "mistral_ai")
    assert a["gen_ai.request.model"] == model
    assert (a["server.address"], a["server.port"]) == ("api.mistral.ai", 443)
    assert a.get("gen_ai.request.stream", False) is stream
    assert a["gen_ai.response.model"] == model
    assert a["ai_cost.usage.source"] == "provider"
    assert a["ai_cost.pricing.status"] == "priced"


# --- recordings -------------------------------------------------------------------------------


def test_recorded_sync_chat(instrument, span_exporter):
    cassette = Cassette(CHAT)
    _client(cassette_transport(cassette)).chat.complete(**_sdk_kwargs(cassette.interactions[0].request_json))
    cassette.assert_done()
    (span,) = span_exporter.get_finished_spans()
    _common_attrs(span, "mistral-tiny")
    a = span.attributes
    assert a["gen_ai.response.id"] == "e9459fcd56c742e0875167c9926c6aae"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == RECORDED[CHAT]
    assert a["gen_ai.usage.cost.amount"] == float((11 * Decimal("0.25") + 96 * Decimal("0.25")) / M)  # 26.75e-6


def test_recorded_sync_stream(instrument, span_exporter):
    cassette = Cassette(STREAM)
    with _client(cassette_transport(cassette)).chat.stream(**_sdk_kwargs(cassette.interactions[0].request_json)) as s:
        events = list(s)
    cassette.assert_done()
    assert len(events) == 81  # every event reaches the caller
    (span,) = span_exporter.get_finished_spans()
    _common_attrs(span, "mistral-tiny", stream=True)
    a = span.attributes
    assert a["gen_ai.response.id"] == "6dc321029f5d4aa5899c1b38c9657a61"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == RECORDED[STREAM]
    assert a["gen_ai.usage.cost.amount"] == float((11 * Decimal("0.25") + 80 * Decimal("0.25")) / M)  # 22.75e-6


@pytest.mark.parametrize("file", [ARIZE_STREAM, ARIZE_TOOLS], ids=["text", "tool_call"])
def test_recorded_async_streams(instrument, span_exporter, file):
    cassette = Cassette(file)
    client = _client(cassette_transport(cassette))
    body = _sdk_kwargs(cassette.interactions[0].request_json)

    async def run():
        stream = await client.chat.stream_async(**body)
        return [event async for event in stream]

    asyncio.run(run())
    cassette.assert_done()
    (span,) = span_exporter.get_finished_spans()
    _common_attrs(span, "mistral-small-latest", stream=True)
    a = span.attributes
    inp, out = RECORDED[file]
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (inp, out)
    assert a["gen_ai.request.temperature"] == body["temperature"]
    assert a["gen_ai.request.top_p"] == 1.0
    assert a["gen_ai.response.finish_reasons"] == (("tool_calls",) if file == ARIZE_TOOLS else ("stop",))
    assert a["gen_ai.usage.cost.amount"] == float((inp * Decimal("0.15") + out * Decimal("0.60")) / M)


def test_recorded_async_embeddings(instrument, span_exporter):
    cassette = Cassette(EMBED)
    body = _sdk_kwargs(cassette.interactions[0].request_json)
    asyncio.run(_client(cassette_transport(cassette)).embeddings.create_async(**body))
    cassette.assert_done()
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert span.name == "embeddings mistral-embed"
    assert a["gen_ai.operation.name"] == "embeddings"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == RECORDED[EMBED]
    assert a["gen_ai.usage.cost.amount"] == float(10 * Decimal("0.10") / M)  # 1e-6


# --- documented format: cache, reasoning, errors --------------------------------------------------


def _completion(model, usage, finish_reason="stop"):
    return {"id": "cmpl-fake", "object": "chat.completion", "created": 1760000000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Within 30 days."},
                         "finish_reason": finish_reason}],
            "usage": usage}


def test_cached_and_reasoning_tokens(instrument, span_exporter):
    usage = {"prompt_tokens": 2000, "completion_tokens": 900, "total_tokens": 2900,
             "prompt_tokens_details": {"cached_tokens": 1500},
             "completion_tokens_details": {"reasoning_tokens": 700}}
    fake = FakeAPI().reply(_completion("magistral-medium-latest", usage))
    _client(fake.transport()).chat.complete(model="magistral-medium-latest", messages=MESSAGES, max_tokens=1000,
                                            random_seed=3, stop=["\n\n"])
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.seed"]) == (1000, 3)
    assert a["gen_ai.request.stop_sequences"] == ("\n\n",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (2000, 900)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1500
    assert a["gen_ai.usage.reasoning.output_tokens"] == 700
    expected = (500 * Decimal("1.5") + 1500 * Decimal("0.15") + 900 * Decimal("7.5")) / M  # 7.725e-3
    assert a["gen_ai.usage.cost.amount"] == float(expected)


def test_api_error_is_raised_unchanged_and_recorded(instrument, span_exporter):
    fake = FakeAPI().reply({"object": "error", "message": "Unauthorized", "type": "invalid_request_error"}, status=401)
    with pytest.raises(mistral_errors.SDKError):
        _client(fake.transport()).chat.complete(model="mistral-small-latest", messages=MESSAGES)
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "SDKError"
    assert "gen_ai.usage.input_tokens" not in span.attributes


def _stream_body():
    base = {"id": "s-1", "object": "chat.completion.chunk", "created": 1, "model": "mistral-small-latest"}
    return sse([
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Within 30 days"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "."}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19}},
    ])


def test_abandoned_stream_ends_its_span_once(instrument, span_exporter):
    fake = FakeAPI().reply(_stream_body())
    stream = _client(fake.transport()).chat.stream(model="mistral-small-latest", messages=MESSAGES)
    next(stream)
    next(stream)
    del stream
    gc.collect()
    assert _core.flush_abandoned_streams()
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert a["ai_cost.usage.source"] == "estimated"
    assert a["gen_ai.usage.input_tokens"] == estimate_chat("mistral-small-latest", MESSAGES).tokens
    assert a["gen_ai.usage.output_tokens"] == 4  # "Within 30 days": 14 characters -> ceil(14 / 4)


def test_stream_closed_early_ends_its_span(instrument, span_exporter):
    fake = FakeAPI().reply(_stream_body())
    stream = _client(fake.transport()).chat.stream(model="mistral-small-latest", messages=MESSAGES)
    next(stream)
    stream.close()
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["ai_cost.usage.source"] == "estimated"
    # No chunk reported a finish reason: none is recorded (not a placeholder "error"), and no error.
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert "error.type" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET


def test_an_internal_error_never_breaks_the_call(instrument, span_exporter, monkeypatch):
    monkeypatch.setattr(mistral_instrumentation, "_prepare", lambda *a, **k: 1 / 0)
    fake = FakeAPI().reply(_completion("mistral-small-latest", {"prompt_tokens": 1, "completion_tokens": 1,
                                                                "total_tokens": 2}))
    result = _client(fake.transport()).chat.complete(model="mistral-small-latest", messages=MESSAGES)
    assert result.choices[0].message.content == "Within 30 days."
    assert span_exporter.get_finished_spans() == ()


def test_uninstrument_unwraps(instrument, span_exporter):
    instrument.uninstrument()
    fake = FakeAPI().reply(_completion("mistral-small-latest", {"prompt_tokens": 1, "completion_tokens": 1,
                                                                "total_tokens": 2}))
    _client(fake.transport()).chat.complete(model="mistral-small-latest", messages=MESSAGES)
    assert span_exporter.get_finished_spans() == ()
    assert MistralInstrumentor().instrumentation_dependencies() == ("mistralai >= 1.0.0, < 4",)


# --- budgets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
def test_a_blocked_call_raises_before_any_request_is_sent(streamed):
    from otel_ai_cost import BudgetExceededError
    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime

    p = Pipeline(MistralInstrumentor(),
                 budgets=[Budget("team", Decimal("0.0001"), lifetime())],
                 budget_store=MemoryBudgetStore())
    try:
        fake = FakeAPI()
        client = _client(fake.transport())
        call = client.chat.stream if streamed else client.chat.complete
        with pytest.raises(BudgetExceededError):
            # worst case 1000 output tokens at 7.5/M = 7.5e-3 > the 1e-4 limit
            call(model="magistral-medium-latest", messages=MESSAGES, max_tokens=1000)
        assert fake.requests == []
        (span,) = p.spans()
        assert span.attributes["ai_cost.budget.decision"] == "block"
        assert span.attributes["ai_cost.estimate.input_tokens"] == estimate_chat("magistral-medium-latest",
                                                                                 MESSAGES).tokens
    finally:
        p.close()


# --- estimation -----------------------------------------------------------------------------------


def test_estimates_are_calibrated_on_the_recorded_requests():
    for file in (CHAT, ARIZE_STREAM, ARIZE_TOOLS):
        body = Cassette(file).interactions[0].request_json
        count = estimate_chat(body["model"], body["messages"], body.get("tools"))
        assert count.method == "heuristic"
        actual = RECORDED[file][0]
        assert abs(count.tokens - actual) / actual <= 0.10, (file, count.tokens, actual)
    body = Cassette(EMBED).interactions[0].request_json
    assert abs(estimate_embeddings(body["input"]).tokens - RECORDED[EMBED][0]) <= 2
