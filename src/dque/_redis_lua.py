"""The server-side half of ``RedisQueue``: the Lua scripts, one per atomic step.

Every script gets the same keys (see ``keys_of``)::

    KEYS[1] the stream: every item not yet deleted (ready, leased or returned), field ``d`` = payload
    KEYS[2] leases:   zset entry id -> expiry (server ms); the live leases
    KEYS[3] returned: zset, score 0, member ``<padded id>:<id>``; released or expired items, in id order
    KEYS[4] tasks:    string, the unfinished-tasks counter (``join``)
    KEYS[5] the dead-letter stream ``<name>.dead``
    KEYS[6] the dead-letter queue's tasks counter

The stream's consumer group ``dque`` holds every leased and every returned
entry in its pending entries list (PEL): a lease is a PEL entry owned by the
leasing handle's consumer and listed in ``leases``; a returned entry is
owned by the consumer ``dque:returned`` and listed in ``returned``. So the
server's delivery counter (XPENDING's times-delivered) survives releases:
``XCLAIM`` (without JUSTID) adds one at each hand-out. Invariants, kept by
every script: PEL = leases + returned (disjoint); the stream = undelivered +
leases + returned; an acked or taken item is XACKed and XDELed at once.
A lease whose expiry (server time) has passed is "expired": the next script
that runs moves it to ``returned`` (or, at ``max_deliveries``, to the dead
letters), as ``release`` does.
"""

from __future__ import annotations

GROUP = "dque"
RETURNED = "dque:returned"

_COMMON = """
local GROUP = 'dque'
local RETURNED = 'dque:returned'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function pad(s, n) return string.rep('0', n - #s) .. s end

local function order_key(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  return pad(ms, 20) .. '-' .. pad(seq, 20) .. ':' .. id
end

local function id_of(member) return string.match(member, ':(.+)$') end

local function payload_of(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'd' then return fields[i + 1] end
  end
  return ''
end

local function entry_payload(id)
  local e = redis.call('XRANGE', KEYS[1], id, id)
  if e[1] then return payload_of(e[1][2]) end
  return nil
end

-- (delivery count, owner) of a pending entry; nil if it is not pending
local function pending_of(id)
  local p = redis.call('XPENDING', KEYS[1], GROUP, id, id, 1)
  if p[1] then return tonumber(p[1][4]), p[1][2] end
  return nil, nil
end

local function tasks_done(n)
  if n <= 0 then return end
  local left = redis.call('DECRBY', KEYS[4], n)
  if left < 0 then redis.call('SET', KEYS[4], 0) end
end

-- move a pending entry to the dead letters: the copy and the removal in one step
local function dead_letter(id)
  local payload = entry_payload(id)
  if payload then
    redis.call('XADD', KEYS[5], '*', 'd', payload)
    redis.call('INCR', KEYS[6])
  end
  redis.call('XACK', KEYS[1], GROUP, id)
  redis.call('XDEL', KEYS[1], id)
  tasks_done(1)
end

-- a lease that ended without an ack (released, expired): back ahead of newer items, or dead
local function put_back(id, maxd)
  local count = pending_of(id)
  if count == nil then return 0 end
  if maxd > 0 and count >= maxd then
    dead_letter(id)
    return 2
  end
  redis.call('XCLAIM', KEYS[1], GROUP, RETURNED, 0, id, 'JUSTID')
  redis.call('ZADD', KEYS[3], 0, order_key(id))
  return 1
end

local function reclaim(now, maxd)
  for _ = 1, 10 do
    local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. now, 'LIMIT', 0, 100)
    for _, id in ipairs(ids) do
      redis.call('ZREM', KEYS[2], id)
      put_back(id, maxd)
    end
    if #ids < 100 then return end
  end
end
"""

# ARGV: maxsize, payload...   -> 1 (added) or 0 (Full: nothing added)
PUT = """
local maxsize = tonumber(ARGV[1])
local n = #ARGV - 1
if maxsize > 0 and redis.call('XLEN', KEYS[1]) + n > maxsize then return 0 end
for i = 2, #ARGV do redis.call('XADD', KEYS[1], '*', 'd', ARGV[i]) end
redis.call('INCRBY', KEYS[4], n)
return 1
"""

# ARGV: consumer, mode ('get' | 'lease' | 'peek'), n, lease_ms, ttl_ms (0: none), max_deliveries
# -> {now, last stream id, then per item: payload (get, peek) or id, deliveries, payload (lease)}
TAKE = """
local consumer, mode, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local lease_ms, ttl_ms, maxd = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
reclaim(now, maxd)
local expiry = now + lease_ms
if ttl_ms > 0 and ttl_ms < lease_ms then expiry = now + ttl_ms end
local out = {now, ''}
local taken = 0

if mode == 'peek' then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0)
  if first[1] then
    local p = entry_payload(id_of(first[1]))
    if p then table.insert(out, p) return out end
  end
  local last = '0-0'
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == GROUP then last = info['last-delivered-id'] end
  end
  local e = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)
  if e[1] then table.insert(out, payload_of(e[1][2])) return out end
else
  for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, n - 1)) do
    local id = id_of(member)
    redis.call('ZREM', KEYS[3], member)
    local p = entry_payload(id)
    if p then
      taken = taken + 1
      if mode == 'get' then
        redis.call('XACK', KEYS[1], GROUP, id)
        redis.call('XDEL', KEYS[1], id)
        table.insert(out, p)
      else
        redis.call('XCLAIM', KEYS[1], GROUP, consumer, 0, id)
        local count = pending_of(id)
        redis.call('ZADD', KEYS[2], expiry, id)
        table.insert(out, id)
        table.insert(out, count)
        table.insert(out, p)
      end
    else
      redis.call('XACK', KEYS[1], GROUP, id)  -- deleted by hand: drop it
    end
  end
  if taken < n then
    local r = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', n - taken, 'STREAMS', KEYS[1], '>')
    if r then
      for _, e in ipairs(r[1][2]) do
        local id, p = e[1], payload_of(e[2])
        taken = taken + 1
        if mode == 'get' then
          redis.call('XACK', KEYS[1], GROUP, id)
          redis.call('XDEL', KEYS[1], id)
          table.insert(out, p)
        else
          redis.call('ZADD', KEYS[2], expiry, id)
          table.insert(out, id)
          table.insert(out, 1)
          table.insert(out, p)
        end
      end
    end
  end
end
if #out == 2 then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if last[1] then out[2] = last[1][1] else out[2] = '0-0' end
end
return out
"""

