"""Splitting a broker log URL (``nats://host:4222/STREAM``, ``kafka://host:9092/topic``).

The path names the log (one stream or topic per log), the query holds the few options a log
takes; the rest (scheme, credentials, hosts) is what the broker's backend settings parse, so a
log connects exactly as the task backend for that broker does. Every message here shows the URL
through :func:`~workhive._redact.redact_url`: a password in the URL never reaches an error.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from workhive._redact import redact_url
from workhive.errors import ConfigError


def split_log_url(url: str, kind: str, example: str) -> tuple[str, str, str]:
    """``(url without path and query, the log's name, the query string)``.

    Raises :class:`ConfigError` for a missing or nested name, and for ``?prefix=`` (it picks
    SQL table names; here the path already names the log).
    """
    parts = urlsplit(url)
    name = unquote(parts.path).strip("/")
    if not name or "/" in name:
        what = "needs" if not name else "takes one"
        raise ConfigError(
            f"a {kind} log URL {what} the log's name as its path, like {example}; "
            f"got {redact_url(url)!r}"
        )
    if any(key == "prefix" for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        raise ConfigError(
            f"a {kind} log takes no ?prefix= (that names SQL tables): the path names the log"
        )
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), name, parts.query
