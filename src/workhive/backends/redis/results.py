"""Task results and cancel requests of the ``redis`` backend.

Keys (no hash tag: each is used alone, so they spread over a cluster's nodes)::

    P:result:<id>   str   the task's result / status record (opaque bytes), PX ttl
    P:cancel:<id>   str   "1": a cancel request for a task that was not waiting, PX ttl

A cancel first tries to delete the message where it waits: one script per slot over every
registered queue (``{P}:queues``) looks in the queue's delayed set, its priority-0 ready list or
its ranked set (only the members of the message's own priority) and, when it finds the id
there, deletes its body and meta and frees its unique key, as an ack would. A leased message
is not touched: the flag key is set instead, and the worker running it polls
:meth:`RedisResults.cancelled` (one pipelined EXISTS per running id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workhive.backends.redis import lua
from workhive.backends.redis.connection import RedisConnection, Script
from workhive.backends.redis.keys import group

# ARGV after the queues: the id. Returns the queue index it was deleted from, or 0.
_CANCEL = Script(lua._QUEUES + r"""
local id = ARGV[A]
for qi = 1, NQ do
  local q = Q[qi]
  if redis.call('HEXISTS', q.body, id) == 1 then
    local gone = redis.call('ZREM', q.delayed, id) == 1
    if not gone then
      local p = meta_of(q, id)
      if p == '0' then
        gone = redis.call('LREM', q.ready, 1, id) > 0
      elseif valid_prio(p) then
        local score = int(-tonumber(p))
        for _, m in ipairs(redis.call('ZRANGEBYSCORE', q.ranked, score, score)) do
          if string.sub(m, 16) == id then
            redis.call('ZREM', q.ranked, m)
            gone = true
            break
          end
        end
      end
    end
    if gone then
      local m = redis.call('HGET', q.meta, id)
      if m then release_unique(q, m, id); redis.call('HDEL', q.meta, id) end
      redis.call('HDEL', q.body, id)
      return qi
    end
  end
end
return 0
""")


class RedisResults:
    """:class:`~workhive.backend.SupportsResults` and :class:`~workhive.backend.SupportsCancel`
    over one :class:`RedisConnection`."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    def _result_key(self, task_id: str) -> str:
        return f"{self._conn.keys.prefix}:result:{task_id}"

    def _cancel_key(self, task_id: str) -> str:
        return f"{self._conn.keys.prefix}:cancel:{task_id}"

    async def store_result(self, task_id: str, record: bytes, ttl: float) -> None:
        key, ms = self._result_key(task_id), max(1, int(ttl * 1000))
        await self._conn.guard(lambda r: r.set(key, record, px=ms))

    async def get_result(self, task_id: str) -> bytes | None:
        key = self._result_key(task_id)
        value: bytes | None = await self._conn.guard(lambda r: r.get(key))
        return value

    async def cancel(self, task_id: str, ttl: float) -> bool:
        conn = self._conn
        for _, qs in group(conn.keys, await conn.registered_queues(), str):
            keys, args = conn.queue_call(qs)
            found = await conn.run(_CANCEL, keys, [*args, task_id])
            if found:
                return True
        key, ms = self._cancel_key(task_id), max(1, int(ttl * 1000))
        await conn.guard(lambda r: r.set(key, b"1", px=ms))
        return False

    async def cancelled(self, task_ids: Sequence[str]) -> set[str]:
        if not task_ids:
            return set()
        ids = list(task_ids)

        async def check(r: Any) -> list[int]:
            async with r.pipeline(transaction=False) as pipe:
                for task_id in ids:
                    pipe.exists(self._cancel_key(task_id))
                found: list[int] = await pipe.execute()
                return found

        flags = await self._conn.guard(check)
        return {task_id for task_id, flag in zip(ids, flags, strict=True) if flag}
