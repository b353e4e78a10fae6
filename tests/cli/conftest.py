"""Fixtures for driving the CLI in-process (CliRunner) against a per-test memory backend.

``memory://<name>`` resolves to one shared backend per name within the process, so a test
can populate it through a Hive and then look at it through the CLI. Each test gets its own
name, so tests never see each other's queues.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from examples.userapp.app import create_hive

from workhive.backends.memory import MemoryBackend
from workhive.cli import cli
from workhive.demo import services
from workhive.testing import run_until_idle

APP = "examples.userapp.app:hive"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_outbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(REPO)  # --app examples.userapp... is imported relative to the cwd
    monkeypatch.delenv("WORKHIVE_CONFIG", raising=False)
    services.reset()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    services.reset()
    root.setLevel(level)  # the CLI installs its log handler on the root logger: undo that
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)


@pytest.fixture
def mem_url() -> Iterator[str]:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    yield f"memory://{name}"
    MemoryBackend._instances.pop(name, None)


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def populate(url: str, crm_users: tuple[int, ...] = (7,)) -> None:
    """One welcome email done, one CRM sync per user dead after 3 attempts.

    Call it once per backend: a memory backend's wait condition belongs to the event loop
    that first waited on it.
    """

    async def go() -> None:
        hive = create_hive(backend=url)
        await hive.enqueue("user:send_welcome_email", {"user_id": 1, "email": "a@example.com"})
        for user_id in crm_users:
            await hive.enqueue("user:sync_crm", {"user_id": user_id})
        await run_until_idle(hive)
        await hive.close()

    asyncio.run(go())
