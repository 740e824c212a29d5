"""The Cohere instrumentor (API v2), driven through the real ``cohere`` SDK (an ``httpx`` client).

Recorded v2 interactions (openllmetry cassettes, see PROVENANCE-mistral-cohere-groq.json) are
replayed through ``httpx.MockTransport``: chats with and without streaming, a tool-call round trip,
a streamed tool call, an embed call, and a streamed ``command-r-08-2024`` chat that reports
``cached_tokens``. Every one of them reports ``usage.tokens`` far above ``usage.billed_units``
(input 69 vs 7): the span must carry the billed units, and the cost must be billed units x price.
What no recording covers (an API error, a truncated stream) is built from Cohere's documented v2
format (docs.cohere.com/reference/chat and chat-stream).

List prices (USD per 1M tokens, cohere.com/pricing and the packaged catalog):
  command-r-08-2024 0.15 in / 0.60 out; embed-english-light-v3.0 0.10;
  ``command`` (legacy) 1.00 in / 2.00 out; ``command-r`` 0.15 / 0.60 (also priced through a user catalog
  entry at command-r-08-2024's prices in the tool-call test).
"""
from __future__ import annotations

import asyncio
import gc
import json
from decimal import Decimal

import cohere
import httpx
import pytest
from opentelemetry.trace import StatusCode

from _cassettes import Cassette
from _fake_groq import FakeAPI, cassette_transport, sse
from conftest import Pipeline, instrumenting
from otel_ai_cost.instrumentation import _core
from otel_ai_cost.instrumentation.cohere import CohereInstrumentor, estimate_chat, estimate_embed
from otel_ai_cost.instrumentation.cohere import _calls as cohere_calls

M = Decimal(1_000_000)
BASE = "traceloop/openllmetry/packages/opentelemetry-instrumentation-cohere/tests/cassettes/"
CHAT = BASE + "test_chat/test_cohere_v2_chat_legacy.yaml"
STREAM = BASE + "test_chat/test_cohere_v2_chat_legacy_with_streaming.yaml"
TOOLS = BASE + "test_chat/test_cohere_v2_chat_legacy_with_tool_calls_and_history.yaml"
TOOLS_STREAM = BASE + "test_chat/test_cohere_v2_chat_legacy_with_tool_calls_and_streaming.yaml"
EMBED = BASE + "test_embed/test_cohere_v2_embed_legacy.yaml"
CACHED_STREAM = ("traceloop/openllmetry/packages/opentelemetry-instrumentation-langchain/"
                 "tests/cassettes/test_chains/test_stream.yaml")

# usage.jsonl facts, per (file, interaction): billed (input, output) and, to show the trap, tokens.
BILLED = {(CHAT, 0): (7, 88), (STREAM, 0): (7, 109), (TOOLS, 0): (62, 28), (TOOLS, 1): (94, 27),
          (TOOLS_STREAM, 0): (62, 28), (EMBED, 0): (208, 0), (CACHED_STREAM, 0): (12, 64)}
TOKENS = {(CHAT, 0): (69, 89), (STREAM, 0): (69, 110), (TOOLS, 0): (968, 83), (TOOLS, 1): (1094, 102),
          (TOOLS_STREAM, 0): (968, 83), (CACHED_STREAM, 0): (212, 64)}
MESSAGES = [{"role": "user", "content": "Summarise the refund policy in one line."}]


@pytest.fixture
def instrument(tracer_provider, meter_provider):
    with instrumenting(CohereInstrumentor(), tracer_provider, meter_provider, start=True) as run:
        yield run


def _sync(transport):
    return cohere.ClientV2(api_key="test", httpx_client=httpx.Client(transport=transport))


def _async(transport):
    return cohere.AsyncClientV2(api_key="test", httpx_client=httpx.AsyncClient(transport=transport))


def _body(cassette, i=0):
    body = dict(cassette.interactions[i].request_json)
    return body, body.pop("stream", False)


