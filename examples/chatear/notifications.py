"""The notification worker: ``email.send`` events become mail, sent once.

The event is the one Chatear's services already publish::

    {"recipient": "user@example.com", "subject": "...", "body": "...",
     "template_name": "welcome"}                         # template_name optional

plus two optional fields: ``vars`` (the template's variables) and ``key`` (what makes two
requests the same mail; default: the event's id). With ``template_name`` the template gives
subject and body (``templates/<name>.txt``); without it ``subject`` and ``body`` are sent as
they are.

Failures map onto workhive's machinery: a transient SMTP problem (server down, 4xx) is an
ordinary exception, retried with exponential backoff and dead-lettered with the last error
when retries run out; a 5xx or a bad request is :class:`~workhive.errors.Reject`, straight to
the dead-letter queue.

**Sent once, even across crashes.** Delivery is at-least-once (a worker killed before its ack
gets its messages redelivered), so the mail's key goes through a ledger in the state database
(``sent_emails``), written around the SMTP dialogue:

1. *claim* the key (``sending``, owned by this delivery attempt) before connecting. A key
   already ``sent`` is skipped; one another delivery holds is left to it for
   ``mail_claim_seconds`` (retried later, not counted as a failure), then taken over if it
   never got past step 2.
2. run the dialogue up to the last line of the message, then move the row to ``committing``
   — only if this attempt still owns it, so a taken-over sender stops here and the server
   discards its half-sent message;
3. send the last line; on the server's 250 the row becomes ``sent``. A definite refusal
   deletes the row (nothing was delivered; a retry claims it afresh).

A crash before step 2 leaves ``sending``: provably not delivered, so it is resent. A crash
between steps 2 and 3 — the only moment when the server may hold the message without the
worker knowing — leaves ``committing``: the next delivery does *not* resend but dead-letters
the request ("outcome unknown"), naming the Message-ID to look up in the mail log. Why this
side: a missing mail is visible and fixable (check the log; ``python -m examples.chatear
forget-mail KEY`` then ``workhive dlq replay``), a duplicate cannot be taken back. Recording only
after SMTP would resend in that window; recording only before would lose mail on any crash
during the dialogue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import time
import uuid
from email.message import EmailMessage

import msgspec
from examples.chatear import mailer, rendering
from examples.chatear.settings import Settings
from examples.chatear.store import Store

from workhive import Hive, Module, TaskContext
from workhive.errors import Reject, Retry, Skip

logger = logging.getLogger(__name__)

EVENT_EMAIL_SEND = "email.send"
GROUP = "notifications"
EMAIL_QUEUE = f"@{GROUP}"


class EmailRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """The ``email.send`` payload; unknown fields are ignored (newer producers)."""

    recipient: str
    subject: str = ""
    body: str = ""
    template_name: str = ""
    vars: dict[str, str] = {}
    key: str = ""


class Notifier:
    """The handler, bound to its settings and store (no module-level state to reset)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def _render(self, p: EmailRequest) -> rendering.Rendered:
        if "@" not in p.recipient or any(c.isspace() for c in p.recipient):
            raise Reject(f"not an email address: {p.recipient!r}")
        if p.template_name:
            try:
                return rendering.render(p.template_name,
                                        {"app_url": self.settings.public_url, **p.vars})
            except rendering.TemplateError as exc:
                raise Reject(str(exc)) from exc
        if not p.subject or not p.body:
            raise Reject("email.send needs template_name, or subject and body")
        return rendering.Rendered(p.subject, p.body)

    async def send(self, p: EmailRequest, ctx: TaskContext) -> None:
        key = p.key or ctx.id
        rendered = self._render(p)
        try:
            msg = mailer.build_message(self.settings, p.recipient, rendered, key)
        except ValueError as exc:  # a line break in a header
            raise Reject(f"email {key}: {exc}") from exc
        owner = f"{ctx.id}#{ctx.attempt}:{uuid.uuid4().hex[:8]}"
        claim = await self.store.claim_mail(key, owner, p.recipient,
                                            p.template_name or "(literal)", time.time(),
                                            self.settings.mail_claim_seconds)
        if claim.status == "sent":
            logger.info("email %s to %s was already sent; skipping the redelivery", key,
                        p.recipient)
            raise Skip
        if claim.status == "busy":  # look again when it is done, or stale
            raise Retry(min(claim.wait, self.settings.smtp_timeout), count=False,
                        reason=f"email {key} is being sent by another delivery")
        if claim.status == "unknown":
            raise Reject(self._unknown(key, p.recipient, msg))
        await self._deliver(key, owner, msg)
        logger.info("sent %s email to %s (%s)", p.template_name or "literal", p.recipient, key)

    async def _deliver(self, key: str, owner: str, msg: EmailMessage) -> None:
        tx = mailer.SmtpTransaction(self.settings, msg)
        try:
            try:
                await asyncio.to_thread(tx.prepare)
            except mailer.PermanentSmtpError as exc:
                await self._release(key, owner)
                raise Reject(str(exc)) from exc
            except BaseException:
                await self._release(key, owner)  # the server holds nothing: a retry sends
                raise
            if not await self.store.mark_committing(key, owner, time.time()):
                logger.warning("email %s was taken over by another delivery; leaving it", key)
                raise Skip
            try:
                await asyncio.to_thread(tx.commit)
            except mailer.OutcomeUnknown as exc:
                raise Reject(self._unknown(key, tx.recipient, msg, str(exc))) from exc
            except mailer.PermanentSmtpError as exc:
                await self._release(key, owner)
                raise Reject(str(exc)) from exc
            except smtplib.SMTPDataError:  # 4xx to the message: refused, retry it
                await self._release(key, owner)
                raise
            # anything else here (a cancelled commit) leaves "committing": maybe sent
            if not await self.store.mark_sent(key, owner, time.time()):
                logger.warning("email %s was sent, but its ledger row changed meanwhile", key)
            await asyncio.to_thread(tx.quit)
        finally:
            tx.close()

    async def _release(self, key: str, owner: str) -> None:
        with contextlib.suppress(Exception):  # best effort: a stale claim is taken over later
            await self.store.release_mail(key, owner)

    @staticmethod
    def _unknown(key: str, recipient: str, msg: EmailMessage, detail: str = "") -> str:
        return (f"email {key} to {recipient}: delivery outcome unknown (a sender stopped after "
                f"handing it to the SMTP server, before its reply"
                f"{': ' + detail if detail else ''}); not resent, to avoid a duplicate. "
                f"Look for Message-ID {msg['Message-ID']} in the mail log; if it is not there, "
                f"run `python -m examples.chatear forget-mail {key}` and replay this letter")


def build_notifications_module(settings: Settings, store: Store) -> Module:
    """The ``notify`` module; retry policy comes from settings (30 s base in production)."""
    module = Module("notify")
    notifier = Notifier(settings, store)
    module.subscribe(
        EVENT_EMAIL_SEND,
        group=GROUP,
        max_retries=settings.email_max_retries,
        retry_backoff=settings.email_retry_backoff,
        # smtplib in a thread cannot be cancelled; its own socket timeout ends it first
        timeout=settings.smtp_timeout * 4,
    )(notifier.send)
    return module


async def send_email(hive: Hive | TaskContext, recipient: str, template_name: str = "",
                     variables: dict[str, str] | None = None, *, key: str, subject: str = "",
                     body: str = "") -> int | None:
    """Producer API: publish one ``email.send``. ``key`` names the mail: requests with the same
    key (a retried API call, a redelivered handler) send it once."""
    return await hive.publish(EVENT_EMAIL_SEND, EmailRequest(
        recipient, subject, body, template_name, dict(variables or {}), key))
