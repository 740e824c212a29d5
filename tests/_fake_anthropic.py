"""A faked Anthropic Messages API behind ``httpx2.MockTransport``, for the cases no recording covers.

Bodies follow Anthropic's documented formats (docs.anthropic.com / platform.claude.com):
- ``POST /v1/messages``: a Message object, or with ``"stream": true`` the server-sent events
  ``message_start`` (usage with the input side and an early output count), ``content_block_start``,
  ``ping``, ``content_block_delta`` (``text_delta``), ``content_block_stop``, ``message_delta``
  (``stop_reason`` and the cumulative usage), ``message_stop``;
- ``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``;
- errors: ``{"type": "error", "error": {"type": ..., "message": ...}}`` with the HTTP status, and
  in a stream an ``event: error`` (e.g. ``overloaded_error``) after the stream started;
- Bedrock (non-streaming only: its streams are AWS binary event streams): the Message body on
  ``/model/{model}/invoke``;
- Vertex AI: the same bodies on ``.../publishers/anthropic/models/{model}:rawPredict`` and
  ``:streamRawPredict`` (the model is in the URL, not in the body).

Bodies are bytes httpx reads at once (the response holds its body before the SDK sees it) unless
``network_body=True``: then they arrive as a ``NetworkBody`` stream, read only when the client
reads them, as over the network (``with_streaming_response`` and streams see an unread body).

Every request the SDK sends is kept in ``requests`` (its JSON body, with ``_path`` added).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import httpx2


def sse(events: List[Dict[str, Any]]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


class NetworkBody(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A body that arrives over the network: not read until the client reads it (``content=`` bytes
    are read at once by httpx, so a streaming response would already hold its whole body)."""

    def __init__(self, data: bytes, chunk_size: int = 64) -> None:
        self.data = data
        self.chunk_size = chunk_size

    def __iter__(self):
        for i in range(0, len(self.data), self.chunk_size):
            yield self.data[i:i + self.chunk_size]

    async def __aiter__(self):
        for chunk in self:
            yield chunk


class FakeAnthropic:
    def __init__(self, *, usage: Optional[Dict[str, Any]] = None, text: str = "Hello there, friend.",
                 delta_usage: Optional[Dict[str, Any]] = None, stop_reason: str = "end_turn",
                 error: Optional[tuple] = None, stream_error_after: Optional[int] = None,
                 count_tokens: int = 14, response_model: Optional[str] = None,
                 network_body: bool = False) -> None:
        self.usage = usage or {"input_tokens": 12, "output_tokens": 6, "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 0}
        self.delta_usage = delta_usage  # None: message_delta carries output_tokens only, like older API versions
        self.text = text
        self.stop_reason = stop_reason
        self.error = error  # (status, error type, message)
        self.stream_error_after = stream_error_after
        self.count_tokens = count_tokens
        self.response_model = response_model
        self.network_body = network_body  # True: bodies are NetworkBody streams, read only by the client
        self.requests: List[Dict[str, Any]] = []

    # -- bodies -------------------------------------------------------------------------------

    def message(self, model: str) -> Dict[str, Any]:
        return {
            "id": "msg_01FakeFakeFake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": self.text}], "stop_reason": self.stop_reason,
            "stop_sequence": None, "usage": self.usage,
        }

    def events(self, model: str) -> List[Dict[str, Any]]:
        start_usage = dict(self.usage)
        start_usage["output_tokens"] = 1
        pieces = [self.text[i:i + 5] for i in range(0, len(self.text), 5)]
        events: List[Dict[str, Any]] = [
            {"type": "message_start", "message": {**self.message(model), "content": [], "stop_reason": None,
                                                  "usage": start_usage}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
        ]
        for i, piece in enumerate(pieces):
            if self.stream_error_after is not None and i == self.stream_error_after:
                events.append({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                return events
            events.append({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
        delta_usage = (self.delta_usage if self.delta_usage is not None
                       else {"output_tokens": self.usage["output_tokens"]})
        events += [
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
             "usage": delta_usage},
            {"type": "message_stop"},
        ]
        return events

    # -- transport ----------------------------------------------------------------------------

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        body = json.loads(request.content or b"{}")
        path = request.url.path
        self.requests.append({**body, "_path": path})
        if self.error is not None:
            status, kind, message = self.error
            return httpx2.Response(status, json={"type": "error", "error": {"type": kind, "message": message}},
                                   headers={"request-id": "req_fake"})
        if path.endswith("/count_tokens") or path.endswith(":countTokens"):
            return httpx2.Response(200, json={"input_tokens": self.count_tokens})
        if "/model/" in path:  # Bedrock: /model/{model}/invoke or /invoke-with-response-stream (not faked)
            model = path.split("/model/", 1)[1].split("/", 1)[0]
        else:  # Anthropic (model in the body) or Vertex (.../models/{model}:rawPredict)
            model = body.get("model") or path.rsplit("/models/", 1)[-1].split(":")[0]
        model = self.response_model or model
        stream = body.get("stream") is True or path.endswith(":streamRawPredict")
        if stream:
            data, content_type = sse(self.events(model)), "text/event-stream"
        else:
            data, content_type = json.dumps(self.message(model)).encode(), "application/json"
        if self.network_body:
            return httpx2.Response(200, stream=NetworkBody(data), headers={"content-type": content_type})
        return httpx2.Response(200, content=data, headers={"content-type": content_type})

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def client(self, **kwargs: Any):
        import anthropic

        return anthropic.Anthropic(api_key="test", max_retries=0,
                                   http_client=httpx2.Client(transport=self.transport()), **kwargs)

    def async_client(self, **kwargs: Any):
        import anthropic

        return anthropic.AsyncAnthropic(api_key="test", max_retries=0,
                                        http_client=httpx2.AsyncClient(transport=self.transport()), **kwargs)

    def vertex_client(self, **kwargs: Any):
        import anthropic

        return anthropic.AnthropicVertex(region="us-east5", project_id="proj", access_token="token", max_retries=0,
                                         http_client=httpx2.Client(transport=self.transport()), **kwargs)