def _assert_chat_span(span, file, index, model, stream=False):
    a = span.attributes
    assert span.name == f"chat {model}"
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"]) == ("chat", "cohere")
    assert a["gen_ai.request.model"] == model
    assert (a["server.address"], a["server.port"]) == ("api.cohere.com", 443)
    assert a.get("gen_ai.request.stream", False) is stream
    billed = BILLED[(file, index)]
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == billed
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) != TOKENS[(file, index)]
    assert "gen_ai.usage.cache_read.input_tokens" not in a
    assert a["ai_cost.usage.source"] == "provider"


# --- recordings ---------------------------------------------------------------------------------


def test_sync_chat_reports_the_billed_units(instrument, span_exporter):
    cassette = Cassette(CHAT)
    body, _ = _body(cassette)
    _sync(cassette_transport(cassette)).chat(**body)
    cassette.assert_done()
    (span,) = span_exporter.get_finished_spans()
    _assert_chat_span(span, CHAT, 0, "command")
    assert span.attributes["gen_ai.response.id"] == "83e3e297-264b-478e-9b22-5058386292ed"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("COMPLETE",)
    # "command" (a legacy model) is priced at $1/$2 per M (cohere.com/pricing): 7 billed in + 88 billed out.
    assert span.attributes["ai_cost.pricing.status"] == "priced"
    assert span.attributes["gen_ai.usage.cost.amount"] == float((7 * Decimal(1) + 88 * Decimal(2)) / M)  # 183e-6


def test_sync_stream_reads_message_end_usage(instrument, span_exporter):
    cassette = Cassette(STREAM)
    body, stream = _body(cassette)
    assert stream
    events = list(_sync(cassette_transport(cassette)).chat_stream(**body))
    cassette.assert_done()
    assert events[0].type == "message-start" and events[-1].type == "message-end"  # nothing hidden
    (span,) = span_exporter.get_finished_spans()
    _assert_chat_span(span, STREAM, 0, "command", stream=True)
    assert span.attributes["gen_ai.response.id"] == "6cd6ce61-bb3b-46f6-907e-fcfab45e51b6"


def test_async_stream_with_cached_tokens_prices_the_billed_units(instrument, span_exporter):
    cassette = Cassette(CACHED_STREAM)
    body, _ = _body(cassette)
    client = _async(cassette_transport(cassette))

    async def run():
        return [event async for event in client.chat_stream(**body)]

    asyncio.run(run())
    cassette.assert_done()
    (span,) = span_exporter.get_finished_spans()
    _assert_chat_span(span, CACHED_STREAM, 0, "command-r-08-2024", stream=True)
    a = span.attributes
    assert a["gen_ai.request.temperature"] == 0.75
    assert a["gen_ai.response.finish_reasons"] == ("COMPLETE",)
    # 12 billed input + 64 billed output, not the 212 processed tokens (208 of them cached).
    assert a["gen_ai.usage.cost.amount"] == float((12 * Decimal("0.15") + 64 * Decimal("0.60")) / M)  # 40.2e-6


def _catalog_with_command_r():
    from otel_ai_cost.pricing import Catalog, default_catalog
    from otel_ai_cost.pricing._catalog import model_from_dict

    entry = model_from_dict({"id": "command-r", "provider": "cohere", "prices": {"input": "0.15", "output": "0.6"}})
    return Catalog(list(default_catalog().entries()) + [entry])


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_tool_call_round_trip(instrument, span_exporter, use_async):
    instrument(catalog=_catalog_with_command_r())
    cassette = Cassette(TOOLS)
    transport = cassette_transport(cassette)
    bodies = [_body(cassette, i)[0] for i in range(2)]
    if use_async:
        client = _async(transport)

        async def run():
            for body in bodies:
                await client.chat(**body)

        asyncio.run(run())
    else:
        client = _sync(transport)
        for body in bodies:
            client.chat(**body)
    cassette.assert_done()
    first, second = span_exporter.get_finished_spans()
    _assert_chat_span(first, TOOLS, 0, "command-r")
    _assert_chat_span(second, TOOLS, 1, "command-r")
    assert first.attributes["gen_ai.response.finish_reasons"] == ("TOOL_CALL",)
    assert first.attributes["gen_ai.usage.cost.amount"] == float((62 * Decimal("0.15") + 28 * Decimal("0.6")) / M)
    assert second.attributes["gen_ai.usage.cost.amount"] == float((94 * Decimal("0.15") + 27 * Decimal("0.6")) / M)


