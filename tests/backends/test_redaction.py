"""No password in logs, errors or ``repr``: redis, postgres, the postgres command log, sqlite.

Each case puts a password in the URL, makes the backend fail the ways a user meets (a closed
port, a bad option, a bad port, a server that refuses the login or the database) with every
log record captured at DEBUG, and greps everything the user could see for the password: the
exception text with its chain, the records, ``repr``s and the CLI's ``-v`` output.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests._services import free_port, require_service
from tests.cli.conftest import REPO
from workhive.errors import WorkhiveError

SECRET = "Hunter2-s3cret"


def _leaks(*texts: str) -> list[str]:
    return [t for t in texts if SECRET in t or quote(SECRET, safe="") in t]


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:{SECRET}@{parts.netloc.rpartition('@')[2]}").geturl()


async def _failure(action: Callable[[], Awaitable[Any]] | Callable[[], Any]) -> str:
    """Everything a user sees of ``action``'s failure: message, chain, traceback."""
    try:
        result = action()
        if hasattr(result, "__await__"):
            await result
    except WorkhiveError as exc:
        return "".join(traceback.format_exception(exc))
    return ""


async def _cli_sees(*args: str) -> str:
    """What ``workhive -v ...`` prints (debug logs and the full traceback included)."""
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "workhive.cli", "-v", *args], cwd=REPO,
        capture_output=True, text=True, timeout=110)
    assert proc.returncode == 2, proc.stderr
    return proc.stdout + proc.stderr


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.mark.redis
async def test_redis(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis")
    from workhive.backends.redis import RedisBackend

    closed = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    backend = RedisBackend.from_url(closed)
    seen = [repr(backend), repr(backend.settings), await _failure(backend.open)]
    await backend.close()
    seen += [await _failure(lambda: RedisBackend.from_url(closed + "?bogus=1")),
             await _failure(lambda: RedisBackend.from_url(closed, prefix="no spaces")),
             await _failure(lambda: RedisBackend.from_url(
                 f"redis://u:{SECRET}@127.0.0.1:99999/0")),
             await _cli_sees("status", "--backend", closed)]
    # a real server that has no password set refuses AUTH with one
    live = RedisBackend.from_url(_with_password(require_service("redis")))
    seen += [repr(live), await _failure(live.open)]
    await live.close()
    assert all(seen[:3]) and "***" in seen[0]
    assert _leaks(*seen, caplog.text) == []


@pytest.mark.postgres
async def test_postgres(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("asyncpg")
    from workhive.backends.postgres import PostgresBackend

    closed = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/test?connect_timeout=2"
    backend = PostgresBackend.from_url(closed)
    seen = [repr(backend), repr(backend.settings), await _failure(backend.open)]
    await backend.close()
    seen += [await _failure(lambda: PostgresBackend.from_url(closed + "&pool_size=lots")),
             await _failure(lambda: PostgresBackend.from_url(closed, schema="Bad-Schema")),
             await _failure(lambda: PostgresBackend.from_url(
                 f"postgresql://u:{SECRET}@127.0.0.1:70000/db")),
             await _failure(lambda: PostgresBackend.from_url(
                 f"postgresql://u@127.0.0.1/db?password={SECRET}&bogus=1")),
             await _cli_sees("status", "--backend", closed)]
    live = urlsplit(_with_password(require_service("postgres")))
    missing_db = PostgresBackend.from_url(live._replace(path="/no_such_db_zz").geturl())
    seen += [repr(missing_db), await _failure(missing_db.open)]
    await missing_db.close()
    assert all(seen[:3]) and "***" in seen[0]
    assert _leaks(*seen, caplog.text) == []


@pytest.mark.postgres
async def test_postgres_command_log(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("asyncpg")
    from workhive.commandlog import open_log

    closed = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/test"
    log = open_log(closed)
    seen = [repr(log), log.url, await _failure(log.open)]
    await log.close()
    seen += [await _failure(lambda: open_log(f"postgresql://u:{SECRET}@h:70000/db")),
             await _failure(lambda: open_log(f"mysql://u:{SECRET}@h/db")),
             await _cli_sees("log", "tail", "--log", closed)]
    live = urlsplit(_with_password(require_service("postgres")))
    missing_db = open_log(live._replace(path="/no_such_db_zz").geturl())
    seen += [missing_db.url, await _failure(missing_db.open)]
    await missing_db.close()
    assert "***" in seen[1] and seen[2]
    assert _leaks(*seen, caplog.text) == []


async def test_sqlite_urls_with_a_host_part(caplog: pytest.LogCaptureFixture) -> None:
    from workhive.backends.sqlite import SQLiteBackend
    from workhive.commandlog import open_log

    seen = [await _failure(lambda: SQLiteBackend.from_url(f"sqlite://u:{SECRET}@h/x.db")),
            await _failure(lambda: SQLiteBackend.from_url(f"sqlite://u:{SECRET}@h/x.db?a=1")),
            await _failure(lambda: open_log(f"sqlite://u:{SECRET}@h/x.db")),
            await _cli_sees("status", "--backend", f"sqlite://u:{SECRET}@h/x.db")]
    assert all(seen)
    assert _leaks(*seen, caplog.text) == []
