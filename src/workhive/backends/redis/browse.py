"""Listing, finding and hurrying the tasks of a queue in Redis (the dashboard's task browser).

States follow the other backends (:mod:`workhive.backends.sqlite.browse`): *ready* tasks can
be fetched now, *delayed* ones wait for their eta, *in flight* ones are leased until their
deadline. Redis keeps a task that became due, or whose lease ran out, where it was until the
next fetch moves it (:mod:`workhive.backends.redis.lua`), so those are listed as ready here,
as SQLite and memory list them. The ready listing is in the order a fetch takes the stored
ready tasks (higher priorities first, FIFO within one), followed by the tasks the next fetch
files in: expired leases (by deadline), then due delayed tasks (by eta).

Every call is one read-only (``run_now``: one writing) script over the queue's keys
(:mod:`workhive.backends.redis.keys`), so a page and its total are one consistent snapshot and
the calls run unchanged on Redis Cluster, where a queue's keys share one slot. Costs: a page
is ``ZRANGEBYSCORE ... LIMIT`` / ``LRANGE`` from its offset plus one ``HMGET`` of its bodies,
O(offset + page); at most :data:`PAGE` tasks are read per call, so a big page is several
calls. A find by id is O(1) for delayed tasks and O(tasks in flight) otherwise (lease members
carry a token, so the lease set is read in chunks). A search (``Inspector.tasks`` with a
needle) pages through at most :data:`~workhive.inspector.SEARCH_LIMIT` tasks, 500 per call,
decoding each in the dashboard's process; Redis serves other clients between calls.
"""

from __future__ import annotations

from workhive.backends.redis import lua
from workhive.backends.redis.connection import RedisConnection, Script
from workhive.browse import STATES, QueuedTask, TaskState

#: most tasks one script call reads (bounds how long one call holds Redis)
PAGE = 500

_NOW = r"""
local now_s = fmt(NOW)
local NOWR = tonumber(now_s)  -- NOW as the range bounds below see it
"""

# ARGV after the queue: state, offset, limit.  Returns {total, id, body or nil, at, ...}.
_BROWSE = Script(lua._QUEUES + _NOW + r"""
local q = Q[1]
local state, skip, want = ARGV[A], tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2])
local total, ids, ats = 0, {}, {}
-- one part of the listing: `count` entries, of which read(from, n) appends n from `from` on
local function part(count, read)
  total = total + count
  if skip >= count then skip = skip - count; return end
  local n = math.min(want - #ids, count - skip)
  if n > 0 then read(skip, n) end
  skip = 0
end
local function ranked(lo, hi)  -- members "<seq>|id"; a corrupt one is shown as it is
  return function(from, n)
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', q.ranked, lo, hi, 'LIMIT', from, n)) do
      local id = m
      if #m > 15 and string.byte(m, 15) == 124 then id = string.sub(m, 16) end
      ids[#ids + 1] = id; ats[#ats + 1] = '0'
    end
  end
end
local function plain(from, n)
  for _, id in ipairs(redis.call('LRANGE', q.ready, from, from + n - 1)) do
    ids[#ids + 1] = id; ats[#ats + 1] = '0'
  end
end
local function scored(key, lo, hi, leased, ready)  -- lease members are "<token>|id"
  return function(from, n)
    local r = redis.call('ZRANGEBYSCORE', key, lo, hi, 'WITHSCORES', 'LIMIT', from, n)
    for j = 1, #r, 2 do
      ids[#ids + 1] = leased and (after_bar(r[j]) or r[j]) or r[j]
      ats[#ats + 1] = ready and '0' or r[j + 1]
    end
  end
end
local later = '(' .. now_s
if state == 'ready' then
  part(redis.call('ZCOUNT', q.ranked, '-inf', '(0'), ranked('-inf', '(0'))
  part(redis.call('LLEN', q.ready), plain)
  part(redis.call('ZCOUNT', q.ranked, '0', '+inf'), ranked('0', '+inf'))
  part(redis.call('ZCOUNT', q.lease, '-inf', now_s), scored(q.lease, '-inf', now_s, true, true))
  part(redis.call('ZCOUNT', q.delayed, '-inf', now_s),
       scored(q.delayed, '-inf', now_s, false, true))
elseif state == 'delayed' then
  part(redis.call('ZCOUNT', q.delayed, later, '+inf'),
       scored(q.delayed, later, '+inf', false, false))
else
  part(redis.call('ZCOUNT', q.lease, later, '+inf'), scored(q.lease, later, '+inf', true, false))
end
local out = {total}
if #ids > 0 then
  local bodies = chunked('HMGET', q.body, ids, 400)
  for j, id in ipairs(ids) do
    out[#out + 1] = id; out[#out + 1] = bodies[j]; out[#out + 1] = ats[j]
  end
end
return out
""")

