"""Chatear on its production stack: NATS JetStream, PostgreSQL (asyncpg), Redis, real SMTP.

Each test gets its own NATS stream prefix, PostgreSQL schema and Redis key prefix, all removed
afterwards, and its own aiosmtpd server. The app is configured the way it is deployed: through
``NATS_URL``, ``DATABASE_URL``, ``REDIS_URL`` and ``SMTP_*`` (plus the names that keep tests
apart). The last test runs real ``workhive worker`` processes and kills one with SIGKILL in the
middle of two SMTP conversations.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import asyncpg
import pytest
import redis.asyncio as aioredis
from examples.chatear.app import create_hive
from examples.chatear.deletion import (
    DELETION_QUEUE,
    EVENT_USER_DELETE,
    PURGE_QUEUE,
    RECOVERY_EMAIL_QUEUE,
    TASK_PURGE,
    request_deletion,
    request_recovery,
    request_recovery_email,
)
from examples.chatear.mailer import message_id
from examples.chatear.notifications import EMAIL_QUEUE, send_email
from examples.chatear.settings import Settings
from examples.chatear.store.postgres import PostgresStore

from tests._services import require_service, unique_name
from tests.examples.test_chatear import (
    Chatear,
    SmtpSink,
    check_store_outcomes,
    purge_now,
    smtp,
)
from workhive.backends.composite import Composite
from workhive.backends.nats import NatsBackend
from workhive.backends.redis import RedisBackend

__all__ = ["smtp"]  # the fixture, shared with test_chatear.py

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.nats, pytest.mark.postgres, pytest.mark.redis,
              pytest.mark.integration]

#: the rate-limit "day" in these tests: windows are aligned to multiples of their length, so a
#: window of ~31 years cannot end while a test counts its deletions (a real day could, at
#: midnight UTC); the limits' counts are the production ones
LONG_WINDOW = "1000000000"


@dataclass
class Stack:
    """One isolated copy of the production stack, described as environment variables."""

    env: dict[str, str]
    sink: SmtpSink
    nats_url: str
    redis_url: str
    pg_url: str

    @property
    def schema(self) -> str:
        return self.env["CHATEAR_DB_SCHEMA"]

    @property
    def redis_prefix(self) -> str:
        return self.env["WORKHIVE_REDIS_PREFIX"]


@pytest.fixture
async def stack(smtp: tuple[SmtpSink, int]) -> AsyncIterator[Stack]:
    nats_url = require_service("nats")
    pg_url = require_service("postgres")
    redis_url = require_service("redis")
    sink, port = smtp
    env = {
        "NATS_URL": nats_url, "DATABASE_URL": pg_url, "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_FROM": "Chatear <c@example.com>",
        # what keeps this test apart from every other run on the same servers
        "WORKHIVE_NATS_STREAM": unique_name("CHATEAR"),
        "WORKHIVE_REDIS_PREFIX": unique_name("chatear"),
        "CHATEAR_DB_SCHEMA": unique_name("chatear"),
        "CHATEAR_RATE_WINDOW_SECONDS": LONG_WINDOW,
        "CHATEAR_EMAIL_RETRY_BACKOFF": "0.05",
        "SMTP_TIMEOUT": "30",
    }
    yield Stack(env, sink, nats_url, redis_url, pg_url)
    nats = NatsBackend.from_url(nats_url, stream=env["WORKHIVE_NATS_STREAM"])
    await nats.wipe()
    redis = RedisBackend.from_url(redis_url, prefix=env["WORKHIVE_REDIS_PREFIX"])
    await redis.wipe()
    await redis.close()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{env["CHATEAR_DB_SCHEMA"]}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def make_app(stack: Stack) -> AsyncIterator[Callable[..., Chatear]]:
    made: list[Chatear] = []

    def factory(**env: str) -> Chatear:
        full = {**stack.env, **env}
        hive = create_hive(env=full)
        store = hive.services[0]
        assert isinstance(store, PostgresStore)
        app = Chatear(hive, store, Settings.from_env(full), stack.sink)
        made.append(app)
        return app

    yield factory
    for app in made:
        await app.hive.close()
        await app.store.close()


async def redis_counters(stack: Stack) -> dict[str, int]:
    """Every rate-limit counter under this test's prefix: ``{limit key: hits}``."""
    client = aioredis.from_url(stack.redis_url)
    try:
        keys = [k.decode() async for k in client.scan_iter(f"{stack.redis_prefix}:rl:fw:*")]
        values = [int(await client.hget(k, "c") or 0) for k in keys]
    finally:
        await client.aclose()
    # <prefix>:rl:fw:<period>:<limit key>, a hash whose "c" counts this window's hits
    return {k.split(":rl:fw:", 1)[1].split(":", 1)[1]: v for k, v in zip(keys, values, strict=True)}


