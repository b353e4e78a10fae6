"""Lua scripts of the ``redis`` backend: every multi-step state change is one script call.

Why Lua: a fetch must promote due/expired messages, pop by priority, lease and read bodies
without another worker slipping in between, and it must cost one round trip for a whole batch.
Scripts run atomically in Redis, so each call below is one atomic step for its whole batch.

Every key a script touches arrives in ``KEYS`` (names in :mod:`workhive.backends.redis.keys`),
so the scripts run unchanged on Redis Cluster: a call only ever carries keys of one slot. Queue
scripts take one *bundle* of keys per queue (``keys.BUNDLE``) and ``ARGV = now, number of
queues, queue names..., script arguments...``; ``now`` empty means "use the Redis clock", so
every client agrees on lease deadlines. Arguments refer to a queue by its position (1-based).

A lease member carries a fresh token per fetch, so a settle or extend from a worker whose lease
expired (and whose message was re-fetched by someone else) finds no member and does nothing.

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

_CLOCK = r"""
local NOW
if ARGV[1] ~= '' then NOW = tonumber(ARGV[1]) else
  local t = redis.call('TIME'); NOW = tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local function fmt(x) return string.format('%.6f', x) end
local function int(x) return string.format('%d', x) end
local NOTES = {}
local function incr_field(key, field, n)  -- HINCRBY that resets a non-integer total
  local r = redis.pcall('HINCRBY', key, field, n)
  if type(r) == 'table' and r.err then redis.call('HSET', key, field, n) end
end
local function bind_version(k)  -- a corrupt version restarts above any value handed out
  local v = redis.call('GET', k) or '0'
  if #v > 18 or not string.match(v, '^%d+$') then
    v = int(NOW * 1000000); redis.call('SET', k, v)
  end
  return v
end
"""

_QUEUES = _CLOCK + r"""
local OFFSET = 4503599627370496  -- 2^52: ready sequences are OFFSET + back / OFFSET - front
local NQ = tonumber(ARGV[2])
local A = 3 + NQ  -- first script argument
local Q = {}
for i = 1, NQ do
  local b = (i - 1) * 13
  Q[i] = {name = ARGV[2 + i], body = KEYS[b + 1], meta = KEYS[b + 2], ready = KEYS[b + 3],
          ranked = KEYS[b + 4], delayed = KEYS[b + 5], lease = KEYS[b + 6], wake = KEYS[b + 7],
          stats = KEYS[b + 8], seq = KEYS[b + 9], uniq = KEYS[b + 10], dead = KEYS[b + 11],
          dbody = KEYS[b + 12], dinfo = KEYS[b + 13]}
end
local function counter(q, field, n)  -- HINCRBY that restarts a corrupt or runaway counter
  local r = redis.pcall('HINCRBY', q.seq, field, n)
  if type(r) ~= 'number' or r < n or r >= 2251799813685248 then
    r = math.floor(NOW * 100000) + n  -- above anything handed out before the corruption
    redis.call('HSET', q.seq, field, int(r))
  end
  return r
end
local function meta_of(q, id)
  local m = redis.call('HGET', q.meta, id)
  if not m then return '0', nil end
  local i = string.find(m, '|', 1, true)
  if i then return string.sub(m, 1, i - 1), string.sub(m, i + 1) end
  return m, nil
end
local function wake(q)
  redis.call('RPUSH', q.wake, '1')
  redis.call('LTRIM', q.wake, -1, -1)