def test_streamed_tool_call(instrument, span_exporter):
    cassette = Cassette(TOOLS_STREAM)
    body, _ = _body(cassette)
    events = list(_sync(cassette_transport(cassette)).chat_stream(**body))
    cassette.assert_done()
    assert any(e.type == "tool-call-start" for e in events)
    (span,) = span_exporter.get_finished_spans()
    _assert_chat_span(span, TOOLS_STREAM, 0, "command-r", stream=True)
    assert span.attributes["gen_ai.response.finish_reasons"] == ("TOOL_CALL",)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_embed_reports_billed_input_tokens(instrument, span_exporter, use_async):
    cassette = Cassette(EMBED)
    body, _ = _body(cassette)
    transport = cassette_transport(cassette)
    if use_async:
        asyncio.run(_async(transport).embed(**body))
    else:
        _sync(transport).embed(**body)
    cassette.assert_done()
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert span.name == "embeddings embed-english-light-v3.0"
    assert a["gen_ai.operation.name"] == "embeddings"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == BILLED[(EMBED, 0)]
    assert a["gen_ai.usage.cost.amount"] == float(208 * Decimal("0.10") / M)  # 20.8e-6


# --- documented format: errors, abandoned streams -------------------------------------------------


def test_api_error_is_raised_unchanged_and_recorded(instrument, span_exporter):
    fake = FakeAPI().reply({"message": "invalid api token"}, status=401)
    with pytest.raises(cohere.UnauthorizedError):
        _sync(fake.transport()).chat(model="command-r-08-2024", messages=MESSAGES)
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "UnauthorizedError"
    assert "gen_ai.usage.input_tokens" not in span.attributes


def _events():
    return sse([
        {"id": "m-1", "type": "message-start", "delta": {"message": {"role": "assistant", "content": []}}},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Within 30 days"}}}},
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE",
                                          "usage": {"billed_units": {"input_tokens": 9, "output_tokens": 4},
                                                    "tokens": {"input_tokens": 71, "output_tokens": 5}}}},
    ], event_names=True)


def test_abandoned_stream_ends_its_span_once(instrument, span_exporter):
    fake = FakeAPI().reply(_events())
    stream = _sync(fake.transport()).chat_stream(model="command-r-08-2024", messages=MESSAGES)
    assert fake.requests == []  # a generator: nothing is sent before the first next()
    next(stream)
    next(stream)
    next(stream)
    del stream
    gc.collect()
    assert _core.flush_abandoned_streams()
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert a["ai_cost.usage.source"] == "estimated"
    assert a["gen_ai.usage.input_tokens"] == estimate_chat(MESSAGES).tokens
    assert a["gen_ai.usage.output_tokens"] == 4  # "Within 30 days": 14 characters -> ceil(14 / 4)
    assert a["gen_ai.response.id"] == "m-1"


def test_async_stream_closed_early_ends_its_span(instrument, span_exporter):
    fake = FakeAPI().reply(_events())
    client = _async(fake.transport())

    async def run():
        stream = client.chat_stream(model="command-r-08-2024", messages=MESSAGES)
        await stream.__anext__()
        await stream.close()

    asyncio.run(run())
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["ai_cost.usage.source"] == "estimated"


def test_an_internal_error_never_breaks_the_call(instrument, span_exporter, monkeypatch):
    monkeypatch.setattr(cohere_calls, "_prepare", lambda *a, **k: 1 / 0)
    fake = FakeAPI().reply(_events())
    events = list(_sync(fake.transport()).chat_stream(model="command-r-08-2024", messages=MESSAGES))
    assert len(events) == 5
    assert span_exporter.get_finished_spans() == ()


