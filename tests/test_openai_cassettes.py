"""Replay every recorded OpenAI / Azure OpenAI interaction through the real SDK.

Each cassette in tests/fixtures/recorded is replayed with the request it recorded (the recorded
JSON body is passed as the SDK call's keyword arguments), through ``openai.OpenAI`` or
``openai.AzureOpenAI`` on an ``httpx2.MockTransport``. The span's token attributes must equal what
the real API reported (``usage.jsonl``), and the cost must equal the provider's list price applied
by hand below.
"""
from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from urllib.parse import urlsplit

import httpx2
import openai
import pytest
from opentelemetry.trace import StatusCode

from _cassettes import Cassette, load_usage_facts

FACTS = load_usage_facts()
BY_FILE = defaultdict(list)
for _fact in FACTS:
    BY_FILE[_fact["file"]].append(_fact)

M = Decimal(1_000_000)

# Expected cost in USD per (cassette file name, interaction index): tokens x list price per 1M tokens.
# OpenAI list prices (developers.openai.com/api/docs/pricing), USD per 1M tokens:
#   gpt-4o-mini: input 0.15, cached input 0.075, output 0.60      gpt-4 (0613): input 30, output 60
#   gpt-5-nano: input 0.05, cached 0.005, output 0.40              gpt-3.5-turbo-0125: 0.50 / 1.50
#   text-embedding-3-small: 0.02                                   davinci-002: 2.00 / 2.00
#   gpt-5.4: input 2.50, output 15.00 (not verifiable by us offline: the catalog's value)
# Azure OpenAI list prices (Global, USD per 1M): gpt-35-turbo 0.50 / 1.50; gpt-4.1-mini 0.40 / 1.60;
#   gpt-5-nano 0.05 / 0.40; text-embedding-3-large 0.143 ($0.000143 per 1K).
# Reasoning tokens are output tokens and are billed at the output price.
EXPECTED_COST = {
    ("test_chat_completion_multiple_choices_streaming.yaml", 0):
        (26 * Decimal("0.15") + 104 * Decimal("0.60")) / M,  # 66.3e-6
    ("test_chat_completion_multiple_tools_streaming_with_content.yaml", 0):
        (75 * Decimal("0.15") + 51 * Decimal("0.60")) / M,  # 41.85e-6
    ("test_chat_completion_streaming.yaml", 0): (12 * Decimal(30) + 5 * Decimal(60)) / M,  # 660e-6
    ("test_chat_completion_tool_calls_with_content.yaml", 0):
        (75 * Decimal("0.15") + 51 * Decimal("0.60")) / M,  # 41.85e-6
    ("test_chat_completion_tool_calls_with_content.yaml", 1):
        (99 * Decimal("0.15") + 25 * Decimal("0.60")) / M,  # 29.85e-6
    ("test_chat_completion_with_content.yaml", 0): (12 * Decimal("0.15") + 5 * Decimal("0.60")) / M,  # 4.8e-6
    ("test_embeddings_with_batch_input.yaml", 0): 24 * Decimal("0.02") / M,  # 0.48e-6
    ("test_embeddings_with_content.yaml", 0): 6 * Decimal("0.02") / M,  # 0.12e-6
    ("test_embeddings_with_dimensions.yaml", 0): 8 * Decimal("0.02") / M,  # 0.16e-6
    ("test_responses_create_basic[content_mode0].yaml", 0): (22 * Decimal("0.15") + 6 * Decimal("0.60")) / M,  # 6.9e-6
    ("test_responses_create_captures_tool_call_content[content_mode0].yaml", 0):
        (72 * Decimal("0.15") + 8 * Decimal("0.60")) / M,  # 15.6e-6
    ("test_responses_create_reports_reasoning_tokens[content_mode0].yaml", 0):
        (44 * Decimal("2.50") + 288 * Decimal(15)) / M,  # 4430e-6
    ("test_responses_create_streaming[content_mode0].yaml", 0):
        (22 * Decimal("0.15") + 6 * Decimal("0.60")) / M,  # 6.9e-6
    # Azure chat: interaction 0 answered by gpt-35-turbo, 1-4 by gpt-4.1-mini.
    ("azure/test_chat.yaml", 0): (15 * Decimal("0.50") + 24 * Decimal("1.50")) / M,  # 43.5e-6
    ("azure/test_chat.yaml", 1): (16 * Decimal("0.40") + 22 * Decimal("1.60")) / M,  # 41.6e-6
    ("azure/test_chat.yaml", 2): (16 * Decimal("0.40") + 30 * Decimal("1.60")) / M,  # 54.4e-6
    ("azure/test_chat.yaml", 3): (16 * Decimal("0.40") + 35 * Decimal("1.60")) / M,  # 62.4e-6
    ("azure/test_chat.yaml", 4): (16 * Decimal("0.40") + 35 * Decimal("1.60")) / M,  # 62.4e-6
    ("azure/test_chat_reasoning.yaml", 0): (11 * Decimal("0.05") + 203 * Decimal("0.40")) / M,  # 81.75e-6
    ("test_chat/test_chat_reasoning.yaml", 0): (11 * Decimal("0.05") + 228 * Decimal("0.40")) / M,  # 91.75e-6
    ("test_chat/test_chat_reasoning.yaml", 1): (11 * Decimal("0.05") + 202 * Decimal("0.40")) / M,  # 81.35e-6
    ("test_chat/test_chat_reasoning.yaml", 2): (11 * Decimal("0.05") + 138 * Decimal("0.40")) / M,  # 55.75e-6
    # The response model "davinci:2023-07-21-v2" is not a catalog id: priced as the requested davinci-002.
    ("test_completion.yaml", 0): (8 * Decimal(2) + 16 * Decimal(2)) / M,  # 48e-6
    ("test_completion.yaml", 1): (8 * Decimal(2) + 16 * Decimal(2)) / M,
    ("test_completion.yaml", 2): (8 * Decimal(2) + 16 * Decimal(2)) / M,
    ("test_azure_openai_embeddings.yaml", 0): 8 * Decimal("0.143") / M,  # 1.144e-6
    ("test_azure_openai_embeddings.yaml", 1): 8 * Decimal("0.143") / M,
    # Prompt caching: interaction 1 read 1024 of its 1149 input tokens from the cache.
    ("test_openai_prompt_caching.yaml", 0): (1149 * Decimal("0.15") + 315 * Decimal("0.60")) / M,  # 361.35e-6
    ("test_openai_prompt_caching.yaml", 1):
        (125 * Decimal("0.15") + 1024 * Decimal("0.075") + 353 * Decimal("0.60")) / M,  # 307.35e-6
    ("test_openai_prompt_caching.yaml", 2): (1149 * Decimal("0.15") + 297 * Decimal("0.60")) / M,  # 350.55e-6
    ("test_openai_prompt_caching.yaml", 3): (1149 * Decimal("0.15") + 339 * Decimal("0.60")) / M,  # 375.75e-6
    ("test_responses_reasoning.yaml", 0): (11 * Decimal("0.05") + 327 * Decimal("0.40")) / M,  # 131.35e-6
    ("test_responses_reasoning.yaml", 1): (11 * Decimal("0.05") + 131 * Decimal("0.40")) / M,  # 52.95e-6
}

