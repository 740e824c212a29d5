"""Streams that end with an error the provider sent: one rule for every provider (issue 11, item 3).

The span is an error with ``error.type`` = the provider's error type; it carries ``gen_ai.usage.*``
tokens and cost only when the provider reported usage in the stream before (or with) the error, and
then exactly that (``ai_cost.usage.source = provider``); the start estimate stays under
``ai_cost.estimate.*``. The budget (in memory) settles what the provider reported, zero when
nothing was, and no hold is left. What the SDK raises (or yields) is what it raises uninstrumented.

Bodies: the recorded provider streams already in tests/fixtures/recorded/ (their provenance is in
PROVENANCE*.json there), cut where the error happens, followed by the provider's error event in
its documented format. The shared recordings hold no stream that ended with an error event (no
``event: error``, ``response.failed`` or ``overloaded_error`` in any of them), so the error events
are written from the providers' documentation, named at each one below. Bedrock's binary event
streams are encoded by ``_fake_bedrock`` (the documented ``:message-type: exception`` frames).

Prices (the packaged catalog, USD per 1M tokens): claude-3-haiku-20240307 0.25 in / 1.25 out;
gemini-2.5-flash 0.30 in / 2.50 out (thinking billed as output); mistral-tiny 0.25 / 0.25;
command-r-08-2024 0.15 / 0.60; gpt-4o-mini-2024-07-18 0.15 / 0.60; llama3-8b-8192 (retired, not
packaged) 0.05 / 0.08 as last listed on groq.com/pricing, given in a user catalog.
"""
from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any, Callable, List, Optional, Tuple

import anthropic
import cohere
import groq
import httpx
import httpx2
import openai
import pytest
from mistralai.client import Mistral
from opentelemetry.trace import StatusCode

from _cassettes import Cassette
from _fake_bedrock import FakeBedrock, event_stream_reply
from _fake_google_genai import FakeGoogleGenAI, Reply, error_body
from _fake_groq import FakeAPI
from _fake_openai import recorded_responses_stream
from conftest import Pipeline
from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime
from otel_ai_cost.budgets._model import to_nanos
from otel_ai_cost.instrumentation.anthropic import AnthropicInstrumentor
from otel_ai_cost.instrumentation.bedrock import BedrockInstrumentor
from otel_ai_cost.instrumentation.cohere import CohereInstrumentor
from otel_ai_cost.instrumentation.google_genai import GoogleGenAIInstrumentor
from otel_ai_cost.instrumentation.groq import GroqInstrumentor
from otel_ai_cost.instrumentation.mistral import MistralInstrumentor
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

M = Decimal(1_000_000)
TRACELOOP = "traceloop/openllmetry/packages/"
GROQ = (TRACELOOP + "opentelemetry-instrumentation-groq/tests/traces/cassettes/test_chat_tracing/"
        "test_chat_streaming_legacy.yaml")
ANTHROPIC = (TRACELOOP + "opentelemetry-instrumentation-anthropic/tests/cassettes/test_messages/"
             "test_anthropic_message_streaming_legacy.yaml")
MISTRAL = (TRACELOOP + "opentelemetry-instrumentation-mistralai/tests/cassettes/test_chat/"
           "test_mistralai_streaming_chat_legacy.yaml")
COHERE = (TRACELOOP + "opentelemetry-instrumentation-cohere/tests/cassettes/test_chat/"
          "test_cohere_v2_chat_legacy_with_streaming.yaml")
GEMINI = ("Arize-ai/openinference/python/instrumentation/openinference-instrumentation-google-genai/tests/cassettes/"
          "test_instrumentation/test_validate_token_counts_stream.yaml")
OPENAI_CHAT = ("open-telemetry/opentelemetry-python-contrib/instrumentation-genai/"
               "opentelemetry-instrumentation-openai-v2/tests/cassettes/test_chat_completion_streaming.yaml")


