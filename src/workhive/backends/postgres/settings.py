"""Settings, connection plumbing and error translation for the ``postgres`` backend.

Why a module of its own: URL parsing, the password's whereabouts and the mapping of asyncpg's
errors onto :mod:`workhive.errors` are needed by every part of the backend, and none of them
may ever print a password. The password therefore lives only in
:attr:`PostgresSettings.password` (``repr=False``); :attr:`PostgresSettings.url` has it
stripped, and :attr:`PostgresSettings.redacted_url` is what errors and logs show.

URL form::

    postgresql://[user[:password]@]host[:port]/database[?schema=app&pool_size=8&sslmode=require]
    postgres://...                      same thing
    postgresql://app@pgbouncer:6432/db?pooler=transaction&listen_url=postgresql://app@db:5432/db

Keyword options override query parameters. The password comes from the URL, else from the
``PGPASSWORD`` environment variable. ``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``,
``application_name`` and ``target_session_attrs`` are passed through to asyncpg untouched.
``pooler`` and ``listen_url`` describe a connection pooler in front of the server
(:mod:`workhive.backends.postgres.pooling`); a ``listen_url`` password, like the main one, is
kept out of every URL the settings show.
"""

from __future__ import annotations

import math
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import asyncpg

from workhive._redact import netloc_password, redact, redact_url
from workhive.backends.postgres.pooling import (
    LISTENING_INTERVAL,
    POLLING_INTERVAL,
    check_pooler,
    split_listen_url,
)
from workhive.errors import BackendError, BackendUnavailable, ConfigError

_SCHEMES = {"postgres", "postgresql"}
# a plain lower-case identifier: no quoting surprises in DDL, LISTEN channels or pg_notify
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,57}$")
#: query parameters asyncpg itself understands; kept in the DSN it is given
_PASSTHROUGH = {"sslmode", "sslrootcert", "sslcert", "sslkey", "application_name",
                "target_session_attrs"}