ERROR_CLASSES = {404: openai.NotFoundError, 400: openai.BadRequestError, 401: openai.AuthenticationError}


def _cost_key(file: str, index: int):
    name = file.rsplit("/", 1)[-1]
    if "/test_azure/" in file and name in ("test_chat.yaml", "test_chat_reasoning.yaml"):
        return (f"azure/{name}", index)
    if "/test_chat/" in file and name == "test_chat_reasoning.yaml":
        return ("test_chat/test_chat_reasoning.yaml", index)
    return (name, index)


def _client(cassette: Cassette, uri: str, azure: bool):
    http_client = httpx2.Client(transport=cassette.transport())
    parts = urlsplit(uri)
    if not azure:
        return openai.OpenAI(api_key="test_openai_api_key", http_client=http_client, max_retries=0)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if p)
    endpoint = f"{parts.scheme}://{parts.netloc}"
    segments = parts.path.split("/")
    deployment = segments[segments.index("deployments") + 1]
    kwargs = {}
    if parts.path.endswith("/embeddings"):
        kwargs["azure_deployment"] = deployment  # the recorded call used a client-level deployment
    return openai.AzureOpenAI(api_key="test", azure_endpoint=endpoint, api_version=query["api-version"],
                              http_client=http_client, max_retries=0, **kwargs)


