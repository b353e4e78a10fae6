"""Garbage in any stored SQLite column never wedges a queue, and no good message is lost.

SQLite stores any value in any column, so for every column of every row the backend writes,
each ``GARBAGE`` value (as TEXT when it is UTF-8, else as a BLOB) replaces the stored one; then
good messages enqueued on the same queue must still be fetched and settled through every action.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.backends._fuzz import GARBAGE, assert_queue_flows, seed
from workhive._envelope import make_envelope
from workhive.backend import WorkerInfo
from workhive.backends._sql.layout import DATA_TABLES
from workhive.backends.sqlite import SQLiteBackend

pytestmark = pytest.mark.sqlite


async def _seed_everything(backend: SQLiteBackend) -> None:
    await seed(backend, "q", time.time())
    await backend.bind("fz.*", "grp")
    await backend.publish(make_envelope("fz.ev", {}, kind="event"))
    await backend.hit_window("rk", 60, 5)
    await backend.take_token("tk", 1.0, 5)
    await backend.heartbeat(WorkerInfo("w1", "h", 1, ["q"], 1, 0.0, 0.0), 3600)
    await backend.claim_key("ck", "holder", None)
    await backend.claim_tick("job", 1.0)


def _cells(path: Path) -> list[tuple[str, str, int]]:
    """(table, column, rowid) of every stored value."""
    out = []
    with sqlite3.connect(path) as db:
        for table in DATA_TABLES:
            cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            for (rowid,) in db.execute(f"SELECT rowid FROM {table}"):
                out += [(table, c, rowid) for c in cols]
    db.close()
    return out


def _value(raw: bytes) -> str | bytes:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


async def test_garbage_in_any_stored_column_keeps_the_queue_flowing(tmp_path: Path) -> None:
    probe = tmp_path / "probe.db"
    backend = SQLiteBackend.from_url(f"sqlite:///{probe}")
    await _seed_everything(backend)
    await backend.close()
    layout = _cells(probe)
    assert {t for t, _, _ in layout} >= {"jobs", "dead", "idempotency", "bindings", "workers"}
    cases = refused = 0
    for n, (table, column, rowid) in enumerate(layout):
        for label, raw in GARBAGE.items():
            path = tmp_path / f"c{n}-{label}.db"
            backend = SQLiteBackend.from_url(f"sqlite:///{path}")
            await _seed_everything(backend)
            try:
                with sqlite3.connect(path) as db:
                    db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?",
                               (_value(raw), rowid))
                db.close()
            except sqlite3.Error:  # the store itself refuses it (integer primary key, ...)
                refused += 1
                await backend.close()
                continue
            try:
                await assert_queue_flows(backend, "q")
                await backend.publish(make_envelope("fz.ev", {}, kind="event"))
                await backend.hit_window("rk", 60, 5)
                await backend.take_token("tk", 1.0, 5)
                await backend.workers()
                await backend.claim_key("ck", "other", None)
            except Exception as exc:
                raise AssertionError(f"{table}.{column} row {rowid} = {label}: {exc!r}") from exc
            finally:
                await backend.close()
                path.unlink()
            cases += 1
    print(f"sqlite store fuzz: {cases} cases over {len(layout)} cells ({refused} refused "
          "by sqlite itself)")
    assert cases + refused == len(layout) * len(GARBAGE)
