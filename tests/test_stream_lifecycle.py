"""Every provider's streams end when closed, and dropped ones within a stated bound (issue 8, 3d).

Each provider's real SDK (sync and async) reads a stream from its fake HTTP server or transport
(tests/_fake_*.py) through a pipeline with a budget (``AICostSpanProcessor`` + a memory store), so
ending the span is also checked on the budget: the hold placed at span start is settled or released
exactly once. For each, one chunk is read and then the stream is

- closed (``close()`` / ``aclose()``): the span has ended when the call returns;
- left by a context-manager exit (the SDK's own ``with`` / ``async with``, else ``contextlib.closing``
  / ``aclosing``, as a user writes it for a generator): ended when the block is left;
- dropped (``del``, no ``gc.collect()``): a sync stream has ended when ``del`` returns, an async one
  within one turn of the loop (its SDK's async generators are closed by the loop);
- dropped inside a reference cycle with the garbage collector off: the reaper ends it within
  ``2 x idle timeout`` plus one tick (the bound stated in ``_streams``), nobody calling ``gc.collect()``.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any, Dict, List

import httpx
import pytest

import conftest
from _fake_anthropic import FakeAnthropic
from _fake_bedrock import FakeBedrock, event_stream_reply
from _fake_google_genai import FakeGoogleGenAI
from _fake_groq import FakeAPI
from _fake_groq import sse as groq_sse
from _fake_openai import FakeOpenAI
from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime
from otel_ai_cost.instrumentation._core import _streams

IDLE_TIMEOUT = 0.2
BOUND = 2 * IDLE_TIMEOUT + IDLE_TIMEOUT / 4  # 2 x idle timeout + one tick (idle / 4): the stated bound
# The collection itself takes time (the whole test process's heap), and 2 cores are shared.
SLACK = 2.0
MESSAGES = [{"role": "user", "content": "Say this is a test"}]


# ---------------------------------------------------------------------------------------------
# One stream per provider: (sync opener, async opener); each returns the object the user holds.


def _chunks_openai() -> List[dict]:
    from _fake_openai import chat_chunks

    return chat_chunks(["This", " is", " a", " test."])


class OpenAIStreams:
    name = "openai"

    def instrumentor(self):
        from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

        return OpenAIInstrumentor()

    def __enter__(self):
        self.fake = FakeOpenAI()
        return self

    def __exit__(self, *exc):
        pass

    def open(self):
        return self.fake.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)

    async def aopen(self):
        return await self.fake.async_client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                      stream=True)


class AnthropicStreams(OpenAIStreams):
    name = "anthropic"
    async_close = "close"  # AsyncStream has no aclose()

    def instrumentor(self):
        from otel_ai_cost.instrumentation.anthropic import AnthropicInstrumentor

        return AnthropicInstrumentor()

    def __enter__(self):
        self.fake = FakeAnthropic()
        return self

    def open(self):
        return self.fake.client().messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=MESSAGES,
                                                  stream=True)

    async def aopen(self):
        return await self.fake.async_client().messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                                              messages=MESSAGES, stream=True)


def _genai_events() -> List[dict]:
    def event(text: str, out: int, finish: Any = None) -> dict:
        candidate: Dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "modelVersion": "gemini-2.0-flash", "responseId": "s-1",
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": out, "totalTokenCount": 10 + out}}

    return [event("Hel", 1), event("lo", 2), event("!", 3, "STOP")]


class GoogleGenAIStreams(OpenAIStreams):
    name = "google_genai"
    generator = True  # the SDK returns a generator: no ``with`` of its own

    def instrumentor(self):
        from otel_ai_cost.instrumentation.google_genai import GoogleGenAIInstrumentor

        return GoogleGenAIInstrumentor()

    def __enter__(self):
        self.fake = FakeGoogleGenAI()
        self.client = self.fake.gemini_client()
        return self

    def __exit__(self, *exc):
        self.fake.close()

    def open(self):
        self.fake.queue_sse(_genai_events())
        return self.client.models.generate_content_stream(model="gemini-2.0-flash", contents="Hi")

    async def aopen(self):
        self.fake.queue_sse(_genai_events())
        return await self.client.aio.models.generate_content_stream(model="gemini-2.0-flash", contents="Hi")


def _groq_chunks() -> bytes:
    base = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1, "model": "openai/gpt-oss-20b"}
    return groq_sse([
        {**base,
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Refunds"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": " within 30 days."}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
         "x_groq": {"id": "req_s1", "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}}},
    ])


class GroqStreams(OpenAIStreams):
    name = "groq"
    async_close = "close"  # AsyncStream has no aclose()

    def instrumentor(self):
        from otel_ai_cost.instrumentation.groq import GroqInstrumentor

        return GroqInstrumentor()

    def __enter__(self):
        self.fake = FakeAPI()
        return self

    def open(self):
        import groq

        client = groq.Groq(api_key="test",
                           http_client=httpx.Client(transport=self.fake.reply(_groq_chunks()).transport()),
                           max_retries=0)
        return client.chat.completions.create(model="openai/gpt-oss-20b", messages=MESSAGES, stream=True)

    async def aopen(self):
        import groq

        client = groq.AsyncGroq(api_key="test", max_retries=0,
                                http_client=httpx.AsyncClient(transport=self.fake.reply(_groq_chunks()).transport()))
        return await client.chat.completions.create(model="openai/gpt-oss-20b", messages=MESSAGES, stream=True)


def _mistral_chunks() -> bytes:
    base = {"id": "m-1", "object": "chat.completion.chunk", "created": 1, "model": "mistral-small-latest"}
    return groq_sse([
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Within 30 days"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "."}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19}},
    ])


class MistralStreams(OpenAIStreams):
    name = "mistral"
    async_close = "close"  # EventStreamAsync has no aclose()

    def instrumentor(self):
        from otel_ai_cost.instrumentation.mistral import MistralInstrumentor

        return MistralInstrumentor()

    def __enter__(self):
        self.fake = FakeAPI()
        return self

    def _client(self):
        try:
            from mistralai.client import Mistral
        except ImportError:  # pragma: no cover - mistralai 1.x
            from mistralai import Mistral
        transport = self.fake.reply(_mistral_chunks()).transport()
        return Mistral(api_key="test", client=httpx.Client(transport=transport),
                       async_client=httpx.AsyncClient(transport=transport))

    def open(self):
        return self._client().chat.stream(model="mistral-small-latest", messages=MESSAGES)

    async def aopen(self):
        return await self._client().chat.stream_async(model="mistral-small-latest", messages=MESSAGES)


def _cohere_events() -> bytes:
    return groq_sse([
        {"id": "m-1", "type": "message-start", "delta": {"message": {"role": "assistant", "content": []}}},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Within 30 days"}}}},
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE",
                                          "usage": {"billed_units": {"input_tokens": 9, "output_tokens": 4}}}},
    ], event_names=True)


class CohereStreams(OpenAIStreams):
    name = "cohere"
    generator = True  # chat_stream is a generator function: no ``with`` of its own

    def instrumentor(self):
        from otel_ai_cost.instrumentation.cohere import CohereInstrumentor

        return CohereInstrumentor()

    def __enter__(self):
        self.fake = FakeAPI()
        return self

    def open(self):
        import cohere

        client = cohere.ClientV2(api_key="test", httpx_client=httpx.Client(
            transport=self.fake.reply(_cohere_events()).transport()))
        return client.chat_stream(model="command-r-08-2024", messages=MESSAGES)

    async def aopen(self):
        import cohere

        client = cohere.AsyncClientV2(api_key="test", httpx_client=httpx.AsyncClient(
            transport=self.fake.reply(_cohere_events()).transport()))
        return client.chat_stream(model="command-r-08-2024", messages=MESSAGES)


NOVA = "amazon.nova-micro-v1:0"


def _bedrock_events():
    return [("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"delta": {"text": "Hi"}, "contentBlockIndex": 0}),
            ("messageStop", {"stopReason": "end_turn"}),
            ("metadata", {"usage": {"inputTokens": 5, "outputTokens": 1, "totalTokens": 6},
                          "metrics": {"latencyMs": 1}})]


class BedrockStreams(OpenAIStreams):
    name = "bedrock"
    generator = True  # botocore's EventStream has close() but no ``with``
    async_close = "close"  # and aiobotocore's close() is not a coroutine

    def instrumentor(self):
        from otel_ai_cost.instrumentation.bedrock import BedrockInstrumentor

        return BedrockInstrumentor()

    def __enter__(self):
        path = f"/model/{NOVA}/converse-stream"
        self.fake = FakeBedrock([event_stream_reply(path, _bedrock_events()) for _ in range(4)])
        self._aio = None
        return self

    def __exit__(self, *exc):
        self.fake.close()

    def open(self):
        return self.fake.client().converse_stream(
            modelId=NOVA, messages=[{"role": "user", "content": [{"text": "Hi"}]}])["stream"]

    async def aopen(self):
        if self._aio is None:
            self._aio_cm = self.fake.aio_session().create_client("bedrock-runtime", **self.fake.client_kwargs())
            self._aio = await self._aio_cm.__aenter__()
        response = await self._aio.converse_stream(modelId=NOVA,
                                                   messages=[{"role": "user", "content": [{"text": "Hi"}]}])
        return response["stream"]

    async def aclose_client(self):
        if self._aio is not None:
            await self._aio_cm.__aexit__(None, None, None)


PROVIDERS = [OpenAIStreams, AnthropicStreams, GoogleGenAIStreams, GroqStreams, MistralStreams, CohereStreams,
             BedrockStreams]


# ---------------------------------------------------------------------------------------------
# The pipeline: spans exported in memory, a budget whose ledger shows every hold closed


class Pipeline(conftest.Pipeline):
    """The shared harness with one budget on a memory store, and the provider's instrumentor."""

    def __init__(self, provider: Any) -> None:
        super().__init__(provider.instrumentor(), budgets=[Budget("all", "1000", lifetime())],
                         budget_store=MemoryBudgetStore())

    def ended(self) -> int:
        return len(self.exporter.get_finished_spans())

    def holds_closed(self) -> bool:
        reserves = self.store.ledger(kind="reserve")
        closings = self.store.ledger(kinds=("settle", "release"))
        return len(reserves) >= 1 and sorted(e.reservation_id for e in reserves) == sorted(
            e.reservation_id for e in closings)


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.name)
def streams(request):
    previous = _streams.set_stream_idle_timeout(IDLE_TIMEOUT)
    provider = request.param()
    pipeline = Pipeline(provider)
    try:
        with provider:
            yield provider, pipeline
    finally:
        pipeline.close()
        _streams.set_stream_idle_timeout(previous)