# --- helpers ------------------------------------------------------------------------------------


def recorded_events(path: str) -> Tuple[List[bytes], dict]:
    """The SSE events of a recorded stream (each with its separator), and the recorded request."""
    interaction = Cassette(path).interactions[0]
    content = interaction.content
    sep = b"\r\n\r\n" if b"\r\n\r\n" in content else b"\n\n"
    return [event + sep for event in content.split(sep) if event.strip()], dict(interaction.request_json)


def sse_event(data: dict, name: Optional[str] = None) -> bytes:
    return (f"event: {name}\n" if name else "").encode() + b"data: " + json.dumps(data).encode() + b"\n\n"


Seen = Tuple[int, Optional[type], Optional[str]]


def consume(stream: Any, after_first: Optional[Callable[[], None]] = None) -> Seen:
    """Read a stream as a user does: (items read, the exception's type, its message)."""
    count = 0
    try:
        for _ in stream:
            count += 1
            if count == 1 and after_first is not None:
                after_first()
    except Exception as exc:  # what the SDK raised: compared with the uninstrumented run
        return count, type(exc), str(exc)
    return count, None, None


@pytest.fixture
def budgeted(close_later):
    """A pipeline with an in-memory $10 budget, ``instrumentor`` instrumented against it."""

    def make(instrumentor: Any, catalog: Any = None) -> Pipeline:
        kwargs = {"catalog": catalog} if catalog is not None else {}
        p = close_later(Pipeline(None, budgets=[Budget("team", Decimal(10), lifetime())],
                                 budget_store=MemoryBudgetStore(), **kwargs))
        instrumentor.instrument(tracer_provider=p.provider, meter_provider=p.meter_provider, **kwargs)
        p.instrumentor = instrumentor  # close() uninstruments it
        return p

    return make


