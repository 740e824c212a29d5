"""Issue 8, item 7 (part): `prices list` has a header and units, `prices list --json` is a catalog that
`prices validate` accepts, and `prices import` says when a file is not LiteLLM's format. The real
command, as a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def otel_ai_cost(*argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_AI_COST_")}
    return subprocess.run([sys.executable, "-m", "otel_ai_cost", *argv], capture_output=True, text=True,
                          timeout=120, env=env)


def test_prices_list_has_a_header_and_units():
    done = otel_ai_cost("prices", "list", "--provider", "openai")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split("\t") == ["PROVIDER", "MODEL", "MODE", "INPUT_USD_PER_1M_TOKENS", "OUTPUT_USD_PER_1M_TOKENS"]
    row = next(line.split("\t") for line in lines if line.split("\t")[1] == "gpt-4o-mini")
    assert row[3:] == ["0.15", "0.6"]
    assert "prices in USD per 1,000,000 tokens" in done.stderr


def test_prices_list_json_validates_and_loads_as_a_pricing_file(tmp_path):
    done = otel_ai_cost("prices", "list", "--provider", "anthropic", "--json")
    assert done.returncode == 0, done.stderr
    path = tmp_path / "anthropic.json"
    path.write_text(done.stdout)
    count = len(json.loads(done.stdout)["models"])
    checked = otel_ai_cost("prices", "validate", str(path))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == f"ok: {count} models"


def test_prices_import_of_a_file_that_is_not_litellm_says_so(tmp_path):
    ours = tmp_path / "ours.json"
    ours.write_text(otel_ai_cost("prices", "list", "--provider", "groq", "--json").stdout)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"gpt-4o": {"input": 2.5, "output": 10}}))
    for path, hint in ((ours, "already an otel-ai-cost catalog"), (other, "no entry has a litellm_provider key")):
        done = otel_ai_cost("prices", "import", str(path))
        assert done.returncode == 2
        assert done.stdout == ""
        (line,) = done.stderr.strip().splitlines()
        assert "not a LiteLLM price file" in line and hint in line and str(path) in line
    small = Path(__file__).parent / "fixtures" / "litellm" / "small.json"
    assert otel_ai_cost("prices", "import", str(small)).returncode == 0  # a LiteLLM file still imports