def test_uninstrument_unwraps(instrument, span_exporter):
    instrument().uninstrument()
    fake = FakeAPI().reply(_events())
    list(_sync(fake.transport()).chat_stream(model="command-r-08-2024", messages=MESSAGES))
    assert span_exporter.get_finished_spans() == ()
    assert CohereInstrumentor().instrumentation_dependencies() == ("cohere >= 5.9.0, < 8",)


# --- budgets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["chat", "chat_stream", "async_chat_stream"])
def test_a_blocked_call_raises_before_any_request_is_sent(method):
    from otel_ai_cost import BudgetExceededError
    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime

    p = Pipeline(CohereInstrumentor(),
                 budgets=[Budget("team", Decimal("0.0001"), lifetime())],
                 budget_store=MemoryBudgetStore())
    try:
        fake = FakeAPI()
        kwargs = dict(model="command-a-03-2025", messages=MESSAGES, max_tokens=1000)
        with pytest.raises(BudgetExceededError):
            # worst case 1000 output tokens at 10/M = 10e-3 > the 1e-4 limit
            if method == "async_chat_stream":
                _async(fake.transport()).chat_stream(**kwargs)
            else:
                getattr(_sync(fake.transport()), method)(**kwargs)
        assert fake.requests == []
        (span,) = p.spans()
        assert span.attributes["ai_cost.budget.decision"] == "block"
        assert span.attributes["ai_cost.estimate.input_tokens"] == estimate_chat(MESSAGES).tokens
    finally:
        p.close()


# --- estimation -----------------------------------------------------------------------------------


def test_estimates_of_billed_input_are_calibrated_on_the_recordings():
    for (file, index), (billed_in, _) in BILLED.items():
        body, _ = _body(Cassette(file), index)
        if "texts" in body:
            count = estimate_embed(body["texts"])
        else:
            count = estimate_chat(body["messages"], body.get("tools"))
        assert count.method == "heuristic"
        assert abs(count.tokens - billed_in) / billed_in <= 0.10, (file, index, count.tokens, billed_in)


def test_stream_error_on_first_read_ends_the_span_with_the_error(instrument, span_exporter):
    fake = FakeAPI().reply({"message": "invalid api token"}, status=401)
    stream = _sync(fake.transport()).chat_stream(model="command-r-08-2024", messages=MESSAGES)
    with pytest.raises(cohere.UnauthorizedError):
        next(stream)
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "UnauthorizedError"
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_a_stream_dropped_before_its_first_read_sent_nothing_and_costs_nothing(instrument, span_exporter):
    fake = FakeAPI().reply(_events())
    stream = _sync(fake.transport()).chat_stream(model="command-r-08-2024", messages=MESSAGES)
    del stream
    gc.collect()
    assert _core.flush_abandoned_streams()
    assert fake.requests == []
    (span,) = span_exporter.get_finished_spans()
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert "gen_ai.usage.cost.amount" not in span.attributes


def test_request_attributes_and_response(instrument, span_exporter):
    # A v2 chat response in the documented format (docs.cohere.com/reference/chat).
    fake = FakeAPI().reply({
        "id": "r-1", "finish_reason": "MAX_TOKENS",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "Within"}]},
        "usage": {"billed_units": {"input_tokens": 9, "output_tokens": 3},
                  "tokens": {"input_tokens": 80, "output_tokens": 3}},
    })
    _sync(fake.transport()).chat(model="command-a-03-2025", messages=MESSAGES, max_tokens=3, temperature=0.3,
                                 p=0.8, k=40, stop_sequences=["END"], seed=11, frequency_penalty=0.1,
                                 presence_penalty=0.2, response_format={"type": "json_object"})
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.temperature"], a["gen_ai.request.top_p"]) == (3, 0.3, 0.8)
    assert (a["gen_ai.request.top_k"], a["gen_ai.request.seed"]) == (40, 11)
    assert a["gen_ai.request.stop_sequences"] == ("END",)
    assert (a["gen_ai.request.frequency_penalty"], a["gen_ai.request.presence_penalty"]) == (0.1, 0.2)
    assert a["gen_ai.output.type"] == "json"
    assert (a["gen_ai.response.id"], a["gen_ai.response.finish_reasons"]) == ("r-1", ("MAX_TOKENS",))
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (9, 3)
    assert a["gen_ai.usage.cost.amount"] == float((9 * Decimal("2.5") + 3 * Decimal("10")) / M)  # 52.5e-6


