"""Replay every recorded AWS Bedrock interaction through the real botocore (and aiobotocore) client.

The recordings (tests/fixtures/recorded, listed in PROVENANCE-bedrock.json) are served by a
loopback HTTP server (``_fake_bedrock``) that the SDK reaches through ``endpoint_url=`` with fake
credentials: the SDK signs, sends, parses the JSON and decodes the binary event streams itself.
Each call is made with the request the recording holds. The span's token attributes must equal
what Bedrock reported (the ``USAGE`` table below is the recordings' usage, as the shared
``usage.jsonl`` lists it, normalised: input = uncached + cache read + cache write), and the cost
must equal the list price applied by hand.
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from opentelemetry.trace import StatusCode

from _fake_bedrock import FakeBedrock

M = Decimal(1_000_000)
CONTRIB = ("open-telemetry/opentelemetry-python-contrib/instrumentation/opentelemetry-instrumentation-botocore/"
           "tests/cassettes/")
ARIZE = ("Arize-ai/openinference/python/instrumentation/openinference-instrumentation-bedrock/"
         "tests/openinference/instrumentation/bedrock/cassettes/")
TRACELOOP_ANTHROPIC = ("traceloop/openllmetry/packages/opentelemetry-instrumentation-anthropic/"
                       "tests/cassettes/test_bedrock_with_raw_response/")
TRACELOOP_BEDROCK = ("traceloop/openllmetry/packages/opentelemetry-instrumentation-bedrock/"
                     "tests/traces/cassettes/test_anthropic/")

# AWS Bedrock on-demand list prices, USD per 1M tokens (aws.amazon.com/bedrock/pricing, us-east-1):
#   amazon.nova-micro-v1:0: input 0.035, output 0.14          amazon.titan-text-lite-v1: 0.15 / 0.20
#   meta.llama3-1-70b-instruct-v1:0: 0.72 / 0.72              mistral.mistral-7b-instruct-v0:2: 0.15 / 0.20
#   Claude 3.5 Sonnet (us. cross-region profile, same price): 3.00 / 15.00
#   Claude 3.5 Haiku: input 0.80, output 4.00, cache write 1.00, cache read 0.08
#   Legacy models (the same page, on-demand): Claude 3 Haiku 0.25 / 1.25, Claude 2.0 (anthropic.claude-v2)
#   8.00 / 24.00, Cohere Command R 0.50 / 1.50.
# (file, index): (operation, input, output, cache_read, cache_write, response model, finish reasons, cost)
CASES = {
    (ARIZE + "TestConverseStream.test_invoke_tool_message.yaml", 0):
        ("chat", 353, 38, 0, 0, None, ["tool_use"], (353 * Decimal("0.25") + 38 * Decimal("1.25")) / M),
    (CONTRIB + "test_converse_stream_with_content.yaml", 0):
        ("chat", 8, 10, 0, 0, None, ["max_tokens"], (8 * Decimal("0.15") + 10 * Decimal("0.20")) / M),
    (CONTRIB + "test_converse_stream_with_content_tool_call.yaml", 0):
        ("chat", 415, 202, 0, 0, None, ["tool_use"], (415 * Decimal("0.035") + 202 * Decimal("0.14")) / M),
    (CONTRIB + "test_converse_stream_with_content_tool_call.yaml", 1):
        ("chat", 565, 52, 0, 0, None, ["end_turn"], (565 * Decimal("0.035") + 52 * Decimal("0.14")) / M),
    (CONTRIB + "test_converse_stream_with_invalid_model.yaml", 0): ("chat", "error"),
    (CONTRIB + "test_converse_tool_call_with_content.yaml", 0):
        ("chat", 415, 190, 0, 0, None, ["tool_use"], (415 * Decimal("0.035") + 190 * Decimal("0.14")) / M),
    (CONTRIB + "test_converse_tool_call_with_content.yaml", 1):
        ("chat", 553, 59, 0, 0, None, ["end_turn"], (553 * Decimal("0.035") + 59 * Decimal("0.14")) / M),
    (CONTRIB + "test_converse_with_content.yaml", 0):
        ("chat", 8, 10, 0, 0, None, ["max_tokens"], (8 * Decimal("0.15") + 10 * Decimal("0.20")) / M),
    (CONTRIB + "test_converse_with_invalid_model.yaml", 0): ("chat", "error"),
    (CONTRIB + "test_invoke_model_with_content[amazon.nova].yaml", 0):
        ("chat", 5, 10, 0, 0, None, ["max_tokens"], (5 * Decimal("0.035") + 10 * Decimal("0.14")) / M),
    (CONTRIB + "test_invoke_model_with_content[amazon.titan].yaml", 0):
        ("text_completion", 5, 10, 0, 0, None, ["LENGTH"], (5 * Decimal("0.15") + 10 * Decimal("0.20")) / M),
    (CONTRIB + "test_invoke_model_with_content[anthropic.claude].yaml", 0):
        ("chat", 14, 10, 0, 0, "claude-2.0", ["max_tokens"], (14 * Decimal("8") + 10 * Decimal("24")) / M),
    # Cohere and Mistral report no usage in the body: Bedrock's headers are the only source.
    (CONTRIB + "test_invoke_model_with_content[cohere.command-r].yaml", 0):
        ("chat", 5, 10, 0, 0, None, ["MAX_TOKENS"], (5 * Decimal("0.5") + 10 * Decimal("1.5")) / M),
    (CONTRIB + "test_invoke_model_with_content[meta.llama].yaml", 0):
        ("text_completion", 5, 10, 0, 0, None, ["length"], (5 * Decimal("0.72") + 10 * Decimal("0.72")) / M),
    (CONTRIB + "test_invoke_model_with_content[mistral.mistral].yaml", 0):
        ("text_completion", 6, 10, 0, 0, None, ["length"], (6 * Decimal("0.15") + 10 * Decimal("0.20")) / M),
    (CONTRIB + "test_invoke_model_with_invalid_model.yaml", 0): ("chat", "error"),
    (CONTRIB + "test_invoke_model_with_response_stream_with_content[amazon.nova].yaml", 0):
        ("chat", 5, 10, 0, 0, None, ["max_tokens"], (5 * Decimal("0.035") + 10 * Decimal("0.14")) / M),
    (CONTRIB + "test_invoke_model_with_response_stream_with_content[amazon.titan].yaml", 0):
        ("text_completion", 5, 10, 0, 0, None, ["LENGTH"], (5 * Decimal("0.15") + 10 * Decimal("0.20")) / M),
    (CONTRIB + "test_invoke_model_with_response_stream_with_content[anthropic.claude].yaml", 0):
        ("chat", 14, 10, 0, 0, "claude-2.0", ["max_tokens"], (14 * Decimal("8") + 10 * Decimal("24")) / M),
    # Bedrock's own meter (amazon-bedrock-invocationMetrics, what CloudWatch and the bill count)
    # says 90 output tokens here where Anthropic's message_delta says 134: the meter is used.
    (CONTRIB + "test_invoke_model_with_response_stream_with_content_tool_call[anthropic.claude].yaml", 0):
        ("chat", 392, 90, 0, 0, "claude-3-5-sonnet-20240620", ["tool_use"], (392 * Decimal(3) + 90 * Decimal(15)) / M),
    (CONTRIB + "test_invoke_model_with_response_stream_with_content_tool_call[anthropic.claude].yaml", 1):
        ("chat", 603, 146, 0, 0, "claude-3-5-sonnet-20240620", ["end_turn"],
         (603 * Decimal(3) + 146 * Decimal(15)) / M),
    (TRACELOOP_ANTHROPIC + "test_async_anthropic_bedrock_regular_create.yaml", 0):
        ("chat", 17, 50, 0, 0, "claude-3-haiku-20240307", ["end_turn"],
         (17 * Decimal("0.25") + 50 * Decimal("1.25")) / M),
    # Prompt caching: the input-token header (and Anthropic's input_tokens) is the uncached 4.
    (TRACELOOP_BEDROCK + "test_prompt_cache.yaml", 0):
        ("chat", 4 + 18131, 50, 0, 18131, "claude-3-5-haiku-20241022", ["max_tokens"],
         (4 * Decimal("0.80") + 18131 * Decimal("1.00") + 50 * Decimal(4)) / M),  # 18334.2e-6
    (TRACELOOP_BEDROCK + "test_prompt_cache.yaml", 1):
        ("chat", 4 + 18131, 50, 18131, 0, "claude-3-5-haiku-20241022", ["max_tokens"],
         (4 * Decimal("0.80") + 18131 * Decimal("0.08") + 50 * Decimal(4)) / M),  # 1653.68e-6
}

FILES = sorted({file for file, _ in CASES})


def _call(client, reply):
    """Make the recorded call with the real client; returns the span-relevant result after reading it."""
    _, _, model, endpoint = reply.path.split("/", 3)
    if endpoint == "converse":
        return client.converse(modelId=model, **reply.request_json)
    if endpoint == "converse-stream":
        response = client.converse_stream(modelId=model, **reply.request_json)
        return list(response["stream"])
    if endpoint == "invoke":
        response = client.invoke_model(modelId=model, body=reply.request_body or b"{}")
        return response["body"].read()
    response = client.invoke_model_with_response_stream(modelId=model, body=reply.request_body)
    return list(response["body"])


async def _acall(client, reply):
    _, _, model, endpoint = reply.path.split("/", 3)
    if endpoint == "converse":
        return await client.converse(modelId=model, **reply.request_json)
    if endpoint == "converse-stream":
        response = await client.converse_stream(modelId=model, **reply.request_json)
        return [event async for event in response["stream"]]
    if endpoint == "invoke":
        response = await client.invoke_model(modelId=model, body=reply.request_body or b"{}")
        return await response["body"].read()
    response = await client.invoke_model_with_response_stream(modelId=model, body=reply.request_body)
    return [event async for event in response["body"]]


def _check_spans(file, fake, spans, *, is_async=False):
    assert len(spans) == len(fake.replies)
    for index, (reply, span) in enumerate(zip(fake.replies, spans)):
        case = CASES[(file, index)]
        model = reply.path.split("/")[2]
        attrs = dict(span.attributes)
        operation = case[0]
        assert span.name == f"{operation} {model}"
        assert attrs["gen_ai.operation.name"] == operation
        assert attrs["gen_ai.provider.name"] == "aws.bedrock"
        assert attrs["gen_ai.request.model"] == model
        assert attrs["server.address"] == "127.0.0.1"
        assert attrs["server.port"] == fake.port
        streaming = reply.path.endswith("stream")
        assert attrs.get("gen_ai.request.stream", False) is streaming
        if case[1] == "error":
            assert span.status.status_code == StatusCode.ERROR
            assert attrs["error.type"] == "ValidationException"
            assert "gen_ai.usage.input_tokens" not in attrs
            assert "gen_ai.usage.cost.amount" not in attrs
            continue
        _, inp, out, read, write, response_model, reasons, cost = case
        assert span.status.status_code == StatusCode.UNSET
        assert "error.type" not in attrs
        assert attrs["gen_ai.usage.input_tokens"] == inp
        assert attrs["gen_ai.usage.output_tokens"] == out
        assert attrs.get("gen_ai.usage.cache_read.input_tokens", 0) == read
        assert attrs.get("gen_ai.usage.cache_write.input_tokens", 0) == write
        assert attrs["ai_cost.usage.source"] == "provider"
        if is_async and reply.path.endswith("/invoke"):
            # aiobotocore's body is left for the user to read: usage from the headers only.
            assert "gen_ai.response.finish_reasons" not in attrs
        else:
            assert attrs.get("gen_ai.response.model") == response_model
            assert list(attrs["gen_ai.response.finish_reasons"]) == reasons
        if streaming:
            assert attrs["gen_ai.response.time_to_first_chunk"] >= 0
        if cost is None:
            assert attrs["ai_cost.pricing.status"] == "unknown_model"
            assert "gen_ai.usage.cost.amount" not in attrs
        else:
            assert attrs["ai_cost.pricing.status"] == "priced"
            assert attrs["gen_ai.usage.cost.source"] == "local"
            assert attrs["gen_ai.usage.cost.currency"] == "USD"
            assert attrs["gen_ai.usage.cost.amount"] == float(cost), (file, index)


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.rsplit("/", 1)[-1])
def test_replay_recorded_interactions(file, bedrock_instrumentor, span_exporter):
    with FakeBedrock.from_cassette(file) as fake:
        client = fake.client()
        for reply in fake.replies:
            if reply.status >= 400:
                with pytest.raises(client.exceptions.ValidationException):
                    _call(client, reply)
                continue
            result = _call(client, reply)
            if reply.path.endswith("/invoke"):
                assert result == reply.body  # the user reads the very bytes Bedrock sent
            elif reply.path.endswith("stream"):
                assert result  # every event reached the user
        fake.assert_done()
        _check_spans(file, fake, span_exporter.get_finished_spans())


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.rsplit("/", 1)[-1])
async def test_replay_recorded_interactions_async(file, bedrock_instrumentor, span_exporter):
    with FakeBedrock.from_cassette(file) as fake:
        async with fake.aio_session().create_client("bedrock-runtime", **fake.client_kwargs()) as client:
            for reply in fake.replies:
                if reply.status >= 400:
                    with pytest.raises(client.exceptions.ValidationException):
                        await _acall(client, reply)
                    continue
                result = await _acall(client, reply)
                if reply.path.endswith("/invoke"):
                    assert result == reply.body
        fake.assert_done()
        _check_spans(file, fake, span_exporter.get_finished_spans(), is_async=True)


def test_every_copied_bedrock_recording_is_replayed_and_documented():
    from _fake_bedrock import RECORDED

    provenance = json.loads((RECORDED / "PROVENANCE-bedrock.json").read_text(encoding="utf-8"))
    assert set(provenance) == set(FILES)
    for file in FILES:
        assert (RECORDED / file).is_file()
        assert provenance[file]["repo"] in file
