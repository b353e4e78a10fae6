"""Chatear's runtime settings, read from the environment the way seed 003's workers are.

One frozen object is built at startup and handed to the modules (no module-level globals), so
tests build their own: an SMTP port of a throwaway server, a database under ``tmp_path``, a
recovery window of a fraction of a second and a short email backoff.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the handlers need to reach the outside world.

    ``recovery_seconds`` is the window in which a deleted account can still be restored (24 h in
    production). ``email_retry_backoff`` is the first retry delay of a failed send; it doubles
    per attempt (workhive's exponential backoff with jitter), up to ``email_max_retries``.
    """

    db_path: str = "chatear.db"
    smtp_host: str = "localhost"
    smtp_port: int = 1025
    smtp_from: str = "Chatear <no-reply@chatear.example>"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_timeout: float = 10.0
    recovery_seconds: float = DAY
    email_max_retries: int = 5
    email_retry_backoff: float = 30.0
    public_url: str = "https://chatear.example"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``CHATEAR_*`` and the seed's ``SMTP_*`` variables; unset ones keep defaults."""
        env = os.environ if env is None else env
        base = cls()
        return cls(
            db_path=env.get("CHATEAR_DB", base.db_path),
            smtp_host=env.get("SMTP_HOST", base.smtp_host),
            smtp_port=int(env.get("SMTP_PORT", base.smtp_port)),
            smtp_from=env.get("SMTP_FROM", base.smtp_from),
            smtp_user=env.get("SMTP_USER", base.smtp_user),
            smtp_password=env.get("SMTP_PASS", base.smtp_password),
            smtp_timeout=float(env.get("SMTP_TIMEOUT", base.smtp_timeout)),
            recovery_seconds=float(env.get("CHATEAR_RECOVERY_SECONDS", base.recovery_seconds)),
            email_max_retries=int(env.get("CHATEAR_EMAIL_MAX_RETRIES", base.email_max_retries)),
            email_retry_backoff=float(
                env.get("CHATEAR_EMAIL_RETRY_BACKOFF", base.email_retry_backoff)),
            public_url=env.get("CHATEAR_PUBLIC_URL", base.public_url),
        )
