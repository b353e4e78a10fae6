"""Lua scripts of the ``redis`` backend: every multi-step state change is one script call.

Why Lua: a fetch must promote due/expired messages, pop by priority, lease and read bodies
without another worker slipping in between, and it must cost one round trip for a whole batch.
Scripts run atomically in Redis, so each call below is one atomic step for its whole batch.

Key layout (``P`` = the settings prefix, ``Q`` = a queue name)::

    P:queues          set   every queue ever enqueued to or given a kept dead letter (stats)
    P:seq             int   lease-token counter (one INCR per fetch)
    P:q:Q:body        hash  id -> envelope bytes (per queue: event copies share their id)
    P:q:Q:meta        hash  id -> "prio" or "prio|unique_key" (absent means priority 0)
    P:q:Q:r:<prio>    list  ready ids of one priority, FIFO
    P:q:Q:prios       zset  priorities that may have ready ids, score -prio (highest first)
    P:q:Q:delayed     zset  id -> eta
    P:q:Q:lease       zset  "<token>|<id>" -> lease deadline
    P:q:Q:wake        list  at most one token; consumers BLPOP it instead of polling
    P:q:Q:stats       hash  processed / failed totals
    P:q:Q:dead        zset  id -> failed_at (per-queue dead-letter index)
    P:dead:body       hash  dead id -> body
    P:dead:info       hash  dead id -> "failed_at|len(queue)|" + queue + reason
    P:dead:idx        zset  id -> failed_at (all dead letters, oldest first)
    P:idem:<key>      str   id, SET NX EX idempotency_ttl
    P:uniq:<key>      str   id of the pending holder, deleted on ack / dead
    P:claim:<key>     str   holder of a composite's key claim, SET NX PX (see coordination)
    P:bindings        hash  "pattern\\ngroup" -> 1;  P:bind:ver int, bumped on every new binding

A lease member carries a fresh token per fetch, so a settle or extend from a worker whose lease
expired (and whose message was re-fetched by someone else) finds no member and does nothing.
Every script takes ``ARGV[1] = P`` and ``ARGV[2] = now`` (empty: use the Redis clock, so every
client agrees on lease deadlines). Keys are built inside the scripts, so Redis Cluster is not
supported (one standalone or replicated Redis).

Stored values are not trusted. A field another version, a hand edit or a bug left corrupt (a
priority that is not an integer, an id with no body, a lease member without its token, a
counter that is not a number) must not make a script fail: a failing script keeps the writes it
made before the error and fails again on every call, wedging the queue for every worker. So
the scripts check what they read: a message whose own fields are corrupt is moved to the
dead-letter queue with the reason (``bury``); an entry with no message left to keep is dropped.
Either way a note ``"dead|dropped" | queue | id | reason`` goes back to the caller
(``FETCH``'s last element), which logs it as an error. Keys holding the wrong Redis *type*
(a string where a hash belongs) are not repaired: Redis refuses those commands outright.
"""

from __future__ import annotations

