"""Schema and the SQL statements of the Postgres backend (task results and cancel: ``results.py``).

The layout mirrors the SQLite backend (``sqlite.schema``): one ``available_at`` column per
message holds the eta of a new or retried row and the lease deadline of a leased one, so "ready"
is ``available_at <= now`` and an expired lease is fetchable again without a reaper. A claim
stamps a random non-zero ``token``; receipts are ``(seq, token)`` and every settle/extend
matches both, so a worker whose lease ran out settles nothing.

Clock: every timestamp is the *database* clock, ``extract(epoch FROM clock_timestamp())``
(:data:`NOW`), so workers on different hosts agree on leases, windows and heartbeats. Etas
arrive as absolute client times; the backend turns them into a delay on the client's clock and
the SQL adds that delay to the database clock, so a skewed client shifts only its own etas by its
own skew... and never makes a message run early by more than that.

Every statement is a template with ``{s}`` for the (validated, unquoted) schema name;
:class:`Statements` formats them once per backend.

Layout versions (``meta.schema_version``): every change so far only added tables, so opening an
older schema runs the DDL (all ``IF NOT EXISTS``) and stamps the new version. Version 2 added
``claims``. ``results`` and ``cancels`` (task results, cancel requests) came without a new
version, as in the SQLite backend: an older workhive ignores tables it does not know, so it can
still open the schema. Opening checks that they exist (:data:`UNVERSIONED_TABLES`) and runs the
DDL when they do not. ``history`` and ``paused`` (the dashboard's charts and paused queues:
``history.py``, ``pauses.py``) came the same way.
"""

from __future__ import annotations

from workhive.backends.postgres.history import COLUMNS as _HISTORY_COLUMNS
from workhive.history import RETENTION

SCHEMA_VERSION = 2

NOW = "extract(epoch FROM clock_timestamp())::float8"
_T = f"t AS MATERIALIZED (SELECT {NOW} AS now)"
# delay (seconds, client-computed) -> available_at on the database clock; <= 0 means "now",
# stored as 0 so immediate messages keep strict FIFO order by seq
_DUE = "CASE WHEN {d} > 0 THEN (SELECT now FROM t) + {d} ELSE 0 END"

