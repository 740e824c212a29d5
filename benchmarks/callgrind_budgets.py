"""Instructions a budget check adds per call, counted by callgrind (repeatable on a loaded machine).

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/callgrind_budgets.py ARM CALLS
    .venv/bin/python benchmarks/callgrind_budgets.py --report [CALLS_LOW CALLS_HIGH]  # runs all arms

One process per (arm, calls): ARM is none | memory | sqlite | sqliteq (the SDK call of bench_budgets.py, sync,
mocked transport, one matching budget). ``--report`` runs every arm at two call counts under
callgrind and prints (instructions(high) - instructions(low)) / (high - low) per arm, so start-up
cancels, and each budget arm minus none: the instructions the budget path adds to one call.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ARMS = ("none", "memory", "sqlite", "sqliteq")


def run(arm: str, calls: int) -> None:
    import _mock  # noqa: E402
    from bench_budgets import make_budget
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
    from otel_ai_cost.processor import AICostSpanProcessor

    kw = {}
    tmp = tempfile.mkdtemp()
    if arm == "memory":
        from otel_ai_cost.budgets import MemoryBudgetStore

        kw = dict(budgets=[make_budget()], budget_store=MemoryBudgetStore())
    elif arm in ("sqlite", "sqliteq"):
        from otel_ai_cost.budgets import SQLiteBudgetStore

        queued = {"settle_interval": 0.05} if arm == "sqliteq" else {}
        kw = dict(budgets=[make_budget()], budget_store=SQLiteBudgetStore(os.path.join(tmp, "b.db"), **queued))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tp = TracerProvider()
    tp.add_span_processor(AICostSpanProcessor(meter_provider=mp, **kw))
    exporter = InMemorySpanExporter()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    client = _mock.sync_client()
    for i in range(calls):
        client.chat.completions.create(model=_mock.MODEL, messages=_mock.MESSAGES)
        if i % 100 == 99:
            exporter.clear()
    tp.shutdown()


def instructions(arm: str, calls: int) -> int:
    with tempfile.NamedTemporaryFile(suffix=".cg") as out:
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", sys.executable,
             os.path.abspath(__file__), arm, str(calls)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        text = open(out.name).read()
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    assert m, "no callgrind summary"
    return int(m.group(1))


def report(low: int, high: int) -> None:
    per = {}
    for arm in ARMS:
        per[arm] = (instructions(arm, high) - instructions(arm, low)) / (high - low)
        print(f"{arm}: {per[arm]:,.0f} instructions per call", flush=True)
    for arm in ARMS[1:]:
        print(f"{arm} - none: {per[arm] - per['none']:+,.0f} instructions per call")


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(int(sys.argv[2]) if len(sys.argv) > 2 else 50, int(sys.argv[3]) if len(sys.argv) > 3 else 250)
    else:
        run(sys.argv[1], int(sys.argv[2]))
