"""Replay every recorded Gemini API / Vertex AI interaction through the real ``google-genai`` SDK.

Each cassette listed in ``fixtures/recorded/PROVENANCE-google-genai.json`` is served by a loopback
HTTP server (``_fake_google_genai``), and the SDK (``google.genai.Client``, its own HTTP stack) is
pointed at it with ``HttpOptions(base_url=...)``. The recorded REST body is turned back into the
SDK call (contents + GenerateContentConfig). The span's token attributes must equal what the real
API reported (``REPORTED`` below: the ``usage`` of these recordings in the shared ``usage.jsonl``,
copied verbatim), read with Gemini's rules, and the cost must equal the list price applied by hand.
"""
from __future__ import annotations

import gc
import json
from decimal import Decimal

import pytest
from google.genai import errors as genai_errors
from google.genai import types
from opentelemetry.trace import StatusCode

from _fake_google_genai import FakeGoogleGenAI

ARIZE = ("Arize-ai/openinference/python/instrumentation/openinference-instrumentation-google-genai/tests/"
         "cassettes/test_instrumentation/")
CONTRIB = ("open-telemetry/opentelemetry-python-contrib/instrumentation-genai/"
           "opentelemetry-instrumentation-google-genai/tests/generate_content/cassettes/")
VERTEXAI = ("open-telemetry/opentelemetry-python-contrib/instrumentation-genai/"
            "opentelemetry-instrumentation-vertexai/tests/cassettes/")
LOGFIRE = "pydantic/logfire/tests/otel_integrations/cassettes/test_google_genai/"

M = Decimal(1_000_000)

# usage.jsonl (shared fixture set), verbatim: what each recorded response reported.
REPORTED = {
    (ARIZE + "test_generate_content_with_tool.yaml", 0): {"candidatesTokenCount": 6,
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 6}], "promptTokenCount": 63,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 63}], "serviceTier": "standard",
        "totalTokenCount": 69},
    (ARIZE + "test_streaming_content_with_tool.yaml", 0): {"candidatesTokenCount": 6,
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 6}], "promptTokenCount": 63,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 63}], "serviceTier": "standard",
        "totalTokenCount": 69},
    (ARIZE + "test_validate_token_counts.yaml", 0): {"candidatesTokenCount": 341, "promptTokenCount": 32,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 32}], "serviceTier": "standard",
        "thoughtsTokenCount": 103, "toolUsePromptTokenCount": 720,
        "toolUsePromptTokensDetails": [{"modality": "TEXT", "tokenCount": 720}], "totalTokenCount": 1196},
    (ARIZE + "test_validate_token_counts_stream.yaml", 0): {"candidatesTokenCount": 477, "promptTokenCount": 32,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 32}], "serviceTier": "standard",
        "thoughtsTokenCount": 240, "toolUsePromptTokenCount": 764,
        "toolUsePromptTokensDetails": [{"modality": "TEXT", "tokenCount": 764}], "totalTokenCount": 1513},
    (CONTRIB + "test_non_streaming[logcontent-gemini-2.5-flash-vertexaiapi-sync-default].yaml", 0): {
        "candidatesTokenCount": 433, "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 433}],
        "promptTokenCount": 8, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
        "thoughtsTokenCount": 1477, "totalTokenCount": 1918, "trafficType": "ON_DEMAND"},
    (CONTRIB + "test_streaming[logcontent-gemini-2.5-flash-vertexaiapi-sync-default].yaml", 0): {
        "candidatesTokenCount": 388, "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 388}],
        "promptTokenCount": 8, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
        "thoughtsTokenCount": 2193, "totalTokenCount": 2589, "trafficType": "ON_DEMAND"},
    (LOGFIRE + "test_instrument_google_genai.yaml", 0): {"candidatesTokenCount": 9,
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 9}], "promptTokenCount": 42,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 42}], "totalTokenCount": 51},
    (LOGFIRE + "test_instrument_google_genai.yaml", 1): {"candidatesTokenCount": 9,
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 9}], "promptTokenCount": 58,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 58}], "totalTokenCount": 67},
}

