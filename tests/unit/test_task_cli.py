"""``workhive cancel``, ``workhive result`` and the progress section of ``workhive status``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from click.testing import CliRunner, Result

from workhive import Hive, Module
from workhive.backend import QueueStats, WorkerInfo
from workhive.cli import cli
from workhive.cli._status import progress_rows, render
from workhive.inspector import Snapshot
from workhive.testing import run_until_idle

m = Module("cli")


@m.task("cli:double", store_result=True)
def double(p: dict[str, int]) -> int:
    return p["n"] * 2


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cancel_and_result_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hive.db'}"

    async def prepare() -> tuple[str, str]:
        hive = Hive(url)
        hive.include(m)
        later = await hive.enqueue("cli:double", {"n": 1}, delay=3600)
        done = await hive.enqueue("cli:double", {"n": 21})
        await run_until_idle(hive, wait_delayed=False)
        await hive.close()
        return later.id, done.id

    later, done = asyncio.run(prepare())
    cancelled = invoke("cancel", later, "no-such-task", "--backend", url)
    assert cancelled.exit_code == 0, cancelled.output
    assert f"Cancelled {later}: it was waiting and is deleted" in cancelled.output
    assert "Cancel requested for no-such-task" in cancelled.output
    as_json = invoke("cancel", done, "--backend", url, "--json")
    assert json.loads(as_json.output) == {"id": done, "deleted": False}
    shown = invoke("result", done, "--backend", url)
    assert f"{done}: succeeded" in shown.output and "value: 42" in shown.output
    record = json.loads(invoke("result", later, "--backend", url, "--json").output)
    assert record["state"] == "cancelled" and record["id"] == later
    unknown = invoke("result", "nothing", "--backend", url)
    assert "nothing: pending (nothing recorded" in unknown.output


def test_cancel_is_refused_where_the_backend_cannot() -> None:
    refused = CliRunner().invoke(cli, ["cancel", "x", "--backend", "noop://"])
    assert refused.exit_code == 2
    assert "does not support cancel" in refused.output


def test_status_shows_reported_progress() -> None:
    now = time.time()
    busy = WorkerInfo("w1", "host", 1, ["default"], 4, now, now,
                      {"in_flight": 1, "processed": 3,
                       "progress": {"t1": ["app:export", 0.4, "exported 400 rows"]}})
    idle = WorkerInfo("w2", "host", 2, ["default"], 4, now, now, {"processed": 0})
    snap = Snapshot("sqlite", now, [QueueStats("default", in_flight=1)], [busy, idle])
    assert progress_rows(snap) == [("t1", "app:export", "40%", "exported 400 rows", "w1")]
    assert len(render(snap, None).renderables) == 3
    quiet = Snapshot("sqlite", now, [], [idle])
    assert progress_rows(quiet) == [] and len(render(quiet, None).renderables) == 2
