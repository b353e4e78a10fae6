"""Chatear's runtime settings, read from the environment the way its workers always were.

One frozen object is built at startup and handed to the modules (no module-level globals), so
tests build their own: an SMTP port of a throwaway server, a database under ``tmp_path`` or a
schema of its own, a recovery window of a fraction of a second and a short email backoff.

Where the *queue* lives (NATS or the embedded SQLite file) and where rate-limit counters live
(Redis or that same file) is workhive's configuration, chosen in :mod:`.app` from ``NATS_URL``
and ``REDIS_URL``; this object carries what the handlers themselves use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

DAY = 86_400.0
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class SettingsError(ValueError):
    """An environment variable holds something the workers cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the handlers need to reach the outside world.

    ``database_url`` (``DATABASE_URL``) puts the state in PostgreSQL, in ``db_schema``; without
    it the state is the SQLite file ``db_path``. ``recovery_seconds`` is the window in which a
    deleted account can still be restored (24 h in production). ``rate_window_seconds`` is the
    "day" of the rate limits (10 deletions, 2 recovery emails per user). ``email_retry_backoff``
    is the first retry delay of a failed send; it doubles per attempt up to
    ``email_max_retries``. ``mail_claim_seconds`` is how long a mail another delivery is
    sending right now is left to it before this one looks again (see :mod:`.notifications`).
    """

    db_path: str = "chatear.db"
    database_url: str = ""
    db_schema: str = "public"
    smtp_host: str = "localhost"
    smtp_port: int = 1025
    smtp_from: str = "Chatear <no-reply@chatear.example>"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_timeout: float = 10.0
    recovery_seconds: float = DAY
    rate_window_seconds: float = DAY
    email_max_retries: int = 5
    email_retry_backoff: float = 30.0
    mail_claim_seconds: float = 60.0
    public_url: str = "https://chatear.example"

    def __post_init__(self) -> None:
        if not _SCHEMA_NAME.fullmatch(self.db_schema):
            raise SettingsError(f"CHATEAR_DB_SCHEMA must be a lower-case SQL name "
                                f"([a-z_][a-z0-9_]*), got {self.db_schema!r}")
        for name in ("smtp_timeout", "recovery_seconds", "rate_window_seconds",
                     "email_retry_backoff", "mail_claim_seconds"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.email_max_retries < 0:
            raise SettingsError(f"email_max_retries must be >= 0, got {self.email_max_retries}")

    def __repr__(self) -> str:  # never print the SMTP password or a database password
        return (f"Settings(state={'postgresql' if self.database_url else self.db_path!r}, "
                f"smtp={self.smtp_host}:{self.smtp_port})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the Go service's variables (``DATABASE_URL``, ``SMTP_*``) and ``CHATEAR_*`` ones;
        unset ones keep their defaults, a malformed number is a :class:`SettingsError`."""
        env = os.environ if env is None else env
        base = cls()

        def num(var: str, default: float, kind: type[float] | type[int] = float) -> float:
            raw = env.get(var)
            if raw is None or raw == "":
                return default
            try:
                return kind(raw)
            except ValueError:
                raise SettingsError(f"${var}: expected a number, got {raw!r}") from None

        return cls(
            db_path=env.get("CHATEAR_DB") or base.db_path,
            database_url=env.get("DATABASE_URL", base.database_url),
            db_schema=env.get("CHATEAR_DB_SCHEMA") or base.db_schema,
            smtp_host=env.get("SMTP_HOST") or base.smtp_host,
            smtp_port=int(num("SMTP_PORT", base.smtp_port, int)),
            smtp_from=env.get("SMTP_FROM") or base.smtp_from,
            smtp_user=env.get("SMTP_USER", base.smtp_user),
            smtp_password=env.get("SMTP_PASS", base.smtp_password),
            smtp_timeout=num("SMTP_TIMEOUT", base.smtp_timeout),
            recovery_seconds=num("CHATEAR_RECOVERY_SECONDS", base.recovery_seconds),
            rate_window_seconds=num("CHATEAR_RATE_WINDOW_SECONDS", base.rate_window_seconds),
            email_max_retries=int(num("CHATEAR_EMAIL_MAX_RETRIES", base.email_max_retries, int)),
            email_retry_backoff=num("CHATEAR_EMAIL_RETRY_BACKOFF", base.email_retry_backoff),
            mail_claim_seconds=num("CHATEAR_MAIL_CLAIM_SECONDS", base.mail_claim_seconds),
            public_url=env.get("CHATEAR_PUBLIC_URL") or base.public_url,
        )
