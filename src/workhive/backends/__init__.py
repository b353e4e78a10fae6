"""Backend selection by URL: ``sqlite:///workhive.db``, ``redis://...``, ``amqp://...``.

Backends register their URL schemes in the ``workhive.backends`` entry-point group, the built-in
ones included (see ``pyproject.toml``), so a third-party package adds a broker by declaring::

    [project.entry-points."workhive.backends"]
    mybroker = "mypackage.backend:MyBackend"

The class needs a ``from_url(url, **options)`` classmethod that builds (not connects) it. Each
backend module owns its driver import, so ``import workhive`` never needs redis-py or aio-pika;
a missing extra is reported with the ``pip install`` line that fixes it.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from workhive.backend import Backend
from workhive.errors import ConfigError

GROUP = "workhive.backends"

@functools.cache
def registered() -> dict[str, EntryPoint]:
    """URL scheme -> entry point, from every installed distribution."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else url.lower()


def open_backend(url: str, **options: Any) -> Backend:
    """Build (not connect) the backend a URL names. Raises ConfigError for unknown schemes."""
    scheme = scheme_of(url)
    schemes = registered()
    if scheme not in schemes:
        known = ", ".join(sorted(schemes)) or "none (is workhive installed?)"
        raise ConfigError(f"unknown backend {scheme!r}; known URL schemes: {known}")
    entry = schemes[scheme]
    try:
        cls = entry.load()
    except ImportError as exc:
        extra = entry.extras[0] if entry.extras else entry.name
        raise ConfigError(
            f"the {scheme!r} backend needs an extra: pip install 'workhive[{extra}]' ({exc})"
        ) from exc
    backend: Backend = cls.from_url(url, **options)
    return backend
