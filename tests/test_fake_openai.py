"""The demo's fake OpenAI API, driven by the real openai SDK: the shapes parse and usage adds up."""
from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any, Iterator, List

import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

from otel_ai_cost.demo import FakeOpenAIServer

HELLO = [{"role": "user", "content": "Say this is a test"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s


@pytest.fixture()
def client(server: FakeOpenAIServer) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0,
                      http_client=openai.DefaultHttpxClient(trust_env=False))
    yield c
    c.close()


def _post(server: FakeOpenAIServer, path: str, body: dict) -> Any:
    request = urllib.request.Request(server.base_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_base_url_is_loopback(server: FakeOpenAIServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v1")


def test_chat_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert isinstance(completion, ChatCompletion)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.service_tier == "default"
    assert completion.system_fingerprint and completion.system_fingerprint.startswith("fp_")
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content
    usage = completion.usage
    assert usage is not None
    assert 5 <= usage.prompt_tokens <= 20
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_same_request_same_response(server: FakeOpenAIServer) -> None:
    body = {"model": "gpt-4o", "messages": HELLO}
    assert _post(server, "/chat/completions", body) == _post(server, "/chat/completions", body)


def test_unknown_alias_is_echoed_and_known_alias_is_dated(client: openai.OpenAI) -> None:
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).model == "gpt-4o-2024-08-06"
    assert client.chat.completions.create(model="my-local-llm", messages=HELLO).model == "my-local-llm"


def test_long_prompt_gets_a_cached_share(client: openai.OpenAI) -> None:
    system = " ".join(f"Rule {i}: answer politely and quote the ticket number." for i in range(300))
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "system", "content": system}, *HELLO])

    usage = completion.usage
    assert usage is not None and usage.prompt_tokens >= 1024
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else None
    assert cached and cached % 128 == 0 and 1024 <= cached < usage.prompt_tokens


def test_reasoning_model_reports_reasoning_tokens(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="o4-mini", messages=HELLO, reasoning_effort="high")

    assert completion.model == "o4-mini-2025-04-16"
    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    reasoning = usage.completion_tokens_details.reasoning_tokens or 0
    assert reasoning > 0
    assert usage.completion_tokens > reasoning  # output includes the reasoning tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_max_tokens_truncates_with_finish_reason_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=3)

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens <= 3


def test_stream_with_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True,
                                            stream_options={"include_usage": True})
    chunks: List[ChatCompletionChunk] = list(stream)

    assert all(isinstance(c, ChatCompletionChunk) and c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks[:-1]][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None  # the usage-only chunk, as the real API sends
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert text == plain.choices[0].message.content
    assert plain.usage is not None and last.usage == plain.usage
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


def test_stream_without_include_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))

    assert chunks and all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_responses(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-5-mini", instructions="Be brief.", input="Say this is a test",
                                       reasoning={"effort": "low"})

    assert isinstance(response, Response)
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == "gpt-5-mini-2025-08-07"
    assert response.output_text
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_responses_stream(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt-4o-mini", input="Say this is a test") as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()

    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert final.usage is not None and final.usage.total_tokens == final.usage.input_tokens + final.usage.output_tokens
    assert final.output_text == client.responses.create(model="gpt-4o-mini", input="Say this is a test").output_text


@pytest.mark.parametrize("encoding_format", [None, "float"])
def test_embeddings(client: openai.OpenAI, encoding_format: Any) -> None:
    kwargs = {"encoding_format": encoding_format} if encoding_format else {}
    result = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "goodbye"], **kwargs)

    assert isinstance(result, CreateEmbeddingResponse)
    assert result.model == "text-embedding-3-small"
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 1536 for d in result.data)
    assert abs(sum(v * v for v in result.data[0].embedding) - 1.0) < 1e-3
    assert result.usage.prompt_tokens > 0 and result.usage.total_tokens == result.usage.prompt_tokens


def test_embeddings_base64_and_float_agree(client: openai.OpenAI) -> None:
    default = client.embeddings.create(model="text-embedding-3-small", input="hi", dimensions=8)
    floats = client.embeddings.create(model="text-embedding-3-small", input="hi", dimensions=8,
                                      encoding_format="float")
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="does-not-exist-v1", messages=HELLO)

    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert info.value.type == "invalid_request_error"
    assert "`does-not-exist-v1` does not exist" in info.value.message


def test_embeddings_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="does-not-exist-embedding", input="hi")


def test_rate_limited_model_is_429(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="rate-limited", messages=HELLO)

    assert info.value.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert "Rate limit reached" in info.value.message


def test_responses_rate_limited_is_429(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="rate-limited-gpt-4o", input="hi")


def test_works_without_the_tokenizer(client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "otel_ai_cost.tokens", None)  # falls back to a length heuristic

    usage = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).usage
    assert usage is not None and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_async_client_stream(server: FakeOpenAIServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0,
                                http_client=openai.DefaultAsyncHttpxClient(trust_env=False))
    try:
        stream = await client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True,
                                                      stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    finally:
        await client.close()
    assert chunks[-1].usage is not None and chunks[-1].choices == []
