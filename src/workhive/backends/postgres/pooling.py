"""Working through a connection pooler (PgBouncer, RDS Proxy, Supavisor...).

Shared by the backend and the PostgreSQL command log, which connect the same way.

Why it matters: a pooler in *transaction* mode hands each transaction to whichever server
session is free, so nothing tied to a session survives from one transaction to the next. Three
things in the driver and the backend depend on a session:

* **prepared statements**: asyncpg caches named statements per connection; through the pooler
  the next execute may land on a session that never saw them (``prepared statement
  "__asyncpg_stmt_1__" does not exist``). ``statement_cache_size=0`` makes asyncpg use the
  unnamed statement, prepared and run in one exchange.
* **LISTEN**: a listener's session goes back to the pool and its notifications are lost. Wake-ups
  therefore come from a *direct* connection to PostgreSQL (``listen_url``) when one is given;
  otherwise idle readers poll (every ``poll_interval``, :data:`POLLING_INTERVAL` by default).
* **session state** (``SET``, session advisory locks, temporary tables): the backend and the log
  use none; their locks are transaction-scoped (``pg_advisory_xact_lock``) and every table name
  is schema-qualified, so no ``search_path`` is needed.

The pool's per-release reset query (``RESET ALL; UNLISTEN *; ...``) is skipped in every mode:
with no session state there is nothing to reset (and behind a transaction pooler the pooler owns
the sessions anyway), while the query would cost one round trip per checkout, as much as a
single-row enqueue itself. asyncpg still rolls back a transaction left open on release.

``pooler=session`` (and ``none``, the default) keep the direct behaviour: a session-mode pooler
gives each client its own server session for as long as it is connected.
"""

from __future__ import annotations

import inspect
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from workhive._redact import redact_url
from workhive.errors import ConfigError

_POOL_PARAMETERS = inspect.signature(asyncpg.create_pool).parameters
POOLERS = ("none", "session", "transaction")
#: the idle re-check with LISTEN wake-ups: a safety net for a lost listener only
LISTENING_INTERVAL = 2.0
#: the idle re-check without them (transaction pooler, no ``listen_url``): the wake-up itself
POLLING_INTERVAL = 0.25


def check_pooler(value: object) -> str:
    """``value`` as one of :data:`POOLERS`, or :class:`ConfigError` naming them."""
    text = str(value).strip().lower() if isinstance(value, str) else value
    if text not in POOLERS:
        raise ConfigError(f"postgres option 'pooler' must be one of {', '.join(POOLERS)}; "
                          f"got {value!r}")
    return str(text)


def split_listen_url(url: str) -> tuple[str, str | None]:
    """A ``listen_url`` as ``(url without its password, password or None)``.

    The password is kept apart (as the main URL's is) so nothing that prints the settings
    shows it. Without one, the caller uses the main URL's password (or ``PGPASSWORD``).
    """
    try:
        parts = urlsplit(url)
        password = parts.password
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(f"postgres option 'listen_url' is not a valid URL: "
                          f"{redact_url(url)!r}") from None
    if parts.scheme.lower() not in {"postgres", "postgresql"}:
        raise ConfigError(f"postgres option 'listen_url' must be a postgresql:// URL (a direct "
                          f"connection to the server, not the pooler); got {redact_url(url)!r}")
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
    bare = urlunsplit(("postgresql", netloc, parts.path, parts.query, ""))
    return bare, unquote(password) if password else None


def driver_options(pooler: str) -> dict[str, Any]:
    """Keyword arguments for ``asyncpg.connect`` / ``create_pool`` behind ``pooler``."""
    if pooler != "transaction":
        return {}
    return {"statement_cache_size": 0}


def pool_options(pooler: str) -> dict[str, Any]:
    """:func:`driver_options` plus the pool-only ones (no reset query per release, whatever
    ``pooler`` is; asyncpg 0.30 and later, older ones keep their reset, which is correct, one
    round trip slower)."""
    options = driver_options(pooler)
    if "reset" in _POOL_PARAMETERS:
        options["reset"] = _no_reset
    return options


async def _no_reset(connection: Any) -> None:
    """Release without a reset query: there is no session state to clear (see the module)."""
