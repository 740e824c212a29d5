"""OpenAI prompt-cache writes and the input modalities (cached audio, Gemini's per-modality counts).

The real ``openai`` SDK parses faked HTTP (``httpx2.MockTransport``, tests/_fake_openai.py) and the real
``google-genai`` SDK talks to a loopback server (tests/_fake_google_genai.py). No recording has these
fields yet (none in the recorded cassettes carries ``cache_write_tokens`` or a cached AUDIO count), so
the bodies follow the documented formats:

- OpenAI ``usage.prompt_tokens_details.cache_write_tokens`` (chat completions) and
  ``usage.input_tokens_details.cache_write_tokens`` / ``cache_write_tokens_details`` (Responses API),
  as the API reference generates them into the SDK's types (openai 3.60.0:
  ``openai.types.completion_usage.PromptTokensDetails``, ``openai.types.responses.ResponseUsage``);
- Gemini ``usageMetadata`` (``GenerateContentResponseUsageMetadata``): ``promptTokensDetails`` and
  ``cacheTokensDetails`` are lists of ``ModalityTokenCount`` (TEXT, IMAGE, VIDEO, AUDIO),
  https://ai.google.dev/api/generate-content#UsageMetadata.

Costs are worked out by hand from the stated list prices (USD per 1M tokens), in Decimal.
"""
from __future__ import annotations

import json
from decimal import Decimal

import httpx2
import pytest

from _fake_google_genai import FakeGoogleGenAI, generate_response
from _fake_openai import FakeOpenAI, chat_chunks, chat_completion, response_object, sse
from otel_ai_cost.cost import Usage, compute_cost
from otel_ai_cost.instrumentation._chat import chat_usage
from otel_ai_cost.pricing import default_catalog

M = Decimal(1_000_000)
MESSAGES = [{"role": "user", "content": "Summarise the attached contract."}]

# gpt-6-sol, OpenAI list price (https://developers.openai.com/api/docs/pricing, as the catalog cites
# it): input $2, cached input $0.20, cache writes $2.50 (1.25x input), output $10 per 1M tokens.
GPT_6_SOL = {"input": Decimal(2), "cache_read": Decimal("0.2"), "cache_write": Decimal("2.5"), "output": Decimal(10)}

CHAT_USAGE_WITH_WRITES = {
    "prompt_tokens": 5000, "completion_tokens": 200, "total_tokens": 5200,
    "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 3000, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 50, "audio_tokens": 0},
}
# 976 uncached (5000 - 1024 read - 3000 written) x $2 + 1024 x $0.20 + 3000 x $2.50 + 200 out x $10
CHAT_EXPECTED = (976 * GPT_6_SOL["input"] + 1024 * GPT_6_SOL["cache_read"] + 3000 * GPT_6_SOL["cache_write"]
                 + 200 * GPT_6_SOL["output"]) / M


def _span(span_exporter):
    (span,) = span_exporter.get_finished_spans()
    return dict(span.attributes)


def _amount(attrs, name="gen_ai.usage.cost.amount") -> Decimal:
    return Decimal(str(attrs[name]))


def _fake_chat(body_for):
    return FakeOpenAI(chat=lambda body: body_for(body))


# --- OpenAI cache writes ----------------------------------------------------------------------


def test_chat_completion_cache_writes_are_read_and_priced(openai_instrumentor, span_exporter):
    fake = _fake_chat(lambda body: httpx2.Response(200, json=chat_completion("gpt-6-sol", CHAT_USAGE_WITH_WRITES)))
    completion = fake.client().chat.completions.create(model="gpt-6-sol", messages=MESSAGES)
    assert completion.usage.prompt_tokens_details.cache_write_tokens == 3000  # the SDK parsed it

    a = _span(span_exporter)
    assert a["gen_ai.usage.input_tokens"] == 5000
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert a["gen_ai.usage.cache_write.input_tokens"] == 3000
    assert a["gen_ai.usage.output_tokens"] == 200
    assert _amount(a) == CHAT_EXPECTED == Decimal("0.0116568")
    assert _amount(a, "ai_cost.cost.cache_write") == 3000 * GPT_6_SOL["cache_write"] / M  # 0.0075
    assert _amount(a, "ai_cost.cost.input") == 976 * GPT_6_SOL["input"] / M
    assert a["ai_cost.pricing.model"] == "gpt-6-sol"


