"""A hive with something to show: processed tasks, dead letters whose payload, error and
traceback carry ``<script>``, a flagged-off task, a subscriber and a cron job.

Each test gets its own backend (a fresh ``memory://`` or a sqlite file under ``tmp_path``),
populated and inspected on the test's own event loop, through ``httpx.ASGITransport``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from workhive import Hive, Module
from workhive.dashboard import create_app
from workhive.testing import run_until_idle

XSS = "<script>alert(1)</script>"

demo = Module("demo")


@demo.task("demo:ok", queue="fast")
async def ok(p: dict[str, int], ctx: object) -> None:
    return None


@demo.task("demo:boom", max_retries=1, retry_backoff=0.01)
async def boom(p: dict[str, str], ctx: object) -> None:
    raise RuntimeError(f"refused {p['note']}")


@demo.task("demo:export", flag="data_export", queue="exports")
async def export(p: dict[str, int], ctx: object) -> None:
    return None


@demo.subscribe("users.created", group="mailer")
async def on_user(e: dict[str, str], ctx: object) -> None:
    return None


@demo.subscribe("users.deleted", group="audit", max_retries=0)
async def on_deleted(e: dict[str, str], ctx: object) -> None:
    raise RuntimeError("audit store is down")


@demo.cron("*/5 * * * *", publish="demo.tick")
def tick() -> dict[str, int]:
    return {}


async def populate(hive: Hive, *, dead: int = 1) -> None:
    """3 tasks processed on "fast"; ``dead`` dead letters on "default" after 2 attempts each."""
    for i in range(3):
        await hive.enqueue("demo:ok", {"n": i})
    for i in range(dead):
        await hive.enqueue("demo:boom", {"note": XSS, "i": str(i)})
    await run_until_idle(hive)


def build_hive(url: str) -> Hive:
    hive = Hive(url, flags={"data_export": False})
    hive.include(demo)
    return hive


@pytest.fixture(params=["memory", "sqlite"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'wh.db'}"


@pytest.fixture
async def hive(backend_url: str) -> AsyncIterator[Hive]:
    hive = build_hive(backend_url)
    await populate(hive)
    yield hive
    await hive.close()


def client_for(hive: Hive, *, read_only: bool = False) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(hive, read_only=read_only))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(hive: Hive) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(hive) as c:
        yield c


@pytest.fixture
async def ro_client(hive: Hive) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(hive, read_only=True) as c:
        yield c