class Held:
    """Records, after the first item read, what the budget holds: the proof that a hold was taken."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.reserved: List[int] = []

    def __call__(self) -> None:
        self.reserved.append(self.p.store.spent("team", "", ["lifetime"]).reserved)


def failed_span(p: Pipeline, kind: str) -> dict:
    (span,) = p.spans()
    a = dict(span.attributes)
    assert span.status.status_code is StatusCode.ERROR
    assert a["error.type"] == kind
    assert a["ai_cost.estimate.input_tokens"] > 0  # the start estimate stays, under our own names
    return a


def assert_no_usage(a: dict) -> None:
    assert [k for k in a if k.startswith("gen_ai.usage.")] == []
    assert "ai_cost.usage.source" not in a


def assert_usage(a: dict, input_tokens: int, output_tokens: int, cost: Decimal) -> None:
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (input_tokens, output_tokens)
    assert a["ai_cost.usage.source"] == "provider"
    assert a["gen_ai.usage.cost.amount"] == float(cost)


def assert_settled(p: Pipeline, held: Held, cost: Decimal) -> None:
    assert held.reserved and held.reserved[0] > 0  # a hold was taken while the stream was read...
    spend = p.store.spent("team", "", ["lifetime"])
    assert spend.reserved == 0  # ...and none is left
    assert spend.spent == to_nanos(cost)


def _groq_catalog() -> Any:
    from otel_ai_cost.pricing import Catalog, default_catalog
    from otel_ai_cost.pricing._catalog import model_from_dict

    extra = model_from_dict({"id": "llama3-8b-8192", "provider": "groq", "prices": {"input": "0.05", "output": "0.08"}})
    return Catalog(list(default_catalog().entries()) + [extra])


# --- OpenAI-compatible chat streams: Groq, OpenAI ---------------------------------------------

# console.groq.com/docs/errors: the error object {"error": {"message", "type", "code"}}, sent in a
# stream as an ``event: error``.
GROQ_ERROR = sse_event({"error": {"message": "Internal Server Error", "type": "internal_server_error"}}, "error")


def _groq_run(body: bytes, request: dict, after_first: Optional[Callable[[], None]] = None) -> Seen:
    client = groq.Groq(api_key="test", max_retries=0,
                       http_client=httpx.Client(transport=FakeAPI().reply(body).transport()))
    return consume(client.chat.completions.create(**request), after_first)


def test_groq_error_event_before_any_usage_has_no_usage_and_releases_the_hold(budgeted):
    events, request = recorded_events(GROQ)
    body = b"".join(events[:10]) + GROQ_ERROR  # nine text chunks, then the error (no x_groq usage yet)
    baseline = _groq_run(body, request)
    assert baseline[:2] == (10, groq.APIError)

    p = budgeted(GroqInstrumentor(), catalog=_groq_catalog())
    held = Held(p)
    assert _groq_run(body, request, held) == baseline  # the SDK raises what it raises uninstrumented
    a = failed_span(p, "internal_server_error")
    assert_no_usage(a)  # a count of the text read is not billed usage
    assert_settled(p, held, Decimal(0))


def test_groq_usage_reported_before_the_error_is_kept_and_settled(budgeted):
    events, request = recorded_events(GROQ)
    assert events[-1].startswith(b"data: [DONE]") and b'"x_groq"' in events[-2]
    body = b"".join(events[:-1]) + GROQ_ERROR  # the whole stream with its x_groq usage, then the error
    baseline = _groq_run(body, request)
    assert baseline[1] is groq.APIError

    p = budgeted(GroqInstrumentor(), catalog=_groq_catalog())
    held = Held(p)
    assert _groq_run(body, request, held) == baseline
    a = failed_span(p, "internal_server_error")
    # usage.jsonl for this recording: prompt_tokens 18, completion_tokens 73 (x_groq.usage)
    cost = (18 * Decimal("0.05") + 73 * Decimal("0.08")) / M
    assert_usage(a, 18, 73, cost)
    assert_settled(p, held, cost)



def test_groq_raw_stream_body_read_with_an_error_event(budgeted):
    # with_streaming_response, the body read as text: the SDK raises nothing, the span still ends
    # with the provider's error and no estimated usage.
    events, request = recorded_events(GROQ)
    body = b"".join(events[:10]) + GROQ_ERROR
    p = budgeted(GroqInstrumentor(), catalog=_groq_catalog())
    held = Held(p)
    client = groq.Groq(api_key="test", max_retries=0,
                       http_client=httpx.Client(transport=FakeAPI(network=True).reply(body).transport()))
    with client.chat.completions.with_streaming_response.create(**request) as raw:
        held()
        assert raw.read() == body
    assert_no_usage(failed_span(p, "internal_server_error"))
    assert_settled(p, held, Decimal(0))

# platform.openai.com/docs/guides/error-codes: a chat stream reports a failure as a chunk holding
# an ``error`` object (no event name).
OPENAI_ERROR = sse_event({"error": {"message": "The server had an error while processing your request.",
                                    "type": "server_error", "param": None, "code": None}})


def _openai_client(body: bytes, async_: bool = False) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    if async_:
        return openai.AsyncOpenAI(api_key="test", max_retries=0,
                                  http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    return openai.OpenAI(api_key="test", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def test_openai_chat_error_chunk_has_no_usage_async(budgeted):
    events, request = recorded_events(OPENAI_CHAT)
    body = b"".join(events[:3]) + OPENAI_ERROR  # role chunk, two text chunks, then the error

    async def run(after_first: Optional[Callable[[], None]] = None) -> Seen:
        stream = await _openai_client(body, async_=True).chat.completions.create(**request)
        count = 0
        try:
            async for _ in stream:
                count += 1
                if count == 1 and after_first is not None:
                    after_first()
        except Exception as exc:
            return count, type(exc), str(exc)
        return count, None, None

    baseline = asyncio.run(run())
    assert baseline[:2] == (3, openai.APIError)
    p = budgeted(OpenAIInstrumentor())
    held = Held(p)
    assert asyncio.run(run(held)) == baseline
    assert_no_usage(failed_span(p, "server_error"))
    assert_settled(p, held, Decimal(0))


# --- OpenAI Responses ---------------------------------------------------------------------------


def _responses_events() -> Tuple[List[dict], dict]:
    """The recorded Responses stream's events (JSON), and its final response (``response.completed``)."""
    raw = recorded_responses_stream()
    events = [json.loads(line[len(b"data: "):]) for line in raw.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1]["type"] == "response.completed"
    return events, events[-1]["response"]