# ARGV: consumer, mode ('ack' | 'release'), max_deliveries, then (entry id, deliveries) pairs
# -> {} when done, else the 1-based pair numbers of the leases not outstanding (nothing changed)
SETTLE = """
local consumer, mode, maxd = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local bad = {}
for i = 4, #ARGV, 2 do
  local id, want = ARGV[i], tonumber(ARGV[i + 1])
  local expiry = redis.call('ZSCORE', KEYS[2], id)
  local ok = false
  if expiry and tonumber(expiry) >= now then
    local count, owner = pending_of(id)
    ok = count == want and owner == consumer
  end
  if not ok then table.insert(bad, (i - 2) / 2) end
end
if #bad > 0 then
  reclaim(now, maxd)
  return bad
end
local acked = 0
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  redis.call('ZREM', KEYS[2], id)
  if mode == 'ack' then
    redis.call('XACK', KEYS[1], GROUP, id)
    redis.call('XDEL', KEYS[1], id)
    acked = acked + 1
  else
    put_back(id, maxd)
  end
end
tasks_done(acked)
return bad
"""

# ARGV: consumer, lease_ms, then (entry id, deliveries, hard deadline ms or 0) triples
# -> the 1-based triple numbers of the leases this handle no longer holds
RENEW = """
local consumer, lease_ms = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local lost = {}
for i = 3, #ARGV, 3 do
  local id, want, deadline = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local ok = false
  local expiry = redis.call('ZSCORE', KEYS[2], id)
  if expiry and tonumber(expiry) >= now then  -- an expired lease is gone, even if not yet settled
    local count, owner = pending_of(id)
    ok = count == want and owner == consumer
  end
  if ok and deadline > 0 and deadline <= now then ok = false end
  if ok then
    local expiry = now + lease_ms
    if deadline > 0 and deadline < expiry then expiry = deadline end
    redis.call('ZADD', KEYS[2], 'XX', expiry, id)
  else
    table.insert(lost, i / 3)
  end
end
return lost
"""

# ARGV: max_deliveries -> {ready, leased}
STATS = """
reclaim(now_ms(), tonumber(ARGV[1]))
local leased = redis.call('ZCARD', KEYS[2])
return {redis.call('XLEN', KEYS[1]) - leased, leased}
"""

# ARGV[1]: the tasks this handle counts as done already (discarded by its immediate shutdown)
# -> the count left, or -1 if it was already at that (nothing changed)
TASK_DONE = """
local left = tonumber(redis.call('GET', KEYS[4]) or '0')
if left <= tonumber(ARGV[1]) then return -1 end
return redis.call('DECR', KEYS[4])
"""

# ARGV: payload...  (items taken with get that cannot be deserialized) -> the number moved
DEAD_RAW = """
for i = 1, #ARGV do
  redis.call('XADD', KEYS[5], '*', 'd', ARGV[i])
  redis.call('INCR', KEYS[6])
end
tasks_done(#ARGV)
return #ARGV
"""

# ARGV: this handle's consumer (deleted if it holds nothing), idle ms after which an empty consumer goes
CLEANUP = """
local me, idle_ms = ARGV[1], tonumber(ARGV[2])
local gone = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], GROUP)) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['name'] ~= RETURNED and tonumber(info['pending']) == 0 and (info['name'] == me or tonumber(info['idle']) > idle_ms) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], GROUP, info['name'])
    gone = gone + 1
  end
end
return gone
"""

SCRIPTS = {
    name: _COMMON + body
    for name, body in {
        "put": PUT,
        "take": TAKE,
        "settle": SETTLE,
        "renew": RENEW,
        "stats": STATS,
        "task_done": TASK_DONE,
        "dead_raw": DEAD_RAW,
        "cleanup": CLEANUP,
    }.items()
}


def keys_of(name: str) -> list[str]:
    """The six keys of queue ``name``, in the scripts' KEYS order."""
    dead = name + ".dead"
    return [name, aux(name, "leases"), aux(name, "returned"), aux(name, "tasks"), dead, aux(dead, "tasks")]


def aux(name: str, what: str) -> str:
    """The key of one of queue ``name``'s helper structures (the stream's key is ``name`` itself)."""
    return f"{name}:dque:{what}"
