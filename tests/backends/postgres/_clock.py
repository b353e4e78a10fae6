"""The database clock, which leases, expiries and history minutes use (never the test's)."""

from __future__ import annotations

import asyncio

import asyncpg

from workhive.backends._sql.dialect import POSTGRES_NOW as NOW


async def db_now(pg_url: str) -> float:
    con = await asyncpg.connect(pg_url)
    try:
        return float(await con.fetchval(f"SELECT {NOW}"))
    finally:
        await con.close()


async def until_db_clock_passes(pg_url: str, moment: float) -> None:
    """Sleep until the database's clock is past ``moment``."""
    while (now := await db_now(pg_url)) <= moment:  # noqa: ASYNC110 - polls the db clock
        await asyncio.sleep(moment - now + 0.01)
