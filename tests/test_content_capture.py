"""Message content capture behind OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT (issue 8, item 11).

Through the real SDKs against their fakes (tests/_fake_openai.py, _fake_anthropic.py,
_fake_google_genai.py): off by default (no content attribute on any span), on with ``true`` in the
GenAI conventions' JSON structure (``gen_ai.system_instructions``, ``gen_ai.input.messages``,
``gen_ai.output.messages``), sync, async and streamed; a stream's output is what the user read,
bounded; the providers without capture say so once in the log.
"""
from __future__ import annotations

import asyncio
import json
import logging

import httpx2
import pytest
from google.genai import types
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _fake_anthropic import FakeAnthropic
from _fake_google_genai import FakeGoogleGenAI, generate_response
from _fake_openai import FakeOpenAI, sse
from otel_ai_cost.instrumentation._core import _content

ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CONTENT_KEYS = ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages")


@pytest.fixture
def exporter(monkeypatch):
    """Spans of the openai, anthropic and google-genai instrumentors (the variable unset)."""
    from otel_ai_cost.instrumentation.anthropic import AnthropicInstrumentor
    from otel_ai_cost.instrumentation.google_genai import GoogleGenAIInstrumentor
    from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

    monkeypatch.delenv(ENV, raising=False)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor(), GoogleGenAIInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    yield exporter
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    provider.shutdown()


@pytest.fixture
def capture(monkeypatch):
    monkeypatch.setenv(ENV, "true")


def _content_of(span):
    return {k: json.loads(span.attributes[k]) for k in CONTENT_KEYS if k in span.attributes}


def _genai_events():
    def event(text, out, finish=None):
        cand = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish:
            cand["finishReason"] = finish
        return {"candidates": [cand], "modelVersion": "gemini-2.0-flash",
                "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": out}}

    return [event("Hel", 1), event("lo", 2, "STOP")]


def _every_kind_of_call():
    """One call of each supported kind, sync, async and streamed (each stream read to the end)."""
    fake = FakeOpenAI()
    oa = fake.client()
    oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    list(oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True))
    oa.responses.create(model="gpt-4o-mini", input="Hi", instructions="Be brief.")
    list(oa.responses.create(model="gpt-4o-mini", input="Hi", stream=True))
    an = FakeAnthropic()
    an.client().messages.create(model="claude-sonnet-4-5", max_tokens=10, system="Be brief.",
                                messages=[{"role": "user", "content": "Hi"}])
    list(an.client().messages.create(model="claude-sonnet-4-5", max_tokens=10,
                                     messages=[{"role": "user", "content": "Hi"}], stream=True))
    with FakeGoogleGenAI() as server:
        client = server.gemini_client()
        server.queue_json(generate_response({"promptTokenCount": 4, "candidatesTokenCount": 2}, text="Hello"))
        client.models.generate_content(model="gemini-2.0-flash", contents="Hi",
                                       config=types.GenerateContentConfig(system_instruction="Be brief."))
        server.queue_sse(_genai_events())
        list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="Hi"))

        async def run_async():
            await fake.async_client().chat.completions.create(model="gpt-4o-mini",
                                                              messages=[{"role": "user", "content": "Hi"}])
            await an.async_client().messages.create(model="claude-sonnet-4-5", max_tokens=10,
                                                    messages=[{"role": "user", "content": "Hi"}])
            server.queue_sse(_genai_events())
            async for _ in await client.aio.models.generate_content_stream(model="gemini-2.0-flash", contents="Hi"):
                pass

        asyncio.run(run_async())


# --- off by default ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "false", "no_content", "FALSE"])
def test_no_content_is_recorded_unless_asked_for(exporter, monkeypatch, value):
    if value is not None:
        monkeypatch.setenv(ENV, value)
    _every_kind_of_call()
    spans = exporter.get_finished_spans()
    assert len(spans) == 11
    for span in spans:
        assert not [k for k in span.attributes if k in CONTENT_KEYS or k.startswith("ai_cost.content")], span.name
        # and no prompt or completion text anywhere in the span
        text = json.dumps({k: str(v) for k, v in span.attributes.items()})
        assert "Hello" not in text and "Be brief" not in text and "This is a test" not in text


