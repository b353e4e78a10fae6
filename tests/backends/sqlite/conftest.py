"""Fixtures for the SQLite backend's own tests: a fresh file per test, an optional fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from workhive.backends.sqlite import SQLiteBackend


class FakeClock:
    """Wall-clock stand-in so eta, lease and window tests never sleep."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/hive.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def backend(db_url: str, clock: FakeClock) -> AsyncIterator[SQLiteBackend]:
    b = SQLiteBackend.from_url(db_url, clock=clock)
    await b.open()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def real_backend(db_url: str) -> AsyncIterator[SQLiteBackend]:
    """A backend on the real clock, for tests of waiting."""
    async with SQLiteBackend.from_url(db_url) as b:
        yield b
