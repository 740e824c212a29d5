"""Replay every recorded Anthropic Messages API interaction through the real ``anthropic`` SDK.

The cassettes (tests/fixtures/recorded, listed in PROVENANCE-anthropic.json) are replayed with the
request each one recorded (its JSON body as the SDK call's keyword arguments) through
``anthropic.Anthropic`` / ``AsyncAnthropic`` / ``AsyncAnthropicBedrock`` on an
``httpx2.MockTransport``, in several ways: ``messages.create`` sync and async, ``stream=True``
iterated, the ``messages.stream()`` helpers (sync and async) and ``with_raw_response``.

The usage each recording reports (copied from the shared fixture set's usage.jsonl, raw Anthropic
fields) is in ``RECORDED`` below; the span must carry it normalised (Anthropic's ``input_tokens``
EXCLUDES cache reads and writes, ``gen_ai.usage.input_tokens`` includes them) and the cost must
equal the list price applied by hand.
"""
from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import httpx2
import pytest
from opentelemetry.trace import StatusCode

from _cassettes import RECORDED as RECORDED_DIR
from _cassettes import Cassette
from otel_ai_cost.pricing import default_catalog
from otel_ai_cost.pricing._catalog import Catalog, model_from_dict

M = Decimal(1_000_000)

# The SDK warns about the retired models the recordings used, and about thinking.type=enabled.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using Claude with .*thinking.type=enabled:UserWarning"),
]

A = ("Arize-ai/openinference/python/instrumentation/openinference-instrumentation-anthropic/"
     "tests/openinference/anthropic/cassettes/test_instrumentor/")
L = ("Arize-ai/openinference/python/instrumentation/openinference-instrumentation-litellm/"
     "tests/cassettes/test_instrumentor/")
P = "pydantic/logfire/tests/otel_integrations/cassettes/test_anthropic/"
T = "traceloop/openllmetry/packages/opentelemetry-instrumentation-anthropic/tests/cassettes/"

# Anthropic list prices (platform.claude.com/docs/en/about-claude/pricing), USD per 1M tokens:
#   Sonnet 4.6 / 4.5 / 4 / 3.7 / 3.5: input 3, output 15, cache read 0.30, 5-minute cache write 3.75
#   Opus 3: input 15, output 75                      Haiku 3: input 0.25, output 1.25
# Thinking tokens are output tokens, billed at the output price.
# (file, index) -> (raw usage as recorded: input, output, cache_read, cache_write, thinking),
#                  request model, response model, streaming, finish reason, expected cost
RECORDED = {
    (A + "test_anthropic_instrumentation_messages_streaming.yaml", 0):
        ((21, 13, 0, 0, 0), "claude-sonnet-4-6", "claude-sonnet-4-6", True, "end_turn",
         (21 * 3 + 13 * 15) / M),  # 258e-6
    (A + "test_anthropic_instrumentation_messages_token_counts.yaml", 0):
        ((21, 561, 0, 1733, 0), "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-20250219", False, "end_turn",
         (21 * 3 + 1733 * Decimal("3.75") + 561 * 15) / M),  # 14976.75e-6
    (A + "test_anthropic_instrumentation_messages_token_counts.yaml", 1):
        ((21, 568, 1733, 0, 0), "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-20250219", False, "end_turn",
         (21 * 3 + 1733 * Decimal("0.30") + 568 * 15) / M),  # 9102.9e-6
    (A + "test_anthropic_instrumentation_multiple_tool_calling_streaming.yaml", 0):
        ((721, 113, 0, 0, 0), "claude-sonnet-4-6", "claude-sonnet-4-6", True, "tool_use",
         (721 * 3 + 113 * 15) / M),  # 3858e-6
    (L + "test_completion_streaming_with_extended_thinking_anthropic.yaml", 0):
        ((50, 93, 0, 0, 53), "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", True, "end_turn",
         (50 * 3 + 93 * 15) / M),  # 1545e-6 (53 of the 93 output tokens were thinking)
    (P + "test_sync_messages_beta_stream.yaml", 0):
        ((19, 9, 0, 0, 0), "claude-sonnet-4-20250514", "claude-sonnet-4-20250514", True, "end_turn",
         (19 * 3 + 9 * 15) / M),  # 192e-6
    (T + "test_bedrock_with_raw_response/test_async_anthropic_bedrock_regular_create.yaml", 0):
        ((17, 50, 0, 0, 0), "anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307", False, "end_turn",
         (17 * Decimal("0.25") + 50 * Decimal("1.25")) / M),  # 66.75e-6 (Bedrock on-demand = list price)
    (T + "test_messages/test_anthropic_message_create_legacy.yaml", 0):
        ((17, 220, 0, 0, 0), "claude-3-opus-20240229", "claude-3-opus-20240229", False, "end_turn",
         (17 * 15 + 220 * 75) / M),  # 16755e-6
    (T + "test_messages/test_anthropic_message_streaming_legacy.yaml", 0):
        ((17, 171, 0, 0, 0), "claude-3-haiku-20240307", "claude-3-haiku-20240307", True, "end_turn",
         (17 * Decimal("0.25") + 171 * Decimal("1.25")) / M),  # 218e-6
    (T + "test_messages/test_anthropic_tools_legacy.yaml", 0):
        ((514, 152, 0, 0, 0), "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20240620", False, "tool_use",
         (514 * 3 + 152 * 15) / M),  # 3822e-6
    (T + "test_messages/test_anthropic_tools_streaming_legacy.yaml", 0):
        ((506, 153, 0, 0, 0), "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20240620", True, "tool_use",
         (506 * 3 + 153 * 15) / M),  # 3813e-6
    (T + "test_prompt_caching/test_anthropic_prompt_caching_legacy.yaml", 0):
        ((4, 187, 0, 1163, 0), "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20240620", False, "end_turn",
         (4 * 3 + 1163 * Decimal("3.75") + 187 * 15) / M),  # 7178.25e-6
    (T + "test_prompt_caching/test_anthropic_prompt_caching_legacy.yaml", 1):
        ((4, 202, 1163, 0, 0), "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20240620", False, "end_turn",
         (4 * 3 + 1163 * Decimal("0.30") + 202 * 15) / M),  # 3390.9e-6
    (T + "test_prompt_caching/test_anthropic_prompt_caching_stream_legacy.yaml", 0):
        ((4, 201, 0, 1165, 0), "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20240620", True, "end_turn",
         (4 * 3 + 1165 * Decimal("3.75") + 201 * 15) / M),  # 7395.75e-6
    (T + "test_prompt_caching/test_anthropic_prompt_caching_stream_legacy.yaml", 1):
        ((4, 221, 1165, 0, 0), "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20240620", True, "end_turn",
         (4 * 3 + 1165 * Decimal("0.30") + 221 * 15) / M),  # 3676.5e-6
    (T + "test_thinking/test_anthropic_thinking_legacy.yaml", 0):
        ((52, 215, 0, 0, 0), "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-20250219", False, "end_turn",
         (52 * 3 + 215 * 15) / M),  # 3381e-6
    (T + "test_thinking/test_anthropic_thinking_streaming_legacy.yaml", 0):
        ((52, 216, 0, 0, 0), "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-20250219", True, "end_turn",
         (52 * 3 + 216 * 15) / M),  # 3396e-6
}
FILES = sorted({file for file, _ in RECORDED})

