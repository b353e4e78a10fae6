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


#: PostgreSQL's type names, as SQLite spells them in the layout's DDL
_SQLITE_TYPES = (
    ("{serial}", "integer"), ("float8", "real"), ("bytea", "blob"), ("bigint", "integer"),
    ("boolean", "integer"), ("DEFAULT false", "DEFAULT 0"),
)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one engine spells the shared statements; :meth:`sql` applies it.

    The statements below are the few an operation runs on one engine only; ``""`` means the
    engine has no need of it (an operation skips it), so the operations never ask which engine
    they run on.
    """

    name: Literal["sqlite", "postgres"]
    #: prefix of every table name: ``"schema."`` or ``""``
    t: str
    #: the current time, unix seconds (float)
    now: str
    #: PostgreSQL's LISTEN/NOTIFY channel that wakes idle fetches
    channel: str = ""
    #: appended to a ``SELECT`` whose rows the transaction then changes (SQLite's write
    #: transaction already excludes every other writer)
    for_update: str = ""
    #: ``$1`` a queue: wake other processes' idle fetches of it
    wake: str = ""
    #: ``$1`` a name: True for the one transaction holding it (the others skip the work)
    try_lock: str = ""
    #: ``$1`` a table, ``$2`` a column: 1 when the table has the column, else 0
    has_column: str = "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2"

    @classmethod
    def sqlite(cls) -> Dialect:
        return cls("sqlite", "", SQLITE_NOW)

    @classmethod
    def postgres(cls, schema: str) -> Dialect:
        """``schema`` is a validated lower-case identifier (it is written into statements)."""
        return cls(
            "postgres", f"{schema}.", POSTGRES_NOW, channel=f"{schema}_wake",
            for_update=" FOR UPDATE",
            wake=f"SELECT pg_notify('{schema}_wake', left($1, 200))",
            try_lock="SELECT pg_try_advisory_xact_lock(hashtext($1))",
            has_column="SELECT count(*) FROM information_schema.columns WHERE"
                       f" table_schema = '{schema}' AND table_name = $1 AND column_name = $2",
        )

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

    def ddl(self, statement: str) -> str:
        """A DDL statement written with PostgreSQL's type names, for this engine."""
        if self.is_sqlite:
            for pg, lite in _SQLITE_TYPES:
                statement = statement.replace(pg, lite)
        return self.sql(statement.replace("{serial}", "bigserial"))

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
