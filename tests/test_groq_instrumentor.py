"""The Groq instrumentor, driven through the real ``groq`` SDK (an ``httpx`` client).

The one Groq recording (a streamed ``llama3-8b-8192`` chat, openllmetry) is replayed through
``httpx.MockTransport``. What no recording covers (non-streamed chat, reasoning and cached tokens,
embeddings, errors) is answered by ``FakeAPI`` with bodies built from Groq's documented response
format (console.groq.com/docs/api-reference: the OpenAI chat completion object plus ``x_groq``,
``usage.prompt_tokens_details.cached_tokens`` and ``usage.completion_tokens_details.reasoning_tokens``).

Groq list prices used below (groq.com/pricing, USD per 1M tokens):
  llama3-8b-8192 (retired; last listed 0.05 in / 0.08 out) -- in the packaged catalog, and also priced
  through a user catalog entry in one test; openai/gpt-oss-20b 0.075 in / 0.0375 cached / 0.30 out;
  llama-3.3-70b-versatile 0.59 / 0.79.
"""
from __future__ import annotations

import asyncio
import gc
from decimal import Decimal

import groq
import httpx
import pytest
from opentelemetry.trace import StatusCode

from _cassettes import Cassette
from _fake_groq import FakeAPI, cassette_transport, sse
from conftest import Pipeline, instrumenting
from otel_ai_cost.instrumentation import _core
from otel_ai_cost.instrumentation.groq import GroqInstrumentor, estimate_chat
from otel_ai_cost.instrumentation.groq import _calls as groq_instrumentation

M = Decimal(1_000_000)
STREAM_CASSETTE = ("traceloop/openllmetry/packages/opentelemetry-instrumentation-groq/tests/traces/cassettes/"
                   "test_chat_tracing/test_chat_streaming_legacy.yaml")
# usage.jsonl for that recording: prompt_tokens 18, completion_tokens 73 (in x_groq.usage).
RECORDED_INPUT, RECORDED_OUTPUT = 18, 73
MESSAGES = [{"role": "user", "content": "Summarise the refund policy in one line."}]


@pytest.fixture
def instrument(tracer_provider, meter_provider):
    with instrumenting(GroqInstrumentor(), tracer_provider, meter_provider, start=True) as run:
        yield run


def _catalog_with_llama3():
    from otel_ai_cost.pricing import Catalog, default_catalog
    from otel_ai_cost.pricing._catalog import model_from_dict

    extra = model_from_dict({"id": "llama3-8b-8192", "provider": "groq", "prices": {"input": "0.05", "output": "0.08"}})
    return Catalog(list(default_catalog().entries()) + [extra])


def _sync_client(transport):
    return groq.Groq(api_key="test", http_client=httpx.Client(transport=transport), max_retries=0)


def _async_client(transport):
    return groq.AsyncGroq(api_key="test", http_client=httpx.AsyncClient(transport=transport), max_retries=0)


def completion(model="openai/gpt-oss-20b", usage=None, finish_reason="stop", **extra):
    body = {
        "id": "chatcmpl-fake-1", "object": "chat.completion", "created": 1760000000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Refunds within 30 days."},
                     "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage or {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
        "system_fingerprint": "fp_x", "x_groq": {"id": "req_fake"},
    }
    body.update(extra)
    return body


REASONING_USAGE = {
    "queue_time": 0.01, "prompt_tokens": 120, "prompt_time": 0.002, "completion_tokens": 300,
    "completion_time": 0.2, "total_tokens": 420, "total_time": 0.202,
    "prompt_tokens_details": {"cached_tokens": 64}, "completion_tokens_details": {"reasoning_tokens": 180},
}
# 56 uncached input at 0.075, 64 cached at 0.0375, 300 output (180 of them reasoning) at 0.30.
REASONING_COST = (56 * Decimal("0.075") + 64 * Decimal("0.0375") + 300 * Decimal("0.30")) / M


