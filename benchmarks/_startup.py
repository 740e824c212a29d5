"""Peak RSS and start-up per arm, each run in a fresh interpreter (used by bench_all.py).

A child imports openai, httpx2 and the OpenTelemetry SDK, builds the mocked client and the
providers (as any instrumented app has them before it instruments), then times
``import + instrument() + first call``: the instrumentation's import, ``instrument()``, for ours
the first ``AICostSpanProcessor()`` (with the arm's budget), and the first
``chat.completions.create()`` on the mocked transport. After that first call it reads the
process's peak RSS (``ru_maxrss``), and again once the threads the arm started (e.g. a tokenizer
warm-up) have finished, after a second call ("settled"). The bare arm makes the same first call uninstrumented, so
"peak RSS over bare" is what instrumenting adds, and its first call is the floor of the start-up.

    python benchmarks/_startup.py --runs 3 [--arms bare,floor,ours,otel-v2,ours+memory]   # JSON
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ARMS = ("bare", "floor", "otel-v2", "ours", "ours+memory", "ours+sqlite")

PRELOAD = f"""
import json, os, resource, sys, time
sys.path.insert(0, {HERE!r})
import openai, httpx2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
import _mock
client = _mock.sync_client()
mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
tp = TracerProvider()
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out = {{"preload_peak_mb": peak_mb()}}
arm = sys.argv[1]
t0 = time.perf_counter()
"""

SETUP = {
    "bare": "",
    "floor": """
from bench_openai import FloorInstrumentor
FloorInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
""",
    "otel-v2": """
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
""",
    "ours": """
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
from otel_ai_cost.processor import AICostSpanProcessor
kw = {}
if "+" in arm:
    from decimal import Decimal
    from otel_ai_cost.budgets import Budget, MemoryBudgetStore, SQLiteBudgetStore, calendar
    budget = Budget("bench", Decimal("1000000"), calendar("month"), selector={"gen_ai.operation.name": "chat"})
    store = MemoryBudgetStore() if arm == "ours+memory" else SQLiteBudgetStore(os.environ["BENCH_SQLITE"])
    kw = dict(budgets=[budget], budget_store=store)
tp.add_span_processor(AICostSpanProcessor(meter_provider=mp, **kw))
OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
""",
}

CALLS = """
tp.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
t1 = time.perf_counter()
client.chat.completions.create(model=_mock.MODEL, messages=_mock.MESSAGES, max_tokens=200)
t2 = time.perf_counter()
out.update(setup_ms=(t1 - t0) * 1e3, first_call_ms=(t2 - t1) * 1e3, startup_ms=(t2 - t0) * 1e3,
           peak_rss_mb=peak_mb())
t3 = time.perf_counter()
client.chat.completions.create(model=_mock.MODEL, messages=_mock.MESSAGES, max_tokens=200)
out["second_call_ms"] = (time.perf_counter() - t3) * 1e3
import threading
deadline = time.monotonic() + 20  # background work started by instrument() (e.g. a tokenizer warm-up)
for t in threading.enumerate():
    if t is not threading.main_thread() and t.is_alive() and "Batch" not in t.name:
        t.join(max(0.0, deadline - time.monotonic()))
out["settled_peak_rss_mb"] = peak_mb()
print(json.dumps(out))
"""


def program(arm: str) -> str:
    return PRELOAD + SETUP["ours" if arm.startswith("ours") else arm] + CALLS


def run_one(arm: str, python: str, env: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as d:
        env = dict(env, BENCH_SQLITE=os.path.join(d, "budgets.db"))
        p = subprocess.run([python, "-c", program(arm), arm], capture_output=True, text=True, env=env,
                           timeout=120)
    if p.returncode:
        raise SystemExit(f"start-up child {arm} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(arms, runs: int, python: str = sys.executable, env: dict | None = None) -> dict:
    """Median per arm over `runs` fresh interpreters (arms interleaved run by run)."""
    env = dict(os.environ if env is None else env)
    samples: dict[str, list[dict]] = {a: [] for a in arms}
    for _ in range(runs):
        for arm in arms:
            samples[arm].append(run_one(arm, python, env))
    out = {}
    for arm, xs in samples.items():
        out[arm] = {k: statistics.median(x[k] for x in xs) for k in xs[0]}
        out[arm]["runs"] = len(xs)
    if "bare" in out:
        for arm in out:
            out[arm]["peak_rss_over_bare_mb"] = out[arm]["peak_rss_mb"] - out["bare"]["peak_rss_mb"]
            out[arm]["settled_peak_rss_over_bare_mb"] = (out[arm]["settled_peak_rss_mb"]
                                                         - out["bare"]["settled_peak_rss_mb"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--arms", default=",".join(ARMS))
    a = ap.parse_args()
    print(json.dumps(measure([x for x in a.arms.split(",") if x], a.runs), indent=2))


if __name__ == "__main__":
    main()
