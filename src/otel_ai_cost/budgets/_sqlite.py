"""SQLite budget store: one file, shared by the processes of one host, kept across restarts.

Every change runs in a ``BEGIN IMMEDIATE`` transaction, which takes the database's write lock
before reading, so a check-then-hold is atomic across threads and processes. WAL lets readers run
alongside the writer.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import _store as st
from ._deferred import QueuedSettles, Settle
from ._store import MAX_NANOS, Control, Controls, HoldInfo, HoldRequest, LedgerEntry, ReserveResult, Slot, Spend, dumps

# How long a settle with ``once`` is remembered (seconds): far longer than any outage it covers. A
# charge made at expiry is remembered as long, for a settle that comes after it.
SETTLED_KEEP = 7 * 86400
_CHARGE_ATTRIBUTES = dumps({"on_expired_hold": st.CHARGE_ESTIMATE})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    budget_id TEXT NOT NULL, key TEXT NOT NULL, window_key TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY (budget_id, key, window_key)
);
CREATE TABLE IF NOT EXISTS holds (
    reservation_id TEXT NOT NULL, budget_id TEXT NOT NULL, key TEXT NOT NULL, window_key TEXT NOT NULL,
    amount INTEGER NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (reservation_id, budget_id, key, window_key)
);
CREATE INDEX IF NOT EXISTS holds_by_budget ON holds (budget_id, key, window_key);
CREATE INDEX IF NOT EXISTS holds_by_expiry ON holds (expires_at);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, kind TEXT NOT NULL,
    budget_id TEXT NOT NULL, key TEXT NOT NULL, window_key TEXT NOT NULL, amount INTEGER NOT NULL,
    reservation_id TEXT NOT NULL, attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_by_budget ON ledger (budget_id, time);
CREATE TABLE IF NOT EXISTS settled (
    reservation_id TEXT PRIMARY KEY, time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS settled_by_time ON settled (time);
CREATE TABLE IF NOT EXISTS charged (
    reservation_id TEXT NOT NULL, budget_id TEXT NOT NULL, key TEXT NOT NULL, window_key TEXT NOT NULL,
    amount INTEGER NOT NULL, time REAL NOT NULL,
    PRIMARY KEY (reservation_id, budget_id, key, window_key)
);
CREATE INDEX IF NOT EXISTS charged_by_time ON charged (time);
CREATE TABLE IF NOT EXISTS controls (
    budget_id TEXT NOT NULL, key TEXT NOT NULL, limit_nanos INTEGER, frozen INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (budget_id, key)
);
"""


# A queued settle: reservation id, amounts, ledger attributes (clamped), once, and when it was made.
_Queued = Tuple[str, Dict[Slot, int], Dict[str, Any], bool, float]


def _settle_of(item: _Queued) -> Settle:
    return Settle(item[0], item[1], item[2], item[3])


# A settle takes the holds of its reservation: one statement where SQLite has RETURNING (3.35+).
_RETURNING = sqlite3.sqlite_version_info >= (3, 35)
_TAKE_HOLDS = (
    "DELETE FROM holds WHERE reservation_id = ? RETURNING budget_id, key, window_key" if _RETURNING
    else "SELECT budget_id, key, window_key FROM holds WHERE reservation_id = ?"
)