def test_chat_stream_cache_writes_come_from_the_usage_chunk(openai_instrumentor, span_exporter):
    def stream(body):
        assert body["stream_options"] == {"include_usage": True}
        chunks = chat_chunks(["The", " contract", "."], model="gpt-6-sol", usage=CHAT_USAGE_WITH_WRITES,
                             include_usage=True)
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse(chunks))

    fake = _fake_chat(stream)
    chunks = list(fake.client().chat.completions.create(model="gpt-6-sol", messages=MESSAGES, stream=True))
    assert all(chunk.choices for chunk in chunks)  # the usage chunk we asked for stays hidden
    a = _span(span_exporter)
    assert a["ai_cost.usage.source"] == "provider"
    assert a["gen_ai.usage.cache_write.input_tokens"] == 3000
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert _amount(a) == CHAT_EXPECTED


RESPONSES_USAGE_WITH_WRITES = {
    "input_tokens": 8000, "output_tokens": 300, "total_tokens": 8300,
    "input_tokens_details": {"cached_tokens": 2048, "cache_write_tokens": 4000,
                             "cache_write_tokens_details": {"ttl_30m_tokens": 4000, "ttl_12h_tokens": 0}},
    "output_tokens_details": {"reasoning_tokens": 100},
}
# 1952 uncached (8000 - 2048 - 4000) x $2 + 2048 x $0.20 + 4000 x $2.50 + 300 out x $10 = 0.0173136
RESPONSES_EXPECTED = (1952 * GPT_6_SOL["input"] + 2048 * GPT_6_SOL["cache_read"]
                      + 4000 * GPT_6_SOL["cache_write"] + 300 * GPT_6_SOL["output"]) / M


def _responses_fake(reply) -> FakeOpenAI:
    fake = FakeOpenAI(chat=lambda body: pytest.fail("only the Responses API is called"))
    original = fake.handle

    def handle(request: httpx2.Request) -> httpx2.Response:
        if not request.url.path.endswith("/responses"):
            return original(request)
        fake.requests.append(json.loads(request.read()))
        return reply()

    fake.handle = handle  # type: ignore[method-assign]
    return fake


def test_responses_cache_writes_are_read_and_priced(openai_instrumentor, span_exporter):
    body = response_object(model="gpt-6-sol", usage=RESPONSES_USAGE_WITH_WRITES)
    fake = _responses_fake(lambda: httpx2.Response(200, json=body))
    response = fake.client().responses.create(model="gpt-6-sol", input="Summarise the attached contract.")
    assert response.usage.input_tokens_details.cache_write_tokens == 4000

    a = _span(span_exporter)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (8000, 300)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 2048
    assert a["gen_ai.usage.cache_write.input_tokens"] == 4000
    assert a["gen_ai.usage.reasoning.output_tokens"] == 100
    assert _amount(a) == RESPONSES_EXPECTED == Decimal("0.0173136")


def test_responses_stream_cache_writes_come_from_the_final_response(openai_instrumentor, span_exporter):
    final = response_object(model="gpt-6-sol", usage=RESPONSES_USAGE_WITH_WRITES)
    events = [
        {"type": "response.created", "sequence_number": 0,
         "response": {**final, "status": "in_progress", "output": [], "usage": None}},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_fake", "output_index": 0,
         "content_index": 0, "delta": "This is a test.", "logprobs": []},
        {"type": "response.completed", "sequence_number": 2, "response": final},
    ]
    fake = _responses_fake(lambda: httpx2.Response(200, headers={"content-type": "text/event-stream"},
                                                   content=sse(events, named=True)))
    seen = [event.type for event in fake.client().responses.create(model="gpt-6-sol", input="Hi", stream=True)]
    assert seen == ["response.created", "response.output_text.delta", "response.completed"]
    a = _span(span_exporter)
    assert a["ai_cost.usage.source"] == "provider"
    assert a["gen_ai.usage.cache_write.input_tokens"] == 4000
    assert _amount(a) == RESPONSES_EXPECTED


