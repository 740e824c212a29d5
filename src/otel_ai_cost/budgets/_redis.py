"""Redis budget store: shared by processes on many hosts.

Each operation is one Lua script, so a reservation across several budgets is atomic on the server;
an operator's change of a control is one optimistic transaction (WATCH / MULTI). Listing the
partitions of a budget scans its keys (an operator's command, not on the path of calls).

Keys, under the prefix:

- ``holds:<len(budget)>:<budget>:<key>``: hash of the holds in flight of a (budget, key),
  reservation id -> "amount|expires_at|window";
- ``reserved:<len(budget)>:<budget>:<key>``: hash of their running sum, window key -> nano-dollars held
  (a field is removed when its sum drops to 0);
- ``expiries:<len(budget)>:<budget>:<key>``: sorted set of the same holds, reservation id scored by
  expires_at;
- ``spend:<len(budget)>:<budget>:<key>``: hash of settled spend, window key -> nano-dollars;
- ``reservation:<id>``: per reservation, an index of its holds (holds key -> [budget, key, window]),
  for release; it outlives the holds by an hour;
- ``charged:<id>``: per reservation whose holds were charged at expiry (``on_expired_hold:
  charge_estimate``), holds key -> [amount, budget, key, window], so that a settle or release that
  comes after takes the charge back; kept ``settled_ttl`` seconds;
- ``ledger``: one stream;
- ``controls:limits`` and ``controls:frozen``: the operators' controls, limits (nano-dollars) and frozen
  ("1"), whose fields are "<len(budget)>:<budget>:<key>".

To use Redis Cluster, give a prefix with a hash tag (``{ai_cost}``) so that every key lives in one
slot, as a multi-budget reservation must (a release also reaches the holds keys named in its index, and
an expiry the ``charged`` hash of its reservation).

The scripts, and how they expire holds and migrate the holds of a previous version, are in
``_redis_scripts``; the client (URL, AUTH, TLS, timeouts) is made in ``_redis_client``.
"""
from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, cast

from . import _store as st
from ._deferred import DEFAULT_INTERVAL, QueuedSettles, Settle
from ._redis_client import DEFAULT_TIMEOUT, connect
from ._redis_scripts import ADJUST, RELEASE, RESERVE, RESET, SETTLE, SPENT
from ._store import Control, Controls, HoldInfo, HoldRequest, LedgerEntry, ReserveResult, Slot, Spend, dumps

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _field(budget_id: str, key: str) -> str:
    return f"{len(budget_id)}:{budget_id}:{key}"


def _unfield(field: str) -> Tuple[str, str]:
    length, rest = field.split(":", 1)
    n = int(length)
    return rest[:n], rest[n + 1:]


def _entry(f: Mapping[str, str]) -> LedgerEntry:
    return LedgerEntry(
        float(f["time"]), f["kind"], f["budget"], f["key"], f["window"], int(f["amount"]), f["rid"],
        json.loads(f["attrs"]),
    )


def _fields(e: LedgerEntry) -> Dict[str, str]:
    """A ledger entry as the fields of its stream entry (``_entry`` reads them back)."""
    return {
        "time": repr(float(e.time)),
        "kind": e.kind,
        "budget": e.budget_id,
        "key": e.key,
        "window": e.window_key,
        "amount": str(int(e.amount_nanos)),
        "rid": e.reservation_id,
        "attrs": dumps(e.attributes),
    }


def _now(clock: Callable[[], float]) -> str:
    return repr(float(clock()))


# Seconds a settle with ``once`` is remembered: covers a journal replayed the next day.
SETTLED_TTL = 86400.0

# The most holds of one (budget, key) that one script expires; a call runs its script again while more
# are due, at most _MAX_ROUNDS times (then it decides counting the rest as held, which only refuses more).
EXPIRE_BATCH = 256
# The most queued settles the flusher sends in one pipeline.
_SETTLE_BATCH = 64
_MAX_ROUNDS = 200

# A queued settle: the settle script's keys and args, and the settle as given (for a journal).
_Queued = Tuple[List[Any], List[Any], Settle]


def _settle_of(item: _Queued) -> Settle:
    return item[2]