_COMMON = r"""
local P = ARGV[1]
local NOW
if ARGV[2] ~= '' then NOW = tonumber(ARGV[2]) else
  local t = redis.call('TIME'); NOW = tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local function fmt(x) return string.format('%.6f', x) end
local function qkey(q) return P .. ':q:' .. q end
local function meta_of(q, id)
  local m = redis.call('HGET', qkey(q) .. ':meta', id)
  if not m then return '0', nil end
  local i = string.find(m, '|', 1, true)
  if i then return string.sub(m, 1, i - 1), string.sub(m, i + 1) end
  return m, nil
end
local function wake(q)
  local k = qkey(q) .. ':wake'
  redis.call('RPUSH', k, '1')
  redis.call('LTRIM', k, -1, -1)
end
local function chunked(cmd, key, items, step)
  local out = {}
  for s = 1, #items, step do
    local r = redis.call(cmd, key, unpack(items, s, math.min(s + step - 1, #items)))
    if type(r) == 'table' then for _, v in ipairs(r) do out[#out + 1] = v end end
  end
  return out
end
local function bind_version()  -- a corrupt version restarts above any value handed out
  local k = P .. ':bind:ver'
  local v = redis.call('GET', k) or '0'
  if #v > 18 or not string.match(v, '^%d+$') then
    v = string.format('%d', NOW * 1000000); redis.call('SET', k, v)
  end
  return v
end
local function lease_id(m)
  local bar = string.find(m, '|', 1, true)
  if not bar then return nil end
  return string.sub(m, bar + 1)
end
local NOTES = {}
local function incr_field(key, field, n)  -- HINCRBY that resets a non-integer total
  local r = redis.pcall('HINCRBY', key, field, n)
  if type(r) == 'table' and r.err then redis.call('HSET', key, field, n) end
end
local function valid_prio(p)  -- the canonical decimal of a 32-bit int, as producers write it
  local n = tonumber(p)
  return n ~= nil and n >= -2147483648 and n <= 2147483647 and n == math.floor(n)
    and string.format('%d', n) == p
end
local function bury(q, id, reason)
  local qk = qkey(q)
  local body = redis.call('HGET', qk .. ':body', id)
  local m = redis.call('HGET', qk .. ':meta', id)
  if m then
    local bar = string.find(m, '|', 1, true)
    if bar then
      local uk = P .. ':uniq:' .. string.sub(m, bar + 1)
      if redis.call('GET', uk) == id then redis.call('DEL', uk) end
    end
    redis.call('HDEL', qk .. ':meta', id)
  end
  local what = 'dropped'
  if body then
    what = 'dead'
    redis.call('HDEL', qk .. ':body', id)
    redis.call('HSET', P .. ':dead:body', id, body)
    redis.call('HSET', P .. ':dead:info', id, fmt(NOW) .. '|' .. #q .. '|' .. q .. reason)
    redis.call('ZADD', P .. ':dead:idx', fmt(NOW), id)
    redis.call('ZADD', qk .. ':dead', fmt(NOW), id)
    incr_field(qk .. ':stats', 'failed', 1)
  end
  NOTES[#NOTES + 1] = what .. '|' .. #q .. '|' .. q .. '|' .. #id .. '|' .. id .. reason
end
local function push_ready(q, id, prio, front)
  if not valid_prio(prio) then return bury(q, id, 'corrupt stored priority (meta field)') end
  local qk = qkey(q)
  redis.call(front and 'LPUSH' or 'RPUSH', qk .. ':r:' .. prio, id)
  redis.call('ZADD', qk .. ':prios', -tonumber(prio), prio)
end
"""

_STORE = r"""
-- store one new message; lists/bodies are batched by the caller through `batch`
local function store(batch, id, q, prio, eta, uniq, body)
  local b = batch.bodies[q]
  if not b then b = {}; batch.bodies[q] = b end
  b[#b + 1] = id; b[#b + 1] = body
  if prio ~= '0' or uniq ~= '' then
    local m = prio; if uniq ~= '' then m = prio .. '|' .. uniq end
    redis.call('HSET', qkey(q) .. ':meta', id, m)
  end
  local at = tonumber(eta)
  if at and at > NOW then
    redis.call('ZADD', qkey(q) .. ':delayed', eta, id)
  else
    local lk = qkey(q) .. ':r:' .. prio
    local l = batch.lists[lk]
    if not l then l = {}; batch.lists[lk] = l; batch.prios[#batch.prios + 1] = {q, prio} end
    l[#l + 1] = id
  end
  batch.queues[q] = true
end
local function flush(batch)
  for q, b in pairs(batch.bodies) do chunked('HSET', qkey(q) .. ':body', b, 400) end
  for lk, ids in pairs(batch.lists) do chunked('RPUSH', lk, ids, 400) end
  for _, qp in ipairs(batch.prios) do
    redis.call('ZADD', qkey(qp[1]) .. ':prios', -tonumber(qp[2]), qp[2])
  end
  for q in pairs(batch.queues) do redis.call('SADD', P .. ':queues', q); wake(q) end
end
local function new_batch() return {bodies = {}, lists = {}, prios = {}, queues = {}} end
"""

