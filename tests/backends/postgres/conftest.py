"""Fixtures for the postgres backend's own tests: one schema per test, wiped at teardown.

Every backend built through ``make`` shares the test's schema (so two instances compete for the
same rows, like two worker processes) and is closed at teardown, then the schema is dropped.
``pgbouncer`` is a private PgBouncer in transaction pooling mode, one per session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests._services import require_service, unique_name
from tests.backends.postgres._pgbouncer import PgBouncer
from workhive.backends.postgres import PostgresBackend


@pytest.fixture
def pg_url() -> str:
    return require_service("postgres")


@pytest.fixture
def schema() -> str:
    return unique_name("wh")


@pytest.fixture
async def make(pg_url: str, schema: str) -> AsyncIterator[Callable[..., PostgresBackend]]:
    made: list[PostgresBackend] = []

    def factory(**options: Any) -> PostgresBackend:
        backend = PostgresBackend.from_url(pg_url, schema=schema, **options)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.close()
    await PostgresBackend.from_url(pg_url, schema=schema).wipe()


@pytest.fixture
async def backend(make: Callable[..., PostgresBackend]) -> PostgresBackend:
    b = make()
    await b.open()
    return b




@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[PgBouncer]:
    """One PgBouncer (transaction pooling, 3 server sessions) in front of the test PostgreSQL
    for the whole run, stopped at the end."""
    bouncer = PgBouncer(require_service("postgres"), pool=3)
    bouncer.start()
    yield bouncer
    bouncer.stop()
