"""A faked OpenAI HTTP API for the cases no recording covers (MockTransport, loopback only).

Responses follow the documented API formats (chat.completion, chat.completion.chunk SSE with
``data: [DONE]``, Responses API events, embeddings). Like the real API, the chat stream ends with a
usage-only chunk (``choices: []``) exactly when the request sets ``stream_options.include_usage``.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional

import httpx2

CHAT_USAGE = {
    "prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30,
    "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 4, "audio_tokens": 0},
}


def chat_completion(model: str = "gpt-4o-mini-2024-07-18", usage: Any = CHAT_USAGE, **extra: Any) -> Dict[str, Any]:
    body = {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
        "system_fingerprint": "fp_fake", "service_tier": "default",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": usage,
    }
    body.update(extra)
    return body


def chat_chunks(parts: List[str], model: str = "gpt-4o-mini-2024-07-18", usage: Optional[dict] = CHAT_USAGE,
                include_usage: bool = False) -> List[dict]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
            "system_fingerprint": "fp_fake", "service_tier": "default"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for part in parts:
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        for chunk in chunks:
            chunk["usage"] = None
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks


def sse(events: List[dict], named: bool = False) -> bytes:
    out = []
    for event in events:
        if named:
            out.append(f"event: {event['type']}\n")
        out.append(f"data: {json.dumps(event)}\n\n")
    if not named:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


RESPONSE_USAGE = {"input_tokens": 22, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 6, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 28}


def response_object(model: str = "gpt-4o-mini-2024-07-18", status: str = "completed",
                    usage: Optional[dict] = RESPONSE_USAGE) -> dict:
    return {
        "id": "resp_fake", "object": "response", "created_at": 1, "status": status, "model": model,
        "output": [{"type": "message", "id": "msg_fake", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "This is a test.", "annotations": []}]}],
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "service_tier": "default",
        "usage": usage,
    }


def recorded_responses_stream() -> bytes:
    """A real Responses API stream ("This is a test.", usage 22 in / 6 out), from the recordings."""
    from _cassettes import Cassette

    cassette = Cassette("open-telemetry/opentelemetry-python-contrib/instrumentation-genai/"
                        "opentelemetry-instrumentation-openai-v2/tests/cassettes/"
                        "test_responses_create_streaming[content_mode0].yaml")
    return cassette.interactions[0].content


def embeddings_body(model: str = "text-embedding-3-small", prompt_tokens: int = 5) -> dict:
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}


class FakeOpenAI:
    """Answers chat, responses and embeddings requests; keeps the request bodies it received."""

    def __init__(self, chat: Optional[Callable[[dict], Any]] = None, parts: Optional[List[str]] = None,
                 usage_on_stream: bool = True) -> None:
        self.requests: List[dict] = []
        self.chat = chat
        self.parts = parts or ["This", " is", " a", " test", "."]
        self.usage_on_stream = usage_on_stream  # False: a provider that ignores stream_options

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.read() or b"{}")
        self.requests.append(body)
        path = request.url.path
        if path.endswith("/chat/completions"):
            if self.chat is not None:
                return self.chat(body)
            if body.get("stream"):
                include = bool((body.get("stream_options") or {}).get("include_usage")) and self.usage_on_stream
                chunks = chat_chunks(self.parts, include_usage=include)
                return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse(chunks))
            return httpx2.Response(200, json=chat_completion())
        if path.endswith("/responses"):
            if body.get("stream"):
                return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                                       content=recorded_responses_stream())
            return httpx2.Response(200, json=response_object())
        if path.endswith("/embeddings"):
            return httpx2.Response(200, json=embeddings_body(body.get("model")))
        return httpx2.Response(404, json={"error": {"message": "not found", "type": "invalid_request_error"}})

    def client(self, base_url: Optional[str] = None, **kwargs: Any):
        import openai

        return openai.OpenAI(api_key="test", base_url=base_url, max_retries=0,
                             http_client=httpx2.Client(transport=httpx2.MockTransport(self.handle)), **kwargs)

    def async_client(self, base_url: Optional[str] = None, **kwargs: Any):
        import openai

        return openai.AsyncOpenAI(api_key="test", base_url=base_url, max_retries=0,
                                  http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle)),
                                  **kwargs)


class BrokenStream(httpx2.SyncByteStream):
    """A response body that breaks after some bytes, like a connection reset mid-stream."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    def __iter__(self):
        yield self.first
        raise httpx2.ReadError("connection reset by peer")

    def close(self) -> None:
        pass


class AsyncBrokenStream(httpx2.AsyncByteStream):
    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self):
        yield self.first
        raise httpx2.ReadError("connection reset by peer")

    async def aclose(self) -> None:
        pass
