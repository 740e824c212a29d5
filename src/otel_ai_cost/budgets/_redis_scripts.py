"""The Lua scripts of the Redis budget store (see ``_redis`` for its keys): one per operation, so
that each is atomic on the server.

Every script that adds or removes a hold changes the three holds keys of its (budget, key) together,
so a reserve reads the holds of its windows from the sums and expires only the holds whose time has
come (the head of the sorted set): its cost does not grow with the holds in flight. One script
expires at most ``expire_batch`` holds of a (budget, key); if more are due (a host with many calls in
flight died), the store runs the script again, with the same clock reading, until none is due, so
every decision and amount reported is exact while no script blocks the server for long.

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

_COMMON = """
local function log(ledger, now, kind, budget, key, window, amount, rid, attrs)
  redis.call('XADD', ledger, '*', 'time', now, 'kind', kind, 'budget', budget, 'key', key,
             'window', window, 'amount', amount, 'rid', rid, 'attrs', attrs)
end
local function parse(value)  -- a hold: amount, expires_at, window[, placed_at, holder[, on_expired]]
  return string.match(value, '^(%d+)|([^|]+)|([^|]*)')
end
-- What a hold does at expiry: its sixth field; a hold without one (placed by a previous version) is dropped.
local function on_expired(value)
  return string.match(value, '^[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)$') or 'release'
end
local CHARGE_ATTRS = '{"on_expired_hold":"charge_estimate"}'
-- A ledger attributes json object with expired_charge_nanos added.
local function with_charge(attrs, charged)
  local sep = attrs == '{}' and '' or ','
  return string.sub(attrs, 1, -2) .. sep .. '"expired_charge_nanos":' .. string.format('%d', charged) .. '}'
