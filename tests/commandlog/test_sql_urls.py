"""The SQL logs connect as the SQL backends do: same URL forms and errors, same isolation
(``?schema=`` on PostgreSQL), same redaction."""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path

import pytest

from tests._services import free_port, require_service, unique_name
from workhive.backends.sqlite import SQLiteBackend, SQLiteSettings
from workhive.commandlog import open_log
from workhive.commandlog.sqlite import SQLiteMessageLog
from workhive.errors import BackendUnavailable, ConfigError

SECRET = "Hunter2-s3cret"


@pytest.mark.parametrize("url", [
    "sqlite://", "sqlite:///", "sqlite://host/a.db", "sqlite:///:memory:",
    f"sqlite://u:{SECRET}@h/x.db",
])
def test_sqlite_log_refuses_the_backends_bad_urls_with_its_message(url: str) -> None:
    with pytest.raises(ConfigError) as backend:
        SQLiteSettings.from_url(url)
    with pytest.raises(ConfigError) as log:
        open_log(url)
    assert str(log.value) == str(backend.value)
    assert SECRET not in str(log.value)


def test_sqlite_log_options() -> None:
    log = open_log("sqlite:///a.db?busy_timeout=2.5&synchronous=full&prefix=p")
    assert isinstance(log, SQLiteMessageLog)
    assert (log.path, log.busy_timeout, log.synchronous, log.prefix) == ("a.db", 2.5, "FULL", "p")
    with pytest.raises(ConfigError, match="unknown sqlite log option.*bogus"):
        open_log("sqlite:///a.db?bogus=1")
    with pytest.raises(ConfigError, match="busy_timeout must be a number"):
        open_log("sqlite:///a.db?busy_timeout=soon")
    with pytest.raises(ConfigError, match="busy_timeout must be positive"):
        open_log("sqlite:///a.db?busy_timeout=0")


async def test_sqlite_log_open_fails_as_the_backend_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}"
    backend = SQLiteBackend.from_url(url)
    with pytest.raises(ConfigError) as backend_error:
        await backend.open()
    await backend.close()
    log = open_log(url)
    with pytest.raises(ConfigError) as log_error:
        await log.open()
    await log.close()
    assert str(log_error.value) == str(backend_error.value)


def test_postgres_log_takes_the_backends_options() -> None:
    pytest.importorskip("asyncpg")
    from workhive.commandlog.postgres import PostgresMessageLog

    log = open_log("postgres://u@h/db?prefix=p&schema=s&pool_size=3&sslmode=require")
    assert isinstance(log, PostgresMessageLog)
    assert (log.messages_table, log.checkpoints_table) == ("s.p_messages", "s.p_checkpoints")
    assert log.settings.pool_size == 3 and log.url == "postgresql://u@h/db?sslmode=require"
    default = PostgresMessageLog("postgresql://u@h/db")
    assert (default.messages_table, default.settings.pool_size) == ("public.workhive_messages", 10)
    with pytest.raises(ConfigError, match="unknown postgres log option 'bogus'"):
        open_log("postgresql://u@h/db?bogus=1")
    with pytest.raises(ConfigError, match="lower-case identifier"):
        open_log("postgresql://u@h/db?schema=Bad-Name")


@pytest.mark.postgres
async def test_schema_isolates_two_postgres_logs_of_one_prefix() -> None:
    asyncpg = pytest.importorskip("asyncpg")
    url, prefix = require_service("postgres"), unique_name("cl")
    schemas = unique_name("la"), unique_name("lb")
    a, also_a, b = (open_log(f"{url}?schema={s}&prefix={prefix}")
                    for s in (schemas[0], schemas[0], schemas[1]))
    spy = await asyncpg.connect(url)
    heard: list[str] = []
    sentinel = asyncio.Event()

    def hear(_con: object, _pid: int, _channel: str, payload: str) -> None:
        heard.append(payload)
        if payload == "sentinel":
            sentinel.set()

    try:
        for log in (a, also_a, b):
            await log.open()
        await spy.add_listener(b.channel, hear)  # b's channel, as b's own LISTEN hears it
        also_a_waiter = asyncio.create_task(also_a.wait_for(0, timeout=30))
        await asyncio.sleep(0)
        assert await a.append("a/x", b"{}") == 1
        assert await also_a_waiter is True, "a client of the same schema wakes"
        # notifications reach a listener in commit order: had a's append notified b's
        # channel, the spy would hear it before this later one
        await spy.execute("SELECT pg_notify($1, 'sentinel')", b.channel)
        await sentinel.wait()
        assert heard == ["sentinel"]
        assert [m.name for m in await also_a.read_after(0)] == ["a/x"]
        assert await b.head() == 0 and await b.read_after(0) == []
        assert await b.append("b/y", b"{}") == 1
        assert [m.name for m in await a.read_after(0)] == ["a/x"]
    finally:
        for log in (a, also_a, b):
            await log.close()
        for schema in schemas:
            await spy.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await spy.close()


@pytest.mark.postgres
async def test_postgres_log_on_a_closed_port_names_the_redacted_url() -> None:
    pytest.importorskip("asyncpg")
    log = open_log(f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/test"
                   "?connect_timeout=2&prefix=p")
    with pytest.raises(BackendUnavailable) as failure:
        await log.open()
    await log.close()
    assert log.url.startswith("postgresql://postgres:***@127.0.0.1:")
    assert log.url in str(failure.value)
    shown = "".join(traceback.format_exception(failure.value)) + repr(log)
    assert SECRET not in shown
