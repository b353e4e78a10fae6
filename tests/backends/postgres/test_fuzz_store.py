"""Garbage in any stored PostgreSQL column never wedges a queue, and no good message is lost.

PostgreSQL enforces column types, so garbage here is every value the type still admits that
the backend never writes itself (NaN and infinities in float8, extreme integers, empty / huge /
separator-only text, bytes that are not MessagePack in bytea, broken JSON in the heartbeat).
Each one replaces one column of one row; values the database refuses are counted apart.
"""

from __future__ import annotations

import time

import asyncpg
import pytest

from tests._services import unique_name
from tests.backends._fuzz import GARBAGE, assert_queue_flows, seed
from workhive._envelope import make_envelope
from workhive.backend import WorkerInfo
from workhive.backends._sql.layout import DATA_TABLES
from workhive.backends.postgres import PostgresBackend

pytestmark = pytest.mark.postgres

_BY_TYPE: dict[str, list[str | bytes]] = {
    "text": ["", "not-a-number", "|", "x" * 20_000],
    "double precision": ["NaN", "Infinity", "-Infinity", "-1e308"],
    "bigint": ["-9223372036854775808", "9223372036854775807", "0"],
    "integer": ["-2147483648", "2147483647"],
    "bytea": list(GARBAGE.values()),
    "boolean": ["true", "false"],
}


async def _seed_everything(backend: PostgresBackend) -> None:
    await seed(backend, "q", time.time())
    await backend.bind("fz.*", "grp")
    await backend.publish(make_envelope("fz.ev", {}, kind="event"))
    await backend.hit_window("rk", 60, 5)
    await backend.take_token("tk", 1.0, 5)
    await backend.heartbeat(WorkerInfo("w1", "h", 1, ["q"], 1, 0.0, 0.0), 3600)
    await backend.claim_key("ck", "holder", None)
    await backend.claim_tick("job", 1.0)


# 270 cases of a fresh store each: about a minute; the default 120 s hang guard is too tight
# when the machine is shared
@pytest.mark.timeout(300)
async def test_garbage_in_any_stored_column_keeps_the_queue_flowing(pg_url: str) -> None:
    con = await asyncpg.connect(pg_url)
    cases = refused = 0
    try:
        probe = unique_name("fzp")
        backend = PostgresBackend.from_url(pg_url, schema=probe)
        await _seed_everything(backend)
        layout: list[tuple[str, str, str, int]] = []  # table, column, type, row number
        for table in DATA_TABLES:
            cols = await con.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = $1 AND table_name = $2", probe, table)
            rows = await con.fetchval(f"SELECT count(*) FROM {probe}.{table}")
            layout += [(table, c["column_name"], c["data_type"], n)
                       for c in cols for n in range(rows)]
        await backend.close()
        # one schema for every case, emptied between them: creating a schema per case made
        # this test the slowest of the suite, and TRUNCATE gives each case the same clean start
        schema, clear = probe, "TRUNCATE " + ", ".join(f"{probe}.{t}" for t in DATA_TABLES)
        for table, column, kind, n in layout:
            for value in _BY_TYPE.get(kind, []):
                await con.execute(clear)
                backend = PostgresBackend.from_url(pg_url, schema=schema, pool_size=2)
                await _seed_everything(backend)
                try:
                    ctid = await con.fetchval(
                        f"SELECT ctid FROM {schema}.{table} ORDER BY ctid OFFSET $1", n)
                    cast = "$1::bytea" if kind == "bytea" else f"$1::text::{kind}"
                    await con.execute(
                        f"UPDATE {schema}.{table} SET {column} = {cast} WHERE ctid = $2",
                        value, ctid)
                except asyncpg.PostgresError:  # the database refuses it (unique, not null)
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
                    shown = value[:20] if isinstance(value, str | bytes) else value
                    raise AssertionError(f"{table}.{column} row {n} = {shown!r}: {exc!r}") from exc
                finally:
                    await backend.close()
                cases += 1
        await PostgresBackend.from_url(pg_url, schema=probe).wipe()
    finally:
        await con.close()
    print(f"postgres store fuzz: {cases} cases over {len(layout)} cells ({refused} refused by "
          "the database)")
    assert cases > 100
