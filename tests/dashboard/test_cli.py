"""``workhive dashboard``: the missing-extra hint, a missing database, and a real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests._services import free_port
from tests.dashboard.conftest import build_hive, populate
from workhive.cli import cli
from workhive.dashboard import create_app


def test_without_the_extra_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what a missing package looks like
    result = CliRunner().invoke(cli, ["dashboard", "--backend", "memory://"])
    assert result.exit_code == 2
    assert "pip install 'workhive[dashboard]'" in result.stderr


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    result = CliRunner().invoke(cli, ["dashboard", "--backend", f"sqlite:///{db}"])
    assert result.exit_code == 2 and "no sqlite database" in result.stderr
    assert not db.exists()


async def test_lifespan_closes_the_hive(tmp_path: Path) -> None:
    """(Starlette's TestClient now warns when used with httpx; drive the lifespan directly.)"""
    hive = build_hive(f"sqlite:///{tmp_path / 'wh.db'}")
    await populate(hive)
    await hive.close()
    app = create_app(hive)
    transport = httpx.ASGITransport(app=app)
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://t") as client):
        queues = {q["queue"]: q for q in (await client.get("/api/queues")).json()["queues"]}
        assert queues["fast"]["processed"] == 3
        assert hive._opened
    assert not hive._opened  # the server's shutdown closed it


@pytest.mark.integration
@pytest.mark.sqlite
def test_serves_a_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "wh.db"

    async def fill() -> None:
        hive = build_hive(f"sqlite:///{db}")
        await populate(hive)
        await hive.close()

    asyncio.run(fill())
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workhive.cli", "dashboard", "--backend", f"sqlite:///{db}",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        page = None
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(300):  # bounded: about 30 s at most
                if proc.poll() is not None:
                    break
                try:
                    page = client.get("/")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert page is not None, "the dashboard never answered"
            assert page.status_code == 200 and "<td>fast</td>" in page.text
            queues = {q["queue"]: q for q in client.get("/api/queues").json()["queues"]}
            assert queues["default"]["dead"] == 1
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert b"workhive dashboard for the sqlite backend" in stderr, stderr.decode()
