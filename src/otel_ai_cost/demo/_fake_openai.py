"""A local stand-in for the OpenAI API, on loopback, for the demo and the tests.

It answers ``POST /v1/chat/completions`` (plain and streamed), ``/v1/responses`` (plain and
streamed) and ``/v1/embeddings`` with the JSON shapes the real API sends, and with realistic
token usage: prompt tokens counted like the API counts them, a cached share for long prompts,
reasoning tokens for reasoning models. The same request always gets the same response.

Special model names:
- ``does-not-exist...``: 404 ``model_not_found``, as the real API answers an unknown model.
- ``rate-limited...``: 429 ``rate_limit_exceeded``.
Any other name is served; a name the real API knows is reported as its dated snapshot.
"""
from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Dict, Iterator, List, Optional, Tuple, Type

__all__ = ["FakeOpenAIServer", "SNAPSHOTS"]

# The dated snapshot the real API reports in `model` when asked for an alias.
SNAPSHOTS: Dict[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-4-turbo": "gpt-4-turbo-2024-04-09",
    "gpt-4": "gpt-4-0613",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
    "o1": "o1-2024-12-17",
    "o1-mini": "o1-mini-2024-09-12",
    "o3": "o3-2025-04-16",
    "o3-mini": "o3-mini-2025-01-31",
    "o4-mini": "o4-mini-2025-04-16",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
}

_EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
_DEFAULT_EMBEDDING_DIMENSIONS = 1536

# OpenAI caches prompts of 1024 tokens or more, in steps of 128 tokens.
_CACHE_MIN_PROMPT_TOKENS = 1024
_CACHE_STEP = 128

_ANSWERS = (
    "Here is a short answer: start with the simplest option, measure it, and only then optimise.",
    "Sure. The key point is that each request is billed by the tokens it sends and receives.",
    "In short: yes, but check the limits first, and keep a record of what each step costs.",
    "The summary is ready: three items need attention, and the rest can wait until next week.",
    "I would split this into two steps, so that the expensive part only runs when it is needed.",
    "Thanks for the details. Based on them, the most likely cause is a missing configuration value.",
)

# A fixed clock, so that the same request always gets byte-for-byte the same response.
_CREATED = 1767225600  # 2026-01-01T00:00:00Z


def _is_reasoning_model(model: str) -> bool:
    name = model.split("/")[-1]
    if name.startswith("gpt-5"):
        return "chat" not in name
    return len(name) > 1 and name[0] == "o" and name[1].isdigit()


def _snapshot(model: str) -> str:
    return SNAPSHOTS.get(model, model)


def _digest(*parts: Any) -> str:
    payload = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()