def _call(client, endpoint: str, body: dict):
    if endpoint == "chat.completions":
        return client.chat.completions.create(**body)
    if endpoint == "responses":
        return client.responses.create(**body)
    if endpoint == "embeddings":
        return client.embeddings.create(**body)
    if endpoint == "completions":
        return client.completions.create(**body)
    raise AssertionError(endpoint)


def _sse_texts(content: bytes):
    """The text deltas of a recorded chat stream (what the fallback counter counts)."""
    for line in content.decode().splitlines():
        if not line.startswith("data: ") or line.startswith("data: [DONE]"):
            continue
        chunk = json.loads(line[6:])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            for text in (delta.get("content"), delta.get("refusal")):
                if text:
                    yield text
            for call in delta.get("tool_calls") or []:
                function = call.get("function") or {}
                for text in (function.get("name"), function.get("arguments")):
                    if text:
                        yield text


def _usage_was_requested(client, body):
    """Whether the instrumented request asked for the usage chunk (by the caller or injected)."""
    from otel_ai_cost.instrumentation.openai import may_add_stream_options, provider_from_client

    options = body.get("stream_options") or {}
    if "include_usage" in options:
        return options["include_usage"] is True
    return may_add_stream_options(provider_from_client(client), client, body)


def _assert_usage(attrs, fact):
    usage = fact["usage"]
    if fact["endpoint"] == "responses":
        inp, out = usage["input_tokens"], usage["output_tokens"]
        cached = usage["input_tokens_details"]["cached_tokens"]
        reasoning = usage["output_tokens_details"]["reasoning_tokens"]
    else:
        inp, out = usage["prompt_tokens"], usage.get("completion_tokens", 0)
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    assert attrs["gen_ai.usage.input_tokens"] == inp
    assert attrs["gen_ai.usage.output_tokens"] == out
    assert attrs.get("gen_ai.usage.cache_read.input_tokens", 0) == cached
    assert attrs.get("gen_ai.usage.reasoning.output_tokens", 0) == reasoning
    assert attrs["ai_cost.usage.source"] == "provider"


