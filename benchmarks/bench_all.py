"""Issue 12's proof: every arm in one run, one markdown table with the ratios the targets are stated in.

    python3 benchmarks/bench_all.py                 # ~4-5 min on 2 loaded cores
    python3 benchmarks/bench_all.py --quick         # ~1 min
    python3 benchmarks/bench_all.py --json out.json

Runs in the benchmark venv (benchmarks/setup-venv.sh; created on first use, never the project's
.venv), with this checkout's src/ first on PYTHONPATH. What it runs:

1. Per scenario (sync, async, 64-delta stream), one child process of bench_openai.py with every
   arm interleaved in blocks (see bench_openai.py for the method): bare; floor, the official
   opentelemetry-instrumentation-openai-v2 (`otel-v2`), ours, and ours with one budget in the
   memory, SQLite and Redis stores (a redis-server started on 127.0.0.1 by the child), each in two
   variants: `simple` (SimpleSpanProcessor + InMemorySpanExporter, the issue's table) and `batch`
   (BatchSpanProcessor into a null exporter, what users run); and ours with the anomaly detector
   on (`ours+anomalies`, paired with ours: what the detector adds per call, issue 13).
2. Start-up and peak RSS per arm in fresh interpreters (_startup.py): import + instrument() (+ ours'
   first AICostSpanProcessor) + the first call, and ru_maxrss after that call, against bare.

"added" = median over blocks of (arm block median - bare block median of the same round).
"budget - ours" is paired the same way against ours of the same variant, in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import _startup  # noqa: E402

SCENARIOS = ("sync", "async", "stream")
BASES = ("floor", "otel-v2", "ours", "ours+memory", "ours+sqlite", "ours+redis", "ours+anomalies")
VARIANTS = ("simple", "batch")
LABELS = {"bare": "bare SDK call (median)", "floor": "floor: 1 span + 3 metric points",
          "otel-v2": "official openai-v2 2.4b0", "ours": "**otel-ai-cost**",
          "ours+memory": "otel-ai-cost + memory budget", "ours+sqlite": "otel-ai-cost + SQLite budget",
          "ours+redis": "otel-ai-cost + Redis budget", "ours+anomalies": "otel-ai-cost + anomalies"}
STARTUP_ARMS = ("bare", "floor", "otel-v2", "ours", "ours+memory", "ours+sqlite")
# (blocks, calls per block, warm-up calls per arm) with 15 arms per scenario
SIZES = {
    "full": {"sync": (10, 120, 60), "async": (10, 120, 60), "stream": (16, 12, 6), "startup_runs": 3},
    "quick": {"sync": (4, 50, 20), "async": (4, 50, 20), "stream": (3, 6, 3), "startup_runs": 1},
}
TARGETS = {"ratio_floor": 1.3, "stream_pct": 3.0, "memory": 20.0, "sqlite": 120.0, "rss_mb": 15.0,
           "startup_ms": 150.0, "anomalies": 10.0}
# The arms with one budget in a store (bench_budgets.py's), checked for their decision and holds.
BUDGET_ARMS = ("ours+memory", "ours+sqlite", "ours+redis")


def bench_python(setup: bool) -> str:
    venv = os.environ.get("BENCH_VENV") or os.path.expanduser("~/.cache/otel-ai-cost/bench-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        if not setup:
            raise SystemExit(f"no benchmark venv at {venv}: run benchmarks/setup-venv.sh")
        print(f"[creating the benchmark venv {venv}]", file=sys.stderr)
        subprocess.run([os.path.join(HERE, "setup-venv.sh")], check=True, stdout=sys.stderr)
    return py


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "src"), HERE] + [env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    return env


def arm_specs(bases=BASES, variants=VARIANTS) -> list[str]:
    out = ["bare"]
    for v in variants:
        out += [b if v == "batch" else f"{b}/{v}" for b in bases]
    return out


def run_scenario(py: str, env: dict, scenario: str, arms, blocks: int, calls: int, warm: int) -> dict:
    cmd = [py, os.path.join(HERE, "bench_openai.py"), "--scenario", scenario, "--child", "--arms", ",".join(arms),
           "--blocks", str(blocks), "--calls", str(calls), "--warm", str(warm)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    if p.returncode:
        raise SystemExit(f"scenario {scenario} failed ({p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the table

def _us(x) -> str:
    return "—" if x is None else f"{x:+,.0f}"


def _ratio(a, b) -> str:
    """a ÷ b, or — when either is missing or not positive (an added time below 0 is the noise)."""
    return "—" if a is None or b is None or a <= 0 or b <= 0 else f"{a / b:.2f}×"


def summarize(results: dict, startup: dict) -> dict:
    """The numbers of the table: per scenario and arm name, added µs, over-ours µs, % of bare."""
    out: dict = {"scenarios": {}, "startup": startup}
    for s, res in results.items():
        rows = {r["arm"]: r for r in res["rows"]}
        bare = rows["bare"]["median_us"]
        out["scenarios"][s] = {
            "bare_median_us": bare, "redis_ping_us": res.get("redis_ping_us"), "blocks": res["blocks"],
            "calls": res["calls"],
            "arms": {name: {"added_us": r["added_us"], "pct_of_bare": r["added_us"] / bare * 100,
                            "over_ours_us": r.get("over_ours_us"), "spans": r["check"].get("spans"),
                            "budget": r["check"].get("budget")}
                     for name, r in rows.items() if name != "bare"}}
    return out


def problems(summary: dict, arms) -> list[str]:
    """What makes a run invalid: an arm that did not run or exported nothing, a budget arm whose
    last span was not decided by its budget, or that left a hold."""
    out = []
    for s, sc in summary["scenarios"].items():
        for name in arms[1:]:
            r = sc["arms"].get(name)
            if r is None:
                out.append(f"{s}: arm {name} did not run")
                continue
            if not r.get("spans"):
                out.append(f"{s}: arm {name} exported no span")
            b = r.get("budget")
            if name.split("/")[0] in BUDGET_ARMS and (not b or b["decision"] != "allow" or b["reserved_usd"] != "0"):
                out.append(f"{s}: arm {name}: budget check not as expected: {b}")
    return out


def table(summary: dict, variants=VARIANTS) -> str:
    sc = summary["scenarios"]
    st = summary["startup"]
    vs = " / ".join(variants)

    def cell(scenario, base, key="added_us"):
        arms = sc[scenario]["arms"]
        vals = [arms.get(base if v == "batch" else f"{base}/{v}", {}).get(key) for v in variants]
        text = " / ".join(_us(x) for x in vals)
        if scenario == "stream" and key == "added_us":
            text += " (" + " / ".join("—" if x is None else f"{x / sc['stream']['bare_median_us'] * 100:.1f} %"
                                      for x in vals) + ")"
        return text

    def ratio_cell(scenario, num, den):
        arms = sc[scenario]["arms"]
        out = []
        for v in variants:
            a = arms.get(num if v == "batch" else f"{num}/{v}", {}).get("added_us")
            b = arms.get(den if v == "batch" else f"{den}/{v}", {}).get("added_us")
            out.append(_ratio(a, b))
        return " / ".join(out)

    def rss(base):
        r = st.get(base)
        if not r:
            return "—"
        return f"{r['peak_rss_over_bare_mb']:+.1f} MB"

    def start(base):
        r = st.get(base)
        return "—" if not r else f"{r['startup_ms']:,.0f} ms"

    head = (f"| per call ({vs}) | sync µs | async µs | stream, 64 deltas µs (% of the stream) | "
            "peak RSS over bare | import + instrument() + first call |")
    lines = [head, "|---|---:|---:|---:|---:|---:|"]
    bare = st.get("bare", {})
    lines.append(f"| {LABELS['bare']} | {sc['sync']['bare_median_us']:,.0f} | {sc['async']['bare_median_us']:,.0f} | "
                 f"{sc['stream']['bare_median_us']:,.0f} | {bare.get('peak_rss_mb', 0):.0f} MB | "
                 f"{bare.get('startup_ms', 0):,.0f} ms (first call) |")
    for base in BASES:
        lines.append(f"| {LABELS[base]} | {cell('sync', base)} | {cell('async', base)} | {cell('stream', base)} | "
                     f"{rss(base)} | {start(base)} |")
    t = TARGETS
    lines.append(f"| **ours ÷ floor** (target ≤ {t['ratio_floor']}×) | {ratio_cell('sync', 'ours', 'floor')} | "
                 f"{ratio_cell('async', 'ours', 'floor')} | {ratio_cell('stream', 'ours', 'floor')} | | |")
    lines.append(f"| **ours ÷ official** (target < 1×) | {ratio_cell('sync', 'ours', 'otel-v2')} | "
                 f"{ratio_cell('async', 'ours', 'otel-v2')} | {ratio_cell('stream', 'ours', 'otel-v2')} | | |")
    for store, label, target in (("memory", "memory", f"≤ +{t['memory']:.0f}"),
                                 ("sqlite", "SQLite", f"≤ +{t['sqlite']:.0f}"),
                                 ("redis", "Redis", "measured")):
        base = f"ours+{store}"
        extra = ""
        if store == "redis":
            ping = sc["sync"].get("redis_ping_us")
            extra = f"; loopback PING {ping:.0f} µs" if ping else ""
        lines.append(f"| **{label} budget − ours** µs ({target}{extra}) | {cell('sync', base, 'over_ours_us')} | "
                     f"{cell('async', base, 'over_ours_us')} | {cell('stream', base, 'over_ours_us')} | | |")
    anomalies = [cell(s, "ours+anomalies", "over_ours_us") for s in SCENARIOS]
    lines.append(f"| **anomalies − ours** µs (target ≤ +{t['anomalies']:.0f}) | {anomalies[0]} | {anomalies[1]} | "
                 f"{anomalies[2]} | | |")
    ours = st.get("ours")
    if ours:
        lines.append(f"| **ours start-up / RSS** (targets < {t['startup_ms']:.0f} ms, ≤ +{t['rss_mb']:.0f} MB) "
                     f"| | | | {ours['peak_rss_over_bare_mb']:+.1f} MB | {ours['startup_ms']:,.0f} ms |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (~1 min)")
    ap.add_argument("--json", metavar="FILE", help="also write every number (and the raw rows) as JSON")
    ap.add_argument("--blocks", type=int, help="blocks per scenario (overrides the preset)")
    ap.add_argument("--calls", type=int, help="calls per block (overrides the preset)")
    ap.add_argument("--warm", type=int, help="warm-up calls per arm (overrides the preset)")
    ap.add_argument("--startup-runs", type=int, help="fresh interpreters per start-up arm (overrides the preset)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="simple,batch (or one of them)")
    ap.add_argument("--no-setup", action="store_true", help="fail instead of creating the benchmark venv")
    a = ap.parse_args()
    size = SIZES["quick" if a.quick else "full"]
    variants = tuple(v for v in a.variants.split(",") if v)
    py = bench_python(not a.no_setup)
    env = child_env()
    arms = arm_specs(variants=variants)
    t_all = time.perf_counter()
    results = {}
    for s in SCENARIOS:
        blocks, calls, warm = size[s]
        t0 = time.perf_counter()
        results[s] = run_scenario(py, env, s, arms, a.blocks or blocks, a.calls or calls,
                                  a.warm if a.warm is not None else warm)
        print(f"[{s}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    t0 = time.perf_counter()
    startup = _startup.measure(STARTUP_ARMS, a.startup_runs or size["startup_runs"], python=py, env=env)
    print(f"[start-up: {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    summary = summarize(results, startup)
    versions = subprocess.run([py, "-c", "import openai, opentelemetry.sdk.version as v, platform; "
                               "print(platform.python_version(), openai.__version__, v.__version__)"],
                              capture_output=True, text=True, env=env).stdout.split()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    sync = summary["scenarios"]["sync"]
    print(f"bench_all {when}: Python {versions[0]}, openai {versions[1]}, OTel SDK {versions[2]}, "
          f"{os.cpu_count()} CPUs, load {load:.1f}; {sync['blocks']} blocks x {sync['calls']} calls "
          f"(streams: {summary['scenarios']['stream']['blocks']} x {summary['scenarios']['stream']['calls']}), "
          f"{time.perf_counter() - t_all:.0f} s. Cells: {' / '.join(variants)} span processor.\n")
    print(table(summary, variants))
    bad = problems(summary, arms)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"date": when, "python": versions[0], "openai": versions[1], "otel_sdk": versions[2],
                       "load": load, "variants": list(variants), "problems": bad, "summary": summary,
                       "raw": results},
                      f, indent=2, default=str)
    if bad:
        raise SystemExit("invalid run:\n" + "\n".join(bad))


if __name__ == "__main__":
    main()
