"""The redis-pubsub backend: at-most-once fan-out to every listening process, no tasks."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import pytest

from tests._services import unique_name
from workhive._envelope import decode, make_envelope
from workhive.backend import Settlement
from workhive.backends.redis.pubsub import RedisPubSubBackend
from workhive.errors import CapabilityError

pytestmark = pytest.mark.redis

LISTENER = r"""
import asyncio, json, sys
from workhive._envelope import decode
from workhive.backends.redis.pubsub import RedisPubSubBackend

async def main(url: str, prefix: str, want: int) -> None:
    backend = RedisPubSubBackend.from_url(url, prefix=prefix)
    await backend.bind("orders.*", "listener")
    print("READY", flush=True)
    got = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while len(got) < want and loop.time() < deadline:
        for d in await backend.fetch(["@listener"], 10, lease=0, wait=1):
            got.append(decode(d.body).payload)
    print(json.dumps(got), flush=True)
    await backend.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


@pytest.fixture
async def pubsub(redis_url: str) -> AsyncIterator[RedisPubSubBackend]:
    backend = RedisPubSubBackend.from_url(redis_url.replace("redis://", "redis-pubsub://"),
                                          prefix=unique_name("ps"))
    yield backend
    await backend.close()


async def test_tasks_are_refused_with_a_pointer_to_redis(pubsub: RedisPubSubBackend) -> None:
    assert pubsub.features.capabilities == frozenset()
    with pytest.raises(CapabilityError, match="'redis' backend"):
        await pubsub.enqueue([make_envelope("t", None)])


async def test_in_process_subscription_and_groups(pubsub: RedisPubSubBackend) -> None:
    await pubsub.bind("users.*", "a")
    await pubsub.bind("users.created", "a")  # overlapping patterns: still one copy for "a"
    await pubsub.bind("users.created", "b")
    assert await pubsub.publish(make_envelope("users.created", {"id": 1}, kind="event")) == 1
    got_a = await pubsub.fetch(["@a"], 10, lease=0, wait=5)
    got_b = await pubsub.fetch(["@b"], 10, lease=0, wait=5)
    assert [decode(d.body).group for d in got_a] == ["a"]
    assert [decode(d.body).payload for d in got_b] == [{"id": 1}]
    await pubsub.settle([Settlement(got_a[0], "retry")])  # no-op, logged
    assert await pubsub.fetch(["@a", "@b"], 10, lease=0, wait=0.05) == []


async def test_fan_out_to_two_processes_and_the_lost_event_trap(
    pubsub: RedisPubSubBackend, redis_url: str
) -> None:
    # seed 004's trap: nobody listens yet, so this event is simply gone
    assert await pubsub.publish(make_envelope("orders.created", "lost", kind="event")) == 0

    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", LISTENER, redis_url, pubsub.settings.prefix, "3",
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.strip() == b"READY"
        assert await pubsub.publish(make_envelope("users.created", "ignored", kind="event")) == 2
        for n in (1, 2, 3):
            assert await pubsub.publish(make_envelope("orders.created", n, kind="event")) == 2
        outputs = [await asyncio.wait_for(proc.communicate(), 60) for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for out, _ in outputs:
        assert json.loads(out.decode().strip().splitlines()[-1]) == [1, 2, 3]
