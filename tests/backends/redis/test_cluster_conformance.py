"""The whole conformance suite (``workhive.testing.conformance``) on a three-master Redis
Cluster, the way a third-party backend joins it: a ``harness`` fixture and one test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests._services import unique_name
from tests.backends.redis.cluster import RedisCluster
from workhive.backends.redis import RedisBackend
from workhive.testing.conformance import Harness, Scenario

pytestmark = [pytest.mark.redis, pytest.mark.integration]


@pytest.fixture
async def harness(redis_cluster: RedisCluster) -> AsyncIterator[Harness]:
    prefix = unique_name("cconf")
    h = Harness(lambda: RedisBackend.from_url(redis_cluster.url, prefix=prefix))
    try:
        yield h
    finally:
        await h.close_all()
        await RedisBackend.from_url(redis_cluster.url, prefix=prefix).wipe()


async def test_conformance(conformance_scenario: Scenario, harness: Harness) -> None:
    await conformance_scenario(harness)