# --- on ---------------------------------------------------------------------------------------


def test_every_supported_call_records_its_messages(exporter, capture):
    _every_kind_of_call()
    spans = exporter.get_finished_spans()
    assert len(spans) == 11
    user_hi = [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
    for span in spans:
        content = _content_of(span)
        assert content["gen_ai.input.messages"] == user_hi, span.name
        (out,) = content["gen_ai.output.messages"]
        assert out["role"] == "assistant" and out["finish_reason"] == "stop"
        assert [p["type"] for p in out["parts"]] == ["text"]
        assert out["parts"][0]["content"] in ("Hello there", "This is a test.", "Hello there, friend.", "Hello")
    with_system = [s for s in spans if "gen_ai.system_instructions" in s.attributes]
    assert len(with_system) == 3  # Responses instructions, Anthropic system, Gemini system_instruction
    for span in with_system:
        assert _content_of(span)["gen_ai.system_instructions"][0]["content"].startswith("Be brief")


def test_openai_chat_history_with_tools_images_and_a_streamed_tool_call(exporter, capture):
    calls = [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "weather", "arguments": ""}}]
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": calls}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0,
                              "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
                              "finish_reason": None}]},
        {**base, "choices": [{"index": 0,
                              "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
                              "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    fake = FakeOpenAI(chat=lambda body: httpx2.Response(200, headers={"content-type": "text/event-stream"},
                                                         content=sse(chunks)))
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "locate", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "Paris"},
    ]
    list(fake.client().chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True))
    content = _content_of(exporter.get_finished_spans()[0])
    assert content["gen_ai.input.messages"] == [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [
            {"type": "text", "content": "Weather?"},
            {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBORw0K"},
            {"type": "uri", "modality": "image", "mime_type": None, "uri": "https://example.com/a.png"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_0", "name": "locate", "arguments": {}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_0", "response": "Paris"}]},
    ]
    assert content["gen_ai.output.messages"] == [{"role": "assistant", "finish_reason": "tool_call", "parts": [
        {"type": "tool_call", "id": "call_1", "name": "weather", "arguments": {"city": "Paris"}}]}]


def test_anthropic_tool_use_and_results(exporter, capture):
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant",
         "content": [{"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "18 C"}]},
    ]
    FakeAnthropic().client().messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=messages,
                                             system=[{"type": "text", "text": "Be brief."}])
    content = _content_of(exporter.get_finished_spans()[0])
    assert content["gen_ai.system_instructions"] == [{"type": "text", "content": "Be brief."}]
    assert content["gen_ai.input.messages"][1:] == [
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "tu_1", "name": "weather",
                                         "arguments": {"city": "Paris"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "tu_1", "response": "18 C"}]},
    ]


def test_a_stream_closed_early_records_only_what_was_read(exporter, capture):
    fake = FakeOpenAI(parts=["One", " two", " three"])
    stream = fake.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}],
                                                   stream=True)
    next(stream)  # the role chunk
    next(stream)  # "One"
    stream.close()
    (out,) = _content_of(exporter.get_finished_spans()[0])["gen_ai.output.messages"]
    assert out["parts"] == [{"type": "text", "content": "One"}]
    assert out["finish_reason"] == "error"  # no finish reason was read (the conventions' value for it)


