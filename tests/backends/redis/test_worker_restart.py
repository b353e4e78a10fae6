"""A running worker survives a Redis restart: it logs, backs off, reconnects and finishes.

The private redis-server keeps its data (AOF, fsync always) so the restart is a real broker
restart, not a wipe: every task enqueued before it must still complete, none acknowledged lost.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._outage import ride_out_restart
from tests._services import free_port, unique_name
from tests.backends.redis.conftest import PrivateRedis, require_redis_server
from workhive.backends.redis import RedisBackend

pytestmark = [pytest.mark.redis, pytest.mark.integration]


async def test_worker_rides_out_a_redis_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_redis_server()
    server = PrivateRedis(free_port(), data_dir=str(tmp_path))
    server.start()
    try:
        backend = RedisBackend.from_url(server.url, prefix=unique_name("rr"))
        await ride_out_restart(backend, server.stop, server.start, caplog)
    finally:
        server.stop()
