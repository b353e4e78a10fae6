"""Chatear's workers (seed 003) against a real SMTP server, on memory, SQLite and Redis.

Each test starts an aiosmtpd server on a free loopback port; mail is delivered by smtplib
through the real protocol, and the server's handler keeps what it accepted. Addresses steer
the server: ``bounce*`` is refused with 550, ``busy*`` gets 451 while ``busy_replies`` lasts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from examples.chatear import rendering
from examples.chatear.app import CONFIG_PATH, create_hive
from examples.chatear.app import hive as hive_factory
from examples.chatear.deletion import (
    DELETION_QUEUE,
    PURGE_QUEUE,
    TASK_PURGE,
    request_deletion,
    request_recovery,
    request_recovery_email,
)
from examples.chatear.mailer import message_id
from examples.chatear.notifications import EMAIL_QUEUE, TASK_SEND_EMAIL, send_email
from examples.chatear.settings import Settings
from examples.chatear.store import Store

from tests._services import free_port, require_service, unique_name
from workhive import Hive, QueueStats, load_config
from workhive._envelope import decode
from workhive.backend import DeadLetter, SupportsDeadLetters, SupportsInspect
from workhive.backends.redis import RedisBackend
from workhive.cli._app import resolve_app
from workhive.middleware.metrics import Metrics, TaskCounts
from workhive.testing import run_until_idle

# -- a real SMTP server -------------------------------------------------------------------


@dataclass
class SmtpSink:
    """aiosmtpd handler: keeps every accepted message, refuses some recipients on purpose."""

    messages: list[EmailMessage] = field(default_factory=list)
    busy_replies: int = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("bounce"):
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        if address.startswith("busy") and self.busy_replies > 0:
            self.busy_replies -= 1
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]




@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


# -- the app under test -------------------------------------------------------------------


@dataclass
class Chatear:
    hive: Hive
    store: Store
    settings: Settings
    sink: SmtpSink

    async def run(self, *, wait_delayed: bool = False) -> None:
        await run_until_idle(self.hive, wait_delayed=wait_delayed, timeout=30)

    async def stats(self, queue: str) -> QueueStats:
        backend = cast(SupportsInspect, self.hive.backend)
        found = [s for s in await backend.stats() if s.queue == queue]
        return found[0] if found else QueueStats(queue)

    async def dead(self, queue: str | None = None) -> list[DeadLetter]:
        return await cast(SupportsDeadLetters, self.hive.backend).dead_letters(queue)

    def counts(self, task: str) -> TaskCounts:
        metrics = next(m for m in self.hive.middleware if isinstance(m, Metrics))
        return metrics.counts[task]

    def actions(self, user_id: str) -> list[str]:
        return [e.action for e in self.store.audit_log(user_id)]


@pytest.fixture(params=["memory", "sqlite"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture
async def make_app(tmp_path: Path, smtp: tuple[SmtpSink, int],
                   monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Chatear]]:
    for var in ("WORKHIVE_BACKEND", "WORKHIVE_CONFIG", "WORKHIVE_SQLITE_PATH"):
        monkeypatch.delenv(var, raising=False)
    sink, port = smtp
    made: list[Hive] = []

    def factory(backend: Any, **overrides: Any) -> Chatear:
        settings = replace(Settings(db_path=str(tmp_path / "chatear.db"), smtp_host="127.0.0.1",
                                    smtp_port=port, smtp_timeout=5.0,
                                    email_retry_backoff=0.01), **overrides)
        hive = create_hive(settings=settings, backend=backend)
        made.append(hive)
        return Chatear(hive, Store(settings.db_path), settings, sink)

    yield factory
    for hive in made:
        await hive.close()


@pytest.fixture
def app(make_app: Callable[..., Chatear], backend_url: str) -> Chatear:
    return make_app(backend_url)


# -- templates ----------------------------------------------------------------------------


def test_templates_render_and_fail_loudly() -> None:
    welcome = rendering.render("welcome", {"name": "Ada", "app_url": "https://x.example"})
    assert welcome.subject == "Welcome to Chatear, Ada!"
    assert "Start a conversation at https://x.example." in welcome.body
    with pytest.raises(rendering.TemplateError, match="unknown email template '../etc'"):
        rendering.render("../etc", {})
    with pytest.raises(rendering.TemplateError, match="needs variable 'name'"):
        rendering.render("welcome", {"app_url": "u"})
    with pytest.raises(rendering.TemplateError, match="one line"):
        rendering.render("welcome", {"name": "x\nBcc: everyone@example.com", "app_url": "u"})


def test_settings_from_env() -> None:
    settings = Settings.from_env({"SMTP_HOST": "mail", "SMTP_PORT": "2525",
                                  "CHATEAR_DB": "/tmp/c.db", "CHATEAR_RECOVERY_SECONDS": "0.3"})
    assert (settings.smtp_host, settings.smtp_port) == ("mail", 2525)
    assert (settings.db_path, settings.recovery_seconds) == ("/tmp/c.db", 0.3)
    assert Settings.from_env({}) == Settings()  # localhost:1025, chatear.db, 24 h


async def test_the_factory_the_cli_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WORKHIVE_BACKEND", "memory")
    monkeypatch.setenv("CHATEAR_DB", str(tmp_path / "c.db"))
    built = hive_factory()  # environment only, as `workhive worker --app examples.chatear.app:hive`
    with_config = resolve_app(hive_factory, "examples.chatear.app:hive", load_config(CONFIG_PATH))
    for h in (built, with_config):  # `--config FILE` passes the HiveConfig positionally
        assert h.backend.name == "memory"
        assert sorted(h.tasks) == ["notify:send_email", "users:delete", "users:purge",
                                   "users:send_recovery_email"]
        await h.close()
    assert not (tmp_path / "c.db").exists()  # building a hive touches no database


# -- notification worker ------------------------------------------------------------------


async def test_email_arrives_rendered(app: Chatear) -> None:
    await send_email(app.hive, "ada@example.com", "welcome", {"name": "Ada"}, key="welcome-1")
    await app.run()
    (mail,) = app.sink.to("ada@example.com")
    assert mail["Subject"] == "Welcome to Chatear, Ada!"
    assert mail["From"] == app.settings.smtp_from
    assert mail["Message-ID"] == message_id("welcome-1")
    body = mail.get_body(("plain",))
    assert body is not None and "Hi Ada," in body.get_content()
    assert app.store.was_sent("welcome-1")


async def test_duplicate_enqueue_sends_once(app: Chatear) -> None:
    first = await send_email(app.hive, "ada@example.com", "welcome", {"name": "Ada"}, key="w-7")
    again = await send_email(app.hive, "ada@example.com", "welcome", {"name": "Ada"}, key="w-7")
    assert again.duplicate and again.id == first.id
    await app.run()
    assert len(app.sink.messages) == 1


async def test_redelivery_after_a_send_does_not_resend(app: Chatear) -> None:
    # as if an earlier delivery sent the mail and its worker died before the ack
    app.store.mark_sent("w-8", "ada@example.com", "welcome", 0.0)
    await send_email(app.hive, "ada@example.com", "welcome", {"name": "Ada"}, key="w-8")
    await app.run()
    assert app.sink.messages == []
    assert app.counts(TASK_SEND_EMAIL).skipped == 1


async def test_smtp_down_retries_then_dead_letters(make_app: Callable[..., Chatear],
                                                   backend_url: str) -> None:
    app = make_app(backend_url, smtp_port=free_port(), email_max_retries=2)
    await send_email(app.hive, "ada@example.com", "welcome", {"name": "Ada"}, key="w-9")
    await app.run(wait_delayed=True)
    (dead,) = await app.dead(EMAIL_QUEUE)
    assert "ConnectionRefusedError" in dead.reason and "(after 3 attempts)" in dead.reason
    assert len(decode(dead.body).history) == 3
    assert app.counts(TASK_SEND_EMAIL).retried == 2
    assert not app.store.was_sent("w-9")


async def test_smtp_4xx_is_retried_until_accepted(app: Chatear) -> None:
    app.sink.busy_replies = 1
    await send_email(app.hive, "busy@example.com", "welcome", {"name": "Bo"}, key="w-10")
    await app.run(wait_delayed=True)
    assert len(app.sink.to("busy@example.com")) == 1
    assert app.counts(TASK_SEND_EMAIL).retried == 1
    assert await app.dead() == []


async def test_smtp_550_dead_letters_at_once(app: Chatear) -> None:
    await send_email(app.hive, "bounce@example.com", "welcome", {"name": "B"}, key="w-11")
    await app.run(wait_delayed=True)
    (dead,) = await app.dead(EMAIL_QUEUE)
    assert dead.reason.startswith("SMTP 550 for bounce@example.com")
    assert len(decode(dead.body).history) == 1  # one attempt, no retry spent on it
    assert app.counts(TASK_SEND_EMAIL).retried == 0
    assert app.sink.messages == []


async def test_unknown_template_dead_letters(app: Chatear) -> None:
    await send_email(app.hive, "ada@example.com", "nope", key="w-12")
    await app.run()
    (dead,) = await app.dead(EMAIL_QUEUE)
    assert "unknown email template 'nope'" in dead.reason


# -- user-deletion worker -----------------------------------------------------------------


async def test_deletion_soft_deletes_audits_and_schedules_the_purge(app: Chatear) -> None:
    app.store.add_user("u1", "ada@example.com", "Ada")
    assert await request_deletion(app.hive, "u1") == 1
    await app.run()
    user = app.store.get_user("u1")
    assert user is not None and user.deleted_at is not None and user.purge_at is not None
    assert user.purge_at - user.deleted_at == pytest.approx(app.settings.recovery_seconds)
    assert app.actions("u1") == ["created", "deletion_scheduled"]
    assert (await app.stats(PURGE_QUEUE)).delayed == 1
    (mail,) = app.sink.to("ada@example.com")
    assert mail["Subject"].startswith("Your Chatear account will be deleted on ")
    body = mail.get_body(("plain",))
    assert body is not None and "/account/recover?user=u1" in body.get_content()


async def test_recovery_within_the_window_makes_the_purge_a_no_op(
        make_app: Callable[..., Chatear], backend_url: str) -> None:
    app = make_app(backend_url, recovery_seconds=0.3)
    app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run()
    await request_recovery(app.hive, "u1")
    await app.run()
    user = app.store.get_user("u1")
    assert user is not None and not user.is_deleted
    await app.run(wait_delayed=True)  # the purge comes due, finds the user restored
    assert app.counts(TASK_PURGE).skipped == 1
    assert app.store.get_user("u1") is not None
    assert app.actions("u1") == ["created", "deletion_scheduled", "restored"]


async def test_purge_after_the_window_hard_deletes(make_app: Callable[..., Chatear],
                                                   backend_url: str) -> None:
    app = make_app(backend_url, recovery_seconds=0.3)
    app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run(wait_delayed=True)
    assert app.store.get_user("u1") is None
    assert app.actions("u1") == ["created", "deletion_scheduled", "purged"]
    await request_recovery(app.hive, "u1")  # too late: nothing left to restore
    await app.run()
    assert app.store.get_user("u1") is None


async def test_deleted_again_after_recovery_waits_for_the_new_window(
        make_app: Callable[..., Chatear], backend_url: str) -> None:
    app = make_app(backend_url, recovery_seconds=0.3)
    app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run()
    await request_recovery(app.hive, "u1")
    await app.run()
    await request_deletion(app.hive, "u1")
    await app.run()
    second = app.store.get_user("u1")
    assert second is not None and second.purge_at is not None
    await app.run(wait_delayed=True)
    assert app.store.get_user("u1") is None
    *_, purged = app.store.audit_log("u1")
    assert purged.action == "purged" and purged.at >= second.purge_at
    assert app.actions("u1") == ["created", "deletion_scheduled", "restored",
                                 "deletion_scheduled", "purged"]
    # usually the first purge comes due inside the second window and defers itself to it; on a
    # slow machine it may come due before the second deletion and find the user restored
    purges = app.counts(TASK_PURGE)
    assert purges.succeeded == 1 and purges.deferred + purges.skipped == 1


async def test_the_eleventh_deletion_of_the_day_is_deferred(app: Chatear) -> None:
    for i in range(11):
        app.store.add_user(f"u{i}", f"user{i}@example.com")
        await request_deletion(app.hive, f"u{i}")
    await app.run()
    deleted = [i for i in range(11) if (u := app.store.get_user(f"u{i}")) and u.is_deleted]
    assert len(deleted) == 10
    deletions = await app.stats(DELETION_QUEUE)
    assert (deletions.delayed, deletions.dead) == (1, 0)
    assert (await app.stats(PURGE_QUEUE)).delayed == 10
    assert len(app.sink.messages) == 10
    assert await app.dead() == []


async def test_the_third_recovery_email_of_the_day_is_dead_lettered(app: Chatear) -> None:
    app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run()
    for _ in range(3):
        await request_recovery_email(app.hive, "u1")
    await app.run()
    subjects = [m["Subject"] for m in app.sink.to("ada@example.com")]
    assert subjects.count("Recover your Chatear account") == 2
    (dead,) = await app.dead(DELETION_QUEUE)
    assert dead.reason == "rate limit 2/86400s reached for rl:users:send_recovery_email:u1"


def test_store_refuses_recovery_after_the_window(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "c.db"))
    store.add_user("u1", "ada@example.com")
    assert store.restore("u1", 0.0) == "not_deleted"
    assert store.soft_delete("u1", now=100.0, purge_at=200.0) is not None
    again = store.soft_delete("u1", now=150.0, purge_at=250.0)
    assert again is not None and not again.changed and again.user.purge_at == 200.0
    assert store.purge("u1", now=150.0).status == "not_due"
    assert store.restore("u1", now=200.0) == "window_closed"
    assert [e.action for e in store.audit_log("u1")] == [
        "created", "deletion_scheduled", "recovery_refused"]
    assert store.purge("u1", now=200.0).status == "purged"
    assert store.restore("u1", now=201.0) == "unknown"


# -- on Redis -----------------------------------------------------------------------------


@pytest.fixture
async def redis_backend() -> AsyncIterator[RedisBackend]:
    backend = RedisBackend.from_url(require_service("redis"), prefix=unique_name("chatear"))
    try:
        yield backend
    finally:
        await backend.wipe()
        await backend.close()


@pytest.mark.redis
async def test_deletion_flow_on_redis(make_app: Callable[..., Chatear],
                                      redis_backend: RedisBackend) -> None:
    app = make_app(redis_backend, recovery_seconds=0.3)
    app.store.add_user("u1", "ada@example.com", "Ada")
    app.store.add_user("u2", "grace@example.com", "Grace")
    await request_deletion(app.hive, "u1")
    await request_deletion(app.hive, "u2")
    await app.run()
    assert (await app.stats(PURGE_QUEUE)).delayed == 2
    await request_recovery(app.hive, "u2")
    await app.run(wait_delayed=True)
    assert app.store.get_user("u1") is None
    assert app.actions("u1") == ["created", "deletion_scheduled", "purged"]
    assert app.actions("u2") == ["created", "deletion_scheduled", "restored"]
    assert len(app.sink.messages) == 2
    assert await app.dead() == []
