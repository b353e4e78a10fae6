"""The MessageLog contract, run against SQLite, PostgreSQL, NATS JetStream and Kafka."""

from __future__ import annotations

import asyncio

import pytest

from workhive.commandlog import MessageLog, open_log
from workhive.commandlog.sqlite import SQLiteMessageLog, SQLiteTransaction
from workhive.errors import ConfigError


async def test_append_read_head(log: MessageLog) -> None:
    assert await log.head() == 0
    assert await log.read_after(0) == []
    first = await log.append("a/x", b'{"n":1}', {"trace": "t1"})
    ids = await log.append_many([("a/y", b"{}", None), ("a/z", b"[]", None)])
    assert ids == [first + 1, first + 2]
    assert await log.head() == first + 2
    msgs = await log.read_after(0)
    assert [(m.id, m.name, m.payload) for m in msgs] == [
        (first, "a/x", b'{"n":1}'),
        (first + 1, "a/y", b"{}"),
        (first + 2, "a/z", b"[]"),
    ]
    assert msgs[0].metadata == {"trace": "t1"} and msgs[1].metadata == {}
    assert msgs[0].timestamp > 0
    assert [m.id for m in await log.read_after(first, limit=1)] == [first + 1]
    assert await log.append_many([]) == []


async def test_checkpoints(log: MessageLog) -> None:
    assert await log.get_checkpoint("w") == 0
    await log.save_checkpoint("w", 5)
    await log.save_checkpoint("w", 7)
    await log.save_checkpoint("v", 1)
    assert await log.get_checkpoint("w") == 7
    cps = await log.checkpoints()
    assert {k: v[0] for k, v in cps.items()} == {"v": 1, "w": 7}


async def test_transaction_commits_writes_appends_and_checkpoint_together(log: MessageLog) -> None:
    async with log.transaction() as tx:
        await log.append("a/x", b"{}")
        await tx.save_checkpoint("w", 1)
    assert await log.head() == 1 and await log.get_checkpoint("w") == 1

    with pytest.raises(RuntimeError):
        async with log.transaction() as tx:
            await log.append("a/y", b"{}")
            await log.save_checkpoint("w", 2)
            raise RuntimeError("handler failed")
    assert await log.head() == 1, "the append rolled back with the transaction"
    assert await log.get_checkpoint("w") == 1
    assert await log.append("a/z", b"{}") >= 2


async def test_wait_for_wakes_on_append_and_times_out(log: MessageLog) -> None:
    assert await log.wait_for(0, timeout=0.01) is False
    waiter = asyncio.create_task(log.wait_for(0, timeout=30))
    await asyncio.sleep(0)
    assert not waiter.done()
    await log.append("a/x", b"{}")
    assert await waiter is True
    assert await log.wait_for(0, timeout=0.01) is True  # already past


async def test_sqlite_wait_for_sees_another_connection(sqlite_log: SQLiteMessageLog) -> None:
    other = SQLiteMessageLog(sqlite_log.path)
    await other.open()
    try:
        waiter = asyncio.create_task(sqlite_log.wait_for(0, timeout=30))
        await asyncio.sleep(0.01)
        await other.append("a/x", b"{}")  # another connection, as another process would
        assert await waiter is True
    finally:
        await other.close()


async def test_sqlite_handler_writes_share_the_transaction(sqlite_log: SQLiteMessageLog) -> None:
    async with sqlite_log.transaction() as tx:
        await tx.execute("CREATE TABLE effects (id INTEGER PRIMARY KEY)")
        await tx.execute("INSERT INTO effects VALUES (?)", 1)
        assert await tx.fetch("SELECT id FROM effects") == [(1,)]
        assert isinstance(tx, SQLiteTransaction)
        assert await tx.run(lambda c: c.execute("SELECT count(*) FROM effects").fetchone()[0]) == 1


def test_open_log_urls(tmp_path: object) -> None:
    sq = open_log("sqlite:///rel/app.db?prefix=p1")
    assert isinstance(sq, SQLiteMessageLog) and sq.path == "rel/app.db" and sq.prefix == "p1"
    assert isinstance(open_log("sqlite:////abs/app.db"), SQLiteMessageLog)
    pg = open_log("postgresql://u@h:5/db?prefix=p2")
    assert pg.url == "postgresql://u@h:5/db" and getattr(pg, "prefix", None) == "p2"
    from workhive.commandlog.kafka import KafkaMessageLog
    from workhive.commandlog.nats import NatsMessageLog

    for url, cls, shown in [
        ("nats://h/LOG", NatsMessageLog, "nats://h:4222/LOG"),
        ("tls://h:4443/LOG", NatsMessageLog, "tls://h:4443/LOG"),
        ("kafka://h:9092/log", KafkaMessageLog, "kafka://h:9092/log"),
        ("redpanda://h/log", KafkaMessageLog, "kafka://h:9092/log"),
    ]:
        made = open_log(url)  # builds only: nothing connects until open()
        assert isinstance(made, cls) and made.url == shown
    for bad in ("redis://x", "sqlite://host/x", "sqlite:///x?synchronous=SOMETIMES",
                "nats://h:4222", "kafka://h:9092"):
        with pytest.raises(ConfigError):
            open_log(bad)
    with pytest.raises(ConfigError):
        open_log("sqlite:///x.db", prefix="bad-prefix;")
