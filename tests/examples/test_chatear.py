"""Chatear's workers against a real SMTP server, on the embedded stack (memory and SQLite).

Each test starts an aiosmtpd server on a free loopback port; mail is delivered by smtplib
through the real protocol, and the server's handler keeps what it accepted. Addresses steer
the server: ``bounce*`` is refused with 550, ``busy*`` gets 451 while ``busy_replies`` lasts,
``hold-rcpt*`` / ``hold-data*`` make it wait (before accepting the recipient / after taking
the message, before replying) until the test releases it. The NATS + PostgreSQL + Redis run is
in ``test_chatear_stack.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from examples.chatear import rendering
from examples.chatear.__main__ import main as chatear_cli
from examples.chatear.app import CONFIG_PATH, choose_stack, create_hive, load_chatear_config
from examples.chatear.app import hive as hive_factory
from examples.chatear.deletion import (
    DELETION_QUEUE,
    EVENT_USER_DELETE,
    PURGE_QUEUE,
    RECOVERY_EMAIL_QUEUE,
    TASK_PURGE,
    PurgeRequest,
    request_deletion,
    request_recovery,
    request_recovery_email,
)
from examples.chatear.mailer import message_id
from examples.chatear.notifications import EMAIL_QUEUE, EVENT_EMAIL_SEND, send_email
from examples.chatear.settings import Settings, SettingsError
from examples.chatear.store import Store, StoreError
from examples.chatear.store.postgres import PostgresStore
from examples.chatear.store.sqlite import SqliteStore

from tests._services import free_port, require_service, unique_name
from workhive import Hive, QueueStats, load_config
from workhive._envelope import decode
from workhive.backend import DeadLetter, SupportsDeadLetters, SupportsInspect
from workhive.backends.composite import Composite
from workhive.backends.redis import RedisBackend
from workhive.cli._app import resolve_app
from workhive.middleware.metrics import Metrics, TaskCounts
from workhive.testing import run_until_idle

# -- a real SMTP server -------------------------------------------------------------------


@dataclass
class SmtpSink:
    """aiosmtpd handler: keeps every accepted message, refuses or holds some on purpose."""

    messages: list[EmailMessage] = field(default_factory=list)
    busy_replies: int = 0
    held: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)

    async def _hold(self, address: str) -> None:
        """Wait until the test sets ``release`` (a threading.Event: the test runs elsewhere)."""
        self.held.add(address)
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("bounce"):
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        if address.startswith("busy") and self.busy_replies > 0:
            self.busy_replies -= 1
            return "451 4.3.0 try again later"
        if address.startswith("hold-rcpt") and not self.release.is_set():
            await self._hold(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)  # taken: from here on the mail exists, reply or not
        for address in envelope.rcpt_tos:
            if address.startswith("hold-data") and not self.release.is_set():
                await self._hold(address)
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
        sink.release.set()
        controller.stop()


# -- the app under test -------------------------------------------------------------------


@dataclass
class Chatear:
    hive: Hive
    store: Store
    settings: Settings
    sink: SmtpSink

    async def run(self, *, wait_delayed: bool = False) -> None:
        await run_until_idle(self.hive, wait_delayed=wait_delayed, timeout=60)

    async def stats(self, queue: str) -> QueueStats:
        backend = cast(SupportsInspect, self.hive.backend)
        found = [s for s in await backend.stats() if s.queue == queue]
        return found[0] if found else QueueStats(queue)

    async def dead(self, queue: str | None = None) -> list[DeadLetter]:
        backend = self.hive.backend
        if isinstance(backend, Composite) and isinstance(backend.transport, SupportsDeadLetters):
            backend = backend.transport  # a transport with its own dead letters keeps them
        return await cast(SupportsDeadLetters, backend).dead_letters(queue)

    def counts(self, name: str) -> TaskCounts:
        metrics = next(m for m in self.hive.middleware if isinstance(m, Metrics))
        return metrics.counts[name]

    async def actions(self, user_id: str) -> list[str]:
        return [e.action for e in await self.store.audit_log(user_id)]

    async def is_deleted(self, user_id: str) -> bool:
        user = await self.store.get_user(user_id)
        return user is not None and user.is_deleted


@pytest.fixture(params=["memory", "sqlite"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture
async def make_app(tmp_path: Path,
                   smtp: tuple[SmtpSink, int]) -> AsyncIterator[Callable[..., Chatear]]:
    sink, port = smtp
    made: list[Hive] = []

    def factory(backend: Any, **overrides: Any) -> Chatear:
        settings = replace(Settings(db_path=str(tmp_path / "chatear.db"), smtp_host="127.0.0.1",
                                    smtp_port=port, smtp_timeout=5.0,
                                    email_retry_backoff=0.01), **overrides)
        store = SqliteStore(settings.db_path)
        hive = create_hive(settings=settings, backend=backend, store=store, env={})
        made.append(hive)
        return Chatear(hive, store, settings, sink)

    yield factory
    for hive in made:
        await hive.close()


@pytest.fixture
def app(make_app: Callable[..., Chatear], backend_url: str) -> Chatear:
    return make_app(backend_url)


# -- templates, settings, the stack -------------------------------------------------------


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
    settings = Settings.from_env({
        "SMTP_HOST": "mail", "SMTP_PORT": "2525", "SMTP_USER": "u", "SMTP_PASS": "secret",
        "SMTP_FROM": "Chatear <hi@chatear.example>", "CHATEAR_DB": "/tmp/c.db",
        "DATABASE_URL": "postgresql://app:pw@db/chatear", "CHATEAR_DB_SCHEMA": "chat",
        "CHATEAR_RECOVERY_SECONDS": "0.3", "CHATEAR_RATE_WINDOW_SECONDS": "60"})
    assert (settings.smtp_host, settings.smtp_port) == ("mail", 2525)
    assert (settings.smtp_user, settings.smtp_password) == ("u", "secret")
    assert settings.smtp_from == "Chatear <hi@chatear.example>"
    assert (settings.db_path, settings.recovery_seconds) == ("/tmp/c.db", 0.3)
    assert (settings.database_url, settings.db_schema) == ("postgresql://app:pw@db/chatear",
                                                          "chat")
    assert settings.rate_window_seconds == 60
    assert "secret" not in repr(settings) and "pw" not in repr(settings)
    assert Settings.from_env({}) == Settings()  # localhost:1025, chatear.db, 24 h
    with pytest.raises(SettingsError, match=r"\$SMTP_PORT: expected a number, got 'abc'"):
        Settings.from_env({"SMTP_PORT": "abc"})
    with pytest.raises(SettingsError, match="CHATEAR_DB_SCHEMA must be"):
        Settings.from_env({"CHATEAR_DB_SCHEMA": "x; DROP TABLE users"})
    with pytest.raises(SettingsError, match="recovery_seconds must be > 0"):
        Settings.from_env({"CHATEAR_RECOVERY_SECONDS": "0"})


async def test_the_stack_follows_the_environment() -> None:
    embedded = choose_stack(load_chatear_config({}), {})
    assert (embedded.config.backend_url(), embedded.coordination) == (
        "sqlite:///chatear-queue.db", None)
    env = {"NATS_URL": "nats://nats.internal:4222", "REDIS_URL": "redis://cache:6379/2",
           "DATABASE_URL": "postgresql://app:pw@db:5432/chatear"}
    stack = choose_stack(load_chatear_config(env), env)
    assert (stack.config.backend_url(), stack.coordination) == (
        "nats://nats.internal:4222", "redis://cache:6379/2")
    own = {**env, "WORKHIVE_BACKEND": "sqlite", "WORKHIVE_COORDINATION": "sqlite"}
    mine = choose_stack(load_chatear_config(own), own)  # workhive's own variables win
    assert (mine.config.backend_url(), mine.coordination) == ("sqlite:///chatear-queue.db", None)
    queue_on_redis = {"REDIS_URL": "redis://cache:6379/2", "WORKHIVE_BACKEND": "redis"}
    assert choose_stack(load_chatear_config(queue_on_redis), queue_on_redis).coordination is None

    hive = create_hive(env=env)  # nothing connects yet
    try:
        assert isinstance(hive.backend, Composite)
        assert (hive.backend.transport.name, hive.backend.coordination.name) == ("nats", "redis")
        store = hive.services[0]
        assert isinstance(store, PostgresStore) and store.schema == "public"
        assert "pw" not in repr(store)
    finally:
        await hive.close()
    with pytest.raises(StoreError, match="must be a postgresql:// URL"):
        create_hive(env={"DATABASE_URL": "mysql://db/x"})


async def test_the_factory_the_cli_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("NATS_URL", "REDIS_URL", "DATABASE_URL", "WORKHIVE_COORDINATION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WORKHIVE_BACKEND", "memory")
    monkeypatch.setenv("CHATEAR_DB", str(tmp_path / "c.db"))
    built = hive_factory()  # environment only, as `workhive worker --app examples.chatear.app:hive`
    with_config = resolve_app(hive_factory, "examples.chatear.app:hive", load_config(CONFIG_PATH))
    for h in (built, with_config):  # `--config FILE` passes the HiveConfig positionally
        assert h.backend.name == "memory"
        assert sorted(h.tasks) == ["users:purge", "users:send_recovery_email"]
        assert sorted(s.name for s in h.subscribers) == [
            "notifications<-email.send", "user-deletion<-user.delete",
            "user-deletion<-user.recover"]
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
    assert await app.store.mail_status("welcome-1") == "sent"


async def test_the_seeds_event_shape_sends_subject_and_body(app: Chatear) -> None:
    # what Chatear's services publish: recipient, subject, body, no template
    await app.hive.publish(EVENT_EMAIL_SEND, {"recipient": "ada@example.com",
                                              "subject": "Your export is ready",
                                              "body": "Hi Ada,\n.\nDownload it here.\n"})
    await app.run()
    (mail,) = app.sink.to("ada@example.com")
    assert mail["Subject"] == "Your export is ready"
    body = mail.get_body(("plain",))
    assert body is not None  # the lone "." line survives (dot-stuffed on the wire)
    assert body.get_content().replace("\r\n", "\n") == "Hi Ada,\n.\nDownload it here.\n"


async def test_same_key_sends_once(make_app: Callable[..., Chatear], backend_url: str) -> None:
    # a claim long enough that the first sender never goes stale, even on a loaded machine (a
    # stale "committing" claim is dead-lettered as "outcome unknown": another test's story)
    app = make_app(backend_url, mail_claim_seconds=2.0)
    for _ in range(2):  # a retried API call: both requests run at once
        await send_email(app.hive, "ada@example.com", "welcome", {"name": "Ada"}, key="w-7")
    await app.run(wait_delayed=True)
    assert len(app.sink.messages) == 1
    # the second waits while the first sends, then finds it sent (or, had the first stalled
    # past the claim, takes over and the first stands down before its message goes out)
    counts = app.counts(EVENT_EMAIL_SEND)
    assert (counts.succeeded, counts.skipped) == (1, 1)


async def test_a_mail_already_sent_is_not_resent(app: Chatear) -> None:
    # as if an earlier delivery sent the mail and its worker died before the ack
    await app.store.claim_mail("w-8", "gone", "ada@example.com", "welcome", 0.0, 60.0)
    assert await app.store.mark_committing("w-8", "gone", 0.0)
    assert await app.store.mark_sent("w-8", "gone", 0.0)
    await send_email(app.hive, "ada@example.com", "welcome", {"name": "Ada"}, key="w-8")
    await app.run()
    assert app.sink.messages == []
    assert app.counts(EVENT_EMAIL_SEND).skipped == 1


async def test_a_sender_that_died_before_the_message_went_out_is_replaced(
        app: Chatear) -> None:
    # a worker claimed the mail, then died talking to SMTP: the server holds nothing
    await app.store.claim_mail("w-13", "gone", "ada@example.com", "welcome", 0.0, 60.0)
    await send_email(app.hive, "ada@example.com", "welcome", {"name": "Ada"}, key="w-13")
    await app.run()
    assert len(app.sink.to("ada@example.com")) == 1
    assert await app.store.mail_status("w-13") == "sent"
    assert not await app.store.mark_committing("w-13", "gone", 1.0)  # the old owner is out


async def test_no_reply_to_the_message_is_never_resent(make_app: Callable[..., Chatear],
                                                      backend_url: str) -> None:
    # the server takes the message and never answers: it may exist, so it is not sent again
    app = make_app(backend_url, smtp_timeout=2.0, email_max_retries=3)
    await send_email(app.hive, "hold-data@example.com", "welcome", {"name": "H"}, key="w-14")
    await app.run(wait_delayed=True)
    assert len(app.sink.to("hold-data@example.com")) == 1
    (dead,) = await app.dead(EMAIL_QUEUE)
    assert "delivery outcome unknown" in dead.reason and message_id("w-14") in dead.reason
    assert await app.store.mail_status("w-14") == "committing"
    assert len(decode(dead.body).history) == 1  # not retried: a retry could duplicate it


async def test_an_unknown_outcome_can_be_forgotten_and_replayed(app: Chatear,
                                                                capsys: Any) -> None:
    # a worker died after handing the message over: the next delivery refuses to guess
    await app.store.claim_mail("w-15", "gone", "ada@example.com", "welcome", 0.0, 60.0)
    assert await app.store.mark_committing("w-15", "gone", 0.0)
    await send_email(app.hive, "ada@example.com", "welcome", {"name": "Ada"}, key="w-15")
    await app.run()
    (dead,) = await app.dead(EMAIL_QUEUE)
    assert "python -m examples.chatear forget-mail w-15" in dead.reason
    assert app.sink.messages == []
    # the operator found no such Message-ID in the mail log: forget it, replay the letter
    assert await asyncio.to_thread(chatear_cli, ["forget-mail", "w-15"],
                                   env={"CHATEAR_DB": app.settings.db_path}) == 0
    assert "mail w-15 forgotten" in capsys.readouterr().out
    assert await cast(SupportsDeadLetters, app.hive.backend).replay_dead([dead.id]) == 1
    await app.run()
    assert len(app.sink.to("ada@example.com")) == 1
    assert await app.store.mail_status("w-15") == "sent"


async def test_smtp_down_retries_then_dead_letters(make_app: Callable[..., Chatear],
                                                   backend_url: str) -> None:
    app = make_app(backend_url, smtp_port=free_port(), email_max_retries=2)
    await send_email(app.hive, "ada@example.com", "welcome", {"name": "Ada"}, key="w-9")
    await app.run(wait_delayed=True)
    (dead,) = await app.dead(EMAIL_QUEUE)
    assert "ConnectionRefusedError" in dead.reason and "(after 3 attempts)" in dead.reason
    assert len(decode(dead.body).history) == 3
    assert app.counts(EVENT_EMAIL_SEND).retried == 2
    assert await app.store.mail_status("w-9") is None  # each failed attempt freed the key


async def test_smtp_4xx_is_retried_until_accepted(app: Chatear) -> None:
    app.sink.busy_replies = 1
    await send_email(app.hive, "busy@example.com", "welcome", {"name": "Bo"}, key="w-10")
    await app.run(wait_delayed=True)
    assert len(app.sink.to("busy@example.com")) == 1
    assert app.counts(EVENT_EMAIL_SEND).retried == 1
    assert await app.dead() == []


async def test_smtp_550_dead_letters_at_once(app: Chatear) -> None:
    await send_email(app.hive, "bounce@example.com", "welcome", {"name": "B"}, key="w-11")
    await app.run(wait_delayed=True)
    (dead,) = await app.dead(EMAIL_QUEUE)
    assert dead.reason.startswith("SMTP 550 for bounce@example.com")
    assert len(decode(dead.body).history) == 1  # one attempt, no retry spent on it
    assert app.counts(EVENT_EMAIL_SEND).retried == 0
    assert app.sink.messages == []
    assert await app.store.mail_status("w-11") is None


async def test_bad_requests_dead_letter(app: Chatear) -> None:
    await send_email(app.hive, "ada@example.com", "nope", key="w-12")
    await app.hive.publish(EVENT_EMAIL_SEND, {"recipient": "ada@example.com"})
    await app.hive.publish(EVENT_EMAIL_SEND, {"recipient": "ada@example.com\r\nBcc: x@y",
                                              "subject": "s", "body": "b"})
    await app.run()
    reasons = sorted(d.reason for d in await app.dead(EMAIL_QUEUE))
    assert len(reasons) == 3
    assert "needs template_name, or subject and body" in reasons[0]
    assert reasons[1].startswith("not an email address")
    assert "unknown email template 'nope'" in reasons[2]
    assert app.sink.messages == []


# -- user-deletion worker -----------------------------------------------------------------


async def test_deletion_soft_deletes_audits_and_schedules_the_purge(app: Chatear) -> None:
    await app.store.add_user("u1", "ada@example.com", "Ada")
    assert await request_deletion(app.hive, "u1") == 1
    await app.run()
    user = await app.store.get_user("u1")
    assert user is not None and user.is_deleted and user.deleted_at is not None
    (deletion,) = await app.store.deletions("u1")
    assert deletion.status == "scheduled"
    assert deletion.purge_at - deletion.requested_at == pytest.approx(
        app.settings.recovery_seconds)
    assert await app.actions("u1") == ["created", "deletion_scheduled"]
    assert (await app.stats(PURGE_QUEUE)).delayed == 1
    (mail,) = app.sink.to("ada@example.com")
    assert mail["Subject"].startswith("Your Chatear account will be deleted on ")
    assert mail["Message-ID"] == message_id(f"deletion-scheduled:{deletion.id}")
    body = mail.get_body(("plain",))
    assert body is not None and "/account/recover?user=u1" in body.get_content()


async def test_a_repeated_deletion_request_changes_nothing(app: Chatear) -> None:
    await app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run()
    await request_deletion(app.hive, "u1")  # a double click, or a redelivered event
    await app.run()
    assert len(await app.store.deletions("u1")) == 1
    assert await app.actions("u1") == ["created", "deletion_scheduled"]
    assert len(app.sink.messages) == 1
    assert (await app.stats(PURGE_QUEUE)).delayed == 1


async def test_recovery_within_the_window_makes_the_purge_a_no_op(app: Chatear) -> None:
    # the window is the default day, so it cannot close during the test however slow it runs;
    # the scheduled purge stays delayed, and the same purge run now shows what it will do
    await app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run()
    await request_recovery(app.hive, "u1")
    await app.run()
    assert not await app.is_deleted("u1")
    (deletion,) = await app.store.deletions("u1")
    assert deletion.status == "recovered"
    assert (await app.stats(PURGE_QUEUE)).delayed == 1
    await purge_now(app, "u1", deletion.id)
    assert app.counts(TASK_PURGE).skipped == 1
    assert await app.store.get_user("u1") is not None
    assert await app.actions("u1") == ["created", "deletion_scheduled", "recovered"]


async def purge_now(app: Chatear, user_id: str, deletion_id: int) -> None:
    """Run a deletion's purge at once (the scheduled one waits for the end of the window)."""
    await app.hive.enqueue(TASK_PURGE, PurgeRequest(user_id, deletion_id))
    await app.run()


