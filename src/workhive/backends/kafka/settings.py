"""URL and option parsing for the ``kafka`` backend, and the one place errors are worded.

Why a module of its own: the SASL password must never reach a log line, an exception or a
``repr``. It lives only in :attr:`KafkaSettings.password` (``repr=False``); everything else
sees :attr:`KafkaSettings.redacted_url`, and :meth:`KafkaSettings.error` scrubs it from driver
messages too.

URL form (``redpanda://`` is the same thing)::

    kafka://[user[:password]@]host[:port][,host2[:port]...][?topic=app&group=workers&...]

Options come from the query or from keyword arguments; both may name one, but then they must
agree (a disagreement is a ConfigError, not a silent override). The password comes from the
URL, else from ``$KAFKA_PASSWORD``. A user name turns SASL on (``sasl_mechanism``, default
``PLAIN``); ``tls=true`` turns TLS on (``ssl_cafile`` for a private CA).
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiokafka import errors as kafka_errors

from workhive._redact import redact, redact_url
from workhive.backends._options import flag, merge_options
from workhive.errors import BackendError, BackendUnavailable, ConfigError

#: what "the broker cannot be reached right now" looks like from aiokafka
UNREACHABLE: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.NoBrokersAvailable,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.BrokerNotAvailableError,
    kafka_errors.LeaderNotAvailableError,
    kafka_errors.GroupCoordinatorNotAvailableError,
    ConnectionError,
    OSError,  # includes TimeoutError
)
_LOGIN_REFUSED = (kafka_errors.AuthenticationFailedError,
                  kafka_errors.AuthenticationMethodNotSupported,
                  kafka_errors.UnsupportedSaslMechanismError)
#: every exception a broker call may raise that is translated (anything else is a bug)
DRIVER_ERRORS: tuple[type[BaseException], ...] = (kafka_errors.KafkaError, *UNREACHABLE)

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_SCHEMES = ("kafka", "redpanda")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Validated settings. ``topic`` prefixes every topic name, ``group`` every consumer group.
    ``partitions``/``replication`` are used when workhive creates a topic (Kafka cannot lower a
    partition count later; workhive never changes an existing topic). ``session_timeout`` (s)
    is how long a dead worker keeps its partitions before they move."""

    brokers: tuple[str, ...] = ("127.0.0.1:9092",)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    topic: str = "workhive"
    group: str = "workers"
    partitions: int = 4
    replication: int = 1
    priority_bands: int = 3
    session_timeout: float = 10.0
    sasl_mechanism: str = "PLAIN"
    tls: bool = False
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        for key in ("topic", "group"):
            value = getattr(self, key)
            if not _NAME_RE.match(value) or len(value) > 100:
                raise ConfigError(f"kafka option {key!r} must match [A-Za-z0-9_.-]+ (at most "
                                  f"100 characters), got {value!r}")
        checks = [("partitions", 1 <= self.partitions <= 1000, "1..1000"),
                  ("replication", 1 <= self.replication <= 10, "1..10"),
                  ("priority_bands", 1 <= self.priority_bands <= 10, "1..10"),
                  ("session_timeout", 0.5 <= self.session_timeout <= 300, "0.5..300 s"),
                  ("sasl_mechanism", self.sasl_mechanism in _MECHANISMS, "/".join(_MECHANISMS))]
        for key, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"kafka option {key!r} must be {allowed}, got "
                                  f"{getattr(self, key)!r}")

    @property
    def where(self) -> str:
        """``host:port,...`` for one-line messages."""
        return ",".join(self.brokers)

    @property
    def redacted_url(self) -> str:
        user = "" if self.user is None else f"{self.user}@"
        return redact_url(f"kafka://{user}{self.where}",
                          password=self.password if self.user is not None else None)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> KafkaSettings:
        """Parse ``url`` plus keyword ``options`` (see the module docstring)."""
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in _SCHEMES:
            raise ConfigError(f"not a kafka url (scheme {scheme!r}); expected kafka://host:9092")
        netloc, _, query = rest.partition("?")
        netloc = netloc.split("/", 1)[0]
        values: dict[str, Any] = {}
        if "@" in netloc:
            auth, netloc = netloc.rsplit("@", 1)
            user, _, password = auth.partition(":")
            values["user"] = unquote(user) or None
            values["password"] = unquote(password) or None
        if values.get("user") and not values.get("password"):
            values["password"] = os.environ.get("KAFKA_PASSWORD") or None
        values["brokers"] = tuple(_broker(b) for b in netloc.split(",") if b.strip())
        if not values["brokers"]:
            raise ConfigError("kafka url needs at least one host: kafka://host:9092")
        values.update(merge_options("kafka", query, options, _CONVERT))
        return cls(**values)

    def client_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments shared by aiokafka's producer, consumer and admin
        client (password included: never log this dict)."""
        kwargs: dict[str, Any] = {"bootstrap_servers": list(self.brokers),
                                  "client_id": f"workhive-{self.topic}"}
        if self.tls:
            kwargs["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.user is not None:
            kwargs["security_protocol"] = "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.user
            kwargs["sasl_plain_password"] = self.password or ""
        elif self.tls:
            kwargs["security_protocol"] = "SSL"
        return kwargs

    def error(self, exc: BaseException, doing: str = "") -> BackendError:
        """The workhive error for a driver exception: BackendUnavailable when the broker cannot
        be reached, BackendError otherwise. One line; the password never appears."""
        if isinstance(exc, BackendError):
            return exc
        detail = redact(" ".join(str(exc).split()) or type(exc).__name__, self.password)
        what = f" ({doing})" if doing else ""
        if isinstance(exc, _LOGIN_REFUSED):
            return BackendError(f"kafka at {self.where} refused user {self.user!r}{what}: "
                                f"{detail}")
        if isinstance(exc, UNREACHABLE):
            return BackendUnavailable(f"kafka at {self.where} is unavailable{what}: {detail}")
        return BackendError(f"kafka at {self.where} failed{what}: {detail}")


def _broker(text: str) -> str:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = text.strip(), "9092"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"invalid kafka broker address {text.strip()!r}; expected host:port")
    return f"{host}:{port}"


_CONVERT: dict[str, Any] = {
    "topic": str,
    "group": str,
    "partitions": int,
    "replication": int,
    "priority_bands": int,
    "session_timeout": float,
    "sasl_mechanism": lambda v: str(v).upper(),
    "tls": flag,
    "ssl_cafile": str,
}
