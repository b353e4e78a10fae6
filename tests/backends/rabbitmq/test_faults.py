"""Lost consumers, forced disconnects, an unreachable server, and secrets kept secret."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests._services import free_port
from tests.backends.rabbitmq.vhosts import close_connections
from workhive._envelope import decode, make_envelope
from workhive.backend import Delivery, Settlement
from workhive.backends.rabbitmq import RabbitMQBackend
from workhive.errors import BackendError, BackendUnavailable

pytestmark = [pytest.mark.rabbitmq, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[3]


async def drain(backend: RabbitMQBackend, n: int, wait: float = 5.0) -> list[Delivery]:
    got: list[Delivery] = []
    while len(got) < n:
        more = await backend.fetch(["default"], n - len(got), lease=30, wait=wait)
        assert more, f"only {len(got)} of {n} arrived"
        got += more
    return got


async def test_closed_consumer_gives_its_messages_to_another(
    make: Callable[..., RabbitMQBackend],
) -> None:
    producer = make()
    envs = [make_envelope("t", {"i": i}) for i in range(5)]
    await producer.enqueue(envs)
    first = make()
    held = await drain(first, 5)  # fetched, never settled
    second = make()
    assert await second.fetch(["default"], 10, lease=30, wait=0.3) == []  # still held
    await first.close()  # the session ends: the broker takes them back
    again = await drain(second, 5)
    assert sorted(decode(d.body).id for d in again) == sorted(e.id for e in envs)
    await first.settle([Settlement(d, "ack") for d in held])  # stale: a no-op, no error
    await second.settle([Settlement(d, "ack") for d in again])


_HOLDER = textwrap.dedent("""
    import asyncio, sys
    from workhive.backends.rabbitmq import RabbitMQBackend

    async def main():
        backend = RabbitMQBackend.from_url(sys.argv[1])
        held = []
        while len(held) < int(sys.argv[2]):
            held += await backend.fetch(["default"], 10, lease=30, wait=5)
        print("holding", len(held), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
""")


async def test_killed_worker_process_gives_its_messages_back(
    make: Callable[..., RabbitMQBackend], url: str,
) -> None:
    producer = make()
    envs = [make_envelope("t", {"i": i}) for i in range(4)]
    await producer.enqueue(envs)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _HOLDER, url, "4",
                                                cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.decode().strip() == "holding 4"
        assert await producer.fetch(["default"], 10, lease=30, wait=0.3) == []
        os.kill(proc.pid, signal.SIGKILL)
        got = await drain(producer, 4)
        assert sorted(decode(d.body).id for d in got) == sorted(e.id for e in envs)
        await producer.settle([Settlement(d, "ack") for d in got])
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_forced_disconnect_mid_stream_loses_nothing(
    make: Callable[..., RabbitMQBackend], vhost: str,
) -> None:
    """``rabbitmqctl close_all_connections``: RobustConnection reconnects, the consumers come
    back, settling a pre-disconnect delivery is a no-op, and every message is acked once."""
    backend = make()
    n = 30
    envs = [make_envelope("t", {"i": i}) for i in range(n)]
    await backend.enqueue(envs)
    done: set[str] = set()
    first = await backend.fetch(["default"], 10, lease=30, wait=5)
    assert first
    await backend.settle([Settlement(first[0], "ack")])
    done.add(decode(first[0].body).id)
    await asyncio.to_thread(close_connections, vhost)
    late = make_envelope("t", {"late": True})
    await backend.enqueue([late])  # rides out the reconnect (published on the new channel)
    envs.append(late)
    n += 1
    # settling deliveries from the dead channel: no exception, the broker redelivers them
    await backend.settle([Settlement(d, "ack") for d in first[1:]])
    deadline = asyncio.get_running_loop().time() + 20
    while len(done) < n:
        assert asyncio.get_running_loop().time() < deadline, f"{len(done)}/{n} after 20s"
        got = await backend.fetch(["default"], 10, lease=30, wait=1)
        await backend.settle([Settlement(d, "ack") for d in got])
        done.update(decode(d.body).id for d in got)
    assert done == {e.id for e in envs}
    # enqueue and stats work on the new connection too
    await backend.enqueue([make_envelope("t", None)])
    (extra,) = await backend.fetch(["default"], 10, lease=30, wait=5)
    await backend.settle([Settlement(extra, "ack")])
    (stat,) = await backend.stats()
    assert (stat.ready, stat.in_flight) == (0, 0)


async def test_unreachable_server_is_backend_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    backend = RabbitMQBackend.from_url(f"amqp://guest:hunter2-secret@127.0.0.1:{port}/")
    with pytest.raises(BackendUnavailable) as opened:
        await backend.open()
    with pytest.raises(BackendUnavailable) as enqueued:
        await backend.enqueue([make_envelope("t", None)])
    for exc in (opened.value, enqueued.value):
        message = str(exc)
        assert f"127.0.0.1:{port}" in message
        assert "\n" not in message
        assert "hunter2" not in message
    assert "hunter2" not in caplog.text
    assert "hunter2" not in repr(backend)
    await backend.close()  # closing a never-opened backend is fine


async def test_wrong_password_never_shows(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bad = url.replace("guest:guest@", "guest:wr0ng-Pa55word@")
    assert bad != url
    backend = RabbitMQBackend.from_url(bad)
    with pytest.raises(BackendError) as err:
        await backend.open()
    assert "wr0ng-Pa55word" not in str(err.value)
    assert "\n" not in str(err.value)
    assert "wr0ng-Pa55word" not in caplog.text
    assert "wr0ng-Pa55word" not in repr(backend)


async def test_password_stays_out_of_logs_in_normal_use(
    make: Callable[..., RabbitMQBackend], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = make()
    assert backend.settings.password == "guest"
    await backend.open()
    await backend.enqueue([make_envelope("t", None)])
    (d,) = await backend.fetch(["default"], 1, lease=30, wait=5)
    await backend.settle([Settlement(d, "ack")])
    await backend.close()
    assert caplog.records, "expected debug logs to check"
    assert "guest:guest" not in caplog.text
    assert "guest:guest" not in repr(backend)


async def test_batched_acks_never_ack_what_was_not_settled(
    make: Callable[..., RabbitMQBackend],
) -> None:
    """Acks of a run of oldest deliveries go out as one ``multiple`` ack; that must never
    cover a delivery still running, released, or sitting in the local buffer."""
    producer = make()
    envs = [make_envelope("t", {"i": i}) for i in range(8)]
    await producer.enqueue(envs)
    worker = make()
    got = await drain(worker, 3)  # prefetch 6: more are buffered behind these
    await asyncio.sleep(0.2)
    got += await drain(worker, 3)
    ids = [decode(d.body).id for d in got]
    assert ids == [e.id for e in envs[:6]]
    # ack 0, 1 (a run: one multiple ack), 4 (alone); release 3; leave 2 and 5 running
    await worker.settle([Settlement(got[0], "ack"), Settlement(got[1], "ack"),
                         Settlement(got[3], "release"), Settlement(got[4], "ack")])
    await worker.close()
    other = make()
    back = await drain(other, 5)
    assert sorted(decode(d.body).id for d in back) == sorted(
        [ids[2], ids[3], ids[5], envs[6].id, envs[7].id])
    await other.settle([Settlement(d, "ack") for d in back])