DDL = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    "CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE IF NOT EXISTS {s}.jobs (
        seq bigserial PRIMARY KEY,
        id text NOT NULL,
        queue text NOT NULL,
        priority integer NOT NULL DEFAULT 0,
        available_at float8 NOT NULL DEFAULT 0,
        token bigint NOT NULL DEFAULT 0,
        unique_key text,
        body bytea NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS jobs_ready ON {s}.jobs (queue, priority DESC, available_at, seq)",
    # a unique key is held exactly as long as a row carrying it exists (ack/dead delete it)
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique ON {s}.jobs (unique_key)"
    " WHERE unique_key IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS {s}.dead (
        seq bigserial PRIMARY KEY,
        id text NOT NULL UNIQUE,
        queue text NOT NULL,
        body bytea NOT NULL,
        reason text NOT NULL,
        failed_at float8 NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS dead_queue ON {s}.dead (queue, seq)",
    """CREATE TABLE IF NOT EXISTS {s}.idempotency (
        key text PRIMARY KEY, id text NOT NULL, expires_at float8 NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.bindings (
        pattern text NOT NULL, grp text NOT NULL, PRIMARY KEY (pattern, grp))""",
    """CREATE TABLE IF NOT EXISTS {s}.ticks (
        job text NOT NULL, tick float8 NOT NULL, claimed_at float8 NOT NULL,
        PRIMARY KEY (job, tick))""",
    """CREATE TABLE IF NOT EXISTS {s}.windows (
        key text NOT NULL, win bigint NOT NULL, hits integer NOT NULL,
        expires_at float8 NOT NULL, PRIMARY KEY (key, win))""",
    """CREATE TABLE IF NOT EXISTS {s}.buckets (
        key text PRIMARY KEY, tokens float8 NOT NULL, updated_at float8 NOT NULL,
        allowed boolean NOT NULL)""",
    # append-only (one row per queue per settle batch, compacted by housekeeping): settles of
    # many workers never queue up behind one hot counter row
    """CREATE TABLE IF NOT EXISTS {s}.totals (
        queue text NOT NULL, processed bigint NOT NULL, failed bigint NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.workers (
        id text PRIMARY KEY, expires_at float8 NOT NULL, info bytea NOT NULL)""",
    # keys a composite's transport cannot hold (its unique / idempotency keys): a table apart
    # from idempotency and jobs.unique_key, so they never collide with this backend's own.
    # expires_at NULL: held until released.
    """CREATE TABLE IF NOT EXISTS {s}.claims (
        key text PRIMARY KEY, holder text NOT NULL, expires_at float8)""",
    # task results / status records, and cancel requests for leased tasks (see results.py)
    """CREATE TABLE IF NOT EXISTS {s}.results (
        id text PRIMARY KEY, expires_at float8 NOT NULL, record bytea NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.cancels (id text PRIMARY KEY, expires_at float8 NOT NULL)""",
    # task history per (minute, queue, task) and paused queues (see history.py, pauses.py)
    "CREATE TABLE IF NOT EXISTS {s}.history (minute bigint NOT NULL, queue text NOT NULL,"
    " task text NOT NULL, "
    + ", ".join(f"{c} bigint NOT NULL DEFAULT 0" for c in _HISTORY_COLUMNS)
    + ", PRIMARY KEY (minute, queue, task))",
    "CREATE TABLE IF NOT EXISTS {s}.paused (queue text PRIMARY KEY)",
    # Keyed enqueue (idempotency / unique keys) must look at each envelope in order, including
    # earlier ones of the same batch; a function keeps that one round trip per batch.
    """CREATE OR REPLACE FUNCTION {s}.enqueue_keyed(
        p_ids text[], p_queues text[], p_prios integer[], p_delays float8[], p_ukeys text[],
        p_ikeys text[], p_bodies bytea[], p_ttl float8, p_channel text)
    RETURNS TABLE (out_id text, out_dup boolean) LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
        v_now float8 := extract(epoch FROM clock_timestamp());
        v_held text;
        i integer;
    BEGIN
        FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
            IF p_ikeys[i] IS NOT NULL THEN
                v_held := NULL;
                INSERT INTO {s}.idempotency AS k (key, id, expires_at)
                VALUES (p_ikeys[i], p_ids[i], v_now + p_ttl)
                ON CONFLICT (key) DO UPDATE SET id = excluded.id, expires_at = excluded.expires_at
                    WHERE k.expires_at <= v_now
                RETURNING k.id INTO v_held;
                IF v_held IS NULL THEN
                    SELECT k.id INTO v_held FROM {s}.idempotency k WHERE k.key = p_ikeys[i];
                    out_id := v_held; out_dup := true; RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            LOOP
                v_held := NULL;
                INSERT INTO {s}.jobs (id, queue, priority, available_at, unique_key, body)
                VALUES (p_ids[i], p_queues[i], p_prios[i],
                        CASE WHEN p_delays[i] > 0 THEN v_now + p_delays[i] ELSE 0 END,
                        p_ukeys[i], p_bodies[i])
                ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
                RETURNING id INTO v_held;
                IF v_held IS NOT NULL THEN
                    out_id := v_held; out_dup := false; RETURN NEXT;
                    EXIT;
                END IF;
                SELECT j.id INTO v_held FROM {s}.jobs j WHERE j.unique_key = p_ukeys[i];
                IF v_held IS NOT NULL THEN  -- else the holder was settled meanwhile: insert again
                    out_id := v_held; out_dup := true; RETURN NEXT;
                    EXIT;
                END IF;
            END LOOP;
        END LOOP;
        PERFORM pg_notify(p_channel, left(q, 200)) FROM (SELECT DISTINCT unnest(p_queues) AS q) qs;
    END
    $fn$""",
)

#: Every table holding data, for tests that empty a schema without dropping it.
DATA_TABLES = (
    "jobs", "dead", "idempotency", "bindings", "ticks", "windows", "buckets", "totals", "workers",
    "claims", "results", "cancels", "history", "paused",
)

#: Tables added after layout version 2 without a new version: opening creates them when missing.
UNVERSIONED_TABLES = ("results", "cancels", "history", "paused")

ENQUEUE = f"""
WITH {_T},
ins AS (
    INSERT INTO {{s}}.jobs (id, queue, priority, available_at, body)
    SELECT i, q, p, {_DUE.format(d="d")}, b
    FROM unnest($1::text[], $2::text[], $3::integer[], $4::float8[], $5::bytea[])
        WITH ORDINALITY AS u(i, q, p, d, b, n)
    ORDER BY n
    RETURNING queue)
SELECT count(*) FROM (SELECT pg_notify($6, left(queue, 200))
    FROM (SELECT DISTINCT queue FROM ins) x) w
"""

