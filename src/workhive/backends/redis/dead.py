"""Dead letters of the ``redis`` backend: listing, replay, purge, and a transport's kept letters.

These are operator-facing calls (``workhive dlq``): rare, so they favour clarity over round
trips, but every change of state is still one atomic script per slot.

Dead letters live with their queue (``{P:Q}:dead...``), so a settle that dead-letters stays one
script on one slot. Calls that span queues read the queue registry (``{P}:queues``) and fan out
per slot: a listing of every queue merges the per-queue indexes by time, then reads the bodies
of the page it kept.

A composite's transport (RabbitMQ) keeps its dead letters here
(:meth:`RedisDeadLetters.keep_dead`): they are written into exactly the structures a settle's
"dead" branch writes (:mod:`workhive.backends.redis.lua`), per queue and so per slot, so
listing, purge, replay and the per-queue ``dead`` count of ``stats`` treat them like this
backend's own.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Sequence

from workhive._envelope import decode, encode, replay_copy
from workhive.backend import DeadLetter
from workhive.backends.redis import lua
from workhive.backends.redis.connection import RedisConnection, Script
from workhive.backends.redis.keys import group

logger = logging.getLogger(__name__)

_DEAD_RANGE = Script(lua.DEAD_RANGE)
_DEAD_GET = Script(lua.DEAD_GET)
_REPLAY = Script(lua.REPLAY)
_PURGE = Script(lua.PURGE)
_KEEP_DEAD = Script(lua.KEEP_DEAD)
_CHUNK = 500


class RedisDeadLetters:
    """:class:`~workhive.backend.SupportsDeadLetters` and ``keep_dead`` of
    :class:`~workhive.backend.Coordination`, over one :class:`RedisConnection`."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Oldest first; ``queue`` filters."""
        if limit <= 0:
            return []
        conn = self._conn
        queues = [queue] if queue is not None else await conn.registered_queues()
        last = offset + limit - 1

        async def ranges(qs: list[str]) -> list[list[bytes]]:
            keys, args = conn.queue_call(qs)
            result: list[list[bytes]] = await conn.run(_DEAD_RANGE, keys, [*args, 0, last])
            return result

        heads: list[list[tuple[float, bytes, str]]] = []
        for qs, per_queue in await conn.per_slot(queues, ranges):
            for q, flat in zip(qs, per_queue, strict=True):
                heads.append([(_score(s), i, q) for i, s in zip(flat[0::2], flat[1::2],
                                                                strict=True)])
        page = list(heapq.merge(*heads))[offset : offset + limit]
        return await self._letters([(q, i) for _, i, q in page])

    async def _letters(self, wanted: Sequence[tuple[str, bytes]]) -> list[DeadLetter]:
        """Read the letters ``(queue, id)`` in the given order; gone ones are left out."""
        conn = self._conn
        found: dict[tuple[str, bytes], DeadLetter] = {}

        async def read(qs: list[str]) -> None:
            index = {q: i for i, q in enumerate(qs, 1)}
            mine = [(q, i) for q, i in wanted if q in index]
            for start in range(0, len(mine), _CHUNK):
                chunk = mine[start : start + _CHUNK]
                keys, args = conn.queue_call(qs)
                for q, i in chunk:
                    args += (index[q], i)
                raw = await conn.run(_DEAD_GET, keys, args)
                for (q, i), body, info in zip(chunk, raw[0::2], raw[1::2], strict=True):
                    if body is not None and info is not None:
                        letter = _parse_info(i, body, info)
                        if letter is not None:
                            found[(q, i)] = letter

        await conn.per_slot(list(dict.fromkeys(q for q, _ in wanted)), read)
        return [found[w] for w in wanted if w in found]

    async def _select(self, ids: Sequence[str] | None, queue: str | None) -> list[DeadLetter]:
        if ids is None:
            return await self.dead_letters(queue, limit=1 << 30)
        wanted = [i.encode() for i in dict.fromkeys(ids)]
        if not wanted:
            return []
        queues = [queue] if queue is not None else await self._conn.registered_queues()
        return await self._letters([(q, i) for q in queues for i in wanted])

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Re-enqueue as *fresh* envelopes (new id, attempt 0, empty history), as memory does.

        Removing the dead letter and storing its replacement happen in one script per chunk
        (a queue's letters and messages share a slot), so a crash in between can neither lose
        nor duplicate a replay.
        """
        def replacement(dead: DeadLetter) -> tuple[str, str, str, bytes]:
            fresh = replay_copy(decode(dead.body))
            return dead.id, fresh.id, str(fresh.priority), encode(fresh)

        return await self._per_letter(_REPLAY, await self._select(ids, queue), replacement)

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        return await self._per_letter(_PURGE, await self._select(ids, queue),
                                      lambda dead: (dead.id,))

    async def _per_letter(
        self, script: Script, rows: Sequence[DeadLetter],
        args_of: Callable[[DeadLetter], tuple[str | bytes, ...]],
    ) -> int:
        """Run ``script`` over ``rows`` slot by slot, ``_CHUNK`` letters a call, each letter
        passed as its queue's index then ``args_of(letter)``; the sum of what the calls return."""
        conn = self._conn

        async def run(qs: list[str]) -> int:
            index = {q: i for i, q in enumerate(qs, 1)}
            mine = [d for d in rows if d.queue in index]
            count = 0
            for start in range(0, len(mine), _CHUNK):
                keys, args = conn.queue_call(qs)
                for dead in mine[start : start + _CHUNK]:
                    args += (index[dead.queue], *args_of(dead))
                count += int(await conn.run(script, keys, args))
            return count

        done = await conn.per_slot(list(dict.fromkeys(d.queue for d in rows)), run)
        return sum(n for _, n in done)

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Store a transport's dead letters beside this backend's own; existing ids are kept
        as they are (a crash between keep and ack keeps the same letter twice). The letters'
        queues join the registry so ``stats`` and listings find them."""
        parts = group(self._conn.keys, letters, lambda d: d.queue)
        await asyncio.gather(*(self._keep_slot(slot, items) for slot, items in parts))

    async def _keep_slot(self, slot: int, letters: Sequence[DeadLetter]) -> None:
        conn = self._conn
        registry = conn.keys.queues
        inline = conn.keys.slot(registry) == slot
        for start in range(0, len(letters), _CHUNK):
            chunk = letters[start : start + _CHUNK]
            queues = list(dict.fromkeys(d.queue for d in chunk))
            index = {q: i for i, q in enumerate(queues, 1)}
            keys, args = conn.queue_call(queues)
            rk = 0
            if inline:
                keys.append(registry)
                rk = len(keys)
            args.append(rk)
            for d in chunk:
                args += (index[d.queue], d.id, d.body, d.reason, repr(float(d.failed_at)))
            if not inline:
                await conn.register(queues)
            await conn.run(_KEEP_DEAD, keys, args)


def _parse_info(dead_id: bytes, body: bytes, info: bytes) -> DeadLetter | None:
    """``info`` is ``"failed_at|len(queue)|" + queue + reason`` (queue and reason are free text).

    A corrupt record is logged and skipped, so one bad entry never hides the others.
    """
    try:
        failed_at, qlen, rest = info.split(b"|", 2)
        n = int(qlen)
        return DeadLetter(dead_id.decode(), rest[:n].decode(), body,
                          rest[n:].decode(errors="replace"), float(failed_at))
    except ValueError:  # also UnicodeDecodeError
        logger.error("redis: skipping dead letter %r with a corrupt info record %r",
                     dead_id[:100], info[:100])
        return None


def _score(raw: bytes) -> float:
    try:
        return float(raw)
    except ValueError:
        return 0.0
