"""Streams: usage injection and hiding, fallback counting, and ending the span exactly once.

HTTP is faked with ``httpx2.MockTransport`` in the documented API format (tests/_fake_openai.py);
the real ``openai`` SDK parses it.
"""
from __future__ import annotations

import asyncio
import gc

import httpx2
import openai
import pytest
from opentelemetry.trace import StatusCode

from _fake_openai import (
    AsyncBrokenStream,
    BrokenStream,
    FakeOpenAI,
    chat_chunks,
    response_object,
    sse,
)
from otel_ai_cost.instrumentation import _core

MESSAGES = [{"role": "user", "content": "Say this is a test"}]


def _one_span(span_exporter):
    spans = span_exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return dict(spans[0].attributes), spans[0]


def test_injected_include_usage_is_hidden_from_caller(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    client = fake.client()
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))

    assert fake.requests[0]["stream_options"] == {"include_usage": True}
    # The caller sees exactly what it would have seen without us: no usage-only chunk.
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "This is a test."
    attrs, span = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20
    assert attrs["gen_ai.usage.output_tokens"] == 10
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 8
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 4
    assert attrs["ai_cost.usage.source"] == "provider"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.time_to_first_chunk"] >= 0
    # gpt-4o-mini: 12 uncached x 0.15 + 8 cached x 0.075 + 10 output x 0.60 = 1.8 + 0.6 + 6.0 = 8.4 per 1M
    assert attrs["gen_ai.usage.cost.amount"] == pytest.approx(8.4e-6, rel=1e-12)


def test_caller_requested_usage_chunk_passes_through(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    chunks = list(fake.client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))

    assert fake.requests[0]["stream_options"] == {"include_usage": True}
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 20
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20
    assert attrs["ai_cost.usage.source"] == "provider"


