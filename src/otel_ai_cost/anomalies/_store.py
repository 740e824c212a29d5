"""Baseline persistence: a detector's ``snapshot()`` saved to a store and ``restore``d after a restart.

A store keeps, per namespace, one JSON value per baseline key. ``save`` upserts (the last writer of
a key wins); ``load`` returns every key. The SQLite store can share the budget store's file (its own
table); the Redis store keeps one hash per namespace.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from typing import Any, Dict, Mapping, Optional, Protocol, runtime_checkable


@runtime_checkable
class BaselineStore(Protocol):
    def save(self, namespace: str, states: Mapping[str, Any]) -> None: ...
    def load(self, namespace: str) -> Dict[str, Any]: ...
    def close(self) -> None: ...


class MemoryBaselineStore:
    def __init__(self) -> None:
        self._data: Dict[str, Dict[str, str]] = {}

    def save(self, namespace: str, states: Mapping[str, Any]) -> None:
        self._data.setdefault(namespace, {}).update({k: json.dumps(v) for k, v in states.items()})

    def load(self, namespace: str) -> Dict[str, Any]:
        return {k: json.loads(v) for k, v in self._data.get(namespace, {}).items()}

    def close(self) -> None:
        pass


class SQLiteBaselineStore:
    """Table ``anomaly_baselines`` in a SQLite file (it may be the budget store's)."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = str(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS anomaly_baselines (namespace TEXT NOT NULL, key TEXT NOT NULL,"
            " state TEXT NOT NULL, updated REAL NOT NULL, PRIMARY KEY (namespace, key))"
        )
        self._lock = threading.Lock()

    def save(self, namespace: str, states: Mapping[str, Any]) -> None:
        now = time.time()
        rows = [(namespace, k, json.dumps(v), now) for k, v in states.items()]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO anomaly_baselines (namespace, key, state, updated) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (namespace, key) DO UPDATE SET state = excluded.state, updated = excluded.updated",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def load(self, namespace: str) -> Dict[str, Any]:
        with self._lock:
            rows = self._db.execute("SELECT key, state FROM anomaly_baselines WHERE namespace = ?",
                                    (namespace,)).fetchall()
        return {k: json.loads(v) for k, v in rows}

    def close(self) -> None:
        self._db.close()


class RedisBaselineStore:
    """One hash per namespace, ``<prefix>anomaly:<namespace>``, field = baseline key, value = JSON."""

    def __init__(self, url: Optional[str] = None, *, client: Any = None, prefix: str = "ai_cost:") -> None:
        if client is None:
            import redis

            client = redis.Redis.from_url(url or "redis://127.0.0.1:6379/0")
        self._client = client
        self._prefix = prefix

    def _name(self, namespace: str) -> str:
        return f"{self._prefix}anomaly:{namespace}"

    def save(self, namespace: str, states: Mapping[str, Any]) -> None:
        items = {k: json.dumps(v) for k, v in states.items()}
        pipe = self._client.pipeline(transaction=False)
        keys = list(items)
        for i in range(0, len(keys), 1000):
            pipe.hset(self._name(namespace), mapping={k: items[k] for k in keys[i:i + 1000]})
        pipe.execute()

    def load(self, namespace: str) -> Dict[str, Any]:
        raw = self._client.hgetall(self._name(namespace))
        return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}

    def close(self) -> None:
        self._client.close()


def save_baselines(detector: Any, store: BaselineStore, namespace: str = "default") -> int:
    snapshot = detector.snapshot()
    store.save(namespace, snapshot)
    return len(snapshot)


def load_baselines(detector: Any, store: BaselineStore, namespace: str = "default") -> int:
    return int(detector.restore(store.load(namespace)))


class BaselineSaver:
    """Saves a detector's baselines every ``interval`` seconds on a daemon thread, and at ``close``;
    off the calls' path."""

    def __init__(self, detector: Any, store: BaselineStore, namespace: str = "default", interval: float = 60.0) -> None:
        self.detector, self.store, self.namespace, self.interval = detector, store, namespace, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otel-ai-cost-baselines", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                save_baselines(self.detector, self.store, self.namespace)
            except Exception:  # noqa: BLE001
                from ._outputs import _log_once

                _log_once("saving anomaly baselines")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        save_baselines(self.detector, self.store, self.namespace)
