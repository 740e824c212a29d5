"""A loopback HTTP server that answers the real ``google-genai`` SDK (Gemini API and Vertex AI).

The SDK is used as shipped (its own HTTP stack, ``httpx2`` in google-genai 3.x, or whatever a
version uses): the client is pointed at ``http://127.0.0.1:<port>`` with ``HttpOptions(base_url=...)``.
Nothing leaves the machine.

The server answers the queued responses in order: recorded cassette interactions (``serve_cassette``)
or hand-built bodies in the documented API format (``generate_response``, ``sse``). Every request is
kept (method, path, query, JSON body) so a test can assert what was, or was not, sent. A request with
nothing queued, or that does not match the recorded method and path, is answered 599 and listed in
``errors``.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

import yaml

from _cassettes import RECORDED, Interaction  # noqa: F401 - RECORDED re-exported for the tests


class Reply:
    def __init__(self, status: int, body: bytes, headers: Optional[List[tuple]] = None,
                 method: Optional[str] = None, path: Optional[str] = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or [("Content-Type", "application/json")]
        self.method = method
        self.path = path


def _http_options(types: Any, url: str, api_version: str) -> Any:
    options: Dict[str, Any] = {"base_url": url, "api_version": api_version}
    if hasattr(types, "HttpRetryOptions"):  # no retries (older SDKs have no retry options and never retry)
        options["retry_options"] = types.HttpRetryOptions(attempts=1)
    return types.HttpOptions(**options)


class FakeGoogleGenAI:
    """``with FakeGoogleGenAI() as fake: client = fake.gemini_client()``."""

    def __init__(self) -> None:
        self.replies: List[Reply] = []
        self.requests: List[Dict[str, Any]] = []
        self.errors: List[str] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                fake._answer(self)

            def do_GET(self) -> None:  # noqa: N802
                fake._answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeGoogleGenAI":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- clients ------------------------------------------------------------------------------

    def gemini_client(self, api_version: str = "v1beta"):
        from google import genai
        from google.genai import types

        return genai.Client(api_key="test-key", http_options=_http_options(types, self.url, api_version))

    def vertex_client(self, project: str = "test-project", location: str = "test-location",
                      api_version: str = "v1beta1"):
        from google import genai
        from google.genai import types
        from google.oauth2.credentials import Credentials

        # A static bearer token: no refresh, no metadata server, no network.
        return genai.Client(vertexai=True, project=project, location=location,
                            credentials=Credentials(token="test-token"),
                            http_options=_http_options(types, self.url, api_version))

    # -- queueing -----------------------------------------------------------------------------

    def queue(self, reply: Reply) -> None:
        with self._lock:
            self.replies.append(reply)

    def queue_json(self, body: Any, status: int = 200) -> None:
        self.queue(Reply(status, json.dumps(body).encode()))

    def queue_sse(self, events: List[dict]) -> None:
        self.queue(Reply(200, sse(events), [("Content-Type", "text/event-stream")]))

    def serve_cassette(self, relative_path: str) -> List[Interaction]:
        """Queue every interaction of a recorded cassette; returns them (with their recorded request)."""
        data = yaml.safe_load((RECORDED / relative_path).read_text(encoding="utf-8"))
        interactions = [Interaction(i, raw) for i, raw in enumerate(data["interactions"])]
        for interaction in interactions:
            self.queue(Reply(interaction.status, interaction.content, interaction.headers,
                             method=interaction.method, path=interaction.path))
        return interactions

    def assert_done(self) -> None:
        assert not self.errors, self.errors
        assert not self.replies, f"{len(self.replies)} queued responses not requested"

    # -- serving ------------------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.requests.append({"method": handler.command, "path": parts.path,
                                  "query": parse_qs(parts.query), "json": body})
            reply = self.replies.pop(0) if self.replies else None
        if reply is None:
            self.errors.append(f"unexpected request {handler.command} {handler.path}")
            reply = Reply(599, b'{"error": {"code": 599, "message": "no reply queued"}}')
        elif (reply.method and reply.method != handler.command) or (reply.path and reply.path != parts.path):
            self.errors.append(f"expected {reply.method} {reply.path}, got {handler.command} {parts.path}")
            reply = Reply(599, b'{"error": {"code": 599, "message": "unexpected request"}}')
        handler.send_response(reply.status)
        for name, value in reply.headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        try:
            handler.wfile.write(reply.body)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # a client that abandoned its stream
            pass


# ---------------------------------------------------------------------------------------------
# Documented response formats (https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse)


def generate_response(usage: Dict[str, Any], *, text: str = "Hello there", model: str = "gemini-2.5-flash",
                      finish_reason: Optional[str] = "STOP", response_id: str = "resp-fake") -> Dict[str, Any]:
    candidate: Dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": response_id}


def sse(events: List[dict]) -> bytes:
    return "".join(f"data: {json.dumps(event)}\r\n\r\n" for event in events).encode()


def error_body(code: int, message: str, status: str) -> Dict[str, Any]:
    """The documented error format of Google APIs (https://cloud.google.com/apis/design/errors)."""
    return {"error": {"code": code, "message": message, "status": status}}


# ---------------------------------------------------------------------------------------------
# Fixture (a plugin of tests/conftest.py, used by the google-genai test modules)

import pytest  # noqa: E402


@pytest.fixture
def google_genai_instrumentor(tracer_provider, meter_provider):
    """The google-genai instrumentor, instrumented for the test and uninstrumented after it."""
    from otel_ai_cost.instrumentation.google_genai import GoogleGenAIInstrumentor

    instrumentor = GoogleGenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    instrumentor.uninstrument()