def _count_text(text: str, model: str) -> int:
    try:
        from otel_ai_cost.tokens import count_text

        return int(count_text(text, model).tokens)
    except Exception:  # tokens module not there, or no tokenizer for this model
        return max(1, (len(text) + 3) // 4) if text else 0


def _count_chat(model: str, messages: List[Dict[str, Any]], tools: Any = None) -> int:
    try:
        from otel_ai_cost.tokens import estimate_chat_input

        return int(estimate_chat_input(model, messages, tools=tools).tokens)
    except Exception:
        overhead = 3 + 4 * len(messages)  # the API adds a few tokens per message
        return overhead + sum(_count_text(_message_text(m), model) for m in messages)


def _count_responses(model: str, given: Any, instructions: Optional[str], tools: Any) -> int:
    try:
        from otel_ai_cost.tokens import estimate_responses_input

        return int(estimate_responses_input(model, given, instructions=instructions, tools=tools).tokens)
    except Exception:
        return _count_chat(model, _responses_input_as_messages({"input": given, "instructions": instructions}))


def _count_embedding_input(model: str, item: Any) -> int:
    try:
        from otel_ai_cost.tokens import estimate_embedding_input

        return int(estimate_embedding_input(model, item).tokens)
    except Exception:
        return len(item) if isinstance(item, list) else _count_text(str(item), model)


def _message_text(message: Dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _responses_input_as_messages(body: Dict[str, Any]) -> List[Dict[str, Any]]:
    messages: List[Dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    given = body.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        for item in given:
            if isinstance(item, dict) and "role" in item:
                messages.append({"role": item["role"], "content": _message_text(item)})
    return messages


class _ApiError(Exception):
    def __init__(self, status: int, body: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(message: str, type_: str, code: Optional[str], param: Optional[str] = None) -> Dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _check_model(body: Dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _ApiError(400, _error("you must provide a model parameter", "invalid_request_error", None))
    if model.startswith("does-not-exist"):
        raise _ApiError(
            404,
            _error(
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            ),
        )
    if model.startswith("rate-limited"):
        raise _ApiError(
            429,
            _error(
                f"Rate limit reached for {model} in organization org-fake on tokens per min (TPM): "
                "Limit 30000, Used 30000, Requested 120. Please try again in 240ms. "
                "Visit https://platform.openai.com/account/rate-limits to learn more.",
                "tokens",
                "rate_limit_exceeded",
            ),
            {"x-ratelimit-limit-tokens": "30000", "x-ratelimit-remaining-tokens": "0",
             "x-ratelimit-reset-tokens": "240ms"},
        )
    return model


class _Completion:
    """What the fake model answers to one prompt, and the usage that answer costs.

    ``prefix_tokens`` is the static part of the prompt (everything before the last message): the part
    the prompt cache serves. The fake server behaves as if that prefix is already warm in the cache.
    """

    def __init__(self, model: str, key: str, prompt_tokens: int, prefix_tokens: int,
                 max_output_tokens: Optional[int], reasoning_effort: Optional[str]) -> None:
        self.key = key
        seed = int(key[:8], 16)
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = 0
        if prompt_tokens >= _CACHE_MIN_PROMPT_TOKENS:
            self.cached_tokens = min(prefix_tokens, prompt_tokens) // _CACHE_STEP * _CACHE_STEP
        self.reasoning_tokens = 0
        if _is_reasoning_model(model):
            factor = {"minimal": 0, "low": 1, "medium": 2, "high": 4}.get(reasoning_effort or "medium", 2)
            self.reasoning_tokens = factor * 64 * (1 + seed % 4)
        text = _ANSWERS[seed % len(_ANSWERS)]
        self.finish_reason = "stop"
        if max_output_tokens is not None:
            self.reasoning_tokens = min(self.reasoning_tokens, max_output_tokens)
            budget = max_output_tokens - self.reasoning_tokens
            if _count_text(text, model) > budget:
                text = self._truncate(text, budget, model)
                self.finish_reason = "length"
        self.text = text
        self.completion_tokens = _count_text(text, model) + self.reasoning_tokens

    @staticmethod
    def _truncate(text: str, budget: int, model: str) -> str:
        words = text.split(" ")
        kept = ""
        for i in range(1, len(words) + 1):
            candidate = " ".join(words[:i])
            if _count_text(candidate, model) > budget:
                break
            kept = candidate
        return kept

    def chunks(self) -> Iterator[str]:
        """The answer cut into the small deltas a stream delivers."""
        words = self.text.split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word


# --- endpoints: each returns (status, JSON body) or, for streams, the SSE events


def _chat_completion(body: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    model = _check_model(body)
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    tools = body.get("tools")
    prefix = _count_chat(model, messages[:-1]) if len(messages) > 1 else 0
    answer = _Completion(model, _digest(model, messages, tools), _count_chat(model, messages, tools), prefix,
                         max_tokens, body.get("reasoning_effort"))
    snapshot = _snapshot(model)
    ident = "chatcmpl-" + answer.key[:29]
    fingerprint = "fp_" + _digest(snapshot)[:10]
    tier = body.get("service_tier") if body.get("service_tier") in ("flex", "priority") else "default"
    usage = {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": answer.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    head = {"id": ident, "created": _CREATED, "model": snapshot}
    if not body.get("stream"):
        completion: Dict[str, Any] = {
            "id": ident,
            "object": "chat.completion",
            "created": _CREATED,
            "model": snapshot,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": usage,
            "service_tier": tier,
            "system_fingerprint": fingerprint,
        }
        return completion, []

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(choices: List[Dict[str, Any]], with_usage: Any = None) -> str:
        event: Dict[str, Any] = {**head, "object": "chat.completion.chunk", "service_tier": tier,
                                 "system_fingerprint": fingerprint, "choices": choices}
        # With include_usage every chunk carries `usage`: null, except the last, usage-only one.
        if include_usage:
            event["usage"] = with_usage
        return json.dumps(event, separators=(",", ":"))

    def choice(delta: Dict[str, Any], finish_reason: Optional[str] = None) -> Dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    events = [chunk([choice({"role": "assistant", "content": "", "refusal": None})])]
    events += [chunk([choice({"content": piece})]) for piece in answer.chunks()]
    events.append(chunk([choice({}, answer.finish_reason)]))
    if include_usage:
        events.append(chunk([], usage))
    events.append("[DONE]")
    return {}, events


def _response(body: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    model = _check_model(body)
    given, instructions, tools = body.get("input"), body.get("instructions"), body.get("tools")
    effort = (body.get("reasoning") or {}).get("effort")
    prefix_input = given[:-1] if isinstance(given, list) else []
    answer = _Completion(model, _digest(model, given, instructions, tools),
                         _count_responses(model, given, instructions, tools),
                         _count_responses(model, prefix_input, instructions, None), body.get("max_output_tokens"),
                         effort)
    snapshot = _snapshot(model)
    ident = "resp_" + answer.key[:48]
    message_id = "msg_" + answer.key[16:64]
    output: List[Dict[str, Any]] = []
    if answer.reasoning_tokens:
        output.append({"id": "rs_" + answer.key[8:56], "type": "reasoning", "summary": []})
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": answer.text}
    message = {"id": message_id, "type": "message", "status": "completed", "content": [part], "role": "assistant"}
    output.append(message)
    incomplete = answer.finish_reason == "length"
    response: Dict[str, Any] = {
        "id": ident,
        "object": "response",
        "created_at": _CREATED,
        "status": "incomplete" if incomplete else "completed",
        "background": False,
        "completed_at": _CREATED + 1,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": snapshot,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": effort if answer.reasoning_tokens else None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": answer.prompt_tokens,
            "input_tokens_details": {"cached_tokens": answer.cached_tokens},
            "output_tokens": answer.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        },
        "user": None,
        "metadata": {},
    }
    if not body.get("stream"):
        return response, []

    in_progress = {**response, "status": "in_progress", "completed_at": None, "output": [], "usage": None}
    index = len(output) - 1
    seq = iter(range(1_000_000))

    def event(type_: str, **fields: Any) -> str:
        return json.dumps({"type": type_, **fields, "sequence_number": next(seq)}, separators=(",", ":"))

    events = [event("response.created", response=in_progress), event("response.in_progress", response=in_progress)]
    events.append(event("response.output_item.added", output_index=index,
                        item={**message, "status": "in_progress", "content": []}))
    events.append(event("response.content_part.added", item_id=message_id, output_index=index, content_index=0,
                        part={**part, "text": ""}))
    for piece in answer.chunks():
        events.append(event("response.output_text.delta", item_id=message_id, output_index=index,
                            content_index=0, delta=piece, logprobs=[]))
    events.append(event("response.output_text.done", item_id=message_id, output_index=index, content_index=0,
                        text=answer.text, logprobs=[]))
    events.append(event("response.content_part.done", item_id=message_id, output_index=index, content_index=0,
                        part=part))
    events.append(event("response.output_item.done", output_index=index, item=message))
    final = "response.incomplete" if incomplete else "response.completed"
    events.append(event(final, response=response))
    return {}, events


def _embedding_vector(text: str, model: str, dimensions: int) -> List[float]:
    rng = random.Random(_digest(model, text))
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def _embeddings(body: Dict[str, Any]) -> Dict[str, Any]:
    model = _check_model(body)
    given = body.get("input")
    if isinstance(given, str):
        inputs: List[Any] = [given]
    elif isinstance(given, list) and given and all(isinstance(t, int) for t in given):
        inputs = [given]  # one input given as token ids
    elif isinstance(given, list):
        inputs = given
    else:
        raise _ApiError(400, _error("'input' is a required property", "invalid_request_error", None, "input"))
    dimensions = int(body.get("dimensions") or _EMBEDDING_DIMENSIONS.get(model, _DEFAULT_EMBEDDING_DIMENSIONS))
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    prompt_tokens = 0
    for index, item in enumerate(inputs):
        prompt_tokens += _count_embedding_input(model, item)
        text = " ".join(str(t) for t in item) if isinstance(item, list) else str(item)
        vector = _embedding_vector(text, model, dimensions)
        encoded: Any = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": _snapshot(model),
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    server_version = "fake-openai"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: the demo prints its own output

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") == "/v1/models":
            models = [{"id": m, "object": "model", "created": _CREATED, "owned_by": "system"} for m in SNAPSHOTS]
            self._send_json(200, {"object": "list", "data": models})
            return
        self._send_json(404, _error(f"Invalid URL (GET {self.path})", "invalid_request_error", None))

    def do_POST(self) -> None:  # noqa: N802
        keep = self.server.keep_requests  # type: ignore[attr-defined]
        if keep:
            self.server.requests.append(self.path)  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
            if keep:
                self.server.bodies.append((self.path, body))  # type: ignore[attr-defined]
        except ValueError:
            self._send_json(400, _error(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                "your HTTP library correctly. The OpenAI API expects a JSON payload.)",
                "invalid_request_error", None))
            return
        path = self.path.split("?")[0].rstrip("/")
        try:
            if path == "/v1/chat/completions":
                payload, events = _chat_completion(body)
            elif path == "/v1/responses":
                payload, events = _response(body)
            elif path == "/v1/embeddings":
                payload, events = _embeddings(body), []
            else:
                self._send_json(404, _error(f"Invalid URL (POST {self.path})", "invalid_request_error", None))
                return
        except _ApiError as exc:
            self._send_json(exc.status, exc.body, exc.headers)
            return
        if events:
            self._send_events(events, named=path == "/v1/responses")
        else:
            self._send_json(200, payload)

    def _common_headers(self) -> None:
        self.send_header("x-request-id", "req_" + _digest(self.path, self.requestline)[:32])
        self.send_header("openai-processing-ms", "42")
        self.send_header("openai-version", "2020-10-01")

    def _send_json(self, status: int, payload: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._common_headers()
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_events(self, events: List[str], named: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self._common_headers()
        self.end_headers()
        for data in events:
            prefix = ""
            if named and data != "[DONE]":
                prefix = f"event: {json.loads(data)['type']}\n"
            self._write_chunk(f"{prefix}data: {data}\n\n".encode())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


class FakeOpenAIServer:
    """The fake OpenAI API on ``127.0.0.1`` and a free port, served from a background thread.

    >>> with FakeOpenAIServer() as server:
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="sk-fake")
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, keep_requests: bool = True) -> None:
        """``keep_requests=False`` (a long-running server) keeps no record in ``requests`` / ``received``."""
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.keep_requests = keep_requests  # type: ignore[attr-defined]
        self._httpd.requests = []  # type: ignore[attr-defined]
        self._httpd.bodies = []  # type: ignore[attr-defined]
        self._thread: Optional[threading.Thread] = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        if isinstance(host, bytes):  # typeshed allows bytes addresses; ours is an AF_INET one (str)
            host = host.decode()
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> List[str]:
        """Paths of the POST requests received, in order."""
        return list(self._httpd.requests)  # type: ignore[attr-defined]

    @property
    def received(self) -> List[Tuple[str, Dict[str, Any]]]:
        """The POST requests with a JSON object body, as (path, body), in order."""
        return list(self._httpd.bodies)  # type: ignore[attr-defined]

    def start(self) -> "FakeOpenAIServer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-openai", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.stop()
