"""URL and option parsing for the ``rabbitmq`` backend, and the one place errors are worded.

Why a module of its own: the password must never reach a log line, an exception or a ``repr``.
It lives only in :attr:`RabbitMQSettings.password` (``repr=False``); everything else sees
:attr:`RabbitMQSettings.redacted_url`, and :meth:`RabbitMQSettings.error` scrubs it from driver
messages too, so a driver that echoes its URL cannot leak it.

URL form::

    amqp://[user[:password]@]host[:port][/vhost][?exchange=app&priority_bands=3]
    amqps://...                                       TLS (port 5671 by default)

The vhost is the path (``/`` or empty: the default vhost ``/``; ``%2F`` is ``/`` too). The
password comes from the URL, else from ``$RABBITMQ_PASSWORD``, else AMQP's default ``guest``.
Options come from the query or from keyword arguments; both may name one, but then they must
agree (a disagreement is a ConfigError, not a silent override).
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiormq.exceptions as amqp_errors
from aiormq.exceptions import ChannelInvalidStateError

from workhive._redact import netloc_password, redact, redact_url
from workhive.backends._options import merge_options
from workhive.errors import BackendError, BackendUnavailable, ConfigError

#: what "the broker cannot be reached right now" looks like from aio-pika / aiormq
UNREACHABLE: tuple[type[BaseException], ...] = (
    amqp_errors.AMQPConnectionError,
    ChannelInvalidStateError,
    ConnectionError,
    OSError,  # includes TimeoutError
)
_LOGIN_REFUSED = (amqp_errors.ProbableAuthenticationError, amqp_errors.AuthenticationError,
                  amqp_errors.ConnectionNotAllowed)

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-:]+$")
_SCHEMES = {"amqp": 5672, "amqps": 5671}


@dataclass(frozen=True, slots=True)
class RabbitMQSettings:
    """Validated settings. ``exchange`` prefixes every exchange and queue name; ``queue`` is the
    physical name of workhive's ``default`` queue family (default ``<exchange>.default``).
    ``priority_bands`` (1..10) is how many band queues a workhive queue has.
    ``consumer_timeout`` (s) is what the *server* is configured with; workhive cannot change
    it, only refuse task timeouts above it (``Features.max_hold``)."""

    host: str = "127.0.0.1"
    port: int = 5672
    vhost: str = "/"
    login: str = "guest"
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    exchange: str = "workhive"
    queue: str = ""
    priority_bands: int = 3
    consumer_timeout: float = 1800.0

    def __post_init__(self) -> None:
        if not self.queue:
            object.__setattr__(self, "queue", f"{self.exchange}.default")
        for key in ("exchange", "queue"):
            value = getattr(self, key)
            if not _NAME_RE.match(value) or len(value) > 100:
                raise ConfigError(f"rabbitmq option {key!r} must match [A-Za-z0-9_.-:]+ "
                                  f"(at most 100 characters), got {value!r}")
        if not 1 <= self.priority_bands <= 10:
            raise ConfigError(f"rabbitmq option 'priority_bands' must be 1..10, got "
                              f"{self.priority_bands!r}")
        if not self.consumer_timeout > 0:
            raise ConfigError(f"rabbitmq option 'consumer_timeout' must be > 0, got "
                              f"{self.consumer_timeout!r}")

    @property
    def where(self) -> str:
        """``host:port/vhost`` for one-line messages."""
        return f"{self.host}:{self.port}{'' if self.vhost == '/' else '/' + self.vhost}"

    @property
    def redacted_url(self) -> str:
        """The URL with the password shown as ``***`` (when there is one)."""
        vhost = "" if self.vhost == "/" else self.vhost.replace("/", "%2F")
        scheme = "amqps" if self.tls else "amqp"
        return redact_url(f"{scheme}://{self.login}@{self.host}:{self.port}/{vhost}",
                          password=self.password)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RabbitMQSettings:
        """Parse ``url`` plus keyword ``options`` (see the module docstring)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"invalid rabbitmq url {redact_url(url)!r}: "
                              f"{redact(str(exc), netloc_password(url))}") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigError(f"not a rabbitmq url (scheme {scheme!r}); expected amqp:// or "
                              "amqps://")
        if not parts.hostname:
            raise ConfigError("rabbitmq url needs a host")
        password = unquote(parts.password) if parts.password is not None else None
        password = password or os.environ.get("RABBITMQ_PASSWORD") or None
        path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
        values: dict[str, Any] = {
            "host": parts.hostname,
            "port": port or _SCHEMES[scheme],
            "vhost": path or "/",
            "login": unquote(parts.username) if parts.username else "guest",
            "password": password,
            "tls": scheme == "amqps",
        }
        values.update(merge_options("rabbitmq", parts.query, options, _CONVERT))
        return cls(**values)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`aio_pika.connect_robust` (password included: never
        log this dict)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "login": self.login,
            "password": self.password if self.password is not None else "guest",
            "virtualhost": self.vhost,
            "client_properties": {"connection_name": f"workhive ({self.exchange})"},
        }
        if self.tls:
            kwargs["ssl"] = True
            kwargs["ssl_context"] = ssl.create_default_context()
        return kwargs

    def error(self, exc: BaseException, doing: str = "") -> BackendError:
        """The workhive error for a driver exception: BackendUnavailable when the server cannot
        be reached, BackendError otherwise. One line; the password never appears."""
        detail = redact(" ".join(str(exc).split()) or type(exc).__name__, self.password)
        what = f" ({doing})" if doing else ""
        if isinstance(exc, _LOGIN_REFUSED):
            return BackendError(f"rabbitmq at {self.where} refused user {self.login!r} or vhost "
                                f"{self.vhost!r}{what}: {detail}")
        if isinstance(exc, UNREACHABLE):
            return BackendUnavailable(f"rabbitmq at {self.where} is unavailable{what}: {detail}")
        return BackendError(f"rabbitmq at {self.where} failed{what}: {detail}")


_CONVERT: dict[str, type] = {
    "exchange": str,
    "queue": str,
    "priority_bands": int,
    "consumer_timeout": float,
}
