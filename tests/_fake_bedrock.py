"""A loopback HTTP server that answers ``bedrock-runtime`` calls with recorded (or hand-built) responses.

The real ``botocore`` / ``aiobotocore`` clients are pointed at it with ``endpoint_url=`` and fake
credentials, so the SDK signs, sends, parses and decodes the binary event streams exactly as it
does against AWS; nothing leaves the machine.

Responses are served in order. Every request must match the next interaction's method and
(URL-decoded) path: anything else is recorded in ``errors`` and answered with a 599, and
``assert_done()`` fails the test.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

import yaml

RECORDED = Path(__file__).parent / "fixtures" / "recorded"

# Headers that describe the recorded transfer, not the body served.
_DROP_HEADERS = {"content-encoding", "content-length", "transfer-encoding", "connection", "set-cookie"}


class Reply:
    def __init__(self, method: str, path: str, status: int, headers: List[Tuple[str, str]], body: bytes,
                 request_body: Optional[bytes] = None) -> None:
        self.method = method
        self.path = unquote(path)
        self.status = status
        self.headers = headers
        self.body = body
        self.request_body = request_body
        self.declared_length: Optional[int] = None  # send a longer Content-Length, then hang up
        self.chunked = False  # send the body with Transfer-Encoding: chunked (no Content-Length)


    @property
    def request_json(self) -> Optional[Dict[str, Any]]:
        if not self.request_body:
            return None
        try:
            return json.loads(self.request_body)
        except ValueError:
            return None


def _bytes(body: Any) -> bytes:
    if isinstance(body, dict):
        body = body.get("string", b"")
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return str(body).encode("utf-8")


def load_cassette(relative_path: str) -> List[Reply]:
    data = yaml.safe_load((RECORDED / relative_path).read_text(encoding="utf-8"))
    replies = []
    for raw in data["interactions"]:
        request, response = raw["request"], raw["response"]
        headers = []
        for name, values in (response.get("headers") or {}).items():
            if name.lower() in _DROP_HEADERS:
                continue
            for value in values if isinstance(values, list) else [values]:
                headers.append((name, value.decode() if isinstance(value, bytes) else str(value)))
        replies.append(Reply(request["method"].upper(), urlsplit(request["uri"]).path,
                             int(response["status"]["code"]), headers, _bytes(response.get("body")),
                             _bytes(request.get("body")) or None))
    return replies


_sessions: Dict[str, Any] = {}


def _session() -> Any:
    """One botocore session for the tests (loading the service model is the slow part)."""
    if "sync" not in _sessions:
        import botocore.session

        _sessions["sync"] = botocore.session.get_session()
    return _sessions["sync"]


def _aio_session() -> Any:
    if "async" not in _sessions:
        from aiobotocore.session import get_session

        _sessions["async"] = get_session()
    return _sessions["async"]


class FakeBedrock:
    """``with FakeBedrock(replies) as fake: client = fake.client()``."""

    def __init__(self, replies: List[Reply]) -> None:
        self.replies = list(replies)
        self.position = 0
        self.requests: List[Tuple[str, str, bytes]] = []
        self.errors: List[str] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = fake._next(self.command, unquote(urlsplit(self.path).path), body)
                if reply is None:
                    self.send_response(599)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(reply.body), 1000):
                        part = reply.body[i:i + 1000]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(reply.declared_length or len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                if reply.declared_length:
                    self.close_connection = True  # the body is cut short: the client sees a broken read

            do_GET = do_POST  # noqa: N815 - control-plane calls (e.g. the "bedrock" service)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    @classmethod
    def from_cassette(cls, relative_path: str) -> "FakeBedrock":
        return cls(load_cassette(relative_path))

    def _next(self, method: str, path: str, body: bytes) -> Optional[Reply]:
        with self._lock:
            self.requests.append((method, path, body))
            if self.position >= len(self.replies):
                self.errors.append(f"unexpected request {method} {path}: all {len(self.replies)} replies used")
                return None
            reply = self.replies[self.position]
            if (method, path) != (reply.method, reply.path):
                self.errors.append(f"reply {self.position}: expected {reply.method} {reply.path}, got {method} {path}")
                return None
            self.position += 1
            return reply

    def client_kwargs(self) -> Dict[str, Any]:
        from botocore.config import Config

        return dict(region_name="us-east-1", endpoint_url=self.url, aws_access_key_id="test",
                    aws_secret_access_key="test",
                    config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))

    def client(self) -> Any:
        return _session().create_client("bedrock-runtime", **self.client_kwargs())

    def aio_session(self) -> Any:
        return _aio_session()

    def assert_done(self) -> None:
        assert not self.errors, self.errors
        assert self.position == len(self.replies), f"{len(self.replies) - self.position} replies not used"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeBedrock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def json_reply(path: str, body: Dict[str, Any], headers: Optional[Dict[str, str]] = None, status: int = 200) -> Reply:
    """A hand-built JSON response (for features without a recording), as the API documents it."""
    all_headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", "00000000-test")]
    all_headers += list((headers or {}).items())
    return Reply("POST", path, status, all_headers, json.dumps(body).encode())


def event_stream_reply(path: str, events: List[Tuple[str, Dict[str, Any]]], invoke: bool = False) -> Reply:
    """A hand-built AWS binary event stream: ``events`` are (event type, JSON payload) pairs.

    For InvokeModelWithResponseStream (``invoke=True``) each payload is wrapped as a ``chunk``
    event whose ``bytes`` is the base64 of the model's JSON, as Bedrock sends it.
    """
    import base64

    out = b""
    for event_type, payload in events:
        if invoke and not event_type.endswith("Exception"):
            payload = {"bytes": base64.b64encode(json.dumps(payload).encode()).decode()}
        out += _encode_event(event_type, json.dumps(payload).encode())
    content_type = "X-Amzn-Bedrock-Content-Type" if invoke else "Content-Type"
    headers = [("Content-Type", "application/vnd.amazon.eventstream"), ("x-amzn-RequestId", "00000000-test")]
    if invoke:
        headers.append((content_type, "application/json"))
    return Reply("POST", path, 200, headers, out)


def _encode_event(event_type: str, payload: bytes) -> bytes:
    """One message of the AWS event-stream encoding (prelude, headers, payload, CRC32s).

    An ``event_type`` ending in ``Exception`` is sent as an exception message, as Bedrock sends a
    mid-stream error (``:message-type: exception``, ``:exception-type``).
    """
    import struct
    import zlib

    def header(name: str, value: str) -> bytes:
        raw_name, raw_value = name.encode(), value.encode()
        return struct.pack("B", len(raw_name)) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value

    if event_type.endswith("Exception"):
        headers = header(":exception-type", event_type) + header(":content-type", "application/json") \
            + header(":message-type", "exception")
    else:
        headers = header(":event-type", event_type) + header(":content-type", "application/json") \
            + header(":message-type", "event")
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude_crc = struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + prelude_crc + headers + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


# -- pytest fixture (a plugin of tests/conftest.py, used by the Bedrock test modules) -------------

import pytest  # noqa: E402


@pytest.fixture
def bedrock_instrumentor(tracer_provider, meter_provider):
    """The Bedrock instrumentor, instrumented for the test and uninstrumented after it."""
    from otel_ai_cost.instrumentation.bedrock import BedrockInstrumentor

    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    instrumentor.uninstrument()