# (input, output, reasoning) tokens by Gemini's rules, worked out by hand from REPORTED:
#   input = promptTokenCount + toolUsePromptTokenCount (the tool-use prompt is outside the prompt)
#   output = candidatesTokenCount + thoughtsTokenCount (the thoughts are outside the candidates)
EXPECTED_TOKENS = {
    (ARIZE + "test_generate_content_with_tool.yaml", 0): (63, 6, 0),
    (ARIZE + "test_streaming_content_with_tool.yaml", 0): (63, 6, 0),
    (ARIZE + "test_validate_token_counts.yaml", 0): (32 + 720, 341 + 103, 103),
    (ARIZE + "test_validate_token_counts_stream.yaml", 0): (32 + 764, 477 + 240, 240),
    (CONTRIB + "test_non_streaming[logcontent-gemini-2.5-flash-vertexaiapi-sync-default].yaml", 0):
        (8, 433 + 1477, 1477),
    (CONTRIB + "test_streaming[logcontent-gemini-2.5-flash-vertexaiapi-sync-default].yaml", 0): (8, 388 + 2193, 2193),
    (LOGFIRE + "test_instrument_google_genai.yaml", 0): (42, 9, 0),
    (LOGFIRE + "test_instrument_google_genai.yaml", 1): (58, 9, 0),
}

# List prices, USD per 1M tokens (ai.google.dev/gemini-api/docs/pricing, cloud.google.com/vertex-ai/
# generative-ai/pricing; standard tier, prompts <= 200k tokens):
#   Gemini API gemini-2.0-flash (and -001): input 0.10, output 0.40
#   Gemini API gemini-2.5-flash: input 0.30, output (thinking included) 2.50
#   Vertex AI gemini-2.5-flash: input 0.30, output (thinking included) 2.50
# Thinking tokens are billed as output; the tool-use prompt as input.
EXPECTED_COST = {
    (ARIZE + "test_generate_content_with_tool.yaml", 0): (63 * Decimal("0.10") + 6 * Decimal("0.40")) / M,  # 8.7e-6
    (ARIZE + "test_streaming_content_with_tool.yaml", 0): (63 * Decimal("0.10") + 6 * Decimal("0.40")) / M,
    (ARIZE + "test_validate_token_counts.yaml", 0): (752 * Decimal("0.30") + 444 * Decimal("2.50")) / M,  # 1335.6e-6
    (ARIZE + "test_validate_token_counts_stream.yaml", 0):
        (796 * Decimal("0.30") + 717 * Decimal("2.50")) / M,  # 2031.3e-6
    (CONTRIB + "test_non_streaming[logcontent-gemini-2.5-flash-vertexaiapi-sync-default].yaml", 0):
        (8 * Decimal("0.30") + 1910 * Decimal("2.50")) / M,  # 4777.4e-6
    (CONTRIB + "test_streaming[logcontent-gemini-2.5-flash-vertexaiapi-sync-default].yaml", 0):
        (8 * Decimal("0.30") + 2581 * Decimal("2.50")) / M,  # 6454.9e-6
    (LOGFIRE + "test_instrument_google_genai.yaml", 0): (42 * Decimal("0.10") + 9 * Decimal("0.40")) / M,  # 7.8e-6
    (LOGFIRE + "test_instrument_google_genai.yaml", 1): (58 * Decimal("0.10") + 9 * Decimal("0.40")) / M,  # 9.4e-6
}

RESPONSE_MODEL = {ARIZE: None, CONTRIB: "gemini-2.5-flash", LOGFIRE: "gemini-2.0-flash-001"}


def _prefix(path: str) -> str:
    return next(p for p in (ARIZE, CONTRIB, LOGFIRE) if path.startswith(p))


def sdk_call(interaction):
    """(model, contents, config) of the SDK call that sends the recorded request."""
    body = interaction.request_json
    config = dict(body.get("generationConfig") or {})
    for name in ("tools", "toolConfig", "systemInstruction", "safetySettings"):
        if name in body:
            config[name] = body[name]
    model = interaction.path.rsplit("/models/", 1)[1].split(":", 1)[0]
    return model, body["contents"], types.GenerateContentConfig.model_validate(config)


@pytest.fixture
def fake():
    with FakeGoogleGenAI() as server:
        yield server


def client_for(fake, path):
    return fake.vertex_client() if path.startswith(CONTRIB) else fake.gemini_client()


def _spans(span_exporter):
    return [s for s in span_exporter.get_finished_spans() if s.attributes.get("gen_ai.provider.name")]


