"""Garbage written straight into the database file: the worker dead-letters it and carries on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from workhive import Hive, Module
from workhive.testing import run_until_idle

pytestmark = pytest.mark.sqlite


async def test_corrupt_row_goes_to_dlq_and_the_rest_run(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    m, ran = Module("c"), []

    @m.task("c:ok")
    async def ok(p: dict[str, int]) -> None:
        ran.append(p["i"])

    hive = Hive(f"sqlite:///{path}")
    hive.include(m)
    for i in range(5):
        await hive.enqueue("c:ok", {"i": i})
    with sqlite3.connect(path) as raw:  # another program scribbles over one stored message
        raw.execute("UPDATE jobs SET body = ? WHERE seq = (SELECT MIN(seq) FROM jobs)",
                    (b"\x92\xa3not an envelope",))
    raw.close()
    await run_until_idle(hive)
    assert sorted(ran) == [1, 2, 3, 4]
    (letter,) = await hive.backend.dead_letters()  # type: ignore[attr-defined]
    assert letter.reason.startswith("malformed message (17 bytes)")
    assert letter.body == b"\x92\xa3not an envelope"  # kept as it was, for inspection
    stats = {s.queue: s for s in await hive.backend.stats()}  # type: ignore[attr-defined]
    assert stats["default"].ready == 0 and stats["default"].dead == 1
    await hive.close()
