"""Backend selection by URL: ``sqlite:///workhive.db``, ``redis://...``, ``memory://``, ``noop://``.

Each backend module owns its driver import, so ``import workhive`` never needs redis-py or
asyncpg; a missing extra is reported with the ``pip install`` line that fixes it.
"""

from __future__ import annotations

import importlib
from typing import Any

from workhive._backend import Backend
from workhive.errors import ConfigError

# scheme -> (module, class, pip extra)
_SCHEMES: dict[str, tuple[str, str, str]] = {
    "sqlite": ("workhive.backends.sqlite", "SQLiteBackend", ""),
    "memory": ("workhive.backends.memory", "MemoryBackend", ""),
    "noop": ("workhive.backends.noop", "NoopBackend", ""),
    "redis": ("workhive.backends.redis", "RedisBackend", "redis"),
    "rediss": ("workhive.backends.redis", "RedisBackend", "redis"),
    "unix": ("workhive.backends.redis", "RedisBackend", "redis"),
    "redis-pubsub": ("workhive.backends.redis_pubsub", "RedisPubSubBackend", "redis"),
    "postgres": ("workhive.backends.postgres", "PostgresBackend", "postgres"),
    "postgresql": ("workhive.backends.postgres", "PostgresBackend", "postgres"),
}

BACKEND_NAMES = ("sqlite", "redis", "redis-pubsub", "postgres", "memory", "noop")


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else url.lower()


def open_backend(url: str, **options: Any) -> Backend:
    """Build (not connect) the backend a URL names. Raises ConfigError for unknown schemes."""
    scheme = scheme_of(url)
    if scheme not in _SCHEMES:
        known = ", ".join(sorted(_SCHEMES))
        raise ConfigError(f"unknown backend {scheme!r} in {url!r}; known: {known}")
    module_name, class_name, extra = _SCHEMES[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if not extra:
            raise
        raise ConfigError(
            f"the {scheme!r} backend needs an extra: pip install 'workhive[{extra}]' ({exc})"
        ) from exc
    backend: Backend = getattr(module, class_name).from_url(url, **options)
    return backend