end
-- Take back a charge made at expiry, recorded in marker (the reservation's charged hash) under the
-- holds key of its (budget, key): from spend, in its window, never below 0. Returns the amount taken
-- back, its budget, key and window, or nil if there is no such charge (or it was in another window
-- than only, when only is given).
local function uncharge(marker, holds, spend, only)
  local mark = redis.call('HGET', marker, holds)
  if not mark then
    return nil
  end
  local c = cjson.decode(mark)  -- {amount, budget, key, window}, all strings
  if only and c[4] ~= only then
    return nil
  end
  redis.call('HDEL', marker, holds)
  local have = tonumber(redis.call('HGET', spend, c[4]) or '0')
  local taken = math.min(math.max(have, 0), tonumber(c[1]))
  if taken > 0 then
    redis.call('HINCRBY', spend, c[4], string.format('%d', -taken))
  end
  return taken, c[2], c[3], c[4]
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
-- Remove one hold of a (budget, key) from its three keys. Returns its amount, window and on_expired,
-- or nil if the reservation holds nothing there (settled, released or expired already).
local function unhold(holds, reserved, expiries, rid)
  local value = redis.call('HGET', holds, rid)
  if not value then
    return nil
  end
  local amount, _, window = parse(value)
  redis.call('HDEL', holds, rid)
  redis.call('ZREM', expiries, rid)
  add(reserved, window, amount, -1)
  return amount, window, on_expired(value)
end
-- Expire (and log) up to batch holds of a (budget, key) whose time has come, oldest first: a hold
-- placed with on_expired charge_estimate is added to the spend of its window, and recorded in its
-- reservation's charged hash (charges .. reservation id, kept charge_ttl ms) for a settle that comes
-- after; the others are dropped. The hold is removed in the same script: charged once.
-- Returns whether more are due.
local function expire(ledger, now, p, batch, charges, charge_ttl)
  local due = redis.call('ZRANGEBYSCORE', p.expiries, '-inf', now, 'LIMIT', 0, batch + 1)
  for j = 1, math.min(#due, batch) do
    local amount, window, policy = unhold(p.holds, p.reserved, p.expiries, due[j])
    if amount and policy == 'charge_estimate' then
      incr(p.spend, window, amount)
      local marker = charges .. due[j]
      redis.call('HSET', marker, p.holds, cjson.encode({amount, p.budget, p.key, window}))
      redis.call('PEXPIRE', marker, charge_ttl)
      log(ledger, now, 'expire_charge', p.budget, p.key, window, amount, due[j], CHARGE_ATTRS)
    elseif amount then
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
#       charges (the name of a charged hash, before the reservation id), charge ttl ms,
#       then per request: budget, key, window, limit (-1: none; -2: frozen, refuse), amount,
#       prune prefix ("": none), prune before, #counted, counted..., on_expired.
# Reply: {1 placed | 0 refused | -1 more holds are due: run again}, then per request: spent, reserved, over.
RESERVE = _COMMON + """
local now, expires, rid, attrs, index_ttl, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local frozen_attrs, batch, final, who = ARGV[7], tonumber(ARGV[8]), ARGV[9] == '1', ARGV[10]
local charges, charge_ttl = ARGV[11], ARGV[12]
local ledger, index = KEYS[1], KEYS[2]
local requests, p = {}, 13
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
  r.on_expired = ARGV[p]
  p = p + 1
  requests[i] = r
end
local more = false
for i, r in ipairs(requests) do
  if sync(r.holds, r.reserved, r.expiries) > 0 then
    more = expire(ledger, now, r, batch, charges, charge_ttl) or more
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
    local value = r.amount .. '|' .. expires .. '|' .. r.window .. '|' .. now .. '|' .. who .. '|' .. r.on_expired
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

# KEYS: ledger, index, settled (the marker of a settle with once), charged (the reservation's charges
#       made at expiry), then per slot: holds, spend, reserved, expiries.
# ARGV: now, reservation id, attributes json, late attributes json, n, once ms ("0": not once), then per
#       slot: budget, key, window, amount (0 <= amount <= MAX_NANOS).
# Nothing here can fail half-way: amounts are in range and counters saturate (see incr).
# Reply: n, or -1 when a settle with once found its marker (settled already: nothing done).
SETTLE = _COMMON + """
local now, rid, attrs, late, n, once = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
if once ~= '0' and not redis.call('SET', KEYS[3], now, 'NX', 'PX', once) then
  return -1
end
local p = 7
for i = 1, n do
  local k = 4 * i + 1
  local holds, spend, reserved, expiries = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local budget, key, window, amount = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
  p = p + 4
  sync(holds, reserved, expiries)
  local held = unhold(holds, reserved, expiries, rid)
  local charged = nil
  if not held then  -- expired: charged at expiry? Then the actual cost replaces that charge
    charged = uncharge(KEYS[4], holds, spend, window)
  end
  incr(spend, window, amount)
  local written = held and attrs or late
  if charged then
    written = with_charge(written, charged)
  end
  log(KEYS[1], now, 'settle', budget, key, window, amount, rid, written)
end
redis.call('DEL', KEYS[2])
return n
"""

# KEYS: ledger, index, charged. ARGV: now, reservation id, prefix. The holds keys come from the index
# (and the charged hash); the reserved, expiries and spend keys of each are named like it (see
# RedisBudgetStore._key). A charge made at expiry is taken back.
RELEASE = _COMMON + """
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
for _, holds in ipairs(redis.call('HKEYS', KEYS[3])) do
  local spend = prefix .. ':spend' .. string.sub(holds, #prefix + #':holds' + 1)
  local taken, budget, key, window = uncharge(KEYS[3], holds, spend, nil)
  if taken then
    log(KEYS[1], now, 'release', budget, key, window, string.format('%d', taken), rid, with_charge('{}', taken))
  end
end
redis.call('DEL', KEYS[2])
return #entries / 2
"""

# KEYS: ledger, holds, spend, reserved, expiries. ARGV: now, budget, key, expire batch, charges, charge ttl ms
# (as RESERVE's), counted windows...
# Reply: spent, reserved, 1 if more holds are due than one script expires (run again).
SPENT = _COMMON + """
local counted = {}
for j = 7, #ARGV do counted[ARGV[j]] = true end
local p = {holds = KEYS[2], spend = KEYS[3], reserved = KEYS[4], expiries = KEYS[5], budget = ARGV[2], key = ARGV[3]}
sync(p.holds, p.reserved, p.expiries)
local more = expire(KEYS[1], ARGV[1], p, tonumber(ARGV[4]), ARGV[5], ARGV[6])
return {sum_in(KEYS[3], counted), sum_in(p.reserved, counted), more and 1 or 0}
"""


# KEYS: ledger, spend. ARGV: now, budget, key, operation id, attributes json, amount (may be negative),
#       the current window (where a positive amount goes), the other counted windows newest first.
ADJUST = _COMMON + """
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
RESET = _COMMON + """
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
