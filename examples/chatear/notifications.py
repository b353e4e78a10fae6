"""Seed 003's notification worker: ``notify:send_email`` renders a template and sends it by SMTP.

Failures map onto workhive's machinery instead of hand-rolled loops: a transient SMTP problem
(server down, 4xx) is an ordinary exception, so the ``Retries`` middleware retries it with
exponential backoff and, out of retries, dead-letters it with the last error; a permanent 5xx
or a bad template is :class:`~workhive.errors.Reject`, straight to the dead-letter queue.

Sending twice is guarded at two levels. Producers pass an ``idempotency_key``, so a duplicate
*enqueue* stores one message. The handler records each sent message's key in the SQL store
(``sent_messages``) after the server accepted it, and skips a key it has already sent, so a
*redelivery* (a worker killed after sending but before its ack) does not mail again. The
remaining window — killed between the SMTP reply and that insert — is at-least-once by nature;
the Message-ID derived from the key lets the receiving side drop that duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from examples.chatear import mailer, rendering
from examples.chatear.settings import Settings
from examples.chatear.store import Store

from workhive import EnqueueResult, Hive, Module, TaskContext
from workhive.errors import Reject, Skip

logger = logging.getLogger(__name__)

TASK_SEND_EMAIL = "notify:send_email"
EMAIL_QUEUE = "emails"


class SendEmail(msgspec.Struct, frozen=True):
    """``vars`` fill the template; ``app_url`` is provided unless the producer overrides it."""

    to: str
    template: str
    vars: dict[str, str] = {}


class Notifier:
    """The handler, bound to its settings and store (no module-level state to reset)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    async def send_email(self, p: SendEmail, ctx: TaskContext) -> None:
        key = ctx.envelope.idempotency_key or ctx.id
        if await asyncio.to_thread(self.store.was_sent, key):
            logger.info("email %s to %s was already sent; skipping the redelivery", key, p.to)
            raise Skip
        try:
            rendered = rendering.render(p.template, {"app_url": self.settings.public_url,
                                                     **p.vars})
        except rendering.TemplateError as exc:
            raise Reject(str(exc)) from exc
        msg = mailer.build_message(self.settings, p.to, rendered, key)
        try:
            await asyncio.to_thread(mailer.deliver, self.settings, msg)
        except mailer.PermanentSmtpError as exc:
            raise Reject(str(exc)) from exc
        await asyncio.to_thread(self.store.mark_sent, key, p.to, p.template, time.time())
        logger.info("sent %s email to %s (%s)", p.template, p.to, key)


def build_notifications_module(settings: Settings, store: Store) -> Module:
    """The ``notify`` module; retry policy comes from settings (30 s base in production)."""
    module = Module("notify")
    notifier = Notifier(settings, store)
    module.task(
        TASK_SEND_EMAIL,
        queue=EMAIL_QUEUE,
        max_retries=settings.email_max_retries,
        retry_backoff=settings.email_retry_backoff,
        retry_backoff_max=max(settings.email_retry_backoff, 3600.0),
        # smtplib in a thread cannot be cancelled; its own socket timeout ends it first
        timeout=settings.smtp_timeout * 4,
    )(notifier.send_email)
    return module


async def send_email(hive: Hive | TaskContext, to: str, template: str,
                     variables: dict[str, str] | None = None, *, key: str) -> EnqueueResult:
    """Producer API: ask for one email. ``key`` makes the request idempotent — the same key
    enqueued twice (a retried API call, a redelivered event) sends one email."""
    return await hive.enqueue(TASK_SEND_EMAIL,
                              SendEmail(to, template, dict(variables or {})),
                              idempotency_key=key)
