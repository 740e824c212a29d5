"""A mocked OpenAI endpoint for the benchmarks: no network, precomputed bytes.

``handler`` is an ``httpx2.MockTransport`` handler answering ``POST .../chat/completions``:

* non-streaming: a realistic gpt-4o-mini ``chat.completion`` JSON (usage with
  ``prompt_tokens_details.cached_tokens``), the same bytes every time;
* ``"stream": true``: a 64-chunk SSE body (63 content deltas + the finish chunk), then the usage
  chunk if ``stream_options.include_usage``, then ``data: [DONE]``. Each SSE event is yielded
  as its own body chunk (the worst case for per-chunk overhead: a real socket often delivers
  several events per read).

``async_handler`` is the same for ``httpx2.AsyncClient`` (async body iterator).
``sync_client()`` / ``async_client()`` build ready OpenAI clients on them.
"""
from __future__ import annotations

import json

import httpx2

MODEL = "gpt-4o-mini"
MODEL_VERSION = "gpt-4o-mini-2024-07-18"
STREAM_CONTENT_CHUNKS = 63          # content deltas; + 1 finish chunk = 64 chunks
STREAM_CHUNKS = STREAM_CONTENT_CHUNKS + 1

PROMPT_TOKENS = 1_342
CACHED_TOKENS = 1_024
COMPLETION_TOKENS = STREAM_CONTENT_CHUNKS

MESSAGES = [
    {"role": "system", "content": "You are a concise assistant for an observability team."},
    {"role": "user", "content": "Explain in one paragraph why every LLM call should be an "
                                "OpenTelemetry span that carries its token usage and cost."},
]

_WORDS = (
    "Treating every LLM call as an OpenTelemetry span puts model latency, token usage and cost "
    "in the same trace as the request that caused them, so you can see which endpoint, tenant "
    "or feature spends the money, alert on budget drift with the metrics you already have, and "
    "compare models on real traffic instead of guesses. Because the attributes follow the "
    "GenAI semantic conventions, any backend can aggregate them without custom parsing, and "
    "sampling or redaction stays under the control of the collector."
).split(" ")
_TOKENS = [(" " if i else "") + w for i, w in enumerate(_WORDS)][:STREAM_CONTENT_CHUNKS]
assert len(_TOKENS) == STREAM_CONTENT_CHUNKS, len(_TOKENS)
CONTENT = "".join(_TOKENS)

_ID = "chatcmpl-BvQ3kGz8mZfT1dXnA0rLq7YwUe9Hs"
_CREATED = 1_763_900_000
_FINGERPRINT = "fp_560af6e559"

_USAGE = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

COMPLETION_BODY: bytes = json.dumps({
    "id": _ID,
    "object": "chat.completion",
    "created": _CREATED,
    "model": MODEL_VERSION,
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": CONTENT, "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": _USAGE,
    "service_tier": "default",
    "system_fingerprint": _FINGERPRINT,
}).encode()


def _chunk(choices: list, usage=None, obfuscation: str = "") -> bytes:
    body = {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": MODEL_VERSION,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
        "choices": choices,
        "usage": usage,
    }
    if obfuscation:
        body["obfuscation"] = obfuscation
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _delta(i: int, text: str) -> dict:
    delta = {"role": "assistant", "content": text, "refusal": None} if i == 0 else {"content": text}
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}


STREAM_EVENTS: tuple[bytes, ...] = tuple(
    [_chunk([_delta(i, t)], obfuscation="xk3") for i, t in enumerate(_TOKENS)]
    + [_chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])]
)
USAGE_EVENT: bytes = _chunk([], usage=_USAGE)
DONE_EVENT = b"data: [DONE]\n\n"
STREAM_EVENTS_WITH_USAGE = STREAM_EVENTS + (USAGE_EVENT, DONE_EVENT)
STREAM_EVENTS_NO_USAGE = STREAM_EVENTS + (DONE_EVENT,)
assert len(STREAM_EVENTS) == STREAM_CHUNKS

_JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"openai-organization", b"bench-org"),
    (b"openai-processing-ms", b"412"),
    (b"openai-version", b"2020-10-01"),
    (b"x-ratelimit-limit-requests", b"30000"),
    (b"x-ratelimit-limit-tokens", b"150000000"),
    (b"x-ratelimit-remaining-requests", b"29999"),
    (b"x-ratelimit-remaining-tokens", b"149998650"),
    (b"x-ratelimit-reset-requests", b"2ms"),
    (b"x-ratelimit-reset-tokens", b"0s"),
    (b"x-request-id", b"req_5f0c3b6a2d9e4c1b8a7f6e5d4c3b2a19"),
]
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8")] + _JSON_HEADERS[1:]


class _SyncEvents(httpx2.SyncByteStream):
    """A sync streaming body yielding one SSE event per chunk."""

    def __init__(self, events):
        self.events = events

    def __iter__(self):
        return iter(self.events)


class _AsyncEvents(httpx2.AsyncByteStream):
    """An async streaming body yielding one SSE event per chunk."""

    def __init__(self, events):
        self.events = events

    async def __aiter__(self):
        for e in self.events:
            yield e


def _respond(request: httpx2.Request, stream_type) -> httpx2.Response:
    if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
        return httpx2.Response(404, json={"error": {"message": "not mocked", "type": "invalid_request_error"}})
    payload = json.loads(request.content)
    if payload.get("stream"):
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        events = STREAM_EVENTS_WITH_USAGE if include_usage else STREAM_EVENTS_NO_USAGE
        return httpx2.Response(200, headers=_SSE_HEADERS, stream=stream_type(events))
    return httpx2.Response(200, headers=_JSON_HEADERS, content=COMPLETION_BODY)


def handler(request: httpx2.Request) -> httpx2.Response:
    """Sync handler: for ``httpx2.Client(transport=httpx2.MockTransport(handler))``."""
    return _respond(request, _SyncEvents)


async def async_handler(request: httpx2.Request) -> httpx2.Response:
    """Async handler: for ``httpx2.AsyncClient(transport=httpx2.MockTransport(async_handler))``."""
    return _respond(request, _AsyncEvents)


def sync_client(**kwargs):
    import openai

    return openai.OpenAI(api_key="sk-bench", base_url="http://mock.invalid/v1", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)), **kwargs)


def async_client(**kwargs):
    import openai

    return openai.AsyncOpenAI(api_key="sk-bench", base_url="http://mock.invalid/v1", max_retries=0,
                              http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(async_handler)),
                              **kwargs)