async def test_purge_after_the_window_hard_deletes(make_app: Callable[..., Chatear],
                                                   backend_url: str) -> None:
    app = make_app(backend_url, recovery_seconds=0.3)
    await app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run(wait_delayed=True)
    assert await app.store.get_user("u1") is None
    assert await app.actions("u1") == ["created", "deletion_scheduled", "purged"]
    assert [d.status for d in await app.store.deletions("u1")] == ["purged"]
    await request_recovery(app.hive, "u1")  # too late: nothing left to restore
    await app.run()
    assert await app.store.get_user("u1") is None


async def test_deleted_again_after_recovery_gets_a_new_window(app: Chatear) -> None:
    await app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run()
    await request_recovery(app.hive, "u1")
    await app.run()
    await request_deletion(app.hive, "u1")
    await app.run()
    first, second = await app.store.deletions("u1")
    assert (first.status, second.status) == ("recovered", "scheduled")
    assert second.purge_at > first.purge_at
    assert (await app.stats(PURGE_QUEUE)).delayed == 2  # one purge per deletion
    await purge_now(app, "u1", first.id)  # the first window's purge: recovered, skipped
    await purge_now(app, "u1", second.id)  # the second: not due, deferred to its window
    purges = app.counts(TASK_PURGE)
    assert (purges.skipped, purges.deferred, purges.succeeded) == (1, 1, 0)
    assert await app.is_deleted("u1")
    assert await app.actions("u1") == ["created", "deletion_scheduled", "recovered",
                                       "deletion_scheduled"]
    assert len(app.sink.messages) == 2  # one "deletion scheduled" per deletion