def _named(events: List[dict]) -> bytes:
    return b"".join(sse_event(e, e["type"]) for e in events)


def _responses_run(body: bytes, after_first: Optional[Callable[[], None]] = None) -> Tuple[Seen, List[str]]:
    kinds: List[str] = []

    def read() -> Any:
        for event in _openai_client(body).responses.create(model="gpt-4o-mini", input="Say this is a test",
                                                           stream=True):
            kinds.append(event.type)
            yield event

    return consume(read(), after_first), kinds


# platform.openai.com/docs/api-reference/responses-streaming: ``response.failed`` carries the
# response with its ``error`` ({code, message}); ``error`` is {type, code, message, param}.
def test_responses_failed_without_usage_releases_the_hold(budgeted):
    events, final = _responses_events()
    failed = {**final, "status": "failed", "usage": None,
              "error": {"code": "server_error", "message": "The model failed to generate a response."}}
    body = _named(events[:6] + [{"type": "response.failed", "sequence_number": 6, "response": failed}])
    baseline = _responses_run(body)
    assert baseline == ((7, None, None), [e["type"] for e in events[:6]] + ["response.failed"])  # no raise
    p = budgeted(OpenAIInstrumentor())
    held = Held(p)
    assert _responses_run(body, held) == baseline
    assert_no_usage(failed_span(p, "server_error"))
    assert_settled(p, held, Decimal(0))


def test_responses_failed_with_usage_settles_exactly_that(budgeted):
    events, final = _responses_events()
    failed = {**final, "status": "failed", "error": {"code": "server_error", "message": "The model failed."}}
    body = _named(events[:6] + [{"type": "response.failed", "sequence_number": 6, "response": failed}])
    p = budgeted(OpenAIInstrumentor())
    held = Held(p)
    assert _responses_run(body, held)[0] == (7, None, None)
    a = failed_span(p, "server_error")
    cost = (22 * Decimal("0.15") + 6 * Decimal("0.60")) / M  # the recorded usage: 22 in, 6 out
    assert_usage(a, 22, 6, cost)
    assert_settled(p, held, cost)


def test_responses_error_event_has_no_usage(budgeted):
    events, _ = _responses_events()
    error = {"type": "error", "code": "server_error", "message": "Something went wrong.", "param": None,
             "sequence_number": 6}
    body = _named(events[:6] + [error])
    baseline = _responses_run(body)
    assert baseline == ((7, None, None), [e["type"] for e in events[:6]] + ["error"])  # yielded, not raised
    p = budgeted(OpenAIInstrumentor())
    held = Held(p)
    assert _responses_run(body, held) == baseline
    assert_no_usage(failed_span(p, "server_error"))
    assert_settled(p, held, Decimal(0))