def _chunks(model="openai/gpt-oss-20b", usage=REASONING_USAGE):
    base = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1760000000, "model": model,
            "system_fingerprint": "fp_x"}
    return [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
         "x_groq": {"id": "req_s1"}},
        {**base, "choices": [{"index": 0, "delta": {"reasoning": "Thinking about refunds."}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Refunds within 30 days."}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
         "x_groq": {"id": "req_s1", "usage": usage}},
    ]


def _assert_recorded_stream_span(span):
    a = span.attributes
    assert span.name == "chat llama3-8b-8192"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "groq"
    assert a["gen_ai.request.model"] == "llama3-8b-8192"
    assert (a["server.address"], a["server.port"]) == ("api.groq.com", 443)
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.model"] == "llama3-8b-8192"
    assert a["gen_ai.response.id"] == "chatcmpl-532a6640-2e18-4a4c-8406-8437a857ce48"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (RECORDED_INPUT, RECORDED_OUTPUT)
    assert a["ai_cost.usage.source"] == "provider"
    assert not any(k.startswith("openai.") for k in a)


# --- recorded stream -------------------------------------------------------------------------


def test_recorded_stream_reads_x_groq_usage_and_is_priced_from_the_bundled_catalog(instrument, span_exporter):
    cassette = Cassette(STREAM_CASSETTE)
    client = _sync_client(cassette_transport(cassette))
    stream = client.chat.completions.create(**cassette.interactions[0].request_json)
    texts = [chunk.choices[0].delta.content for chunk in stream if chunk.choices]
    cassette.assert_done()
    assert len(texts) == 74  # every recorded chunk reaches the caller: nothing hidden
    assert "stream_options" not in cassette.requests[0].content.decode()  # nothing added to the request
    (span,) = span_exporter.get_finished_spans()
    _assert_recorded_stream_span(span)
    # llama3-8b-8192 is retired; the bundled catalog prices it at Groq's published $0.05/$0.08 per M.
    assert span.attributes["ai_cost.pricing.status"] == "priced"
    assert span.attributes["gen_ai.usage.cost.amount"] == float((18 * Decimal("0.05") + 73 * Decimal("0.08")) / M)


def test_recorded_stream_priced_from_a_user_catalog_async(instrument, span_exporter):
    instrument(catalog=_catalog_with_llama3())
    cassette = Cassette(STREAM_CASSETTE)
    client = _async_client(cassette_transport(cassette))

    async def run():
        stream = await client.chat.completions.create(**cassette.interactions[0].request_json)
        return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    cassette.assert_done()
    assert len(chunks) == 74
    (span,) = span_exporter.get_finished_spans()
    _assert_recorded_stream_span(span)
    a = span.attributes
    assert a["ai_cost.pricing.status"] == "priced"
    assert a["gen_ai.usage.cost.amount"] == float((18 * Decimal("0.05") + 73 * Decimal("0.08")) / M)  # 6.74e-6


# --- non-streamed chat: reasoning and cache ---------------------------------------------------


def test_sync_chat_reads_reasoning_and_cached_tokens(instrument, span_exporter, metric_reader):
    fake = FakeAPI().reply(completion(usage=REASONING_USAGE, service_tier="on_demand"))
    client = _sync_client(fake.transport())
    result = client.chat.completions.create(model="openai/gpt-oss-20b", messages=MESSAGES, max_completion_tokens=500,
                                            temperature=0.2, top_p=0.9, stop=["END"], seed=7,
                                            reasoning_effort="medium")
    assert result.usage.completion_tokens == 300
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert span.name == "chat openai/gpt-oss-20b"
    assert a["gen_ai.request.max_tokens"] == 500
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.stop_sequences"] == ("END",)
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.response.id"] == "chatcmpl-fake-1"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 120
    assert a["gen_ai.usage.output_tokens"] == 300
    assert a["gen_ai.usage.cache_read.input_tokens"] == 64
    assert a["gen_ai.usage.reasoning.output_tokens"] == 180
    assert a["gen_ai.usage.cost.amount"] == float(REASONING_COST)  # 98.6e-6
    metrics = {m.name for rm in metric_reader.get_metrics_data().resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics}
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= metrics


def test_async_chat_with_tools(instrument, span_exporter):
    tool_call = {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
    body = completion(model="llama-3.3-70b-versatile", finish_reason="tool_calls",
                      usage={"prompt_tokens": 210, "completion_tokens": 18, "total_tokens": 228})
    body["choices"][0]["message"] = {"role": "assistant", "tool_calls": [tool_call]}
    fake = FakeAPI().reply(body)
    client = _async_client(fake.transport())
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    asyncio.run(client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, tools=tools))
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (210, 18)
    assert a["gen_ai.usage.cost.amount"] == float((210 * Decimal("0.59") + 18 * Decimal("0.79")) / M)


# --- streams ------------------------------------------------------------------------------------


def test_stream_reasoning_usage_from_x_groq(instrument, span_exporter):
    fake = FakeAPI().reply(sse(_chunks()))
    client = _sync_client(fake.transport())
    with client.chat.completions.create(model="openai/gpt-oss-20b", messages=MESSAGES, stream=True) as stream:
        chunks = list(stream)
    assert len(chunks) == 4
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert a["gen_ai.usage.reasoning.output_tokens"] == 180
    assert a["gen_ai.usage.cache_read.input_tokens"] == 64
    assert a["gen_ai.usage.cost.amount"] == float(REASONING_COST)


def test_stream_usage_from_include_usage_chunk(instrument, span_exporter):
    chunks = _chunks(usage=None)
    chunks[-1].pop("x_groq")
    chunks.append({"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1, "model": "openai/gpt-oss-20b",
                   "choices": [], "usage": REASONING_USAGE})
    fake = FakeAPI().reply(sse(chunks))
    client = _sync_client(fake.transport())
    stream = client.chat.completions.create(model="openai/gpt-oss-20b", messages=MESSAGES, stream=True,
                                            extra_body={"stream_options": {"include_usage": True}})
    assert len(list(stream)) == 5  # the caller asked for the usage chunk: it is theirs
    assert fake.sent_json()["stream_options"] == {"include_usage": True}
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["gen_ai.usage.output_tokens"] == 300
    assert span.attributes["ai_cost.usage.source"] == "provider"


def test_abandoned_stream_ends_its_span_once_with_estimated_usage(instrument, span_exporter):
    fake = FakeAPI().reply(sse(_chunks()))
    client = _sync_client(fake.transport())
    stream = client.chat.completions.create(model="openai/gpt-oss-20b", messages=MESSAGES, stream=True)
    next(stream)
    next(stream)
    del stream
    gc.collect()
    assert _core.flush_abandoned_streams()
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert a["ai_cost.usage.source"] == "estimated"
    assert a["gen_ai.usage.input_tokens"] == estimate_chat("openai/gpt-oss-20b", MESSAGES).tokens
    assert a["gen_ai.usage.output_tokens"] == 6  # "Thinking about refunds." = 23 chars -> ceil(23/4)


def test_closed_stream_ends_its_span(instrument, span_exporter):
    fake = FakeAPI().reply(sse(_chunks()))
    client = _async_client(fake.transport())

    async def run():
        stream = await client.chat.completions.create(model="openai/gpt-oss-20b", messages=MESSAGES, stream=True)
        await stream.__anext__()
        await stream.close()

    asyncio.run(run())
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["ai_cost.usage.source"] == "estimated"
    # No chunk reported a finish reason: none is recorded (not a placeholder "error"), and no error.
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert "error.type" not in span.attributes


# --- embeddings, raw responses, errors ------------------------------------------------------------


def test_embeddings_report_input_tokens(instrument, span_exporter):
    fake = FakeAPI().reply({"object": "list", "model": "nomic-embed-text-v1_5",
                            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                            "usage": {"prompt_tokens": 7, "total_tokens": 7}})
    client = _sync_client(fake.transport())
    client.embeddings.create(model="nomic-embed-text-v1_5", input="refund policy")
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    assert span.name == "embeddings nomic-embed-text-v1_5"
    assert a["gen_ai.operation.name"] == "embeddings"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (7, 0)


@pytest.mark.parametrize("network", [False, True], ids=["preloaded", "network"])
def test_with_raw_response_ends_its_span_when_the_response_returns(instrument, span_exporter, network):
    # with_raw_response reads the whole body before returning: the call is over, even if the user
    # only reads the headers and keeps the response.
    fake = FakeAPI(network=network).reply(completion(usage=REASONING_USAGE))
    client = _sync_client(fake.transport())
    raw = client.chat.completions.with_raw_response.create(model="openai/gpt-oss-20b", messages=MESSAGES)
    assert raw.headers["content-type"]
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["gen_ai.usage.cost.amount"] == float(REASONING_COST)
    assert span.attributes["ai_cost.usage.source"] == "provider"
    parsed = raw.parse()
    assert parsed.usage.prompt_tokens == 120
    assert len(span_exporter.get_finished_spans()) == 1


def test_async_with_raw_response_ends_its_span_when_the_response_returns(instrument, span_exporter):
    fake = FakeAPI(network=True).reply(completion(usage=REASONING_USAGE))
    client = _async_client(fake.transport())

    async def run():
        raw = await client.chat.completions.with_raw_response.create(model="openai/gpt-oss-20b", messages=MESSAGES)
        (span,) = span_exporter.get_finished_spans()
        assert span.attributes["gen_ai.usage.cost.amount"] == float(REASONING_COST)
        assert (await raw.parse()).usage.prompt_tokens == 120

    asyncio.run(run())
    assert len(span_exporter.get_finished_spans()) == 1


@pytest.mark.parametrize("read", ["json", "text", "read", "parse"])
def test_with_streaming_response_reads_usage_from_the_body_the_user_read(instrument, span_exporter, read):
    fake = FakeAPI(network=True).reply(completion(usage=REASONING_USAGE))
    client = _sync_client(fake.transport())
    with client.chat.completions.with_streaming_response.create(model="openai/gpt-oss-20b",
                                                                messages=MESSAGES) as raw:
        assert span_exporter.get_finished_spans() == ()  # nothing read yet
        getattr(raw, read)()
        (span,) = span_exporter.get_finished_spans()  # ended inside the block, not at collection
    assert span.attributes["gen_ai.usage.cost.amount"] == float(REASONING_COST)
    assert span.attributes["ai_cost.usage.source"] == "provider"
    assert len(span_exporter.get_finished_spans()) == 1


@pytest.mark.parametrize("read", ["nothing", "headers", "iter_lines"])
def test_with_streaming_response_closed_unparsed_settles_the_input_estimate(instrument, span_exporter, read):
    fake = FakeAPI(network=True).reply(completion(usage=REASONING_USAGE))
    client = _sync_client(fake.transport())
    with client.chat.completions.with_streaming_response.create(model="openai/gpt-oss-20b",
                                                                messages=MESSAGES) as raw:
        if read == "headers":
            assert raw.headers["content-type"] == "application/json"
        elif read == "iter_lines":
            assert list(raw.iter_lines())  # consumed by the user, not kept by httpx: not readable by us
        keep = raw
    (span,) = span_exporter.get_finished_spans()  # leaving the block ends it (keep is still alive)
    a = span.attributes
    assert a["ai_cost.usage.source"] == "estimated"
    assert a["gen_ai.usage.input_tokens"] == estimate_chat("openai/gpt-oss-20b", MESSAGES).tokens
    assert a["gen_ai.usage.output_tokens"] == 0
    assert a["ai_cost.pricing.status"] == "priced"
    del keep


def test_with_streaming_response_dropped_unread_settles_the_input_estimate(instrument, span_exporter):
    fake = FakeAPI(network=True).reply(completion(usage=REASONING_USAGE))
    client = _sync_client(fake.transport())
    manager = client.chat.completions.with_streaming_response.create(model="openai/gpt-oss-20b", messages=MESSAGES)
    raw = manager.__enter__()
    assert raw.headers
    del raw, manager
    gc.collect()
    assert _core.flush_abandoned_streams()
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["ai_cost.usage.source"] == "estimated"
    assert span.attributes["gen_ai.usage.input_tokens"] == estimate_chat("openai/gpt-oss-20b", MESSAGES).tokens


def test_async_with_streaming_response_close_and_json(instrument, span_exporter):
    fake = FakeAPI(network=True).reply(completion(usage=REASONING_USAGE)).reply(completion(usage=REASONING_USAGE))
    client = _async_client(fake.transport())

    async def run():
        async with client.chat.completions.with_streaming_response.create(model="openai/gpt-oss-20b",
                                                                          messages=MESSAGES) as raw:
            await raw.json()
            (span,) = span_exporter.get_finished_spans()
            assert span.attributes["ai_cost.usage.source"] == "provider"
        span_exporter.clear()
        async with client.chat.completions.with_streaming_response.create(model="openai/gpt-oss-20b",
                                                                          messages=MESSAGES) as raw:
            pass
        (span,) = span_exporter.get_finished_spans()
        assert span.attributes["ai_cost.usage.source"] == "estimated"

    asyncio.run(run())


@pytest.mark.parametrize("read", ["parse", "read", "exit"])
def test_streamed_with_streaming_response(instrument, span_exporter, read):
    fake = FakeAPI(network=True).reply(sse(_chunks()))
    client = _sync_client(fake.transport())
    with client.chat.completions.with_streaming_response.create(model="openai/gpt-oss-20b", messages=MESSAGES,
                                                                stream=True) as raw:
        if read == "parse":
            assert len(list(raw.parse())) == 4
        elif read == "read":
            assert raw.read().startswith(b"data: ")
    (span,) = span_exporter.get_finished_spans()
    a = span.attributes
    if read == "exit":
        assert a["ai_cost.usage.source"] == "estimated"
        assert "gen_ai.response.finish_reasons" not in a
    else:  # the x_groq.usage of the last chunk, from the chunks or from the SSE bytes the user read
        assert a["ai_cost.usage.source"] == "provider"
        assert a["gen_ai.usage.cost.amount"] == float(REASONING_COST)
        assert a["gen_ai.response.finish_reasons"] == ("stop",)


def test_api_error_is_raised_unchanged_and_recorded(instrument, span_exporter):
    fake = FakeAPI().reply({"error": {"message": "model not found", "type": "invalid_request_error",
                                      "code": "model_not_found"}}, status=404)
    client = _sync_client(fake.transport())
    with pytest.raises(groq.NotFoundError):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "NotFoundError"
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_an_internal_error_never_breaks_the_call(instrument, span_exporter, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("bug in our code")

    monkeypatch.setattr(groq_instrumentation, "_prepare", broken)
    fake = FakeAPI().reply(completion())
    result = _sync_client(fake.transport()).chat.completions.create(model="openai/gpt-oss-20b", messages=MESSAGES)
    assert result.choices[0].message.content == "Refunds within 30 days."
    assert span_exporter.get_finished_spans() == ()


def test_uninstrument_unwraps(instrument, span_exporter):
    instrument().uninstrument()
    fake = FakeAPI().reply(completion())
    _sync_client(fake.transport()).chat.completions.create(model="openai/gpt-oss-20b", messages=MESSAGES)
    assert span_exporter.get_finished_spans() == ()
    assert GroqInstrumentor().instrumentation_dependencies() == ("groq >= 0.9.0, < 2",)


# --- budgets ------------------------------------------------------------------------------------


def test_a_blocked_call_raises_before_any_request_is_sent():
    from otel_ai_cost import BudgetExceededError
    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime

    p = Pipeline(GroqInstrumentor(),
                 budgets=[Budget("team", Decimal("0.0001"), lifetime())],
                 budget_store=MemoryBudgetStore())
    try:
        fake = FakeAPI().reply(completion())
        client = _sync_client(fake.transport())
        with pytest.raises(BudgetExceededError):
            # worst case 1000 output tokens at 0.79/M = 790e-6 > the 100e-6 limit
            client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, max_tokens=1000)
        assert fake.requests == []
        (span,) = p.spans()
        assert span.attributes["ai_cost.budget.decision"] == "block"
        assert span.attributes["error.type"] == "BudgetExceededError"
        assert "ai_cost.estimate.amount" in span.attributes
        # a call within the limit goes through and is settled
        client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, max_tokens=10)
        assert len(fake.requests) == 1
    finally:
        p.close()


