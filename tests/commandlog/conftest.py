"""Fixtures: a real SQLite file per test and, when reachable, a real PostgreSQL log with its own
uniquely named tables, a NATS JetStream log with its own stream and checkpoint bucket, and a
Kafka log on its own topics (Tansu, tests/conftest.py's ``kafka_broker``); all dropped after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests._services import require_service, unique_name
from workhive.commandlog import MessageLog
from workhive.commandlog.sqlite import SQLiteMessageLog

#: logs without a database: their transaction() buffers appends and refuses SQL
BROKER_LOGS = ("nats", "kafka")


def nats_log_url() -> str:
    """A fresh ``nats://host:port/STREAM`` URL (skips when the server is not reachable)."""
    return f"{require_service('nats')}/CL{uuid.uuid4().hex[:12]}"


def kafka_log_url(broker_url: str) -> str:
    """A fresh ``kafka://host:port/topic`` URL on the session's broker."""
    return f"{broker_url.rstrip('/')}/cl{uuid.uuid4().hex[:12]}"


async def drop(log: MessageLog) -> None:
    """Open (the test may have closed it), delete everything the log made, close."""
    await log.open()
    await log.drop()  # type: ignore[attr-defined]
    await log.close()


@pytest.fixture
async def sqlite_log(tmp_path: Path) -> AsyncIterator[SQLiteMessageLog]:
    log = SQLiteMessageLog(str(tmp_path / "log.db"))
    await log.open()
    yield log
    await log.close()


@pytest.fixture
async def pg_log() -> AsyncIterator[MessageLog]:
    url = require_service("postgres")
    from workhive.commandlog.postgres import PostgresMessageLog

    log = PostgresMessageLog(url, prefix=unique_name("cl"))
    await log.open()
    yield log
    await drop(log)


@pytest.fixture
async def nats_log() -> AsyncIterator[MessageLog]:
    from workhive.commandlog.nats import NatsMessageLog

    log = NatsMessageLog(nats_log_url())
    await log.open()
    yield log
    await drop(log)


@pytest.fixture
def kafka_url(request: pytest.FixtureRequest) -> str:
    """The session broker's URL (only Kafka tests start it)."""
    return str(request.getfixturevalue("kafka_broker").url)


@pytest.fixture
async def kafka_log(kafka_url: str) -> AsyncIterator[MessageLog]:
    from workhive.commandlog.kafka import KafkaMessageLog

    log = KafkaMessageLog(kafka_log_url(kafka_url))
    await log.open()
    yield log
    await drop(log)


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("nats", marks=[pytest.mark.nats, pytest.mark.integration]),
        pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.integration]),
    ]
)
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MessageLog]:
    """The same contract test against every log implementation."""
    if request.param == "sqlite":
        sq = SQLiteMessageLog(str(tmp_path / "log.db"))
        await sq.open()
        yield sq
        await sq.close()
        return
    made: MessageLog
    if request.param == "postgres":
        from workhive.commandlog.postgres import PostgresMessageLog

        made = PostgresMessageLog(require_service("postgres"), prefix=unique_name("cl"))
    elif request.param == "nats":
        from workhive.commandlog.nats import NatsMessageLog

        made = NatsMessageLog(nats_log_url())
    else:
        from workhive.commandlog.kafka import KafkaMessageLog

        made = KafkaMessageLog(kafka_log_url(str(request.getfixturevalue("kafka_broker").url)))
    await made.open()
    yield made
    await drop(made)
