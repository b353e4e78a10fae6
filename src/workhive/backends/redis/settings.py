"""Settings and connection plumbing shared by the ``redis`` and ``redis-pubsub`` backends.

Why a module of its own: both backends parse the same URLs, read the same password sources and
must translate redis-py's errors the same way, and neither may ever print a password. The
password therefore lives only in :attr:`RedisSettings.password` (``repr=False``); the URL kept
on the settings has it stripped, and :attr:`RedisSettings.redacted_url` is what errors and logs
show.

URL forms::

    redis://[user[:password]@]host[:port][/db][?prefix=app&socket_timeout=10]
    rediss://...                     TLS
    unix:///path/to/redis.sock[?db=0&password=...]
    redis-pubsub://host:port/db      the pub/sub backend (rewritten to redis://)

Keyword options override query parameters; the password comes from the URL, else from the
``REDIS_PASSWORD`` environment variable.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workhive._redact import netloc_password, redact, redact_url
from workhive.errors import BackendUnavailable, ConfigError

#: redis-py errors that mean "the server cannot be reached right now".
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-:]+$")
_SCHEMES = {"redis", "rediss", "unix", "redis-pubsub"}


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Validated connection settings for a Redis backend.

    ``prefix`` namespaces every key (``<prefix>:...``) so several apps, or several test runs,
    share one Redis; it is restricted to ``[A-Za-z0-9_.-:]`` so ``SCAN MATCH <prefix>:*`` can
    never match another app's keys. ``retries`` bounds redis-py's reconnect attempts per call
    (exponential backoff, capped at 0.5 s) so a dead server surfaces as
    :class:`~workhive.errors.BackendUnavailable` within about a second instead of hanging.
    """

    url: str = "redis://127.0.0.1:6379/0"
    password: str | None = field(default=None, repr=False)
    prefix: str = "workhive"
    socket_timeout: float = 10.0
    connect_timeout: float = 2.0
    retries: int = 2
    max_connections: int | None = None
    idempotency_ttl: float = 86_400.0

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise ConfigError(
                f"redis option 'prefix' must match [A-Za-z0-9_.-:]+, got {self.prefix!r}"
            )
        for key in ("socket_timeout", "connect_timeout", "idempotency_ttl"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"redis option {key!r} must be > 0, got {getattr(self, key)!r}")
        if self.retries < 0:
            raise ConfigError(f"redis option 'retries' must be >= 0, got {self.retries!r}")
        if self.max_connections is not None and self.max_connections < 2:
            # one connection may sit in BLPOP while another settles
            raise ConfigError("redis option 'max_connections' must be >= 2 (or unset)")
        parts = urlsplit(self.url)
        if parts.scheme not in {"redis", "rediss", "unix"}:
            raise ConfigError(f"redis url must start with redis://, rediss:// or unix://: "
                              f"{self.redacted_url!r}")
        if parts.scheme == "unix" and not parts.path:
            raise ConfigError(f"unix:// url needs a socket path: {self.redacted_url!r}")
        if parts.scheme != "unix" and not parts.hostname:
            raise ConfigError(f"redis url needs a host: {self.redacted_url!r}")

    @property
    def redacted_url(self) -> str:
        """The URL for messages: the password, when there is one, shows as ``***``."""
        return redact_url(self.url, password=self.password)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisSettings:
        """Parse ``url`` plus keyword ``options``.

        A setting given both in the URL's query and as an option must agree: two sources that
        disagree are a :class:`ConfigError`, never a silent choice of one of them.
        """
        try:
            parts = urlsplit(url)
            password = parts.password
            parts.port  # noqa: B018 - validates the port (0-65535) here, not in redis-py
        except ValueError as exc:
            raise ConfigError(f"invalid redis url {redact_url(url)!r}: "
                              f"{redact(str(exc), netloc_password(url))}") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigError(f"not a redis url (scheme {scheme!r}); expected one of "
                              f"{', '.join(sorted(_SCHEMES))}")
        if scheme == "redis-pubsub":
            scheme = "redis"
        query = dict(parse_qsl(parts.query))
        if password is not None:
            password = unquote(password)
        password = query.pop("password", None) or password or os.environ.get("REDIS_PASSWORD")
        for key in query.keys() & options.keys():
            if key in _CONVERT and _coerce(key, query[key]) != _coerce(key, options[key]):
                raise ConfigError(
                    f"redis option {key!r} is set twice with different values: "
                    f"{query[key]!r} in the URL and {options[key]!r} in the settings; "
                    "remove one of them")
        merged: dict[str, Any] = {**query, **options}
        kept = {k: v for k, v in merged.items() if k in _REDIS_QUERY}  # passed to redis-py
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if parts.username:
            netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
        query_s = f"?{urlencode(kept)}" if kept else ""
        clean = f"{scheme}://{netloc}{parts.path}{query_s}"  # urlunsplit drops unix's "//"
        values: dict[str, Any] = {"url": clean, "password": password or None}
        for key, value in merged.items():
            if key in _REDIS_QUERY:
                continue
            if key not in _CONVERT:
                known = ", ".join(sorted([*_CONVERT, *_REDIS_QUERY]))
                raise ConfigError(f"unknown redis option {key!r}; known: {known}")
            values[key] = _coerce(key, value)
        return cls(**values)

    def client(self) -> Redis:
        """A new redis-py asyncio client (hiredis parser when installed); not yet connected."""
        return Redis.from_url(
            self.url,
            password=self.password,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.connect_timeout,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), self.retries),
            max_connections=self.max_connections,
            decode_responses=False,
        )

    def unavailable(self, exc: BaseException) -> BackendUnavailable:
        """The error to raise when a call failed because Redis cannot be reached."""
        detail = redact(str(exc), self.password)
        return BackendUnavailable(f"redis at {self.redacted_url} is unavailable: {detail}")


def _coerce(key: str, value: Any) -> Any:
    kind = _CONVERT[key]
    if value is None and key == "max_connections":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"redis option {key!r} must be {kind.__name__}, got {value!r}") from None


_CONVERT: dict[str, type] = {
    "prefix": str,
    "socket_timeout": float,
    "connect_timeout": float,
    "retries": int,
    "max_connections": int,
    "idempotency_ttl": float,
}
# query parameters redis-py itself understands and that we pass through untouched
_REDIS_QUERY = {"db", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile",
                "ssl_check_hostname", "client_name", "protocol"}