# --- estimation -----------------------------------------------------------------------------------


def test_estimate_is_calibrated_on_the_recorded_request():
    cassette = Cassette(STREAM_CASSETTE)
    body = cassette.interactions[0].request_json
    count = estimate_chat(body["model"], body["messages"])
    assert count.method == "heuristic"
    assert abs(count.tokens - RECORDED_INPUT) <= 2  # 17 against the 18 Groq reported
    # OpenAI models served by Groq are counted with their own tokenizer.
    assert estimate_chat("openai/gpt-oss-20b", MESSAGES).method == "tiktoken"


# --- fixtures -------------------------------------------------------------------------------------


def test_copied_recordings_match_their_provenance():
    """Every recording listed in PROVENANCE-mistral-cohere-groq.json is here, byte for byte (git blob hash)."""
    import hashlib
    import json

    from _cassettes import RECORDED

    provenance = json.loads((RECORDED / "PROVENANCE-mistral-cohere-groq.json").read_text(encoding="utf-8"))
    assert len(provenance) == 12
    for path, entry in provenance.items():
        data = (RECORDED / path).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == entry["blob"], path
        assert path.startswith(entry["repo"] + "/") and path.endswith(entry["path"])


@pytest.mark.parametrize("action", ["throttle", "downgrade"])
def test_throttle_and_downgrade_are_applied_before_sending(monkeypatch, action):
    import types

    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, Threshold, downgrade, lifetime, throttle

    slept = []
    monkeypatch.setattr(groq_instrumentation, "time", types.SimpleNamespace(sleep=slept.append))
    then = throttle(1.5) if action == "throttle" else downgrade("llama-3.1-8b-instant")
    p = Pipeline(GroqInstrumentor(),
                 budgets=[Budget("team", Decimal(1), lifetime(), thresholds=[Threshold(Decimal("0.000001"), then)])],
                 budget_store=MemoryBudgetStore())
    try:
        fake = FakeAPI().reply(completion(model="llama-3.1-8b-instant"))
        _sync_client(fake.transport()).chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES,
                                                               max_tokens=100)
        (span,) = p.spans()
        assert span.attributes["ai_cost.budget.decision"] == action
        if action == "throttle":
            assert slept == [1.5]
            assert fake.sent_json()["model"] == "llama-3.3-70b-versatile"
        else:
            assert slept == []
            assert fake.sent_json()["model"] == "llama-3.1-8b-instant"
            assert span.name == "chat llama-3.1-8b-instant"
            assert span.attributes["ai_cost.budget.requested_model"] == "llama-3.3-70b-versatile"
    finally:
        p.close()


