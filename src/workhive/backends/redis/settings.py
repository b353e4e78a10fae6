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
    redis+cluster://host:port[,host:port...]       Redis Cluster (rediss+cluster:// for TLS);
    redis://host:port?cluster=true                 the same, from one seed node
    redis+sentinel://host:port[,host:port...][/db]?service_name=mymaster
                                     the master a set of Sentinels names, followed on failover

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
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    ReadOnlyError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workhive._redact import netloc_password, redact, redact_url
from workhive.errors import BackendUnavailable, ConfigError

#: redis-py errors that mean "the server (or the node owning a key) cannot be reached right
#: now": a cluster without a node for a slot, a failover in progress, a replica that was the
#: master a moment ago (Sentinel) included.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, ClusterDownError,
               SlotNotCoveredError, TryAgainError, MasterDownError, ReadOnlyError)

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-:]+$")
_SCHEMES = {"redis", "rediss", "unix", "redis-pubsub", "redis+cluster", "rediss+cluster",
            "redis+sentinel"}
_MODES = {"redis+cluster": "cluster", "rediss+cluster": "cluster", "redis+sentinel": "sentinel"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Validated connection settings for a Redis backend.

    ``prefix`` namespaces every key (``<prefix>:...`` and ``{<prefix>...}``) so several apps,
    or several test runs, share one Redis; it is restricted to ``[A-Za-z0-9_.-:]`` so it can
    hold no glob character nor hash-tag brace. ``retries`` bounds redis-py's reconnect attempts
    per call (exponential backoff, capped at 0.5 s) so a dead server surfaces as
    :class:`~workhive.errors.BackendUnavailable` within about a second instead of hanging.

    ``mode``: ``single`` (one Redis), ``cluster`` (Redis Cluster; ``url`` lists seed nodes) or
    ``sentinel`` (``url`` lists Sentinels; ``service_name`` names the master they watch).
    """

    url: str = "redis://127.0.0.1:6379/0"
    password: str | None = field(default=None, repr=False)
    prefix: str = "workhive"
    socket_timeout: float = 10.0
    connect_timeout: float = 2.0
    retries: int = 2
    max_connections: int | None = None
    idempotency_ttl: float = 86_400.0
    mode: str = "single"
    service_name: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

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
        if self.mode not in {"single", "cluster", "sentinel"}:
            raise ConfigError(f"redis mode must be single, cluster or sentinel, got {self.mode!r}")
        scheme = self.url.partition("://")[0]
        if self.mode != "single":
            if _MODES.get(scheme) != self.mode:
                raise ConfigError(f"a redis {self.mode} url must start with "
                                  f"redis+{self.mode}://: {self.redacted_url!r}")
            self.nodes  # noqa: B018 - validates every host:port now
            if self.mode == "sentinel" and not self.service_name:
                raise ConfigError("redis+sentinel:// needs ?service_name=<the master's name "
                                  f"in the Sentinels' config>: {self.redacted_url!r}")
            return
        if self.service_name or self.sentinel_password:
            raise ConfigError("redis options 'service_name' and 'sentinel_password' are for "
                              f"redis+sentinel:// urls: {self.redacted_url!r}")
        parts = urlsplit(self.url)
        if parts.scheme not in {"redis", "rediss", "unix"}:
            raise ConfigError(f"redis url must start with redis://, rediss:// or unix://: "
                              f"{self.redacted_url!r}")
        if "," in parts.netloc:
            raise ConfigError("several hosts need redis+cluster:// (or ?cluster=true) or "
                              f"redis+sentinel://: {self.redacted_url!r}")
        if parts.scheme == "unix" and not parts.path:
            raise ConfigError(f"unix:// url needs a socket path: {self.redacted_url!r}")
        if parts.scheme != "unix" and not parts.hostname:
            raise ConfigError(f"redis url needs a host: {self.redacted_url!r}")

    @property
    def redacted_url(self) -> str:
        """The URL for messages: the password, when there is one, shows as ``***``."""
        return redact(redact_url(self.url, password=self.password), self.sentinel_password)

    @property
    def nodes(self) -> list[tuple[str, int]]:
        """The ``host:port`` list of a cluster or sentinel URL (seed nodes / Sentinels)."""
        default = 26379 if self.mode == "sentinel" else 6379
        netloc = urlsplit(self.url).netloc.rpartition("@")[2]
        out = []
        for item in netloc.split(","):
            host, port = item, ""
            if item.startswith("["):  # [v6]:port
                host, _, rest = item[1:].partition("]")
                port = rest.removeprefix(":")
            elif ":" in item:
                host, _, port = item.rpartition(":")
            try:
                number = int(port) if port else default
            except ValueError:
                number = -1
            if not host or not 0 < number < 65536:
                raise ConfigError(f"bad host:port {item!r} in redis url {self.redacted_url!r}")
            out.append((host, number))
        return out

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisSettings:
        """Parse ``url`` plus keyword ``options``.

        A setting given both in the URL's query and as an option must agree: two sources that
        disagree are a :class:`ConfigError`, never a silent choice of one of them.
        """
        try:
            parts = urlsplit(url)
            password = parts.password
            if parts.scheme.lower() not in _MODES and "," not in parts.netloc:
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
        mode = _MODES.get(scheme, "single")
        if "cluster" in merged:
            wanted = _flag(merged.pop("cluster"))
            if (wanted and mode == "sentinel") or (not wanted and mode == "cluster"):
                raise ConfigError(f"redis option cluster={wanted} contradicts the "
                                  f"{scheme}:// url")
            if wanted and mode == "single":
                if scheme not in {"redis", "rediss"}:
                    raise ConfigError("cluster=true needs a redis:// or rediss:// url")
                mode, scheme = "cluster", f"{scheme}+cluster"
        kept = {k: v for k, v in merged.items() if k in _REDIS_QUERY}  # passed to redis-py
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if parts.username:
            netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
        query_s = f"?{urlencode(kept)}" if kept else ""
        clean = f"{scheme}://{netloc}{parts.path}{query_s}"  # urlunsplit drops unix's "//"
        values: dict[str, Any] = {"url": clean, "password": password or None, "mode": mode}
        if mode == "cluster" and (parts.path.strip("/") not in {"", "0"}
                                  or str(kept.get("db", "0")) != "0"):
            raise ConfigError("Redis Cluster has only database 0; remove the /db from the url")
        for key, value in merged.items():
            if key in _REDIS_QUERY:
                continue
            if key not in _CONVERT:
                known = ", ".join(sorted([*_CONVERT, *_REDIS_QUERY]))
                raise ConfigError(f"unknown redis option {key!r}; known: {known}")
            values[key] = _coerce(key, value)
        return cls(**values)

    def client(self) -> tuple[Redis | RedisCluster, Sentinel | None]:
        """A new redis-py asyncio client (hiredis parser when installed), not yet connected,
        and the Sentinel client behind it (``sentinel`` mode) for the caller to close."""
        common: dict[str, Any] = {
            "password": self.password,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), self.retries),
            "decode_responses": False,
        }
        if self.mode == "single":
            return Redis.from_url(self.url, max_connections=self.max_connections, **common), None
        parts = urlsplit(self.url)
        # redis-py's own URL parser converts the pass-through query (ssl_*, client_name, db...)
        query = f"?{parts.query}" if parts.query else ""
        one: dict[str, Any] = dict(parse_url(
            f"{parts.scheme.partition('+')[0]}://localhost{parts.path}{query}"))
        one.pop("host", None)
        if parts.username:
            one["username"] = unquote(parts.username)
        if self.mode == "cluster":
            one.pop("db", None)
            if one.pop("connection_class", None) is not None:
                one["ssl"] = True
            return RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in self.nodes],
                require_full_coverage=False,  # a dead master must not stop the other slots
                max_connections=self.max_connections or 2**31,
                **common, **one,
            ), None
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            self.nodes,
            sentinel_kwargs={"socket_timeout": self.socket_timeout,
                             "socket_connect_timeout": self.connect_timeout,
                             "password": self.sentinel_password},
        )
        master = sentinel.master_for(
            str(self.service_name), redis_class=Redis,
            max_connections=self.max_connections, **common, **one)
        return master, sentinel

    def hide(self, text: str) -> str:
        """``text`` (a driver's message) with every password of these settings masked."""
        return redact(text, self.password, self.sentinel_password)

    def unavailable(self, exc: BaseException) -> BackendUnavailable:
        """The error to raise when a call failed because Redis cannot be reached."""
        return BackendUnavailable(f"redis at {self.redacted_url} is unavailable: "
                                  f"{self.hide(str(exc))}")


def _flag(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"redis option 'cluster' must be true or false, got {value!r}")


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
    "service_name": str,
    "sentinel_password": str,
}
# query parameters redis-py itself understands and that we pass through untouched
_REDIS_QUERY = {"db", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile",
                "ssl_check_hostname", "client_name", "protocol"}
