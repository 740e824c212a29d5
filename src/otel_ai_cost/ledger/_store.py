"""The call ledger's SQLite file: one table, ``calls``, one row per priced GenAI call.

The file is in WAL mode, so several processes on one host append to it at once (each write is one
transaction; a writer waits for the lock up to ``BUSY_TIMEOUT`` seconds) and a process killed in
the middle of a write leaves the last committed state: a transaction is in the file whole or not at
all. A row is keyed by (trace id, span id): a span exported twice is kept once.
"""
from __future__ import annotations

import os
import sqlite3
import time
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from .._state import sqlite_path, state_url
from ..config import ENV_LEDGER
from ..errors import ConfigError
from ._row import COLUMN_NAMES, COLUMNS

OFF = "off"
BUSY_TIMEOUT = 10.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS calls ("
    + ", ".join(f'"{name}" {kind}' for name, kind in COLUMNS)
    + ", PRIMARY KEY (trace_id, span_id))",
    "CREATE INDEX IF NOT EXISTS calls_end_time ON calls (end_time)",
)
_INSERT = (f"INSERT OR IGNORE INTO calls ({', '.join(chr(34) + n + chr(34) for n in COLUMN_NAMES)}) "
           f"VALUES ({', '.join('?' for _ in COLUMN_NAMES)})")


def default_ledger_url() -> str:
    """``sqlite:///$XDG_STATE_HOME/otel-ai-cost/calls.db`` (``~/.local/state/...`` by default): the
    directory of the default SQLite budget store."""
    return state_url("calls.db")


def parse_ledger_url(value: str, variable: str = ENV_LEDGER) -> Optional[str]:
    """The ledger file's path for ``sqlite:///absolute/path.db`` (or ``sqlite://relative.db``, as for the
    budget store), None for ``off``. Raises ConfigError naming ``variable`` otherwise."""
    text = value.strip()
    if text.lower() == OFF:
        return None
    path = sqlite_path(text)
    if not path:
        raise ConfigError(f"{variable}: expected sqlite:///absolute/path/calls.db or off, got {value!r}")
    if os.path.isdir(path):
        raise ConfigError(
            f"{variable}: {path!r} is a directory; name the ledger file, e.g. {path.rstrip('/')}/calls.db")
    return path


def connect(path: str, create: bool = True) -> sqlite3.Connection:
    """A connection to the ledger file, with the table made (``create``) and WAL on."""
    if create:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
    elif not os.path.isfile(path):
        raise ConfigError(f"call ledger {path!r}: no such file (is {ENV_LEDGER} set as in the application?)")
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    if create:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            connection.execute(statement)
    return connection


def write_rows(connection: sqlite3.Connection, rows: Sequence[Tuple[Any, ...]],
               anomalies: Sequence[Tuple[str, str, str]] = ()) -> None:
    """Append ``rows``, then set the ``anomaly_type`` of the calls ``anomalies`` name ((type,
    trace id, span id): an ``ai_cost.anomaly`` span's, whose parent is the call's span), in one
    transaction."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(_INSERT, rows)
        if anomalies:
            connection.executemany("UPDATE calls SET anomaly_type = ? WHERE trace_id = ? AND span_id = ?", anomalies)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def purge(connection: sqlite3.Connection, retention_days: float, now: Optional[float] = None) -> int:
    """Delete the rows of calls that ended more than ``retention_days`` ago; how many went."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    cursor = connection.execute("DELETE FROM calls WHERE end_time < ?", (cutoff,))
    return cursor.rowcount


def iter_rows(path: str, since: float = float("-inf"), until: float = float("inf")) -> Iterator[sqlite3.Row]:
    """The rows of the calls that ended in [since, until), oldest first, one at a time from the cursor
    (read-only use). A file that is not a ledger fails here, as a ConfigError, before the first row."""
    connection = connect(path, create=False)
    try:
        connection.row_factory = sqlite3.Row
        cursor = connection.execute(
            "SELECT * FROM calls WHERE end_time >= ? AND end_time < ? ORDER BY end_time, trace_id, span_id",
            (since, until))
    except sqlite3.Error as exc:
        connection.close()
        raise ConfigError(f"call ledger {path!r}: {exc}") from exc
    return _streamed(connection, cursor, path)


def _streamed(connection: sqlite3.Connection, cursor: sqlite3.Cursor, path: str) -> Iterator[sqlite3.Row]:
    try:
        yield from cursor
    except sqlite3.Error as exc:
        raise ConfigError(f"call ledger {path!r}: {exc}") from exc
    finally:
        connection.close()


def read_rows(path: str, since: float = float("-inf"), until: float = float("inf")) -> List[sqlite3.Row]:
    """``iter_rows`` as a list."""
    return list(iter_rows(path, since, until))