# Two recorded models the packaged catalog does not price yet (claude-3-5-sonnet-20240620 on the
# Anthropic API, Claude 3 Haiku on Bedrock): added here at their list prices.
EXTRA_PRICES = [
    {"id": "claude-3-5-sonnet-20240620", "provider": "anthropic", "mode": "chat",
     "prices": {"input": "3", "output": "15", "cache_read": "0.3", "cache_write": "3.75"}},
    {"id": "anthropic.claude-3-haiku-20240307-v1:0", "provider": "aws.bedrock", "mode": "chat",
     "prices": {"input": "0.25", "output": "1.25"}},
]


@pytest.fixture(scope="module")
def catalog():
    base = default_catalog()
    return Catalog(list(base.entries()) + [model_from_dict(e) for e in EXTRA_PRICES], base.version)


@pytest.fixture
def instrumented(tracer_provider, meter_provider, catalog):
    from otel_ai_cost.instrumentation.anthropic import AnthropicInstrumentor

    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, catalog=catalog)
    yield instrumentor
    instrumentor.uninstrument()


def _client(cassette: Cassette, uri: str, is_async: bool):
    transport = cassette.transport()
    if "bedrock-runtime" in uri:
        cls = anthropic.AsyncAnthropicBedrock if is_async else anthropic.AnthropicBedrock
        http = httpx2.AsyncClient(transport=transport) if is_async else httpx2.Client(transport=transport)
        return cls(api_key="test", aws_region="us-east-1", http_client=http, max_retries=0)
    if is_async:
        return anthropic.AsyncAnthropic(api_key="test", http_client=httpx2.AsyncClient(transport=transport),
                                        max_retries=0)
    return anthropic.Anthropic(api_key="test", http_client=httpx2.Client(transport=transport), max_retries=0)


def _body(interaction) -> dict:
    body = dict(interaction.request_json)
    if "bedrock-runtime" in interaction.uri:
        # The Bedrock client moves the model into the URL and adds anthropic_version itself.
        body.pop("anthropic_version", None)
        body["model"] = interaction.path.split("/")[2]
    return body


def _resource(client, uri: str):
    return client.beta.messages if "beta=true" in uri else client.messages


