"""Operations written once, run by a blocking SQLite connection or an async asyncpg one.

An operation is a generator: it *yields* a :class:`Query` and is sent back its result, so the
logic between statements (decode a dead letter, merge stats, decide what to insert) lives in
one place while each driver keeps its own way of talking to the database::

    def get_result(s: Statements, task_id: str) -> Op[bytes | None]:
        record = yield value(s.get_result, task_id)
        return None if record is None else bytes(record)

:func:`run_blocking` drives one on a ``sqlite3.Connection`` (on the SQLite backend's own
thread), :func:`run_async` on an asyncpg connection. Whether the statements share a
transaction is the caller's choice (both backends wrap writes that touch more than one row of
meaning in one).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")

#: what a query's caller gets back: every row, the first row (or None), the first column of
#: the first row (or None), the number of rows changed, or nothing (``many`` runs the statement
#: once per parameter tuple)
Kind = Literal["rows", "row", "value", "count", "many"]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement (rendered for the dialect) and its parameters."""

    sql: str
    args: Sequence[Any]
    kind: Kind


#: an operation: yields queries, receives their results, returns ``T``
Op = Generator[Query, Any, T]


def rows(sql: str, *args: Any) -> Query:
    return Query(sql, args, "rows")


def row(sql: str, *args: Any) -> Query:
    return Query(sql, args, "row")


def value(sql: str, *args: Any) -> Query:
    return Query(sql, args, "value")


def count(sql: str, *args: Any) -> Query:
    return Query(sql, args, "count")


def many(sql: str, args: Sequence[Sequence[Any]]) -> Query:
    return Query(sql, args, "many")


def run_blocking(con: sqlite3.Connection, op: Op[T]) -> T:
    """Drive ``op`` on a sqlite3 connection (lists become JSON text for ``json_each``)."""
    try:
        query = next(op)
        while True:
            query = op.send(_sqlite(con, query))
    except StopIteration as done:
        result: T = done.value
        return result


def _sqlite(con: sqlite3.Connection, query: Query) -> Any:
    if query.kind == "many":
        con.executemany(query.sql, query.args)
        return None
    args = [json.dumps(a) if isinstance(a, list | tuple) else a for a in query.args]
    cursor = con.execute(query.sql, args)
    if query.kind == "count":
        return cursor.rowcount
    if query.kind == "rows":
        return cursor.fetchall()
    first = cursor.fetchone()
    if query.kind == "row" or first is None:
        return first
    return first[0]


async def run_async(con: Any, op: Op[T]) -> T:
    """Drive ``op`` on an asyncpg connection."""
    try:
        query = next(op)
        while True:
            query = op.send(await _asyncpg(con, query))
    except StopIteration as done:
        result: T = done.value
        return result


async def _asyncpg(con: Any, query: Query) -> Any:
    kind, sql, args = query.kind, query.sql, query.args
    if kind == "rows":
        return await con.fetch(sql, *args)
    if kind == "row":
        return await con.fetchrow(sql, *args)
    if kind == "value":
        return await con.fetchval(sql, *args)
    if kind == "many":
        if args:
            await con.executemany(sql, args)
        return None
    status = await con.execute(sql, *args)
    return int(status.split()[-1]) if status.split()[-1].isdigit() else 0
