"""Connection faults against a private redis-server that the test stops and restarts."""

from __future__ import annotations

import pytest

from tests.backends.redis.conftest import PrivateRedis
from workhive._envelope import make_envelope
from workhive.backend import Settlement
from workhive.backends.redis import RedisBackend
from workhive.errors import BackendUnavailable

pytestmark = [pytest.mark.redis, pytest.mark.integration]


async def test_outage_raises_backend_unavailable_then_recovers(
    private_redis: PrivateRedis,
) -> None:
    backend = RedisBackend.from_url(private_redis.url, prefix="fault", connect_timeout=0.5,
                                    retries=1)
    try:
        await backend.open()
        await backend.enqueue([make_envelope("t", "before")])
        [d] = await backend.fetch(["default"], 10, lease=30, wait=0)
        await backend.settle([Settlement(d, "ack")])

        private_redis.stop()
        with pytest.raises(BackendUnavailable) as info:
            await backend.enqueue([make_envelope("t", "lost?")])
        message = str(info.value)
        assert f"127.0.0.1:{private_redis.port}" in message
        assert private_redis.password is not None and private_redis.password not in message
        assert "***" in message
        with pytest.raises(BackendUnavailable):
            await backend.fetch(["default"], 10, lease=30, wait=1)
        with pytest.raises(BackendUnavailable):
            await backend.settle([Settlement(d, "ack")])

        private_redis.start()  # same port, empty (no persistence): scripts must be reloaded
        [r] = await backend.enqueue([make_envelope("t", "after")])
        [d] = await backend.fetch(["default"], 10, lease=30, wait=0)
        await backend.settle([Settlement(d, "ack")])
        [stats] = await backend.stats()
        assert stats.processed == 1 and not r.duplicate
    finally:
        await backend.close()


async def test_open_fails_clearly_when_nothing_listens(private_redis: PrivateRedis) -> None:
    private_redis.stop()
    backend = RedisBackend.from_url(private_redis.url, prefix="fault", connect_timeout=0.5,
                                    retries=0)
    try:
        with pytest.raises(BackendUnavailable, match="unavailable"):
            await backend.open()
    finally:
        await backend.close()


async def test_wrong_password_is_unavailable_and_redacted(private_redis: PrivateRedis) -> None:
    url = private_redis.url.replace(str(private_redis.password), "wrong-pw")
    backend = RedisBackend.from_url(url, prefix="fault", retries=0)
    try:
        with pytest.raises(BackendUnavailable) as info:
            await backend.open()
        assert "wrong-pw" not in str(info.value)
    finally:
        await backend.close()