def _replay_sync(cassette: Cassette, mode: str) -> None:
    for interaction in cassette.interactions:
        body = _body(interaction)
        messages = _resource(_client(cassette, interaction.uri, False), interaction.uri)
        if mode == "stream_helper" and body.get("stream"):
            body.pop("stream")
            with messages.stream(**body) as stream:
                final = stream.get_final_message()
            assert final.usage.output_tokens > 0
        elif mode == "raw_response" and not body.get("stream"):
            raw = messages.with_raw_response.create(**body)
            assert raw.parse().usage.output_tokens > 0
        else:
            result = messages.create(**body)
            if body.get("stream"):
                assert sum(1 for _ in result) > 0
    cassette.assert_done()


async def _replay_async(cassette: Cassette, mode: str) -> None:
    for interaction in cassette.interactions:
        body = _body(interaction)
        messages = _resource(_client(cassette, interaction.uri, True), interaction.uri)
        if mode == "stream_helper" and body.get("stream"):
            body.pop("stream")
            async with messages.stream(**body) as stream:
                text = [t async for t in stream.text_stream]
                final = await stream.get_final_message()
            assert final.usage.output_tokens > 0 and isinstance(text, list)
        else:
            result = await messages.create(**body)
            if body.get("stream"):
                assert len([e async for e in result]) > 0
    cassette.assert_done()


def _assert_span(span, fact, uri: str) -> None:
    (raw_in, out, cache_read, cache_write, thinking), request_model, response_model, streaming, reason, cost = fact
    attrs = dict(span.attributes)
    bedrock = "bedrock-runtime" in uri
    assert span.name == f"chat {request_model}"
    assert span.status.status_code == StatusCode.UNSET
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == ("aws.bedrock" if bedrock else "anthropic")
    assert attrs["gen_ai.request.model"] == request_model
    assert attrs["server.address"] == ("bedrock-runtime.us-east-1.amazonaws.com" if bedrock else "api.anthropic.com")
    assert attrs["server.port"] == 443
    assert attrs["gen_ai.response.model"] == response_model
    assert attrs["gen_ai.response.id"].startswith("msg_")
    assert attrs["gen_ai.response.finish_reasons"] == (reason,)
    assert attrs.get("gen_ai.request.stream", False) is streaming
    # Anthropic's input_tokens excludes the cache: the span's input is all input tokens.
    assert attrs["gen_ai.usage.input_tokens"] == raw_in + cache_read + cache_write
    assert attrs["gen_ai.usage.output_tokens"] == out
    assert attrs.get("gen_ai.usage.cache_read.input_tokens", 0) == cache_read
    assert attrs.get("gen_ai.usage.cache_write.input_tokens", 0) == cache_write
    assert attrs.get("gen_ai.usage.reasoning.output_tokens", 0) == thinking
    assert attrs["ai_cost.usage.source"] == "provider"
    assert attrs["ai_cost.pricing.status"] == "priced"
    assert attrs["gen_ai.usage.cost.source"] == "local"
    assert attrs["gen_ai.usage.cost.currency"] == "USD"
    assert attrs["gen_ai.usage.cost.amount"] == float(cost)


@pytest.mark.parametrize("mode", ["create", "stream_helper", "raw_response"])
@pytest.mark.parametrize("file", FILES, ids=lambda f: f.rsplit("/", 1)[-1])
def test_replay_sync(file, mode, instrumented, span_exporter):
    cassette = Cassette(file)
    _replay_sync(cassette, mode)
    spans = span_exporter.get_finished_spans()
    assert len(spans) == len(cassette.interactions)
    for index, (span, interaction) in enumerate(zip(spans, cassette.interactions)):
        _assert_span(span, RECORDED[(file, index)], interaction.uri)


@pytest.mark.parametrize("mode", ["create", "stream_helper"])
@pytest.mark.parametrize("file", FILES, ids=lambda f: f.rsplit("/", 1)[-1])
async def test_replay_async(file, mode, instrumented, span_exporter):
    cassette = Cassette(file)
    await _replay_async(cassette, mode)
    spans = span_exporter.get_finished_spans()
    assert len(spans) == len(cassette.interactions)
    for index, (span, interaction) in enumerate(zip(spans, cassette.interactions)):
        _assert_span(span, RECORDED[(file, index)], interaction.uri)


def test_every_copied_recording_is_replayed_and_documented():
    provenance = json.loads((RECORDED_DIR / "PROVENANCE-anthropic.json").read_text())
    assert set(provenance) == set(FILES)
    for file in FILES:
        assert (RECORDED_DIR / file).is_file()
        cassette = Cassette(file)
        assert {i for f, i in RECORDED if f == file} == set(range(len(cassette.interactions)))


def test_the_packaged_catalog_prices_the_recorded_current_models():
    """Only the two models in EXTRA_PRICES come from the test; every other cost uses the packaged catalog."""
    catalog = default_catalog()
    for (file, _index), (_, request_model, response_model, *_rest) in RECORDED.items():
        if request_model in {e["id"] for e in EXTRA_PRICES}:
            continue
        provider = "aws.bedrock" if "bedrock" in file else "anthropic"
        assert catalog.resolve(response_model, provider) or catalog.resolve(request_model, provider), request_model
