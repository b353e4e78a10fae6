"""Fixtures: a real SQLite file per test and, when reachable, a real PostgreSQL log with its own
uniquely named tables (dropped afterwards)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests._services import require_service, unique_name
from workhive.commandlog import MessageLog
from workhive.commandlog.sqlite import SQLiteMessageLog


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
    await log.open()  # the test may have closed it
    await log.drop()
    await log.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
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
    url = require_service("postgres")
    from workhive.commandlog.postgres import PostgresMessageLog

    pg = PostgresMessageLog(url, prefix=unique_name("cl"))
    await pg.open()
    yield pg
    await pg.open()  # the test may have closed it
    await pg.drop()
    await pg.close()