async def pg_rows(stack: Stack, query: str) -> list[asyncpg.Record]:
    """Read the tables straight from PostgreSQL, as an operator would."""
    conn = await asyncpg.connect(stack.pg_url, server_settings={"search_path": stack.schema})
    try:
        return cast(list[asyncpg.Record], await conn.fetch(query))
    finally:
        await conn.close()


# -- the flows, in-process workers on the real stack --------------------------------------


async def test_the_app_runs_on_nats_postgres_and_redis(make_app: Callable[..., Chatear],
                                                      stack: Stack) -> None:
    app = make_app()
    assert isinstance(app.hive.backend, Composite)
    assert (app.hive.backend.transport.name, app.hive.backend.coordination.name) == (
        "nats", "redis")
    await check_store_outcomes(app.store)  # the interface's promises, on PostgreSQL


async def test_delete_then_recover_inside_the_window(make_app: Callable[..., Chatear],
                                                     stack: Stack) -> None:
    app = make_app()  # a day's window: it cannot close while the test runs
    await app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run()
    # soft delete + audit row + mail, each once
    assert await app.is_deleted("u1")
    assert await app.actions("u1") == ["created", "deletion_scheduled"]
    (mail,) = app.sink.messages
    assert mail["To"] == "ada@example.com"
    assert (await app.stats(PURGE_QUEUE)).delayed == 1
    await request_recovery(app.hive, "u1")
    await app.run()
    assert not await app.is_deleted("u1")
    (deletion,) = await app.store.deletions("u1")
    await purge_now(app, "u1", deletion.id)  # what the scheduled purge will find
    assert app.counts(TASK_PURGE).skipped == 1
    assert await app.actions("u1") == ["created", "deletion_scheduled", "recovered"]
    # what an operator sees in PostgreSQL
    users = await pg_rows(stack, "SELECT id, is_deleted, deleted_at FROM users")
    assert [(r["id"], r["is_deleted"], r["deleted_at"]) for r in users] == [("u1", False, None)]
    deletions = await pg_rows(stack, "SELECT status, purge_at - requested_at AS window "
                                     "FROM user_deletions")
    assert [(r["status"], r["window"].total_seconds()) for r in deletions] == [
        ("recovered", 86400.0)]
    sent = await pg_rows(stack, "SELECT status FROM sent_emails")
    assert [r["status"] for r in sent] == ["sent"]
    assert await app.dead() == []


async def test_purge_after_the_window(make_app: Callable[..., Chatear], stack: Stack) -> None:
    app = make_app(CHATEAR_RECOVERY_SECONDS="0.5")
    await app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run(wait_delayed=True)  # the purge, delayed on NATS until the window closes
    assert await app.store.get_user("u1") is None
    assert await app.actions("u1") == ["created", "deletion_scheduled", "purged"]
    purged = await pg_rows(stack, "SELECT status, resolved_at >= purge_at AS on_time "
                                  "FROM user_deletions")
    assert [(r["status"], r["on_time"]) for r in purged] == [("purged", True)]
    await request_recovery(app.hive, "u1")  # too late
    await app.run()
    assert await app.store.get_user("u1") is None
    assert len(app.sink.messages) == 1 and await app.dead() == []


async def test_rate_limits_are_counted_in_redis(make_app: Callable[..., Chatear],
                                                stack: Stack) -> None:
    app = make_app()
    for i in range(11):
        await app.store.add_user(f"u{i}", f"user{i}@example.com")
        await request_deletion(app.hive, f"u{i}")
    await app.run()
    deleted = [f"u{i}" for i in range(11) if await app.is_deleted(f"u{i}")]
    assert len(deleted) == 10  # the 11th of the day is deferred, not failed
    deletions = await app.stats(DELETION_QUEUE)
    assert (deletions.delayed, deletions.ready, deletions.dead) == (1, 0, 0)
    assert app.counts(EVENT_USER_DELETE).deferred == 1
    assert len(app.sink.messages) == 10

    user = deleted[0]
    for _ in range(3):
        await request_recovery_email(app.hive, user)
    await app.run()
    recovery = [m for m in app.sink.messages if m["Subject"] == "Recover your Chatear account"]
    assert len(recovery) == 2  # the third of the day is refused
    (dead,) = await app.dead(RECOVERY_EMAIL_QUEUE)
    assert dead.reason == (f"rate limit 2/{float(LONG_WINDOW):g}s reached for "
                           f"rl:users:send_recovery_email:{user}")
    # both limits were counted in Redis, where every worker process sees them
    assert await redis_counters(stack) == {"rl:user.delete": 10,
                                           f"rl:users:send_recovery_email:{user}": 2}


# -- kill -9 in the middle of sending -----------------------------------------------------