# --- content capture (opt-in) ---------------------------------------------------------------------


def _content_of(span):
    return {k: json.loads(v) for k, v in span.attributes.items()
            if k in ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages")}


def test_no_content_is_recorded_unless_asked_for(instrument, span_exporter, monkeypatch):
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    cassette = Cassette(TOOLS)
    client = _sync(cassette_transport(cassette))
    for i in range(2):
        client.chat(**_body(cassette, i)[0])
    assert all(_content_of(s) == {} for s in span_exporter.get_finished_spans())


def test_recorded_tool_round_trip_content(instrument, span_exporter, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    instrument(catalog=_catalog_with_command_r())
    cassette = Cassette(TOOLS)
    client = _sync(cassette_transport(cassette))
    for i in range(2):
        client.chat(**_body(cassette, i)[0])
    first, second = span_exporter.get_finished_spans()
    calls = [{"type": "tool_call", "id": "get_time_dp3men9jrvhf", "name": "get_time",
              "arguments": {"location": "Tokyo"}},
             {"type": "tool_call", "id": "get_weather_d7arjgsc96yf", "name": "get_weather",
              "arguments": {"location": "Tokyo"}}]
    text = "What is the weather and current time in Tokyo?"
    question = {"role": "user", "parts": [{"type": "text", "content": text}]}
    assert _content_of(first) == {
        "gen_ai.input.messages": [question],
        "gen_ai.output.messages": [{"role": "assistant", "finish_reason": "tool_call", "parts": [
            {"type": "reasoning", "content": "I will search for the current time and weather in Tokyo."}] + calls}],
    }
    assert _content_of(second)["gen_ai.input.messages"] == [
        question, {"role": "assistant", "parts": calls},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "get_time_dp3men9jrvhf",
                                    "response": "4:20 PM"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "get_weather_d7arjgsc96yf",
                                    "response": "Sunny 20 degrees Celsius"}]}]
    assert _content_of(second)["gen_ai.output.messages"] == [{"role": "assistant", "finish_reason": "stop", "parts": [
        {"type": "text",
         "content": "The current time in Tokyo is 4:20 PM and the weather is sunny with a temperature of 20°C."}]}]


def test_recorded_streamed_tool_call_content(instrument, span_exporter, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    cassette = Cassette(TOOLS_STREAM)
    events = list(_sync(cassette_transport(cassette)).chat_stream(**_body(cassette)[0]))
    (span,) = span_exporter.get_finished_spans()
    (message,) = _content_of(span)["gen_ai.output.messages"]
    assert message["finish_reason"] == "tool_call"
    get = _core.get  # the SDK's event models (dicts in older SDKs)
    plan = "".join(get(get(e.delta, "message"), "tool_plan") for e in events if e.type == "tool-plan-delta")
    assert plan and message["parts"][0] == {"type": "reasoning", "content": plan}
    calls = [p for p in message["parts"] if p["type"] == "tool_call"]
    started = [get(get(e.delta, "message"), "tool_calls") for e in events if e.type == "tool-call-start"]
    assert [(c["id"], c["name"]) for c in calls] == [(get(s, "id"), get(get(s, "function"), "name")) for s in started]
    assert all(c["arguments"] == {"location": "Tokyo"} for c in calls)


def test_a_stream_closed_early_records_only_what_was_read(instrument, span_exporter, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    fake = FakeAPI().reply(_events())
    stream = _sync(fake.transport()).chat_stream(model="command-r-08-2024", messages=MESSAGES)
    for _ in range(3):
        next(stream)
    stream.close()
    (span,) = span_exporter.get_finished_spans()
    assert _content_of(span) == {
        "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": MESSAGES[0]["content"]}]}],
        "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "Within 30 days"}],
                                    "finish_reason": "error"}],
    }


