"""What the ``redis`` backend stores for a composite's transport (RabbitMQ): key claims and
dead letters (see :class:`workhive.backend.Coordination`).

Claims live under ``P:claim:<key>``, a key space of their own, so a transport's unique and
idempotency keys never collide with this backend's own. A claim is one ``SET NX PX`` on one key
(any slot: claims spread over a cluster's nodes): Redis itself expires it, so a claim whose ttl
ran out is free without any sweep (on the Redis clock, not the test clock scripts take).
Release compares and deletes in one script, so a holder whose claim expired and was taken over
never drops the new owner's.

Kept dead letters are written into exactly the structures a settle's "dead" branch writes
(:mod:`workhive.backends.redis.lua`), per queue and so per slot, so listing, purge, replay and
the per-queue ``dead`` count of ``stats`` treat them like this backend's own.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from workhive.backend import DeadLetter
from workhive.backends.redis import lua
from workhive.backends.redis.base import RedisBase, Script
from workhive.backends.redis.keys import group

_CLAIM_KEY = Script(lua.CLAIM_KEY)
_RELEASE_KEY = Script(lua.RELEASE_KEY)
_KEEP_DEAD = Script(lua.KEEP_DEAD)
_CHUNK = 500


class RedisCoordination(RedisBase):
    """Key claims and kept dead letters, for a transport that has no key-value store."""

    async def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        """Own ``key`` unless a live claim holds it; the owner. Atomic (one script), so the
        owner read back is the one that blocked the ``SET NX``, never a key gone meanwhile."""
        ms = "" if ttl is None else str(max(1, math.ceil(ttl * 1000)))
        owner = await self._run(_CLAIM_KEY, [self._keys.claim(key)], [self._now(), holder, ms])
        return owner.decode(errors="replace") if isinstance(owner, bytes) else str(owner)

    async def release_key(self, key: str, holder: str) -> None:
        await self._run(_RELEASE_KEY, [self._keys.claim(key)], [self._now(), holder])

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Store a transport's dead letters beside this backend's own; existing ids are kept
        as they are (a crash between keep and ack keeps the same letter twice). The letters'
        queues join the registry so ``stats`` and listings find them."""
        parts = group(self._keys, letters, lambda d: d.queue)
        await asyncio.gather(*(self._keep_slot(slot, items) for slot, items in parts))

    async def _keep_slot(self, slot: int, letters: Sequence[DeadLetter]) -> None:
        registry = self._keys.queues
        inline = self._keys.slot(registry) == slot
        for start in range(0, len(letters), _CHUNK):
            chunk = letters[start : start + _CHUNK]
            queues = list(dict.fromkeys(d.queue for d in chunk))
            index = {q: i for i, q in enumerate(queues, 1)}
            keys: list[str] = []
            for q in queues:
                keys += self._keys.bundle(q)
            rk = 0
            if inline:
                keys.append(registry)
                rk = len(keys)
            args: list[Any] = [self._now(), len(queues), *queues, rk]
            for d in chunk:
                args += (index[d.queue], d.id, d.body, d.reason, repr(float(d.failed_at)))
            if not inline:
                await self._register(queues)
            await self._run(_KEEP_DEAD, keys, args)