# One envelope without keys, the producer's common case (one ``Hive.enqueue`` per task): the
# same insert and wake-up as ENQUEUE, without the arrays, the sort and the count. Run in
# autocommit, the row and its ``pg_notify`` commit together, in one round trip.
ENQUEUE_ONE = f"""
WITH ins AS (
    INSERT INTO {{s}}.jobs (id, queue, priority, available_at, body)
    VALUES ($1, $2, $3, CASE WHEN $4::float8 > 0 THEN {NOW} + $4::float8 ELSE 0 END, $5)
    RETURNING queue)
SELECT pg_notify($6, left(queue, 200)) FROM ins
"""

ENQUEUE_KEYED = "SELECT out_id, out_dup FROM {s}.enqueue_keyed($1, $2, $3, $4, $5, $6, $7, $8, $9)"

# One queue per statement (the caller loops over queues in order); the final ORDER BY restores
# the claim order, which UPDATE ... RETURNING does not keep.
CLAIM = f"""
WITH {_T},
c AS (
    SELECT seq, priority, available_at FROM {{s}}.jobs
    WHERE queue = $1 AND available_at <= (SELECT now FROM t)
    ORDER BY priority DESC, available_at, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED),
u AS (
    UPDATE {{s}}.jobs j SET available_at = (SELECT now FROM t) + $4, token = $3
    FROM c WHERE j.seq = c.seq
    RETURNING j.seq, j.body)
SELECT u.seq, u.body FROM u JOIN c USING (seq) ORDER BY c.priority DESC, c.available_at, c.seq
"""

# Several queues in one statement (one round trip, no explicit transaction: the same through a
# transaction pooler): a lateral claim per queue, taken in the given order; the executor stops
# pulling once ``$2`` rows are in, so a later queue is not even read while an earlier one fills
# the batch. Returns the queue with each row.
CLAIM_MANY = f"""
WITH {_T},
c AS (
    SELECT x.seq, x.priority, x.available_at, q.name, q.ord
    FROM unnest($1::text[]) WITH ORDINALITY AS q(name, ord)
    CROSS JOIN LATERAL (
        SELECT seq, priority, available_at FROM {{s}}.jobs
        WHERE queue = q.name AND available_at <= (SELECT now FROM t)
        ORDER BY priority DESC, available_at, seq
        LIMIT $2
        FOR UPDATE SKIP LOCKED) x
    LIMIT $2),
u AS (
    UPDATE {{s}}.jobs j SET available_at = (SELECT now FROM t) + $4, token = $3
    FROM c WHERE j.seq = c.seq
    RETURNING j.seq, j.body)
SELECT c.name, u.seq, u.body FROM u JOIN c USING (seq)
ORDER BY c.ord, c.priority DESC, c.available_at, c.seq
"""

#: Seconds (database clock) until the earliest row of these queues becomes fetchable.
NEXT_DUE = f"SELECT min(available_at) - {NOW} FROM {{s}}.jobs WHERE queue = ANY($1::text[])"

RELEASE = """
UPDATE {s}.jobs j SET available_at = 0, token = 0
FROM unnest($1::bigint[], $2::bigint[]) AS d(seq, token)
WHERE j.seq = d.seq AND j.token = d.token
"""

EXTEND = f"""
UPDATE {{s}}.jobs j SET available_at = {NOW} + $3
FROM unnest($1::bigint[], $2::bigint[]) AS d(seq, token)
WHERE j.seq = d.seq AND j.token = d.token
"""

# The whole batch in one statement: ack/dead delete (dead copies the row first), retry/release
# put the row back with token 0, totals get one row per queue, and queues with a requeued row
# are notified in the same transaction. Rows whose token moved on match nothing (stale).
SETTLE = f"""
WITH {_T},
s AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bytea[], $5::float8[],
                         $6::text[]) AS s(seq, token, action, body, delay, reason)),
gone AS (
    DELETE FROM {{s}}.jobs j USING s
    WHERE j.seq = s.seq AND j.token = s.token AND s.action IN ('ack', 'dead')
    RETURNING j.id, j.queue, coalesce(s.body, j.body) AS body, s.action, s.reason),
buried AS (
    INSERT INTO {{s}}.dead (id, queue, body, reason, failed_at)
    SELECT id, queue, body, reason, (SELECT now FROM t) FROM gone WHERE action = 'dead'
    ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, body = excluded.body,
        reason = excluded.reason, failed_at = excluded.failed_at),
moved AS (
    UPDATE {{s}}.jobs j SET body = coalesce(s.body, j.body), token = 0,
        available_at = {_DUE.format(d="s.delay")}
    FROM s WHERE j.seq = s.seq AND j.token = s.token AND s.action IN ('retry', 'release')
    RETURNING j.queue, s.action),
done AS (
    SELECT queue, count(*) FILTER (WHERE action = 'ack') AS processed,
        count(*) FILTER (WHERE action IN ('dead', 'retry')) AS failed
    FROM (SELECT queue, action FROM gone UNION ALL SELECT queue, action FROM moved) a
    GROUP BY queue),
counted AS (
    INSERT INTO {{s}}.totals (queue, processed, failed)
    SELECT queue, processed, failed FROM done WHERE processed + failed > 0),
woken AS (SELECT pg_notify($7, left(queue, 200)) FROM (SELECT DISTINCT queue FROM moved) m)
SELECT count(*) FROM woken
"""

