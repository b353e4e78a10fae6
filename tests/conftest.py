"""Session-wide clean-up shared by every test folder.

RabbitMQ tests outside ``tests/backends/rabbitmq`` (which uses a vhost per test) isolate
themselves by a unique name prefix starting with this session's :data:`RABBIT_PREFIX`; their
queues and exchanges are deleted once, at the end of the session (one ``rabbitmqctl`` listing, then
deletes over AMQP), instead of a slow vhost per test.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator

import pytest

from tests._services import RABBIT_PREFIX, in_ci, reachable, service_url
from tests.backends.kafka.tansu import Broker, skip_reason, start_tansu, stop_tansu

# pytest-xdist's workers set COLUMNS=80 (and LINES); the CLI's tables would be cut at 80 columns
# there and not in a plain run. Tests see what a pipe sees, whichever way they are run.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    """One private Tansu broker (Kafka API) per test run, for every folder that needs Kafka."""
    reason = skip_reason()
    if reason is not None:
        if in_ci():
            pytest.fail(f"CI needs every broker: {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        broker = start_tansu()
    except RuntimeError as exc:
        if in_ci():
            pytest.fail(f"CI needs every broker: {exc}", pytrace=False)
        pytest.skip(str(exc))
    yield broker
    stop_tansu(broker)


def _names(kind: str) -> list[str]:
    try:
        out = subprocess.run(["rabbitmqctl", "-q", f"list_{kind}", "name"], check=True,
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [n for n in out.split() if n.startswith(RABBIT_PREFIX)]


@pytest.fixture(scope="session", autouse=True)
def _delete_rabbit_test_topology() -> Iterator[None]:
    yield
    url = service_url("rabbitmq")
    if not reachable(url):
        return
    try:
        import aio_pika
    except ImportError:
        return
    queues, exchanges = _names("queues"), _names("exchanges")
    if not queues and not exchanges:
        return

    async def delete() -> None:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)
            for exchange in exchanges:
                await channel.exchange_delete(exchange)

    try:
        asyncio.run(asyncio.wait_for(delete(), 60))
    except Exception as exc:  # clean-up must never fail or hang the run
        print(f"warning: RabbitMQ test clean-up incomplete: {exc!r}")