end
local function chunked(cmd, key, items, step)
  local out = {}
  for s = 1, #items, step do
    local r = redis.call(cmd, key, unpack(items, s, math.min(s + step - 1, #items)))
    if type(r) == 'table' then for _, v in ipairs(r) do out[#out + 1] = v end end
  end
  return out
end
local function after_bar(m)  -- "<token>|id" or "<seq>|id" -> id
  local bar = string.find(m, '|', 1, true)
  if not bar then return nil end
  return string.sub(m, bar + 1)
end
local function valid_prio(p)  -- the canonical decimal of a 32-bit int, as producers write it
  local n = tonumber(p)
  return n ~= nil and n >= -2147483648 and n <= 2147483647 and n == math.floor(n)
    and int(n) == p
end
local function note(what, q, id, reason)
  NOTES[#NOTES + 1] = what .. '|' .. #q.name .. '|' .. q.name .. '|' .. #id .. '|' .. id .. reason
end
local function release_unique(q, m, id)  -- m: the message's meta value
  local bar = string.find(m, '|', 1, true)
  if bar then
    local uk = string.sub(m, bar + 1)
    if redis.call('HGET', q.uniq, uk) == id then redis.call('HDEL', q.uniq, uk) end
  end
end
local function keep_dead(q, id, body, reason)
  redis.call('HSET', q.dbody, id, body)
  redis.call('HSET', q.dinfo, id, fmt(NOW) .. '|' .. #q.name .. '|' .. q.name .. reason)
  redis.call('ZADD', q.dead, fmt(NOW), id)
end
local function bury(q, id, reason)
  local body = redis.call('HGET', q.body, id)
  local m = redis.call('HGET', q.meta, id)
  if m then release_unique(q, m, id); redis.call('HDEL', q.meta, id) end
  local what = 'dropped'
  if body then
    what = 'dead'
    redis.call('HDEL', q.body, id)
    keep_dead(q, id, body, reason)
    incr_field(q.stats, 'failed', 1)
  end
  note(what, q, id, reason)
end
-- make ids (priorities alongside) ready: priority 0 in the T:ready list, any other in the
-- T:ranked zset; behind everything of their priority or, with `front`, before everything; a
-- corrupt priority sends its message to the dead letters
local function add_ready(q, ids, prios, front)
  local plain, z, ranked = {}, {}, {}
  for j, id in ipairs(ids) do
    local p = prios[j]
    if p == '0' then plain[#plain + 1] = id
    elseif valid_prio(p) then ranked[#ranked + 1] = j
    else bury(q, id, 'corrupt stored priority (meta field)') end
  end
  if #plain > 0 then chunked(front and 'LPUSH' or 'RPUSH', q.ready, plain, 400) end
  local n = #ranked
  if n == 0 then return end
  local last = counter(q, front and 'f' or 'b', n)
  local first = front and (OFFSET - last) or (OFFSET + last - n + 1)
  for k, j in ipairs(ranked) do
    z[#z + 1] = int(-tonumber(prios[j]))
    z[#z + 1] = string.format('%014x|', first + k - 1) .. ids[j]
  end
  chunked('ZADD', q.ranked, z, 400)
end
-- pop up to `want` ids of T:ranked with scores in [lo, hi]; corrupt members are dropped
local function pop_ranked(q, lo, hi, want, got)
  local ms = redis.call('ZRANGEBYSCORE', q.ranked, lo, hi, 'LIMIT', 0, want)
  if #ms == 0 then return end
  chunked('ZREM', q.ranked, ms, 400)
  for _, m in ipairs(ms) do
    if #m > 15 and string.byte(m, 15) == 124 then got[#got + 1] = string.sub(m, 16)
    else note('dropped', q, m, 'corrupt ready entry (no sequence)') end
  end
end
"""

_STORE = r"""
-- store one new message; bodies and ready entries are batched per queue until `flush`
local function new_batch() return {bodies = {}, ready = {}, touched = {}} end
local function store(S, qi, id, prio, eta, uniq, body)
  local q = Q[qi]
  local b = S.bodies[qi]
  if not b then b = {}; S.bodies[qi] = b end
  b[#b + 1] = id; b[#b + 1] = body
  if prio ~= '0' or uniq ~= '' then
    local m = prio; if uniq ~= '' then m = prio .. '|' .. uniq end
    redis.call('HSET', q.meta, id, m)
  end
  local at = tonumber(eta)
  if at and at > NOW then
    redis.call('ZADD', q.delayed, eta, id)
  else
    local r = S.ready[qi]
    if not r then r = {{}, {}}; S.ready[qi] = r end
    r[1][#r[1] + 1] = id; r[2][#r[2] + 1] = prio
  end
  S.touched[qi] = true
end
local function flush(S, registry)
  for qi, b in pairs(S.bodies) do chunked('HSET', Q[qi].body, b, 400) end
  for qi, r in pairs(S.ready) do add_ready(Q[qi], r[1], r[2], false) end
  local names = {}
  for qi in pairs(S.touched) do wake(Q[qi]); names[#names + 1] = Q[qi].name end
  if registry and #names > 0 then redis.call('SADD', registry, unpack(names)) end
end
"""

# ARGV after the queues: idempotency_ttl, expected bind version, KEYS index of the bind version
# (0: no check), KEYS index of the queue registry (0: the caller registers), then per envelope:
# queue index, id, prio, eta, KEYS index of its idempotency key (0: none), unique key, body.
# Returns nil when the bind version moved (the publisher must reload bindings), else one entry
# per envelope: '' (stored) or '=' .. the id already holding its idempotency / unique key.
ENQUEUE = _QUEUES + _STORE + r"""
local ttl, expect = ARGV[A], ARGV[A + 1]
local vk, rk = tonumber(ARGV[A + 2]), tonumber(ARGV[A + 3])
if vk > 0 and bind_version(KEYS[vk]) ~= expect then return nil end
local out, S = {}, new_batch()
for i = A + 4, #ARGV, 7 do
  local qi, id, ik, uniq = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 4]), ARGV[i + 5]
  local q = Q[qi]
  local dup = nil
  if ik > 0 and not redis.call('SET', KEYS[ik], id, 'NX', 'EX', ttl) then
    dup = redis.call('GET', KEYS[ik]) or ''
  end
  if not dup and uniq ~= '' and redis.call('HSETNX', q.uniq, uniq, id) == 0 then
    dup = redis.call('HGET', q.uniq, uniq) or ''
    if ik > 0 then redis.call('DEL', KEYS[ik]) end
  end
  if dup then out[#out + 1] = '=' .. dup else
    out[#out + 1] = ''
    store(S, qi, id, ARGV[i + 2], ARGV[i + 3], uniq, ARGV[i + 6])
  end
end
flush(S, rk > 0 and KEYS[rk] or nil)
return out
"""

# ARGV after the queues: lease seconds, limit.
# Returns {seconds to the next delayed/lease deadline or '', {lease member, body, ...} per
# queue..., notes}.
FETCH = _QUEUES + r"""
local deadline = fmt(NOW + tonumber(ARGV[A]))
local limit = tonumber(ARGV[A + 1])
local now_s = fmt(NOW)
local result = {''}
local n = 0
for i = 1, NQ do
  local q = Q[i]
  local due = redis.call('ZRANGEBYSCORE', q.delayed, '-inf', now_s, 'LIMIT', 0, 1000)
  if #due > 0 then
    local ps = {}
    for j, id in ipairs(due) do ps[j] = (meta_of(q, id)) end
    add_ready(q, due, ps, false)
    chunked('ZREM', q.delayed, due, 400)
  end
  local lost = redis.call('ZRANGEBYSCORE', q.lease, '-inf', now_s, 'LIMIT', 0, 1000)
  if #lost > 0 then
    local ids, ps = {}, {}
    for _, m in ipairs(lost) do
      local id = after_bar(m)
      if id then ids[#ids + 1] = id; ps[#ps + 1] = (meta_of(q, id))
      else note('dropped', q, m, 'corrupt lease member (no token)') end
    end
    add_ready(q, ids, ps, true)
    chunked('ZREM', q.lease, lost, 400)
  end
  local arr = {}
  if n < limit then
    local got = {}  -- priorities above 0, then 0, then below 0
    pop_ranked(q, '-inf', '(0', limit - n, got)
    if #got < limit - n then
      local ids = redis.call('LPOP', q.ready, limit - n - #got)
      if ids then for _, id in ipairs(ids) do got[#got + 1] = id end end
    end
    if #got < limit - n then pop_ranked(q, '0', '+inf', limit - n - #got, got) end
    n = n + #got
    if #got > 0 then
      local token = int(counter(q, 't', 1))
      local bodies = chunked('HMGET', q.body, got, 400)
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
      if #z > 0 then chunked('ZADD', q.lease, z, 400) end
      -- a full batch may leave work behind: pass the wake-up on to the next idle consumer
      if n >= limit and (redis.call('LLEN', q.ready) > 0 or redis.call('ZCARD', q.ranked) > 0)
        then wake(q) end
    end
  end
  result[#result + 1] = arr
end
if n == 0 then
  local nearest = nil
  for i = 1, NQ do
    for _, k in ipairs({Q[i].delayed, Q[i].lease}) do
      local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
      if first[2] then
        local s = tonumber(first[2])
        if s and (not nearest or s < nearest) then nearest = s end
      end
    end
  end
  if nearest then result[1] = fmt(math.max(nearest - NOW, 0)) end
end
result[#result + 1] = NOTES
return result
"""

# ARGV after the queues: groups of code (a|r|d|l), queue index, count, then count items, each
# a lease member (ack, release) or member, body, eta|reason (retry, dead).
SETTLE = _QUEUES + r"""
local done, totals, back, front, woke = {}, {}, {}, {}, {}
local i = A
while i <= #ARGV do
  local code, qi, count = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  i = i + 3
  local q = Q[qi]
  local width = (code == 'a' or code == 'l') and 1 or 3
  local t = totals[qi]; if not t then t = {0, 0}; totals[qi] = t end
  local fin = done[qi]; if not fin then fin = {}; done[qi] = fin end
  for _ = 1, count do
    local m = ARGV[i]
    if redis.call('ZREM', q.lease, m) == 1 then
      local id = after_bar(m)
      if code == 'a' then
        fin[#fin + 1] = id; t[1] = t[1] + 1
      elseif code == 'd' then
        local body = ARGV[i + 1]
        if body == '' then body = redis.call('HGET', q.body, id) or '' end
        keep_dead(q, id, body, ARGV[i + 2])
        fin[#fin + 1] = id; t[2] = t[2] + 1
      elseif code == 'r' then
        t[2] = t[2] + 1
        if ARGV[i + 1] ~= '' then redis.call('HSET', q.body, id, ARGV[i + 1]) end
        local eta = tonumber(ARGV[i + 2]) or 0
        woke[qi] = true
        if eta > NOW then redis.call('ZADD', q.delayed, ARGV[i + 2], id)
        else
          local b = back[qi]; if not b then b = {{}, {}}; back[qi] = b end
          b[1][#b[1] + 1] = id; b[2][#b[2] + 1] = (meta_of(q, id))
        end
      else
        woke[qi] = true
        local f = front[qi]; if not f then f = {{}, {}}; front[qi] = f end
        f[1][#f[1] + 1] = id; f[2][#f[2] + 1] = (meta_of(q, id))
      end
    end
    i = i + width
  end
end
for qi, ids in pairs(done) do
  if #ids > 0 then
    local q = Q[qi]
    local metas = chunked('HMGET', q.meta, ids, 400)
    local had = {}
    for j, id in ipairs(ids) do
      if metas[j] then had[#had + 1] = id; release_unique(q, metas[j], id) end
    end
    if #had > 0 then chunked('HDEL', q.meta, had, 400) end
    chunked('HDEL', q.body, ids, 400)
  end
end
for qi, f in pairs(front) do add_ready(Q[qi], f[1], f[2], true) end
for qi, b in pairs(back) do add_ready(Q[qi], b[1], b[2], false) end
for qi in pairs(woke) do wake(Q[qi]) end
for qi, t in pairs(totals) do
  if t[1] > 0 then incr_field(Q[qi].stats, 'processed', t[1]) end
  if t[2] > 0 then incr_field(Q[qi].stats, 'failed', t[2]) end
end
return 0
"""

# ARGV after the queues: lease seconds, then pairs: queue index, lease member.
EXTEND = _QUEUES + r"""
local deadline = fmt(NOW + tonumber(ARGV[A]))
for i = A + 1, #ARGV, 2 do
  redis.call('ZADD', Q[tonumber(ARGV[i])].lease, 'XX', deadline, ARGV[i + 1])
end
return 0
"""

# KEYS: bindings, bind version.  ARGV: now, pattern, group.  Bumps the version only for a new
# binding.
BIND = _CLOCK + r"""
if redis.call('HSETNX', KEYS[1], ARGV[2] .. '\n' .. ARGV[3], '1') == 1 then
  bind_version(KEYS[2])
  redis.call('INCR', KEYS[2])
end
return 0
"""

# KEYS: bindings, bind version.  ARGV: now.  Returns {version, "pattern\ngroup", ...} read
# atomically.
BINDINGS = _CLOCK + r"""
local out = {bind_version(KEYS[2])}
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do out[#out + 1] = f end
return out
"""

# KEYS: bind version.  ARGV: now.  The version alone (a cluster publish checks it first).
BIND_VERSION = _CLOCK + r"""
return bind_version(KEYS[1])
"""

# KEYS: the window's hash.  ARGV: now, period, limit.  Fixed window aligned to multiples of the
# period; only allowed hits count; a corrupt count starts the window over.
HIT_WINDOW = _CLOCK + r"""
local period, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local w = math.floor(NOW / period)
local left = (w + 1) * period - NOW
local st = redis.call('HMGET', KEYS[1], 'w', 'c')
local c = 0
if st[1] == int(w) then
  c = tonumber(st[2])
  if not c or c < 0 or c ~= math.floor(c) or c > 9007199254740992 then c = 0 end
end
if c >= limit then return {0, fmt(left)} end
redis.call('HSET', KEYS[1], 'w', int(w), 'c', int(c + 1))
if c == 0 then redis.call('PEXPIRE', KEYS[1], math.ceil(left * 1000) + 1000) end
return {1, '0'}
"""

# KEYS: the bucket's hash.  ARGV: now, rate, burst.  Token bucket on the Redis clock (unless now
# is given).
TAKE_TOKEN = _CLOCK + r"""
local rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
local st = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens, ts = tonumber(st[1]), tonumber(st[2])
if not tokens or not ts or tokens ~= tokens or ts ~= ts then tokens = burst; ts = NOW end
tokens = math.min(burst, tokens + math.max(NOW - ts, 0) * rate)
local ok, wait = 0, 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', fmt(NOW))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {ok, fmt(wait)}
"""

# ARGV after the queues: first, last rank.  Returns per queue {id, failed_at, ...}, oldest first.
DEAD_RANGE = _QUEUES + r"""
local out = {}
for i = 1, NQ do
  out[i] = redis.call('ZRANGE', Q[i].dead, ARGV[A], ARGV[A + 1], 'WITHSCORES')
end
return out
"""

# ARGV after the queues: pairs of queue index, dead id.  Returns {body, info, ...} per pair
# (nil where the letter is gone).
DEAD_GET = _QUEUES + r"""
local out = {}
for i = A, #ARGV, 2 do
  local q = Q[tonumber(ARGV[i])]
  out[#out + 1] = redis.call('HGET', q.dbody, ARGV[i + 1])
  out[#out + 1] = redis.call('HGET', q.dinfo, ARGV[i + 1])
end
return out
"""

_DEAD_DROP = r"""
local function drop_dead(q, id)
  if redis.call('HDEL', q.dbody, id) == 0 then return false end
  redis.call('HDEL', q.dinfo, id)
  redis.call('ZREM', q.dead, id)
  return true
end
"""

# ARGV after the queues: per dead letter: queue index, dead id, new id, prio, new body.
# Removes each dead letter and stores its fresh envelope in the same atomic step.
REPLAY = _QUEUES + _STORE + _DEAD_DROP + r"""
local n, S = 0, new_batch()
for i = A, #ARGV, 5 do
  local qi = tonumber(ARGV[i])
  if drop_dead(Q[qi], ARGV[i + 1]) then
    store(S, qi, ARGV[i + 2], ARGV[i + 3], '', '', ARGV[i + 4])
    n = n + 1
  end
end
flush(S, nil)
return n
"""

# ARGV after the queues: pairs of queue index, dead id.
PURGE = _QUEUES + _DEAD_DROP + r"""
local n = 0
for i = A, #ARGV, 2 do if drop_dead(Q[tonumber(ARGV[i])], ARGV[i + 1]) then n = n + 1 end end
return n
"""

# ARGV after the queues: none.  Returns {ready, delayed, in_flight, dead, processed, failed}
# per queue, in order. A lease that ran out counts as ready, as in the task browser and the SQL
# backends: the next fetch takes it back.
STATS = _QUEUES + r"""
local out = {}
local now_s = fmt(NOW)
for i = 1, NQ do
  local q = Q[i]
  local due = redis.call('ZCOUNT', q.delayed, '-inf', now_s)
  local lapsed = redis.call('ZCOUNT', q.lease, '-inf', now_s)  -- the next fetch takes them back
  local totals = redis.call('HMGET', q.stats, 'processed', 'failed')
  out[#out + 1] = redis.call('LLEN', q.ready) + redis.call('ZCARD', q.ranked) + due + lapsed
  out[#out + 1] = redis.call('ZCARD', q.delayed) - due
  out[#out + 1] = redis.call('ZCARD', q.lease) - lapsed
  out[#out + 1] = redis.call('ZCARD', q.dead)
  out[#out + 1] = math.floor(tonumber(totals[1]) or 0)
  out[#out + 1] = math.floor(tonumber(totals[2]) or 0)
end
return out
"""

# ARGV after the queues: KEYS index of the queue registry (0: the caller registers), then per
# letter: queue index, id, body, reason, failed_at.  An id already dead in its queue is left as
# it is.
KEEP_DEAD = _QUEUES + r"""
local rk = tonumber(ARGV[A])
local n, names = 0, {}
for i = A + 1, #ARGV, 5 do
  local q, id = Q[tonumber(ARGV[i])], ARGV[i + 1]
  if redis.call('HSETNX', q.dbody, id, ARGV[i + 2]) == 1 then
    local at = fmt(tonumber(ARGV[i + 4]))
    redis.call('HSET', q.dinfo, id, at .. '|' .. #q.name .. '|' .. q.name .. ARGV[i + 3])
    redis.call('ZADD', q.dead, at, id)
    names[#names + 1] = q.name
    n = n + 1
  end
end
if rk > 0 and #names > 0 then redis.call('SADD', KEYS[rk], unpack(names)) end
return n
"""

# KEYS: the claim.  ARGV: now, holder, ttl in ms ('' = none).  Returns the owner after the call.
CLAIM_KEY = r"""
local ok
if ARGV[3] == '' then ok = redis.call('SET', KEYS[1], ARGV[2], 'NX')
else ok = redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) end
if ok then return ARGV[2] end
return redis.call('GET', KEYS[1])
"""

# KEYS: the claim.  ARGV: now, holder.  Deletes the claim only while ``holder`` owns it.
RELEASE_KEY = r"""
if redis.call('GET', KEYS[1]) == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 0
"""