BINDINGS = "SELECT pattern, grp FROM {s}.bindings"
BIND = "INSERT INTO {s}.bindings (pattern, grp) VALUES ($1, $2) ON CONFLICT DO NOTHING"

CLAIM_TICK = f"""
INSERT INTO {{s}}.ticks (job, tick, claimed_at) VALUES ($1, $2, {NOW})
ON CONFLICT DO NOTHING RETURNING 1
"""

# (allowed, retry_after): count a hit unless the window already holds ``limit`` ($3)
HIT_WINDOW = f"""
WITH {_T},
w AS (SELECT floor(now / $2::float8)::bigint AS win, now FROM t),
up AS (
    INSERT INTO {{s}}.windows AS x (key, win, hits, expires_at)
    SELECT $1, win, 1, (win + 1) * $2 FROM w WHERE $3 > 0
    ON CONFLICT (key, win) DO UPDATE SET hits = x.hits + 1 WHERE x.hits < $3
    RETURNING 1)
SELECT (SELECT count(*) FROM up) > 0, (win + 1) * $2 - now FROM w
"""

# Token bucket ($2 rate/s, $3 burst), refilled and charged in SQL on the database clock;
# ``allowed`` records this call's decision so RETURNING can report it.
_REFILL = (
    "least($3::float8, b.tokens + greatest(excluded.updated_at - b.updated_at, 0) * $2::float8)"
)
TAKE_TOKEN = f"""
INSERT INTO {{s}}.buckets AS b (key, tokens, updated_at, allowed)
SELECT $1, CASE WHEN $3::float8 >= 1 THEN $3::float8 - 1 ELSE $3::float8 END, {NOW},
    $3::float8 >= 1
ON CONFLICT (key) DO UPDATE SET
    tokens = CASE WHEN {_REFILL} >= 1 THEN {_REFILL} - 1 ELSE {_REFILL} END,
    allowed = {_REFILL} >= 1,
    updated_at = excluded.updated_at
RETURNING allowed, tokens
"""

_DEAD_WHERE = "($1::text[] IS NULL OR id = ANY($1)) AND ($2::text IS NULL OR queue = $2)"
DEAD_LIST = (
    "SELECT id, queue, body, reason, failed_at FROM {s}.dead"
    " WHERE ($1::text IS NULL OR queue = $1) ORDER BY seq LIMIT $2 OFFSET $3"
)
DEAD_FOR_REPLAY = (
    f"SELECT seq, id, body FROM {{s}}.dead WHERE {_DEAD_WHERE} ORDER BY seq FOR UPDATE"
)
DEAD_DELETE_SEQS = "DELETE FROM {s}.dead WHERE seq = ANY($1::bigint[])"
DEAD_PURGE = f"DELETE FROM {{s}}.dead WHERE {_DEAD_WHERE}"

# (dead letters of a composite's transport) in the given order; an id already dead is kept
KEEP_DEAD = """
INSERT INTO {s}.dead (id, queue, body, reason, failed_at)
SELECT i, q, b, r, f
FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::float8[])
    WITH ORDINALITY AS u(i, q, b, r, f, n)
ORDER BY n
ON CONFLICT (id) DO NOTHING
"""

# Insert, or take over a claim whose ttl ($3 s, NULL: none) ran out; returns the owner after
# the statement. A live conflicting row is rewritten unchanged rather than skipped, so
# RETURNING reports its holder even when that row committed after this statement's snapshot
# (a DO NOTHING + SELECT could miss it, or see it released in between).
CLAIM_KEY = f"""
WITH {_T}
INSERT INTO {{s}}.claims AS c (key, holder, expires_at)
VALUES ($1, $2, (SELECT now FROM t) + $3::float8)
ON CONFLICT (key) DO UPDATE SET
    holder = CASE WHEN c.expires_at <= (SELECT now FROM t) THEN excluded.holder
        ELSE c.holder END,
    expires_at = CASE WHEN c.expires_at <= (SELECT now FROM t) THEN excluded.expires_at
        ELSE c.expires_at END
RETURNING holder
"""
RELEASE_KEY = "DELETE FROM {s}.claims WHERE key = $1 AND holder = $2"