def test_responses_12_hour_cache_writes_are_priced_at_their_price(openai_instrumentor, span_exporter):
    usage = {"input_tokens": 10000, "output_tokens": 100, "total_tokens": 10100,
             "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 6000,
                                      "cache_write_tokens_details": {"ttl_30m_tokens": 4000, "ttl_12h_tokens": 2000}},
             "output_tokens_details": {"reasoning_tokens": 0}}
    body = response_object(model="gpt-6-sol", usage=usage)
    fake = _responses_fake(lambda: httpx2.Response(200, json=body))
    fake.client().responses.create(model="gpt-6-sol", input="Hi", prompt_cache_options={"ttl": "12h"})
    assert fake.requests[0]["prompt_cache_options"] == {"ttl": "12h"}
    a = _span(span_exporter)
    assert a["gen_ai.usage.cache_write.input_tokens"] == 6000
    # gpt-6-sol 12-hour retention writes: $5 per 1M (2x input; OpenAI list price as LiteLLM 1.109.1
    # transcribes it, cache_creation_input_token_cost_above_12hr). 4000 uncached x $2 + 4000 30-minute
    # writes x $2.50 + 2000 12-hour writes x $5 + 100 out x $10 = 0.029
    assert _amount(a, "ai_cost.cost.cache_write") == (4000 * Decimal("2.5") + 2000 * Decimal(5)) / M
    assert _amount(a) == (4000 * Decimal(2) + 4000 * Decimal("2.5") + 2000 * Decimal(5) + 100 * Decimal(10)) / M
    assert _amount(a) == Decimal("0.029")


# --- OpenAI cached audio ----------------------------------------------------------------------


def test_openai_audio_with_cached_tokens_counts_the_cache_as_text_first(openai_instrumentor, span_exporter):
    """Chat completions report cached_tokens and audio_tokens, not their overlap: the counts force
    1024 + 1500 - 2000 = 524 cached audio tokens (the cache is taken to hold text first)."""
    usage = {"prompt_tokens": 2000, "completion_tokens": 100, "total_tokens": 2100,
             "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 1500},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
    model = "gpt-4o-audio-preview-2024-12-17"
    fake = _fake_chat(lambda body: httpx2.Response(200, json=chat_completion(model, usage)))
    fake.client().chat.completions.create(model=model, messages=MESSAGES)
    a = _span(span_exporter)
    # gpt-4o-audio-preview (OpenAI list price, https://platform.openai.com/docs/pricing): text $2.50,
    # audio input $40, output $10 per 1M; the catalog has no cache price for it, so cache reads and
    # cached audio fall back to the input price. 500 cached text + 524 cached audio at $2.50,
    # 976 uncached audio at $40, no uncached text, 100 out at $10.
    assert _amount(a, "ai_cost.cost.cache_read") == 500 * Decimal("2.5") / M
    assert _amount(a, "ai_cost.cost.cache_read_audio") == 524 * Decimal("2.5") / M
    assert _amount(a, "ai_cost.cost.audio_input") == 976 * Decimal(40) / M
    assert "ai_cost.cost.input" not in a
    assert _amount(a) == (1024 * Decimal("2.5") + 976 * Decimal(40) + 100 * Decimal(10)) / M == Decimal("0.0426")


def test_reported_cached_audio_is_used_as_given():
    """The realtime usage shape says which cached tokens are audio (cached_tokens_details.audio_tokens)."""
    usage = chat_usage({"prompt_tokens": 3000, "completion_tokens": 10,
                        "prompt_tokens_details": {"cached_tokens": 2500, "audio_tokens": 2000,
                                                  "cached_tokens_details": {"text_tokens": 700, "audio_tokens": 1800}}})
    assert usage is not None
    assert (usage.audio_input_tokens, usage.cache_read_audio_input_tokens, usage.cache_read_input_tokens) == (
        2000, 1800, 2500)
    cost = compute_cost(usage, default_catalog().resolve("gpt-realtime", "openai"))
    # gpt-realtime (OpenAI list price, https://developers.openai.com/api/docs/pricing): text $4, cached
    # text $0.40, cached audio $0.40, audio input $32, output $16 per 1M.
    # 300 uncached text (3000 - 2500 - 200), 700 cached text, 1800 cached audio, 200 uncached audio.
    assert cost.breakdown == {
        "input": 300 * Decimal(4) / M, "cache_read": 700 * Decimal("0.4") / M,
        "cache_read_audio": 1800 * Decimal("0.4") / M, "audio_input": 200 * Decimal(32) / M,
        "output": 10 * Decimal(16) / M,
    }


def test_groq_and_mistral_share_the_cache_write_reader():
    usage = chat_usage({"prompt_tokens": 100, "completion_tokens": 5,
                        "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 40}}, audio=False)
    assert usage == Usage(input_tokens=100, output_tokens=5, cache_read_input_tokens=10, cache_write_input_tokens=40)


# --- Gemini: every input modality at its own price ------------------------------------------


@pytest.fixture
def fake_gemini():
    with FakeGoogleGenAI() as server:
        yield server


# gemini-2.5-flash, Gemini API paid tier (https://ai.google.dev/gemini-api/docs/pricing): input
# (text / image / video) $0.30, audio input $1, context caching $0.03 (text / image / video) and
# $0.10 (audio), output $2.50 per 1M tokens.
FLASH_USAGE = {
    "promptTokenCount": 15000, "cachedContentTokenCount": 7000, "candidatesTokenCount": 100,
    "totalTokenCount": 15100,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5000}, {"modality": "IMAGE", "tokenCount": 1290},
                            {"modality": "VIDEO", "tokenCount": 3710}, {"modality": "AUDIO", "tokenCount": 5000}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 3000}, {"modality": "AUDIO", "tokenCount": 4000}],
    "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 100}],
}
# uncached: 2000 text + 1290 image + 3710 video = 7000 at $0.30, 1000 audio at $1; cached: 3000 text
# at $0.03, 4000 audio at $0.10; 100 out at $2.50.
FLASH_EXPECTED = (7000 * Decimal("0.30") + 1000 * Decimal(1) + 3000 * Decimal("0.03") + 4000 * Decimal("0.10")
                  + 100 * Decimal("2.50")) / M


