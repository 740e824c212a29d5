"""Baselines survive a restart: saved to SQLite or a real Redis server, restored into a new detector."""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from otel_ai_cost.anomalies import (  # noqa: E402
    AnomalyDetector,
    BaselineSaver,
    MemoryBaselineStore,
    RedisBaselineStore,
    SQLiteBaselineStore,
    load_baselines,
    save_baselines,
)
from test_anomalies import START, T0, run, steady  # noqa: E402


def _round_trip(store) -> None:
    trained = AnomalyDetector()
    assert run(trained, steady(random.Random(1), T0, 7200)) == []
    saved = save_baselines(trained, store, "svc")
    assert saved == len(trained.snapshot()) > 10

    restarted = AnomalyDetector()
    assert load_baselines(restarted, store, "svc") == saved
    assert restarted.snapshot() == trained.snapshot()
    assert load_baselines(AnomalyDetector(), store, "other") == 0

    spike = list(steady(random.Random(2), START, 300, cost_factor={"globex": 6.0}))
    found = [f for f in run(restarted, spike) if f.type == "cost_spike"]
    assert found and found[0].cause.value == "globex"
    # Without the baselines, a restarted detector is blind to the same spike.
    assert [f for f in run(AnomalyDetector(), spike) if f.type == "cost_spike"] == []


def test_memory_round_trip():
    _round_trip(MemoryBaselineStore())


def test_sqlite_round_trip(tmp_path):
    store = SQLiteBaselineStore(str(tmp_path / "budgets.db"))
    _round_trip(store)
    store.close()
    reopened = SQLiteBaselineStore(str(tmp_path / "budgets.db"))
    assert len(reopened.load("svc")) > 10
    reopened.close()


def test_redis_round_trip(redis_url, redis_prefix):
    store = RedisBaselineStore(redis_url, prefix=f"{{{redis_prefix}}}:")  # a hash tag, as for Redis Cluster
    _round_trip(store)
    store.close()


def test_restore_keeps_the_richer_baseline():
    store = MemoryBaselineStore()
    small = AnomalyDetector()
    run(small, steady(random.Random(1), T0, 600))
    save_baselines(small, store)
    big = AnomalyDetector()
    run(big, steady(random.Random(1), T0, 3600))
    before = big.snapshot()
    load_baselines(big, store)
    assert big.snapshot() == before


def test_saver_saves_at_close(tmp_path):
    store = SQLiteBaselineStore(str(tmp_path / "b.db"))
    detector = AnomalyDetector()
    saver = BaselineSaver(detector, store, interval=3600)
    run(detector, steady(random.Random(1), T0, 600))
    saver.close()
    assert len(store.load("default")) == len(detector.snapshot())
    store.close()


def test_restore_skips_baselines_saved_in_another_format():
    trained = AnomalyDetector()
    run(trained, steady(random.Random(1), T0, 600))
    snapshot = trained.snapshot()
    key = next(k for k in snapshot if k.startswith("k\x1f"))
    old = dict(snapshot)
    old[key] = old[key][1:]  # a state without its version, as an earlier release wrote it
    restarted = AnomalyDetector()
    assert restarted.restore(old) == len(snapshot) - 1
    assert key not in restarted.snapshot()