STATS_JOBS = f"""
SELECT queue,
    count(*) FILTER (WHERE available_at <= t.now),
    count(*) FILTER (WHERE token = 0 AND available_at > t.now),
    count(*) FILTER (WHERE token <> 0 AND available_at > t.now)
FROM {{s}}.jobs, (SELECT {NOW} AS now) t GROUP BY queue
"""
STATS_DEAD = "SELECT queue, count(*) FROM {s}.dead GROUP BY queue"
STATS_TOTALS = "SELECT queue, sum(processed), sum(failed) FROM {s}.totals GROUP BY queue"

# a worker's record goes when the ttl it advertised runs out (a killed worker never forgets
# itself): every heartbeat drops the expired ones; WORKERS filters in between
HEARTBEAT = f"""
WITH expired AS (DELETE FROM {{s}}.workers WHERE expires_at <= {NOW} AND id <> $1)
INSERT INTO {{s}}.workers (id, expires_at, info) VALUES ($1, {NOW} + $2, $3)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, info = excluded.info
"""
WORKERS = f"SELECT info FROM {{s}}.workers WHERE expires_at > {NOW} ORDER BY id"
FORGET_WORKER = "DELETE FROM {s}.workers WHERE id = $1"

# Run by at most one client at a time (pg_try_advisory_xact_lock), every few minutes.
HOUSEKEEPING = (
    f"DELETE FROM {{s}}.idempotency WHERE expires_at <= {NOW}",
    f"DELETE FROM {{s}}.claims WHERE expires_at <= {NOW}",
    f"DELETE FROM {{s}}.windows WHERE expires_at <= {NOW}",
    f"DELETE FROM {{s}}.ticks WHERE claimed_at <= {NOW} - 7 * 86400",
    f"DELETE FROM {{s}}.workers WHERE expires_at <= {NOW}",
    f"DELETE FROM {{s}}.results WHERE expires_at <= {NOW}",
    f"DELETE FROM {{s}}.cancels WHERE expires_at <= {NOW}",
    f"DELETE FROM {{s}}.history WHERE minute < {NOW} - {RETENTION}",
    "WITH d AS (DELETE FROM {s}.totals RETURNING queue, processed, failed)"
    " INSERT INTO {s}.totals (queue, processed, failed)"
    " SELECT queue, sum(processed), sum(failed) FROM d GROUP BY queue",
)


class Statements:
    """Every statement formatted for one schema (done once; asyncpg caches the plans)."""

    def __init__(self, schema: str) -> None:
        g = globals()
        for name in _NAMES:
            setattr(self, name.lower(), g[name].replace("{s}", schema))
        self.ddl = tuple(statement.replace("{s}", schema) for statement in DDL)
        self.housekeeping = tuple(q.replace("{s}", schema) for q in HOUSEKEEPING)

    enqueue: str
    enqueue_one: str
    enqueue_keyed: str
    claim: str
    claim_many: str
    next_due: str
    release: str
    extend: str
    settle: str
    bindings: str
    bind: str
    claim_tick: str
    hit_window: str
    take_token: str
    dead_list: str
    dead_for_replay: str
    dead_delete_seqs: str
    dead_purge: str
    keep_dead: str
    claim_key: str
    release_key: str
    stats_jobs: str
    stats_dead: str
    stats_totals: str
    heartbeat: str
    workers: str
    forget_worker: str
    ddl: tuple[str, ...]
    housekeeping: tuple[str, ...]


_NAMES = (
    "ENQUEUE", "ENQUEUE_ONE", "ENQUEUE_KEYED", "CLAIM", "CLAIM_MANY", "NEXT_DUE", "RELEASE",
    "EXTEND", "SETTLE", "BINDINGS", "BIND", "CLAIM_TICK", "HIT_WINDOW", "TAKE_TOKEN", "DEAD_LIST",
    "DEAD_FOR_REPLAY",
    "DEAD_DELETE_SEQS", "DEAD_PURGE", "KEEP_DEAD", "CLAIM_KEY", "RELEASE_KEY", "STATS_JOBS",
    "STATS_DEAD", "STATS_TOTALS", "HEARTBEAT", "WORKERS", "FORGET_WORKER",
)
