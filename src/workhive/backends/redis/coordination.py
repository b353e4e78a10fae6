"""What the ``redis`` backend stores for a composite's transport (RabbitMQ): key claims and
dead letters (see :class:`workhive.backend.Coordination`).

Claims live under ``P:claim:<key>``, a key space of their own, so a transport's unique and
idempotency keys never collide with this backend's ``P:uniq:`` / ``P:idem:`` keys. A claim is
one ``SET NX PX``: Redis itself expires it, so a claim whose ttl ran out is free without any
sweep (on the Redis clock, not the test clock scripts take). Release compares and deletes in
one script, so a holder whose claim expired and was taken over never drops the new owner's.

Kept dead letters are written into exactly the structures a settle's "dead" branch writes
(:mod:`workhive.backends.redis.lua`), so listing, purge, replay and the per-queue ``dead``
count of ``stats`` treat them like this backend's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from workhive.backend import DeadLetter
from workhive.backends.redis import lua
from workhive.backends.redis.base import RedisBase, Script

# ARGV: P, now, key, holder, ttl in ms ('' = none).  Returns the owner after the call.
CLAIM_KEY = lua._COMMON + r"""
local k = P .. ':claim:' .. ARGV[3]
local ok
if ARGV[5] == '' then ok = redis.call('SET', k, ARGV[4], 'NX')
else ok = redis.call('SET', k, ARGV[4], 'NX', 'PX', ARGV[5]) end
if ok then return ARGV[4] end
return redis.call('GET', k)
"""

# ARGV: P, now, key, holder.  Deletes the claim only while ``holder`` owns it.
RELEASE_KEY = lua._COMMON + r"""
local k = P .. ':claim:' .. ARGV[3]
if redis.call('GET', k) == ARGV[4] then redis.call('DEL', k) end
return 0
"""

# ARGV: P, now, then per letter: id, queue, body, reason, failed_at.  An id already dead is
# left as it is.  The queue joins P:queues so stats reports its dead count.
KEEP_DEAD = lua._COMMON + r"""
local n = 0
for i = 3, #ARGV, 5 do
  local id, q = ARGV[i], ARGV[i + 1]
  if redis.call('HSETNX', P .. ':dead:body', id, ARGV[i + 2]) == 1 then
    local at = fmt(tonumber(ARGV[i + 4]))
    redis.call('HSET', P .. ':dead:info', id, at .. '|' .. #q .. '|' .. q .. ARGV[i + 3])
    redis.call('ZADD', P .. ':dead:idx', at, id)
    redis.call('ZADD', qkey(q) .. ':dead', at, id)
    redis.call('SADD', P .. ':queues', q)
    n = n + 1
  end
end
return n
"""

_CLAIM_KEY = Script(CLAIM_KEY)
_RELEASE_KEY = Script(RELEASE_KEY)
_KEEP_DEAD = Script(KEEP_DEAD)
_CHUNK = 500


class RedisCoordination(RedisBase):
    """Key claims and kept dead letters, for a transport that has no key-value store."""

    async def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        """Own ``key`` unless a live claim holds it; the owner. Atomic (one script), so the
        owner read back is the one that blocked the ``SET NX``, never a key gone meanwhile."""
        ms = "" if ttl is None else str(max(1, math.ceil(ttl * 1000)))
        owner = await self._run(_CLAIM_KEY, [self._p, self._now(), key, holder, ms])
        return owner.decode(errors="replace") if isinstance(owner, bytes) else str(owner)

    async def release_key(self, key: str, holder: str) -> None:
        await self._run(_RELEASE_KEY, [self._p, self._now(), key, holder])

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Store a transport's dead letters beside this backend's own; existing ids are kept
        as they are (a crash between keep and ack keeps the same letter twice)."""
        for start in range(0, len(letters), _CHUNK):
            args: list[Any] = [self._p, self._now()]
            for d in letters[start : start + _CHUNK]:
                args += (d.id, d.queue, d.body, d.reason, repr(float(d.failed_at)))
            await self._run(_KEEP_DEAD, args)