# ARGV: P, now, idempotency_ttl, expected bind version ('' = no check),
#       then per envelope: id, queue, prio, eta, idempotency key, unique key, body.
# Returns nil when the bind version moved (publisher must reload bindings), else one entry per
# envelope: '' (stored) or the id already holding its idempotency / unique key.
ENQUEUE = _COMMON + _STORE + r"""
if ARGV[4] ~= '' and bind_version() ~= ARGV[4] then return nil end
local out, batch = {}, new_batch()
for i = 5, #ARGV, 7 do
  local id, idem, uniq = ARGV[i], ARGV[i + 4], ARGV[i + 5]
  local dup = nil
  if idem ~= '' and not redis.call('SET', P .. ':idem:' .. idem, id, 'NX', 'EX', ARGV[3]) then
    dup = redis.call('GET', P .. ':idem:' .. idem)
  end
  if not dup and uniq ~= '' and not redis.call('SET', P .. ':uniq:' .. uniq, id, 'NX') then
    dup = redis.call('GET', P .. ':uniq:' .. uniq)
    if idem ~= '' then redis.call('DEL', P .. ':idem:' .. idem) end
  end
  if dup then out[#out + 1] = dup else
    out[#out + 1] = ''
    store(batch, id, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], uniq, ARGV[i + 6])
  end
end
flush(batch)
return out
"""

# ARGV: P, now, lease seconds, limit, queues...
# Returns {seconds to the next delayed/lease deadline or '', {lease member, body, ...} per queue}.
FETCH = _COMMON + r"""
local deadline = fmt(NOW + tonumber(ARGV[3]))
local limit = tonumber(ARGV[4])
local token = redis.pcall('INCR', P .. ':seq')
if type(token) == 'table' then  -- a corrupt counter: restart it above any token handed out
  redis.call('SET', P .. ':seq', string.format('%d', NOW * 1000000))
  token = redis.call('INCR', P .. ':seq')
end
local now_s = fmt(NOW)
local result = {''}
local n = 0
for i = 5, #ARGV do
  local q = ARGV[i]; local qk = qkey(q)
  local due = redis.call('ZRANGEBYSCORE', qk .. ':delayed', '-inf', now_s, 'LIMIT', 0, 1000)
  if #due > 0 then
    for _, id in ipairs(due) do push_ready(q, id, (meta_of(q, id)), false) end
    chunked('ZREM', qk .. ':delayed', due, 400)
  end
  local lost = redis.call('ZRANGEBYSCORE', qk .. ':lease', '-inf', now_s, 'LIMIT', 0, 1000)
  if #lost > 0 then
    for _, m in ipairs(lost) do
      local id = lease_id(m)
      if id then push_ready(q, id, (meta_of(q, id)), true)
      else NOTES[#NOTES + 1] = 'dropped|' .. #q .. '|' .. q .. '|' .. #m .. '|' .. m ..
        'corrupt lease member (no token)' end
    end
    chunked('ZREM', qk .. ':lease', lost, 400)
  end
  local got = {}
  if n < limit then
    for _, p in ipairs(redis.call('ZRANGE', qk .. ':prios', 0, -1)) do
      local want = limit - n
      local ids = redis.call('LPOP', qk .. ':r:' .. p, want)
      if not ids or #ids < want then redis.call('ZREM', qk .. ':prios', p) end
      if ids then
        for _, id in ipairs(ids) do got[#got + 1] = id end
        n = n + #ids
      end
      if n >= limit then break end
    end
  end
  local arr = {}
  if #got > 0 then
    local bodies = chunked('HMGET', qk .. ':body', got, 400)
    local z = {}
    for j, id in ipairs(got) do
      if bodies[j] then
        local m = token .. '|' .. id
        z[#z + 1] = deadline; z[#z + 1] = m
        arr[#arr + 1] = m; arr[#arr + 1] = bodies[j]
      else
        bury(q, id, 'ready id without a stored body')
      end
    end
    if #z > 0 then chunked('ZADD', qk .. ':lease', z, 400) end
    -- a full batch may leave work behind: pass the wake-up on to the next idle consumer
    if n >= limit and redis.call('ZCARD', qk .. ':prios') > 0 then wake(q) end
  end
  result[#result + 1] = arr
end
if n == 0 then
  local nearest = nil
  for i = 5, #ARGV do
    for _, k in ipairs({':delayed', ':lease'}) do
      local first = redis.call('ZRANGE', qkey(ARGV[i]) .. k, 0, 0, 'WITHSCORES')
      if first[2] then
        local s = tonumber(first[2])
        if not nearest or s < nearest then nearest = s end
      end
    end
  end
  if nearest then result[1] = fmt(math.max(nearest - NOW, 0)) end
end
result[#result + 1] = NOTES
return result
"""

