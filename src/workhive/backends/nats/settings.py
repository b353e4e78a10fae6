"""Settings and connection options for the ``nats`` backend.

Why a module of its own: the URL is parsed in one place so that credentials never travel further
than :class:`NatsSettings` (``repr=False`` fields) and the connect call. The URL kept on the
settings has them stripped; :attr:`NatsSettings.redacted_url` is what errors and logs show.

URL forms::

    nats://[user:password@]host[:port][?stream=APP&priority_bands=3&schedules=auto&replicas=3]
    nats://token@host:4222            a bare user part is a token
    tls://host:4222                   TLS (system CA store)
    nats://h1:4222,h2:4222,h3:4222    a cluster: any of these to start from (seed list)

Credentials come from the URL, else from ``NATS_USER``/``NATS_PASSWORD``, ``NATS_TOKEN`` or a
creds file named by ``NATS_CREDS``. Options come from keyword arguments or the URL query; both
given and disagreeing is a :class:`~workhive.errors.ConfigError`, so a YAML ``nats.stream`` can
never silently lose against a URL that says otherwise.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from workhive._redact import netloc_password, redact_url
from workhive._redact import redact as redact_text
from workhive.backends._options import merge_options
from workhive.errors import BackendUnavailable, ConfigError

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SCHEMES = {"nats", "tls"}
_SCHEDULES = ("auto", "on", "off")


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """Validated connection settings.

    ``stream`` prefixes every stream, consumer subject and KV bucket this backend creates
    (``<stream>_TASKS``, ``<stream>.q.<queue>.<band>``...), so several apps or test runs share one
    server; it is limited to ``[A-Za-z0-9_-]`` because it is both a stream name and a subject
    token. ``priority_bands`` is how many priority levels are kept apart (one consumer each).
    ``schedules`` picks how delays wait: ``auto`` uses the server's message schedules when it
    has them (nats-server 2.12+) and the delay stream with its forwarder otherwise; ``off``
    always uses the forwarder (e.g. while older workhive processes still share the prefix);
    ``on`` refuses to open on a server without schedules.
    ``replicas`` is how many servers of a JetStream cluster hold each stream and KV bucket
    (1..5; 3 survives one server down). A stream that exists with another count is updated.
    ``url`` may list several ``host:port`` (comma-separated): the client starts from any of
    them and then also learns the cluster's other servers from the one it reaches.
    """

    url: str = "nats://127.0.0.1:4222"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds: str | None = None
    stream: str = "WORKHIVE"
    priority_bands: int = 3
    connect_timeout: float = 2.0
    request_timeout: float = 5.0
    idempotency_ttl: float = 86_400.0
    schedules: str = "auto"
    replicas: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 5:
            raise ConfigError(f"nats option 'replicas' must be 1..5, got {self.replicas!r}")
        if not _NAME_RE.match(self.stream):
            raise ConfigError(
                f"nats option 'stream' must match [A-Za-z0-9_-]{{1,32}}, got {self.stream!r}")
        if not 1 <= self.priority_bands <= 16:
            raise ConfigError(
                f"nats option 'priority_bands' must be 1..16, got {self.priority_bands!r}")
        if self.schedules not in _SCHEDULES:
            raise ConfigError(f"nats option 'schedules' must be one of "
                              f"{', '.join(_SCHEDULES)}, got {self.schedules!r}")
        for key in ("connect_timeout", "request_timeout", "idempotency_ttl"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"nats option {key!r} must be > 0, got {getattr(self, key)!r}")

    @property
    def redacted_url(self) -> str:
        """The URL for messages: a user name at most, never a password or token."""
        url = self.url if self.user is None else self.url.replace("://", f"://{self.user}@", 1)
        return redact_url(url, password=self.password)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> NatsSettings:
        """Parse ``url`` plus keyword ``options`` (a query value that disagrees is an error)."""
        whole = _split(url, url, port=False)
        scheme = whole.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigError(f"not a nats url (scheme {scheme!r}); expected nats:// or tls://")
        userinfo, at, hosts = whole.netloc.rpartition("@")
        servers = [_host_port(f"{scheme}://{userinfo}{at}{h}", url) for h in hosts.split(",")]
        values = merge_options("nats", whole.query, options, _CONVERT)
        clean = f"{scheme}://{','.join(servers)}"
        first = _split(f"{scheme}://{userinfo}{at}{servers[0]}", url)
        user = unquote(first.username) if first.username else None
        password = unquote(first.password) if first.password is not None else None
        token = None
        if user is not None and password is None:
            user, token = None, user  # nats://token@host
        if user is None and token is None:
            user = os.environ.get("NATS_USER") or None
            password = os.environ.get("NATS_PASSWORD") or None
            token = os.environ.get("NATS_TOKEN") or None
        creds = os.environ.get("NATS_CREDS") or None
        return cls(url=clean, user=user, password=password, token=token, creds=creds, **values)

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` (credentials passed apart from the URL)."""
        options: dict[str, Any] = {
            "servers": self.servers,
            "connect_timeout": self.connect_timeout,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "ping_interval": 10,
            "max_outstanding_pings": 3,
        }
        if self.user is not None:
            options["user"] = self.user
            options["password"] = self.password or ""
        if self.token is not None:
            options["token"] = self.token
        if self.creds is not None:
            options["user_credentials"] = self.creds
        if self.url.startswith("tls://"):
            import ssl

            options["tls"] = ssl.create_default_context()
        return options

    @property
    def servers(self) -> list[str]:
        """Every server URL of :attr:`url` (one, or a cluster's seed list)."""
        scheme, _, hosts = self.url.partition("://")
        return [f"{scheme}://{host}" for host in hosts.split(",")]

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        return redact_text(text, self.password, self.token)

    def unavailable(self, exc: BaseException | str) -> BackendUnavailable:
        """The one-line error for "the server cannot be reached right now"."""
        detail = self.redact(str(exc) or type(exc).__name__) if not isinstance(exc, str) else exc
        return BackendUnavailable(f"nats at {self.redacted_url} is unavailable: {detail}")


def _split(url: str, whole: str, *, port: bool = True) -> SplitResult:
    """``urlsplit(url)`` (with its port checked unless ``port`` is false: a seed list has
    several), or a ConfigError about ``whole`` (the URL as given, password hidden)."""
    try:
        parts = urlsplit(url)
        if port:
            parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ConfigError(f"invalid nats url {redact_url(whole)!r}: "
                          f"{redact_text(str(exc), netloc_password(whole))}") from None
    return parts


def _host_port(url: str, whole: str) -> str:
    """``host:port`` of a one-server ``url`` (port 4222 by default)."""
    parts = _split(url, whole)
    if not parts.hostname:
        raise ConfigError(f"nats url needs a host: {redact_url(whole)!r}")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{host}:{parts.port or 4222}"


def _mode(value: Any) -> str:
    """``auto``/``on``/``off``; YAML reads a bare on/off as a boolean, so take those too."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value).strip().lower()


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "stream": str,
    "priority_bands": int,
    "connect_timeout": float,
    "request_timeout": float,
    "idempotency_ttl": float,
    "schedules": _mode,
    "replicas": int,
}