async def test_the_eleventh_deletion_of_the_day_is_deferred(app: Chatear) -> None:
    for i in range(11):
        await app.store.add_user(f"u{i}", f"user{i}@example.com")
        await request_deletion(app.hive, f"u{i}")
    await app.run()
    deleted = [i for i in range(11) if await app.is_deleted(f"u{i}")]
    assert len(deleted) == 10
    deletions = await app.stats(DELETION_QUEUE)
    assert (deletions.delayed, deletions.dead) == (1, 0)
    assert app.counts(EVENT_USER_DELETE).deferred == 1
    assert (await app.stats(PURGE_QUEUE)).delayed == 10
    assert len(app.sink.messages) == 10
    assert await app.dead() == []


async def test_the_third_recovery_email_of_the_day_is_dead_lettered(app: Chatear) -> None:
    await app.store.add_user("u1", "ada@example.com", "Ada")
    await request_deletion(app.hive, "u1")
    await app.run()
    for _ in range(3):
        await request_recovery_email(app.hive, "u1")
    await app.run()
    subjects = [m["Subject"] for m in app.sink.to("ada@example.com")]
    assert subjects.count("Recover your Chatear account") == 2
    (dead,) = await app.dead(RECOVERY_EMAIL_QUEUE)
    assert dead.reason == "rate limit 2/86400s reached for rl:users:send_recovery_email:u1"


