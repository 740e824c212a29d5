"""Issue 8, item 8: a CLI error is one clean line on stderr with a non-zero exit code (2 for bad input),
never a traceback. The real command, run as a subprocess."""
from __future__ import annotations

import subprocess
import sys

import pytest


def otel_ai_cost(*argv: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_ai_cost", *argv], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=env)


@pytest.mark.parametrize("make_argv, needle", [
    (lambda d: ["prices", "validate", str(d / "missing.json")], "missing.json"),
    (lambda d: ["prices", "validate", str(d / "bad.json")], "invalid JSON"),
    (lambda d: ["prices", "import", str(d / "bad.json")], "bad.json"),
    (lambda d: ["prices", "import", str(d / "missing.json")], "missing.json"),
    (lambda d: ["estimate", "--model", "gpt-4o", "--messages", str(d / "missing.json")], "missing.json"),
    (lambda d: ["estimate", "--model", "gpt-4o", "--text", "hi", "--max-tokens", "-3"], "--max-tokens -3"),
    (lambda d: ["budget", "list", "--config", str(d / "missing.yaml")], "missing.yaml"),
    (lambda d: ["budget", "list", "--config", str(d / "bad.json")], "bad.json"),
    (lambda d: ["report", "--config", str(d / "missing.yaml")], "missing.yaml"),
    (lambda d: ["report", "--since", "yesterday-ish", "--config", str(d / "missing.yaml")], "--since"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, make_argv, needle):
    (tmp_path / "bad.json").write_text("{not json")
    done = otel_ai_cost(*make_argv(tmp_path))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("otel-ai-cost: error: ") and needle in lines[0]


@pytest.mark.parametrize("argv", [["no-such-command"], ["prices"], ["budget", "adjust", "team"], ["--nope"]])
def test_bad_arguments_exit_2_with_usage_and_no_traceback(argv):
    done = otel_ai_cost(*argv)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "error:" in done.stderr


def test_an_unwritable_output_file_is_one_line(tmp_path):
    from pathlib import Path

    small = Path(__file__).parent / "fixtures" / "litellm" / "small.json"
    done = otel_ai_cost("prices", "import", str(small), "-o", str(tmp_path / "no" / "such" / "dir.json"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("otel-ai-cost: error: ")