def assert_span(span, path, index, fake):
    model = fake.requests[index]["path"].rsplit("/models/", 1)[1].split(":", 1)[0]
    provider = "gcp.vertex_ai" if path.startswith(CONTRIB) else "gcp.gemini"
    a = span.attributes
    assert span.name == f"generate_content {model}"
    assert span.status.status_code is StatusCode.UNSET
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"], a["gen_ai.request.model"]) == (
        "generate_content", provider, model)
    assert (a["server.address"], a["server.port"]) == ("127.0.0.1", fake.port)
    inp, out, reasoning = EXPECTED_TOKENS[(path, index)]
    assert a["gen_ai.usage.input_tokens"] == inp
    assert a["gen_ai.usage.output_tokens"] == out
    assert a.get("gen_ai.usage.reasoning.output_tokens", 0) == reasoning
    assert "gen_ai.usage.cache_read.input_tokens" not in a  # nothing was cached
    expected_model = RESPONSE_MODEL[_prefix(path)] or model
    assert a["gen_ai.response.model"] == expected_model
    assert isinstance(a["gen_ai.response.id"], str) and a["gen_ai.response.id"]
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["gen_ai.usage.cost.source"] == "local"
    assert Decimal(str(a["gen_ai.usage.cost.amount"])) == EXPECTED_COST[(path, index)]
    assert a["ai_cost.pricing.status"] == "priced"


def test_the_expected_tokens_follow_from_the_reported_usage():
    """The hand-written expectations are Gemini's rules applied to what the API reported."""
    for key, usage in REPORTED.items():
        inp = usage["promptTokenCount"] + usage.get("toolUsePromptTokenCount", 0)
        out = usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)
        assert EXPECTED_TOKENS[key] == (inp, out, usage.get("thoughtsTokenCount", 0))
        assert inp + out == usage["totalTokenCount"]


NON_STREAMING = [ARIZE + "test_generate_content_with_tool.yaml", ARIZE + "test_validate_token_counts.yaml",
                 CONTRIB + "test_non_streaming[logcontent-gemini-2.5-flash-vertexaiapi-sync-default].yaml",
                 LOGFIRE + "test_instrument_google_genai.yaml"]
STREAMING = [ARIZE + "test_streaming_content_with_tool.yaml", ARIZE + "test_validate_token_counts_stream.yaml",
             CONTRIB + "test_streaming[logcontent-gemini-2.5-flash-vertexaiapi-sync-default].yaml"]


@pytest.mark.parametrize("path", NON_STREAMING)
def test_generate_content_replays_with_exact_usage_and_cost(google_genai_instrumentor, span_exporter, fake, path):
    interactions = fake.serve_cassette(path)
    client = client_for(fake, path)
    for interaction in interactions:
        model, contents, config = sdk_call(interaction)
        response = client.models.generate_content(model=model, contents=contents, config=config)
        assert response.usage_metadata.prompt_token_count == REPORTED[(path, interaction.index)]["promptTokenCount"]
    fake.assert_done()
    spans = _spans(span_exporter)
    assert len(spans) == len(interactions)
    for index, span in enumerate(spans):
        assert_span(span, path, index, fake)


@pytest.mark.parametrize("path", NON_STREAMING)
async def test_async_generate_content_replays_with_exact_usage_and_cost(google_genai_instrumentor, span_exporter,
                                                                       fake, path):
    interactions = fake.serve_cassette(path)
    client = client_for(fake, path)
    for interaction in interactions:
        model, contents, config = sdk_call(interaction)
        await client.aio.models.generate_content(model=model, contents=contents, config=config)
    fake.assert_done()
    spans = _spans(span_exporter)
    assert len(spans) == len(interactions)
    for index, span in enumerate(spans):
        assert_span(span, path, index, fake)


@pytest.mark.parametrize("path", STREAMING)
def test_streams_replay_with_the_usage_of_the_last_chunk(google_genai_instrumentor, span_exporter, fake, path):
    (interaction,) = fake.serve_cassette(path)
    client = client_for(fake, path)
    model, contents, config = sdk_call(interaction)
    chunks = list(client.models.generate_content_stream(model=model, contents=contents, config=config))
    assert len(chunks) >= 1
    fake.assert_done()
    (span,) = _spans(span_exporter)
    assert_span(span, path, 0, fake)
    assert span.attributes["gen_ai.request.stream"] is True
    assert fake.requests[0]["query"].get("alt") == ["sse"]


