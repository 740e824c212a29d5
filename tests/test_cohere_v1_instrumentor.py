"""The Cohere instrumentor, API v1 (``Client`` / ``AsyncClient``: ``chat``, ``chat_stream``,
``generate``, ``generate_stream``), driven through the real ``cohere`` SDK over ``httpx.MockTransport``.

Recorded v1 interactions (openllmetry cassettes, listed in fixtures/recorded/PROVENANCE-cohere-v1.json) are
replayed: a chat (2024, cohere 5.5.3), a streamed chat (2025, cohere 5.6.1; JSON lines, the usage
in ``stream-end``'s ``response.meta``) and a generate call. What no recording covers (generate
streams, error events, tool calls, API errors) is built from the v1 formats the SDK parses (its
types ``StreamedChatResponse``, ``GenerateStreamedResponse``, ``NonStreamedChatResponse``,
``Generation``; docs.cohere.com/v1/reference/chat, chat-stream, generate, generate-stream).

Usage is the billed units (``meta.billed_units``), not ``meta.tokens``: the recorded stream bills 7
input tokens where ``tokens.input_tokens`` is 69.

Prices (USD per 1M tokens), all from the packaged catalog. The recordings use model ``command``
(retired), priced at Command's list price, 1.00 in / 2.00 out (cohere.com/pricing, 2024);
command-r-08-2024 0.15 / 0.60, command-a-03-2025 2.50 / 10.00.
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
from _fake_groq import FakeAPI, cassette_transport
from conftest import Pipeline, instrumenting
from otel_ai_cost.instrumentation import _core
from otel_ai_cost.instrumentation._core import _content
from otel_ai_cost.instrumentation.cohere import CohereInstrumentor, estimate_generate, estimate_v1_chat

M = Decimal(1_000_000)
BASE = "traceloop/openllmetry/packages/opentelemetry-instrumentation-cohere/tests/cassettes/"
CHAT = BASE + "test_chat/test_cohere_chat_legacy.yaml"
STREAM = BASE + "test_chat/test_cohere_chat_legacy_with_streaming.yaml"
GENERATE = BASE + "test_completion/test_cohere_completion_legacy.yaml"

# usage.jsonl facts: billed (input, output) and, where reported, tokens.
BILLED = {CHAT: (58, 119), STREAM: (7, 115), GENERATE: (7, 129)}
TOKENS = {CHAT: (69, 119), STREAM: (69, 116)}
COMMAND_IN, COMMAND_OUT = Decimal("1.00"), Decimal("2.00")  # Command, cohere.com/pricing (2024)
ENV = _content.CAPTURE_ENV


def _command_cost(file):
    billed_in, billed_out = BILLED[file]
    return float((billed_in * COMMAND_IN + billed_out * COMMAND_OUT) / M)


@pytest.fixture
def instrument(tracer_provider, meter_provider):
    with instrumenting(CohereInstrumentor(), tracer_provider, meter_provider, start=True) as run:
        yield run


def _sync(transport):
    return cohere.Client(api_key="test", httpx_client=httpx.Client(transport=transport))


def _async(transport):
    return cohere.AsyncClient(api_key="test", httpx_client=httpx.AsyncClient(transport=transport))


def _body(cassette):
    body = dict(cassette.interactions[0].request_json)
    return body, body.pop("stream", False)


def _assert_span(span, file, operation, stream=False):
    a = span.attributes
    assert span.name == f"{operation} command"
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"], a["gen_ai.request.model"]) == (
        operation, "cohere", "command")
    assert (a["server.address"], a["server.port"]) == ("api.cohere.com", 443)
    assert a.get("gen_ai.request.stream", False) is stream
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == BILLED[file]
    if file in TOKENS:
        assert BILLED[file] != TOKENS[file]  # the trap: meta.tokens is not what is billed
    assert a["ai_cost.usage.source"] == "provider"
    assert a["ai_cost.pricing.status"] == "priced"
    assert a["gen_ai.usage.cost.amount"] == _command_cost(file)
    assert span.status.status_code is not StatusCode.ERROR
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # capture is opt-in


# --- recordings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_recorded_chat_prices_the_billed_units(instrument, span_exporter, use_async):
    cassette = Cassette(CHAT)
    body, _ = _body(cassette)
    transport = cassette_transport(cassette)
    if use_async:
        response = asyncio.run(_async(transport).chat(**body))
    else:
        response = _sync(transport).chat(**body)
    cassette.assert_done()
    assert response.text.startswith("Arrrr, matey!")
    (span,) = span_exporter.get_finished_spans()
    _assert_span(span, CHAT, "chat")
    # 58 x 1.00 + 119 x 2.00 = 296 per 1M = 296e-6
    assert span.attributes["gen_ai.usage.cost.amount"] == 296e-6
    assert span.attributes["gen_ai.response.id"] == "440f51f4-3e47-44b6-a5d7-5ba33edcfc58"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("COMPLETE",)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_recorded_chat_stream_reads_stream_end_meta(instrument, span_exporter, use_async):
    cassette = Cassette(STREAM)
    body, stream = _body(cassette)
    assert stream
    transport = cassette_transport(cassette)
    if use_async:
        client = _async(transport)

        async def run():
            return [event async for event in client.chat_stream(**body)]

        events = asyncio.run(run())
    else:
        events = list(_sync(transport).chat_stream(**body))
    cassette.assert_done()
    recorded = [line for line in cassette.interactions[0].content.decode().splitlines() if line.strip()]
    assert len(events) == len(recorded) == 109  # every event reaches the caller, none hidden
    assert events[0].event_type == "stream-start" and events[-1].event_type == "stream-end"
    (span,) = span_exporter.get_finished_spans()
    _assert_span(span, STREAM, "chat", stream=True)
    assert span.attributes["gen_ai.usage.cost.amount"] == 237e-6  # 7 x 1.00 + 115 x 2.00 = 237 per 1M
    assert span.attributes["gen_ai.response.id"] == "12c00d26-e3bb-48c0-8c49-262155b57d64"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("COMPLETE",)
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_recorded_generate_is_a_text_completion(instrument, span_exporter, use_async):
    cassette = Cassette(GENERATE)
    body, _ = _body(cassette)
    transport = cassette_transport(cassette)
    if use_async:
        response = asyncio.run(_async(transport).generate(**body))
    else:
        response = _sync(transport).generate(**body)
    cassette.assert_done()
    assert response.generations[0].text.startswith(" Arrrr")
    (span,) = span_exporter.get_finished_spans()
    _assert_span(span, GENERATE, "text_completion")
    assert span.attributes["gen_ai.usage.cost.amount"] == 265e-6  # 7 x 1.00 + 129 x 2.00 = 265 per 1M
    assert span.attributes["gen_ai.response.id"] == "64c671fc-c536-41fc-adbd-5f7c81177371"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("COMPLETE",)


def test_copied_recordings_match_their_provenance():
    """Every v1 recording listed in PROVENANCE-cohere-v1.json is here, byte for byte (git blob hash)."""
    import hashlib

    from _cassettes import RECORDED

    provenance = json.loads((RECORDED / "PROVENANCE-cohere-v1.json").read_text(encoding="utf-8"))
    assert sorted(provenance) == sorted([CHAT, STREAM, GENERATE])
    for path, entry in provenance.items():
        data = (RECORDED / path).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == entry["blob"], path
        assert path.startswith(entry["repo"] + "/") and path.endswith(entry["path"])


def test_the_input_estimate_of_the_recorded_requests():
    # The 2025 stream and the generate call bill the prompt alone: 7 tokens, as estimated. The 2024
    # chat billed 58 for the same prompt (Cohere then billed its default preamble): out of reach offline.
    for file in (STREAM, GENERATE):
        body, _ = _body(Cassette(file))
        count = estimate_generate(body["prompt"]) if "prompt" in body else estimate_v1_chat(body["message"])
        assert (count.tokens, count.method) == (BILLED[file][0], "heuristic")


# --- documented format: generate streams, tools, errors ------------------------------------------


def _lines(events):
    return "".join(json.dumps(e) + "\n" for e in events).encode()


STREAM_JSON = "application/stream+json"


def _generate_events(meta=True, error=False):
    events = [
        {"event_type": "text-generation", "text": "Within", "is_finished": False},
        {"event_type": "text-generation", "text": " 30 days", "is_finished": False},
    ]
    if error:
        events.append({"event_type": "stream-error", "is_finished": True, "finish_reason": "ERROR",
                       "err": "internal error"})
        return _lines(events)
    response = {"id": "g-1", "prompt": "Refund window?",
                "generations": [{"id": "g-1-0", "text": "Within 30 days", "finish_reason": "COMPLETE"}]}
    if meta:
        response["meta"] = {"api_version": {"version": "1"}, "billed_units": {"input_tokens": 4, "output_tokens": 3}}
    events.append({"event_type": "stream-end", "is_finished": True, "finish_reason": "COMPLETE",
                   "response": response})
    return _lines(events)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_generate_stream_reads_the_billed_units_of_stream_end(instrument, span_exporter, use_async):
    fake = FakeAPI().reply(_generate_events(), content_type=STREAM_JSON)
    kwargs = dict(model="command", prompt="Refund window?", max_tokens=20, temperature=0.2)
    if use_async:
        client = _async(fake.transport())

        async def run():
            return [e async for e in client.generate_stream(**kwargs)]

        events = asyncio.run(run())
    else:
        events = list(_sync(fake.transport()).generate_stream(**kwargs))
    assert [e.event_type for e in events] == ["text-generation", "text-generation", "stream-end"]
    assert fake.sent_json()["stream"] is True
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert span.name == "text_completion command"
    assert (a["gen_ai.operation.name"], a["gen_ai.request.stream"], a["gen_ai.request.max_tokens"]) == (
        "text_completion", True, 20)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"], a["ai_cost.usage.source"]) == (
        4, 3, "provider")
    assert a["gen_ai.usage.cost.amount"] == float((4 * COMMAND_IN + 3 * COMMAND_OUT) / M)  # 10e-6
    assert (a["gen_ai.response.id"], a["gen_ai.response.finish_reasons"]) == ("g-1", ("COMPLETE",))


def test_generate_stream_without_meta_is_estimated(instrument, span_exporter):
    # GenerateStreamEndResponse declares no ``meta``: without one, the output is counted from the text read.
    fake = FakeAPI().reply(_generate_events(meta=False), content_type=STREAM_JSON)
    list(_sync(fake.transport()).generate_stream(model="command", prompt="Refund window?"))
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert a["ai_cost.usage.source"] == "estimated"
    assert a["gen_ai.usage.input_tokens"] == estimate_generate("Refund window?").tokens
    assert a["gen_ai.usage.output_tokens"] == 4  # "Within" + " 30 days": 14 characters -> ceil(14 / 4)


def _chat_events(finish="COMPLETE", meta=None):
    response = {"response_id": "r-1", "generation_id": "gen-1", "text": "Within 30 days", "finish_reason": finish}
    if meta is not None:
        response["meta"] = meta
    return _lines([
        {"event_type": "stream-start", "generation_id": "gen-1", "is_finished": False},
        {"event_type": "text-generation", "text": "Within", "is_finished": False},
        {"event_type": "text-generation", "text": " 30 days", "is_finished": False},
        {"event_type": "stream-end", "is_finished": True, "finish_reason": finish, "response": response},
    ])


def test_a_chat_stream_ending_in_error_charges_nothing_unless_billed(instrument, span_exporter):
    fake = FakeAPI().reply(_chat_events("ERROR"), content_type=STREAM_JSON)
    events = list(_sync(fake.transport()).chat_stream(model="command", message="Refund window?"))
    assert len(events) == 4
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert span.status.status_code is StatusCode.ERROR
    assert (a["error.type"], a["gen_ai.response.finish_reasons"]) == ("ERROR", ("ERROR",))
    assert "gen_ai.usage.input_tokens" not in a and "gen_ai.usage.cost.amount" not in a


def test_a_chat_stream_stopped_as_toxic_charges_the_billed_units(instrument, span_exporter):
    meta = {"billed_units": {"input_tokens": 5, "output_tokens": 2}, "tokens": {"input_tokens": 70, "output_tokens": 2}}
    fake = FakeAPI().reply(_chat_events("ERROR_TOXIC", meta), content_type=STREAM_JSON)
    list(_sync(fake.transport()).chat_stream(model="command", message="Refund window?"))
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert (span.status.status_code, a["error.type"]) == (StatusCode.ERROR, "ERROR_TOXIC")
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (5, 2)
    assert a["gen_ai.usage.cost.amount"] == float((5 * COMMAND_IN + 2 * COMMAND_OUT) / M)  # 9e-6


def test_a_generate_stream_error_event_fails_the_span(instrument, span_exporter):
    fake = FakeAPI().reply(_generate_events(error=True), content_type=STREAM_JSON)
    events = list(_sync(fake.transport()).generate_stream(model="command", prompt="Refund window?"))
    assert events[-1].event_type == "stream-error"
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert (span.status.status_code, a["error.type"]) == (StatusCode.ERROR, "ERROR")
    assert "gen_ai.usage.input_tokens" not in a and "gen_ai.usage.cost.amount" not in a


def test_api_errors_are_raised_unchanged_and_recorded(instrument, span_exporter):
    fake = FakeAPI().reply({"message": "invalid api token"}, status=401)
    fake.reply({"message": "too many tokens"}, status=400)
    fake.reply({"message": "invalid api token"}, status=401)
    client = _sync(fake.transport())
    with pytest.raises(cohere.UnauthorizedError):
        client.chat(model="command", message="Hi")
    with pytest.raises(cohere.BadRequestError):
        asyncio.run(_async(fake.transport()).generate(model="command", prompt="Hi"))
    stream = client.chat_stream(model="command", message="Hi")
    with pytest.raises(cohere.UnauthorizedError):
        next(stream)
    spans = span_exporter.get_finished_spans()
    assert [s.attributes["error.type"] for s in spans] == ["UnauthorizedError", "BadRequestError", "UnauthorizedError"]
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        assert "gen_ai.usage.input_tokens" not in span.attributes


def test_request_attributes_and_a_tool_call_response(instrument, span_exporter):
    # A NonStreamedChatResponse in the documented format, with a tool call and billed units.
    fake = FakeAPI().reply({
        "response_id": "r-2", "generation_id": "gen-2", "text": "", "finish_reason": "COMPLETE",
        "tool_calls": [{"name": "refund_policy", "parameters": {"region": "EU"}}],
        "meta": {"billed_units": {"input_tokens": 31, "output_tokens": 12},
                 "tokens": {"input_tokens": 912, "output_tokens": 40}},
    })
    tools = [{"name": "refund_policy", "description": "Look up the refund policy",
              "parameter_definitions": {"region": {"type": "str", "description": "The region", "required": True}}}]
    _sync(fake.transport()).chat(model="command-r-08-2024", message="Refund window in the EU?", max_tokens=50,
                                 temperature=0.3, p=0.8, k=40, seed=7, stop_sequences=["END"],
                                 frequency_penalty=0.1, presence_penalty=0.2, tools=tools,
                                 response_format={"type": "json_object"})
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert span.name == "chat command-r-08-2024"
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.temperature"], a["gen_ai.request.top_p"]) == (
        50, 0.3, 0.8)
    assert (a["gen_ai.request.top_k"], a["gen_ai.request.seed"], a["gen_ai.request.stop_sequences"]) == (
        40, 7, ("END",))
    assert (a["gen_ai.request.frequency_penalty"], a["gen_ai.request.presence_penalty"]) == (0.1, 0.2)
    assert a["gen_ai.output.type"] == "json"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (31, 12)
    # command-r-08-2024 (packaged catalog): 31 x 0.15 + 12 x 0.60 = 11.85 per 1M
    assert a["gen_ai.usage.cost.amount"] == float((31 * Decimal("0.15") + 12 * Decimal("0.6")) / M)
    # the input estimate (for budgets) counts the tool definition too
    assert estimate_v1_chat("Refund window in the EU?", tools=tools).tokens > estimate_v1_chat(
        "Refund window in the EU?").tokens


# --- streams the caller does not finish -------------------------------------------------------------


def test_an_abandoned_chat_stream_ends_its_span_once(instrument, span_exporter):
    fake = FakeAPI().reply(_chat_events(), content_type=STREAM_JSON)
    stream = _sync(fake.transport()).chat_stream(model="command", message="Refund window?")
    assert fake.requests == []  # a generator: nothing is sent before the first next()
    assert next(stream).event_type == "stream-start"
    assert next(stream).text == "Within"
    del stream
    gc.collect()
    assert _core.flush_abandoned_streams()
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert a["ai_cost.usage.source"] == "estimated"
    assert a["gen_ai.usage.input_tokens"] == estimate_v1_chat("Refund window?").tokens
    assert a["gen_ai.usage.output_tokens"] == 2  # "Within": 6 characters -> ceil(6 / 4); nothing more read
    assert a["gen_ai.response.id"] == "gen-1"


def test_a_closed_sync_stream_and_an_async_stream_closed_early_end_their_spans(instrument, span_exporter):
    fake = FakeAPI().reply(_chat_events(), content_type=STREAM_JSON).reply(_generate_events(),
                                                                           content_type=STREAM_JSON)
    stream = _sync(fake.transport()).chat_stream(model="command", message="Refund window?")
    next(stream)
    stream.close()
    client = _async(fake.transport())

    async def run():
        agen = client.generate_stream(model="command", prompt="Refund window?")
        await agen.__anext__()
        await agen.aclose()

    asyncio.run(run())
    first, second = span_exporter.get_finished_spans()
    assert first.name == "chat command" and second.name == "text_completion command"
    for span in (first, second):
        assert span.attributes["ai_cost.usage.source"] == "estimated"
        assert span.status.status_code is not StatusCode.ERROR


def test_a_stream_dropped_before_its_first_read_sent_nothing_and_costs_nothing(instrument, span_exporter):
    fake = FakeAPI().reply(_generate_events(), content_type=STREAM_JSON)
    stream = _sync(fake.transport()).generate_stream(model="command", prompt="Refund window?")
    del stream
    gc.collect()
    assert _core.flush_abandoned_streams()
    assert fake.requests == []
    (span,) = span_exporter.get_finished_spans()
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert "gen_ai.usage.cost.amount" not in span.attributes


# --- v1 and v2 together ----------------------------------------------------------------------------


def test_client_v2_makes_one_span_per_call_v2_chat_and_v1_generate(instrument, span_exporter):
    fake = FakeAPI().reply({
        "id": "v2-1", "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "Within 30 days"}]},
        "usage": {"billed_units": {"input_tokens": 9, "output_tokens": 4}, "tokens": {"input_tokens": 71,
                                                                                      "output_tokens": 4}},
    }).reply({"id": "g-2", "generations": [{"id": "g", "text": "Within 30 days", "finish_reason": "COMPLETE"}],
              "meta": {"billed_units": {"input_tokens": 4, "output_tokens": 4}}})
    client = cohere.ClientV2(api_key="test", httpx_client=httpx.Client(transport=fake.transport()))
    client.chat(model="command-r-08-2024", messages=[{"role": "user", "content": "Refund window?"}])
    client.generate(model="command", prompt="Refund window?")
    assert [r.url.path for r in fake.requests] == ["/v2/chat", "/v1/generate"]
    chat, generate = span_exporter.get_finished_spans()
    assert (chat.name, chat.attributes["gen_ai.usage.input_tokens"]) == ("chat command-r-08-2024", 9)
    assert (generate.name, generate.attributes["gen_ai.usage.input_tokens"]) == ("text_completion command", 4)


def test_uninstrument_unwraps_the_v1_methods(instrument, span_exporter):
    instrument().uninstrument()
    fake = FakeAPI().reply(_chat_events(), content_type=STREAM_JSON).reply(
        {"id": "g", "generations": [], "meta": {"billed_units": {"input_tokens": 1, "output_tokens": 0}}})
    client = _sync(fake.transport())
    list(client.chat_stream(model="command", message="Hi"))
    client.generate(model="command", prompt="Hi")
    assert span_exporter.get_finished_spans() == ()


# --- budgets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["chat", "chat_stream", "generate", "generate_stream",
                                    "async_chat", "async_chat_stream", "async_generate", "async_generate_stream"])
def test_a_blocked_call_raises_before_any_request_is_sent(method):
    from otel_ai_cost import BudgetExceededError
    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime

    p = Pipeline(CohereInstrumentor(), budgets=[Budget("team", Decimal("0.0001"), lifetime())],
                 budget_store=MemoryBudgetStore())
    try:
        fake = FakeAPI()
        name = method.removeprefix("async_")
        text = "Summarise the refund policy in one line."
        kwargs = {"model": "command-a-03-2025", "max_tokens": 1000,
                  ("prompt" if name.startswith("generate") else "message"): text}
        with pytest.raises(BudgetExceededError):
            # worst case 1000 output tokens at 10.00 per 1M (command-a-03-2025) = 10e-3 > the 1e-4 limit
            if method.startswith("async_"):
                result = getattr(_async(fake.transport()), name)(**kwargs)
                if asyncio.iscoroutine(result):
                    asyncio.run(result)
            else:
                getattr(_sync(fake.transport()), name)(**kwargs)
        assert fake.requests == []
        (span,) = p.spans()
        assert span.attributes["ai_cost.budget.decision"] == "block"
        assert span.attributes["ai_cost.estimate.input_tokens"] == estimate_v1_chat(text).tokens
    finally:
        p.close()


# --- content capture (opt-in) -----------------------------------------------------------------------


def _content_of(span):
    return {k: json.loads(v) for k, v in span.attributes.items()
            if k in ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages")}


@pytest.fixture
def capture(monkeypatch):
    monkeypatch.setenv(ENV, "true")


def test_chat_content_is_recorded_when_asked_for(instrument, span_exporter, capture):
    fake = FakeAPI().reply({
        "response_id": "r-3", "text": "", "finish_reason": "COMPLETE",
        "tool_calls": [{"name": "refund_policy", "parameters": {"region": "EU"}}],
        "meta": {"billed_units": {"input_tokens": 40, "output_tokens": 10}},
    }).reply(_chat_events(), content_type=STREAM_JSON)
    client = _sync(fake.transport())
    history = [{"role": "USER", "message": "Hello"}, {"role": "CHATBOT", "message": "Hi, how can I help?"}]
    client.chat(model="command", message="Refund window in the EU?", preamble="Be brief.", chat_history=history)
    stream = client.chat_stream(model="command", message="Refund window?")
    next(stream)
    next(stream)
    stream.close()
    chat, streamed = span_exporter.get_finished_spans()
    assert _content_of(chat) == {
        "gen_ai.system_instructions": [{"type": "text", "content": "Be brief."}],
        "gen_ai.input.messages": [
            {"role": "user", "parts": [{"type": "text", "content": "Hello"}]},
            {"role": "assistant", "parts": [{"type": "text", "content": "Hi, how can I help?"}]},
            {"role": "user", "parts": [{"type": "text", "content": "Refund window in the EU?"}]}],
        "gen_ai.output.messages": [{"role": "assistant", "parts": [
            {"type": "tool_call", "id": None, "name": "refund_policy", "arguments": {"region": "EU"}}],
            "finish_reason": "stop"}],
    }
    # only what was read: "Within", and no finish reason (the stream was closed before stream-end)
    assert _content_of(streamed)["gen_ai.output.messages"] == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Within"}], "finish_reason": "error"}]


def test_generate_content_is_recorded_when_asked_for(instrument, span_exporter, capture):
    fake = FakeAPI().reply({"id": "g-3", "generations": [{"id": "g", "text": "Within 30 days",
                                                          "finish_reason": "MAX_TOKENS"}],
                            "meta": {"billed_units": {"input_tokens": 4, "output_tokens": 4}}})
    fake.reply(_generate_events(), content_type=STREAM_JSON)
    client = _sync(fake.transport())
    client.generate(model="command", prompt="Refund window?", max_tokens=4)
    list(client.generate_stream(model="command", prompt="Refund window?"))
    plain, streamed = span_exporter.get_finished_spans()
    prompt = [{"role": "user", "parts": [{"type": "text", "content": "Refund window?"}]}]
    assert _content_of(plain) == {"gen_ai.input.messages": prompt, "gen_ai.output.messages": [
        {"role": "assistant", "parts": [{"type": "text", "content": "Within 30 days"}], "finish_reason": "length"}]}
    assert _content_of(streamed) == {"gen_ai.input.messages": prompt, "gen_ai.output.messages": [
        {"role": "assistant", "parts": [{"type": "text", "content": "Within 30 days"}], "finish_reason": "stop"}]}


@pytest.mark.parametrize("action", ["throttle", "downgrade"])
def test_throttle_and_downgrade_are_applied_before_sending(monkeypatch, action):
    import types

    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, Threshold, downgrade, lifetime, throttle
    from otel_ai_cost.instrumentation.cohere import _calls as cohere_calls

    slept = []
    monkeypatch.setattr(cohere_calls, "time", types.SimpleNamespace(sleep=slept.append))
    then = throttle(1.5) if action == "throttle" else downgrade("command-r-08-2024")
    p = Pipeline(CohereInstrumentor(),
                 budgets=[Budget("team", Decimal(1), lifetime(), thresholds=[Threshold(Decimal("0.000001"), then)])],
                 budget_store=MemoryBudgetStore())
    try:
        fake = FakeAPI().reply(_chat_events(meta={"billed_units": {"input_tokens": 3, "output_tokens": 2}}),
                               content_type=STREAM_JSON)
        list(_sync(fake.transport()).chat_stream(model="command-a-03-2025", message="Refund window?",
                                                 max_tokens=100))
        (span,) = p.spans()
        assert span.attributes["ai_cost.budget.decision"] == action
        if action == "throttle":
            assert slept == [1.5]
            assert fake.sent_json()["model"] == "command-a-03-2025"
        else:
            assert slept == []
            assert fake.sent_json()["model"] == "command-r-08-2024"
            assert span.name == "chat command-r-08-2024"
            # priced as the model that served it: 3 x 0.15 + 2 x 0.60 = 1.65 per 1M
            assert span.attributes["gen_ai.usage.cost.amount"] == float(
                (3 * Decimal("0.15") + 2 * Decimal("0.6")) / M)
    finally:
        p.close()


@pytest.mark.parametrize("meta, usage", [
    ({"billed_units": {"input_tokens": 12, "output_tokens": 0}, "tokens": {"input_tokens": 80, "output_tokens": 0}},
     (12, 0)),
    ({"tokens": {"input_tokens": 80, "output_tokens": 0}}, None),  # processed, not billed: nothing charged
])
def test_a_response_finished_in_error_fails_the_span_and_charges_only_billed_units(
        instrument, span_exporter, meta, usage):
    fake = FakeAPI().reply({"response_id": "r-4", "text": "", "finish_reason": "ERROR_LIMIT", "meta": meta})
    _sync(fake.transport()).chat(model="command", message="Refund window?")
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert (span.status.status_code, a["error.type"]) == (StatusCode.ERROR, "ERROR_LIMIT")
    if usage is None:
        assert "gen_ai.usage.input_tokens" not in a and "gen_ai.usage.cost.amount" not in a
    else:
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == usage
        assert a["gen_ai.usage.cost.amount"] == float(12 * COMMAND_IN / M)  # 12e-6


def test_meta_tokens_are_the_fallback_when_a_response_reports_no_billed_units(instrument, span_exporter):
    fake = FakeAPI().reply({"response_id": "r-5", "text": "Within 30 days", "finish_reason": "COMPLETE",
                            "meta": {"tokens": {"input_tokens": 9, "output_tokens": 4}}})
    _sync(fake.transport()).chat(model="command", message="Refund window?")
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"], a["ai_cost.usage.source"]) == (
        9, 4, "provider")


@pytest.mark.parametrize("method", ["chat", "chat_stream", "generate", "async_chat_stream"])
def test_an_internal_error_never_breaks_the_call(instrument, span_exporter, monkeypatch, method):
    from otel_ai_cost.instrumentation.cohere import _calls as cohere_calls

    monkeypatch.setattr(cohere_calls, "_prepare_v1", lambda *a, **k: 1 / 0)
    chat = {"response_id": "r", "text": "Hi", "finish_reason": "COMPLETE",
            "meta": {"billed_units": {"input_tokens": 1, "output_tokens": 1}}}
    generation = {"id": "g", "generations": [{"id": "g", "text": "Hi", "finish_reason": "COMPLETE"}]}
    if method.endswith("chat_stream"):
        fake = FakeAPI().reply(_chat_events(), content_type=STREAM_JSON)
    else:
        fake = FakeAPI().reply(chat if method == "chat" else generation)
    if method == "async_chat_stream":
        client = _async(fake.transport())

        async def run():
            return [e async for e in client.chat_stream(model="command", message="Hi")]

        assert len(asyncio.run(run())) == 4
    elif method == "chat_stream":
        assert len(list(_sync(fake.transport()).chat_stream(model="command", message="Hi"))) == 4
    elif method == "chat":
        assert _sync(fake.transport()).chat(model="command", message="Hi").text == "Hi"
    else:
        assert _sync(fake.transport()).generate(model="command", prompt="Hi").generations[0].text == "Hi"
    assert len(fake.requests) == 1
    assert span_exporter.get_finished_spans() == ()


def test_tool_calls_and_results_in_the_content_and_the_estimate(instrument, span_exporter, capture):
    fake = FakeAPI().reply({"response_id": "r-6", "text": "Within 30 days in the EU.", "finish_reason": "MAX_TOKENS",
                            "meta": {"billed_units": {"input_tokens": 50, "output_tokens": 8}}})
    call = {"name": "refund_policy", "parameters": {"region": "EU"}}
    results = [{"call": call, "outputs": [{"days": 30}]}]
    history = [{"role": "USER", "message": "Refund window in the EU?"},
               {"role": "CHATBOT", "message": "Let me check.", "tool_calls": [call]},
               {"role": "TOOL", "tool_results": results}]
    _sync(fake.transport()).chat(model="command", message="", chat_history=history, tool_results=results)
    sent = fake.sent_json()
    assert sent["chat_history"][2]["tool_results"][0]["outputs"] == [{"days": 30}]
    (span,) = span_exporter.get_finished_spans()
    tool_call = {"type": "tool_call", "id": None, "name": "refund_policy", "arguments": {"region": "EU"}}
    response = {"role": "tool", "parts": [{"type": "tool_call_response", "id": None, "response": [{"days": 30}]}]}
    assert _content_of(span) == {
        "gen_ai.input.messages": [
            {"role": "user", "parts": [{"type": "text", "content": "Refund window in the EU?"}]},
            {"role": "assistant", "parts": [{"type": "text", "content": "Let me check."}, tool_call]},
            response, response],
        "gen_ai.output.messages": [{"role": "assistant", "finish_reason": "length", "parts": [
            {"type": "text", "content": "Within 30 days in the EU."}]}],
    }
    # the estimate counts the texts, the call (+1) and both results (+1 each)
    from otel_ai_cost.instrumentation.cohere import TOOL_CALL_TOKENS, TOOL_RESULT_TOKENS
    from otel_ai_cost.tokens import heuristic_tokens as h

    expected = (h("Refund window in the EU?") + h("Let me check.") + TOOL_CALL_TOKENS + h("refund_policy")
                + h(json.dumps({"region": "EU"})) + 2 * (TOOL_RESULT_TOKENS + h(json.dumps([{"days": 30}]))))
    assert estimate_v1_chat("", chat_history=history, tool_results=results).tokens == expected