def _assert_one_ended_and_settled(pipeline: Pipeline) -> None:
    assert pipeline.ended() == 1, "the span did not end"
    assert pipeline.holds_closed(), "the budget hold was not settled"
    (span,) = pipeline.exporter.get_finished_spans()
    assert span.attributes["gen_ai.request.stream"] is True


def _wait_for_end(pipeline: Pipeline, bound: float) -> float:
    start = time.monotonic()
    while pipeline.ended() == 0 and time.monotonic() - start < bound + 5.0:
        time.sleep(0.005)
    return time.monotonic() - start


async def _await_end(pipeline: Pipeline, bound: float) -> float:
    start = time.monotonic()
    while pipeline.ended() == 0 and time.monotonic() - start < bound + 5.0:
        await asyncio.sleep(0.005)
    return time.monotonic() - start


# ---------------------------------------------------------------------------------------------
# Sync


def test_close_ends_the_span_before_it_returns(streams):
    provider, pipeline = streams
    stream = provider.open()
    next(stream)
    assert pipeline.ended() == 0
    stream.close()
    _assert_one_ended_and_settled(pipeline)


def test_a_context_manager_exit_ends_the_span(streams):
    provider, pipeline = streams
    stream = provider.open()
    manager = contextlib.closing(stream) if getattr(provider, "generator", False) else stream
    with manager:
        next(stream)
        assert pipeline.ended() == 0
    _assert_one_ended_and_settled(pipeline)


