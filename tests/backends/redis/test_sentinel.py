"""``redis+sentinel://``: the backend follows the master a Sentinel names, through a failover.

A private master, its replica and one Sentinel (``sentinel.py``). The failover test is the
shared broker-restart scenario (tests/_outage.py) with "restart" replaced by "kill -9 the master
and wait until the Sentinel has promoted the replica": the worker must log, back off, find the
new master and finish every task, with at most what was in flight run twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._outage import ride_out_restart
from tests._services import unique_name
from tests.backends.redis.conftest import require_redis_server
from tests.backends.redis.sentinel import SentinelSet
from workhive._envelope import decode, make_envelope
from workhive.backend import Settlement
from workhive.backends.redis import RedisBackend

pytestmark = [pytest.mark.redis, pytest.mark.integration]


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    require_redis_server()
    watched = SentinelSet(tmp_path)
    try:
        watched.start()
        yield watched
    finally:
        watched.stop()


async def test_sentinel_url_reaches_the_master(sentinels: SentinelSet) -> None:
    backend = RedisBackend.from_url(sentinels.url, prefix=unique_name("st"))
    assert backend.settings.mode == "sentinel"
    try:
        await backend.open()
        await backend.enqueue([make_envelope("t", "via sentinel")])
        [d] = await backend.fetch(["default"], 10, lease=30, wait=1)
        assert decode(d.body).payload == "via sentinel"
        await backend.settle([Settlement(d, "ack")])
        [stats] = await backend.stats()
        assert stats.processed == 1
    finally:
        await backend.wipe()
        await backend.close()


async def test_worker_rides_out_a_sentinel_failover(
    sentinels: SentinelSet, caplog: pytest.LogCaptureFixture
) -> None:
    backend = RedisBackend.from_url(sentinels.url, prefix=unique_name("sf"),
                                    connect_timeout=0.5, retries=1)
    await ride_out_restart(backend, sentinels.kill_master, sentinels.wait_failover, caplog)
