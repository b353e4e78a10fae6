"""Settings of the SQLite backend: where the file lives and how patiently to share it.

Kept apart from :mod:`workhive.backends.sqlite.backend` (as the redis and postgres backends keep
theirs) so URL parsing and validation read on their own. :func:`split_url` and
:func:`check_file` are shared with the SQLite command log, so the backend and the log accept,
and refuse, the same URLs with the same messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, unquote

from workhive._redact import redact_url
from workhive.errors import ConfigError

__all__ = ["MIN_POLL", "SQLiteSettings", "check_file", "split_url"]

MIN_POLL = 0.001  # shortest sleep of an idle fetch, and the floor of max_poll_interval


@dataclass(frozen=True, slots=True)
class SQLiteSettings:
    """Where the database file lives and how patiently to share it.

    ``busy_timeout``: seconds a write waits for another process's transaction before failing
    with :class:`BackendError`. ``max_poll_interval``: the longest an idle fetch sleeps between
    checks for other processes' commits (bounds cross-process pickup latency).
    ``idempotency_ttl``: how long an idempotency key dedupes enqueues.
    """

    path: str
    busy_timeout: float = 5.0
    max_poll_interval: float = 0.02
    idempotency_ttl: float = 86_400.0

    def __post_init__(self) -> None:
        check_file(self.path)
        for name in ("busy_timeout", "max_poll_interval", "idempotency_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"sqlite option {name} must be a number, got {value!r}")
            if not 0 < value < math.inf:
                raise ConfigError(f"sqlite option {name} must be positive, got {value}")
        if self.max_poll_interval < MIN_POLL:
            raise ConfigError(
                f"sqlite option max_poll_interval must be at least {MIN_POLL}, "
                f"got {self.max_poll_interval}"
            )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteSettings:
        """Parse ``sqlite:///relative.db`` / ``sqlite:////abs/path.db`` plus options.

        Query parameters and keyword ``options`` name the same fields; keywords win. Unknown
        names and values that are not numbers raise :class:`ConfigError`.
        """
        path, query = split_url(url)
        merged: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        merged.update(options)
        known = {f.name for f in fields(cls)} - {"path"}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ConfigError(
                f"unknown sqlite option(s) {', '.join(unknown)} in {redact_url(url)!r}; "
                f"known: {', '.join(sorted(known))}"
            )
        values: dict[str, float] = {}
        for key, raw in merged.items():
            if isinstance(raw, str):
                try:
                    values[key] = float(raw)
                except ValueError:
                    msg = f"sqlite option {key} must be a number, got {raw!r}"
                    raise ConfigError(msg) from None
            else:
                values[key] = raw
        return cls(path=path, **values)


def split_url(url: str) -> tuple[str, str]:
    """``(file path, query string)`` of ``sqlite:///relative.db`` / ``sqlite:////abs/path.db``.

    A URL of another scheme, without a path or with a host part raises :class:`ConfigError`
    (showing the URL without its password: ``sqlite://user:pw@host/x.db`` is a typo that may
    hold one), as does a path :func:`check_file` refuses.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "sqlite":
        raise ConfigError(f"not a sqlite URL: {redact_url(url)!r} "
                          "(expected sqlite:///path/to/file.db)")
    rest, _, query = rest.partition("?")
    if rest in ("", "/"):
        raise ConfigError(f"sqlite URL {redact_url(url)!r} needs a file path: "
                          "sqlite:///workhive.db")
    if not rest.startswith("/"):
        raise ConfigError(
            f"sqlite URL {redact_url(url)!r} has a host part; use sqlite:///relative.db "
            "or sqlite:////absolute/path.db"
        )
    path = unquote(rest[1:])
    check_file(path)
    return path, query


def check_file(path: str) -> None:
    """Refuse a path that is no file every process can open: empty, or ``:memory:`` (a private
    database per connection, so workers would never see each other's writes)."""
    if not path:
        raise ConfigError("sqlite needs a file path: sqlite:///workhive.db")
    if path == ":memory:" or path.startswith("file::memory:"):
        raise ConfigError(
            "sqlite needs a file shared by every process, not ':memory:'; "
            "use memory:// for an in-process backend"
        )