def test_a_dropped_stream_ends_when_its_last_reference_goes(streams):
    provider, pipeline = streams
    gc.disable()  # the end comes from the reference drop, not from a collection
    try:
        stream = provider.open()
        next(stream)
        del stream
        _assert_one_ended_and_settled(pipeline)
    finally:
        gc.enable()


def test_a_stream_dropped_in_a_cycle_ends_within_the_bound_without_gc_collect(streams):
    provider, pipeline = streams
    gc.collect()
    gc.disable()  # no automatic collection: only the reaper's own can free the cycle
    try:
        stream = provider.open()
        next(stream)
        cycle: List[Any] = [stream]
        cycle.append(cycle)
        del stream, cycle
        assert pipeline.ended() == 0  # unreachable, but not freed: nothing ended it yet
        waited = _wait_for_end(pipeline, BOUND)
        _assert_one_ended_and_settled(pipeline)
        assert waited <= BOUND + SLACK, f"ended after {waited:.2f} s, bound {BOUND:.2f} s"
    finally:
        gc.enable()


def test_a_referenced_idle_stream_stays_open_and_reads_on(streams):
    provider, pipeline = streams
    stream = provider.open()
    next(stream)
    time.sleep(BOUND + 0.3)  # idle past the bound, but still held: the reaper must not end it
    assert pipeline.ended() == 0
    rest = list(stream)
    assert rest  # the user reads on, and the span ends with the whole stream
    _assert_one_ended_and_settled(pipeline)
    (span,) = pipeline.exporter.get_finished_spans()
    assert span.attributes.get("ai_cost.usage.source") == "provider" or provider.name == "bedrock"