# ARGV after the queue: the id.  Returns nil (no such task) or {body, state, at}.  A stored
# task is delayed, leased or ready, so one that is neither of the first two is ready.
_FIND = Script(lua._QUEUES + _NOW + r"""
local q, id = Q[1], ARGV[A]
local body = redis.call('HGET', q.body, id)
if not body then return nil end
local eta = redis.call('ZSCORE', q.delayed, id)
if eta then
  if tonumber(eta) > NOWR then return {body, 'delayed', eta} end
  return {body, 'ready', '0'}
end
local n = redis.call('ZCARD', q.lease)
for s = 0, n - 1, 1000 do
  local r = redis.call('ZRANGE', q.lease, s, s + 999, 'WITHSCORES')
  for j = 1, #r, 2 do
    if after_bar(r[j]) == id then
      if tonumber(r[j + 1]) > NOWR then return {body, 'in_flight', r[j + 1]} end
      return {body, 'ready', '0'}
    end
  end
end
return {body, 'ready', '0'}
""")

# ARGV after the queue: the id.  Returns 1 when a delayed task became ready (behind the ready
# tasks of its priority, and a waiting consumer is woken), 0 when it is not delayed any more.
_RUN_NOW = Script(lua._QUEUES + _NOW + r"""
local q, id = Q[1], ARGV[A]
local eta = tonumber(redis.call('ZSCORE', q.delayed, id))
if not eta or eta <= NOWR or redis.call('HEXISTS', q.body, id) == 0 then return 0 end
redis.call('ZREM', q.delayed, id)
add_ready(q, {id}, {(meta_of(q, id))}, false)
wake(q)
return 1
""")


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace")


class RedisBrowse:
    """:class:`~workhive.browse.SupportsBrowse` over one :class:`RedisConnection` (deleting a
    waiting task is the backend's ``cancel``). Coroutine-safe, like the rest of the backend."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    async def browse(self, queue: str, state: TaskState, limit: int,
                     offset: int) -> tuple[list[QueuedTask], int]:
        """A page of the queue's tasks in ``state`` and how many there are (see the module
        docstring for the order). A page above :data:`PAGE` tasks takes several calls, each
        atomic, so a concurrent fetch may shift it."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got limit={limit!r} "
                             f"offset={offset!r}")
        rows: list[QueuedTask] = []
        while True:
            want = min(limit - len(rows), PAGE)
            keys, args = self._conn.queue_call([queue])
            raw = await self._conn.run(_BROWSE, keys, [*args, state, offset + len(rows), want])
            total = int(raw[0])
            got = [QueuedTask(_text(i), queue, state, body or b"", float(at))
                   for i, body, at in zip(raw[1::3], raw[2::3], raw[3::3], strict=True)]
            rows += got
            if len(got) < want or len(rows) >= limit:
                return rows, total

    async def find_task(self, queue: str, task_id: str) -> QueuedTask | None:
        keys, args = self._conn.queue_call([queue])
        raw = await self._conn.run(_FIND, keys, [*args, task_id])
        if raw is None:
            return None
        body, state, at = raw
        found: TaskState = "delayed" if state == b"delayed" else (
            "in_flight" if state == b"in_flight" else "ready")
        return QueuedTask(task_id, queue, found, body, float(at))

    async def run_now(self, queue: str, task_id: str) -> bool:
        keys, args = self._conn.queue_call([queue])
        return bool(await self._conn.run(_RUN_NOW, keys, [*args, task_id]))


__all__ = ["PAGE", "RedisBrowse"]