# --- with_raw_response objects cached before instrument() / across uninstrument() ------------------


def test_with_raw_response_bound_before_instrument_is_instrumented_and_budgeted():
    from otel_ai_cost import BudgetExceededError
    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime

    fake = FakeAPI().reply(completion(model="llama-3.3-70b-versatile"))
    client = _sync_client(fake.transport())
    raw_api = client.chat.completions.with_raw_response  # cached by the SDK, bound to the SDK's create
    streaming_api = client.chat.completions.with_streaming_response
    p = Pipeline(GroqInstrumentor(),
                 budgets=[Budget("team", Decimal("0.0001"), lifetime())],
                 budget_store=MemoryBudgetStore())
    try:
        with pytest.raises(BudgetExceededError):
            raw_api.create(model="llama-3.3-70b-versatile", messages=MESSAGES, max_tokens=1000)
        with pytest.raises(BudgetExceededError):
            with streaming_api.create(model="llama-3.3-70b-versatile", messages=MESSAGES, max_tokens=1000):
                pass
        assert fake.requests == []
        assert [s.attributes["ai_cost.budget.decision"] for s in p.spans()] == ["block", "block"]
        raw = raw_api.create(model="llama-3.3-70b-versatile", messages=MESSAGES, max_tokens=10)
        assert raw.parse().usage.prompt_tokens == 20
        assert len(fake.requests) == 1
        span = p.spans()[-1]
        assert span.name == "chat llama-3.3-70b-versatile"
        assert span.attributes["gen_ai.provider.name"] == "groq"
        assert span.attributes["server.address"] == "api.groq.com"
        assert span.attributes["gen_ai.usage.input_tokens"] == 20
        assert len(p.spans()) == 3
    finally:
        p.close()