# ---------------------------------------------------------------------------------------------
# Async


def _arun(provider: Any, body) -> None:
    async def main():
        try:
            await body()
        finally:
            if hasattr(provider, "aclose_client"):
                await provider.aclose_client()

    asyncio.run(main())


async def _close(provider: Any, stream: Any) -> None:
    method = getattr(provider, "async_close", "aclose")
    result = getattr(stream, method)()
    if asyncio.iscoroutine(result):
        await result


def test_async_close_ends_the_span_before_it_returns(streams):
    provider, pipeline = streams

    async def body():
        stream = await provider.aopen()
        await stream.__anext__()
        assert pipeline.ended() == 0
        await _close(provider, stream)
        _assert_one_ended_and_settled(pipeline)

    _arun(provider, body)


def test_async_context_manager_exit_ends_the_span(streams):
    provider, pipeline = streams

    async def body():
        stream = await provider.aopen()
        if getattr(provider, "generator", False) or provider.name == "google_genai":
            if getattr(provider, "async_close", "aclose") == "close":
                manager: Any = contextlib.closing(stream)
                with manager:
                    await stream.__anext__()
            else:
                async with contextlib.aclosing(stream):
                    await stream.__anext__()
        else:
            async with stream:
                await stream.__anext__()
                assert pipeline.ended() == 0
        _assert_one_ended_and_settled(pipeline)

    _arun(provider, body)


def test_async_dropped_stream_ends_within_a_turn_of_the_loop(streams):
    provider, pipeline = streams

    async def body():
        gc.disable()
        try:
            stream = await provider.aopen()
            await stream.__anext__()
            del stream
            for _ in range(3):  # the loop closes the SDK's dropped async generators
                await asyncio.sleep(0)
            _assert_one_ended_and_settled(pipeline)
        finally:
            gc.enable()

    _arun(provider, body)


def test_async_stream_dropped_in_a_cycle_ends_within_the_bound(streams):
    provider, pipeline = streams

    async def body():
        gc.collect()
        gc.disable()
        try:
            stream = await provider.aopen()
            await stream.__anext__()
            cycle: List[Any] = [stream]
            cycle.append(cycle)
            del stream, cycle
            waited = await _await_end(pipeline, BOUND)
            _assert_one_ended_and_settled(pipeline)
            assert waited <= BOUND + SLACK, f"ended after {waited:.2f} s, bound {BOUND:.2f} s"
        finally:
            gc.enable()

    _arun(provider, body)


# ---------------------------------------------------------------------------------------------
# The bound itself


def test_the_idle_timeout_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        _streams.set_stream_idle_timeout(0)
    with pytest.raises(ValueError):
        _streams.set_stream_idle_timeout(float("nan"))
