"""What ResilientStore adds to a store's reserve + settle, per deadline mode (no SDK, no book).

    .venv/bin/python benchmarks/bench_resilient.py     # ~20 s; SQLite in a temporary file, a redis-server it starts

For each store: the store alone ("direct"), inside ResilientStore with ``mode="thread"`` (each
operation on a worker thread: the default) and with ``mode="store"`` (on the calling thread). Each
arm: 300 untimed pairs, then 3000 timed reserve + settle pairs; the median of one pair, in µs.
Run it on an idle machine: the thread hand-off is sensitive to other load.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _redis_server import redis_server  # noqa: E402
from otel_ai_cost.budgets import HoldRequest, SQLiteBudgetStore  # noqa: E402
from otel_ai_cost.budgets._redis import RedisBudgetStore  # noqa: E402
from otel_ai_cost.budgets._resilient import ResilientStore  # noqa: E402


def pair_median_us(store, n: int = 3000, warm: int = 300) -> float:
    slot = ("b", "", "lifetime")
    times = []
    for i in range(warm + n):
        start = time.perf_counter()
        store.reserve([HoldRequest(*slot, None, 5)], f"r{i}", 60)
        store.settle(f"r{i}", {slot: 5})
        if i >= warm:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def arms(make):
    return {
        "direct": make("direct"),
        "thread": ResilientStore(make("thread"), name="bench", journal=False, mode="thread"),
        "store": ResilientStore(make("store"), name="bench", journal=False, mode="store"),
    }


def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="bench-resilient-"))
    print("| store | direct µs | mode thread µs | mode store µs |\n|---|---:|---:|---:|")
    # Each settle sent at once (settle: immediate), so that every operation pays the hand-off measured here.
    sqlite = arms(lambda name: SQLiteBudgetStore(str(directory / f"{name}.db"), settle_interval=None))
    print("| sqlite | " + " | ".join(f"{pair_median_us(s):.0f}" for s in sqlite.values()) + " |")
    with redis_server(directory) as url:
        redis = arms(lambda name: RedisBudgetStore(url, prefix=name, settle_interval=None))
        print("| redis | " + " | ".join(f"{pair_median_us(s):.0f}" for s in redis.values()) + " |")
        for store in redis.values():
            store.close()


if __name__ == "__main__":
    main()