def test_responses_incomplete_is_not_an_error_and_is_billed(budgeted):
    events, final = _responses_events()
    incomplete = {**final, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    body = _named(events[:-1] + [{"type": "response.incomplete", "sequence_number": 99, "response": incomplete}])
    p = budgeted(OpenAIInstrumentor())
    held = Held(p)
    assert _responses_run(body, held)[0][1:] == (None, None)
    (span,) = p.spans()
    a = dict(span.attributes)
    assert span.status.status_code is StatusCode.UNSET and "error.type" not in a
    cost = (22 * Decimal("0.15") + 6 * Decimal("0.60")) / M
    assert_usage(a, 22, 6, cost)
    assert_settled(p, held, cost)


# --- Anthropic ----------------------------------------------------------------------------------

# docs.anthropic.com/en/api/messages-streaming#error-events: ``event: error`` with
# {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}.
ANTHROPIC_ERROR = sse_event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")


def _anthropic_client(body: bytes) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return anthropic.Anthropic(api_key="test", max_retries=0,
                               http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def test_anthropic_overloaded_before_message_start_has_no_usage(budgeted):
    events, request = recorded_events(ANTHROPIC)
    body = events[2] + ANTHROPIC_ERROR  # a ping (the SDK yields none), then the error: no message_start
    baseline = consume(_anthropic_client(body).messages.create(**request))
    assert baseline[:2] == (0, anthropic.APIStatusError)
    p = budgeted(AnthropicInstrumentor())
    held = Held(p)
    stream = _anthropic_client(body).messages.create(**request)
    held()  # the request was sent: its hold is taken
    assert consume(stream) == baseline
    assert_no_usage(failed_span(p, "overloaded_error"))
    assert_settled(p, held, Decimal(0))


def test_anthropic_overloaded_after_message_start_keeps_its_usage_with_the_stream_helper(budgeted):
    events, request = recorded_events(ANTHROPIC)
    assert b"message_start" in events[0]
    body = b"".join(events[:5]) + ANTHROPIC_ERROR  # message_start (17 in, 3 out), text, then the error
    request.pop("stream")

    def run(after_first: Optional[Callable[[], None]] = None) -> Seen:
        with _anthropic_client(body).messages.stream(**request) as stream:
            return consume(stream, after_first)

    baseline = run()
    assert baseline[1] is anthropic.APIStatusError
    p = budgeted(AnthropicInstrumentor())
    held = Held(p)
    assert run(held) == baseline
    a = failed_span(p, "overloaded_error")
    cost = (17 * Decimal("0.25") + 3 * Decimal("1.25")) / M  # message_start's usage, as reported
    assert_usage(a, 17, 3, cost)
    assert_settled(p, held, cost)


# --- Google GenAI -------------------------------------------------------------------------------

# cloud.google.com/apis/design/errors: a stream chunk {"error": {"code", "message", "status"}}.
GEMINI_ERROR = b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n'


def _gemini_run(body: bytes, after_first: Optional[Callable[[], None]] = None, vertex: bool = False) -> Seen:
    with FakeGoogleGenAI() as fake:
        fake.queue(Reply(200, body, [("Content-Type", "text/event-stream")]))
        client = fake.vertex_client() if vertex else fake.gemini_client()
        return consume(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Sum primes"),
                       after_first)


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini", "vertex"])
def test_gemini_error_chunk_first_has_no_usage(budgeted, vertex):
    events, _ = recorded_events(GEMINI)
    body = GEMINI_ERROR + events[0]
    from google.genai import errors

    baseline = _gemini_run(body, vertex=vertex)
    assert baseline[:2] == (0, errors.ServerError)
    p = budgeted(GoogleGenAIInstrumentor())
    assert _gemini_run(body, vertex=vertex) == baseline
    assert_no_usage(failed_span(p, "UNAVAILABLE"))
    spend = p.store.spent("team", "", ["lifetime"])
    assert (spend.spent, spend.reserved) == (0, 0)


def test_gemini_error_after_a_chunk_keeps_the_usage_it_reported(budgeted):
    events, _ = recorded_events(GEMINI)
    body = events[0] + GEMINI_ERROR
    baseline = _gemini_run(body)
    assert baseline[0] == 1
    p = budgeted(GoogleGenAIInstrumentor())
    held = Held(p)
    assert _gemini_run(body, held) == baseline
    a = failed_span(p, "UNAVAILABLE")
    # The first recorded chunk: promptTokenCount 32, candidatesTokenCount 22, thoughtsTokenCount 240.
    cost = (32 * Decimal("0.30") + (22 + 240) * Decimal("2.50")) / M
    assert_usage(a, 32, 262, cost)
    assert_settled(p, held, cost)



def test_gemini_http_error_of_a_stream_is_not_a_stream_error(budgeted):
    # google-genai sends a stream's request when it is first read: an HTTP 429 then comes through
    # the stream, and is the SDK's exception class as for any call, not an error inside the stream.
    from google.genai import errors

    def run() -> Seen:
        with FakeGoogleGenAI() as fake:
            fake.queue_json(error_body(429, "Resource has been exhausted", "RESOURCE_EXHAUSTED"), status=429)
            client = fake.gemini_client()
            return consume(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Sum primes"))

    baseline = run()
    assert baseline[:2] == (0, errors.ClientError)
    p = budgeted(GoogleGenAIInstrumentor())
    assert run() == baseline
    assert_no_usage(failed_span(p, "ClientError"))

# --- Bedrock ------------------------------------------------------------------------------------

NOVA = "amazon.nova-micro-v1:0"
BEDROCK_MESSAGES = [{"role": "user", "content": [{"text": "Summarise the refund policy in one line."}]}]


# docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html: the stream's
# error members (modelStreamErrorException, internalServerException, throttlingException, ...).
@pytest.mark.parametrize("kind", ["modelStreamErrorException", "internalServerException"])
def test_bedrock_converse_stream_exception_event(budgeted, kind):
    from botocore.exceptions import EventStreamError

    events = [("messageStart", {"role": "assistant"}),
              ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Refunds"}}),
              (kind, {"message": "The model failed.", "originalStatusCode": 500})]

    def run(after_first: Optional[Callable[[], None]] = None) -> Seen:
        with FakeBedrock([event_stream_reply(f"/model/{NOVA}/converse-stream", events)]) as fake:
            stream = fake.client().converse_stream(modelId=NOVA, messages=BEDROCK_MESSAGES)["stream"]
            return consume(stream, after_first)

    baseline = run()
    assert baseline[:2] == (2, EventStreamError)
    p = budgeted(BedrockInstrumentor())
    held = Held(p)
    assert run(held) == baseline
    assert_no_usage(failed_span(p, kind))
    assert_settled(p, held, Decimal(0))



def test_bedrock_invoke_stream_throttling_exception(budgeted):
    from botocore.exceptions import EventStreamError

    # InvokeModelWithResponseStream relays Anthropic's events as chunks; then a throttlingException.
    events = [("chunk", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
              ("throttlingException", {"message": "Too many tokens, please wait before trying again."})]
    model = "anthropic.claude-3-haiku-20240307-v1:0"
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
                       "messages": [{"role": "user", "content": "Hi"}]})

    def run(after_first: Optional[Callable[[], None]] = None) -> Seen:
        with FakeBedrock([event_stream_reply(f"/model/{model}/invoke-with-response-stream", events,
                                             invoke=True)]) as fake:
            stream = fake.client().invoke_model_with_response_stream(modelId=model, body=body)["body"]
            return consume(stream, after_first)

    baseline = run()
    assert baseline[:2] == (1, EventStreamError)
    p = budgeted(BedrockInstrumentor())
    held = Held(p)
    assert run(held) == baseline
    assert_no_usage(failed_span(p, "throttlingException"))
    assert_settled(p, held, Decimal(0))

# --- Mistral ------------------------------------------------------------------------------------

# docs.mistral.ai (API errors): {"object": "error", "message", "type", "param", "code"}; sent as
# a stream event, the SDK cannot read it as a CompletionEvent and raises.
MISTRAL_ERROR = sse_event({"object": "error", "message": "Service unavailable.", "type": "service_unavailable",
                           "param": None, "code": "3505"})


def _mistral_run(body: bytes, after_first: Optional[Callable[[], None]] = None) -> Seen:
    client = Mistral(api_key="test", client=httpx.Client(transport=FakeAPI().reply(body).transport()))
    return consume(client.chat.stream(model="mistral-tiny", messages=[
        {"role": "user", "content": "Tell me a joke about OpenTelemetry"}]), after_first)


def test_mistral_error_event_has_no_usage(budgeted):
    events, _ = recorded_events(MISTRAL)
    body = b"".join(events[:5]) + MISTRAL_ERROR
    baseline = _mistral_run(body)
    assert baseline[0] == 5 and baseline[1] is not None
    p = budgeted(MistralInstrumentor())
    held = Held(p)
    assert _mistral_run(body, held) == baseline
    assert_no_usage(failed_span(p, "service_unavailable"))
    assert_settled(p, held, Decimal(0))


def test_mistral_usage_before_the_error_is_kept(budgeted):
    events, _ = recorded_events(MISTRAL)
    assert b'"usage"' in events[-2]
    body = b"".join(events[:-1]) + MISTRAL_ERROR  # the usage chunk, then the error instead of [DONE]
    p = budgeted(MistralInstrumentor())
    held = Held(p)
    assert _mistral_run(body, held)[1] is not None
    usage = json.loads(events[-2][len(b"data: "):])["usage"]
    cost = (usage["prompt_tokens"] * Decimal("0.25") + usage["completion_tokens"] * Decimal("0.25")) / M
    assert_usage(failed_span(p, "service_unavailable"), usage["prompt_tokens"], usage["completion_tokens"], cost)
    assert_settled(p, held, cost)


# --- Cohere v2 ----------------------------------------------------------------------------------

# docs.cohere.com/reference/chat-stream: a failed generation ends with ``message-end`` whose
# ``finish_reason`` is ``ERROR`` (v2 streams have no error event of their own).
def _cohere_run(body: bytes, after_first: Optional[Callable[[], None]] = None) -> Seen:
    client = cohere.ClientV2(api_key="test", httpx_client=httpx.Client(transport=FakeAPI().reply(body).transport()))
    return consume(client.chat_stream(model="command-r-08-2024",
                                      messages=[{"role": "user", "content": "Tell me a joke, pirate style"}]),
                   after_first)


@pytest.mark.parametrize("billed", [None, {"input_tokens": 7, "output_tokens": 12}])
def test_cohere_message_end_error(budgeted, billed):
    events, _ = recorded_events(COHERE)
    delta: dict = {"finish_reason": "ERROR"}
    if billed is not None:
        delta["usage"] = {"billed_units": billed, "tokens": {"input_tokens": 69, "output_tokens": 13}}
    body = b"".join(events[:10]) + sse_event({"type": "message-end", "delta": delta}, "message-end")
    baseline = _cohere_run(body)
    assert baseline == (11, None, None)  # the SDK yields the event, raises nothing
    p = budgeted(CohereInstrumentor())
    held = Held(p)
    assert _cohere_run(body, held) == baseline
    a = failed_span(p, "ERROR")
    if billed is None:
        assert_no_usage(a)
        assert_settled(p, held, Decimal(0))
    else:
        cost = (7 * Decimal("0.15") + 12 * Decimal("0.60")) / M  # the billed units
        assert_usage(a, 7, 12, cost)
        assert_settled(p, held, cost)


# --- what is not a provider error ---------------------------------------------------------------


def test_a_broken_connection_is_not_a_provider_error():
    from otel_ai_cost.instrumentation._core._stream_errors import provider_error_type

    request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")
    assert provider_error_type(openai.APIConnectionError(request=request)) is None
    assert provider_error_type(ConnectionResetError()) is None
    assert provider_error_type(openai.APIError("x", request, body={"type": "server_error"})) == "server_error"
