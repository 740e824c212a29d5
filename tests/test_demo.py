"""`otel-ai-cost demo`: runs offline, exits 0, and prints the right cost for every call."""
from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List

import pytest

from otel_ai_cost.demo import run_demo
from otel_ai_cost.demo._app import UNKNOWN_MODEL, demo_calls

# gpt-4o-mini list prices, USD per 1M tokens (https://openai.com/api/pricing).
MINI_INPUT, MINI_CACHED, MINI_OUTPUT = Decimal("0.15"), Decimal("0.075"), Decimal("0.60")

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_ROW = re.compile(r"^\s+(\d+)\s{2,}")


def _refuse_network(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """Make every connection or name lookup beyond loopback fail; returns the attempts seen."""
    attempts: List[Any] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOOPBACK:
            attempts.append(address)
            raise OSError(f"test: network access to {address!r} refused")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK and host is not None:
            attempts.append(host)
            raise socket.gaierror(f"test: name lookup of {host!r} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_AI_COST_PRICING_FILES"):
        monkeypatch.delenv(name, raising=False)


def _rows(output: str) -> Dict[int, List[str]]:
    """The table's rows by call number, each split into its cells."""
    rows = {}
    for line in output.splitlines():
        if _ROW.match(line):
            cells = re.split(r"\s{2,}", line.strip())
            rows[int(cells[0])] = cells
    return rows


def _tokens(cell: str) -> tuple:
    total, part = re.fullmatch(r"(\d+) \((\d+)\)", cell).groups()  # type: ignore[union-attr]
    return int(total), int(part)


@pytest.fixture(scope="module")
def demo_output() -> str:
    """The demo's output, run once with no API key, no OTLP endpoint and no network beyond loopback."""
    mp = pytest.MonkeyPatch()
    try:
        _clean_env(mp)
        attempts = _refuse_network(mp)
        out = io.StringIO()
        code = run_demo(out=out)
    finally:
        mp.undo()
    assert attempts == [], f"the demo tried to reach the network: {attempts}"
    assert code == 0, out.getvalue()
    return out.getvalue()


def test_every_call_has_a_row(demo_output: str) -> None:
    rows = _rows(demo_output)
    calls = demo_calls()

    assert sorted(rows) == list(range(1, len(calls) + 1))
    for number, call in enumerate(calls, start=1):
        assert call.description in rows[number][-1]
    assert f"Spans exported: {len(calls)}" in demo_output


def test_rows_show_operation_and_dated_model(demo_output: str) -> None:
    rows = _rows(demo_output)
    operations = {cells[1] for cells in rows.values()}
    models = {cells[2] for cells in rows.values()}

    assert {"chat", "embeddings"} <= operations
    assert {"gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "o4-mini-2025-04-16", "gpt-5-mini-2025-08-07",
            "text-embedding-3-small", UNKNOWN_MODEL} <= models


def test_known_models_have_estimate_and_cost(demo_output: str) -> None:
    for cells in _rows(demo_output).values():
        if cells[2] == UNKNOWN_MODEL:
            continue
        assert re.fullmatch(r"\d+\.\d{6}", cells[5]), cells
        assert re.fullmatch(r"\d+\.\d{6}", cells[6]), cells
        assert Decimal(cells[6]) > 0, cells


def test_gpt_4o_mini_cost_matches_the_list_price(demo_output: str) -> None:
    mini_rows = [cells for cells in _rows(demo_output).values() if cells[2] == "gpt-4o-mini-2024-07-18"]
    assert len(mini_rows) >= 2
    assert any(_tokens(cells[3])[1] > 0 for cells in mini_rows), "no gpt-4o-mini call hit the prompt cache"
    for cells in mini_rows:
        input_tokens, cached = _tokens(cells[3])
        output_tokens, _ = _tokens(cells[4])
        expected = ((input_tokens - cached) * MINI_INPUT + cached * MINI_CACHED
                    + output_tokens * MINI_OUTPUT) / 1_000_000
        assert Decimal(cells[6]) == expected.quantize(Decimal("0.000001")), cells


def test_reasoning_tokens_are_shown(demo_output: str) -> None:
    reasoning = [_tokens(cells[4])[1] for cells in _rows(demo_output).values()
                 if cells[2].startswith(("o4-mini", "gpt-5-mini"))]
    assert len(reasoning) == 2 and all(r > 0 for r in reasoning)


def test_unknown_model_is_not_priced_as_zero(demo_output: str) -> None:
    (cells,) = [c for c in _rows(demo_output).values() if c[2] == UNKNOWN_MODEL]

    assert cells[5] == "\u2014" and cells[6] == "\u2014"
    assert "unknown model" in cells[-1]
    assert "0.000000" not in cells


def test_total_is_the_sum_of_the_rows(demo_output: str) -> None:
    match = re.search(r"Total spend: \$(\d+\.\d{6}) over (\d+) priced calls", demo_output)
    assert match
    costs = [Decimal(c[6]) for c in _rows(demo_output).values() if c[6] != "\u2014"]
    assert int(match.group(2)) == len(costs)
    assert abs(Decimal(match.group(1)) - sum(costs)) <= Decimal("0.000001") * len(costs)


def test_hint_says_how_to_export_and_run_zero_code(demo_output: str) -> None:
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in demo_output
    assert "opentelemetry-instrument" in demo_output


def test_demo_runs_twice_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    first, second = io.StringIO(), io.StringIO()

    assert run_demo(out=first) == 0 and run_demo(out=second) == 0
    assert _rows(first.getvalue()) == _rows(second.getvalue())


def test_missing_instrumentation_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "otel_ai_cost.instrumentation.openai", None)  # makes the import fail
    out = io.StringIO()

    assert run_demo(out=out) == 1
    assert "otel-ai-cost: error:" in out.getvalue()


def test_otlp_exporter_added_when_endpoint_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otel_ai_cost.demo._app import _otlp_processor

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    out = io.StringIO()
    processor = _otlp_processor(out)
    try:
        assert isinstance(processor, BatchSpanProcessor)
        assert "http://127.0.0.1:4317" in out.getvalue()
    finally:
        processor.shutdown()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert _otlp_processor(io.StringIO()) is None


_GUARD = textwrap.dedent('''
    import os, socket
    _real_connect = socket.socket.connect
    _real_getaddrinfo = socket.getaddrinfo
    _LOOPBACK = {"127.0.0.1", "::1", "localhost"}

    def _connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOOPBACK:
            raise SystemExit("test: network access to %r refused" % (address,))
        return _real_connect(self, address)

    def _getaddrinfo(host, *args, **kwargs):
        if host is not None and host not in _LOOPBACK:
            raise SystemExit("test: name lookup of %r refused" % (host,))
        return _real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = _connect
    socket.getaddrinfo = _getaddrinfo
    open(os.environ["NETWORK_GUARD_MARKER"], "w").close()
''')


def test_python_m_demo_offline(tmp_path: Path) -> None:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(_GUARD)
    marker = tmp_path / "guard-loaded"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "OTEL_EXPORTER_OTLP", "OTEL_AI_COST_"))}
    env.update(PYTHONPATH=str(guard), NETWORK_GUARD_MARKER=str(marker))

    result = subprocess.run([sys.executable, "-m", "otel_ai_cost", "demo"], env=env, capture_output=True,
                            text=True, timeout=60)

    assert marker.exists(), "the network guard was not loaded"
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(_rows(result.stdout)) == len(demo_calls())
    assert "Total spend: $" in result.stdout
    assert "Traceback" not in result.stderr