# ARGV: P, now, then groups: code (a|r|d|l), queue, count, then count items, each
#       a lease member (ack, release) or member, body, eta|reason (retry, dead).
SETTLE = _COMMON + r"""
local done, totals, woke = {}, {}, {}
local i = 3
while i <= #ARGV do
  local code, q, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local qk = qkey(q)
  local width = (code == 'a' or code == 'l') and 1 or 3
  local t = totals[q]; if not t then t = {0, 0}; totals[q] = t end
  local fin = done[q]; if not fin then fin = {}; done[q] = fin end
  for _ = 1, count do
    local m = ARGV[i]
    if redis.call('ZREM', qk .. ':lease', m) == 1 then
      local id = lease_id(m)
      if code == 'a' then
        fin[#fin + 1] = id; t[1] = t[1] + 1
      elseif code == 'd' then
        local body = ARGV[i + 1]
        if body == '' then body = redis.call('HGET', qk .. ':body', id) or '' end
        local did = id  -- event copies carry "<event id>@<group>": unique across groups
        redis.call('HSET', P .. ':dead:body', did, body)
        redis.call('HSET', P .. ':dead:info', did, fmt(NOW) .. '|' .. #q .. '|' .. q .. ARGV[i + 2])
        redis.call('ZADD', P .. ':dead:idx', fmt(NOW), did)
        redis.call('ZADD', qk .. ':dead', fmt(NOW), did)
        fin[#fin + 1] = id; t[2] = t[2] + 1
      elseif code == 'r' then
        t[2] = t[2] + 1
        if ARGV[i + 1] ~= '' then redis.call('HSET', qk .. ':body', id, ARGV[i + 1]) end
        local eta = tonumber(ARGV[i + 2]) or 0
        if eta > NOW then redis.call('ZADD', qk .. ':delayed', ARGV[i + 2], id)
        else push_ready(q, id, (meta_of(q, id)), false) end
        woke[q] = true
      else
        push_ready(q, id, (meta_of(q, id)), true); woke[q] = true
      end
    end
    i = i + width
  end
end
for q, ids in pairs(done) do
  if #ids > 0 then
    local qk = qkey(q)
    local metas = chunked('HMGET', qk .. ':meta', ids, 400)
    local had = {}
    for j, id in ipairs(ids) do
      local m = metas[j]
      if m then
        had[#had + 1] = id
        local bar = string.find(m, '|', 1, true)
        if bar then
          local uk = P .. ':uniq:' .. string.sub(m, bar + 1)
          if redis.call('GET', uk) == id then redis.call('DEL', uk) end
        end
      end
    end
    if #had > 0 then chunked('HDEL', qk .. ':meta', had, 400) end
    chunked('HDEL', qk .. ':body', ids, 400)
  end
end
for q, t in pairs(totals) do
  if t[1] > 0 then incr_field(qkey(q) .. ':stats', 'processed', t[1]) end
  if t[2] > 0 then incr_field(qkey(q) .. ':stats', 'failed', t[2]) end
end
for q in pairs(woke) do wake(q) end
return 0
"""

# ARGV: P, now, lease seconds, then pairs: queue, lease member.
EXTEND = _COMMON + r"""
local deadline = fmt(NOW + tonumber(ARGV[3]))
for i = 4, #ARGV, 2 do
  redis.call('ZADD', qkey(ARGV[i]) .. ':lease', 'XX', deadline, ARGV[i + 1])
end
return 0
"""

# ARGV: P, now, pattern, group.  Bumps the binding version only for a new binding.
BIND = _COMMON + r"""
if redis.call('HSETNX', P .. ':bindings', ARGV[3] .. '\n' .. ARGV[4], '1') == 1 then
  bind_version()
  redis.call('INCR', P .. ':bind:ver')
end
return 0
"""

# ARGV: P, now.  Returns {version, "pattern\ngroup", ...} read atomically.
BINDINGS = _COMMON + r"""
local out = {bind_version()}
for _, f in ipairs(redis.call('HKEYS', P .. ':bindings')) do out[#out + 1] = f end
return out
"""

# ARGV: P, now, key, period, limit.  Fixed window: count only allowed hits.
HIT_WINDOW = _COMMON + r"""
local period, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local w = math.floor(NOW / period)
local k = P .. ':rl:w:' .. ARGV[3] .. ':' .. ARGV[4] .. ':' .. string.format('%d', w)
local left = (w + 1) * period - NOW
local c = tonumber(redis.call('GET', k) or '0')
if not c then redis.call('DEL', k); c = 0 end  -- a corrupt counter starts the window over
if c >= limit then return {0, fmt(left)} end
redis.call('INCR', k)
if c == 0 then redis.call('PEXPIRE', k, math.ceil(left * 1000) + 1000) end
return {1, '0'}
"""