def test_async_with_raw_response_bound_before_instrument_is_instrumented(instrument, span_exporter):
    instrument().uninstrument()
    fake = FakeAPI().reply(completion(usage=REASONING_USAGE))
    client = _async_client(fake.transport())
    raw_api = client.chat.completions.with_raw_response
    instrument()

    async def run():
        raw = await raw_api.create(model="openai/gpt-oss-20b", messages=MESSAGES)
        return await raw.parse()

    assert asyncio.run(run()).usage.prompt_tokens == 120
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["gen_ai.usage.cost.amount"] == float(REASONING_COST)


def test_a_downgrade_applies_to_a_with_raw_response_bound_before_instrument(monkeypatch):
    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, Threshold, downgrade, lifetime

    fake = FakeAPI().reply(completion(model="llama-3.1-8b-instant"))
    client = _sync_client(fake.transport())
    raw_api = client.chat.completions.with_raw_response
    then = downgrade("llama-3.1-8b-instant")
    p = Pipeline(GroqInstrumentor(),
                 budgets=[Budget("team", Decimal(1), lifetime(), thresholds=[Threshold(Decimal("0.000001"), then)])],
                 budget_store=MemoryBudgetStore())
    try:
        raw_api.create(model="llama-3.3-70b-versatile", messages=MESSAGES, max_tokens=100).parse()
        assert fake.sent_json()["model"] == "llama-3.1-8b-instant"
        (span,) = p.spans()
        assert span.attributes["ai_cost.budget.decision"] == "downgrade"
        assert span.attributes["ai_cost.budget.requested_model"] == "llama-3.3-70b-versatile"
    finally:
        p.close()


