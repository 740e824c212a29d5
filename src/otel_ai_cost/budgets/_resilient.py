"""A budget store that fails fast and loses no spend: one deadline per call, a circuit breaker, a journal.

``ResilientStore`` wraps a store (or the function that opens one) and changes how it fails, not what
it does:

- **One deadline per call.** The store work of one LLM call (the controls read that precedes its
  reserve, the reserve, the decisions it records, its settle or release) shares ``deadline`` seconds
  (1 s by default) in all. Each operation runs on a worker thread and the caller waits at most what is
  left of the call's deadline, whatever the store does (a Redis that accepts connections and never
  answers, a SQLite file locked by another process).
- **A circuit breaker.** A deadline missed, or ``failures`` errors in a row, opens it: the store is
  *down*. While down, no call waits on the store: a reserve fails at once (the book then fails open or
  closed), the controls are the last read, settles and releases go to the journal. A background thread
  probes the store every ``probe_interval`` seconds; when it answers, the journal is replayed and the
  store is *up* again.
- **A journal.** Settles and releases that the store could not take (down, failed, or out of time)
  are appended to a local SQLite file (``_journal.Journal``) and replayed, oldest first, exactly once
  when the store is back: the store's ``settle(..., once=True)`` ignores a settle it has taken before,
  so a settle that timed out on the way but landed is not counted twice. Replayed settles carry
  ``journaled: true`` in the ledger.
- **Queued settles** (``settle_interval``, the default of the SQLite and Redis stores, see ``_deferred``):
  a settle is only appended to the store's queue on the call's path and rides with the next reserve
  (bounded by that call's deadline) or goes with the store's flusher; a batch that fails, wherever it
  was sent, is handed to the journal like a settle the store could not take.
- **A store that does not open** (a SQLite path that cannot be created, Redis without the ``redis``
  package, a wrong password) is down from the start, with the reason; the probe keeps trying to open it.

Each change of state is logged once (down with the reason; up again with what was replayed), not once
per call. Operators' commands (``ledger``, ``adjust``, ...) are not bounded by the deadline (a report
may read a long ledger) but fail at once, with the reason, while the store is down.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar, Union

from ._deferred import Settle
from ._journal import Journal, JournalEntry, journal_path, replay_claimed, replay_summary
from ._model import from_nanos
from ._runner import DeadlineMissed, Runner, accepts_once, describe, is_timeout, run_inline
from ._store import (
    BudgetStore,
    Controls,
    HoldInfo,
    HoldRequest,
    LedgerEntry,
    ReserveResult,
    Slot,
    Spend,
    StoreUnavailableError,
)

_logger = logging.getLogger("otel_ai_cost.budgets")
T = TypeVar("T")

DEFAULT_DEADLINE = 1.0
DEFAULT_FAILURES = 3
DEFAULT_PROBE_INTERVAL = 1.0
# Errors that are the caller's (bad arguments), not the store's: they do not count as store failures.
_CALLER_ERRORS = (ValueError, TypeError, KeyError)
_USED_CAP = 100_000  # reservations whose store time is tracked, waiting for their settle


class ResilientStore:
    """See the module docstring. ``store``: a BudgetStore, or a function that opens one.

    ``name``: how logs and errors name the store (no password). ``journal``: a path, True for
    ``journal_path(name)`` in the user's state directory, or False to drop what the store cannot
    take (as before: the spend of calls made while it is down is lost).

    ``mode``: ``thread`` (the default) runs each operation on a worker thread, so the store work of a
    call is bounded by one deadline in all, whatever the store does (about 70-170 µs per operation for
    the hand-off on a 2-CPU machine); ``store`` runs it on the calling thread, bounded by the store's
    own timeouts, which must be set to the deadline (``BudgetConfig`` does: Redis socket timeouts,
    SQLite busy timeout): a hung store still costs the first call one deadline and the next ones
    nothing, but an operation is not cut short (a DNS lookup, a hung file system), and a call whose
    first operations are slow but answer can take up to a deadline per operation.
    """

    def __init__(
        self,
        store: Union[BudgetStore, Callable[[], BudgetStore]],
        *,
        name: str,
        deadline: float = DEFAULT_DEADLINE,
        failures: int = DEFAULT_FAILURES,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        journal: Union[bool, str] = True,
        on_store_error: str = "open",
        mode: str = "thread",
    ) -> None:
        if mode not in ("thread", "store"):
            raise ValueError(f"mode must be thread or store, not {mode!r}")
        self.mode = mode
        if not deadline > 0:
            raise ValueError(f"deadline must be a positive number of seconds, not {deadline!r}")
        if failures < 1:
            raise ValueError(f"failures must be at least 1, not {failures!r}")
        self.name = name
        self.deadline = float(deadline)
        self.failures = int(failures)
        self.probe_interval = float(probe_interval)
        self.on_store_error = on_store_error
        self.journal: Optional[Journal] = None
        if journal:
            self.journal = Journal(journal_path(name) if journal is True else str(journal))
        self._runner = Runner()
        self._lock = threading.Lock()
        self._down_since: Optional[float] = None
        self._reason: Optional[str] = None
        self._errors = 0  # failures in a row
        self._warned_failing = False
        self._controls: Controls = {}
        self._used: "collections.OrderedDict[str, float]" = collections.OrderedDict()
        self._local = threading.local()
        self._closed = threading.Event()
        self._prober: Optional[threading.Thread] = None
        self._again = False
        self._went_up_from: Optional[float] = None
        self._journaled = {"settle": 0, "release": 0}
        self._journaled_nanos = 0
        self.replayed = {"settle": 0, "release": 0}
        self._pid = os.getpid()
        self._inner: Optional[BudgetStore] = None
        self._opener: Optional[Callable[[], BudgetStore]] = None
        if hasattr(store, "reserve"):
            self._set_inner(store)  # type: ignore[arg-type]  # hasattr does not narrow: a store, not its opener
        else:
            self._opener = store
            try:
                self._set_inner(self._runner.run(self._opener, self.deadline))
            except DeadlineMissed:
                self._go_down(f"it did not open within {self.deadline:g} s")
            except Exception as exc:  # noqa: BLE001 - the reason is kept and logged once
                self._go_down(f"it cannot be opened: {describe(exc)}")
        if self._inner is not None and self.journal is not None and self.journal.pending():
            self._start_prober(replay_only=True)  # a previous process left settles to replay

    def _set_inner(self, store: BudgetStore) -> None:
        self._once = accepts_once(store)
        # A store that queues settles off the call's path (see _deferred) hands a queued batch that failed
        # to the journal, which replays it once. One that cannot say which settles failed sends each at once.
        handler = getattr(store, "on_failed_settles", None)
        if handler is not None and self._once:
            handler(self._journal_settles if self.journal is not None else None)
        elif getattr(store, "defer_settles", None) is not None:
            store.defer_settles(False)  # type: ignore[attr-defined]  # checked just above
        self._inner = store

    # -- state ------------------------------------------------------------------------------------

    @property
    def inner(self) -> Optional[BudgetStore]:
        return self._inner

    @property
    def down(self) -> bool:
        return self._down_since is not None

    @property
    def reason(self) -> Optional[str]:
        return self._reason

    def _policy(self) -> str:
        if self.on_store_error == "closed":
            return "calls under a budget are refused (on_store_error: closed)"
        kept = f"their spend is journaled to {self.journal.path}" if self.journal else "their spend is not recorded"
        return f"calls go ahead (on_store_error: open) and {kept}"

    def _go_down(self, reason: str) -> None:
        with self._lock:
            if self._down_since is not None or self._closed.is_set():
                return
            self._down_since, self._reason = time.monotonic(), reason
        _logger.warning(
            "otel-ai-cost: budget store %s is unavailable: %s. Until it answers, %s; retrying every %g s.",
            self.name, reason, self._policy(), self.probe_interval,
        )
        self._start_prober()

    def _failed(self, reason: str, timeout: bool = False) -> None:
        with self._lock:
            self._errors += 1
            opens = timeout or self._errors >= self.failures
            first = not self._warned_failing
            self._warned_failing = True
        if opens:
            self._go_down(reason)
        elif first:
            _logger.warning(
                "otel-ai-cost: budget store %s failed: %s (the store is marked unavailable after %d failures in a"
                " row; reported once)", self.name, reason, self.failures,
            )
        else:
            _logger.debug("otel-ai-cost: budget store %s failed again: %s", self.name, reason)

    def _succeeded(self) -> None:
        if self._errors:
            with self._lock:
                self._errors = 0

    def _unavailable(self) -> StoreUnavailableError:
        return StoreUnavailableError(self.name, self._reason or "unknown")

    def _start_prober(self, replay_only: bool = False) -> None:
        with self._lock:
            self._again = True  # a prober about to finish looks again
            if self._prober is not None and self._prober.is_alive():
                return
            self._prober = threading.Thread(
                target=self._probe, args=(replay_only,), name="otel-ai-cost-store-probe", daemon=True
            )
            self._prober.start()

    def _probe(self, replay_only: bool) -> None:
        with self._lock:
            self._again = False
        while not self._closed.is_set():
            if not replay_only:
                if self._closed.wait(self.probe_interval):
                    return
                try:
                    inner = self._inner
                    if inner is None:
                        assert self._opener is not None  # a store that did not open came with its opener
                        inner = self._runner.run(self._opener, self.deadline)
                        self._set_inner(inner)
                    self._controls = self._runner.run(inner.controls, self.deadline) or {}
                except Exception as exc:  # noqa: BLE001 - still down
                    _logger.debug("otel-ai-cost: budget store %s still unavailable: %s", self.name, describe(exc))
                    continue
            try:
                replayed = self._replay()
            except Exception as exc:  # noqa: BLE001 - the store failed again during the replay
                _logger.debug("otel-ai-cost: replay to budget store %s failed: %s", self.name, describe(exc))
                replay_only = False
                continue
            if self._went_up_from is None:  # never down: settles left by a failure or a previous process
                if replayed:
                    _logger.info("otel-ai-cost: budget store %s: replayed from the journal: %s", self.name, replayed)
                with self._lock:
                    if not self._again:
                        self._prober = None
                        return
                    self._again = False
                replay_only = True
                continue
            since = self._went_up_from
            took = time.monotonic() - since if since is not None else 0.0
            _logger.warning(
                "otel-ai-cost: budget store %s is available again after %.1f s%s.",
                self.name, took, f"; replayed from the journal: {replayed}" if replayed else "",
            )
            return

    def _up_locked(self) -> None:
        """Mark the store up (with the lock held); ``_went_up_from``: when it went down, or None if it was up."""
        self._went_up_from = self._down_since
        if self._down_since is not None:
            self._down_since, self._reason, self._errors = None, None, 0
            self._warned_failing = False
            self._prober = None

    def _replay(self) -> str:
        """Replay the journal into the store, oldest first, until it is empty; the last check and the
        state change happen under the lock, so no entry is journaled after it. Returns what was
        replayed, for the log."""
        counts = {"settle": 0, "release": 0}
        nanos = 0
        if self.journal is None:
            with self._lock:
                self._up_locked()
            return ""
        store = self._inner
        assert store is not None
        while True:
            entries = self.journal.claim()
            if not entries:
                with self._lock:
                    entries = self.journal.claim()
                    if not entries:
                        self._up_locked()
                        break
            nanos += replay_claimed(self.journal, entries, lambda entry: self._replay_one(store, entry), counts,
                                    self.replayed)
        return replay_summary(counts, nanos)

    def _replay_one(self, store: BudgetStore, entry: JournalEntry) -> None:
        if entry.op == "settle":
            attributes = {**entry.attributes, "journaled": True}
            # Sent at once, not queued: the entry leaves the journal only once the store took it.
            settle = self._settler(store, entry.reservation_id, entry.actual, attributes, True, at_once=True)
            self._runner.run(settle, self.deadline)
        else:
            self._runner.run(lambda: store.release(entry.reservation_id), self.deadline)

    def _settler(
        self, store: BudgetStore, reservation_id: str, actual: Mapping[Slot, int],
        attributes: Optional[Mapping[str, Any]], once: bool, at_once: bool = False,
    ) -> Callable[[], None]:
        """The settle to run on the store: with ``once`` if the store takes it; ``at_once``: not queued."""
        if self._once:
            # The protocol has no once; self._once says this store takes it.
            if at_once and getattr(store, "settles_queued", False):
                return lambda: store.settle(reservation_id, actual, attributes, once=once,  # type: ignore[call-arg]
                                            at_once=True)
            return lambda: store.settle(reservation_id, actual, attributes, once=once)  # type: ignore[call-arg]
        return lambda: store.settle(reservation_id, actual, attributes)

    def _journal_settles(self, settles: List[Settle], error: BaseException) -> None:
        """The inner store's queued settles that it could not send (down, out of time, failed): to the
        journal, replayed once (each has ``once``: a settle of the batch that landed is a no-op then)."""
        _logger.debug("otel-ai-cost: budget store %s: %d queued settles journaled (%s)", self.name, len(settles),
                      describe(error))
        for settle in settles:
            self._journal("settle", settle.reservation_id, dict(settle.actual), dict(settle.attributes))
        if self._down_since is None and threading.current_thread().name.startswith("otel-ai-cost settles"):
            # The store's flusher failed: the breaker counts it (a failure on a call's path is counted there).
            self._failed(describe(error), timeout=is_timeout(error))

    # -- the deadline -------------------------------------------------------------------------------

    def _forked(self) -> None:
        """In a child of a fork (a pre-forking server), the parent's probe thread does not exist: start
        ours if the store is down."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._prober = None
            if self._down_since is not None:
                self._start_prober()

    def _carry(self) -> float:
        return getattr(self._local, "carry", 0.0)

    def _run(self, fn: Callable[[], T], budget: float) -> T:
        """Run ``fn`` on the store within ``budget`` seconds; failures count for the breaker and are
        raised as StoreUnavailableError (caller errors as they are)."""
        if self._down_since is not None:
            raise self._unavailable()
        try:
            if self.mode == "thread":
                result = self._runner.run(fn, budget)
            else:
                result = run_inline(fn, budget)
        except DeadlineMissed:
            reason = f"no answer within the call's deadline ({self.deadline:g} s)"
            self._failed(reason, timeout=True)
            raise StoreUnavailableError(self.name, reason) from None
        except _CALLER_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001
            reason = describe(exc)
            self._failed(reason)
            raise StoreUnavailableError(self.name, reason) from None
        self._succeeded()
        return result

    def _take_used(self, reservation_id: str, pop: bool) -> float:
        with self._lock:
            return self._used.pop(reservation_id, 0.0) if pop else self._used.get(reservation_id, 0.0)

    def _add_used(self, reservation_id: str, seconds: float) -> None:
        with self._lock:
            self._used[reservation_id] = self._used.get(reservation_id, 0.0) + seconds
            if len(self._used) > _USED_CAP:
                self._used.popitem(last=False)

    # -- the call path: bounded by the deadline -------------------------------------------------------

    def controls(self) -> Controls:
        """The controls in force; the last read while the store is down or out of time (never raises)."""
        if self._down_since is not None or self._inner is None:
            return dict(self._controls)
        start = time.monotonic()
        try:
            controls = self._run(self._inner.controls, self.deadline - self._carry())
            self._controls = controls or {}
            return controls
        except StoreUnavailableError:
            return dict(self._controls)
        finally:
            self._local.carry = time.monotonic() - start  # counted in the deadline of the reserve that follows

    def reserve(
        self,
        requests: Sequence[HoldRequest],
        reservation_id: str,
        ttl: float,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> ReserveResult:
        self._forked()
        carry, self._local.carry = self._carry(), 0.0
        if self._down_since is not None or self._inner is None:
            raise self._unavailable()
        store = self._inner
        start = time.monotonic()
        try:
            return self._run(lambda: store.reserve(requests, reservation_id, ttl, attributes), self.deadline - carry)
        except StoreUnavailableError as exc:
            if "no answer" in exc.reason and self.journal is not None:
                # The hold may still land: free it when the store is back (a release is a no-op otherwise).
                self._journal("release", reservation_id)
            raise
        finally:
            self._add_used(reservation_id, carry + time.monotonic() - start)

    def record(self, entries: Sequence[LedgerEntry]) -> None:
        """Decisions (warn, downgrade, ...) for the ledger; dropped while the store is down."""
        if not entries or self._down_since is not None or self._inner is None:
            return
        rid = entries[0].reservation_id
        store = self._inner
        start = time.monotonic()
        try:
            self._run(lambda: store.record(entries), self.deadline - self._take_used(rid, pop=False))
        except StoreUnavailableError:
            pass  # the state change is logged; these ledger lines are lost, the spend is not
        finally:
            self._add_used(rid, time.monotonic() - start)

    def settle(
        self,
        reservation_id: str,
        actual: Mapping[Slot, int],
        attributes: Optional[Mapping[str, Any]] = None,
        *,
        once: bool = True,
    ) -> None:
        self._forked()
        used = self._take_used(reservation_id, pop=True)
        store = self._inner
        if self._down_since is None and store is not None:
            settle = self._settler(store, reservation_id, actual, attributes, once)
            if self._once and getattr(store, "settles_queued", False):
                if self._queue_settle(settle):  # appended to the store's queue: no wait, no thread hand-off
                    return
            elif self._ran(settle, used):
                return
        elif self.journal is None:
            raise self._unavailable()
        self._journal("settle", reservation_id, dict(actual), dict(attributes or {}))

    def _queue_settle(self, settle: Callable[[], None]) -> bool:
        """Queue a settle in the inner store (the call's thread: it only appends, unless the queue was
        closed). False if it failed and the journal will take it (raises without a journal)."""
        try:
            settle()
            return True
        except _CALLER_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - a closed queue sends at once, and that failed
            if self.journal is None:
                raise StoreUnavailableError(self.name, describe(exc)) from None
            return False

    def release(self, reservation_id: str) -> None:
        used = self._take_used(reservation_id, pop=True)
        store = self._inner
        if self._down_since is None and store is not None:
            if self._ran(lambda: store.release(reservation_id), used):
                return
        elif self.journal is None:
            raise self._unavailable()
        self._journal("release", reservation_id)

    def _ran(self, fn: Callable[[], None], used: float) -> bool:
        """Run a settle or release in what is left of the call's deadline: False if the store could not
        take it and the journal will (raises without a journal)."""
        try:
            self._run(fn, self.deadline - used)
            return True
        except StoreUnavailableError:
            if self.journal is None:
                raise
            return False

    def _journal(self, op: str, reservation_id: str, actual: Optional[Dict[Slot, int]] = None,
                 attributes: Optional[Dict[str, Any]] = None) -> None:
        assert self.journal is not None
        try:
            with self._lock:  # see _replay: nothing is journaled between its last check and going up
                self.journal.append(op, reservation_id, actual, attributes)
                self._journaled[op] += 1
                if actual:
                    self._journaled_nanos += max(actual.values())
        except Exception as exc:  # noqa: BLE001 - the journal failed too: say so once per outage
            self._journal_failed(exc)
            raise StoreUnavailableError(self.name, f"{self._reason}; the journal failed too: {describe(exc)}") from None
        if self._down_since is None and self._inner is not None:
            self._start_prober(replay_only=True)  # the store is up: replay at once

    _journal_warned = False

    def _journal_failed(self, exc: BaseException) -> None:
        if not self._journal_warned:
            self._journal_warned = True
            _logger.warning("otel-ai-cost: the budget journal %s cannot be written (%s): spend of calls made while"
                            " the store is unavailable is lost (reported once)",
                            self.journal.path if self.journal else "", describe(exc))

    def journaled(self) -> Dict[str, Any]:
        """What this process journaled so far: settles, releases and the settled amount (USD)."""
        return {**self._journaled, "usd": from_nanos(self._journaled_nanos)}

    # -- reads and operators' commands: fail at once while down, no deadline --------------------------

    def _direct(self) -> BudgetStore:
        if self._down_since is not None or self._inner is None:
            raise self._unavailable()
        return self._inner

    def spent(self, budget_id: str, key: str, window_keys: Sequence[str]) -> Spend:
        return self._direct().spent(budget_id, key, window_keys)

    def holds(self, budget_id: str, key: Optional[str] = None) -> List[HoldInfo]:
        # Every store has holds; the protocol leaves it out (an operator's command, not a call's).
        return self._direct().holds(budget_id, key)  # type: ignore[attr-defined, no-any-return]

    def ledger(self, *args: Any, **kwargs: Any) -> List[LedgerEntry]:
        return self._direct().ledger(*args, **kwargs)

    def set_limit(self, *args: Any, **kwargs: Any) -> Optional[int]:
        return self._direct().set_limit(*args, **kwargs)

    def set_frozen(self, *args: Any, **kwargs: Any) -> bool:
        return self._direct().set_frozen(*args, **kwargs)

    def adjust(self, *args: Any, **kwargs: Any) -> int:
        return self._direct().adjust(*args, **kwargs)

    def reset(self, *args: Any, **kwargs: Any) -> int:
        return self._direct().reset(*args, **kwargs)

    def partitions(self, budget_id: str, window_keys: Sequence[str]) -> List[str]:
        return self._direct().partitions(budget_id, window_keys)

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("_inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)

    def flush(self) -> None:
        """Send what the inner store queued. While the store is down they stay queued (its flusher hands
        them to the journal if they fail); a batch that fails goes to the journal, so only a failure
        without a journal raises."""
        flush = getattr(self._inner, "flush", None)
        if flush is not None and self._down_since is None:
            try:
                flush()
            except Exception:
                if self.journal is None:
                    raise

    def close(self) -> None:
        self._closed.set()
        if self._inner is not None:
            try:
                self._inner.close()
            finally:
                if self.journal is not None:
                    self.journal.close()
        self._runner.stop()


def unwrap(store: Any) -> Any:
    """The store inside a ResilientStore (the store itself otherwise)."""
    return store.inner if isinstance(store, ResilientStore) else store