# -- the store and its command line -------------------------------------------------------


async def test_sqlite_store_outcomes(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "c.db"))
    await check_store_outcomes(store)


async def check_store_outcomes(store: Store) -> None:
    """The interface's promises; the PostgreSQL run is in test_chatear_stack.py."""
    await store.add_user("u1", "ada@example.com")
    assert await store.recover("u1", 0.0) == "not_deleted"
    assert await store.schedule_deletion("nobody", 0.0, 1.0) is None
    first = await store.schedule_deletion("u1", now=100.0, purge_at=200.0)
    assert first is not None and first.changed and first.user.is_deleted
    again = await store.schedule_deletion("u1", now=150.0, purge_at=250.0)
    assert again is not None and not again.changed and again.deletion == first.deletion
    assert (await store.purge(first.deletion.id, now=150.0)).status == "not_due"
    assert await store.recover("u1", now=200.0) == "window_closed"
    assert (await store.purge(first.deletion.id, now=200.0)).status == "purged"
    assert (await store.purge(first.deletion.id, now=201.0)).status == "already_purged"
    assert (await store.purge(first.deletion.id + 1000, now=201.0)).status == "unknown"
    assert await store.recover("u1", now=201.0) == "unknown"
    assert [e.action for e in await store.audit_log("u1")] == [
        "created", "deletion_scheduled", "recovery_refused", "purged"]
    assert [e.at for e in (await store.audit_log("u1"))[1:]] == [100.0, 200.0, 200.0]

    # the mail ledger: one owner at a time, and never a second send after "committing"
    claim = store.claim_mail
    assert (await claim("k", "a", "ada@example.com", "t", 10.0, 5.0)).status == "claimed"
    busy = await claim("k", "b", "ada@example.com", "t", 12.0, 5.0)
    assert (busy.status, busy.wait) == ("busy", 3.0)
    assert (await claim("k", "b", "ada@example.com", "t", 15.0, 5.0)).status == "claimed"
    assert not await store.mark_committing("k", "a", 16.0)  # taken over: a must not send
    assert await store.mark_committing("k", "b", 16.0)
    assert (await claim("k", "c", "ada@example.com", "t", 30.0, 5.0)).status == "unknown"
    assert await store.mail_status("k") == "committing"
    assert await store.forget_mail("k")
    assert (await claim("k", "d", "ada@example.com", "t", 31.0, 5.0)).status == "claimed"
    await store.release_mail("k", "somebody else")  # not the owner: nothing happens
    assert await store.mark_committing("k", "d", 32.0) and await store.mark_sent("k", "d", 33.0)
    assert (await claim("k", "e", "ada@example.com", "t", 99.0, 5.0)).status == "sent"
    assert not await store.forget_mail("k")  # a sent mail stays sent
    await store.close()


