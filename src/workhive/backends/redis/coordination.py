"""Key claims, cron ticks and rate-limit counters of the ``redis`` backend.

Each of these is one key used alone (no hash tag), so any slot will do and they spread over a
cluster's nodes (names in :mod:`workhive.backends.redis.keys`):

* Claims (``P:claim:<key>``) are what a composite's transport (RabbitMQ) stores here for its
  unique and idempotency keys (see :class:`workhive.backend.Coordination`), in a key space of
  their own so they never collide with this backend's own. A claim is one ``SET NX PX``: Redis
  itself expires it, so a claim whose ttl ran out is free without any sweep (on the Redis
  clock, not the test clock scripts take). Release compares and deletes in one script, so a
  holder whose claim expired and was taken over never drops the new owner's.
* A cron tick is claimed with ``SET NX`` on ``(job, tick)``: exactly one caller wins.
* Fixed windows and token buckets are one script each, on the Redis clock, so every client
  counts against the same window.
"""

from __future__ import annotations

import math

from workhive.backends.redis import lua
from workhive.backends.redis.connection import RedisConnection, Script

_CLAIM_KEY = Script(lua.CLAIM_KEY)
_RELEASE_KEY = Script(lua.RELEASE_KEY)
_HIT_WINDOW = Script(lua.HIT_WINDOW)
_TAKE_TOKEN = Script(lua.TAKE_TOKEN)

_TICK_TTL = 8 * 86_400  # cron claims are remembered for 8 days


class RedisCoordination:
    """Key claims (:class:`~workhive.backend.Coordination`),
    :class:`~workhive.backend.SupportsCron` and :class:`~workhive.backend.SupportsCounters`
    over one :class:`RedisConnection`."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    async def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        """Own ``key`` unless a live claim holds it; the owner. Atomic (one script), so the
        owner read back is the one that blocked the ``SET NX``, never a key gone meanwhile."""
        conn = self._conn
        ms = "" if ttl is None else str(max(1, math.ceil(ttl * 1000)))
        owner = await conn.run(_CLAIM_KEY, [conn.keys.claim(key)], [conn.now(), holder, ms])
        return owner.decode(errors="replace") if isinstance(owner, bytes) else str(owner)

    async def release_key(self, key: str, holder: str) -> None:
        conn = self._conn
        await conn.run(_RELEASE_KEY, [conn.keys.claim(key)], [conn.now(), holder])

    async def claim_tick(self, job: str, tick: float) -> bool:
        """``SET NX`` on ``(job, tick)``: exactly one caller wins, remembered for 8 days."""
        key = self._conn.keys.tick(job, tick)
        won = await self._conn.guard(lambda r: r.set(key, b"1", nx=True, ex=_TICK_TTL))
        return bool(won)

    async def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        """Fixed window aligned to multiples of ``period`` on the Redis clock.

        Denied hits are not counted; ``retry_after`` is the time to the window's end.
        """
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period!r}")
        conn = self._conn
        raw = await conn.run(_HIT_WINDOW, [conn.keys.window(key, float(period))],
                             [conn.now(), repr(float(period)), int(limit)])
        return bool(raw[0]), float(raw[1])

    async def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        """Token bucket (``rate`` tokens/s, at most ``burst``) on the Redis clock."""
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate!r} burst={burst!r}")
        conn = self._conn
        raw = await conn.run(_TAKE_TOKEN, [conn.keys.bucket(key)],
                             [conn.now(), repr(float(rate)), int(burst)])
        return bool(raw[0]), float(raw[1])