#: asyncpg / socket errors meaning "the server cannot be reached (any more)".
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    socket.gaierror,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
#: every error the driver raises, for ``except`` clauses that hand it to :meth:`translate`
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError,
    *UNREACHABLE,
)


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """Validated connection settings for a Postgres backend.

    ``schema``: every table lives in this schema, so several apps (or test runs) share one
    database; restricted to lower-case ``[a-z0-9_]`` so it never needs quoting.
    ``pool_size``: connections in the pool (the LISTEN connection comes on top).
    ``connect_timeout`` / ``command_timeout``: seconds before a connect / statement fails.
    ``idempotency_ttl``: how long an idempotency key dedupes enqueues.
    ``poll_interval``: the longest an idle ``fetch`` waits before it re-checks. With LISTEN
    wake-ups it is a safety net for a lost listener connection (default 2 s); without them
    (``pooler=transaction`` and no ``listen_url``) it is the wake-up itself (default 0.25 s).
    ``pooler``: ``none`` (default), ``session`` or ``transaction``; ``transaction`` turns off
    prepared-statement caching and LISTEN on ``url`` (see :mod:`.pooling`).
    ``listen_url``: a direct (not pooled) URL of the same database, used only for LISTEN.
    """

    url: str = "postgresql://127.0.0.1:5432/postgres"
    password: str | None = field(default=None, repr=False)
    schema: str = "workhive"
    pool_size: int = 4
    connect_timeout: float = 5.0
    command_timeout: float = 30.0
    idempotency_ttl: float = 86_400.0
    poll_interval: float | None = None
    pooler: str = "none"
    listen_url: str | None = None
    listen_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pooler", check_pooler(self.pooler))
        if self.listen_url is not None:
            bare, password = split_listen_url(self.listen_url)
            object.__setattr__(self, "listen_url", bare)
            object.__setattr__(self, "listen_password",
                               password or self.listen_password or self.password)
        if not _SCHEMA_RE.match(self.schema):
            raise ConfigError(
                f"postgres option 'schema' must be a lower-case identifier ([a-z_][a-z0-9_]*, "
                f"at most 58 chars), got {self.schema!r}"
            )
        if isinstance(self.pool_size, bool) or not isinstance(self.pool_size, int) \
                or self.pool_size < 1:
            raise ConfigError(f"postgres option 'pool_size' must be >= 1, got {self.pool_size!r}")
        for key in ("connect_timeout", "command_timeout", "idempotency_ttl", "poll_interval"):
            value = getattr(self, key)
            if key == "poll_interval" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 < value < math.inf:
                raise ConfigError(f"postgres option {key!r} must be a positive number, "
                                  f"got {value!r}")
        parts = urlsplit(self.url)
        if parts.scheme not in _SCHEMES:
            raise ConfigError(f"postgres url must start with postgresql:// or postgres://: "
                              f"{self.redacted_url!r}")

    @property
    def listens(self) -> bool:
        """Whether idle fetches wait on LISTEN: not through a transaction pooler, unless a
        direct ``listen_url`` is given."""
        return self.pooler != "transaction" or self.listen_url is not None

    @property
    def poll_every(self) -> float:
        """``poll_interval``, or its default for this way of waking up."""
        if self.poll_interval is not None:
            return float(self.poll_interval)
        return LISTENING_INTERVAL if self.listens else POLLING_INTERVAL

    @property
    def listener_target(self) -> tuple[str, str | None]:
        """(URL, password) the LISTEN connection uses: ``listen_url`` or the main URL."""
        if self.listen_url is not None:
            return self.listen_url, self.listen_password
        return self.url, self.password

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel producers wake idle fetches on."""
        return f"{self.schema}_wake"

    @property
    def redacted_url(self) -> str:
        """The URL for messages: the password, when there is one, shows as ``***``."""
        return redact_url(self.url, password=self.password)

    @classmethod
    def from_url(cls, url: str, *, what: str = "postgres", **options: Any) -> PostgresSettings:
        """Parse ``url`` plus keyword ``options`` (which win over query parameters).

        Unknown options and values of the wrong type raise :class:`ConfigError`; the message
        never contains the password. ``what`` names the URL's user in those messages (the
        command log passes ``"postgres log"``).
        """
        try:
            parts = urlsplit(url)
            password = parts.password
            port = parts.port  # validates the port
        except ValueError as exc:
            raise ConfigError(f"invalid {what} url {redact_url(url)!r}: "
                              f"{_scrub(str(exc), url)}") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigError(f"not a {what} url (scheme {scheme!r}); expected postgresql://")
        if password is not None:
            password = unquote(password)
        password = password or os.environ.get("PGPASSWORD") or None
        merged: dict[str, Any] = {**dict(parse_qsl(parts.query)), **options}
        kept = {k: v for k, v in merged.items() if k in _PASSTHROUGH}
        host = parts.hostname or "127.0.0.1"
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        if parts.username:
            netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
        query = f"?{urlencode(kept)}" if kept else ""
        values: dict[str, Any] = {"url": f"postgresql://{netloc}{parts.path}{query}",
                                  "password": password}
        for key, value in merged.items():
            if key in _PASSTHROUGH:
                continue
            if key not in _CONVERT:
                known = ", ".join(sorted([*_CONVERT, *_PASSTHROUGH]))
                raise ConfigError(f"unknown {what} option {key!r}; known: {known}")
            values[key] = _coerce(key, value)
        return cls(**values)

    def scrub(self, text: str) -> str:
        """``text`` with the password (if any) replaced by ``***``."""
        return redact(text, self.password, self.listen_password)

    def translate(self, exc: BaseException, doing: str) -> BackendError:
        """Map a driver error raised while ``doing`` onto :mod:`workhive.errors`."""
        detail = self.scrub(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, (*UNREACHABLE, asyncpg.exceptions.InternalClientError)) or (
            isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)
        ):
            return BackendUnavailable(
                f"postgres at {self.redacted_url} is unavailable ({doing}): {detail}"
            )
        if isinstance(exc, asyncpg.exceptions.InvalidPasswordError | asyncpg.exceptions
                      .InvalidAuthorizationSpecificationError):
            return BackendError(f"postgres at {self.redacted_url} refused the login: {detail}")
        return BackendError(f"postgres at {self.redacted_url} failed ({doing}): {detail}")


def _scrub(text: str, url: str) -> str:
    """``text`` without the password of ``url``, even when ``url`` does not parse."""
    return redact(text, netloc_password(url))


def _coerce(key: str, value: Any) -> Any:
    kind = _CONVERT[key]
    if kind is not str and isinstance(value, bool):
        raise ConfigError(f"postgres option {key!r} must be {kind.__name__}, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"postgres option {key!r} must be {kind.__name__}, got {value!r}"
        ) from None


_CONVERT: dict[str, type] = {
    "schema": str,
    "pool_size": int,
    "connect_timeout": float,
    "command_timeout": float,
    "idempotency_ttl": float,
    "poll_interval": float,
    "pooler": str,
    "listen_url": str,
}