async def test_sqlite_store_refuses_a_foreign_users_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, deleted_at REAL)")
    with pytest.raises(StoreError, match="users lacks name, created_at, is_deleted"):
        await SqliteStore(str(path)).get_user("u1")


def test_the_command_line_adds_and_shows_users(tmp_path: Path, capsys: Any) -> None:
    env = {"CHATEAR_DB": str(tmp_path / "c.db")}
    assert chatear_cli(["add-user", "u1", "ada@example.com", "Ada"], env=env) == 0
    assert chatear_cli(["show", "u1"], env=env) == 0
    assert chatear_cli(["mail", "nope"], env=env) == 0
    assert chatear_cli(["forget-mail", "nope"], env=env) == 1
    out = capsys.readouterr().out
    assert "user u1 added" in out and "user u1: ada@example.com deleted=False" in out
    assert " created ada@example.com" in out and "no such mail" in out
    assert "mail nope is not pending" in out


# -- queue on Redis -----------------------------------------------------------------------


@pytest.fixture
async def redis_backend() -> AsyncIterator[RedisBackend]:
    backend = RedisBackend.from_url(require_service("redis"), prefix=unique_name("chatear"))
    try:
        yield backend
    finally:
        await backend.wipe()
        await backend.close()


@pytest.mark.redis
async def test_deletion_flow_with_the_queue_on_redis(make_app: Callable[..., Chatear],
                                                     redis_backend: RedisBackend) -> None:
    app = make_app(redis_backend, recovery_seconds=0.3)
    await app.store.add_user("u1", "ada@example.com", "Ada")
    await app.store.add_user("u2", "grace@example.com", "Grace")
    await request_deletion(app.hive, "u1")
    await request_deletion(app.hive, "u2")
    await app.run(wait_delayed=True)
    for user_id in ("u1", "u2"):
        assert await app.store.get_user(user_id) is None
        assert await app.actions(user_id) == ["created", "deletion_scheduled", "purged"]
    assert len(app.sink.messages) == 2
    assert await app.dead() == []
