"""Time a budget check adds per call (memory, SQLite, Redis on loopback), against the call without budgets.

    .venv/bin/python benchmarks/bench_budgets.py              # ~90 s, markdown to stdout
    .venv/bin/python benchmarks/bench_budgets.py --quick      # ~15 s smoke test
    .venv/bin/python benchmarks/bench_budgets.py --profile redis   # where a store's check spends its time
    .venv/bin/python benchmarks/bench_budgets.py --inflight 1000   # book level with 1000 concurrent holds
    .venv/bin/python benchmarks/bench_budgets.py --resilient  # SQLite and Redis inside ResilientStore, as a
                                                              # configuration file opens them (deadline, breaker)

A budget check is ``BudgetBook.reserve`` at span start plus ``settle`` when the call ends: both run on
the call's path. Two levels, each measured in one process, in one run:

1. SDK level: an instrumented OpenAI chat call (the real openai SDK on the mocked transport of
   ``_mock.py``, as in bench_openai.py). Arms, each with its own SDK TracerProvider
   (AICostSpanProcessor + BatchSpanProcessor into a null exporter) and its own MeterProvider:

       none     the processor without budgets: the baseline
       memory   the processor with one matching budget in MemoryBudgetStore
       sqlite   ... in SQLiteBudgetStore(settle_interval=None), a file in a temporary directory (WAL,
                synchronous=NORMAL), each settle its own transaction (a budget file's ``settle: immediate``)
       sqliteq  ... in SQLiteBudgetStore(settle_interval=0.05): settles queued, applied in the next
                reserve's transaction (one transaction per call) or by a background flusher
       redis    ... in RedisBudgetStore(settle_interval=None) (each settle sent at once: ``settle: immediate``),
                against a redis-server this script starts on 127.0.0.1
       redisq   ... in RedisBudgetStore(settle_interval=0.05), the default: settles queued and pipelined with the
                next reserve (one round trip per call) or sent by a background flusher
       ping     not a call: redis-py ``PING`` on the Redis store's own client, the loopback round trip

2. Book level: ``BudgetBook.reserve`` + ``BudgetBook.settle`` alone, no SDK, per store, with the
   attributes, estimate, trace id and cost the processor passed to the book in the SDK level
   (captured during its warm-up). Arms: timer (an empty timed statement: the timer's own floor),
   memory, sqlite, redis, ping.

Method (as bench_openai.py): the arms alternate in blocks (order rotated every block), switched with
instrument()/uninstrument() at the SDK level; a few untimed calls follow every switch; each call is
timed alone with perf_counter_ns. "added" is the median over blocks of (arm's block median - the
baseline's block median in the same round), so slow drift of the machine cancels; "added p90" is
the same with the block p90s. gc stays enabled while timing; gc.collect() runs between blocks
(--gc-off disables gc inside timed blocks).

Book level: "reserve + settle" is the median of the block medians (p90: of the block p90s); the
reserve and settle columns are pooled medians. The timer floor (~0.07 µs) is not subtracted.

Targets (median): memory < 15 µs, SQLite < 200 µs, Redis < one round trip (PING median, same run,
same level) + 50 µs. Checks printed after the tables: every call of a budget arm reserved and
settled exactly once (ledger counts), no hold is left, and the last span carries
ai_cost.budget.decision (the baseline's carries none); the run exits non-zero if one fails.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import os
import platform
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _mock  # noqa: E402

STORES = ("memory", "sqlite", "sqliteq", "redis", "redisq")
TARGETS_US = {"memory": 15.0, "sqlite": 200.0, "sqliteq": 200.0}  # redis: RTT + REDIS_SLACK_US
REDIS_SLACK_US = 50.0
# (blocks, calls per block, warm-up calls per arm) for the SDK level; (blocks, pairs per block) for the book
SIZES = {
    "full": {"sdk": (20, 200, 100), "book": (30, 400)},
    "quick": {"sdk": (6, 60, 40), "book": (8, 150)},
}
SETTLE = 3  # untimed calls after each switch
BUDGET_ID = "bench"


def make_budget():
    """One budget that every benchmark call matches and that never comes near its limit."""
    from otel_ai_cost.budgets import Budget, calendar

    return Budget(BUDGET_ID, Decimal("1000000"), calendar("month"), selector={"gen_ai.operation.name": "chat"})


# --------------------------------------------------------------------------- stores

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_server(directory: str):
    """A redis-server on a free loopback port, no persistence; yields its URL and stops it after."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server); "
                         "or leave it out: --stores memory,sqlite")
    try:
        import redis
    except ImportError:
        raise SystemExit("the redis client is not installed (pip install redis); "
                         "or leave Redis out: --stores memory,sqlite") from None

    for _ in range(3):  # the port may be taken between choosing and binding it
        port = _free_port()
        log = os.path.join(directory, f"redis-{port}.log")
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", directory, "--logfile", log],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                up = client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
        client.close()
        if up:
            try:
                yield url, proc
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return
        proc.kill()
        proc.wait()
    raise SystemExit(f"redis-server did not start; see {directory}")


