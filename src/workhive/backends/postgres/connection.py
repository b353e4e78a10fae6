"""Opening PostgreSQL connections from :class:`PostgresSettings`, for the backend and the log.

:func:`create_pool` and :func:`connect` are the only places either of them opens connections,
so both always connect with the same password handling, timeouts and pooler options
(:mod:`.pooling`). Driver errors come out as they are; callers hand them to
:meth:`PostgresSettings.translate`, which names the redacted URL and what was being done.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from workhive.backends.postgres.pooling import driver_options, pool_options
from workhive.backends.postgres.settings import PostgresSettings


async def create_pool(settings: PostgresSettings, **overrides: Any) -> asyncpg.Pool:
    """A pool on ``settings.url``: ``pool_size`` connections at most, the connect and command
    timeouts, :func:`pool_options` for the pooler; ``overrides`` replace any of those keywords.

    Driver errors propagate as they are: hand them to :meth:`PostgresSettings.translate`.
    """
    options: dict[str, Any] = {
        "min_size": 1, "max_size": settings.pool_size, "timeout": settings.connect_timeout,
        "command_timeout": settings.command_timeout, **pool_options(settings.pooler),
        **overrides,
    }
    return await asyncpg.create_pool(settings.url, password=settings.password, **options)


async def connect(settings: PostgresSettings,
                  url_password: tuple[str, str | None] | None = None) -> asyncpg.Connection:
    """One connection outside the pool (LISTEN, dropping a schema): to ``url_password``
    (``(url, password)``, e.g. :attr:`PostgresSettings.listener_target`) or to the settings'
    own URL. Driver errors propagate as for :func:`create_pool`."""
    url, password = url_password or (settings.url, settings.password)
    return await asyncpg.connect(url, password=password, timeout=settings.connect_timeout,
                                 **driver_options(settings.pooler))