def test_uninstrument_stops_a_with_raw_response_used_before(instrument, span_exporter):
    fake = FakeAPI().reply(completion()).reply(completion()).reply(completion()).reply(completion())
    client = _sync_client(fake.transport())
    client.chat.completions.with_raw_response.create(model="openai/gpt-oss-20b", messages=MESSAGES).parse()
    with client.chat.completions.with_streaming_response.create(model="openai/gpt-oss-20b", messages=MESSAGES) as r:
        r.parse()
    assert len(span_exporter.get_finished_spans()) == 2
    span_exporter.clear()
    instrument().uninstrument()
    client.chat.completions.with_raw_response.create(model="openai/gpt-oss-20b", messages=MESSAGES).parse()
    with client.chat.completions.with_streaming_response.create(model="openai/gpt-oss-20b", messages=MESSAGES) as r:
        r.parse()
    assert span_exporter.get_finished_spans() == ()
    assert len(fake.requests) == 4


def test_reinstrument_gives_one_span_per_call_through_an_old_with_raw_response(instrument, span_exporter):
    fake = FakeAPI().reply(completion()).reply(completion())
    client = _sync_client(fake.transport())
    raw_api = client.chat.completions.with_raw_response  # bound to the first instrumentation's wrapper
    raw_api.create(model="openai/gpt-oss-20b", messages=MESSAGES).parse()
    instrument()  # uninstrument + instrument again
    raw_api.create(model="openai/gpt-oss-20b", messages=MESSAGES).parse()
    spans = span_exporter.get_finished_spans()
    assert len(spans) == 2
    assert all(s.attributes["gen_ai.usage.input_tokens"] == 20 for s in spans)