@pytest.mark.parametrize("file", sorted(BY_FILE), ids=lambda f: f.split("/cassettes/")[-1])
def test_replay_recorded_interactions(file, openai_instrumentor, span_exporter):
    facts = sorted(BY_FILE[file], key=lambda f: f["index"])
    cassette = Cassette(file)
    assert len(cassette.interactions) == len(facts)
    azure = facts[0]["provider"] == "azure-openai"
    client = _client(cassette, facts[0]["uri"], azure)

    for fact, interaction in zip(facts, cassette.interactions):
        body = dict(interaction.request_json)
        if fact["status"] >= 400:
            with pytest.raises(ERROR_CLASSES[fact["status"]]):
                _call(client, fact["endpoint"], body)
            continue
        result = _call(client, fact["endpoint"], body)
        if fact["streaming"]:
            for _ in result:
                pass
    cassette.assert_done()

    spans = span_exporter.get_finished_spans()
    assert len(spans) == len(facts)
    for fact, interaction, span in zip(facts, cassette.interactions, spans):
        attrs = dict(span.attributes)
        operation = {"embeddings": "embeddings", "completions": "text_completion"}.get(fact["endpoint"], "chat")
        assert span.name == f"{operation} {fact['request_model']}"
        assert attrs["gen_ai.operation.name"] == operation
        assert attrs["gen_ai.provider.name"] == ("azure.ai.openai" if azure else "openai")
        assert attrs["gen_ai.request.model"] == fact["request_model"]
        assert attrs["server.address"] == urlsplit(fact["uri"]).hostname
        assert attrs["server.port"] == 443
        if fact["endpoint"] == "responses":
            assert attrs["openai.api.type"] == "responses"
        elif fact["endpoint"] == "chat.completions":
            assert attrs["openai.api.type"] == "chat_completions"

        if fact["status"] >= 400:
            assert span.status.status_code == StatusCode.ERROR
            assert attrs["error.type"] == ERROR_CLASSES[fact["status"]].__qualname__
            assert "gen_ai.usage.input_tokens" not in attrs
            assert "gen_ai.usage.cost.amount" not in attrs
            continue

        assert span.status.status_code == StatusCode.UNSET
        assert "error.type" not in attrs
        assert attrs["gen_ai.response.model"] == fact["model"]
        if fact["streaming"]:
            assert attrs["gen_ai.request.stream"] is True
            assert attrs["gen_ai.response.time_to_first_chunk"] >= 0
        else:
            assert "gen_ai.request.stream" not in attrs

        if fact["usage"] is None:
            # The recorded stream carries no usage: tokens are estimated and marked so.
            from otel_ai_cost.tokens import count_text, estimate_chat_input

            assert attrs["ai_cost.usage.source"] == "estimated"
            expected_in = estimate_chat_input(body["model"], body["messages"], body.get("tools")).tokens
            texts = list(_sse_texts(interaction.content))
            if _usage_was_requested(client, body):
                # Usage was asked for (injected), so the instrumentor only counted deltas and
                # characters: output ~ max(non-empty deltas, ceil(chars / 4)) (see _CharCounter).
                expected_out = max(len(texts), (sum(len(t) for t in texts) + 3) // 4)
            else:
                expected_out = sum(count_text(t, body["model"]).tokens for t in texts)
            assert attrs["gen_ai.usage.input_tokens"] == expected_in
            assert attrs["gen_ai.usage.output_tokens"] == expected_out > 0
            assert attrs["ai_cost.pricing.status"] == "priced"
            continue

        _assert_usage(attrs, fact)
        expected = EXPECTED_COST[_cost_key(file, fact["index"])]
        assert attrs["ai_cost.pricing.status"] == "priced"
        assert attrs["gen_ai.usage.cost.source"] == "local"
        assert attrs["gen_ai.usage.cost.currency"] == "USD"
        assert attrs["gen_ai.usage.cost.amount"] == float(expected), (fact["file"], fact["index"])


def test_every_recorded_cassette_is_listed():
    """Every OpenAI cassette under fixtures/recorded is in usage.jsonl, so the replay test covers it.

    The other providers' recordings are listed in their own PROVENANCE-<provider>.json files and
    replayed by their own tests."""
    from _cassettes import RECORDED

    others = set()
    for provenance in RECORDED.glob("PROVENANCE-*.json"):
        others |= set(json.loads(provenance.read_text(encoding="utf-8")))
    on_disk = {str(p.relative_to(RECORDED)) for p in RECORDED.rglob("*.yaml")} - others
    assert on_disk == set(BY_FILE)


def test_cassette_fails_loudly_on_an_unexpected_request():
    cassette = Cassette(next(f for f in BY_FILE if f.endswith("test_chat_completion_with_content.yaml")))
    client = openai.OpenAI(api_key="x", max_retries=0, http_client=httpx2.Client(transport=cassette.transport()))
    with pytest.raises(AssertionError):  # the cassette's transport refuses the unrecorded request
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(AssertionError, match="expected POST /v1/chat/completions"):
        cassette.assert_done()


def test_cassette_serves_gzip_bodies_decoded():
    cassette = Cassette(next(f for f in BY_FILE if f.endswith("test_openai_prompt_caching.yaml")))
    first = cassette.interactions[0]
    assert json.loads(first.content)["usage"]["prompt_tokens"] == 1149
    assert not any(k.lower() == "content-encoding" for k, _ in first.headers)
