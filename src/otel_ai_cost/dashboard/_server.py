"""The dashboard's web server (stdlib ``http.server``, in a thread, on loopback only) and its export.

    GET /                  the page (static/index.html)
    GET /static/NAME       the page's script, style sheet and the bundled Chart.js
    GET /api/data?QUERY    the JSON document (``_data.document``) for a period and filters

A request whose Host header is not a loopback name is refused (403): a web page elsewhere cannot
reach the dashboard through DNS rebinding. ``export_html`` writes one self-contained file: the page
with the script, the style sheet, Chart.js and the document inlined.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError
from ._data import Loader, Query, parse_query, to_json

_logger = logging.getLogger(__name__)

STATIC: Dict[str, str] = {
    "chart.umd.min.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
LOOPBACK_NAMES = ("localhost",)


def static_text(name: str) -> str:
    return resources.files(__package__).joinpath("static").joinpath(name).read_text(encoding="utf-8")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str:
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Handler(BaseHTTPRequestHandler):
    server: "DashboardServer"
    server_version = "otel-ai-cost-dashboard"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        _logger.debug("dashboard: " + format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if not is_loopback(_host_of(self.headers.get("Host", ""))):
            self._error(HTTPStatus.FORBIDDEN, "the dashboard answers requests to a loopback host only")
            return
        url = urlsplit(self.path)
        try:
            if url.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, static_text("index.html").encode(), "text/html; charset=utf-8")
            elif url.path.startswith("/static/") and url.path[len("/static/"):] in STATIC:
                name = url.path[len("/static/"):]
                self._send(HTTPStatus.OK, static_text(name).encode(), STATIC[name])
            elif url.path == "/api/data":
                query = parse_query(parse_qs(url.query, keep_blank_values=True))
                self._send(HTTPStatus.OK, to_json(self.server.load(query)).encode(), "application/json")
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such page: {url.path}")
        except (BrokenPipeError, ConnectionResetError):  # the browser went away (closed, navigated)
            return
        except ConfigError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except Exception as exc:  # noqa: BLE001 - one line in the page and the log, the server goes on
            _logger.warning("dashboard: %s failed", url.path, exc_info=True)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")


class DashboardServer(ThreadingHTTPServer):
    """Serves the dashboard of ``load`` on ``host:port`` (port 0: a free one) from a daemon thread."""

    daemon_threads = True

    def __init__(self, load: Loader, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback(host):
            raise ConfigError(f"--host {host!r}: the dashboard listens on loopback only (127.0.0.1, ::1, localhost)")
        if ":" in host.strip("[]"):
            self.address_family = socket.AF_INET6
        self.load = load
        super().__init__((host.strip("[]"), port), _Handler)
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def start(self) -> "DashboardServer":
        self._thread = threading.Thread(target=self.serve_forever, name="otel-ai-cost-dashboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "DashboardServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _inline_script(text: str) -> str:
    return text.replace("</script", "<\\/script")


def export_html(load: Loader, query: Query) -> Tuple[str, Dict[str, Any]]:
    """The self-contained page for ``query`` and its document."""
    document = load(query)
    page = static_text("index.html")
    data = to_json(document).replace("<", "\\u003c")  # no "</script>" inside the JSON
    replacements = {
        '<link rel="stylesheet" href="static/dashboard.css">': f"<style>\n{static_text('dashboard.css')}</style>",
        '<script src="static/chart.umd.min.js"></script>':
            f"<script>\n{_inline_script(static_text('chart.umd.min.js'))}\n</script>",
        '<script src="static/dashboard.js"></script>':
            f'<script id="dashboard-data" type="application/json">{data}</script>\n'
            f"<script>\n{_inline_script(static_text('dashboard.js'))}\n</script>",
    }
    for placeholder, inline in replacements.items():
        if placeholder not in page:  # pragma: no cover - the page and this function are edited together
            raise RuntimeError(f"static/index.html lacks {placeholder}")
        page = page.replace(placeholder, inline)
    return page, document