class Stores:
    """Opens a fresh store of a kind on demand; owns the temporary directory and the Redis server."""

    def __init__(self, kinds, stack: contextlib.ExitStack, resilient: bool = False):
        self.resilient = resilient
        self.dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-budgets-"))
        self.redis_url = None
        self.redis_version = None
        self.sqlite_files = []
        self._n = 0
        if "redis" in kinds or "redisq" in kinds:
            self.redis_url, _proc = stack.enter_context(redis_server(self.dir))

    def open(self, kind: str):
        store = self._open(kind)
        if self.resilient and kind != "memory":
            from otel_ai_cost.budgets._resilient import ResilientStore

            # As BudgetConfig.open_store wraps it: each operation on a worker thread, within the deadline.
            store = ResilientStore(store, name=kind, journal=False)
        return store

    def _open(self, kind: str):
        self._n += 1
        if kind == "memory":
            from otel_ai_cost.budgets import MemoryBudgetStore

            return MemoryBudgetStore()
        if kind in ("sqlite", "sqliteq"):
            from otel_ai_cost.budgets import SQLiteBudgetStore

            path = os.path.join(self.dir, f"budgets-{self._n}.db")
            self.sqlite_files.append(path)
            # sqliteq: settles queued off the call's path (applied in the next reserve's transaction).
            store = SQLiteBudgetStore(path, settle_interval=0.05 if kind == "sqliteq" else None)
            mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
            assert mode == "wal", mode
            return store
        if kind in ("redis", "redisq"):
            import redis

            from otel_ai_cost.budgets import RedisBudgetStore

            # The client the store would build from the URL, passed in so PING can use the same one.
            client = redis.Redis.from_url(self.redis_url, decode_responses=True)
            self.redis_version = client.info("server").get("redis_version")
            # redisq: settles queued off the call's path (sent with the next reserve, or by the flusher).
            # redis: each settle sent at once (store: settle: immediate); redisq is the default.
            queued = 0.05 if kind == "redisq" else None
            return RedisBudgetStore(client=client, prefix=f"bench{self._n}", settle_interval=queued)
        raise SystemExit(f"unknown store {kind!r}")


def ping_of(store):
    """The store's redis client's ping (same library, same connection pool as its scripts)."""
    return store._client.ping


# --------------------------------------------------------------------------- SDK level

class NullExporter:
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


class Arm:
    """An instrumented arm: OpenAIInstrumentor + AICostSpanProcessor, with budgets in `store` or none."""

    def __init__(self, name: str, store=None):
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
        from otel_ai_cost.processor import AICostSpanProcessor

        self.name = name
        self.store = store
        self.calls = 0
        self.exporter = NullExporter()
        self.reader = InMemoryMetricReader()
        self.mp = MeterProvider(metric_readers=[self.reader])
        self.tp = TracerProvider()
        kw = dict(budgets=[make_budget()], budget_store=store) if store is not None else {}
        self.processor = AICostSpanProcessor(meter_provider=self.mp, **kw)
        assert (self.processor.budget_book is None) == (store is None)
        self.tp.add_span_processor(self.processor)
        self.tp.add_span_processor(BatchSpanProcessor(self.exporter))
        self.instrumentor = OpenAIInstrumentor()

    def on(self):
        self.instrumentor.instrument(tracer_provider=self.tp, meter_provider=self.mp,
                                     raise_exception_on_conflict=True)

    def off(self):
        self.instrumentor.uninstrument()
        self.tp.force_flush()

    def capture(self, run):
        """One call, recording what the processor passed to its book (for the book level)."""
        book = self.processor.budget_book
        seen = {}

        def reserve(attributes, estimate, *, trace_id=None, **kw):  # kw: e.g. unknown= (the book's options)
            seen["reserve"] = (dict(attributes), estimate, trace_id)
            r = type(book).reserve(book, attributes, estimate, trace_id=trace_id, **kw)
            seen["decision"] = r.decision
            return r

        def settle(reservation, actual, attributes=None, *args, **kw):  # args: e.g. the usage
            seen["settle"] = (actual, dict(attributes or {}))
            return type(book).settle(book, reservation, actual, attributes, *args, **kw)

        enforcer = self.processor._enforcer

        def decide(span, attributes, *, trace_id, estimate, foreign=False, **kw):  # kw: start_attributes
            started = kw.get("start_attributes") or {}  # the estimate's, set with the decision's
            seen["decide"] = {"span_attributes": {**dict(span.attributes or {}), **started},
                              "resource": dict(span.resource.attributes),
                              "selected": dict(attributes), "trace_id": trace_id, "estimate": estimate}
            return type(enforcer).decide(enforcer, span, attributes, trace_id=trace_id, estimate=estimate,
                                         foreign=foreign, **kw)

        book.reserve, book.settle, enforcer.decide = reserve, settle, decide
        try:
            self.on()
            run(1)
            self.calls += 1
            self.off()
        finally:
            del book.reserve, book.settle, enforcer.decide
        if "reserve" not in seen or "settle" not in seen:
            raise SystemExit(f"{self.name}: the call did not reserve and settle: {sorted(seen)}")
        d = seen["decision"]
        if d.action != "allow" or not d.outcomes or d.outcomes[0].budget.id != BUDGET_ID:
            raise SystemExit(f"{self.name}: the budget did not apply: {d}")
        return seen

    def shutdown(self):
        self.tp.shutdown()  # also closes the store (AICostSpanProcessor.shutdown)
        self.mp.shutdown()