class RedisBudgetStore(st.StoreBase, QueuedSettles[_Queued]):
    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        clock: Callable[[], float] = time.time,
        prefix: str = "ai_cost:budget",
        client: Any = None,
        expire_batch: int = EXPIRE_BATCH,
        *,
        username: Optional[str] = None,
        password: Optional[str] = None,
        ca_file: Optional[str] = None,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        settled_ttl: float = SETTLED_TTL,
        settle_interval: Optional[float] = DEFAULT_INTERVAL,
    ) -> None:
        """``url`` as the redis client's ``from_url`` takes it: ``redis://[[user]:password@]host:6379/0``,
        ``rediss://`` for TLS, ``unix://``. Options given here override the URL's user and password:

        - ``username`` / ``password``: AUTH; with a username, an ACL user (Redis 6+);
        - ``ca_file``: the CA (PEM) that signed the server's certificate (default: the system's);
          ``cert_file`` / ``key_file``: a client certificate, for servers with ``tls-auth-clients``.
          They need ``rediss://``.

        A call never waits long on an unreachable store: connecting and each command time out
        after ``timeout`` seconds (``?socket_timeout=...&socket_connect_timeout=...`` in the URL win),
        and the book then fails open or closed as configured.

        ``expire_batch``: the most holds of one (budget, key) a single script expires (see
        ``_redis_scripts``); it bounds how long one script can block the server after many holds ended at once.
        ``settled_ttl``: how long (seconds) a settle with ``once`` is remembered (one small key per call),
        and a hold charged at expiry, for a settle that comes after it.

        ``settle_interval`` (seconds, 0.05 by default): settles leave the call's path (see ``_deferred``): each
        is queued and sent in the same round trip as the next reserve of this process (one round trip per
        call), or by a background thread after at most this many seconds; every read of the store sends them
        first, and so do ``flush()``, ``close()`` and the interpreter's exit. Other processes see a settle up
        to ``settle_interval`` later, its hold counting meanwhile. None sends each settle at once (one more
        round trip per call; a budget file's ``store: settle: immediate``). The no-overspend guarantee does
        not depend on it: the hold placed by the reserve counts until its settle lands; a queued batch that
        fails goes to the journal inside a ``ResilientStore`` (replayed once), and is otherwise charged at
        expiry (``on_expired_hold``)."""
        self._client = connect(
            url, client, username=username, password=password, ca_file=ca_file, cert_file=cert_file,
            key_file=key_file, timeout=timeout,
        )
        self._settled_ttl = float(settled_ttl)
        self._settled_ttl_ms = int(self._settled_ttl * 1000)
        self._clock = clock
        self._prefix = prefix
        self._charges = f"{prefix}:charged:"  # a reservation's charged hash, before its id
        if expire_batch < 1:
            raise ValueError("expire_batch must be at least 1")
        self._expire_batch = int(expire_batch)
        self._reserve = self._client.register_script(RESERVE)
        self._settle = self._client.register_script(SETTLE)
        self._release = self._client.register_script(RELEASE)
        self._spent = self._client.register_script(SPENT)
        self._adjust = self._client.register_script(ADJUST)
        self._reset = self._client.register_script(RESET)
        self._start_queue(settle_interval, self._send_queued, f"redis {prefix}", _settle_of, batch=_SETTLE_BATCH)

    # Queued settles (see _deferred): sent pipelined, with the next reserve or by the flusher.

    def _pipeline(self, calls: Sequence[Tuple[Any, List[Any], List[Any]]]) -> List[Any]:
        """Run scripts (Script, keys, args) in one round trip; the replies, an exception for a failed one.
        A script the server does not have (restarted, SCRIPT FLUSH) is loaded and run again."""
        from redis.exceptions import NoScriptError

        pipe = self._client.pipeline(transaction=False)
        for script, keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        replies = list(pipe.execute(raise_on_error=False))
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
                script.sha = self._client.script_load(script.script)
            again = self._client.pipeline(transaction=False)
            for i in missing:
                script, keys, args = calls[i]
                again.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            for i, reply in zip(missing, again.execute(raise_on_error=False)):
                replies[i] = reply
        return replies

    def _send_queued(self, items: List[_Queued]) -> None:
        # Pipelined, a bounded batch per round trip (the queue cuts them: _SETTLE_BATCH): the server runs a
        # batch's scripts back to back, and other clients' commands wait meanwhile.
        self._settled(self._pipeline([(self._settle, keys, args) for keys, args, _ in items]), items)

    def _settled(self, replies: Sequence[Any], items: Sequence[_Queued]) -> None:
        """Check the replies of queued settles: a failed one goes to the queue's failure handler (a journal),
        or is lost (see _deferred), and said so."""
        failed = [(item, r) for item, r in zip(items, replies) if isinstance(r, Exception)]
        queue = self._queue
        if failed and queue is not None:
            queue.failed([item for item, _ in failed], failed[0][1])
        elif queue is not None:
            queue.sent()


    def _key(self, kind: str, budget_id: str, key: str) -> str:
        # The length prefix keeps ("a:b", "c") and ("a", "b:c") apart.
        return f"{self._prefix}:{kind}:{len(budget_id)}:{budget_id}:{key}"

    @property
    def _ledger_key(self) -> str:
        return f"{self._prefix}:ledger"

    def _index_key(self, reservation_id: str) -> str:
        return f"{self._prefix}:reservation:{reservation_id}"


    def _hold_keys(self, budget_id: str, key: str) -> List[str]:
        """holds, spend, reserved, expiries of a (budget, key), as the scripts take them (release derives
        reserved and expiries from holds: the names differ only by the kind)."""
        return [self._key(kind, budget_id, key) for kind in ("holds", "spend", "reserved", "expiries")]

    def reserve(
        self,
        requests: Sequence[HoldRequest],
        reservation_id: str,
        ttl: float,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> ReserveResult:
        now = float(self._clock())
        keys = [self._ledger_key, self._index_key(reservation_id)]
        index_ttl_ms = int((ttl + 3600) * 1000)  # outlives the holds, so a release finds them
        frozen = dumps({**(attributes or {}), "frozen": True}) if any(r.frozen for r in requests) else ""
        args: List[Any] = [
            repr(now), repr(now + ttl), reservation_id, dumps(attributes), index_ttl_ms, len(requests), frozen,
            self._expire_batch, "0", st.holder(), self._charges, self._settled_ttl_ms,
        ]
        for r in requests:
            keys += self._hold_keys(r.budget_id, r.key)
            prefix, before = r.prune or ("", 0)
            limit = -2 if r.frozen else -1 if r.limit is None else st.clamp(r.limit)
            amount = st.clamp(r.amount)
            if r.amount > amount and r.limit is not None:
                limit = 0 if limit != -2 else limit  # more than any store counts: refuse it
            args += [r.budget_id, r.key, r.window_key, limit, amount, prefix, before, len(r.counted)]
            args += list(r.counted)
            args.append(st.check_on_expired_hold(r.on_expired))
        queue = self._queue
        queued = queue.take() if queue is not None else []
        for round_ in range(_MAX_ROUNDS):
            if round_ == _MAX_ROUNDS - 1:
                args[8] = "1"  # decide now
            if queued:  # the queued settles go first, in the same round trip
                reply = self._reserve_after(queued, keys, args)
                queued = []
            else:
                reply = self._reserve(keys=keys, args=args)
            if int(reply[0]) != -1:  # -1: more holds were due than one script expires; they are being expired
                break
        usage = tuple(Spend(int(reply[1 + 3 * i]), int(reply[2 + 3 * i])) for i in range(len(requests)))
        refused = tuple(i for i in range(len(requests)) if int(reply[3 + 3 * i]))
        return ReserveResult(bool(int(reply[0])), usage, refused)

    def _reserve_after(self, queued: List[_Queued], keys: List[Any], args: List[Any]) -> Any:
        calls: List[Tuple[Any, List[Any], List[Any]]] = [(self._settle, k, a) for k, a, _ in queued]
        try:
            replies = self._pipeline(calls + [(self._reserve, keys, args)])
        except Exception as exc:
            if self._queue is not None:
                self._queue.failed(queued, exc)  # not sent again by the queue: they may have landed
            raise
        self._settled(replies[:-1], queued)
        if isinstance(replies[-1], Exception):
            raise replies[-1]
        return replies[-1]

    def settle(
        self,
        reservation_id: str,
        actual: Mapping[Slot, int],
        attributes: Optional[Mapping[str, Any]] = None,
        *,
        once: bool = False,
        at_once: bool = False,
    ) -> None:
        """One script: amounts are clamped to MAX_NANOS and counters saturate, so it never stops
        half-way. ``once``: do nothing if this reservation was settled with ``once`` in the last
        ``settled_ttl`` seconds (a journaled settle replayed after the first one landed). ``at_once``: sent
        now even when settles are queued (a journal replay, which must know it landed)."""
        attributes = st.clamped_attributes(attributes, actual.values())
        keys = [self._ledger_key, self._index_key(reservation_id), f"{self._prefix}:settled:{reservation_id}",
                self._charges + reservation_id]
        late = {**attributes, "late": True}
        once_ms = self._settled_ttl_ms if once else 0
        args: List[Any] = [_now(self._clock), reservation_id, dumps(attributes), dumps(late), len(actual), once_ms]
        for (budget_id, key, window_key), amount in actual.items():
            keys += self._hold_keys(budget_id, key)
            args += [budget_id, key, window_key, st.clamp(amount)]
        queue = self._queue
        if queue is not None and not at_once:
            queue.add((keys, args, Settle(reservation_id, dict(actual), dict(attributes), once)))
        else:
            self._settle(keys=keys, args=args)

    def release(self, reservation_id: str) -> None:
        self.flush()  # this process's settles first
        keys = [self._ledger_key, self._index_key(reservation_id), self._charges + reservation_id]
        self._release(keys=keys, args=[_now(self._clock), reservation_id, self._prefix])

    def spent(self, budget_id: str, key: str, window_keys: Sequence[str]) -> Spend:
        self.flush()  # this process's settles first
        window_keys = st.window_tuple(window_keys)
        keys = [self._ledger_key, *self._hold_keys(budget_id, key)]
        args = [_now(self._clock), budget_id, key, self._expire_batch, self._charges,
                self._settled_ttl_ms, *window_keys]
        for _ in range(_MAX_ROUNDS):
            spent, reserved, more = self._spent(keys=keys, args=args)
            if not int(more):
                break
        return Spend(int(spent), int(reserved))

    def holds(self, budget_id: str, key: Optional[str] = None) -> List[HoldInfo]:
        """The live holds of a budget (of one partition with ``key``), oldest first. Scans the
        budget's keys when ``key`` is None (an operator's command)."""
        self.flush()  # this process's settles first
        head = self._key("holds", budget_id, "")
        if key is not None:
            names = [self._key("holds", budget_id, key)]
        else:
            names = list(self._client.scan_iter(match=_glob_escape(head) + "*", count=1000))
        now = float(self._clock())
        found = []
        for name in names:
            for rid, value in self._client.hgetall(name).items():
                parts = value.split("|")
                expires = float(parts[1])
                if expires <= now:
                    continue  # due: the next reserve or read expires it
                placed = float(parts[3]) if len(parts) > 3 and parts[3] else None
                who = parts[4] if len(parts) > 4 and parts[4] else None
                found.append(HoldInfo(rid, budget_id, name[len(head):], parts[2], int(parts[0]), expires, placed, who))
        return sorted(found, key=lambda h: (h.placed_at or 0, h.reservation_id))

    def record(self, entries: Sequence[LedgerEntry]) -> None:
        pipe = self._client.pipeline(transaction=True)
        for e in entries:
            pipe.xadd(self._ledger_key, _fields(e))
        pipe.execute()

    def read_ledger(self, query: st.LedgerQuery) -> List[LedgerEntry]:
        self.flush()  # this process's settles first
        keep, last = query.keep(), query.last
        entries: List[LedgerEntry] = []
        if last is not None:  # newest first, until enough pass the filters
            end = "+"
            while len(entries) < last:
                batch = self._client.xrevrange(self._ledger_key, max=end, min="-", count=1000)
                entries.extend(e for e in map(_entry, (f for _id, f in batch)) if keep(e))
                if len(batch) < 1000:
                    break
                end = "(" + batch[-1][0]
            return entries[:max(last, 0)][::-1]
        start = "-"
        while True:
            batch = self._client.xrange(self._ledger_key, min=start, max="+", count=10000)
            entries.extend(e for e in map(_entry, (f for _id, f in batch)) if keep(e))
            if len(batch) < 10000:
                return entries
            start = "(" + batch[-1][0]

    # Operators' controls and corrections.

    @property
    def _limits_key(self) -> str:
        return f"{self._prefix}:controls:limits"

    @property
    def _frozen_key(self) -> str:
        return f"{self._prefix}:controls:frozen"

    def change_control(self, change: st.ControlChange) -> st.ControlValue:
        """One optimistic transaction: read the field, set it (delete it when it goes back to the default)
        and log."""
        self.flush()  # this process's settles first
        budget_id, key, field, value, entry = change
        limit = field == "limit"
        hash_key = self._limits_key if limit else self._frozen_key
        stored = (None if value is None else str(int(value))) if limit else ("1" if value else None)
        name = _field(budget_id, key)

        def swap(pipe: Any) -> st.ControlValue:
            raw = pipe.hget(hash_key, name)
            previous = (None if raw is None else int(raw)) if limit else raw is not None
            pipe.multi()
            if stored is None:
                pipe.hdel(hash_key, name)
            else:
                pipe.hset(hash_key, name, stored)
            kind, amount, attrs = entry(previous)
            pipe.xadd(self._ledger_key, _fields(LedgerEntry(self._clock(), kind, budget_id, key, "", amount,
                                                            st.new_id(), attrs)))
            return previous

        return cast(st.ControlValue, self._client.transaction(swap, hash_key, value_from_callable=True))

    def controls(self) -> Controls:
        pipe = self._client.pipeline(transaction=True)
        pipe.hgetall(self._limits_key)
        pipe.hgetall(self._frozen_key)
        limits, frozen = pipe.execute()
        controls: Controls = {}
        for field in set(limits) | set(frozen):
            limit = limits.get(field)
            controls[_unfield(field)] = Control(None if limit is None else int(limit), field in frozen)
        return controls

    @staticmethod
    def _newest_first(window_keys: Sequence[str]) -> List[str]:
        ordered: List[str] = []
        for window in reversed(window_keys):
            if window not in ordered:
                ordered.append(window)
        return ordered

    def adjust(
        self,
        budget_id: str,
        key: str,
        window_keys: Sequence[str],
        amount: int,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> int:
        self.flush()  # this process's settles first
        windows = self._newest_first(st.window_tuple(window_keys))
        attrs = dumps({**(attributes or {}), "requested_nanos": int(amount)})
        keys = [self._ledger_key, self._key("spend", budget_id, key)]
        args = [_now(self._clock), budget_id, key, st.new_id(), attrs, str(int(amount)), *windows]
        return int(self._adjust(keys=keys, args=args))

    def reset(
        self,
        budget_id: str,
        key: str,
        window_keys: Sequence[str],
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> int:
        self.flush()  # this process's settles first
        windows = self._newest_first(st.window_tuple(window_keys))
        keys = [self._ledger_key, self._key("spend", budget_id, key)]
        args = [_now(self._clock), budget_id, key, st.new_id(), dumps(attributes), *windows]
        return int(self._reset(keys=keys, args=args))

    def partitions(self, budget_id: str, window_keys: Sequence[str]) -> List[str]:
        self.flush()  # this process's settles first
        windows = list(dict.fromkeys(st.window_tuple(window_keys)))
        candidates = set()
        for kind in ("spend", "holds"):
            head = self._key(kind, budget_id, "")
            for name in self._client.scan_iter(match=_glob_escape(head) + "*", count=1000):
                candidates.add(name[len(head):])
        keys = sorted(candidates)
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self._key("spend", budget_id, key), windows)
            pipe.hvals(self._key("holds", budget_id, key))
        replies = pipe.execute() if keys else []
        now = float(self._clock())
        found = []
        for i, key in enumerate(keys):
            spend, holds = replies[2 * i], replies[2 * i + 1]
            if sum(int(v) for v in spend if v) > 0:
                found.append(key)
                continue
            for value in holds:
                amount, expires, window = value.split("|")[:3]
                if float(expires) > now and window in windows and int(amount) > 0:
                    found.append(key)
                    break
        return found

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
        self._client.close()