def start_worker(stack: Stack, log: Path, **env: str) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("WORKHIVE_", "CHATEAR_", "SMTP_"))}
    full.update(stack.env, PYTHONPATH=str(ROOT), **env)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "workhive.cli", "worker", "--app",
             "examples.chatear.app:hive"],
            env=full, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT)


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, log: Path,
                     procs: list[subprocess.Popen[bytes]], timeout: float = 90.0) -> None:
    """Poll ``check``; fail (with the workers' log) only if it never holds, or a worker died."""
    deadline = time.monotonic() + timeout
    while not await check():
        dead = [p.returncode for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = f"worker exited ({dead[0]})" if dead else f"still waiting after {timeout:g}s"
            tail = (await asyncio.to_thread(log.read_text))[-4000:]
            raise AssertionError(f"{why}, waiting for {what}:\n{tail}")
        await asyncio.sleep(0.05)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    running: list[subprocess.Popen[bytes]] = []
    yield running
    for proc in running:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(
        make_app: Callable[..., Chatear], stack: Stack, tmp_path: Path,
        procs: list[subprocess.Popen[bytes]]) -> None:
    env = {"CHATEAR_RECOVERY_SECONDS": "3600", "CHATEAR_MAIL_CLAIM_SECONDS": "1",
           "WORKHIVE_LEASE": "2"}
    app = make_app(**env)  # the producer: Chatear's API
    await app.hive.open()  # binds the groups: events are kept until a worker takes them
    users = {"u0": "hold-rcpt@example.com",  # server waits before accepting the recipient
             "u1": "hold-data@example.com",  # server took the message, waits before replying
             **{f"u{i}": f"user{i}@example.com" for i in range(2, 6)}}
    for user_id, email in users.items():
        await app.store.add_user(user_id, email)
        await request_deletion(app.hive, user_id)
    for i in range(20):
        await send_email(app.hive, f"w{i}@example.com", "welcome", {"name": f"W{i}"},
                         key=f"welcome-{i}")
    log = tmp_path / "workers.log"

    first = start_worker(stack, log, **env)
    procs.append(first)

    async def both_held() -> bool:
        """Kill when exactly two conversations are open: one before the message went out,
        one after the server took it. (A kill at any other moment of a send falls in one of
        these two cases, or in the instant between recording "committing" and writing the
        last line, where the mail is reported, not lost silently; the test pins the two.)"""
        if stack.sink.held != {"hold-rcpt@example.com", "hold-data@example.com"}:
            return False
        rows = await pg_rows(stack, "SELECT count(*) AS n FROM sent_emails "
                                    "WHERE status = 'sent'")
        return bool(rows[0]["n"] == 24)

    await wait_until(both_held, "two mails held, the other 24 sent", log, procs)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    procs.remove(first)
    stack.sink.release.set()  # the server finishes its side of both dead conversations

    second = start_worker(stack, log, **env)
    procs.append(second)
    expected = {*users.values(), *(f"w{i}@example.com" for i in range(20))}

    async def all_done() -> bool:
        if {m["To"] for m in stack.sink.messages} != expected or not await app.dead():
            return False
        stats = [await app.stats(q) for q in (EMAIL_QUEUE, DELETION_QUEUE)]
        return all(s.ready == 0 and s.in_flight == 0 and s.delayed == 0 for s in stats)

    await wait_until(all_done, "every mail", log, procs)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0, log.read_text()[-4000:]
    procs.remove(second)

    # every mail exactly once: the one interrupted before the message went out was sent by
    # the second worker; the one the server took before the kill was not sent again
    sent = Counter((m["To"], m["Subject"]) for m in stack.sink.messages)
    assert sorted(sent.values()) == [1] * 26, sent
    # every deletion exactly once, nothing lost
    for user_id in users:
        assert await app.is_deleted(user_id)
        assert await app.actions(user_id) == ["created", "deletion_scheduled"]
        assert len(await app.store.deletions(user_id)) == 1
    assert (await app.stats(PURGE_QUEUE)).delayed == 6  # one purge per deletion
    # the mail whose reply never came is parked for a person, not guessed at (once per
    # request: if the first worker died before acking u1's user.delete, the redelivered event
    # asked for the same mail again, and that request is parked too)
    deletion = await app.store.open_deletion("u1")
    assert deletion is not None
    key = f"deletion-scheduled:{deletion.id}"
    letters = await app.dead()
    assert letters and all(d.queue == EMAIL_QUEUE for d in letters)
    assert all(d.reason.startswith(f"email {key} to hold-data@example.com: delivery outcome "
                                   "unknown") and message_id(key) in d.reason for d in letters)
    rows = await pg_rows(stack, "SELECT message_key, status FROM sent_emails")
    ledger = {r["message_key"]: r["status"] for r in rows}
    assert len(ledger) == 26 and ledger[key] == "committing"
    assert Counter(ledger.values()) == {"sent": 25, "committing": 1}
