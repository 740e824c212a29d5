"""``httpx`` transports for the SDKs built on ``httpx`` (not ``httpx2``): groq, mistralai, cohere.

``cassette_transport`` replays a recorded cassette (``_cassettes.Cassette``, same matching rules)
through an ``httpx.MockTransport``; ``FakeAPI`` answers with bodies built by the test from the
provider's documented format, for the features no recording covers. Both record every request
they get, so a test can assert that nothing was sent. Loopback only: nothing leaves the process.
"""
from __future__ import annotations

import json
from typing import Any, List, Optional, Union

import httpx
import httpx2

from _cassettes import Cassette


def cassette_transport(cassette: Cassette) -> httpx.MockTransport:
    """An ``httpx`` transport answering with the cassette's recorded responses, in order."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read()
        converted = httpx2.Request(request.method, str(request.url), headers=list(request.headers.multi_items()),
                                   content=body)
        answer = cassette.handle(converted)
        return httpx.Response(answer.status_code, headers=list(answer.headers.multi_items()),
                              content=answer.content, request=request)

    return httpx.MockTransport(handler)


def sse(events: List[Any], done: bool = True, event_names: bool = False) -> bytes:
    """A server-sent-events body of JSON ``events`` (``data: {...}``), ended by ``[DONE]`` if asked."""
    lines = []
    for event in events:
        if event_names and isinstance(event, dict) and "type" in event:
            lines.append(f"event: {event['type']}\n")
        lines.append(f"data: {json.dumps(event)}\n\n")
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


class _NetworkBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that arrives as from the network: not read until the client reads it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self):
        yield self.data

    async def __aiter__(self):
        yield self.data

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class FakeAPI:
    """Answers every request with the next queued response: (status, JSON body or SSE bytes).

    ``FakeAPI(network=True)``: the bodies are not pre-loaded (as ``httpx.MockTransport`` does with
    bytes), so a streamed response (``with_streaming_response``) starts unread, as over the network.
    """

    def __init__(self, network: bool = False) -> None:
        self.requests: List[httpx.Request] = []
        self.queue: List[tuple] = []
        self.network = network

    def reply(self, body: Union[dict, bytes], status: int = 200, content_type: Optional[str] = None) -> "FakeAPI":
        self.queue.append((status, body, content_type))
        return self

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if not self.queue:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        status, body, content_type = self.queue.pop(0)
        if self.network:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            kind = content_type or ("text/event-stream" if isinstance(body, bytes) else "application/json")
            return httpx.Response(status, stream=_NetworkBody(data), request=request, headers={"content-type": kind})
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, request=request,
                                  headers={"content-type": content_type or "text/event-stream"})
        return httpx.Response(status, json=body, request=request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def sent_json(self, i: int = -1) -> dict:
        return json.loads(self.requests[i].content)