def test_caller_refusing_usage_is_respected(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    list(fake.client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": False}))
    assert fake.requests[0]["stream_options"] == {"include_usage": False}
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "estimated"


def _expected_estimate(model, messages, parts):
    from otel_ai_cost.tokens import count_text, estimate_chat_input

    return (estimate_chat_input(model, messages, None).tokens,
            sum(count_text(p, model).tokens for p in parts))


@pytest.mark.parametrize("how", ["kwarg", "env"])
def test_injection_turned_off_falls_back_to_estimate(how, instrument_openai, span_exporter, monkeypatch):
    if how == "kwarg":
        instrument_openai(include_stream_usage=False)
    else:
        monkeypatch.setenv("OTEL_AI_COST_OPENAI_INCLUDE_USAGE", "false")
        instrument_openai()
    fake = FakeOpenAI()
    chunks = list(fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))

    assert "stream_options" not in fake.requests[0]
    assert len(chunks) == 7
    attrs, _ = _one_span(span_exporter)
    expected_in, expected_out = _expected_estimate("gpt-4o-mini", MESSAGES, fake.parts)
    assert attrs["ai_cost.usage.source"] == "estimated"
    assert attrs["gen_ai.usage.input_tokens"] == expected_in
    assert attrs["gen_ai.usage.output_tokens"] == expected_out == 5
    assert attrs["ai_cost.pricing.status"] == "priced"


def test_provider_ignoring_stream_options_falls_back_to_estimate(openai_instrumentor, span_exporter):
    fake = FakeOpenAI(usage_on_stream=False)
    list(fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert fake.requests[0]["stream_options"] == {"include_usage": True}
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "estimated"
    assert attrs["gen_ai.usage.output_tokens"] == 5


def test_missing_usage_that_was_asked_for_is_estimated_from_characters(openai_instrumentor, span_exporter):
    # Usage was requested, so the deltas are not tokenised; only deltas and characters are counted:
    # output ~ max(non-empty deltas, ceil(chars / 4)).
    parts = ["Supercalifragilistic", "expialidocious", "!"]
    fake = FakeOpenAI(parts=parts, usage_on_stream=False)
    list(fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "estimated"
    assert attrs["gen_ai.usage.output_tokens"] == max(3, (35 + 3) // 4) == 9


def test_unrequested_usage_keeps_tokenising_each_delta(instrument_openai, span_exporter):
    from otel_ai_cost.tokens import count_text

    instrument_openai(include_stream_usage=False)
    parts = ["Supercalifragilistic", "expialidocious", "!"]
    fake = FakeOpenAI(parts=parts)
    list(fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "estimated"
    assert attrs["gen_ai.usage.output_tokens"] == sum(count_text(p, "gpt-4o-mini").tokens for p in parts)


def test_abandoned_stream_ends_span_once_on_gc(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    stream = fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    next(stream)
    assert span_exporter.get_finished_spans() == ()
    del stream
    gc.collect()
    assert _core.flush_abandoned_streams()
    attrs, span = _one_span(span_exporter)
    assert span.status.status_code == StatusCode.UNSET
    assert "error.type" not in attrs
    # Only what was read is counted: the role chunk ("") and "This".
    assert attrs["ai_cost.usage.source"] == "estimated"
    assert attrs["gen_ai.usage.output_tokens"] == 1
    gc.collect()
    assert _core.flush_abandoned_streams()
    assert len(span_exporter.get_finished_spans()) == 1


def test_stream_closed_early(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    stream = fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(stream)
    stream.close()
    stream.close()
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "estimated"
    assert stream.response.is_closed
    del stream
    gc.collect()
    assert _core.flush_abandoned_streams()
    assert len(span_exporter.get_finished_spans()) == 1


def test_stream_context_manager(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    with fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
        assert isinstance(stream, openai.Stream)
        first = next(stream)
        assert first.choices[0].delta.role == "assistant"
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.response.id"] == "chatcmpl-fake"


def test_stream_broken_midway_sets_error_type(openai_instrumentor, span_exporter):
    first = sse(chat_chunks(["This"]))[:400]

    def chat(body):
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=BrokenStream(first))

    fake = FakeOpenAI(chat=chat)
    stream = fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError):
        for _ in stream:
            pass
    attrs, span = _one_span(span_exporter)
    assert attrs["error.type"] == "APIConnectionError"
    assert span.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in span.events)


async def test_async_stream_broken_midway(openai_instrumentor, span_exporter):
    first = sse(chat_chunks(["This"]))[:400]

    def chat(body):
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=AsyncBrokenStream(first))

    fake = FakeOpenAI(chat=chat)
    stream = await fake.async_client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            pass
    attrs, _ = _one_span(span_exporter)
    assert attrs["error.type"] == "APIConnectionError"


async def test_async_stream_with_injected_usage(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    stream = await fake.async_client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20
    assert attrs["ai_cost.usage.source"] == "provider"


async def test_async_stream_closed_early(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    async with await fake.async_client().chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
        await stream.__anext__()
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "estimated"


def test_chat_stream_helper(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    with fake.client().chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        events = [event.type for event in stream]
        completion = stream.get_final_completion()
    assert "content.done" in events
    assert completion.choices[0].message.content == "This is a test."
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 20
    assert attrs["ai_cost.usage.source"] == "provider"


def test_chat_stream_helper_exited_early(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    with fake.client().chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        next(iter(stream))
        assert span_exporter.get_finished_spans() == ()
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "estimated"


async def test_async_chat_stream_helper(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    async with fake.async_client().chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        async for _ in stream:
            pass
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.output_tokens"] == 10


def test_responses_stream_create(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    events = list(fake.client().responses.create(model="gpt-4o-mini", input="Say this is a test", stream=True))
    assert events[-1].type == "response.completed"
    assert "stream_options" not in fake.requests[0]  # the Responses API always reports usage
    attrs, _ = _one_span(span_exporter)
    assert attrs["openai.api.type"] == "responses"
    assert attrs["gen_ai.usage.input_tokens"] == 22
    assert attrs["gen_ai.usage.output_tokens"] == 6
    assert attrs["gen_ai.response.id"] == "resp_0415a3de5d3015560069e2f3f4b3088192949253e91aff1eb3"
    assert attrs["ai_cost.usage.source"] == "provider"


def test_responses_stream_helper(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    with fake.client().responses.stream(model="gpt-4o-mini", input="Say this is a test") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "This is a test."
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.input_tokens"] == 22


def test_responses_stream_helper_exited_early(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    with fake.client().responses.stream(model="gpt-4o-mini", input="Say this is a test") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                break
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "estimated"
    assert attrs["gen_ai.usage.output_tokens"] == 1  # "This"


async def test_async_responses_stream_helper(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    async with fake.async_client().responses.stream(model="gpt-4o-mini", input="Say this is a test") as stream:
        async for _ in stream:
            pass
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.usage.output_tokens"] == 6


def test_stream_proxy_passes_attributes_through(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    stream = fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"] == "text/event-stream"
    for _ in stream:
        pass


@pytest.mark.parametrize("api_version,injected", [("2024-02-01", False), ("2024-10-21", True),
                                                  ("2025-01-01-preview", True)])
def test_azure_gets_stream_options_only_where_the_api_version_accepts_them(
        api_version, injected, openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    client = openai.AzureOpenAI(api_key="x", azure_endpoint="https://res.openai.azure.com", api_version=api_version,
                                max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(fake.handle)))
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert ("stream_options" in fake.requests[0]) is injected
    assert all(chunk.choices for chunk in chunks)
    attrs, _ = _one_span(span_exporter)
    assert attrs["gen_ai.provider.name"] == "azure.ai.openai"
    assert attrs["ai_cost.usage.source"] == ("provider" if injected else "estimated")


def test_no_stream_options_for_providers_that_reject_unknown_fields(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    list(fake.client(base_url="https://api.mistral.ai/v1").chat.completions.create(
        model="mistral-small-latest", messages=MESSAGES, stream=True))
    assert "stream_options" not in fake.requests[0]


def test_stream_options_in_extra_body_are_left_alone(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()
    chunks = list(fake.client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"stream_options": {"include_usage": True}}))
    assert fake.requests[0]["stream_options"] == {"include_usage": True}
    assert chunks[-1].choices == []  # the caller asked for it: passed through
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "provider"


class _HangingAsyncStream(httpx2.AsyncByteStream):
    """Sends the first bytes, then waits forever: the caller's task gets cancelled mid-stream."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self):
        yield self.first
        await asyncio.sleep(3600)

    async def aclose(self) -> None:
        pass


async def test_cancelled_async_call_ends_its_span(span_exporter, openai_instrumentor):
    async def hang(request):
        await asyncio.sleep(3600)

    client = openai.AsyncOpenAI(api_key="test", max_retries=0,
                                http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(hang)))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES), 0.05)
    attrs, span = _one_span(span_exporter)
    assert attrs["error.type"] == "CancelledError"
    assert span.status.status_code == StatusCode.ERROR


async def test_cancelled_async_stream_ends_its_span(span_exporter, openai_instrumentor):
    first = sse(chat_chunks(["This", " is"]))
    first = first[: first.index(b"\n\n") + 2]  # exactly one event, then the body hangs

    def chat(body):
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=_HangingAsyncStream(first))

    fake = FakeOpenAI(chat=chat)
    stream = await fake.async_client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    seen = []

    async def consume():
        async for chunk in stream:
            seen.append(chunk)

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(consume(), 0.1)
    assert len(seen) == 1
    attrs, span = _one_span(span_exporter)
    assert attrs["error.type"] == "CancelledError"


def test_failed_responses_stream_is_an_error_without_a_guessed_cost(openai_instrumentor, span_exporter):
    # Faked HTTP in the documented Responses streaming format: the stream ends with `response.failed`.
    failed = {**response_object(status="failed", usage=None),
              "error": {"code": "server_error", "message": "The model failed."}}
    events = [
        {"type": "response.created", "sequence_number": 0,
         "response": {**failed, "status": "in_progress", "error": None}},
        {"type": "response.failed", "sequence_number": 1, "response": failed},
    ]

    def chat(body):
        raise AssertionError("only the Responses API is called")

    fake = FakeOpenAI(chat=chat)
    original = fake.handle
    fake.handle = lambda request: (httpx2.Response(200, headers={"content-type": "text/event-stream"},
                                                   content=sse(events, named=True))
                                   if request.url.path.endswith("/responses") else original(request))
    seen = [event.type for event in fake.client().responses.create(model="gpt-4o-mini", input="Hi", stream=True)]
    assert seen == ["response.created", "response.failed"]  # the caller sees the events unchanged
    attrs, span = _one_span(span_exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert attrs["error.type"] == "server_error"
    assert "gen_ai.usage.cost.amount" not in attrs
    assert "gen_ai.usage.input_tokens" not in attrs


# The SDK's own parsed chunks take a fast path (``OpenAIChatStreamState.observe``); it must read exactly
# what the generic path reads from the same chunks as plain dicts.
_BASE = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18"}
_TOOL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "refu'}}
_FAST_PATH_STREAMS = {
    "two choices, one never finishes": [
        {**_BASE, "service_tier": "default", "system_fingerprint": "fp_1", "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None},
            {"index": 1, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]},
        {**_BASE, "service_tier": "default", "system_fingerprint": "fp_1", "choices": [
            {"index": 0, "delta": {"content": "lo there"}, "finish_reason": "stop"}]},
    ],
    "tool calls, a refusal, a tier that changes, a late fingerprint": [
        {**_BASE, "service_tier": None, "choices": [
            {"index": 0, "delta": {"role": "assistant", "tool_calls": [_TOOL]}, "finish_reason": None}]},
        {**_BASE, "service_tier": "flex", "system_fingerprint": "fp_2", "choices": [
            {"index": 0, "delta": {"refusal": "I can't help with that."}, "finish_reason": None}]},
        {**_BASE, "service_tier": "", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ],
    "usage on a content chunk, then more text (not counted)": [
        {**_BASE, "choices": [{"index": 0, "delta": {"content": "Refunds"}, "finish_reason": None}]},
        {**_BASE, "choices": [{"index": 0, "delta": {"content": " take 30 days."}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "cost": 0.0004}},
        {**_BASE, "choices": [{"index": 0, "delta": {"content": "ignored"}, "finish_reason": None}]},
    ],
    "a choice without a delta": [
        {**_BASE, "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {**_BASE, "choices": [{"index": 0, "finish_reason": "length"}]},
    ],
}


def _state_reading(chunks, parsed):
    from openai._models import construct_type
    from openai.types.chat import ChatCompletionChunk

    from otel_ai_cost._request import LLMRequest
    from otel_ai_cost.instrumentation.openai import OpenAIChatStreamState

    class _Operation:  # only what the state reads to build its outcome
        request = LLMRequest(provider="openai", operation="chat", model="gpt-4o-mini")
        ended = False

    state = OpenAIChatStreamState(_Operation(), hide_usage_chunk=True, usage_expected=True)
    for chunk in chunks:
        item = construct_type(type_=ChatCompletionChunk, value=chunk) if parsed else chunk
        assert (type(item) is ChatCompletionChunk) is parsed
        state.observe(item)
    return state


@pytest.mark.parametrize("name", list(_FAST_PATH_STREAMS))
def test_the_fast_path_for_sdk_chunks_reads_what_the_generic_path_reads(name):
    chunks = _FAST_PATH_STREAMS[name]
    fast, generic = _state_reading(chunks, parsed=True), _state_reading(chunks, parsed=False)
    assert (fast.counter.deltas, fast.counter.chars) == (generic.counter.deltas, generic.counter.chars)
    fast_outcome, generic_outcome = fast.outcome(), generic.outcome()
    assert fast_outcome.attributes == generic_outcome.attributes
    assert fast_outcome.usage == generic_outcome.usage
    assert fast_outcome.provider_cost == generic_outcome.provider_cost
    assert (fast_outcome.service_tier, fast_outcome.response_model) == (generic_outcome.service_tier,
                                                                         generic_outcome.response_model)


def test_the_fast_path_counts_text_until_the_usage_arrives():
    state = _state_reading(_FAST_PATH_STREAMS["tool calls, a refusal, a tier that changes, a late fingerprint"],
                           parsed=True)
    # "lookup", '{"q": "refu' and the refusal: 3 deltas, 6 + 11 + 23 characters.
    assert (state.counter.deltas, state.counter.chars) == (3, 40)
    attrs = state.outcome().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert attrs["openai.response.service_tier"] == "flex"  # the last tier reported; "" and None leave it
    assert attrs["openai.response.system_fingerprint"] == "fp_2"
    state = _state_reading(_FAST_PATH_STREAMS["usage on a content chunk, then more text (not counted)"], parsed=True)
    # "Refunds" only: the chunk that brings the usage, and those after it, are covered by the usage.
    assert (state.counter.deltas, state.counter.chars) == (1, 7)
    assert state.outcome().usage.output_tokens == 5
    state = _state_reading(_FAST_PATH_STREAMS["two choices, one never finishes"], parsed=True)
    assert state.outcome().attributes["gen_ai.response.finish_reasons"] == ["stop", "error"]


def test_leaving_a_for_loop_early_keeps_the_stream_open(openai_instrumentor, span_exporter):
    fake = FakeOpenAI()  # a role chunk, 5 text deltas, the finish chunk, the (hidden) usage chunk
    stream = fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    seen = []
    for chunk in stream:
        seen.append(chunk)
        if len(seen) == 2:
            break
    assert span_exporter.get_finished_spans() == ()  # only the loop was left: the stream reads on
    seen.append(next(stream))
    seen.extend(stream)  # a second loop goes on where the first stopped
    assert [c.choices[0].delta.content for c in seen[1:6]] == fake.parts
    assert len(seen) == 7
    attrs, _ = _one_span(span_exporter)
    assert attrs["ai_cost.usage.source"] == "provider"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
