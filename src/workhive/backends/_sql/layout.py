"""The tables of the SQL backends, their schema version, and the upgrades between versions.

One layout serves SQLite and PostgreSQL. Its key idea is one ``available_at`` column per
message: the eta of a new or retried row, the lease deadline of a leased one. "Ready" is then
``available_at <= now``, so an expired lease is fetchable again with no reaper, and one index
``(queue, priority DESC, available_at)`` then ``seq`` serves every fetch in order without a
sort (each engine declares it with its own tie-break: SQLite's rowid is ``seq``). A
claim stamps a random non-zero ``token``; receipts are ``(seq, token)``, and every settle or
extend matches both, so a worker whose lease ran out settles nothing.

Versions (``meta.schema_version``). The version changes only when a release could not work
with the layout an older one wrote; an older workhive refuses a store of a newer version, so it
never writes a layout it does not know. Additions an older release lives with (a table, or a
column with a default that its inserts leave out) come without a new version: :func:`migrate`
adds what is missing every time a store is opened, so a store written by any earlier release
upgrades in place and the release before can still open it.

* 1: the queue, dead letters, keys, events, cron ticks, counters, totals, workers.
* 2: ``claims`` (the keys a coordination store holds for its transport).
* since 2, without a new version: ``results``, ``cancels``, ``history``, ``paused`` (tables);
  ``buckets.allowed`` on SQLite and ``paused.since`` on PostgreSQL (columns the other engine
  already had), so both engines keep the same columns.
"""

from __future__ import annotations

from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op, count, value
from workhive.errors import ConfigError
from workhive.history import BINS, COUNTERS

SCHEMA_VERSION = 2

#: the stored history counters in column order (histogram bins as ``h0``...)
HISTORY_COLUMNS = (*COUNTERS, *(f"h{i}" for i in range(BINS)))

# Column types are written in PostgreSQL's names; :meth:`Dialect.ddl` maps them for SQLite.
_TABLES = (
    "CREATE TABLE IF NOT EXISTS {t}meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE IF NOT EXISTS {t}jobs (
        seq {serial} PRIMARY KEY,
        id text NOT NULL,
        queue text NOT NULL,
        priority integer NOT NULL DEFAULT 0,
        available_at float8 NOT NULL DEFAULT 0,
        token bigint NOT NULL DEFAULT 0,
        unique_key text,
        body bytea NOT NULL)""",
    # a unique key is held exactly as long as a row carrying it exists (ack/dead delete it)
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique ON {t}jobs (unique_key)"
    " WHERE unique_key IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS {t}dead (
        seq {serial} PRIMARY KEY,
        id text NOT NULL UNIQUE,
        queue text NOT NULL,
        body bytea NOT NULL,
        reason text NOT NULL,
        failed_at float8 NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS dead_queue ON {t}dead (queue, seq)",
    """CREATE TABLE IF NOT EXISTS {t}idempotency (
        key text PRIMARY KEY, id text NOT NULL, expires_at float8 NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {t}bindings (
        pattern text NOT NULL, grp text NOT NULL, PRIMARY KEY (pattern, grp))""",
    """CREATE TABLE IF NOT EXISTS {t}ticks (
        job text NOT NULL, tick float8 NOT NULL, claimed_at float8 NOT NULL,
        PRIMARY KEY (job, tick))""",
    """CREATE TABLE IF NOT EXISTS {t}windows (
        key text NOT NULL, win bigint NOT NULL, hits integer NOT NULL,
        expires_at float8 NOT NULL, PRIMARY KEY (key, win))""",
    # ``allowed`` records the last charge's decision, so the upsert can report it
    """CREATE TABLE IF NOT EXISTS {t}buckets (
        key text PRIMARY KEY, tokens float8 NOT NULL, updated_at float8 NOT NULL,
        allowed boolean NOT NULL DEFAULT false)""",
    """CREATE TABLE IF NOT EXISTS {t}workers (
        id text PRIMARY KEY, expires_at float8 NOT NULL, info bytea NOT NULL)""",
    # keys a composite's transport cannot hold (its unique / idempotency keys): a table apart
    # from idempotency and jobs.unique_key, so they never collide with this backend's own.
    # expires_at NULL: held until released.
    """CREATE TABLE IF NOT EXISTS {t}claims (
        key text PRIMARY KEY, holder text NOT NULL, expires_at float8)""",
    # task results / status records, and cancel requests for leased tasks
    """CREATE TABLE IF NOT EXISTS {t}results (
        id text PRIMARY KEY, expires_at float8 NOT NULL, record bytea NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS {t}cancels (id text PRIMARY KEY, expires_at float8 NOT NULL)",
    # task history per (minute, queue, task), and paused queues (the dashboard's)
    "CREATE TABLE IF NOT EXISTS {t}history (minute bigint NOT NULL, queue text NOT NULL,"
    " task text NOT NULL, "
    + ", ".join(f"{c} bigint NOT NULL DEFAULT 0" for c in HISTORY_COLUMNS)
    + ", PRIMARY KEY (minute, queue, task))",
    "CREATE TABLE IF NOT EXISTS {t}paused (queue text PRIMARY KEY,"
    " since float8 NOT NULL DEFAULT 0)",
)

#: columns added since their table was created: (table, column, definition)
ADDED_COLUMNS = (
    ("buckets", "allowed", "boolean NOT NULL DEFAULT false"),
    ("paused", "since", "float8 NOT NULL DEFAULT 0"),
)

#: every table holding data (``wipe`` and tests empty them; ``meta`` keeps the version)
DATA_TABLES = (
    "jobs", "dead", "idempotency", "bindings", "ticks", "windows", "buckets", "totals", "workers",
    "claims", "results", "cancels", "history", "paused",
)

def migrate(dialect: Dialect, store: str, extra: tuple[str, ...] = ()) -> Op[None]:
    """Create what is missing (the layout's tables and columns, then the dialect's ``extra``
    statements), stamp the version; run in one transaction. ``store`` names the file or
    schema in the error for a newer layout."""
    for statement in (*_TABLES, *extra):
        yield count(dialect.ddl(statement))
    for table, column, definition in ADDED_COLUMNS:
        if not (yield value(dialect.has_column, table, column)):
            yield count(dialect.ddl(f"ALTER TABLE {{t}}{table} ADD COLUMN {column} {definition}"))
    stored = yield value(dialect.sql("SELECT value FROM {t}meta WHERE key = 'schema_version'"))
    if stored is None:
        yield count(dialect.sql("INSERT INTO {t}meta (key, value) VALUES ('schema_version', $1)"),
                    str(SCHEMA_VERSION))
    elif int(stored) > SCHEMA_VERSION:
        raise ConfigError(f"{store} has schema version {stored}, newer than this workhive "
                          f"understands ({SCHEMA_VERSION}); upgrade workhive")
    elif int(stored) < SCHEMA_VERSION:
        yield count(dialect.sql("UPDATE {t}meta SET value = $1 WHERE key = 'schema_version'"),
                    str(SCHEMA_VERSION))