def make_runner():
    """run(n) -> per-call ns of the sync, non-streaming chat call (as bench_openai's sync scenario)."""
    client = _mock.sync_client()
    model, messages = _mock.MODEL, _mock.MESSAGES

    def run(n):
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            r = client.chat.completions.create(model=model, messages=messages, max_tokens=200)
            out.append(time.perf_counter_ns() - t0)
        assert r.usage.total_tokens
        return out
    return run


def time_ping(ping, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        ping()
        out.append(time.perf_counter_ns() - t0)
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def timed_block(fn, n, gc_off):
    gc.collect()
    if gc_off:
        gc.disable()
    try:
        return fn(n)
    finally:
        gc.enable()


def ledger_counts(store):
    counts = {}
    for e in store.ledger(budget_id=BUDGET_ID):
        counts[e.kind] = counts.get(e.kind, 0) + 1
    return counts


def run_sdk(stores: Stores, kinds, blocks, calls, warm, gc_off, log):
    runner = make_runner()
    arms = [Arm("none")] + [Arm(k, stores.open(k)) for k in kinds]
    captured = {}
    for arm in arms:
        arm.on()
        runner(warm)
        arm.calls += warm
        arm.off()
        if arm.store is not None:
            captured[arm.name] = arm.capture(runner)
    redis_arm = next((a for a in arms if a.name in ("redis", "redisq")), None)
    names = [a.name for a in arms] + (["ping"] if redis_arm else [])
    block_med = {n: [] for n in names}
    block_p90 = {n: [] for n in names}
    samples = {n: [] for n in names}
    units = list(arms) + (["ping"] if redis_arm else [])  # PING blocks take turns with the arms
    t_start = time.perf_counter()
    for b in range(blocks):
        for unit in units[b % len(units):] + units[:b % len(units)]:
            if unit == "ping":
                ping = ping_of(redis_arm.store)
                time_ping(ping, SETTLE)
                name, xs = "ping", timed_block(lambda n, ping=ping: time_ping(ping, n), calls, gc_off)
            else:
                unit.on()
                runner(SETTLE)
                xs = timed_block(runner, calls, gc_off)
                unit.off()
                unit.calls += SETTLE + calls
                name = unit.name
            samples[name] += xs
            block_med[name].append(statistics.median(xs))
            block_p90[name].append(pct(xs, 0.9))
        if b == 0:
            log(f"[sdk: block 1 of {blocks}: {time.perf_counter() - t_start:.1f} s]")

    rows = []
    for name in names:
        xs = samples[name]
        row = {"arm": name, "median_us": statistics.median(xs) / 1e3, "p90_us": pct(xs, 0.9) / 1e3,
               "n": len(xs)}
        if name not in ("none", "ping"):
            row["added_us"] = statistics.median(
                m - bm for m, bm in zip(block_med[name], block_med["none"])) / 1e3
            row["added_p90_us"] = statistics.median(
                m - bm for m, bm in zip(block_p90[name], block_p90["none"])) / 1e3
        rows.append(row)

    # Redis round trips on the call's path (not the background flusher's), counted over untimed calls.
    trips = {}
    for arm in arms:
        if arm.name in ("redis", "redisq"):
            arm.on()
            runner(SETTLE)
            trips[arm.name] = count_round_trips(runner, ROUND_TRIP_CALLS)
            arm.off()
            arm.calls += SETTLE + ROUND_TRIP_CALLS

    # Checks: every call of a budget arm reserved and settled (no hold left), and its span says so.
    checks = []
    for arm in arms:
        s = arm.exporter.last
        attrs = dict(s.attributes) if s is not None else {}
        decision = attrs.get("ai_cost.budget.decision")
        line = {"arm": arm.name, "spans": arm.exporter.count, "calls": arm.calls, "decision": decision}
        if arm.store is not None:
            usage = arm.processor.budget_book.usage(BUDGET_ID)
            counts = ledger_counts(arm.store)
            line.update(spent_usd=str(usage.spent), reserved_usd=str(usage.reserved), ledger=counts)
            ok = (decision == "allow" and usage.reserved == 0 and counts.get("reserve") == arm.calls
                  and counts.get("settle") == arm.calls)
        else:
            ok = decision is None
        line["ok"] = ok and arm.exporter.count == arm.calls
        if arm.name in trips:
            line["round_trips_per_call"] = trips[arm.name]
        checks.append(line)
    for arm in arms:
        arm.shutdown()
    return {"blocks": blocks, "calls": calls, "gc_off": gc_off, "rows": rows, "checks": checks}, captured


ROUND_TRIP_CALLS = 500


def count_round_trips(runner, calls: int) -> float:
    """Writes to Redis sockets (one per command or pipeline: a round trip each) per call, made on the
    call's path: by the calling thread or a store worker it waits for, not by the settles' flusher. The
    controls, read once a second, are in the count."""
    import threading

    import redis

    connection_class = redis.connection.AbstractConnection
    real = connection_class.send_packed_command
    sent = []

    def counting(self, command, check_health=True):
        if not threading.current_thread().name.startswith("otel-ai-cost settles"):
            sent.append(1)
        return real(self, command, check_health)

    connection_class.send_packed_command = counting
    try:
        runner(calls)
    finally:
        connection_class.send_packed_command = real
    return len(sent) / calls


# --------------------------------------------------------------------------- book level

def book_runner(book, args):
    (attributes, estimate, trace_id), (actual, settle_attrs) = args["reserve"], args["settle"]
    reserve, settle, clock = book.reserve, book.settle, time.perf_counter_ns

    def run(n):
        pair, res, sett = [], [], []
        for _ in range(n):
            t0 = clock()
            r = reserve(attributes, estimate, trace_id=trace_id)
            t1 = clock()
            settle(r, actual, settle_attrs)
            t2 = clock()
            pair.append(t2 - t0)
            res.append(t1 - t0)
            sett.append(t2 - t1)
        assert r.held and r.done, r
        return pair, res, sett
    return run


def timer_runner(n):
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        t0 = clock()
        t1 = clock()
        out.append(t1 - t0)
    return out, out, out


def run_book(stores: Stores, kinds, captured, blocks, pairs, gc_off, inflight=0):
    """``inflight``: holds of other calls left in flight on the same budget partition while timing
    (concurrent calls), released at the end."""
    from otel_ai_cost.budgets import BudgetBook

    runners = {"timer": timer_runner}
    books = {}
    held = {}
    for k in kinds:
        books[k] = BudgetBook([make_budget()], stores.open(k))
        runners[k] = book_runner(books[k], captured[k])
        runners[k](pairs // 4)  # warm-up
        attributes, estimate, trace_id = captured[k]["reserve"]
        held[k] = [books[k].reserve(attributes, estimate, trace_id=trace_id) for _ in range(inflight)]
    redis_kind = next((k for k in kinds if k in ("redis", "redisq")), None)
    if redis_kind is not None:
        ping = ping_of(books[redis_kind].store)
        runners["ping"] = lambda n: (time_ping(ping, n),) * 3
    names = list(runners)
    data = {n: {"pair": [], "reserve": [], "settle": [], "block_med": [], "block_p90": []} for n in names}
    for b in range(blocks):
        order = names[b % len(names):] + names[:b % len(names)]
        for name in order:
            runners[name](SETTLE)
            pair, res, sett = timed_block(runners[name], pairs, gc_off)
            d = data[name]
            d["pair"] += pair
            d["reserve"] += res
            d["settle"] += sett
            d["block_med"].append(statistics.median(pair))
            d["block_p90"].append(pct(pair, 0.9))
    rows = []
    for name in names:
        d = data[name]
        rows.append({
            "arm": name,
            "reserve_us": statistics.median(d["reserve"]) / 1e3,
            "settle_us": statistics.median(d["settle"]) / 1e3,
            "median_us": statistics.median(d["block_med"]) / 1e3,  # median of block medians
            "p90_us": statistics.median(d["block_p90"]) / 1e3,
            "n": len(d["pair"]),
        })
    checks = []
    for k, book in books.items():
        for r in held[k]:
            book.release(r)
        usage = book.usage(BUDGET_ID)
        counts = ledger_counts(book.store)
        checks.append({"store": k, "reserved_usd": str(usage.reserved), "ledger": counts,
                       "ok": usage.reserved == 0
                       and counts.get("reserve") == counts.get("settle", 0) + counts.get("release", 0)})
        book.store.close()
    return {"blocks": blocks, "pairs": pairs, "gc_off": gc_off, "inflight": inflight, "rows": rows,
            "checks": checks}


# --------------------------------------------------------------------------- profile

def _med(xs):
    return statistics.median(xs) / 1e3


def breakdown(stores: Stores, kind: str, arm: Arm, captured, n: int):
    """Perf counters (no profiler) of the parts of one budget check, in the order a call runs them.

    Every hold is settled before the next reserve (holds left in flight would slow some stores).
    """
    from otel_ai_cost.budgets import BudgetBook
    from otel_ai_cost.budgets._model import to_nanos
    from otel_ai_cost.budgets._store import new_id
    from otel_ai_cost.processor import _selector_attributes

    clock = time.perf_counter_ns
    (attributes, estimate, trace_id), (actual, settle_attrs) = captured["reserve"], captured["settle"]
    book = BudgetBook([make_budget()], stores.open(kind))
    store = book.store
    est_n, actual_n = to_nanos(estimate), to_nanos(actual)
    audit = {k: str(attributes[k]) for k in book._ledger_keys if k in attributes}
    audit["trace_id"] = trace_id
    parts = {}

    # a. The book's parts, and the store's two operations.
    rows = {k: [] for k in ("plan", "id", "store.reserve", "store.settle", "reserve", "settle")}
    for i in range(n + 50):
        t0 = clock()
        planned = book._plan(attributes, est_n, trace_id)
        t1 = clock()
        rid = new_id()
        t2 = clock()
        requests = [p.request for p in planned]
        store.reserve(requests, rid, book.hold_ttl, audit)
        t3 = clock()
        store.settle(rid, {requests[0].slot: actual_n}, settle_attrs)
        t4 = clock()
        r = book.reserve(attributes, estimate, trace_id=trace_id)
        t5 = clock()
        book.settle(r, actual, settle_attrs)
        t6 = clock()
        if i >= 50:
            for k, v in zip(rows, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                rows[k].append(v)
    name = type(store).__name__
    parts["BudgetBook._plan (controls, window span, match, key)"] = _med(rows["plan"])
    parts["reservation id (_store.new_id)"] = _med(rows["id"])
    parts[f"{name}.reserve"] = _med(rows["store.reserve"])
    parts[f"{name}.settle"] = _med(rows["store.settle"])
    parts["**BudgetBook.reserve** (all of it)"] = _med(rows["reserve"])
    parts["**BudgetBook.settle** (all of it)"] = _med(rows["settle"])
    parts["BudgetBook.reserve minus plan, id and store.reserve (decision, outcomes, audit)"] = (
        parts["**BudgetBook.reserve** (all of it)"] - parts["BudgetBook._plan (controls, window span, match, key)"]
        - parts["reservation id (_store.new_id)"] - parts[f"{name}.reserve"])

    # b. Redis: the round trip, a trivial script with as many keys and args, the scripts' server time.
    if kind in ("redis", "redisq"):
        client = store._client
        ping = client.ping
        parts["redis-py PING"] = _med(time_ping(ping, n))
        where = client.connection_pool.connection_kwargs
        host, port = where["host"], where["port"]
        with socket.create_connection((host, port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def raw_ping():
                s.sendall(b"PING\r\n")
                s.recv(64)
            parts["raw socket PING (no client library)"] = _med(time_ping(raw_ping, n))
        # The reserve script's keys and args, as RedisBudgetStore.reserve builds them, for a no-op script.
        seen = {}
        real = store._reserve

        def spy(keys, args):
            seen["keys"], seen["args"] = list(keys), list(args)
            return real(keys=keys, args=args)
        store._reserve = spy
        if getattr(store, "flush", None) is not None:
            store.flush()  # with queued settles, a reserve carries them in a pipeline instead
        try:
            r = book.reserve(attributes, estimate, trace_id=trace_id)
            book.settle(r, actual, settle_attrs)
        finally:
            store._reserve = real  # an attribute of the instance (a redis-py Script)
        if "keys" not in seen:
            raise SystemExit("RedisBudgetStore.reserve no longer calls self._reserve(keys=..., args=...)")
        noop = client.register_script("return 1")
        keys, args = seen["keys"], seen["args"]
        parts[f"redis-py EVALSHA of `return 1` with the reserve's {len(keys)} keys + {len(args)} args"] = _med(
            time_ping(lambda: noop(keys=keys, args=args), n))
        # Server time per script (SLOWLOG at 0 µs logs every command with its duration).
        old = client.config_get("slowlog-*")
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 4 * min(n, 500) + 64)
        client.slowlog_reset()
        for _ in range(min(n, 500)):
            r = book.reserve(attributes, estimate, trace_id=trace_id)
            book.settle(r, actual, settle_attrs)
        log = client.slowlog_get(4 * min(n, 500) + 64)
        for k, v in old.items():
            client.config_set(k, v)
        by_sha = {}
        for e in log:
            cmd = e.get("command")
            words = cmd.split() if isinstance(cmd, (str, bytes)) else list(cmd)
            words = [w.decode() if isinstance(w, bytes) else w for w in words]
            if words and words[0].upper() == "EVALSHA":
                by_sha.setdefault(words[1], []).append(e["duration"])
        shas = {store._reserve.sha: "reserve", store._settle.sha: "settle"}
        for sha, durations in by_sha.items():
            if sha in shas:
                parts[f"server time of the {shas[sha]} script (SLOWLOG, median)"] = statistics.median(durations)

    # c. The enforcer (SDK level, on the processor's book): what the processor adds around the book.
    d = captured["decide"]
    enforcer = arm.processor._enforcer
    # A live SDK span, as in on_start: its attributes and resource are BoundedAttributes, not dicts.
    span = arm.tp.get_tracer("bench").start_span("chat " + _mock.MODEL, attributes=d["span_attributes"])
    amount = float(actual)
    response_attrs = dict(settle_attrs)
    rows = {k: [] for k in ("select", "decide", "hold.settle")}
    for i in range(n + 50):
        t0 = clock()
        selected = _selector_attributes(span.attributes, span.resource.attributes)
        t1 = clock()
        decision, hold = enforcer.decide(span, selected, trace_id=d["trace_id"], estimate=d["estimate"])
        t2 = clock()
        hold.settle(amount, response_attrs)
        t3 = clock()
        if i >= 50:
            for k, v in zip(rows, (t1 - t0, t2 - t1, t3 - t2)):
                rows[k].append(v)
    parts["processor._selector_attributes"] = _med(rows["select"])
    parts["**BudgetEnforcer.decide** (book.reserve + Hold + _mark)"] = _med(rows["decide"])
    parts["**Hold.settle** (Decimal, attributes, book.settle)"] = _med(rows["hold.settle"])
    mark = getattr(enforcer, "_mark", None)
    if mark is not None:
        parts["of which BudgetEnforcer._mark (span attributes, events, counter)"] = _med(
            time_ping(lambda: mark(span, decision, selected, True), n))
    count = getattr(enforcer, "_count", None)
    if count is not None:
        parts["of which _mark's BudgetEnforcer._count (decisions counter add)"] = _med(
            time_ping(lambda: count(decision, selected), n))
    span.end()
    store.close()

    print(f"\n# perf counters, {kind}: median µs of each part, {n} runs each, no profiler\n")
    print("| part | median µs |\n|---|---:|")
    for k, v in parts.items():
        print(f"| {k} | {v:.1f} |")


def in_situ(kind: str, arms, runner, blocks: int = 8, calls: int = 150):
    """Perf counters inside real SDK calls: the budget functions of one arm, each wrapped (on the
    instance, or the processor module's function) in a timer. Tight loops (``breakdown``) run with
    warm caches; inside a call the same code is 2-3x slower, and this is what the call pays.
    Each wrapper adds about 0.3 µs."""
    import otel_ai_cost.processor as processor_module

    clock = time.perf_counter_ns
    times = {}

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                times.setdefault(key, []).append(clock() - t0)
        return wrapper

    arm = arms[kind]
    p = arm.processor
    book, enforcer, store = p.budget_book, p._enforcer, p.budget_book.store
    targets = [
        (arms["none"].processor, "on_start", "none: AICostSpanProcessor.on_start (baseline)"),
        (p, "on_start", f"{kind}: AICostSpanProcessor.on_start"),
        (enforcer, "decide", "BudgetEnforcer.decide"),
        (book, "reserve", "BudgetBook.reserve"),
        (book, "_plan", "BudgetBook._plan"),
        (store, "reserve", f"{type(store).__name__}.reserve"),
        (enforcer, "_mark", "BudgetEnforcer._mark"),
        (enforcer, "_count", "BudgetEnforcer._count (decisions counter)"),
        (book, "settle", "BudgetBook.settle (called by Hold.settle at span end)"),
        (store, "settle", f"{type(store).__name__}.settle"),
    ]
    wrapped = []
    for obj, attr, key in targets:
        fn = getattr(obj, attr, None)
        if fn is None:
            continue
        wrapped.append((obj, attr, obj.__dict__.get(attr, wrapped)))
        setattr(obj, attr, timed(key, fn))
    select = processor_module._selector_attributes
    processor_module._selector_attributes = timed("processor._selector_attributes", select)
    calls_ns = {"none": [], kind: []}
    try:
        for b in range(blocks):
            for name in (("none", kind) if b % 2 == 0 else (kind, "none")):
                arms[name].on()
                runner(SETTLE)
                calls_ns[name] += timed_block(runner, calls, False)
                arms[name].off()
    finally:
        processor_module._selector_attributes = select
        for obj, attr, own in wrapped:
            if own is wrapped:
                delattr(obj, attr)  # the wrapper hid the class's method: remove it
            else:
                setattr(obj, attr, own)
    print(f"\n# perf counters in situ, {kind}: median µs per call of each budget function, inside real SDK "
          f"calls ({blocks} blocks x {calls} calls, alternating with none)\n")
    print("| function | median µs | calls |\n|---|---:|---:|")
    for _obj, _attr, key in targets:
        xs = times.get(key)
        if xs:
            print(f"| {key} | {statistics.median(xs) / 1e3:.1f} | {len(xs)} |")
    xs = times.get("processor._selector_attributes")
    if xs:
        print(f"| processor._selector_attributes | {statistics.median(xs) / 1e3:.1f} | {len(xs)} |")
    added = (statistics.median(calls_ns[kind]) - statistics.median(calls_ns["none"])) / 1e3
    print(f"| whole call: {kind} minus none (pooled medians, wrappers included) | {added:+.1f} | |")


def profile(stores: Stores, kind: str, calls: int, top: int):
    """cProfile the book alone (reserve + settle) for one store, then the SDK arm against none.

    cProfile inflates small functions several-fold: read the ranking and the call counts. The
    perf-counter split (no profiler) follows: plan / store.reserve / rest of reserve / settle.
    """
    from otel_ai_cost.budgets import BudgetBook

    runner = make_runner()
    arms = {"none": Arm("none"), kind: Arm(kind, stores.open(kind))}
    for arm in arms.values():
        arm.on()
        runner(50)
        arm.off()
    captured = arms[kind].capture(runner)

    # 1. The book alone, own time per pair.
    book = BudgetBook([make_budget()], stores.open(kind))
    run = book_runner(book, captured)
    run(200)
    prof = cProfile.Profile()
    prof.enable()
    run(calls)
    prof.disable()
    st = pstats.Stats(prof)
    rows = sorted(((v[2], v[3], v[0], k) for k, v in st.stats.items()), reverse=True)
    total = sum(r[0] for r in rows)
    print(f"# cProfile, book alone, {kind}: {calls} reserve+settle pairs, own time {total / calls * 1e6:.1f} "
          f"µs/pair under cProfile (inflated)\n")
    print("| own µs/pair | cumulative µs/pair | calls/pair | function |\n|---:|---:|---:|---|")
    for tt, ct, nc, (fn, line, func) in rows[:top]:
        short = fn.split("site-packages/")[-1].split("/src/")[-1]
        print(f"| {tt / calls * 1e6:.2f} | {ct / calls * 1e6:.2f} | {nc / calls:.1f} | `{short}:{line} {func}` |")

    # 2. Perf counters, no profiler: the parts of one check, in the order a call runs them.
    book.store.close()
    breakdown(stores, kind, arms[kind], captured, min(calls, 2000))
    in_situ(kind, arms, runner)

    # 3. The SDK arm against none (functions called more often under the arm).
    profs = {name: cProfile.Profile() for name in arms}
    rounds = 4
    per = max(1, calls // rounds)
    for _ in range(rounds):
        for name, arm in arms.items():
            arm.on()
            runner(SETTLE)
            profs[name].enable()
            runner(per)
            profs[name].disable()
            arm.off()
    for arm in arms.values():
        arm.shutdown()
    total_calls = per * rounds
    base = {k: (v[0], v[2], v[3]) for k, v in pstats.Stats(profs["none"]).stats.items()}
    ours = {k: (v[0], v[2], v[3]) for k, v in pstats.Stats(profs[kind]).stats.items()}
    rows = []
    for k, (nc, tt, ct) in ours.items():
        bn, btt, bct = base.get(k, (0, 0.0, 0.0))
        if nc > bn:
            rows.append(((tt - btt) / total_calls * 1e6, (ct - bct) / total_calls * 1e6,
                         (nc - bn) / total_calls, k))
    rows.sort(reverse=True)
    print(f"\n# cProfile, SDK call, {kind} vs none, {total_calls} calls each in {rounds} alternating rounds: "
          f"functions called more often under {kind}, own time {sum(r[0] for r in rows):.0f} µs/call "
          f"(inflated)\n")
    print("| own µs/call added | cumulative µs/call added | calls/call added | function |\n|---:|---:|---:|---|")
    for tt, ct, nc, (fn, line, func) in rows[:top]:
        short = fn.split("site-packages/")[-1].split("/src/")[-1]
        print(f"| {tt:.1f} | {ct:.1f} | {nc:.1f} | `{short}:{line} {func}` |")


# --------------------------------------------------------------------------- output

def target_us(store, rtt_us):
    if store in ("redis", "redisq"):
        return None if rtt_us is None else rtt_us + REDIS_SLACK_US
    return TARGETS_US[store]


def target_text(store, rtt_us):
    t = target_us(store, rtt_us)
    if store in ("redis", "redisq"):
        return f"< RTT {rtt_us:.1f} + {REDIS_SLACK_US:.0f} = {t:.1f}"
    return f"< {t:.0f}"


def verdict(value, store, rtt_us):
    return "PASS" if value < target_us(store, rtt_us) else "MISS"


def report(sdk, book, meta) -> str:
    out = []
    srows = {r["arm"]: r for r in sdk["rows"]}
    s_rtt = srows["ping"]["median_us"] if "ping" in srows else None
    out.append(f"\n### Per call: instrumented OpenAI chat call, sync, mocked transport "
               f"({sdk['blocks']} blocks x {sdk['calls']} calls per arm"
               f"{', gc off while timing' if sdk['gc_off'] else ''})\n")
    out.append("| arm | median µs | p90 µs | **added µs (median)** | added µs (p90) | target µs | verdict |")
    out.append("|---|---:|---:|---:|---:|---|---|")
    for r in sdk["rows"]:
        a = r["arm"]
        if a == "none":
            out.append(f"| none (processor, no budgets: baseline) | {r['median_us']:.1f} | {r['p90_us']:.1f} "
                       f"| — | — | | |")
        elif a == "ping":
            out.append(f"| redis PING (loopback round trip) | {r['median_us']:.1f} | {r['p90_us']:.1f} "
                       f"| | | | |")
        else:
            out.append(f"| {a} | {r['median_us']:.1f} | {r['p90_us']:.1f} | **{r['added_us']:+.1f}** | "
                       f"{r['added_p90_us']:+.1f} | {target_text(a, s_rtt)} | "
                       f"{verdict(r['added_us'], a, s_rtt)} |")

    brows = {r["arm"]: r for r in book["rows"]}
    b_rtt = brows["ping"]["median_us"] if "ping" in brows else None
    out.append(f"\n### Book alone: BudgetBook.reserve + settle, no SDK ({book['blocks']} blocks x "
               f"{book['pairs']} pairs per store{', gc off while timing' if book['gc_off'] else ''}"
               f"{', %d holds of other calls in flight' % book['inflight'] if book.get('inflight') else ''})\n")
    out.append("| store | reserve µs | settle µs | **reserve + settle µs (median)** | p90 µs | target µs "
               "| verdict |")
    out.append("|---|---:|---:|---:|---:|---|---|")
    for r in book["rows"]:
        a = r["arm"]
        if a == "timer":
            out.append(f"| timer floor (empty timed statement) | | | {r['median_us']:.2f} | "
                       f"{r['p90_us']:.2f} | | |")
        elif a == "ping":
            out.append(f"| redis PING (loopback round trip) | | | {r['median_us']:.1f} | {r['p90_us']:.1f} | | |")
        else:
            out.append(f"| {a} | {r['reserve_us']:.1f} | {r['settle_us']:.1f} | **{r['median_us']:.1f}** | "
                       f"{r['p90_us']:.1f} | {target_text(a, b_rtt)} | {verdict(r['median_us'], a, b_rtt)} |")
    notes = []
    if s_rtt is not None and "redis" in srows:
        notes.append(f"A Redis check sends 2 commands on the call's path (the reserve script at span start, the "
                     f"settle script at span end): 2 x PING = {2 * s_rtt:.1f} µs at the SDK level, "
                     f"{2 * b_rtt:.1f} µs at the book level, before any work.")
    if s_rtt is not None and "redisq" in srows:
        notes.append("redisq: RedisBudgetStore(settle_interval=0.05), the default: one round trip on the call's "
                     "path (the reserve script, with the settles queued since the last reserve in the same pipeline); "
                     "a background thread sends settles no reserve carried within 50 ms.")
    notes.append("The book level runs in tight loops with warm caches; inside a call the same code takes about "
                 "2-3x longer (`--profile STORE` times it in situ).")
    out.append("\nNotes:\n" + "\n".join(f"- {n}" for n in notes))
    out.append("\nChecks:")
    for c in sdk["checks"]:
        extra = ""
        if "ledger" in c:
            extra = f", ledger {c['ledger']}, reserved left ${c['reserved_usd']}, spent ${c['spent_usd']}"
        if "round_trips_per_call" in c:
            extra += f", Redis round trips per call on its path {c['round_trips_per_call']:.3f}"
        out.append(f"- sdk/{c['arm']}: {c['calls']} calls, {c['spans']} spans, span ai_cost.budget.decision="
                   f"{c['decision']}{extra}: {'ok' if c['ok'] else 'FAILED'}")
    for c in book["checks"]:
        out.append(f"- book/{c['store']}: ledger {c['ledger']}, reserved left ${c['reserved_usd']}: "
                   f"{'ok' if c['ok'] else 'FAILED'}")
    if meta.get("redis_version"):
        out.append(f"- redis-server {meta['redis_version']} on 127.0.0.1, redis-py {meta['redis_py']}")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (~15 s)")
    ap.add_argument("--stores", default=",".join(STORES), help=f"comma list from {','.join(STORES)}")
    ap.add_argument("--blocks", type=int, help="SDK-level blocks per arm (overrides the preset)")
    ap.add_argument("--calls", type=int, help="SDK-level calls per block (overrides the preset)")
    ap.add_argument("--book-blocks", type=int, help="book-level blocks per store (overrides the preset)")
    ap.add_argument("--pairs", type=int, help="book-level reserve+settle pairs per block (overrides the preset)")
    ap.add_argument("--gc-off", action="store_true", help="disable gc inside timed blocks")
    ap.add_argument("--inflight", type=int, default=0,
                    help="book level: holds of other (concurrent) calls left in flight on the budget")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--resilient", action="store_true",
                    help="wrap SQLite and Redis in ResilientStore, as a configuration file's store is")
    ap.add_argument("--profile", choices=STORES,
                    help="cProfile + perf-counter split of one store's check instead of timing")
    ap.add_argument("--top", type=int, default=25, help="rows of --profile output")
    a = ap.parse_args()
    kinds = [k for k in STORES if k in a.stores.split(",")]
    if not kinds:
        raise SystemExit(f"--stores: choose from {','.join(STORES)}")
    size = SIZES["quick" if a.quick else "full"]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        if a.profile:
            stores = Stores([a.profile], stack)
            profile(stores, a.profile, a.calls or 2000, a.top)
            return
        stores = Stores(kinds, stack, resilient=a.resilient)
        t0 = time.perf_counter()
        blocks, calls, warm = size["sdk"]
        sdk, captured = run_sdk(stores, kinds, a.blocks or blocks, a.calls or calls, warm, a.gc_off, log)
        log(f"[sdk level: {time.perf_counter() - t0:.1f} s]")
        t1 = time.perf_counter()
        bblocks, pairs = size["book"]
        book = run_book(stores, kinds, captured, a.book_blocks or bblocks, a.pairs or pairs, a.gc_off,
                        a.inflight)
        log(f"[book level: {time.perf_counter() - t1:.1f} s]")
        meta = {"redis_version": stores.redis_version}

    import openai

    try:
        import redis

        meta["redis_py"] = redis.__version__
    except ImportError:
        pass
    print(f"# bench_budgets — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python "
          f"{platform.python_version()}, openai {openai.__version__}, {os.cpu_count()} CPUs")
    print(report(sdk, book, meta))
    failed = [c for c in sdk["checks"] + book["checks"] if not c["ok"]]
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "meta": meta,
                       "sdk": sdk, "book": book}, f, indent=2, default=str)
    if failed:
        raise SystemExit(f"checks failed: {failed}")


if __name__ == "__main__":
    main()