# --- a v2 generation that failed (finish reason ERROR / TIMEOUT): one rule for responses and streams --
# As for v1 (tests/test_cohere_v1_instrumentor.py): the span is an error with error.type the finish
# reason, and only the billed units the provider reported are charged (usage.tokens is what the
# model processed, not what is billed). command-r-08-2024: $0.15 in / $0.60 out per 1M (cohere.com/pricing).
R08_IN, R08_OUT = Decimal("0.15"), Decimal("0.60")
FAILED_USAGE = [
    ("ERROR", {"billed_units": {"input_tokens": 9, "output_tokens": 3},
               "tokens": {"input_tokens": 80, "output_tokens": 3}}, (9, 3)),
    ("TIMEOUT", {"billed_units": {"input_tokens": 9, "output_tokens": 0},
                 "tokens": {"input_tokens": 80, "output_tokens": 0}}, (9, 0)),
    ("ERROR", {"tokens": {"input_tokens": 80, "output_tokens": 3}}, None),  # processed, not billed
    ("TIMEOUT", {"tokens": {"input_tokens": 80, "output_tokens": 0}}, None),
]


def _assert_failed(span, reason, billed):
    a = span.attributes
    assert (span.status.status_code, a["error.type"]) == (StatusCode.ERROR, reason)
    assert a["gen_ai.response.finish_reasons"] == (reason,)
    if billed is None:
        assert "gen_ai.usage.input_tokens" not in a and "gen_ai.usage.cost.amount" not in a
        return
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == billed
    assert a["ai_cost.usage.source"] == "provider"
    assert a["gen_ai.usage.cost.amount"] == float((billed[0] * R08_IN + billed[1] * R08_OUT) / M)  # 3.15e-6 / 1.35e-6


@pytest.mark.parametrize(("reason", "usage", "billed"), FAILED_USAGE)
def test_a_v2_response_finished_in_error_fails_the_span_and_charges_only_billed_units(
        instrument, span_exporter, reason, usage, billed):
    fake = FakeAPI().reply({"id": "r-9", "finish_reason": reason,
                            "message": {"role": "assistant", "content": [{"type": "text", "text": "Wit"}]},
                            "usage": usage})
    response = _sync(fake.transport()).chat(model="command-r-08-2024", messages=MESSAGES)
    assert response.finish_reason == reason  # the caller gets the response unchanged
    (span,) = span_exporter.get_finished_spans()
    _assert_failed(span, reason, billed)


def _failed_events(reason, usage):
    return sse([
        {"id": "m-9", "type": "message-start", "delta": {"message": {"role": "assistant", "content": []}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Within 30 days"}}}},
        {"type": "message-end", "delta": {"finish_reason": reason, "usage": usage}},
    ], event_names=True)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("reason", "usage", "billed"), FAILED_USAGE)
def test_a_v2_stream_finished_in_error_fails_the_span_and_charges_only_billed_units(
        instrument, span_exporter, reason, usage, billed, use_async):
    fake = FakeAPI().reply(_failed_events(reason, usage))
    if use_async:
        async def run():
            return [e async for e in _async(fake.transport()).chat_stream(model="command-r-08-2024",
                                                                          messages=MESSAGES)]
        events = asyncio.run(run())
    else:
        events = list(_sync(fake.transport()).chat_stream(model="command-r-08-2024", messages=MESSAGES))
    assert [e.type for e in events] == ["message-start", "content-delta", "message-end"]
    (span,) = span_exporter.get_finished_spans()
    _assert_failed(span, reason, billed)
    assert span.attributes["gen_ai.response.id"] == "m-9"
