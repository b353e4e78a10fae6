"""What differs between SQLite and PostgreSQL in the statements both run, and nothing else.

The shared statements (in the operation modules beside this one) are written once, in
PostgreSQL's notation, with holes that a :class:`Dialect` fills:

* ``{t}`` before a table name: ``app.`` (the PostgreSQL schema) or nothing (one SQLite file);
* ``{now}``: the current time in unix seconds. PostgreSQL reads the *database* clock, so
  workers on several hosts agree on leases and windows; SQLite calls ``workhive_now()``, a
  function the connection maps to the backend's clock (tests pass a fake one);
* :meth:`Dialect.least` / :meth:`Dialect.greatest`, :meth:`Dialect.floor`,
  :meth:`Dialect.blob`: the few functions the two spell differently.

Parameters are PostgreSQL's ``$1``; SQLite reads them as ``?1`` (numbered, so a parameter may
appear twice). ``= ANY($n)`` tests membership in a list: PostgreSQL binds a list as an array;
SQLite reads it as ``IN (SELECT value FROM json_each(?n))`` and the runner sends the list as
JSON text. Everything else (``ON CONFLICT`` upserts, ``RETURNING``, ``FILTER``) the two
engines already spell the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

_PARAM = re.compile(r"\$(\d+)")
_ANY = re.compile(r"= ANY\(\$(\d+)(?:::\w+\[\])?\)")

#: the SQL expression of "now" per dialect (see the module docstring)
SQLITE_NOW = "workhive_now()"
POSTGRES_NOW = "extract(epoch FROM clock_timestamp())::float8"


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one engine spells the shared statements; :meth:`sql` applies it."""

    name: Literal["sqlite", "postgres"]
    #: prefix of every table name: ``"schema."`` or ``""``
    t: str
    #: the current time, unix seconds (float)
    now: str
    #: PostgreSQL's LISTEN/NOTIFY channel that wakes idle fetches ("" on SQLite)
    channel: str = ""

    @classmethod
    def sqlite(cls) -> Dialect:
        return cls("sqlite", "", SQLITE_NOW)

    @classmethod
    def postgres(cls, schema: str) -> Dialect:
        return cls("postgres", f"{schema}.", POSTGRES_NOW, f"{schema}_wake")

    @property
    def is_sqlite(self) -> bool:
        return self.name == "sqlite"

    def least(self, a: str, b: str) -> str:
        return f"{'min' if self.is_sqlite else 'least'}({a}, {b})"

    def greatest(self, a: str, b: str) -> str:
        return f"{'max' if self.is_sqlite else 'greatest'}({a}, {b})"

    def floor(self, expr: str) -> str:
        """``expr`` (>= 0) rounded down to an integer."""
        return f"CAST({expr} AS integer)" if self.is_sqlite else f"floor({expr})::bigint"

    def blob(self, column: str) -> str:
        """A bytes column read as bytes: SQLite keeps any value in any column (a corrupt row
        may hold text), PostgreSQL's ``bytea`` is bytes already."""
        return f"CAST({column} AS BLOB)" if self.is_sqlite else column

    def sql(self, template: str) -> str:
        """``template`` with the table prefix, the clock and the parameters of this dialect
        (rendered once per dialect and template)."""
        return _render(self, template)


@lru_cache(maxsize=1024)
def _render(dialect: Dialect, sql: str) -> str:
    sql = sql.replace("{t}", dialect.t).replace("{now}", dialect.now)
    if dialect.is_sqlite:
        sql = _ANY.sub(r"IN (SELECT value FROM json_each(?\1))", sql)
        sql = _PARAM.sub(r"?\1", sql)
    return sql