def test_gemini_generate_content_prices_each_modality(google_genai_instrumentor, span_exporter, fake_gemini):
    fake_gemini.queue_json(generate_response(FLASH_USAGE, model="gemini-2.5-flash"))
    client = fake_gemini.gemini_client()
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Describe the recording.",
                                              config={"cached_content": "cachedContents/meeting"})
    assert response.usage_metadata.cache_tokens_details[1].token_count == 4000  # the SDK parsed it
    a = _span(span_exporter)
    assert a["gen_ai.usage.input_tokens"] == 15000
    assert a["gen_ai.usage.cache_read.input_tokens"] == 7000
    assert _amount(a, "ai_cost.cost.input") == 7000 * Decimal("0.30") / M
    assert _amount(a, "ai_cost.cost.audio_input") == 1000 * Decimal(1) / M
    assert _amount(a, "ai_cost.cost.cache_read") == 3000 * Decimal("0.03") / M
    assert _amount(a, "ai_cost.cost.cache_read_audio") == 4000 * Decimal("0.10") / M
    assert _amount(a) == FLASH_EXPECTED == Decimal("0.00384")


def test_gemini_stream_prices_the_last_usage_by_modality(google_genai_instrumentor, span_exporter, fake_gemini):
    # gemini-2.5-flash-lite, Gemini API paid tier (https://ai.google.dev/gemini-api/docs/pricing):
    # input $0.10, audio input $0.30, context caching $0.01 (text) and $0.03 (audio), output $0.40.
    final_usage = {
        "promptTokenCount": 3000, "cachedContentTokenCount": 1500, "candidatesTokenCount": 40,
        "totalTokenCount": 3040,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1000}, {"modality": "AUDIO", "tokenCount": 2000}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 500}, {"modality": "AUDIO", "tokenCount": 1000}],
    }
    first_usage = {key: value for key, value in final_usage.items() if key != "candidatesTokenCount"}
    fake_gemini.queue_sse([
        {"candidates": [{"content": {"parts": [{"text": "The speaker"}], "role": "model"}, "index": 0}],
         "usageMetadata": {**first_usage, "candidatesTokenCount": 3}, "modelVersion": "gemini-2.5-flash-lite",
         "responseId": "s-2"},
        {"candidates": [{"content": {"parts": [{"text": " says hello."}], "role": "model"}, "finishReason": "STOP",
                         "index": 0}],
         "usageMetadata": final_usage, "modelVersion": "gemini-2.5-flash-lite", "responseId": "s-2"},
    ])
    client = fake_gemini.gemini_client()
    text = "".join(chunk.text for chunk in client.models.generate_content_stream(
        model="gemini-2.5-flash-lite", contents="Transcribe", config={"cached_content": "cachedContents/a"}))
    assert text == "The speaker says hello."
    a = _span(span_exporter)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (3000, 40)
    # 500 uncached text x $0.10 + 500 cached text x $0.01 + 1000 cached audio x $0.03
    # + 1000 uncached audio x $0.30 + 40 out x $0.40 = 0.000401
    expected = (500 * Decimal("0.10") + 500 * Decimal("0.01") + 1000 * Decimal("0.03") + 1000 * Decimal("0.30")
                + 40 * Decimal("0.40")) / M
    assert _amount(a) == expected == Decimal("0.000401")
    assert _amount(a, "ai_cost.cost.cache_read_audio") == 1000 * Decimal("0.03") / M


