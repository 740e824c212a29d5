"""Replay VCR.py cassettes through ``httpx2.MockTransport``: the real SDK, recorded HTTP, no network.

A cassette answers requests in the recorded order. Every request must match the next recorded
interaction's method and path (and, by default, its JSON body's ``model``); anything else is an
unexpected request: it is recorded in ``cassette.errors`` and raised, and ``assert_done()`` fails
the test loudly (the SDK may swallow the raise into a retry or a connection error).

Gzip bodies (``!!binary`` with ``Content-Encoding: gzip``) are gunzipped and served without the
encoding header, so the body and headers stay consistent. SSE bodies are served as recorded bytes.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

import httpx2
import yaml

RECORDED = Path(__file__).parent / "fixtures" / "recorded"

# Headers that describe the recorded transfer, not the body we serve.
_DROP_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


class _Loader(yaml.SafeLoader):
    """SafeLoader already builds bytes for ``!!binary``; kept as a named class for clarity."""


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, dict):
        body = body.get("string", b"")
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return str(body).encode("utf-8")


def _headers(raw: Dict[str, Any]) -> List[tuple]:
    out = []
    for name, values in (raw or {}).items():
        if name.lower() in _DROP_HEADERS:
            continue
        for value in values if isinstance(values, list) else [values]:
            out.append((name, str(value)))
    return out


class Interaction:
    def __init__(self, index: int, raw: Dict[str, Any]) -> None:
        self.index = index
        request = raw["request"]
        response = raw["response"]
        self.method: str = request["method"].upper()
        self.uri: str = request["uri"]
        self.path: str = urlsplit(self.uri).path
        body = request.get("body")
        self.request_json: Optional[Dict[str, Any]] = None
        if body:
            try:
                self.request_json = json.loads(_body_bytes(body))
            except ValueError:
                self.request_json = None
        self.status: int = int(response["status"]["code"])
        raw_headers = response.get("headers") or {}
        content = _body_bytes(response.get("body"))
        encoding = [v.lower() for k, vs in raw_headers.items() if k.lower() == "content-encoding"
                    for v in (vs if isinstance(vs, list) else [vs])]
        if "gzip" in encoding:
            content = gzip.decompress(content)
        self.content = content
        self.headers = _headers(raw_headers)

    @property
    def streaming(self) -> bool:
        return any(k.lower() == "content-type" and "text/event-stream" in v for k, v in self.headers)

    def response(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(self.status, headers=self.headers, content=self.content, request=request)


class Cassette:
    """A loaded cassette. ``transport()`` answers requests with the recorded responses in order."""

    def __init__(self, relative_path: str, *, match_model: bool = True) -> None:
        self.path = RECORDED / relative_path
        data = yaml.load(self.path.read_text(encoding="utf-8"), Loader=_Loader)
        self.interactions = [Interaction(i, raw) for i, raw in enumerate(data["interactions"])]
        self.match_model = match_model
        self.position = 0
        self.errors: List[str] = []
        self.requests: List[httpx2.Request] = []

    def _fail(self, message: str) -> None:
        self.errors.append(message)
        raise AssertionError(message)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        self.requests.append(request)
        if self.position >= len(self.interactions):
            self._fail(f"{self.path.name}: unexpected request {request.method} {request.url} "
                       f"(all {len(self.interactions)} interactions used)")
        expected = self.interactions[self.position]
        if request.method != expected.method or request.url.path != expected.path:
            self._fail(f"{self.path.name}[{expected.index}]: expected {expected.method} {expected.path}, "
                       f"got {request.method} {request.url.path}")
        if self.match_model and expected.request_json is not None:
            try:
                sent = json.loads(request.content or b"{}")
            except ValueError:
                sent = {}
            if sent.get("model") != expected.request_json.get("model"):
                self._fail(f"{self.path.name}[{expected.index}]: expected model "
                           f"{expected.request_json.get('model')!r}, got {sent.get('model')!r}")
        self.position += 1
        return expected.response(request)

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def assert_done(self) -> None:
        assert not self.errors, self.errors
        assert self.position == len(self.interactions), (
            f"{self.path.name}: {len(self.interactions) - self.position} interactions not replayed"
        )


def load_usage_facts() -> List[Dict[str, Any]]:
    """``usage.jsonl``: what each recorded response reported (file, index, usage, ...)."""
    lines = (RECORDED / "usage.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
