"""Never a silent dead letter: a message dead-lettered before its handler ran is logged at ERROR
with its reason and counted as ``workhive_tasks_total{outcome="dead"}``.

Three ways to get there, all on one SQLite file: a task nobody registered, a payload the
handler's type refuses (sent by a producer without the handler code, so nothing checked it), and
bytes that are not an envelope at all.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from workhive import Hive, Module
from workhive.middleware import Logs
from workhive.middleware.prometheus import MALFORMED_TASK, PrometheusMetrics
from workhive.testing import run_until_idle

pytestmark = pytest.mark.sqlite


@dataclass
class Sized:
    size: int


async def test_dead_before_handler_is_logged_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    m, ran = Module("o"), []

    @m.task("o:sized")
    async def sized(p: Sized) -> None:
        ran.append(p.size)

    registry = CollectorRegistry()
    hive = Hive(url)
    assert isinstance(hive.middleware[0], Logs)
    hive.middleware.insert(1, PrometheusMetrics(registry))
    hive.include(m)

    producer = Hive(url)  # knows no task: sends by name and queue, validates nothing
    unknown = await producer.enqueue("o:gone", {}, queue="default")
    invalid = await producer.enqueue("o:sized", {"size": "large"}, queue="default")
    await producer.enqueue("o:sized", {"size": 1}, queue="default")  # overwritten below
    await producer.enqueue("o:sized", {"size": 2}, queue="default")
    await producer.close()
    with sqlite3.connect(tmp_path / "q.db") as raw:  # another program scribbles over one
        raw.execute("UPDATE jobs SET body = ? WHERE seq = (SELECT MAX(seq) - 1 FROM jobs)",
                    (b"\x92\xa3not an envelope",))
    raw.close()

    with caplog.at_level(logging.INFO, logger="workhive"):
        await run_until_idle(hive)
    assert ran == [2]

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3, [r.getMessage() for r in caplog.records]
    by_task = {getattr(r, "task", None): r for r in errors}
    gone, bad, malformed = by_task["o:gone"], by_task["o:sized"], by_task[None]
    assert gone.getMessage() == (
        f"Dead-lettered task o:gone ({unknown.id}) from queue default before its handler ran: "
        "unknown task 'o:gone': no handler registered in this worker")
    assert (gone.task_id, gone.queue, gone.attempt) == (unknown.id, "default", 0)  # type: ignore[attr-defined]
    assert bad.getMessage().startswith(
        f"Dead-lettered task o:sized ({invalid.id}) from queue default before its handler ran: ")
    assert "size" in bad.getMessage() and bad.task_id == invalid.id  # type: ignore[attr-defined]
    assert malformed.getMessage().startswith(
        "Dead-lettered a malformed message from queue default: malformed message (17 bytes)")
    assert malformed.queue == "default"  # type: ignore[attr-defined]

    def sample(name: str, task: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"task": task, "queue": "default", **labels})

    assert sample("workhive_tasks_total", "o:gone", outcome="dead") == 1
    assert sample("workhive_tasks_total", "o:sized", outcome="dead") == 1
    assert sample("workhive_tasks_total", MALFORMED_TASK, outcome="dead") == 1
    assert sample("workhive_tasks_total", "o:sized", outcome="succeeded") == 1
    # nothing ran for the dead ones: the only duration observed is the one success
    assert sample("workhive_task_duration_seconds_count", "o:sized") == 1
    assert sample("workhive_task_duration_seconds_count", "o:gone") is None

    letters = await hive.backend.dead_letters()  # type: ignore[attr-defined]
    assert len(letters) == 3
    await hive.close()


async def test_dead_letters_are_logged_without_prometheus(
        caplog: pytest.LogCaptureFixture) -> None:
    hive = Hive("memory://")  # the default chain: no metrics layer to count in
    hive.include(Module("empty"))
    await hive.enqueue("nobody:home", {}, queue="default")
    with caplog.at_level(logging.ERROR, logger="workhive.worker"):
        await run_until_idle(hive, queues=["default"])
    # other loggers' INFO lines may be captured too (a CLI test in this process set levels)
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Dead-lettered task nobody:home" in record.getMessage()
    assert "unknown task 'nobody:home'" in record.getMessage()
    await hive.close()
