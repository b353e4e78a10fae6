"""Real SMTP delivery with stdlib ``smtplib``, and the line between "retry" and "give up".

``smtplib`` is blocking, so the notification worker calls :func:`deliver` through
``asyncio.to_thread``; ``smtp_timeout`` bounds every socket operation, so a hung server cannot
hold a worker thread forever. The classification follows RFC 5321: a 5xx reply is permanent
(:class:`PermanentSmtpError`, dead-lettered at once), while a 4xx reply, a refused connection
or a dropped one are transient and propagate unchanged so workhive retries with backoff.
"""

from __future__ import annotations

import hashlib
import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from examples.chatear.rendering import Rendered
from examples.chatear.settings import Settings


class PermanentSmtpError(Exception):
    """The server refused the message for good (5xx): retrying would only repeat the refusal."""

    def __init__(self, code: int, message: str, recipient: str) -> None:
        super().__init__(f"SMTP {code} for {recipient}: {message}")
        self.code = code
        self.recipient = recipient


def message_id(key: str, domain: str = "chatear.example") -> str:
    """A Message-ID derived from the idempotency key: a resend after a crash carries the same
    id, so the receiving side can drop the duplicate the worker could not prevent."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def build_message(settings: Settings, to: str, rendered: Rendered, key: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = rendered.subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id(key)
    msg.set_content(rendered.body)
    return msg


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


def deliver(settings: Settings, msg: EmailMessage) -> None:
    """Send ``msg`` (one recipient); raise PermanentSmtpError on 5xx, anything else as is."""
    recipient = str(msg["To"])
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                          timeout=settings.smtp_timeout) as smtp:
            if settings.smtp_user:
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls()
                    smtp.ehlo()
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        replies = list(exc.recipients.values())
        if replies and all(_is_permanent(code) for code, _ in replies):
            code, text = replies[0]
            raise PermanentSmtpError(code, _text(text), recipient) from exc
        raise
    except smtplib.SMTPResponseException as exc:
        if _is_permanent(exc.smtp_code):
            raise PermanentSmtpError(exc.smtp_code, _text(exc.smtp_error), recipient) from exc
        raise


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