def test_gemini_multimodal_embeddings_price_each_modality(google_genai_instrumentor, span_exporter, fake_gemini):
    # embedContent response with the UsageMetadata per modality (the documented UsageMetadata format).
    fake_gemini.queue_json({"embeddings": [{"values": [0.1, 0.2]}],
                            "usageMetadata": {"promptTokenCount": 8000, "totalTokenCount": 8000,
                                              "promptTokensDetails": [
                                                  {"modality": "TEXT", "tokenCount": 1000},
                                                  {"modality": "IMAGE", "tokenCount": 1000},
                                                  {"modality": "VIDEO", "tokenCount": 3000},
                                                  {"modality": "AUDIO", "tokenCount": 3000}]}})
    client = fake_gemini.gemini_client()
    client.models.embed_content(model="gemini-embedding-2", contents=["A clip of the meeting"])
    a = _span(span_exporter)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (8000, 0)
    # gemini-embedding-2, Gemini API paid tier (https://ai.google.dev/gemini-api/docs/pricing, as
    # LiteLLM 1.109.1 lists it): text $0.20, image $0.45, video $12, audio $6.50 per 1M tokens.
    assert _amount(a, "ai_cost.cost.input") == (1000 * Decimal("0.20") + 1000 * Decimal("0.45")
                                                + 3000 * Decimal(12)) / M
    assert _amount(a, "ai_cost.cost.audio_input") == 3000 * Decimal("6.5") / M
    assert _amount(a) == Decimal("0.05615")  # 0.03665 input + 0.0195 audio


def test_gemini_video_without_its_own_price_is_text(google_genai_instrumentor, span_exporter, fake_gemini):
    usage = {"promptTokenCount": 4000, "candidatesTokenCount": 10, "totalTokenCount": 4010,
             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 290},
                                     {"modality": "VIDEO", "tokenCount": 3710}]}
    fake_gemini.queue_json(generate_response(usage, model="gemini-2.5-flash"))
    client = fake_gemini.gemini_client()
    client.models.generate_content(model="gemini-2.5-flash", contents="Describe the video.")
    a = _span(span_exporter)
    # gemini-2.5-flash: Google prices text, image and video input alike ($0.30 per 1M), output $2.50.
    assert _amount(a) == (4000 * Decimal("0.30") + 10 * Decimal("2.50")) / M
    assert "ai_cost.cost.audio_input" not in a


def test_cached_audio_is_bounded_by_both_of_its_totals():
    from otel_ai_cost.cost import bound_usage

    bounded, clamped = bound_usage(Usage(input_tokens=100, output_tokens=1, cache_read_input_tokens=10,
                                         audio_input_tokens=50, cache_read_audio_input_tokens=30))
    assert bounded.cache_read_audio_input_tokens == 10  # at most the cache reads (and the audio)
    assert clamped == ("cache_read_audio_input_tokens",)
    bounded, _ = bound_usage(Usage(input_tokens=100, cache_write_input_tokens=20, cache_write_12h_input_tokens=40))
    assert bounded.cache_write_12h_input_tokens == 20
