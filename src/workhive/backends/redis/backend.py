"""The durable ``redis`` backend: queues, delays, priorities, leases, DLQ, events, cron, limits.

Why it looks like this: Redis is the broker most of the seeds ran in production, and the
throughput target (20k no-op tasks/s from one worker process) leaves no room for a round trip
per message. So every state change is one Lua script per *batch* (see
:mod:`workhive.backends.redis.lua` for the key layout): ``fetch`` promotes due and expired
messages, pops by priority, leases and returns bodies in one call; ``settle`` applies a whole
batch of ack/retry/dead/release in one call; ``enqueue`` stores a batch in one call.

Contracts (shared with :mod:`workhive.backends.memory`):

* Delivery is at-least-once. A lease carries a per-fetch token, so a settle or extend from a
  worker whose lease ran out is a silent no-op; the message belongs to whoever re-fetched it.
* ``fetch(wait=...)`` does not poll: after an empty fetch it blocks in ``BLPOP`` on the queues'
  wake lists (producers push a token), for at most the time to the nearest delayed message or
  lease deadline, and never more than 5 s, so lease expiries are noticed without a token.
* Events are durable: :meth:`RedisBackend.bind` stores the binding in Redis and
  :meth:`RedisBackend.publish` writes one copy per bound group into ``event_queue(group)`` in one
  script, so subscribers get the queue machinery (retry, lease, DLQ) for free.
* Redis Cluster is not supported (scripts derive keys from the prefix); use one Redis, with
  replicas / Sentinel for failover.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from workhive._envelope import Envelope, encode
from workhive.backend import (
    Capability,
    Delivery,
    EnqueueResult,
    Features,
    Settlement,
    fan_out,
    topic_matches,
)
from workhive.backends.redis import lua
from workhive.backends.redis.admin import RedisAdmin
from workhive.backends.redis.base import Script
from workhive.backends.redis.coordination import RedisCoordination
from workhive.backends.redis.settings import RedisSettings

__all__ = ["RedisBackend", "RedisSettings"]

logger = logging.getLogger(__name__)

_ENQUEUE = Script(lua.ENQUEUE)
_FETCH = Script(lua.FETCH)
_SETTLE = Script(lua.SETTLE)
_EXTEND = Script(lua.EXTEND)
_BIND = Script(lua.BIND)
_BINDINGS = Script(lua.BINDINGS)
_HIT_WINDOW = Script(lua.HIT_WINDOW)
_TAKE_TOKEN = Script(lua.TAKE_TOKEN)

_CHUNK = 1000  # messages per script call: bounds how long one call blocks Redis
_MAX_BLOCK = 5.0  # longest single BLPOP; re-checks leases of crashed workers at least this often
_BLPOP_SLACK = 0.1  # Redis checks blocked-call timeouts every 1/hz s (hz=10 by default)
_TICK_TTL = 8 * 86_400  # cron claims are remembered for 8 days
_ACTION_CODES = {"ack": "a", "retry": "r", "dead": "d", "release": "l"}


class RedisBackend(RedisAdmin, RedisCoordination):
    """Durable backend on one Redis; every capability of :mod:`workhive.backend`.

    Build it with :meth:`from_url` (``redis://``, ``rediss://``, ``unix://``). One instance may
    be shared by many coroutines; it holds a redis-py connection pool.
    """

    name = "redis"
    features = Features(frozenset(Capability), lease="timed")

    def __init__(
        self, settings: RedisSettings, *, clock: Callable[[], float] | None = None
    ) -> None:
        super().__init__(settings, clock=clock)
        self._idem_ttl = str(int(settings.idempotency_ttl))
        self._max_block = min(_MAX_BLOCK, settings.socket_timeout * 0.8)
        self._bindings: tuple[str, list[tuple[str, str]]] | None = None

    @classmethod
    def from_url(
        cls, url: str, *, clock: Callable[[], float] | None = None, **options: Any
    ) -> RedisBackend:
        """``redis://[:password@]host:port/db?prefix=app`` plus options (see RedisSettings)."""
        return cls(RedisSettings.from_url(url, **options), clock=clock)

    # -- core ----------------------------------------------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Store envelopes; one script call per 1000. Duplicates return the holder's id."""
        results: list[EnqueueResult] = []
        for start in range(0, len(envelopes), _CHUNK):
            chunk = envelopes[start : start + _CHUNK]
            results += await self._store(chunk, "", scope=False)
        return results

    async def _store(
        self, envelopes: Sequence[Envelope], version: str, *, scope: bool
    ) -> list[EnqueueResult]:
        """Run the enqueue script; with ``version`` it raises _StaleBindings if bindings moved.

        ``scope`` qualifies idempotency / unique keys with the queue (event copies).
        """
        args: list[Any] = [self._p, self._now(), self._idem_ttl, version]
        for env in envelopes:
            idem = env.idempotency_key or ""
            uniq = env.unique_key or ""
            if scope:  # event copies: each subscriber group dedupes its own copy
                idem = idem and f"{idem}\x00{env.queue}"
                uniq = uniq and f"{uniq}\x00{env.queue}"
            args += (
                env.id,
                env.queue,
                str(env.priority),
                "" if env.eta is None else repr(env.eta),
                idem,
                uniq,
                encode(env),
            )
        raw = await self._run(_ENQUEUE, args)
        if raw is None:
            raise _StaleBindings
        return [
            EnqueueResult(env.id) if not held
            else EnqueueResult(held.decode(errors="replace"), duplicate=True)
            for env, held in zip(envelopes, raw, strict=True)
        ]

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        """Lease up to ``limit`` messages, queues in the given order, priority first within each.

        Waits at most ``wait`` seconds, blocked in Redis (``BLPOP`` on wake lists) rather than
        polling; the receipt of each delivery is its lease member ``b"<token>|<id>"``.
        """
        if not queues or limit <= 0:
            return []
        lease_s = repr(float(lease))
        deadline: float | None = None
        while True:
            raw = await self._run(_FETCH, [self._p, self._now(), lease_s, limit, *queues])
            if raw[-1]:
                _log_notes(raw[-1])
            out: list[Delivery] = []
            for q, arr in zip(queues, raw[1:-1], strict=True):
                if arr:
                    out += [
                        Delivery(q, body, member)
                        for member, body in zip(arr[0::2], arr[1::2], strict=True)
                    ]
            if out or wait <= 0:
                return out
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait
            pause = deadline - now
            if pause <= 0:
                return out
            due = float(raw[0]) + 0.001 if raw[0] else None
            await self._wait_for_wake(queues, pause if due is None else min(pause, due),
                                      precise=due is not None and due <= pause)

    async def _wait_for_wake(self, queues: Sequence[str], pause: float, *, precise: bool) -> None:
        """Block until a producer pushes a wake token on one of ``queues`` or ``pause`` ends.

        Redis expires blocked calls on its ``hz`` tick (100 ms by default), so a BLPOP may
        return up to 100 ms late. That is harmless when the pause only bounds ``wait``; when
        it ends at a delayed message's eta (``precise``) the BLPOP stops 100 ms short and the
        rest is slept, so delays stay accurate to a few milliseconds.
        """
        pause = min(pause, self._max_block)
        if precise:
            if pause <= _BLPOP_SLACK + 0.01:
                await asyncio.sleep(pause)
                return
            pause -= _BLPOP_SLACK
        keys = [f"{self._p}:q:{q}:wake" for q in queues]
        await self._guard(lambda r: r.blpop(keys, timeout=pause))

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Apply a batch of outcomes in one script call per 1000; stale leases are skipped.

        Acks are grouped per queue and cost one script argument each (packing arguments is
        the largest per-message cost on the Python side).
        """
        for start in range(0, len(settlements), _CHUNK):
            acks: dict[str, list[Any]] = {}
            args: list[Any] = [self._p, self._now()]
            for s in settlements[start : start + _CHUNK]:
                d = s.delivery
                action = s.action
                if action == "ack":
                    members = acks.get(d.queue)
                    if members is None:
                        members = acks[d.queue] = []
                    members.append(d.receipt)
                elif action == "retry":
                    args += ("r", d.queue, 1, d.receipt, s.body or b"", repr(float(s.eta)))
                elif action == "dead":
                    args += ("d", d.queue, 1, d.receipt, s.body or b"", s.reason)
                else:
                    args += (_ACTION_CODES[action], d.queue, 1, d.receipt)
            for queue, members in acks.items():
                args += ("a", queue, len(members), *members)
            await self._run(_SETTLE, args)

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        """Move still-held leases ``lease`` seconds past now; lost leases stay lost."""
        for start in range(0, len(deliveries), _CHUNK):
            args: list[Any] = [self._p, self._now(), repr(float(lease))]
            for d in deliveries[start : start + _CHUNK]:
                args += (d.queue, d.receipt)
            await self._run(_EXTEND, args)

    # -- events ----------------------------------------------------------------------------

    async def bind(self, pattern: str, group: str) -> None:
        """Persist that ``group`` receives events matching ``pattern`` (glob, see topic_matches)."""
        await self._run(_BIND, [self._p, self._now(), pattern, group])
        self._bindings = None

    async def _load_bindings(self) -> tuple[str, list[tuple[str, str]]]:
        raw = await self._run(_BINDINGS, [self._p, self._now()])
        pairs: list[tuple[str, str]] = []
        for field in raw[1:]:
            try:
                pattern, sep, group = field.decode().partition("\n")
            except UnicodeDecodeError:
                sep = ""
            if sep and pattern and group:
                pairs.append((pattern, group))
            else:  # written by hand or a bug: skip it rather than fail every publish
                logger.error("redis: ignoring a corrupt event binding %r under %s:bindings",
                             field[:100], self._p)
        self._bindings = (raw[0].decode(errors="replace"), pairs)
        return self._bindings

    async def publish(self, envelope: Envelope) -> int:
        """Store one copy per bound group, atomically; returns the number of copies.

        Bindings are cached with their version; the script refuses the write if a ``bind``
        anywhere moved the version, and the publish retries with fresh bindings, so a group
        bound before this call can never miss the event.
        """
        while True:
            version, bindings = self._bindings or await self._load_bindings()
            groups = [g for p, g in bindings if topic_matches(p, envelope.name)]
            copies = fan_out(envelope, groups)
            try:
                await self._store(copies, version, scope=True)
            except _StaleBindings:
                self._bindings = None
                continue
            return len(copies)

    # -- cron and counters -------------------------------------------------------------------

    async def claim_tick(self, job: str, tick: float) -> bool:
        """``SET NX`` on ``(job, tick)``: exactly one caller wins, remembered for 8 days."""
        key = f"{self._p}:tick:{job}:{tick!r}"
        won = await self._guard(lambda r: r.set(key, b"1", nx=True, ex=_TICK_TTL))
        return bool(won)

    async def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        """Fixed window aligned to multiples of ``period`` on the Redis clock.

        Denied hits are not counted; ``retry_after`` is the time to the window's end.
        """
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period!r}")
        raw = await self._run(
            _HIT_WINDOW, [self._p, self._now(), key, repr(float(period)), int(limit)]
        )
        return bool(raw[0]), float(raw[1])

    async def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        """Token bucket (``rate`` tokens/s, at most ``burst``) on the Redis clock."""
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate!r} burst={burst!r}")
        raw = await self._run(
            _TAKE_TOKEN, [self._p, self._now(), key, repr(float(rate)), int(burst)]
        )
        return bool(raw[0]), float(raw[1])


def _log_notes(notes: Sequence[bytes]) -> None:
    """Log what a fetch script buried or dropped (see :mod:`workhive.backends.redis.lua`).

    A note is ``what|len(queue)|queue|len(id)|id`` + reason, lengths in bytes, so queue names
    and ids may contain ``|``.
    """
    for note in notes:
        try:
            what, qlen, rest = note.split(b"|", 2)
            queue, rest = rest[: int(qlen)], rest[int(qlen) + 1 :]
            ilen, rest = rest.split(b"|", 1)
            mid, reason = rest[: int(ilen)], rest[int(ilen) :]
        except ValueError:
            logger.error("redis: fetch removed a corrupt entry: %r", note[:200])
            continue
        if what == b"dead":
            logger.error("redis: message %r of queue %r was corrupt in the store and went to "
                         "the dead-letter queue: %s", mid[:100].decode(errors="replace"),
                         queue.decode(errors="replace"), reason.decode(errors="replace"))
        else:
            logger.error("redis: dropped a corrupt entry %r of queue %r (no message to keep): "
                         "%s", mid[:100].decode(errors="replace"),
                         queue.decode(errors="replace"), reason.decode(errors="replace"))


class _StaleBindings(Exception):
    """Internal: a publish raced a ``bind``; reload bindings and try again."""
