"""Client lifecycle, script calls and error translation for the ``redis`` backends.

Kept apart from the queue logic so every Redis call goes through one door
(:meth:`RedisConnection.run` or :meth:`RedisConnection.guard`) that turns redis-py's
connection errors into :class:`~workhive.errors.BackendUnavailable` with the password redacted,
and reloads a script a restarted (or newly added cluster) node forgot (``NOSCRIPT``): with
``EVAL`` on the very node that refused it, so one unreachable node never stops the scripts of
the others.

The client is a plain ``Redis`` (one server), a ``RedisCluster`` or the master a ``Sentinel``
set names (:meth:`RedisSettings.client`); the scripts and key names are the same for all three
(:mod:`workhive.backends.redis.keys`). Each part of
:class:`~workhive.backends.redis.RedisBackend` (dead letters, inspection, coordination, results,
history, browse) is built on one :class:`RedisConnection` alone, so it reads, and can be
tested, on its own; :class:`~workhive.backends.redis.pubsub.RedisPubSubBackend` uses one too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from workhive.backends.redis.keys import Layout, group
from workhive.backends.redis.settings import UNREACHABLE, RedisSettings
from workhive.errors import BackendError

logger = logging.getLogger(__name__)
T = TypeVar("T")
Client = Redis | RedisCluster


class Script:
    """A Lua script called by SHA (EVALSHA), sent whole (EVAL) where a node lacks it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class LegacyLayout(BackendError):
    """The Redis holds data an older workhive wrote in the key layout before hash tags."""


