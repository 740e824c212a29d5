"""The `otel-ai-cost` command: estimate, prices, version, and its exit codes."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Tuple

import pytest

from otel_ai_cost.cli import main

# gpt-4o-mini list prices, USD per 1M tokens.
MINI_INPUT, MINI_OUTPUT = Decimal("0.15"), Decimal("0.60")
PROMPT = "Summarise this support ticket for the CRM in one line."


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _input_tokens(out: str) -> Tuple[int, str]:
    match = re.search(r"^input: (\d+) tokens? \((\w+)\)", out, re.M)
    assert match, out
    return int(match.group(1)), match.group(2)


def _cost_range(out: str) -> Tuple[Decimal, Decimal]:
    match = re.search(r"estimated cost: \$([\d.]+) \(input only\) to \$([\d.]+)", out)
    assert match, out
    return Decimal(match.group(1)), Decimal(match.group(2))


def test_estimate_text_with_max_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "estimate", "--model", "gpt-4o-mini", "--text", PROMPT, "--max-tokens", "1000")

    assert code == 0
    tokens, method = _input_tokens(out)
    assert 10 <= tokens <= 30
    assert method in ("tiktoken", "heuristic")
    assert "up to 1000 tokens (--max-tokens)" in out
    low, high = _cost_range(out)
    q = Decimal("0.000001")
    assert low == (tokens * MINI_INPUT / 1_000_000).quantize(q)
    assert high == ((tokens * MINI_INPUT + 1000 * MINI_OUTPUT) / 1_000_000).quantize(q)


def test_estimate_without_max_tokens_uses_the_model_limit(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "estimate", "--model", "gpt-4o", "--text", PROMPT)

    assert code == 0
    assert re.search(r"output: up to \d+ tokens \(the model's maximum output", out), out
    low, high = _cost_range(out)
    assert 0 < low < high


def test_estimate_messages_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messages = [{"role": "system", "content": "You are a support assistant."}, {"role": "user", "content": PROMPT}]
    path = tmp_path / "messages.json"
    path.write_text(json.dumps(messages))

    code, out, _ = _run(capsys, "estimate", "--model", "gpt-4o-mini", "--messages", str(path), "--max-tokens", "50")
    from_file, _ = _input_tokens(out)
    _, text_out, _ = _run(capsys, "estimate", "--model", "gpt-4o-mini", "--text", PROMPT)
    from_text, _ = _input_tokens(text_out)

    assert code == 0
    assert str(path) in out
    assert from_file > from_text  # the system message adds tokens


def test_estimate_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PROMPT))
    code, out, _ = _run(capsys, "estimate", "--model", "gpt-4o-mini", "--max-tokens", "10")
    _, text_out, _ = _run(capsys, "estimate", "--model", "gpt-4o-mini", "--text", PROMPT, "--max-tokens", "10")

    assert code == 0
    assert "standard input" in out
    assert _input_tokens(out) == _input_tokens(text_out)
    assert _cost_range(out) == _cost_range(text_out)


def test_estimate_embedding_model_has_no_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "estimate", "--model", "text-embedding-3-small", "--text", "hello")

    assert code == 0
    assert "no output tokens" in out
    assert re.search(r"estimated cost: \$0\.0000000\d+", out), out  # tiny, but not shown as zero


def test_estimate_unknown_model_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "estimate", "--model", "acme-support-llm", "--text", PROMPT)

    assert code == 1
    assert "'acme-support-llm' is not in the pricing catalog" in out
    assert "estimated cost" not in out


def test_estimate_missing_messages_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    code, _, err = _run(capsys, "estimate", "--model", "gpt-4o", "--messages", str(missing))

    assert code == 2
    assert err.startswith("otel-ai-cost: error: --messages ")
    assert str(missing) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content", ["{not json", '{"role": "user"}', '["hello"]'])
def test_estimate_bad_messages_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str) -> None:
    path = tmp_path / "messages.json"
    path.write_text(content)
    code, _, err = _run(capsys, "estimate", "--model", "gpt-4o", "--messages", str(path))

    assert code == 2
    assert err.startswith(f"otel-ai-cost: error: --messages {path}")


def test_prices_show_passthrough(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "prices", "show", "gpt-4o")

    assert code == 0
    assert "input=$2.5/1M" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--version")

    assert code == 0
    assert re.fullmatch(r"otel-ai-cost \S+\n", out)


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["estimate"],
                                  ["estimate", "--model", "gpt-4o", "--max-tokens", "x"],
                                  ["estimate", "--model", "gpt-4o", "--text", "a", "--messages", "b.json"]])
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], argv: list) -> None:
    code, _, err = _run(capsys, *argv)

    assert code == 2
    assert "usage: otel-ai-cost" in err


def test_console_entry_points() -> None:
    result = subprocess.run([sys.executable, "-m", "otel_ai_cost", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("otel-ai-cost ")
    result = subprocess.run([sys.executable, "-m", "otel_ai_cost", "estimate", "--model", "gpt-4o-mini"],
                            input=PROMPT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "estimated cost: $" in result.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fake_openai_serves_the_sdk_until_ctrl_c() -> None:
    import os
    import signal

    import openai

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = subprocess.Popen([sys.executable, "-m", "otel_ai_cost", "fake-openai", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while not any("OPENAI_BASE_URL=" in line for line in lines):
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, f"exited early: {proc.wait(10)}: {''.join(lines)}{proc.stderr.read()}"  # type: ignore[union-attr]
            lines.append(line)
        base_url = re.search(r"OPENAI_BASE_URL=(\S+)", "".join(lines)).group(1)  # type: ignore[union-attr]
        assert base_url == f"http://127.0.0.1:{port}/v1"

        client = openai.OpenAI(base_url=base_url, api_key="sk-fake", max_retries=0,
                               http_client=openai.DefaultHttpxClient(trust_env=False))
        try:
            reply = client.chat.completions.create(
                model="gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": PROMPT}])
            chunks = list(client.chat.completions.create(
                model="gpt-4o-mini", max_tokens=20, stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": PROMPT}]))
        finally:
            client.close()
        assert reply.model == "gpt-4o-mini-2024-07-18"
        assert reply.usage is not None and reply.usage.prompt_tokens > 0
        assert 0 < reply.usage.completion_tokens <= 20
        assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == reply.usage.prompt_tokens

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err


def test_fake_openai_on_a_port_in_use_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = _run(capsys, "fake-openai", "--port", str(port))
    assert code == 2
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in err
    assert out == ""