# ARGV: P, now, key, rate, burst.  Token bucket on the Redis clock (unless now is given).
TAKE_TOKEN = _COMMON + r"""
local rate, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
local k = P .. ':rl:b:' .. ARGV[3]
local st = redis.call('HMGET', k, 't', 'ts')
local tokens, ts = tonumber(st[1]), tonumber(st[2])
if not tokens or not ts then tokens = burst; ts = NOW end
tokens = math.min(burst, tokens + math.max(NOW - ts, 0) * rate)
local ok, wait = 0, 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 else wait = (1 - tokens) / rate end
redis.call('HSET', k, 't', string.format('%.17g', tokens), 'ts', fmt(NOW))
redis.call('PEXPIRE', k, math.ceil(burst / rate * 1000) + 1000)
return {ok, fmt(wait)}
"""

# ARGV: P, now, queue filter ('' = all), offset, limit.  Returns {id, body, info, ...}.
DEAD_LIST = _COMMON + r"""
local idx = P .. ':dead:idx'
if ARGV[3] ~= '' then idx = qkey(ARGV[3]) .. ':dead' end
local off = tonumber(ARGV[4])
local ids = redis.call('ZRANGE', idx, off, off + tonumber(ARGV[5]) - 1)
local out = {}
if #ids == 0 then return out end
local bodies = chunked('HMGET', P .. ':dead:body', ids, 400)
local infos = chunked('HMGET', P .. ':dead:info', ids, 400)
for j, id in ipairs(ids) do
  if bodies[j] and infos[j] then
    out[#out + 1] = id; out[#out + 1] = bodies[j]; out[#out + 1] = infos[j]
  end
end
return out
"""

_DEAD_DROP = r"""
local function drop_dead(id, q)
  if redis.call('HDEL', P .. ':dead:body', id) == 0 then return false end
  redis.call('HDEL', P .. ':dead:info', id)
  redis.call('ZREM', P .. ':dead:idx', id)
  redis.call('ZREM', qkey(q) .. ':dead', id)
  return true
end
"""

# ARGV: P, now, then per dead letter: dead id, queue, new id, prio, new body.
# Removes each dead letter and stores its fresh envelope in the same atomic step.
REPLAY = _COMMON + _STORE + _DEAD_DROP + r"""
local n, batch = 0, new_batch()
for i = 3, #ARGV, 5 do
  if drop_dead(ARGV[i], ARGV[i + 1]) then
    store(batch, ARGV[i + 2], ARGV[i + 1], ARGV[i + 3], '', '', ARGV[i + 4])
    n = n + 1
  end
end
flush(batch)
return n
"""

# ARGV: P, now, then pairs: dead id, queue.
PURGE = _COMMON + _DEAD_DROP + r"""
local n = 0
for i = 3, #ARGV, 2 do if drop_dead(ARGV[i], ARGV[i + 1]) then n = n + 1 end end
return n
"""

# ARGV: P, now.  Returns {queue, ready, delayed, in_flight, dead, processed, failed, ...}.
STATS = _COMMON + r"""
local out = {}
local now_s = fmt(NOW)
for _, q in ipairs(redis.call('SMEMBERS', P .. ':queues')) do
  local qk = qkey(q)
  local ready = 0
  for _, p in ipairs(redis.call('ZRANGE', qk .. ':prios', 0, -1)) do
    ready = ready + redis.call('LLEN', qk .. ':r:' .. p)
  end
  local due = redis.call('ZCOUNT', qk .. ':delayed', '-inf', now_s)
  local totals = redis.call('HMGET', qk .. ':stats', 'processed', 'failed')
  out[#out + 1] = q
  out[#out + 1] = ready + due
  out[#out + 1] = redis.call('ZCARD', qk .. ':delayed') - due
  out[#out + 1] = redis.call('ZCARD', qk .. ':lease')
  out[#out + 1] = redis.call('ZCARD', qk .. ':dead')
  out[#out + 1] = tonumber(totals[1]) or 0
  out[#out + 1] = tonumber(totals[2]) or 0
end
return out
"""
