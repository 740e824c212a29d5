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
- ``ledger``: one stream;
- ``controls:limits`` and ``controls:frozen``: the operators' controls, limits (nano-dollars) and frozen
  ("1"), whose fields are "<len(budget)>:<budget>:<key>".

Every script that adds or removes a hold changes the three holds keys of its (budget, key) together,
so a reserve reads the holds of its windows from the sums and expires only the holds whose time has
come (the head of the sorted set): its cost does not grow with the holds in flight. One script
expires at most ``expire_batch`` holds of a (budget, key); if more are due (a host with many calls in
flight died), the store runs the script again, with the same clock reading, until none is due, so
every decision and amount reported is exact while no script blocks the server for long.

To use Redis Cluster, give a prefix with a hash tag (``{ai_cost}``) so that every key lives in one
slot, as a multi-budget reservation must (a release also reaches the holds keys named in its index).

Upgrade from a version without the ``reserved`` and ``expiries`` keys: holds in flight are migrated
lazily. Every script that touches a (budget, key) first compares the number of its holds with the size
of its sorted set, and where they differ rebuilds the sums and the sorted set from the holds (once,
in time proportional to that partition's holds). Holds placed by the previous version thus keep
counting, and are settled, released or expired as before. Do not run both versions against one store
at the same time: the previous one does not maintain the sums, and a removal and an addition between
two calls of this one leave the counts equal and the sums wrong until those holds end.

Hold expiry compares with the clients' clocks: hosts sharing a store should run NTP. The sums of holds
are Redis integers; the scripts add spend and holds of several windows as Lua numbers, exact up to
2**53 nano-dollars (about 9 million USD per window).
"""
from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple

from ._store import (
    Control,
    Controls,
    HoldInfo,
    HoldRequest,
    LedgerEntry,
    ReserveResult,
    Slot,
    Spend,
    clamp,
    clamped_attributes,
    dumps,
    holder,
    ledger_filter,
    new_id,
)

_COMMON = """
local function log(ledger, now, kind, budget, key, window, amount, rid, attrs)
  redis.call('XADD', ledger, '*', 'time', now, 'kind', kind, 'budget', budget, 'key', key,
             'window', window, 'amount', amount, 'rid', rid, 'attrs', attrs)
end
local function parse(value)  -- a hold: amount, expires_at, window[, placed_at, holder]
  return string.match(value, '^(%d+)|([^|]+)|([^|]*)')
end
-- Add amount (a non-negative integer string) to a hash field, saturating at MAX_NANOS: HINCRBY fails
-- past int64, which would stop a script half-way.
local MAX_NANOS = 9007199254740991
local function incr(hash, field, amount)
  if tonumber(redis.call('HGET', hash, field) or '0') + tonumber(amount) > MAX_NANOS then
    redis.call('HSET', hash, field, string.format('%d', MAX_NANOS))
  else
    redis.call('HINCRBY', hash, field, amount)
  end
end
-- Add a hold's amount to the sum of its window (sign 1), or take it away (sign -1), dropping a sum
-- that reaches 0.
local function add(reserved, window, amount, sign)
  if sign > 0 then
    incr(reserved, window, amount)
  elseif redis.call('HINCRBY', reserved, window, amount == '0' and '0' or '-' .. amount) <= 0 then
    redis.call('HDEL', reserved, window)
  end
end
-- The sums and the sorted set of a (budget, key) hold what its holds hash holds; where their counts
-- differ (holds written by the previous version, without them), rebuild both from the holds.
-- Returns the number of holds.
local function sync(holds, reserved, expiries)
  local n = redis.call('HLEN', holds)
  if n == redis.call('ZCARD', expiries) then
    return n
  end
  redis.call('DEL', reserved, expiries)
  local all = redis.call('HGETALL', holds)
  for j = 1, #all, 2 do
    local amount, expires, window = parse(all[j + 1])
    redis.call('ZADD', expiries, expires, all[j])
    add(reserved, window, amount, 1)
  end
  return n
end
-- Remove one hold of a (budget, key) from its three keys. Returns its amount and window, or nil if
-- the reservation holds nothing there (settled, released or expired already).
local function unhold(holds, reserved, expiries, rid)
  local value = redis.call('HGET', holds, rid)
  if not value then
    return nil
  end
  local amount, _, window = parse(value)
  redis.call('HDEL', holds, rid)
  redis.call('ZREM', expiries, rid)
  add(reserved, window, amount, -1)
  return amount, window
end
-- Expire (and log) up to batch holds of a (budget, key) whose time has come, oldest first.
-- Returns whether more are due.
local function expire(ledger, now, p, batch)
  local due = redis.call('ZRANGEBYSCORE', p.expiries, '-inf', now, 'LIMIT', 0, batch + 1)
  for j = 1, math.min(#due, batch) do
    local amount, window = unhold(p.holds, p.reserved, p.expiries, due[j])
    if amount then
      log(ledger, now, 'expire', p.budget, p.key, window, amount, due[j], '{}')
    else
      redis.call('ZREM', p.expiries, due[j])
    end
  end
  return #due > batch
end
local function sum_in(hash, counted)
  local total = 0
  for window, _ in pairs(counted) do
    total = total + tonumber(redis.call('HGET', hash, window) or '0')
  end
  return total
end
"""

# KEYS: ledger, index, then per request: holds, spend, reserved, expiries.
# ARGV: now, expires_at, reservation id, attributes json, index ttl ms, n, attributes json of a frozen block,
#       expire batch, final ("1": decide even if more holds are due than one script expires), holder,
#       then per request: budget, key, window, limit (-1: none; -2: frozen, refuse), amount,
#       prune prefix ("": none), prune before, #counted, counted...
# Reply: {1 placed | 0 refused | -1 more holds are due: run again}, then per request: spent, reserved, over.
_RESERVE = _COMMON + """
local now, expires, rid, attrs, index_ttl, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local frozen_attrs, batch, final, who = ARGV[7], tonumber(ARGV[8]), ARGV[9] == '1', ARGV[10]
local ledger, index = KEYS[1], KEYS[2]
local requests, p = {}, 11
for i = 1, n do
  local k = 4 * i - 1
  local r = {holds = KEYS[k], spend = KEYS[k + 1], reserved = KEYS[k + 2], expiries = KEYS[k + 3],
             budget = ARGV[p], key = ARGV[p + 1], window = ARGV[p + 2], limit = tonumber(ARGV[p + 3]),
             amount = ARGV[p + 4], counted = {}}
  local prefix, before, counted = ARGV[p + 5], tonumber(ARGV[p + 6]), tonumber(ARGV[p + 7])
  p = p + 8
  -- Rolling windows: drop spend that has left the window, once there is any besides the counted keys.
  if prefix ~= '' and redis.call('HLEN', r.spend) > counted then
    for _, window in ipairs(redis.call('HKEYS', r.spend)) do
      local step = string.sub(window, 1, #prefix) == prefix and tonumber(string.sub(window, #prefix + 1))
      if step and step < before then
        redis.call('HDEL', r.spend, window)
      end
    end
  end
  for j = 1, counted do
    r.counted[ARGV[p]] = true
    p = p + 1
  end
  requests[i] = r
end
local more = false
for i, r in ipairs(requests) do
  if sync(r.holds, r.reserved, r.expiries) > 0 then
    more = expire(ledger, now, r, batch) or more
  end
end
if more and not final then
  return {-1}
end
local reply, refused = {0}, false
for i, r in ipairs(requests) do
  r.reserved_now = sum_in(r.reserved, r.counted)
  r.spent = sum_in(r.spend, r.counted)
  r.over = r.limit == -2 or (r.limit >= 0 and r.spent + r.reserved_now + tonumber(r.amount) > r.limit)
  refused = refused or r.over
  table.insert(reply, r.spent)
  table.insert(reply, r.reserved_now)
  table.insert(reply, r.over and 1 or 0)
end
for i, r in ipairs(requests) do
  if refused then
    if r.over then
      log(ledger, now, 'block', r.budget, r.key, r.window, r.amount, rid, r.limit == -2 and frozen_attrs or attrs)
    end
  else
    local value = r.amount .. '|' .. expires .. '|' .. r.window .. '|' .. now .. '|' .. who
    if redis.call('HSETNX', r.holds, rid, value) == 0 then  -- the same reservation again here: replace its hold
      unhold(r.holds, r.reserved, r.expiries, rid)
      redis.call('HSET', r.holds, rid, value)
    end
    redis.call('ZADD', r.expiries, expires, rid)
    add(r.reserved, r.window, r.amount, 1)
    redis.call('HSET', index, r.holds, cjson.encode({r.budget, r.key, r.window}))
    log(ledger, now, 'reserve', r.budget, r.key, r.window, r.amount, rid, attrs)
  end
end
if not refused then
  redis.call('PEXPIRE', index, index_ttl)
  reply[1] = 1
end
return reply
"""

# KEYS: ledger, index, settled (the marker of a settle with once), then per slot: holds, spend, reserved,
#       expiries.
# ARGV: now, reservation id, attributes json, late attributes json, n, once ms ("0": not once), then per
#       slot: budget, key, window, amount (0 <= amount <= MAX_NANOS).
# Nothing here can fail half-way: amounts are in range and counters saturate (see incr).
# Reply: n, or -1 when a settle with once found its marker (settled already: nothing done).
_SETTLE = _COMMON + """
local now, rid, attrs, late, n, once = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
if once ~= '0' and not redis.call('SET', KEYS[3], now, 'NX', 'PX', once) then
  return -1
end
local p = 7
for i = 1, n do
  local k = 4 * i
  local holds, spend, reserved, expiries = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local budget, key, window, amount = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
  p = p + 4
  sync(holds, reserved, expiries)
  local held = unhold(holds, reserved, expiries, rid)
  incr(spend, window, amount)
  log(KEYS[1], now, 'settle', budget, key, window, amount, rid, held and attrs or late)
end
redis.call('DEL', KEYS[2])
return n
"""

# KEYS: ledger, index. ARGV: now, reservation id, prefix. The holds keys come from the index; the
# reserved and expiries keys of each are named like it (see RedisBudgetStore._key).
_RELEASE = _COMMON + """
local now, rid, prefix = ARGV[1], ARGV[2], ARGV[3]
local entries = redis.call('HGETALL', KEYS[2])
for j = 1, #entries, 2 do
  local holds, slot = entries[j], cjson.decode(entries[j + 1])
  local tail = string.sub(holds, #prefix + #':holds' + 1)
  local reserved, expiries = prefix .. ':reserved' .. tail, prefix .. ':expiries' .. tail
  sync(holds, reserved, expiries)
  local amount = unhold(holds, reserved, expiries, rid)
  if amount then
    log(KEYS[1], now, 'release', slot[1], slot[2], slot[3], amount, rid, '{}')
  end
end
redis.call('DEL', KEYS[2])
return #entries / 2
"""

# KEYS: ledger, holds, spend, reserved, expiries. ARGV: now, budget, key, expire batch, counted windows...
# Reply: spent, reserved, 1 if more holds are due than one script expires (run again).
_SPENT = _COMMON + """
local counted = {}
for j = 5, #ARGV do counted[ARGV[j]] = true end
local p = {holds = KEYS[2], reserved = KEYS[4], expiries = KEYS[5], budget = ARGV[2], key = ARGV[3]}
sync(p.holds, p.reserved, p.expiries)
local more = expire(KEYS[1], ARGV[1], p, tonumber(ARGV[4]))
return {sum_in(KEYS[3], counted), sum_in(p.reserved, counted), more and 1 or 0}
"""


# KEYS: ledger, spend. ARGV: now, budget, key, operation id, attributes json, amount (may be negative),
#       the current window (where a positive amount goes), the other counted windows newest first.
_ADJUST = _COMMON + """
local amount = tonumber(ARGV[6])
local applied = 0
if amount >= 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[7], ARGV[6])
  applied = amount
else
  local left = -amount
  for i = 7, #ARGV do
    if left <= 0 then break end
    local take = math.min(tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0'), left)
    if take > 0 then
      redis.call('HINCRBY', KEYS[2], ARGV[i], string.format('%d', -take))
      left = left - take
      applied = applied - take
    end
  end
end
log(KEYS[1], ARGV[1], 'adjust', ARGV[2], ARGV[3], ARGV[7], string.format('%d', applied), ARGV[4], ARGV[5])
return applied
"""

# KEYS: ledger, spend. ARGV: now, budget, key, operation id, attributes json, current window, other windows...
_RESET = _COMMON + """
local removed = 0
for i = 6, #ARGV do
  local have = redis.call('HGET', KEYS[2], ARGV[i])
  if have then
    removed = removed + tonumber(have)
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
log(KEYS[1], ARGV[1], 'reset', ARGV[2], ARGV[3], ARGV[6], string.format('%d', removed), ARGV[4], ARGV[5])
return removed
"""

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


def _window_keys(window_keys: Sequence[str]) -> Tuple[str, ...]:
    return (window_keys,) if isinstance(window_keys, str) else tuple(window_keys)


def _now(clock: Callable[[], float]) -> str:
    return repr(float(clock()))


# Seconds: connect and command timeout unless the URL says otherwise.
DEFAULT_TIMEOUT = 1.0
# Seconds a settle with ``once`` is remembered: covers a journal replayed the next day.
SETTLED_TTL = 86400.0

# The most holds of one (budget, key) that one script expires; a call runs its script again while more
# are due, at most _MAX_ROUNDS times (then it decides counting the rest as held, which only refuses more).
EXPIRE_BATCH = 256
_MAX_ROUNDS = 200


class RedisBudgetStore:
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

        ``expire_batch``: the most holds of one (budget, key) a single script expires (see the module's
        docstring); it bounds how long one script can block the server after many holds ended at once.
        ``settled_ttl``: how long (seconds) a settle with ``once`` is remembered (one small key per call)."""
        import redis  # optional dependency: pip install redis

        tls = {"ssl_ca_certs": ca_file, "ssl_certfile": cert_file, "ssl_keyfile": key_file}
        tls = {k: v for k, v in tls.items() if v}
        if tls and not url.startswith("rediss://"):
            raise ValueError("a CA file or client certificate needs TLS: write the URL as rediss://host:port")
        if tls.get("ssl_certfile") and not tls.get("ssl_keyfile"):
            tls["ssl_keyfile"] = tls["ssl_certfile"]  # one PEM with both
        auth = {k: v for k, v in (("username", username), ("password", password)) if v is not None}
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._client = client or redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # No retries in the client (redis-py retries a timed-out command up to 10 times): a store
            # that does not answer is the circuit breaker's business (ResilientStore).
            retry=Retry(NoBackoff(), 0),
            **tls,
        )
        if auth and client is None:
            # Explicit options win over the URL's (from_url lets the URL's win over keyword arguments).
            self._client.connection_pool.connection_kwargs.update(auth)
        self._settled_ttl = float(settled_ttl)
        self._clock = clock
        self._prefix = prefix
        if expire_batch < 1:
            raise ValueError("expire_batch must be at least 1")
        self._expire_batch = int(expire_batch)
        self._reserve = self._client.register_script(_RESERVE)
        self._settle = self._client.register_script(_SETTLE)
        self._release = self._client.register_script(_RELEASE)
        self._spent = self._client.register_script(_SPENT)
        self._adjust = self._client.register_script(_ADJUST)
        self._reset = self._client.register_script(_RESET)

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
            self._expire_batch, "0", holder(),
        ]
        for r in requests:
            keys += self._hold_keys(r.budget_id, r.key)
            prefix, before = r.prune or ("", 0)
            limit = -2 if r.frozen else -1 if r.limit is None else clamp(r.limit)
            amount = clamp(r.amount)
            if r.amount > amount and r.limit is not None:
                limit = 0 if limit != -2 else limit  # more than any store counts: refuse it
            args += [r.budget_id, r.key, r.window_key, limit, amount, prefix, before, len(r.counted)]
            args += list(r.counted)
        for round_ in range(_MAX_ROUNDS):
            if round_ == _MAX_ROUNDS - 1:
                args[8] = "1"  # decide now
            reply = self._reserve(keys=keys, args=args)
            if int(reply[0]) != -1:  # -1: more holds were due than one script expires; they are being expired
                break
        usage = tuple(Spend(int(reply[1 + 3 * i]), int(reply[2 + 3 * i])) for i in range(len(requests)))
        refused = tuple(i for i in range(len(requests)) if int(reply[3 + 3 * i]))
        return ReserveResult(bool(int(reply[0])), usage, refused)

    def settle(
        self,
        reservation_id: str,
        actual: Mapping[Slot, int],
        attributes: Optional[Mapping[str, Any]] = None,
        *,
        once: bool = False,
    ) -> None:
        """One script: amounts are clamped to MAX_NANOS and counters saturate, so it never stops
        half-way. ``once``: do nothing if this reservation was settled with ``once`` in the last
        ``settled_ttl`` seconds (a journaled settle replayed after the first one landed)."""
        attributes = clamped_attributes(attributes, actual.values())
        keys = [self._ledger_key, self._index_key(reservation_id), f"{self._prefix}:settled:{reservation_id}"]
        late = {**attributes, "late": True}
        once_ms = int(self._settled_ttl * 1000) if once else 0
        args: List[Any] = [_now(self._clock), reservation_id, dumps(attributes), dumps(late), len(actual), once_ms]
        for (budget_id, key, window_key), amount in actual.items():
            keys += self._hold_keys(budget_id, key)
            args += [budget_id, key, window_key, clamp(amount)]
        self._settle(keys=keys, args=args)

    def release(self, reservation_id: str) -> None:
        keys = [self._ledger_key, self._index_key(reservation_id)]
        self._release(keys=keys, args=[_now(self._clock), reservation_id, self._prefix])

    def spent(self, budget_id: str, key: str, window_keys: Sequence[str]) -> Spend:
        window_keys = (window_keys,) if isinstance(window_keys, str) else tuple(window_keys)
        keys = [self._ledger_key, *self._hold_keys(budget_id, key)]
        args = [_now(self._clock), budget_id, key, self._expire_batch, *window_keys]
        for _ in range(_MAX_ROUNDS):
            spent, reserved, more = self._spent(keys=keys, args=args)
            if not int(more):
                break
        return Spend(int(spent), int(reserved))

    def holds(self, budget_id: str, key: Optional[str] = None) -> List[HoldInfo]:
        """The live holds of a budget (of one partition with ``key``), oldest first. Scans the
        budget's keys when ``key`` is None (an operator's command)."""
        if key is not None:
            names = [self._key("holds", budget_id, key)]
        else:
            names = list(self._client.scan_iter(match=_glob_escape(self._key("holds", budget_id, "")) + "*", count=1000))
        head = len(self._key("holds", budget_id, ""))
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
                found.append(HoldInfo(rid, budget_id, name[head:], parts[2], int(parts[0]), expires, placed, who))
        return sorted(found, key=lambda h: (h.placed_at or 0, h.reservation_id))

    def record(self, entries: Sequence[LedgerEntry]) -> None:
        pipe = self._client.pipeline(transaction=True)
        for e in entries:
            pipe.xadd(
                self._ledger_key,
                {
                    "time": repr(float(e.time)),
                    "kind": e.kind,
                    "budget": e.budget_id,
                    "key": e.key,
                    "window": e.window_key,
                    "amount": str(e.amount_nanos),
                    "rid": e.reservation_id,
                    "attrs": dumps(e.attributes),
                },
            )
        pipe.execute()

    def ledger(
        self,
        budget_id: Optional[str] = None,
        key: Optional[str] = None,
        kind: Optional[str] = None,
        reservation_id: Optional[str] = None,
        since: Optional[float] = None,
        until: Optional[float] = None,
        *,
        kinds: Optional[Iterable[str]] = None,
        last: Optional[int] = None,
    ) -> List[LedgerEntry]:
        keep = ledger_filter(budget_id, key, kind, reservation_id, since, until, kinds)
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

    def _log_fields(self, kind: str, budget_id: str, key: str, window: str, amount: int, attrs: Any) -> dict:
        return {
            "time": _now(self._clock), "kind": kind, "budget": budget_id, "key": key, "window": window,
            "amount": str(int(amount)), "rid": new_id(), "attrs": dumps(attrs),
        }

    def _set_control(self, hash_key: str, budget_id: str, key: str, value: Optional[str], log: Callable) -> Any:
        """Read the field, set it (None: delete) and log, in one optimistic transaction."""
        field = _field(budget_id, key)

        def change(pipe: Any) -> Any:
            previous = pipe.hget(hash_key, field)
            pipe.multi()
            if value is None:
                pipe.hdel(hash_key, field)
            else:
                pipe.hset(hash_key, field, value)
            pipe.xadd(self._ledger_key, log(previous))
            return previous

        return self._client.transaction(change, hash_key, value_from_callable=True)

    def set_limit(
        self, budget_id: str, key: str, limit: Optional[int], attributes: Optional[Mapping[str, Any]] = None
    ) -> Optional[int]:
        def log(previous: Optional[str]) -> dict:
            old = None if previous is None else int(previous)
            if limit is None:
                return self._log_fields("clear_limit", budget_id, key, "", old or 0, dict(attributes or {}))
            attrs = {**(attributes or {}), "previous_limit_nanos": old}
            return self._log_fields("set_limit", budget_id, key, "", int(limit), attrs)

        value = None if limit is None else str(int(limit))
        previous = self._set_control(self._limits_key, budget_id, key, value, log)
        return None if previous is None else int(previous)

    def set_frozen(
        self, budget_id: str, key: str, frozen: bool, attributes: Optional[Mapping[str, Any]] = None
    ) -> bool:
        def log(previous: Optional[str]) -> dict:
            attrs = {**(attributes or {}), "was_frozen": previous is not None}
            return self._log_fields("freeze" if frozen else "unfreeze", budget_id, key, "", 0, attrs)

        return self._set_control(self._frozen_key, budget_id, key, "1" if frozen else None, log) is not None

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
        windows = self._newest_first(_window_keys(window_keys))
        attrs = dumps({**(attributes or {}), "requested_nanos": int(amount)})
        keys = [self._ledger_key, self._key("spend", budget_id, key)]
        args = [_now(self._clock), budget_id, key, new_id(), attrs, str(int(amount)), *windows]
        return int(self._adjust(keys=keys, args=args))

    def reset(
        self,
        budget_id: str,
        key: str,
        window_keys: Sequence[str],
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> int:
        windows = self._newest_first(_window_keys(window_keys))
        keys = [self._ledger_key, self._key("spend", budget_id, key)]
        args = [_now(self._clock), budget_id, key, new_id(), dumps(attributes), *windows]
        return int(self._reset(keys=keys, args=args))

    def partitions(self, budget_id: str, window_keys: Sequence[str]) -> List[str]:
        windows = list(dict.fromkeys(_window_keys(window_keys)))
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
        self._client.close()
