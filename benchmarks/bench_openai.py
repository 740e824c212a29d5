"""Per-call overhead of OpenAI instrumentations against the bare SDK, on a mocked transport.

    .venv/bin/python benchmarks/bench_openai.py            # all scenarios, < 2 min
    .venv/bin/python benchmarks/bench_openai.py --quick    # ~15 s
    .venv/bin/python benchmarks/bench_openai.py --scenario sync --profile ours   # where time goes

Arms (every instrumented arm gets its own SDK TracerProvider and its own MeterProvider with an
InMemoryMetricReader). An arm is NAME or NAME/simple: the default `batch` variant exports through a
BatchSpanProcessor to a null exporter (what users run), `/simple` through a SimpleSpanProcessor to
the SDK's InMemorySpanExporter (export on the call's path; emptied after every block, untimed):

    bare        no instrumentation: the class method is the SDK's own (checked before every block)
    ours        otel_ai_cost OpenAIInstrumentor + AICostSpanProcessor (cost estimate at start,
                usage + cost at end), the processor recording into the arm's MeterProvider
    ours+memory, ours+sqlite, ours+redis
                ours with one budget matching every call (bench_budgets.py's) in that store; Redis
                on a redis-server the run starts on 127.0.0.1. Also paired with ours of the same
                variant ("over_ours_us"): what the budget check adds
    ours+anomalies
                ours with the anomaly detector on (AICostSpanProcessor(anomalies=True): every ending
                span fed to it, baselines in memory); also paired with ours ("over_ours_us")
    ours-noproc ours without AICostSpanProcessor (diagnostic, not in the default set)
    ours-nometrics  ours with a no-op MeterProvider (diagnostic, not in the default set)
    floor       the least any span-and-metrics instrumentation pays here: a wrapt wrapper that
                opens one SDK span with 5 request attributes, sets 2 usage attributes and records
                the 3 standard histogram points (duration, input/output tokens). For streams the
                span closes when create() returns, so it is a floor for the call, not per chunk.
    otel-genai  opentelemetry-instrumentation-genai-openai (the official OTel GenAI one), defaults
    otel-v2     opentelemetry-instrumentation-openai-v2 (contrib), defaults. Only in the benchmark
                venv (benchmarks/setup-venv.sh): 2.4b0 imports `httpx` (openai 3 is built on
                httpx2) and needs opentelemetry-util-genai < 1.2b0, while otel-genai needs >= 1.3b0,
                so otel-v2 and otel-genai never share a run. bench_all.py runs the issue-12 set.

Method: one process per scenario (the parent runs one child per scenario); inside it the arms
alternate in short blocks (--calls per block, order rotated every block), switched with
instrument()/uninstrument(). A few untimed calls follow every switch. Each call is timed alone
with perf_counter_ns. "added" is the median over blocks of (arm's block median - bare's block
median in the same round), so slow drift of the machine cancels. gc stays enabled while timing
(allocation-driven collections are part of an instrumentation's cost); gc.collect() runs
between blocks. --gc-off disables gc inside timed blocks.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import pstats
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _mock  # noqa: E402

SCENARIOS = ("sync", "async", "stream")
SCENARIO_TITLES = {
    "sync": "sync, non-streaming",
    "async": "async, non-streaming",
    "stream": f"sync stream, {_mock.STREAM_CHUNKS} chunks + usage, all consumed",
}
DEFAULT_ARMS = ("bare", "floor", "ours", "otel-genai")
ALL_ARMS = ("bare", "floor", "ours", "ours-noproc", "ours-nometrics", "otel-v2", "otel-genai",
            "ours+memory", "ours+sqlite", "ours+redis", "ours+anomalies")
VARIANTS = ("batch", "simple")  # an arm is NAME or NAME/simple; see Arm
# (blocks, calls per block, warm-up calls per arm)
SIZES = {
    "full": {"sync": (20, 200, 100), "async": (20, 200, 100), "stream": (16, 20, 10)},
    "quick": {"sync": (6, 60, 40), "async": (6, 60, 40), "stream": (4, 8, 4)},
}
SETTLE = 3  # untimed calls after each switch


# --------------------------------------------------------------------------- providers / arms

class NullExporter:
    """A span exporter that keeps only a count and the last span."""

    def __init__(self):
        self.count = 0
        self.last = None

    def export(self, spans):
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.count += len(spans)
        if spans:
            self.last = spans[-1]
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def split_spec(spec: str) -> tuple[str, str]:
    """'ours+memory/simple' -> ('ours+memory', 'simple'); the variant defaults to 'batch'."""
    base, _, variant = spec.partition("/")
    variant = variant or "batch"
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r} in {spec!r} (one of {', '.join(VARIANTS)})")
    return base, variant


def arm_name(base: str, variant: str) -> str:
    return base if variant == "batch" else f"{base}/{variant}"


class Arm:
    """One arm: its own TracerProvider and MeterProvider, and an instrumentor switched on and off.

    ``spec`` is ``NAME`` or ``NAME/VARIANT``: ``batch`` (default) is a BatchSpanProcessor into a
    null exporter, ``simple`` a SimpleSpanProcessor into the SDK's InMemorySpanExporter (export on
    the call's path; the harness empties it after every block, outside the timed calls).
    ``ours+memory`` / ``ours+sqlite`` / ``ours+redis`` are ``ours`` with one budget matching every
    call in that store (bench_budgets.py's budget and stores; ``stores`` opens them).
    """

    def __init__(self, spec: str, stores=None):
        self.base, self.variant = split_spec(spec)
        self.name = arm_name(self.base, self.variant)
        self.instrumentor = None
        self.exporter = None
        self.memory_exporter = None
        self.spans = 0
        self.last_span = None
        self.store = None
        self.processor = None
        self.tp = self.mp = self.reader = None
        self.notes: list[str] = []
        name = self.base
        if name == "bare":
            return
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.reader = InMemoryMetricReader()
        self.mp = MeterProvider(metric_readers=[self.reader])
        if name == "ours-nometrics":
            from opentelemetry.metrics import NoOpMeterProvider

            self.mp = NoOpMeterProvider()
        self.tp = TracerProvider()
        if name == "ours" or name.startswith("ours+"):
            from otel_ai_cost.processor import AICostSpanProcessor

            kw: dict = {}
            if name == "ours+anomalies":
                kw = dict(anomalies=True)
            elif name.startswith("ours+"):
                import bench_budgets

                kind = name.split("+", 1)[1]
                if stores is None or kind not in bench_budgets.STORES:
                    raise SystemExit(f"unknown budget store in arm {spec!r}")
                # Each store as its constructor's defaults make it: RedisBudgetStore queues its settles
                # (bench_budgets' "redisq"), SQLiteBudgetStore sends each at once ("sqlite").
                self.store = stores.open("redisq" if kind == "redis" else kind)
                kw = dict(budgets=[bench_budgets.make_budget()], budget_store=self.store)
            self.processor = AICostSpanProcessor(meter_provider=self.mp, **kw)
            self.tp.add_span_processor(self.processor)
        if self.variant == "simple":
            self.memory_exporter = InMemorySpanExporter()
            self.tp.add_span_processor(SimpleSpanProcessor(self.memory_exporter))
        else:
            self.exporter = NullExporter()
            self.tp.add_span_processor(BatchSpanProcessor(self.exporter))
        if name in ("ours", "ours-noproc", "ours-nometrics") or name.startswith("ours+"):
            from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
        elif name == "floor":
            OpenAIInstrumentor = FloorInstrumentor
        elif name == "otel-v2":
            # 2.4b0 imports `httpx` and opentelemetry.util.genai.instruments (util-genai < 1.2b0):
            # run it from the benchmark venv, benchmarks/setup-venv.sh.
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        elif name == "otel-genai":
            from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
        else:
            raise SystemExit(f"unknown arm {name!r}")
        self.instrumentor = OpenAIInstrumentor()
        self.skip_dep_check = False

    def on(self):
        if self.instrumentor is None:
            return
        kw = dict(tracer_provider=self.tp, meter_provider=self.mp)
        try:
            self.instrumentor.instrument(raise_exception_on_conflict=True, skip_dep_check=self.skip_dep_check, **kw)
        except Exception as e:  # DependencyConflictError: the package does not declare this openai
            if type(e).__name__ != "DependencyConflictError":
                raise
            self.skip_dep_check = True
            self.notes.append(f"dependency check refused ({e}); instrumented with skip_dep_check=True")
            self.instrumentor.instrument(skip_dep_check=True, **kw)

    def off(self):
        if self.instrumentor is None:
            return
        self.instrumentor.uninstrument()
        self.tp.force_flush()  # drain the batch queue outside the timed blocks
        if self.memory_exporter is not None:  # keep the count and the last span, drop the rest
            finished = self.memory_exporter.get_finished_spans()
            self.spans += len(finished)
            if finished:
                self.last_span = finished[-1]
            self.memory_exporter.clear()
        elif self.exporter is not None:
            self.spans, self.last_span = self.exporter.count, self.exporter.last

    def shutdown(self):
        if self.tp is not None:
            self.tp.shutdown()  # also closes a budget store (AICostSpanProcessor.shutdown)
            getattr(self.mp, "shutdown", lambda: None)()


class FloorInstrumentor:
    """Minimal span + 3 histogram points around Completions.create (see the `floor` arm)."""

    ATTRS = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
             "gen_ai.request.model": _mock.MODEL, "server.address": "api.openai.com", "server.port": 443}

    def instrument(self, tracer_provider=None, meter_provider=None, **_):
        import wrapt

        tracer = tracer_provider.get_tracer("floor")
        meter = meter_provider.get_meter("floor")
        duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
        tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
        attrs = self.ATTRS
        in_attrs = {**attrs, "gen_ai.token.type": "input"}
        out_attrs = {**attrs, "gen_ai.token.type": "output"}

        def after(span, r, t0):
            usage = getattr(r, "usage", None)
            if usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
                tokens.record(usage.prompt_tokens, in_attrs)
                tokens.record(usage.completion_tokens, out_attrs)
            duration.record(time.perf_counter() - t0, attrs)

        def sync_wrapper(wrapped, instance, args, kwargs):
            t0 = time.perf_counter()
            with tracer.start_as_current_span("chat " + _mock.MODEL, attributes=attrs) as span:
                r = wrapped(*args, **kwargs)
                after(span, r, t0)
                return r

        async def async_wrapper(wrapped, instance, args, kwargs):
            t0 = time.perf_counter()
            with tracer.start_as_current_span("chat " + _mock.MODEL, attributes=attrs) as span:
                r = await wrapped(*args, **kwargs)
                after(span, r, t0)
                return r

        wrapt.wrap_function_wrapper("openai.resources.chat.completions", "Completions.create", sync_wrapper)
        wrapt.wrap_function_wrapper("openai.resources.chat.completions", "AsyncCompletions.create",
                                    async_wrapper)

    def uninstrument(self):
        import openai.resources.chat.completions as cc
        from opentelemetry.instrumentation.utils import unwrap

        unwrap(cc.Completions, "create")
        unwrap(cc.AsyncCompletions, "create")


def patch_points():
    """Identity of every attribute of the SDK classes an instrumentation could patch."""
    import openai._base_client as bc
    import openai._streaming as st
    import openai.resources.chat.completions.completions as cc

    points = {}
    for mod in (cc, bc, st):
        for cname, cls in vars(mod).items():
            if isinstance(cls, type) and cls.__module__ == mod.__name__:
                for attr, val in vars(cls).items():
                    points[(mod.__name__, cname, attr)] = id(val)
    return points


def create_methods():
    """ids, not objects: a wrapt proxy compares equal to the function it wraps."""
    import openai.resources.chat.completions.completions as cc

    return id(cc.Completions.__dict__["create"]), id(cc.AsyncCompletions.__dict__["create"])


# --------------------------------------------------------------------------- scenarios

def make_runner(scenario: str):
    """Returns run(n) -> list of per-call ns; each call does the complete request."""
    model, messages = _mock.MODEL, _mock.MESSAGES
    if scenario == "sync":
        client = _mock.sync_client()

        def run(n):
            out = []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                r = client.chat.completions.create(model=model, messages=messages, max_tokens=200)
                out.append(time.perf_counter_ns() - t0)
            assert r.usage.total_tokens
            return out
        return run

    if scenario == "stream":
        client = _mock.sync_client()
        expected = _mock.STREAM_CHUNKS + 1  # + the usage chunk

        def run(n):
            out = []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                s = client.chat.completions.create(model=model, messages=messages, max_tokens=200,
                                                   stream=True, stream_options={"include_usage": True})
                k = 0
                for _chunk in s:
                    k += 1
                out.append(time.perf_counter_ns() - t0)
                assert k == expected, k
            return out
        return run

    if scenario == "async":
        client = _mock.async_client()
        loop = asyncio.new_event_loop()

        async def block(n):
            out = []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                r = await client.chat.completions.create(model=model, messages=messages, max_tokens=200)
                out.append(time.perf_counter_ns() - t0)
            assert r.usage.total_tokens
            return out

        def run(n):
            return loop.run_until_complete(block(n))
        return run
    raise SystemExit(f"unknown scenario {scenario!r}")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def span_summary(arm: Arm) -> dict:
    if arm.instrumentor is None:
        return {}
    s = arm.last_span
    attrs = dict(s.attributes) if s is not None else {}
    keys = sorted(k for k in attrs if "cost" in k or "usage" in k or "token" in k or "budget" in k)
    metrics = []
    data = arm.reader.get_metrics_data() if arm.mp is not None and hasattr(arm.mp, "shutdown") else None
    if data:
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                metrics += [m.name for m in sm.metrics]
    out = {"spans": arm.spans, "span_name": s.name if s else None,
           "attrs": {k: attrs[k] for k in keys}, "metrics": sorted(set(metrics))}
    if arm.store is not None:  # every hold settled, and the budget decided the last call
        import bench_budgets

        usage = arm.processor.budget_book.usage(bench_budgets.BUDGET_ID)
        out["budget"] = {"decision": attrs.get("ai_cost.budget.decision"), "reserved_usd": str(usage.reserved),
                         "spent_usd": str(usage.spent)}
    return out


def run_scenario(scenario: str, arm_names, blocks: int, calls: int, warm: int, gc_off: bool) -> dict:
    with contextlib.ExitStack() as stack:
        stores = None
        kinds = {split_spec(n)[0].split("+", 1)[1] for n in arm_names if n.startswith("ours+")} - {"anomalies"}
        if kinds:  # budget arms: bench_budgets' stores (a temporary directory, a loopback redis-server)
            import bench_budgets

            stores = bench_budgets.Stores(kinds, stack)
        return _run_scenario(scenario, arm_names, blocks, calls, warm, gc_off, stores)


def _run_scenario(scenario, arm_names, blocks, calls, warm, gc_off, stores) -> dict:
    runner = make_runner(scenario)
    pristine_points = patch_points()
    pristine_create = create_methods()
    arms = []
    for name in arm_names:
        try:
            arms.append(Arm(name, stores))
        except ImportError as e:  # otel-v2 2.4b0 outside the benchmark venv (benchmarks/setup-venv.sh)
            print(f"skipping arm {name}: {type(e).__name__}: {e}", file=sys.stderr)

    # Check each instrumentation really changes the method, and that uninstrument() restores
    # every patch point: only then is the bare arm bare.
    for arm in arms:
        arm.on()
        if arm.instrumentor is not None and create_methods() == pristine_create:
            raise SystemExit(f"{arm.name}: instrument() did not wrap Completions.create")
        runner(warm)  # warm-up
        arm.off()
        changed = [k for k, v in patch_points().items() if pristine_points.get(k) != v]
        if changed:
            raise SystemExit(f"{arm.name}: uninstrument() left patched: {changed[:5]}")

    samples = {a.name: [] for a in arms}
    block_medians = {a.name: [] for a in arms}
    for b in range(blocks):
        order = arms[b % len(arms):] + arms[:b % len(arms)]
        for arm in order:
            arm.on()
            if arm.instrumentor is None and create_methods() != pristine_create:
                raise SystemExit("bare arm is not bare")
            runner(SETTLE)
            gc.collect()
            if gc_off:
                gc.disable()
            try:
                xs = runner(calls)
            finally:
                gc.enable()
            arm.off()
            samples[arm.name] += xs
            block_medians[arm.name].append(statistics.median(xs))

    base = samples["bare"]
    rows = []
    for arm in arms:
        xs = samples[arm.name]
        med = statistics.median(xs)
        added = statistics.median(m - bm for m, bm in zip(block_medians[arm.name], block_medians["bare"]))
        # A budget arm is also paired with `ours` of its variant: what the budget adds to ours.
        ref = arm_name("ours", arm.variant)
        if (arm.store is None and arm.base != "ours+anomalies") or ref not in block_medians:
            ref = None
        over_ours = None if ref is None else statistics.median(
            m - om for m, om in zip(block_medians[arm.name], block_medians[ref])) / 1e3
        feed = getattr(getattr(arm, "processor", None), "anomalies", None)
        if feed is not None and getattr(feed, "drained", 0):
            # The detector runs on its own thread, off the calls' path: its CPU per call, for the record.
            arm.notes.append(f"anomaly detector off the calls' path: {feed.drain_cpu_ns / feed.drained / 1e3:.1f} "
                             f"µs CPU per call on its drain thread ({feed.drained} calls)")
        rows.append({
            "arm": arm.name,
            "base": arm.base,
            "variant": arm.variant,
            "median_us": med / 1e3,
            "over_ours_us": over_ours,
            "bare_median_us": statistics.median(base) / 1e3,
            "p90_us": pct(xs, 0.9) / 1e3,
            "added_us": added / 1e3,
            "ratio": med / statistics.median(base),
            "calls": len(xs),
            "check": span_summary(arm),
            "notes": arm.notes,
        })
    redis_arm = next((a for a in arms if a.base == "ours+redis"), None)
    ping_us = None
    if redis_arm is not None:  # the loopback round trip, on the store's own client, after the blocks
        import bench_budgets

        xs = bench_budgets.time_ping(bench_budgets.ping_of(redis_arm.store), max(calls, 50))
        ping_us = statistics.median(xs) / 1e3
    for arm in arms:
        arm.shutdown()
    return {"scenario": scenario, "redis_ping_us": ping_us, "title": SCENARIO_TITLES[scenario],
            "blocks": blocks, "calls": calls,
            "gc_off": gc_off, "rows": rows}


# --------------------------------------------------------------------------- profile

def profile(scenario: str, arm_name: str, calls: int, top: int, rounds: int = 4):
    """cProfile bare and the arm, alternating in `rounds` blocks; print the functions the arm adds.

    Only functions called more often under the arm are listed (the SDK's own functions differ
    between the two profiles by drift alone). cProfile inflates small-function costs several-fold:
    read the ranking and the call counts, not the absolute µs.
    """
    runner = make_runner(scenario)
    arms = {name: Arm(name) for name in ("bare", arm_name)}
    profs = {name: cProfile.Profile() for name in arms}
    n = max(1, calls // rounds)
    for _ in range(rounds):
        for name, arm in arms.items():
            arm.on()
            runner(SETTLE)
            profs[name].enable()
            runner(n)
            profs[name].disable()
            arm.off()
    for arm in arms.values():
        arm.shutdown()
    total_calls = n * rounds
    bare = {k: (v[0], v[2], v[3]) for k, v in pstats.Stats(profs["bare"]).stats.items()}
    ours = {k: (v[0], v[2], v[3]) for k, v in pstats.Stats(profs[arm_name]).stats.items()}
    rows = []
    for k, (nc, tt, ct) in ours.items():
        bn, btt, bct = bare.get(k, (0, 0.0, 0.0))
        if nc > bn:  # own and cumulative time: the difference from bare (bare's share is drift-prone)
            rows.append(((tt - btt) / total_calls * 1e6, (ct - bct) / total_calls * 1e6,
                         (nc - bn) / total_calls, k))
    rows.sort(reverse=True)
    added = sum(r[0] for r in rows)
    print(f"# cProfile, {scenario}, {arm_name} vs bare, {total_calls} calls each in {rounds} alternating "
          f"rounds: functions called more often under {arm_name}, own time {added:.0f} µs/call "
          f"under cProfile (inflated)\n")
    print("| own µs/call added | cumulative µs/call added | calls/call added | function |\n|---:|---:|---:|---|")
    for tt, ct, nc, (fn, line, func) in rows[:top]:
        short = fn.split("site-packages/")[-1].split("/src/")[-1]
        print(f"| {tt:.1f} | {ct:.1f} | {nc:.1f} | `{short}:{line} {func}` |")


# --------------------------------------------------------------------------- output

def table(results) -> str:
    out = []
    for res in results:
        out.append(f"\n### {res['title']} ({res['blocks']} blocks x {res['calls']} calls per arm"
                   f"{', gc off while timing' if res['gc_off'] else ''})\n")
        out.append("| arm | median µs | p90 µs | added µs (median) | ratio | spans |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for r in res["rows"]:
            added = "—" if r["arm"] == "bare" else f"{r['added_us']:+.1f}"
            spans = r["check"].get("spans", "—")
            out.append(f"| {r['arm']} | {r['median_us']:.1f} | {r['p90_us']:.1f} | {added} | "
                       f"{r['ratio']:.3f} | {spans} |")
    return "\n".join(out)


def targets(results) -> str:
    lines = []
    for res in results:
        for r in res["rows"]:
            if r["arm"] != "ours":
                continue
            if res["scenario"] in ("sync", "async"):
                ok = r["added_us"] < 40
                lines.append(f"- {res['scenario']}: ours adds {r['added_us']:.1f} µs "
                             f"(target < 40 µs): {'met' if ok else 'MISSED'}")
            else:
                share = r["added_us"] / (r["median_us"] - r["added_us"]) * 100
                lines.append(f"- stream: ours adds {r['added_us']:.1f} µs = {share:.2f}% of the bare "
                             f"stream (target < 1%): {'met' if share < 1 else 'MISSED'}")
    return "\n".join(lines)


def checks(results) -> str:
    lines = []
    for res in results:
        for r in res["rows"]:
            c = r["check"]
            if c:
                lines.append(f"- {res['scenario']}/{r['arm']}: span `{c['span_name']}`, "
                             f"{len(c['attrs'])} usage/cost attrs {sorted(c['attrs'])}, metrics {c['metrics']}")
            for n in r["notes"]:
                lines.append(f"- {res['scenario']}/{r['arm']}: {n}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (~15 s)")
    ap.add_argument("--scenario", choices=SCENARIOS, help="run one scenario in this process")
    ap.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=f"comma list from {','.join(ALL_ARMS)}")
    ap.add_argument("--blocks", type=int, help="blocks per arm (overrides the size preset)")
    ap.add_argument("--calls", type=int, help="calls per block (overrides the size preset)")
    ap.add_argument("--warm", type=int, help="warm-up calls per arm (overrides the size preset)")
    ap.add_argument("--gc-off", action="store_true", help="disable gc inside timed blocks")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--profile", metavar="ARM", help="cProfile ARM against bare instead of timing")
    ap.add_argument("--top", type=int, default=30, help="rows of --profile output")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()

    arms = [x for x in a.arms.split(",") if x]
    if "bare" not in arms:
        arms.insert(0, "bare")
    size = "quick" if a.quick else "full"

    if a.profile:
        scenario = a.scenario or "sync"
        profile(scenario, a.profile, a.calls or (100 if scenario == "stream" else 1000), a.top)
        return

    def sizes(s):
        blocks, calls, warm = SIZES[size][s]
        return a.blocks or blocks, a.calls or calls, a.warm if a.warm is not None else warm

    if a.scenario:
        res = run_scenario(a.scenario, arms, *sizes(a.scenario), a.gc_off)
        if a.child:
            print(json.dumps(res))
            return
        results = [res]
    else:
        results = []
        for s in SCENARIOS:
            cmd = [sys.executable, os.path.abspath(__file__), "--scenario", s, "--child", "--arms", ",".join(arms)]
            cmd += ["--quick"] * a.quick + ["--gc-off"] * a.gc_off
            cmd += ["--blocks", str(a.blocks)] * bool(a.blocks) + ["--calls", str(a.calls)] * bool(a.calls)
            cmd += ["--warm", str(a.warm)] * (a.warm is not None)
            t0 = time.perf_counter()
            p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            if p.returncode:
                raise SystemExit(f"scenario {s} failed ({p.returncode})")
            results.append(json.loads(p.stdout.strip().splitlines()[-1]))
            print(f"[{s}: {time.perf_counter() - t0:.1f} s]", file=sys.stderr)

    import platform

    import openai

    print(f"# bench_openai — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python "
          f"{platform.python_version()}, openai {openai.__version__}, {os.cpu_count()} CPUs")
    print(table(results))
    print("\nTargets:\n" + targets(results))
    print("\nChecks (last exported span per arm):\n" + checks(results))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results},
                      f, indent=2, default=str)


if __name__ == "__main__":
    main()