class SQLiteBudgetStore(st.StoreBase, QueuedSettles[_Queued]):
    """``settle_interval`` (seconds, e.g. 0.05): settles leave the call's path (see ``_deferred``): each is
    queued and applied in the transaction of the next reserve of this process (one transaction per
    call), or by a background thread after at most this many seconds; reads apply them first, and so do
    ``flush()``, ``close()`` and the interpreter's exit. None (the default): each settle is its own
    transaction, seen by other processes as soon as it returns."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time, timeout: float = 30.0,
                 settle_interval: Optional[float] = None) -> None:
        self.path = str(path)
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._connect()
        with self._transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            # Files made by a version without them: when a hold was placed, by which process, and what it
            # does at expiry (NULL: placed by a version that dropped expired holds; they still are).
            columns = {row[1] for row in db.execute("PRAGMA table_info(holds)")}
            for column, kind in (("placed_at", "REAL"), ("holder", "TEXT"), ("on_expired", "TEXT")):
                if column not in columns:
                    db.execute(f"ALTER TABLE holds ADD COLUMN {column} {kind}")
        self._start_queue(settle_interval, self._send_queued, f"sqlite {self.path}", _settle_of)

    # Queued settles (see _deferred): applied in the next reserve's transaction, or by the flusher.

    def _send_queued(self, items: List[_Queued]) -> None:
        with self._transaction() as db:
            for item in items:
                self._settle_in(db, *item)

    def _connect(self) -> None:
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        self._db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._pid = os.getpid()

    def _connection(self) -> sqlite3.Connection:
        # A connection must not cross a fork (e.g. a pre-forking server): the child opens its own.
        if self._pid != os.getpid():
            self._connect()
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._connection().execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # Also when COMMIT itself failed: the connection must not stay inside the transaction
                # (every later BEGIN would fail). SQLite may have rolled it back already.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @staticmethod
    def _log(db: sqlite3.Connection, now: float, kind: str, slot: Slot, amount: int, rid: str, attrs: str) -> None:
        db.execute(
            "INSERT INTO ledger (time, kind, budget_id, key, window_key, amount, reservation_id, attributes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, kind, slot[0], slot[1], slot[2], amount, rid, attrs),
        )

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        """Expire the holds whose time has come, in the transaction that reads them: each is charged
        (or dropped) once, whichever process gets there first."""
        expired = db.execute(
            "SELECT reservation_id, budget_id, key, window_key, amount, on_expired FROM holds WHERE expires_at <= ?",
            (now,),
        ).fetchall()
        for rid, budget_id, key, window_key, amount, on_expired in expired:
            slot = (budget_id, key, window_key)
            if on_expired == st.CHARGE_ESTIMATE:
                self._add_spend(db, slot, amount)
                db.execute(
                    "INSERT INTO charged (reservation_id, budget_id, key, window_key, amount, time)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (reservation_id, budget_id, key, window_key)"
                    " DO UPDATE SET amount = excluded.amount",
                    (rid, *slot, amount, now),
                )
                self._log(db, now, "expire_charge", slot, amount, rid, _CHARGE_ATTRIBUTES)
            else:
                self._log(db, now, "expire", slot, amount, rid, "{}")
        if expired:
            db.execute("DELETE FROM holds WHERE expires_at <= ?", (now,))
            if int(now) % 64 == 0:  # now and then, forget charges no settle came for
                db.execute("DELETE FROM charged WHERE time < ?", (now - SETTLED_KEEP,))

    @staticmethod
    def _add_spend(db: sqlite3.Connection, slot: Slot, amount: int) -> None:
        db.execute(
            "INSERT INTO spend (budget_id, key, window_key, amount) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (budget_id, key, window_key)"
            f" DO UPDATE SET amount = MIN(amount + excluded.amount, {MAX_NANOS})",
            (*slot, amount),
        )

    @staticmethod
    def _uncharge(db: sqlite3.Connection, reservation_id: str, slot: Slot) -> Optional[int]:
        """Take back the charge made when this reservation's hold on ``slot`` expired; returns the
        amount taken back, or None if there was none."""
        where = "WHERE reservation_id = ? AND budget_id = ? AND key = ? AND window_key = ?"
        row = db.execute(f"SELECT amount FROM charged {where}", (reservation_id, *slot)).fetchone()
        if row is None:
            return None
        db.execute(f"DELETE FROM charged {where}", (reservation_id, *slot))
        have = db.execute(
            "SELECT amount FROM spend WHERE budget_id = ? AND key = ? AND window_key = ?", slot
        ).fetchone()
        taken = st.uncharge(have[0] if have else 0, int(row[0]))
        if taken:
            db.execute(
                "UPDATE spend SET amount = amount - ? WHERE budget_id = ? AND key = ? AND window_key = ?",
                (taken, *slot),
            )
        return taken

    @staticmethod
    def _usage(db: sqlite3.Connection, budget_id: str, key: str, window_keys: Sequence[str]) -> Spend:
        keys = sorted(set(window_keys))
        marks = ",".join("?" * len(keys))
        where = f"WHERE budget_id = ? AND key = ? AND window_key IN ({marks})"
        spent, reserved = db.execute(  # one statement for both sums
            f"SELECT (SELECT COALESCE(SUM(amount), 0) FROM spend {where}),"
            f" (SELECT COALESCE(SUM(amount), 0) FROM holds {where})",
            (budget_id, key, *keys, budget_id, key, *keys),
        ).fetchone()
        return Spend(int(spent), int(reserved))

    def reserve(
        self,
        requests: Sequence[HoldRequest],
        reservation_id: str,
        ttl: float,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> ReserveResult:
        attrs = dumps(attributes)
        queue = self._queue
        queued = queue.take() if queue is not None else []
        try:
            return self._reserve(requests, reservation_id, ttl, attributes, attrs, queued)
        except BaseException as exc:
            if queued and queue is not None and queue.on_failed is not None:
                queue.failed(queued, exc)  # rolled back: to the journal, not a second wait on a locked file
            elif queued:  # rolled back with the reserve: apply them on their own
                self._apply_queued_alone(queued)
            raise

    def _apply_queued_alone(self, queued: List[_Queued]) -> None:
        try:
            self._send_queued(queued)
        except Exception as exc:  # noqa: BLE001 - to the failure handler (a journal), or the holds expire
            queue = self._queue
            if queue is not None:
                queue.failed(queued, exc)

    def _reserve(
        self, requests: Sequence[HoldRequest], reservation_id: str, ttl: float,
        attributes: Optional[Mapping[str, Any]], attrs: str, queued: List[_Queued],
    ) -> ReserveResult:
        with self._transaction() as db:
            for item in queued:  # this process's settles first, in the same transaction
                self._settle_in(db, *item)
            now = self._clock()
            self._expire(db, now)
            for r in requests:
                if r.prune:
                    prefix, before = r.prune
                    db.execute(
                        "DELETE FROM spend WHERE budget_id = ? AND key = ? AND substr(window_key, 1, ?) = ?"
                        " AND CAST(substr(window_key, ?) AS INTEGER) < ?",
                        (r.budget_id, r.key, len(prefix), prefix, len(prefix) + 1, before),
                    )
            usage = tuple(self._usage(db, r.budget_id, r.key, r.counted) for r in requests)
            refused = st.refusals(requests, usage)
            if refused:
                for i in refused:
                    r = requests[i]
                    why = dumps(st.block_attributes(attributes, r)) if r.frozen else attrs
                    self._log(db, now, "block", r.slot, st.clamp(r.amount), reservation_id, why)
                return ReserveResult(False, usage, refused)
            me = st.holder()
            for r in requests:
                db.execute(
                    "INSERT INTO holds (reservation_id, budget_id, key, window_key, amount, expires_at, placed_at,"
                    " holder, on_expired) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (reservation_id, budget_id, key, window_key)"
                    f" DO UPDATE SET amount = MIN(amount + excluded.amount, {MAX_NANOS}),"
                    " expires_at = excluded.expires_at, on_expired = excluded.on_expired",
                    (reservation_id, *r.slot, st.clamp(r.amount), now + ttl, now, me, r.on_expired),
                )
                self._log(db, now, "reserve", r.slot, st.clamp(r.amount), reservation_id, attrs)
            return ReserveResult(True, usage)

    def settle(
        self,
        reservation_id: str,
        actual: Mapping[Slot, int],
        attributes: Optional[Mapping[str, Any]] = None,
        *,
        once: bool = False,
        at_once: bool = False,
    ) -> None:
        """Amounts are clamped to MAX_NANOS and spend saturates there, so the transaction cannot fail on
        an overflow (and roll back, keeping the hold). ``once``: do nothing if this reservation was
        settled with ``once`` before (a journaled settle replayed after the first one landed). ``at_once``:
        applied now even when settles are queued (a journal replay, which must know it landed)."""
        clamped = st.clamped_attributes(attributes, actual.values())
        queue = self._queue
        if queue is not None and not at_once:
            queue.add((reservation_id, dict(actual), clamped, once, self._clock()))
            return
        with self._transaction() as db:
            self._settle_in(db, reservation_id, actual, clamped, once, self._clock())

    def _settle_in(
        self, db: sqlite3.Connection, reservation_id: str, actual: Mapping[Slot, int], attributes: Dict[str, Any],
        once: bool, now: float,
    ) -> None:
        if once:
            if db.execute(
                "INSERT INTO settled (reservation_id, time) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (reservation_id, now),
            ).rowcount == 0:
                return
            if int(now) % 64 == 0:  # now and then, forget the oldest
                db.execute("DELETE FROM settled WHERE time < ?", (now - SETTLED_KEEP,))
        held = {tuple(row) for row in db.execute(_TAKE_HOLDS, (reservation_id,)).fetchall()}
        if not _RETURNING:
            db.execute("DELETE FROM holds WHERE reservation_id = ?", (reservation_id,))
        for slot, amount in actual.items():
            amount = st.clamp(amount)
            was_held = tuple(slot) in held
            charged = None if was_held else self._uncharge(db, reservation_id, slot)
            self._add_spend(db, slot, amount)
            extra = st.settle_attributes(attributes, was_held, charged)
            self._log(db, now, "settle", slot, amount, reservation_id, dumps(extra))

    def release(self, reservation_id: str) -> None:
        self.flush()  # this process's settles first
        with self._transaction() as db:
            now = self._clock()
            rows = db.execute(
                "SELECT budget_id, key, window_key, amount FROM holds WHERE reservation_id = ?", (reservation_id,)
            ).fetchall()
            db.execute("DELETE FROM holds WHERE reservation_id = ?", (reservation_id,))
            for budget_id, key, window_key, amount in rows:
                self._log(db, now, "release", (budget_id, key, window_key), amount, reservation_id, "{}")
            charged = db.execute(
                "SELECT budget_id, key, window_key FROM charged WHERE reservation_id = ?", (reservation_id,)
            ).fetchall()
            for slot in charged:
                taken = self._uncharge(db, reservation_id, tuple(slot))
                self._log(db, now, "release", tuple(slot), taken or 0, reservation_id,
                          dumps({st.EXPIRED_CHARGE: taken}))

    def spent(self, budget_id: str, key: str, window_keys: Sequence[str]) -> Spend:
        self.flush()  # this process's settles first
        window_keys = st.window_tuple(window_keys)
        with self._transaction() as db:
            self._expire(db, self._clock())
            return self._usage(db, budget_id, key, window_keys)

    def holds(self, budget_id: str, key: Optional[str] = None) -> List[HoldInfo]:
        """The live holds of a budget (of one partition with ``key``), oldest first."""
        self.flush()  # this process's settles first
        with self._transaction() as db:
            self._expire(db, self._clock())
            sql = (
                "SELECT reservation_id, budget_id, key, window_key, amount, expires_at, placed_at, holder"
                " FROM holds WHERE budget_id = ?"
            )
            params: List[Any] = [budget_id]
            if key is not None:
                sql += " AND key = ?"
                params.append(key)
            rows = db.execute(sql + " ORDER BY placed_at, reservation_id", params).fetchall()
        return [HoldInfo(*row) for row in rows]

    def record(self, entries: Sequence[LedgerEntry]) -> None:
        with self._transaction() as db:
            for e in entries:
                slot = (e.budget_id, e.key, e.window_key)
                self._log(db, e.time, e.kind, slot, e.amount_nanos, e.reservation_id, dumps(e.attributes))

    def read_ledger(self, query: st.LedgerQuery) -> List[LedgerEntry]:
        self.flush()  # this process's settles first
        where: List[str] = []
        params: List[Any] = []
        equal = (("budget_id", query.budget_id), ("key", query.key), ("kind", query.kind),
                 ("reservation_id", query.reservation_id))
        for column, value in equal:
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            where.append("time >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("time < ?")
            params.append(query.until)
        if query.kinds is not None:
            kinds = sorted(query.kinds)
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            params.extend(kinds)
        columns = "time, kind, budget_id, key, window_key, amount, reservation_id, attributes"
        sql = f"SELECT id, {columns} FROM ledger"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if query.last is not None:  # the last N in the order written, returned oldest first
            sql = f"SELECT {columns} FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id"
            params.append(max(int(query.last), 0))
        else:
            sql = f"SELECT {columns} FROM ({sql}) ORDER BY id"
        with self._lock:
            rows = self._connection().execute(sql, params).fetchall()
        return [LedgerEntry(t, k, b, key_, w, a, r, json.loads(attrs)) for t, k, b, key_, w, a, r, attrs in rows]

    # Operators' controls and corrections.

    @staticmethod
    def _control(db: sqlite3.Connection, budget_id: str, key: str) -> Control:
        row = db.execute(
            "SELECT limit_nanos, frozen FROM controls WHERE budget_id = ? AND key = ?", (budget_id, key)
        ).fetchone()
        return Control(row[0], bool(row[1])) if row else Control()

    @staticmethod
    def _set_control(db: sqlite3.Connection, budget_id: str, key: str, control: Control) -> None:
        if control == Control():
            db.execute("DELETE FROM controls WHERE budget_id = ? AND key = ?", (budget_id, key))
        else:
            db.execute(
                "INSERT INTO controls (budget_id, key, limit_nanos, frozen) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (budget_id, key) DO UPDATE SET limit_nanos = excluded.limit_nanos,"
                " frozen = excluded.frozen",
                (budget_id, key, control.limit, int(control.frozen)),
            )

    def change_control(self, change: st.ControlChange) -> st.ControlValue:
        self.flush()  # this process's settles first
        budget_id, key, field, value, entry = change
        with self._transaction() as db:
            now = self._clock()
            current = self._control(db, budget_id, key)
            previous: st.ControlValue = getattr(current, field)
            self._set_control(db, budget_id, key, st.with_value(current, field, value))
            kind, amount, attrs = entry(previous)
            self._log(db, now, kind, (budget_id, key, ""), amount, st.new_id(), dumps(attrs))
            return previous

    def controls(self) -> Controls:
        with self._lock:
            rows = self._connection().execute("SELECT budget_id, key, limit_nanos, frozen FROM controls").fetchall()
        return {(b, k): Control(limit, bool(frozen)) for b, k, limit, frozen in rows}

    @staticmethod
    def _spend_by_window(
        db: sqlite3.Connection, budget_id: str, key: str, window_keys: Sequence[str]
    ) -> Dict[str, int]:
        keys = sorted(set(window_keys))
        rows = db.execute(
            f"SELECT window_key, amount FROM spend WHERE budget_id = ? AND key = ?"
            f" AND window_key IN ({','.join('?' * len(keys))})",
            (budget_id, key, *keys),
        ).fetchall()
        return dict(rows)

    def adjust(
        self,
        budget_id: str,
        key: str,
        window_keys: Sequence[str],
        amount: int,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> int:
        self.flush()  # this process's settles first
        window_keys = st.window_tuple(window_keys)
        current = window_keys[-1]
        add = (
            "INSERT INTO spend (budget_id, key, window_key, amount) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (budget_id, key, window_key) DO UPDATE SET amount = amount + excluded.amount"
        )
        with self._transaction() as db:
            now = self._clock()
            if amount >= 0:
                db.execute(add, (budget_id, key, current, int(amount)))
                applied = int(amount)
            else:
                taken = st.debit(self._spend_by_window(db, budget_id, key, window_keys), window_keys, -amount)
                for window, take in taken.items():
                    db.execute(add, (budget_id, key, window, -take))
                applied = -sum(taken.values())
            attrs = dumps({**(attributes or {}), "requested_nanos": int(amount)})
            self._log(db, now, "adjust", (budget_id, key, current), applied, st.new_id(), attrs)
            return applied

    def reset(
        self,
        budget_id: str,
        key: str,
        window_keys: Sequence[str],
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> int:
        self.flush()  # this process's settles first
        window_keys = st.window_tuple(window_keys)
        with self._transaction() as db:
            now = self._clock()
            removed = sum(self._spend_by_window(db, budget_id, key, window_keys).values())
            keys = sorted(set(window_keys))
            db.execute(
                f"DELETE FROM spend WHERE budget_id = ? AND key = ? AND window_key IN ({','.join('?' * len(keys))})",
                (budget_id, key, *keys),
            )
            self._log(db, now, "reset", (budget_id, key, window_keys[-1]), removed, st.new_id(), dumps(attributes))
            return removed

    def partitions(self, budget_id: str, window_keys: Sequence[str]) -> List[str]:
        self.flush()  # this process's settles first
        keys = sorted(set(st.window_tuple(window_keys)))
        marks = ",".join("?" * len(keys))
        with self._transaction() as db:
            self._expire(db, self._clock())
            rows = db.execute(
                f"SELECT key FROM spend WHERE budget_id = ? AND window_key IN ({marks}) GROUP BY key"
                f" HAVING SUM(amount) > 0"
                f" UNION SELECT key FROM holds WHERE budget_id = ? AND window_key IN ({marks})",
                (budget_id, *keys, budget_id, *keys),
            ).fetchall()
        return sorted(row[0] for row in rows)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
        with self._lock:
            self._db.close()
