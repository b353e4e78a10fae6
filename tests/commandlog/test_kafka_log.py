"""The Kafka log (``kafka://host:9092/topic``) against a real broker (Tansu in tests).

The shared contract suite runs on it through the ``log`` fixture (conftest.py); these are the
scenarios that need the broker itself: concurrent appenders, reopening, a killed worker, the CLI,
ids as offset + 1, and the errors a user can cause.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests._services import free_port
from tests.backends.kafka.tansu import bootstrap
from tests.commandlog import _broker_cases as cases
from tests.commandlog.conftest import drop, kafka_log_url
from workhive.commandlog import MessageLog, open_log
from workhive.commandlog.kafka import KafkaMessageLog
from workhive.errors import BackendUnavailable, ConfigError

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


@pytest.fixture
async def url(kafka_url: str) -> AsyncIterator[str]:
    """A fresh log URL; its topics are deleted afterwards."""
    made = kafka_log_url(kafka_url)
    yield made
    await drop(KafkaMessageLog(made))


@pytest.fixture
async def opened(url: str) -> AsyncIterator[KafkaMessageLog]:
    log = KafkaMessageLog(url)
    await log.open()
    yield log
    await log.close()


async def test_gap_safe_tail_under_concurrent_appenders(url: str, opened: MessageLog) -> None:
    await cases.gap_safe_tail_under_concurrent_appenders(opened, lambda: KafkaMessageLog(url))


async def test_wait_for_wakes_on_another_clients_append(url: str, opened: MessageLog) -> None:
    await cases.wait_for_wakes_on_another_clients_append(opened, lambda: KafkaMessageLog(url))


async def test_checkpoints_survive_reopen(url: str) -> None:
    await cases.checkpoints_survive_reopen(lambda: KafkaMessageLog(url))


async def test_transaction_buffers_appends_and_refuses_sql(opened: MessageLog) -> None:
    await cases.transaction_buffers_appends_and_refuses_sql(opened)


async def test_ids_are_offset_plus_one_on_one_partition(
    kafka_url: str, opened: KafkaMessageLog
) -> None:
    ids = await opened.append_many([(f"a/{i}", str(i).encode(), None) for i in range(30)])
    assert ids == list(range(1, 31)) and await opened.head() == 30
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(kafka_url), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(opened.topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        records = []
        while len(records) < 30:
            records += (await consumer.getmany(tp, timeout_ms=5000)).get(tp, [])
        assert [(r.offset, r.value) for r in records] == [(i, str(i).encode()) for i in range(30)]
        assert consumer.partitions_for_topic(opened.topic) == {0}
    finally:
        await consumer.stop()
    assert [m.payload for m in await opened.read_after(9, 3)] == [b"9", b"10", b"11"]


async def test_reads_after_the_head_return_nothing_and_do_not_wait(opened: KafkaMessageLog) -> None:
    await opened.append_many([("a/x", b"{}", None)] * 3)
    assert await opened.read_after(3) == []
    assert await opened.read_after(100) == [], "an id past the head is not an error"
    other = KafkaMessageLog(opened.url)  # another client sees the appends at once
    await other.open()
    try:
        assert [m.id for m in await other.read_after(0)] == [1, 2, 3]
        await other.append("a/y", b"{}")
        assert [m.id for m in await opened.read_after(3)] == [4]
    finally:
        await other.close()


@pytest.mark.slow
async def test_kill_9_and_restart_resumes_from_checkpoint(url: str, tmp_path: Path) -> None:
    duplicated = await cases.kill_9_and_restart_resumes_from_checkpoint(url, tmp_path)
    assert len(duplicated) <= 1, "only the in-flight message's follow-up may be appended twice"


def test_cli_log_tail_and_workers(url: str) -> None:
    cases.cli_tail_and_workers(url)


def test_bad_urls_are_clear_config_errors() -> None:
    cases_ = {
        "kafka://127.0.0.1:9092": "needs the log's name",
        "redpanda://127.0.0.1:9092/": "needs the log's name",
        "kafka://127.0.0.1:9092/a/b": "takes one",
        "kafka://127.0.0.1:9092/bad:name": "must match",
        "kafka://127.0.0.1:9092/log?prefix=x": r"no \?prefix=",
        "kafka://127.0.0.1:9092/log?partitions=3": "unknown kafka log option 'partitions'",
        "kafka://127.0.0.1:9092/log?request_timeout=0": "'request_timeout' must be > 0",
        "kafka://127.0.0.1:notaport/log": "invalid kafka broker address",
    }
    for bad, reason in cases_.items():
        with pytest.raises(ConfigError, match=reason):
            open_log(bad)
    with pytest.raises(ConfigError, match="takes no prefix"):
        open_log("kafka://127.0.0.1:9092/log", prefix="p")


def test_urls_and_credentials() -> None:
    log = open_log("redpanda://alice:s3cret@h1:9092,h2:9093/orders.v1?tls=true&replication=3")
    assert isinstance(log, KafkaMessageLog)
    assert "s3cret" not in log.url and "s3cret" not in repr(log)
    assert log.url == "kafka://alice:***@h1:9092,h2:9093/orders.v1"
    assert log.topic == "orders.v1" and log.checkpoint_topic == "orders.v1.checkpoints"
    assert log.settings.tls and log.settings.replication == 3 and log.settings.password == "s3cret"


async def test_unreachable_broker_is_backend_unavailable_without_the_password() -> None:
    log = KafkaMessageLog(f"kafka://u:s3cret@127.0.0.1:{free_port()}/log?request_timeout=2")
    with pytest.raises(BackendUnavailable) as info:
        await log.open()
    assert "s3cret" not in str(info.value) and "127.0.0.1" in str(info.value)
    await log.close()


async def test_a_topic_with_more_partitions_is_refused(kafka_url: str) -> None:
    topic = f"clx{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(kafka_url))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
        log = KafkaMessageLog(f"{kafka_url}/{topic}")
        with pytest.raises(ConfigError, match="has 3 partitions; a command log needs exactly one"):
            await log.open()
        await log.close()
    finally:
        await admin.delete_topics([topic, f"{topic}.checkpoints"])
        await admin.close()


def test_a_missing_aiokafka_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiokafka", None)
    for module in [m for m in sys.modules if m.startswith(("workhive.commandlog.kafka",
                                                           "workhive.commandlog._kafka_io",
                                                           "workhive.backends.kafka"))]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ConfigError, match=r"pip install 'workhive\[kafka\]'"):
        open_log("kafka://127.0.0.1:9092/log")
