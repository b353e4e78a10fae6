"""Real SMTP delivery with stdlib ``smtplib``, split at the point of no return.

An SMTP server takes a message when it reads the line ``.`` that ends its DATA; until then a
dropped connection discards it. :class:`SmtpTransaction` therefore runs in two steps:
:meth:`~SmtpTransaction.prepare` (connect, log in, MAIL, RCPT, DATA and the whole message
except that final line) and :meth:`~SmtpTransaction.commit` (the final line and the reply).
Between them the notification worker records "committing" in its database, so after a crash
it can tell "certainly not sent" (resend) from "maybe sent" (do not resend).

Errors say which side of that line they are on, following RFC 5321: a 5xx reply is permanent
(:class:`PermanentSmtpError`, dead-lettered at once); a 4xx reply, a refused or dropped
connection before the final line are transient and propagate unchanged so workhive retries;
anything that goes wrong after the final line was sent and before a reply came back is
:class:`OutcomeUnknown`. ``smtplib`` is blocking, so the worker calls these methods through
``asyncio.to_thread``; ``smtp_timeout`` bounds every socket operation.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from examples.chatear.rendering import Rendered
from examples.chatear.settings import Settings

_CRLF = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")


class PermanentSmtpError(Exception):
    """The server refused the message for good (5xx): retrying would only repeat the refusal."""

    def __init__(self, code: int, message: str, recipient: str) -> None:
        super().__init__(f"SMTP {code} for {recipient}: {message}")
        self.code = code
        self.recipient = recipient


class OutcomeUnknown(Exception):
    """The final line of the message went out and no reply came back: the server may have
    taken the message or not, and resending could deliver it twice."""


def message_id(key: str, domain: str = "chatear.example") -> str:
    """A Message-ID derived from the mail's key: every attempt at one mail carries the same id,
    so a mail log can be searched for it and a receiving side can spot a duplicate."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def build_message(settings: Settings, to: str, rendered: Rendered, key: str) -> EmailMessage:
    """The message; ValueError for a header that would carry a line break."""
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


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _wire(msg: EmailMessage) -> bytes:
    """The DATA payload without its final ``.`` line: CRLF line ends, dots doubled."""
    raw = _CRLF.sub(b"\r\n", msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
    raw = _LEADING_DOT.sub(b"..", raw)
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


class SmtpTransaction:
    """One message to one recipient over one connection: ``prepare``, then ``commit`` (and
    ``quit``) or ``close``, which abandons it: the server discards a message whose end it
    never read."""

    def __init__(self, settings: Settings, msg: EmailMessage) -> None:
        self.settings = settings
        self.recipient = str(msg["To"])
        self.sender = parseaddr(str(msg["From"]))[1] or str(msg["From"])
        self.payload = _wire(msg)
        self._smtp: smtplib.SMTP | None = None

    def prepare(self) -> None:
        """Everything up to the final line. Raises PermanentSmtpError on 5xx, anything else
        (4xx, connection errors) as is; in every case nothing was delivered."""
        s = self.settings
        smtp = self._smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if s.smtp_user:
                if smtp.has_extn("starttls"):
                    smtp.starttls()
                    smtp.ehlo()
                smtp.login(s.smtp_user, s.smtp_password)
            options = []
            if any(b > 127 for b in self.payload) and smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            code, reply = smtp.mail(self.sender, options)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, self.sender)
            code, reply = smtp.rcpt(self.recipient)
            if code not in (250, 251):
                raise smtplib.SMTPResponseException(code, reply)
            code, reply = smtp.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, reply)
            smtp.send(self.payload)
        except smtplib.SMTPResponseException as exc:  # a refusal above, or 535 from login
            if _is_permanent(exc.smtp_code):
                raise PermanentSmtpError(exc.smtp_code, _text(exc.smtp_error),
                                         self.recipient) from exc
            raise

    def commit(self) -> None:
        """Send the final line and read the verdict. Returns when the server took the message;
        PermanentSmtpError / SMTPDataError when it refused it (certainly not delivered);
        OutcomeUnknown when the reply never came."""
        smtp = self._smtp
        if smtp is None:
            raise RuntimeError("commit() before prepare()")
        try:
            smtp.send(b".\r\n")
            code, reply = smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self.close()
            raise OutcomeUnknown(f"no reply after the message to {self.recipient} was sent: "
                                 f"{type(exc).__name__}: {exc}") from exc
        if code != 250:
            self.close()
            if _is_permanent(code):
                raise PermanentSmtpError(code, _text(reply), self.recipient)
            raise smtplib.SMTPDataError(code, reply)

    def quit(self) -> None:
        """Say goodbye after a commit (kept out of :meth:`commit` so the caller can record
        the 250 one round trip sooner); errors here change nothing."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()

    def close(self) -> None:
        """Drop the connection without a word (safe to call at any time, more than once)."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()
