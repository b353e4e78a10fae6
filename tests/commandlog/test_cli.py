"""``workhive log tail`` and ``workhive workers`` (``new module``: tests/cli/test_scaffold.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from tests.commandlog.commands import CreatePost
from workhive.cli.commandlog import log_group, workers_command
from workhive.commandlog import Executor
from workhive.commandlog.sqlite import SQLiteMessageLog


async def _fill(path: Path) -> None:
    async with SQLiteMessageLog(str(path)) as log:
        await Executor(log).execute_many([CreatePost(str(i), f"title {i}") for i in range(5)])
        await log.save_checkpoint("indexer", 3)


def test_log_tail_and_workers(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    asyncio.run(_fill(db))  # the CLI runs its own event loop, so this test is sync
    url = f"sqlite:///{db}"
    runner = CliRunner()
    out = runner.invoke(log_group, ["tail", "--log", url, "-n", "2"])
    assert out.exit_code == 0, out.output
    assert "head 5" in out.output and "post/create" in out.output
    assert "title 4" in out.output and "title 2" not in out.output
    out = runner.invoke(workers_command, ["--log", url])
    assert out.exit_code == 0, out.output
    assert "indexer" in out.output and "│ 3" in out.output and "│ 2 " in out.output
    out = runner.invoke(workers_command, ["--log", "redis://nope"])
    assert out.exit_code != 0 and "unsupported message log URL" in out.output

