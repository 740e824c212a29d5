#!/usr/bin/env bash
# Creates the benchmark venv that benchmarks/bench_all.py runs in (never the project's .venv):
#   benchmarks/setup-venv.sh            # -> $BENCH_VENV (default ~/.cache/otel-ai-cost/bench-venv)
#   PYTHON=/path/to/python3.11 benchmarks/setup-venv.sh
# Idempotent: re-running only installs what changed in requirements-bench.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${BENCH_VENV:-$HOME/.cache/otel-ai-cost/bench-venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements-bench.txt"
# The arm must import: a broken pin fails here, not in the middle of a benchmark run.
"$venv/bin/python" -c "import httpx, openai, opentelemetry.instrumentation.openai_v2, redis, tiktoken"
echo "$venv"
