"""The journal: settles and releases made while the budget store was unreachable, kept on local disk
until the store takes them.

One SQLite file per store (``journal_path``), shared by the processes of the host that use that
store, created at the first entry. An entry is claimed by one replayer at a time (a claim older than
``CLAIM_TIMEOUT`` seconds, from a replayer that died, is taken over), and deleted once the store has
taken it. A replay that died between the store taking an entry and its deletion is replayed again:
the store's ``settle(..., once=True)`` makes that a no-op, so every settle counts exactly once.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional

from ._model import from_nanos
from ._store import Slot, new_id

CLAIM_TIMEOUT = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, op TEXT NOT NULL, reservation_id TEXT NOT NULL,
    payload TEXT NOT NULL, claim TEXT, claimed_at REAL
)
"""


def state_dir() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "otel-ai-cost")


def journal_path(store_name: str) -> str:
    """The default journal of a store: ``<state dir>/otel-ai-cost/journal/<hash of the store's name>.db``."""
    digest = hashlib.sha256(store_name.encode("utf-8")).hexdigest()[:16]
    return os.path.join(state_dir(), "journal", f"{digest}.db")


class JournalEntry(NamedTuple):
    id: int
    time: float
    op: str  # settle | release
    reservation_id: str
    actual: Dict[Slot, int]  # settle: the amount per slot
    attributes: Dict[str, Any]


class Journal:
    def __init__(self, path: str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db: Optional[sqlite3.Connection] = None
        self._pid = 0

    def _connection(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # an entry is on disk when append returns
            db.execute(_SCHEMA)
            self._db, self._pid = db, os.getpid()
        return self._db

    def exists(self) -> bool:
        return self._db is not None or os.path.exists(self.path)

    def append(self, op: str, reservation_id: str, actual: Optional[Dict[Slot, int]] = None,
               attributes: Optional[Dict[str, Any]] = None, now: Optional[float] = None) -> None:
        payload = json.dumps(
            {"actual": [[*slot, str(int(amount))] for slot, amount in (actual or {}).items()],
             "attributes": dict(attributes or {})},
            default=str, separators=(",", ":"),
        )
        with self._lock:
            self._connection().execute(
                "INSERT INTO journal (time, op, reservation_id, payload) VALUES (?, ?, ?, ?)",
                (time.time() if now is None else now, op, reservation_id, payload),
            )

    def pending(self) -> int:
        if not self.exists():
            return 0
        with self._lock:
            (n,) = self._connection().execute("SELECT COUNT(*) FROM journal").fetchone()
        return int(n)

    def claim(self, limit: int = 100) -> List[JournalEntry]:
        """Up to ``limit`` entries, oldest first, that no live replayer holds; this replayer holds them
        until ``done`` or ``unclaim``."""
        if not self.exists():
            return []
        token, now = new_id(), time.time()
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "UPDATE journal SET claim = ?, claimed_at = ? WHERE id IN (SELECT id FROM journal"
                    " WHERE claim IS NULL OR claimed_at < ? ORDER BY id LIMIT ?)",
                    (token, now, now - CLAIM_TIMEOUT, limit),
                )
                rows = db.execute(
                    "SELECT id, time, op, reservation_id, payload FROM journal WHERE claim = ? ORDER BY id", (token,)
                ).fetchall()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        entries = []
        for id_, at, op, rid, payload in rows:
            data = json.loads(payload)
            actual = {(b, k, w): int(a) for b, k, w, a in data.get("actual", [])}
            entries.append(JournalEntry(id_, at, op, rid, actual, data.get("attributes", {})))
        return entries

    def done(self, entry_id: int) -> None:
        with self._lock:
            self._connection().execute("DELETE FROM journal WHERE id = ?", (entry_id,))

    def unclaim(self, entry_ids: List[int]) -> None:
        if not entry_ids:
            return
        with self._lock:
            self._connection().execute(
                f"UPDATE journal SET claim = NULL WHERE id IN ({','.join('?' * len(entry_ids))})", entry_ids
            )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def replay_claimed(
    journal: Journal, entries: List[JournalEntry], apply: Callable[[JournalEntry], None], *tallies: Dict[str, int]
) -> int:
    """Give claimed entries to the store (``apply``), oldest first, each deleted once it is taken and
    counted by op in every tally. When one fails, the rest are unclaimed and the error raised.
    Returns the nano-dollars settled (the largest amount of each settle)."""
    nanos = 0
    for i, entry in enumerate(entries):
        try:
            apply(entry)
        except BaseException:
            journal.unclaim([e.id for e in entries[i:]])
            raise
        if entry.op == "settle":
            nanos += max(entry.actual.values(), default=0)
        journal.done(entry.id)
        for tally in tallies:
            tally[entry.op] = tally.get(entry.op, 0) + 1
    return nanos


def replay_summary(counts: Mapping[str, int], nanos: int) -> str:
    """What a replay gave the store, for the log: ``2 settle(s) ($0.03), 1 release(s)``."""
    parts = []
    if counts.get("settle"):
        parts.append(f"{counts['settle']} settle(s) (${from_nanos(nanos).normalize():f})")
    if counts.get("release"):
        parts.append(f"{counts['release']} release(s)")
    return ", ".join(parts)