@pytest.mark.parametrize("path", STREAMING)
async def test_async_streams_replay_with_the_usage_of_the_last_chunk(google_genai_instrumentor, span_exporter,
                                                                    fake, path):
    (interaction,) = fake.serve_cassette(path)
    client = client_for(fake, path)
    model, contents, config = sdk_call(interaction)
    stream = await client.aio.models.generate_content_stream(model=model, contents=contents, config=config)
    assert _spans(span_exporter) == []  # not ended before the user reads the stream
    chunks = [chunk async for chunk in stream]
    assert len(chunks) >= 1
    fake.assert_done()
    (span,) = _spans(span_exporter)
    assert_span(span, path, 0, fake)


def test_a_stream_abandoned_after_one_chunk_ends_its_span_with_the_usage_read(
        google_genai_instrumentor, span_exporter, fake):
    from otel_ai_cost.instrumentation import flush_abandoned_streams

    path = ARIZE + "test_validate_token_counts_stream.yaml"
    (interaction,) = fake.serve_cassette(path)
    client = fake.gemini_client()
    model, contents, config = sdk_call(interaction)
    stream = client.models.generate_content_stream(model=model, contents=contents, config=config)
    first = next(stream)
    assert first.usage_metadata.candidates_token_count == 22
    del stream, first
    gc.collect()
    assert flush_abandoned_streams(5.0)
    (span,) = _spans(span_exporter)
    a = span.attributes
    # The first chunk reported prompt 32, candidates 22, thoughts 240 (no tool-use prompt yet).
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (32, 22 + 240)
    assert Decimal(str(a["gen_ai.usage.cost.amount"])) == (32 * Decimal("0.30") + 262 * Decimal("2.50")) / M


def test_automatic_function_calling_makes_one_span_per_request(google_genai_instrumentor, span_exporter, fake):
    """The logfire recording is an automatic-function-calling exchange: two requests, each billed."""
    path = LOGFIRE + "test_instrument_google_genai.yaml"
    interactions = fake.serve_cassette(path)
    calls = []

    def get_current_weather(location: str) -> str:
        """Returns the current weather.

        Args:
          location: The city and state, e.g. San Francisco, CA
        """
        calls.append(location)
        return "rainy"

    client = fake.gemini_client()
    response = client.models.generate_content(
        model="gemini-2.0-flash-001", contents="What is the weather like in Boston?",
        config=types.GenerateContentConfig(tools=[get_current_weather]))
    assert calls == ["Boston, MA"]
    assert response.text
    fake.assert_done()
    # What the SDK sent is what was recorded, so the usage of each response is that request's.
    for sent, interaction in zip(fake.requests, interactions):
        assert sent["json"]["contents"] == interaction.request_json["contents"]
    spans = _spans(span_exporter)
    assert len(spans) == 2
    for index, span in enumerate(spans):
        assert_span(span, path, index, fake)


@pytest.mark.parametrize("name, status, error_class", [
    ("test_generate_content_missing_model.yaml", 404, genai_errors.ClientError),
    ("test_generate_content_invalid_role.yaml", 400, genai_errors.ClientError),
])
def test_recorded_vertex_errors_end_the_span_with_the_error(google_genai_instrumentor, span_exporter, fake,
                                                          name, status, error_class):
    # Recorded by google-cloud-aiplatform against Vertex AI v1: the same endpoint and error body.
    (interaction,) = fake.serve_cassette(VERTEXAI + name)
    client = fake.vertex_client(project="fake-project", location="us-central1", api_version="v1")
    model = interaction.path.rsplit("/models/", 1)[1].split(":", 1)[0]
    with pytest.raises(error_class) as raised:
        client.models.generate_content(model=model, contents=interaction.request_json["contents"])
    assert raised.value.code == status
    fake.assert_done()
    (span,) = _spans(span_exporter)
    a = span.attributes
    assert span.name == f"generate_content {model}"
    assert span.status.status_code is StatusCode.ERROR
    assert a["error.type"] == error_class.__qualname__
    assert a["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert "gen_ai.usage.input_tokens" not in a and "gen_ai.usage.cost.amount" not in a
    assert [e.name for e in span.events] == ["exception"]


def test_every_copied_recording_is_replayed():
    from _cassettes import RECORDED

    copied = set(json.loads((RECORDED / "PROVENANCE-google-genai.json").read_text(encoding="utf-8")))
    replayed = set(NON_STREAMING + STREAMING) | {VERTEXAI + "test_generate_content_missing_model.yaml",
                                                 VERTEXAI + "test_generate_content_invalid_role.yaml"}
    assert copied == replayed
    for path in copied:
        assert (RECORDED / path).is_file()
