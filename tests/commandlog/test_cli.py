"""``workhive log tail``, ``workhive workers`` and ``workhive new module``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.commandlog.commands import CreatePost
from workhive.cli.commandlog import log_group, workers_command
from workhive.cli.scaffold import new_group
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


def test_new_module_refuses_bad_names_and_existing_dirs(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(new_group, ["module", "Bad-Name", "--dir", str(tmp_path)]).exit_code == 2
    assert runner.invoke(new_group, ["module", "class", "--dir", str(tmp_path)]).exit_code == 2
    (tmp_path / "taken").mkdir()
    out = runner.invoke(new_group, ["module", "taken", "--dir", str(tmp_path)])
    assert out.exit_code == 1 and "already exists" in out.output


@pytest.mark.integration
def test_new_module_generates_a_passing_test(tmp_path: Path) -> None:
    out = CliRunner().invoke(new_group, ["module", "blog_posts", "--dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    names = sorted(p.name for p in (tmp_path / "blog_posts").iterdir())
    assert names == ["__init__.py", "commands.py", "tasks.py", "test_blog_posts.py", "worker.py"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
         "-o", "asyncio_default_fixture_loop_scope=function", "--rootdir", str(tmp_path),
         str(tmp_path / "blog_posts")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
