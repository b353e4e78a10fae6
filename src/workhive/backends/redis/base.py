"""Client lifecycle, script calls and error translation for the ``redis`` backend.

Kept apart from the queue logic so every Redis call goes through one door (:meth:`_run` or
:meth:`_guard`) that turns redis-py's connection errors into
:class:`~workhive.errors.BackendUnavailable` with the password redacted, and reloads scripts
after a restarted Redis forgot them (``NOSCRIPT``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from workhive._redact import redact
from workhive.backends.redis.settings import UNREACHABLE, RedisSettings
from workhive.errors import BackendError

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Script:
    """A Lua script called by SHA (EVALSHA) and loaded on first ``NOSCRIPT``."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class RedisBase:
    """Owns the redis-py client. Methods are coroutine-safe; the client pools connections.

    ``clock`` replaces the Redis server clock (``TIME``) in every script; tests use it to put
    a lease or a rate-limit window exactly on its boundary. Leave it ``None`` in production so
    all clients agree on one clock.
    """

    name = "redis"

    def __init__(
        self, settings: RedisSettings, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.settings = settings
        self._p = settings.prefix
        self._clock = clock
        self._client: Redis | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings.redacted_url!r}, prefix={self._p!r})"

    def _redis(self) -> Redis:
        if self._client is None:
            self._client = self.settings.client()
        return self._client

    def _now(self) -> str:
        """The ``now`` script argument: empty means "use the Redis clock"."""
        return "" if self._clock is None else repr(self._clock())

    async def open(self) -> None:
        """Connect and check the server answers; idempotent."""
        await self._guard(lambda r: r.ping())
        logger.debug("redis backend connected to %s (prefix %s)", self.settings.redacted_url,
                     self._p)

    async def close(self) -> None:
        """Close the pool; leased messages stay leased until their lease runs out."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _run(self, script: Script, args: list[Any]) -> Any:
        """EVALSHA ``script`` with ``args`` (no KEYS: keys are derived from the prefix)."""
        client = self._redis()
        try:
            try:
                return await client.evalsha(script.sha, 0, *args)
            except NoScriptError:
                logger.info("redis forgot workhive's scripts (restart?); reloading")
                await client.script_load(script.source)
                return await client.evalsha(script.sha, 0, *args)
        except UNREACHABLE as exc:
            raise self.settings.unavailable(exc) from exc
        except RedisError as exc:
            raise BackendError(f"redis at {self.settings.redacted_url} failed: "
                               f"{redact(str(exc), self.settings.password)}") from exc

    async def _guard(self, call: Callable[[Redis], Awaitable[T]]) -> T:
        """Run a plain redis-py call with the same error translation as :meth:`_run`."""
        try:
            return await call(self._redis())
        except UNREACHABLE as exc:
            raise self.settings.unavailable(exc) from exc
        except RedisError as exc:
            raise BackendError(f"redis at {self.settings.redacted_url} failed: "
                               f"{redact(str(exc), self.settings.password)}") from exc

    async def wipe(self) -> None:
        """Delete every key under this backend's prefix (tests, ``workhive`` resets).

        Works on a closed backend too (it then uses, and closes, a temporary client).
        """
        temporary = self._client is None
        client = self._redis()
        try:
            batch: list[bytes] = []
            async for key in client.scan_iter(match=f"{self._p}:*", count=1000):
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
