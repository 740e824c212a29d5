"""benchmarks/bench_all.py's table: every arm, every column and the ratios, from given numbers.

Nothing here is timed: the rows are numbers chosen by hand, shaped as bench_openai.py's child
writes them, and the test checks the arithmetic and the layout of the table the README copies.
"""
from __future__ import annotations

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def _bench_all():
    sys.path.insert(0, BENCH)
    try:
        spec = importlib.util.spec_from_file_location("bench_all", os.path.join(BENCH, "bench_all.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(BENCH)


# added µs per base arm in the batch variant; the simple variant adds 10 µs to each
ADDED = {"floor": 100.0, "otel-v2": 150.0, "ours": 200.0, "ours+memory": 230.0, "ours+sqlite": 300.0,
         "ours+redis": 450.0, "ours+anomalies": 208.0}
OVER_OURS = {"ours+memory": 25.0, "ours+sqlite": 110.0, "ours+redis": 260.0, "ours+anomalies": 8.0}


def _results(bench_all):
    results = {}
    for scenario, bare in (("sync", 1000.0), ("async", 1200.0), ("stream", 10000.0)):
        rows = [{"arm": "bare", "median_us": bare, "added_us": 0.0, "check": {}}]
        for spec in bench_all.arm_specs()[1:]:
            base, _, variant = spec.partition("/")
            added = ADDED[base] + (10.0 if variant == "simple" else 0.0)
            rows.append({"arm": spec, "median_us": bare + added, "added_us": added,
                         "over_ours_us": OVER_OURS.get(base), "check": {"spans": 5}})
            if base in ("ours+memory", "ours+sqlite", "ours+redis"):
                rows[-1]["check"]["budget"] = {"decision": "allow", "reserved_usd": "0", "spent_usd": "0.01"}
        results[scenario] = {"rows": rows, "blocks": 2, "calls": 3, "redis_ping_us": 40.0}
    return results


STARTUP = {"bare": {"peak_rss_mb": 50.0, "startup_ms": 40.0, "peak_rss_over_bare_mb": 0.0},
           "floor": {"peak_rss_mb": 52.0, "startup_ms": 80.0, "peak_rss_over_bare_mb": 2.0},
           "otel-v2": {"peak_rss_mb": 53.5, "startup_ms": 120.0, "peak_rss_over_bare_mb": 3.5},
           "ours": {"peak_rss_mb": 69.0, "startup_ms": 400.0, "peak_rss_over_bare_mb": 19.0},
           "ours+memory": {"peak_rss_mb": 71.0, "startup_ms": 450.0, "peak_rss_over_bare_mb": 21.0},
           "ours+sqlite": {"peak_rss_mb": 72.0, "startup_ms": 460.0, "peak_rss_over_bare_mb": 22.0}}


def test_every_arm_runs_in_both_variants():
    bench_all = _bench_all()
    specs = bench_all.arm_specs()
    assert specs[0] == "bare"
    for base in ("floor", "otel-v2", "ours", "ours+memory", "ours+sqlite", "ours+redis", "ours+anomalies"):
        assert base in specs and f"{base}/simple" in specs
    assert len(specs) == 15


def test_table_rows_columns_and_ratios():
    bench_all = _bench_all()
    summary = bench_all.summarize(_results(bench_all), STARTUP)
    lines = bench_all.table(summary).splitlines()
    assert lines[0].count("|") == 7  # arm + sync, async, stream, peak RSS, start-up
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert len(rows) == 1 + 7 + 7  # bare, seven arms, seven ratio rows
    # cells are simple / batch; the stream cell adds the share of bare's 10,000 µs stream
    assert "| +210 / +200 | +210 / +200 | +210 / +200 (2.1 % / 2.0 %) | +19.0 MB | 400 ms |" in rows[
        "**otel-ai-cost**"]
    assert "| 1,000 | 1,200 | 10,000 | 50 MB | 40 ms (first call) |" in rows["bare SDK call (median)"]
    # ours ÷ floor: 210/110 and 200/100; ours ÷ official: 210/160 and 200/150
    assert "| 1.91× / 2.00× |" in rows["**ours ÷ floor** (target ≤ 1.3×)"]
    assert "| 1.31× / 1.33× |" in rows["**ours ÷ official** (target < 1×)"]
    assert "| +25 / +25 | +25 / +25 | +25 / +25 |" in rows["**memory budget − ours** µs (≤ +20)"]
    assert "| +110 / +110 |" in rows["**SQLite budget − ours** µs (≤ +120)"]
    assert "| +260 / +260 |" in rows["**Redis budget − ours** µs (measured; loopback PING 40 µs)"]
    assert "| +8 / +8 | +8 / +8 | +8 / +8 |" in rows["**anomalies − ours** µs (target ≤ +10)"]
    assert "| +218 / +208 |" in rows["otel-ai-cost + anomalies"]
    assert "| +21.0 MB | 450 ms |" in rows["otel-ai-cost + memory budget"]
    assert "| — | — |" in rows["otel-ai-cost + Redis budget"]  # no start-up child for Redis
    assert "| +19.0 MB | 400 ms |" in rows["**ours start-up / RSS** (targets < 150 ms, ≤ +15 MB)"]
    arms = summary["scenarios"]["stream"]["arms"]
    assert arms["ours"]["pct_of_bare"] == 2.0


def test_a_ratio_of_a_non_positive_added_time_is_not_a_number():
    bench_all = _bench_all()
    assert bench_all._ratio(200.0, -5.0) == "—"
    assert bench_all._ratio(None, 100.0) == "—"
    assert bench_all._ratio(-2.0, 100.0) == "—"
    assert bench_all._ratio(150.0, 100.0) == "1.50×"


def test_a_run_with_a_missing_arm_or_an_unsettled_hold_is_invalid():
    bench_all = _bench_all()
    arms = bench_all.arm_specs()
    results = _results(bench_all)
    assert bench_all.problems(bench_all.summarize(results, STARTUP), arms) == []
    results["sync"]["rows"] = [r for r in results["sync"]["rows"] if r["arm"] != "otel-v2/simple"]
    redis = next(r for r in results["async"]["rows"] if r["arm"] == "ours+redis")
    redis["check"]["budget"]["reserved_usd"] = "0.002"
    found = bench_all.problems(bench_all.summarize(results, STARTUP), arms)
    assert found == ["sync: arm otel-v2/simple did not run",
                     f"async: arm ours+redis: budget check not as expected: {redis['check']['budget']}"]