def test_stream_output_is_bounded(exporter, capture, monkeypatch):
    monkeypatch.setattr(_content, "MAX_CHARS", 10)
    fake = FakeOpenAI(parts=["abcdef"] * 50)
    list(fake.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 40}],
                                               stream=True))
    span = exporter.get_finished_spans()[0]
    content = _content_of(span)
    assert content["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "abcdefabcd"}]
    assert content["gen_ai.input.messages"][0]["parts"] == [{"type": "text", "content": "x" * 10}]
    assert span.attributes["ai_cost.content.truncated"] is True


def test_google_genai_stream_closed_early_and_chat_history(exporter, capture):
    with FakeGoogleGenAI() as server:
        client = server.gemini_client()
        server.queue_sse(_genai_events())
        history = [types.Content(role="user", parts=[types.Part(text="Hi")]),
                   types.Content(role="model", parts=[types.Part(text="Hello")]),
                   types.Content(role="user", parts=[types.Part(text="Again")])]
        stream = client.models.generate_content_stream(model="gemini-2.0-flash", contents=history)
        next(stream)
        stream.close()
    content = _content_of(exporter.get_finished_spans()[0])
    assert [m["role"] for m in content["gen_ai.input.messages"]] == ["user", "assistant", "user"]
    assert content["gen_ai.output.messages"] == [{"role": "assistant", "parts": [{"type": "text", "content": "Hel"}],
                                                  "finish_reason": "error"}]


# --- the variable's other values, and the providers without capture ------------------------------


def test_a_bad_value_is_said_once_and_records_nothing(exporter, monkeypatch, caplog):
    monkeypatch.setenv(ENV, "maybe")
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.instrumentation"):
        FakeOpenAI().client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        FakeOpenAI().client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    said = [r.getMessage() for r in caplog.records if ENV in r.getMessage()]
    assert len(said) == 1 and "'maybe'" in said[0] and "not recorded" in said[0]
    assert all(not _content_of(s) for s in exporter.get_finished_spans())


@pytest.mark.parametrize("name", ["groq", "mistral", "bedrock"])
def test_providers_without_capture_say_so_once(name, monkeypatch, caplog, tracer_provider):
    import importlib

    module = importlib.import_module(f"otel_ai_cost.instrumentation.{name}")
    cls = next(getattr(module, n) for n in dir(module) if n.endswith("Instrumentor") and n != "BaseInstrumentor")
    monkeypatch.setenv(ENV, "true")
    monkeypatch.setattr(_content, "_logged", set())
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.instrumentation"):
        for _ in range(2):
            instrumentor = cls()
            instrumentor.instrument(tracer_provider=tracer_provider)
            instrumentor.uninstrument()
    said = [r.getMessage() for r in caplog.records if "not supported" in r.getMessage()]
    assert said == [f"otel-ai-cost: {ENV}=true, but message content capture is not supported for {name}: "
                    "its spans carry no message content"]


def test_providers_without_capture_are_silent_when_not_asked(monkeypatch, caplog, tracer_provider):
    from otel_ai_cost.instrumentation.groq import GroqInstrumentor

    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(_content, "_logged", set())
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.instrumentation"):
        instrumentor = GroqInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider)
        instrumentor.uninstrument()
    assert not [r for r in caplog.records if ENV in r.getMessage()]


def test_a_variable_set_after_instrument_is_said_at_the_first_call(monkeypatch, caplog, tracer_provider):
    import groq
    import httpx

    from _fake_groq import FakeAPI
    from otel_ai_cost.instrumentation.groq import GroqInstrumentor

    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(_content, "_logged", set())
    instrumentor = GroqInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        monkeypatch.setenv(ENV, "true")
        body = {"id": "c", "object": "chat.completion", "created": 1, "model": "llama-3.1-8b-instant",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
        fake = FakeAPI().reply(body).reply(body)
        client = groq.Groq(api_key="test", http_client=httpx.Client(transport=fake.transport()), max_retries=0)
        with caplog.at_level(logging.WARNING, logger="otel_ai_cost.instrumentation"):
            for _ in range(2):
                client.chat.completions.create(model="llama-3.1-8b-instant",
                                               messages=[{"role": "user", "content": "Hi"}])
    finally:
        instrumentor.uninstrument()
    said = [r.getMessage() for r in caplog.records if "not supported for groq" in r.getMessage()]
    assert len(said) == 1
