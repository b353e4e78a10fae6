"""Harnesses: how each backend joins the conformance suite.

Each harness hands out fresh clients on one isolated store: a new SQLite file under tmp_path, a
unique Redis key prefix (wiped afterwards), one in-process memory instance.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._services import in_ci, require_service, unique_name
from workhive._backend import Capability

BACKENDS = ["memory", "sqlite", "redis", "postgres"]


def _import(module: str, cls: str) -> Any:
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        if in_ci():
            pytest.fail(f"{module} is not importable: {exc}", pytrace=False)
        pytest.skip(f"{module} is not importable: {exc}")


class Harness:
    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.made: list[Any] = []
        probe = factory()
        self.capabilities: frozenset[Capability] = frozenset(probe.capabilities)
        self.made.append(probe)

    def new(self) -> Any:
        backend = self.factory()
        self.made.append(backend)
        return backend


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    name = request.param
    if name == "memory":
        from workhive.backends.memory import MemoryBackend

        shared = MemoryBackend()
        yield Harness(lambda: shared)
    elif name == "sqlite":
        sqlite = _import("workhive.backends.sqlite", "SQLiteBackend")
        url = f"sqlite:///{tmp_path / 'conformance.db'}"
        yield Harness(lambda: sqlite.from_url(url))
    elif name == "postgres":
        url = require_service("postgres")
        postgres = _import("workhive.backends.postgres", "PostgresBackend")
        schema = unique_name("conf")
        harness = Harness(lambda: postgres.from_url(url, schema=schema))
        yield harness
        asyncio.run(postgres.from_url(url, schema=schema).wipe())
    else:
        url = require_service("redis")
        redis = _import("workhive.backends.redis", "RedisBackend")
        prefix = unique_name("conf")
        harness = Harness(lambda: redis.from_url(url, prefix=prefix))
        yield harness
        cleaner = redis.from_url(url, prefix=prefix)

        async def wipe() -> None:
            await cleaner.open()
            await cleaner.wipe()
            await cleaner.close()

        asyncio.run(wipe())