class RedisConnection:
    """Owns the redis-py client. Methods are coroutine-safe; the client pools connections.

    ``clock`` replaces the Redis server clock (``TIME``) in every script; tests use it to put
    a lease or a rate-limit window exactly on its boundary. Leave it ``None`` in production so
    all clients agree on one clock. ``check_layout=False`` is for users that store no keys
    (pub/sub), to whom data of an older key layout does not matter.
    """

    def __init__(
        self,
        settings: RedisSettings,
        *,
        clock: Callable[[], float] | None = None,
        check_layout: bool = True,
    ) -> None:
        self.settings = settings
        self.keys = Layout(settings.prefix, cluster=settings.mode == "cluster")
        self._clock = clock
        self._client: Client | None = None
        self._sentinel: Sentinel | None = None
        # the old layout cannot exist on a cluster: it never ran there
        self._layout_checked = self.keys.cluster or not check_layout

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.settings.redacted_url!r}, "
                f"prefix={self.settings.prefix!r})")

    def client(self) -> Client:
        """The redis-py client, created on first use (a closed connection makes a new one)."""
        if self._client is None:
            self._client, self._sentinel = self.settings.client()
        return self._client

    def now(self) -> str:
        """The ``now`` script argument: empty means "use the Redis clock"."""
        return "" if self._clock is None else repr(self._clock())

    async def open(self) -> None:
        """Connect and check the server answers; idempotent.

        On a cluster this reads the slot map from the first seed node that answers; a master
        that is down fails only the calls for its own slots, later.
        """
        client = await self.ready()
        if not isinstance(client, RedisCluster):
            await self.guard(lambda r: r.ping())
        await self._check_layout()
        logger.debug("redis backend connected to %s (prefix %s)", self.settings.redacted_url,
                     self.settings.prefix)

    async def ready(self) -> Client:
        """The client, with a cluster's slot map read (plain commands do that themselves;
        a pub/sub connection needs it first)."""
        client = self.client()
        if isinstance(client, RedisCluster):
            try:
                await client.initialize()
            except (RedisClusterException, *UNREACHABLE) as exc:
                raise self.settings.unavailable(exc) from exc
        return client

    async def _check_layout(self) -> None:
        """Refuse to run over data of the key layout before hash tags (see docs/redis.md)."""
        if self._layout_checked:
            return
        marker = self.keys.legacy_marker
        if await self.guard(lambda r: r.exists(marker)):
            prefix = self.settings.prefix
            raise LegacyLayout(
                f"redis at {self.settings.redacted_url} holds workhive data under prefix "
                f"{prefix!r} in the key layout of an older version (key {marker!r}). "
                "Stop every worker and producer of this prefix, then run "
                f"'python -m workhive.backends.redis.migrate <url> --prefix {prefix}', or "
                "drain the queues with the older version first; nothing was changed")
        self._layout_checked = True

    async def close(self) -> None:
        """Close the pool; leased messages stay leased until their lease runs out."""
        client, self._client = self._client, None
        sentinel, self._sentinel = self._sentinel, None
        if client is not None:
            await client.aclose()
        if sentinel is not None:
            for server in sentinel.sentinels:
                await server.aclose()

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA ``script``: every key it touches is in ``keys``, all of one slot."""
        client = self.client()
        if not self._layout_checked:
            await self._check_layout()
        try:
            try:
                return await client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                logger.info("redis forgot workhive's scripts (restart?); sending them again")
                return await client.eval(script.source, len(keys), *keys, *args)
        except UNREACHABLE as exc:
            raise self.settings.unavailable(exc) from exc
        except RedisError as exc:
            raise self._failed(exc) from exc

    async def guard(self, call: Callable[[Any], Awaitable[T]]) -> T:
        """Run a plain redis-py call with the same error translation as :meth:`run`."""
        try:
            return await call(self.client())
        except UNREACHABLE as exc:
            raise self.settings.unavailable(exc) from exc
        except RedisError as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: BaseException) -> BackendError:
        return BackendError(f"redis at {self.settings.redacted_url} failed: "
                            f"{self.settings.hide(str(exc))}")

    # -- queues -------------------------------------------------------------------------

    def queue_call(self, queues: Sequence[str]) -> tuple[list[str], list[Any]]:
        """KEYS (one bundle per queue) and the leading ARGV of a queue script (``now``, the
        number of queues, their names: see :mod:`workhive.backends.redis.lua`)."""
        keys: list[str] = []
        for q in queues:
            keys += self.keys.bundle(q)
        return keys, [self.now(), len(queues), *queues]

    async def register(self, queues: Sequence[str]) -> None:
        """Add queues to the registry (``{P}:queues``) in a call of its own: on a cluster it
        usually lives on another node than the queues."""
        await self.guard(lambda r: r.sadd(self.keys.queues, *queues))

    async def registered_queues(self) -> list[str]:
        """Every queue in the registry, sorted."""
        raw: set[bytes] = await self.guard(lambda r: r.smembers(self.keys.queues))
        return sorted(q.decode(errors="replace") for q in raw)

    async def per_slot(
        self, queues: Sequence[str], call: Callable[[list[str]], Awaitable[T]]
    ) -> list[tuple[list[str], T]]:
        """``call`` once per slot's queues (concurrently); results in slot order."""
        parts = [qs for _, qs in group(self.keys, queues, str)]
        results = await asyncio.gather(*(call(qs) for qs in parts))
        return list(zip(parts, results, strict=True))

    async def wipe(self) -> None:
        """Delete every key under this prefix (tests, ``workhive`` resets).

        Works on a closed connection too (it then uses, and closes, a temporary client). On a
        cluster it scans every master.
        """
        temporary = self._client is None
        client = self.client()
        try:
            for pattern in self.keys.patterns():
                batch: list[bytes] = []
                async for key in client.scan_iter(match=pattern, count=1000):
                    batch.append(key)
                    if len(batch) >= 500:
                        await client.unlink(*batch)
                        batch.clear()
                if batch:
                    await client.unlink(*batch)
        except UNREACHABLE as exc:
            raise self.settings.unavailable(exc) from exc
        finally:
            if temporary:
                await self.close()


__all__ = ["LegacyLayout", "RedisConnection", "Script"]
