"""The PostgreSQL backend's hot path: the enqueue, claim, settle, release and extend statements.

Everything else (events, dead letters, stats, results...) is the shared SQL engine's
(:mod:`workhive.backends._sql`). These stay here because PostgreSQL does them its own way: one
statement per batch (arrays through ``unnest``, data-modifying CTEs), ``FOR UPDATE SKIP
LOCKED`` so concurrent claims never wait on each other's rows, and ``pg_notify`` in the same
statement so a waiter wakes once the rows are visible.

Clock: every timestamp is the *database* clock (:data:`NOW`), so workers on different hosts
agree on leases. Etas arrive as absolute client times; the backend turns them into a delay on
the client's clock and the SQL adds that delay to the database clock, so a skewed client shifts
only its own etas by its own skew, and never makes a message run early by more than that.

Every statement is a template with ``{t}`` before each table name (the schema), rendered once
per backend by :class:`Statements`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from workhive._envelope import Envelope, encode
from workhive.backend import EnqueueResult
from workhive.backends._sql.dialect import POSTGRES_NOW as NOW
from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op, count, rows, value

_T = f"t AS MATERIALIZED (SELECT {NOW} AS now)"
# delay (seconds, client-computed) -> available_at on the database clock; <= 0 means "now",
# stored as 0 so immediate messages keep strict FIFO order by seq
_DUE = "CASE WHEN {d} > 0 THEN (SELECT now FROM t) + {d} ELSE 0 END"

#: the engine's own tables and function, created after the shared layout
TABLES = (
    # every claim reads this index in order: no sort, whatever the queue's length
    "CREATE INDEX IF NOT EXISTS jobs_ready ON {t}jobs (queue, priority DESC, available_at, seq)",
    # append-only (one row per queue per settle batch, compacted by housekeeping): settles of
    # many workers never queue up behind one hot counter row
    """CREATE TABLE IF NOT EXISTS {t}totals (
        queue text NOT NULL, processed bigint NOT NULL, failed bigint NOT NULL)""",
    # Keyed enqueue (idempotency / unique keys) must look at each envelope in order, including
    # earlier ones of the same batch; a function keeps that one round trip per batch.
    """CREATE OR REPLACE FUNCTION {t}enqueue_keyed(
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
                INSERT INTO {t}idempotency AS k (key, id, expires_at)
                VALUES (p_ikeys[i], p_ids[i], v_now + p_ttl)
                ON CONFLICT (key) DO UPDATE SET id = excluded.id, expires_at = excluded.expires_at
                    WHERE k.expires_at <= v_now
                RETURNING k.id INTO v_held;
                IF v_held IS NULL THEN
                    SELECT k.id INTO v_held FROM {t}idempotency k WHERE k.key = p_ikeys[i];
                    out_id := v_held; out_dup := true; RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            LOOP
                v_held := NULL;
                INSERT INTO {t}jobs (id, queue, priority, available_at, unique_key, body)
                VALUES (p_ids[i], p_queues[i], p_prios[i],
                        CASE WHEN p_delays[i] > 0 THEN v_now + p_delays[i] ELSE 0 END,
                        p_ukeys[i], p_bodies[i])
                ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
                RETURNING id INTO v_held;
                IF v_held IS NOT NULL THEN
                    out_id := v_held; out_dup := false; RETURN NEXT;
                    EXIT;
                END IF;
                SELECT j.id INTO v_held FROM {t}jobs j WHERE j.unique_key = p_ukeys[i];
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

ENQUEUE = f"""
WITH {_T},
ins AS (
    INSERT INTO {{t}}jobs (id, queue, priority, available_at, body)
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
    INSERT INTO {{t}}jobs (id, queue, priority, available_at, body)
    VALUES ($1, $2, $3, CASE WHEN $4::float8 > 0 THEN {NOW} + $4::float8 ELSE 0 END, $5)
    RETURNING queue)
SELECT pg_notify($6, left(queue, 200)) FROM ins
"""

ENQUEUE_KEYED = (
    "SELECT out_id, out_dup FROM {t}enqueue_keyed($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)

# One queue per statement (the caller loops over queues in order); the final ORDER BY restores
# the claim order, which UPDATE ... RETURNING does not keep.
CLAIM = f"""
WITH {_T},
c AS (
    SELECT seq, priority, available_at FROM {{t}}jobs
    WHERE queue = $1 AND available_at <= (SELECT now FROM t)
    ORDER BY priority DESC, available_at, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED),
u AS (
    UPDATE {{t}}jobs j SET available_at = (SELECT now FROM t) + $4, token = $3
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
        SELECT seq, priority, available_at FROM {{t}}jobs
        WHERE queue = q.name AND available_at <= (SELECT now FROM t)
        ORDER BY priority DESC, available_at, seq
        LIMIT $2
        FOR UPDATE SKIP LOCKED) x
    LIMIT $2),
u AS (
    UPDATE {{t}}jobs j SET available_at = (SELECT now FROM t) + $4, token = $3
    FROM c WHERE j.seq = c.seq
    RETURNING j.seq, j.body)
SELECT c.name, u.seq, u.body FROM u JOIN c USING (seq)
ORDER BY c.ord, c.priority DESC, c.available_at, c.seq
"""

#: Seconds (database clock) until the earliest row of these queues becomes fetchable.
NEXT_DUE = f"SELECT min(available_at) - {NOW} FROM {{t}}jobs WHERE queue = ANY($1::text[])"

RELEASE = """
UPDATE {t}jobs j SET available_at = 0, token = 0
FROM unnest($1::bigint[], $2::bigint[]) AS d(seq, token)
WHERE j.seq = d.seq AND j.token = d.token
"""

EXTEND = f"""
UPDATE {{t}}jobs j SET available_at = {NOW} + $3
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
    DELETE FROM {{t}}jobs j USING s
    WHERE j.seq = s.seq AND j.token = s.token AND s.action IN ('ack', 'dead')
    RETURNING j.id, j.queue, coalesce(s.body, j.body) AS body, s.action, s.reason),
buried AS (
    INSERT INTO {{t}}dead (id, queue, body, reason, failed_at)
    SELECT id, queue, body, reason, (SELECT now FROM t) FROM gone WHERE action = 'dead'
    ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, body = excluded.body,
        reason = excluded.reason, failed_at = excluded.failed_at),
moved AS (
    UPDATE {{t}}jobs j SET body = coalesce(s.body, j.body), token = 0,
        available_at = {_DUE.format(d="s.delay")}
    FROM s WHERE j.seq = s.seq AND j.token = s.token AND s.action IN ('retry', 'release')
    RETURNING j.queue, s.action),
done AS (
    SELECT queue, count(*) FILTER (WHERE action = 'ack') AS processed,
        count(*) FILTER (WHERE action IN ('dead', 'retry')) AS failed
    FROM (SELECT queue, action FROM gone UNION ALL SELECT queue, action FROM moved) a
    GROUP BY queue),
counted AS (
    INSERT INTO {{t}}totals (queue, processed, failed)
    SELECT queue, processed, failed FROM done WHERE processed + failed > 0),
woken AS (SELECT pg_notify($7, left(queue, 200)) FROM (SELECT DISTINCT queue FROM moved) m)
SELECT count(*) FROM woken
"""

#: run by housekeeping after the shared sweep: fold the settles' rows into one per queue
COMPACT_TOTALS = (
    "WITH d AS (DELETE FROM {t}totals RETURNING queue, processed, failed)"
    " INSERT INTO {t}totals (queue, processed, failed)"
    " SELECT queue, sum(processed), sum(failed) FROM d GROUP BY queue",
)


class Statements:
    """The statements above, rendered for one schema (asyncpg caches the plans)."""

    def __init__(self, dialect: Dialect) -> None:
        render = dialect.sql
        self.enqueue = render(ENQUEUE)
        self.enqueue_one = render(ENQUEUE_ONE)
        self.enqueue_keyed = render(ENQUEUE_KEYED)
        self.claim = render(CLAIM)
        self.claim_many = render(CLAIM_MANY)
        self.next_due = render(NEXT_DUE)
        self.release = render(RELEASE)
        self.extend = render(EXTEND)
        self.settle = render(SETTLE)
        self.tables = TABLES
        self.compact_totals = tuple(render(q) for q in COMPACT_TOTALS)


def _keyed(envelope: Envelope) -> bool:
    """Whether storing it must look at a unique or idempotency key (the SQL function)."""
    return envelope.idempotency_key is not None or envelope.unique_key is not None


def insert(
    sql: Statements, envelopes: Sequence[Envelope], ttl: float, channel: str
) -> Op[list[EnqueueResult]]:
    """Insert and ``pg_notify`` in one statement (keyed batches through the SQL function).

    One envelope without keys, the producer's common case, is a plain single-row ``INSERT``:
    in autocommit that is one round trip, with no arrays to build and unpack.
    """
    now = time.time()
    if len(envelopes) == 1 and not _keyed(envelopes[0]):
        e = envelopes[0]
        yield count(sql.enqueue_one, e.id, e.queue, e.priority,
                    0.0 if e.eta is None else e.eta - now, encode(e), channel)
        return [EnqueueResult(e.id)]
    ids = [e.id for e in envelopes]
    queues = [e.queue for e in envelopes]
    prios = [e.priority for e in envelopes]
    delays = [0.0 if e.eta is None else e.eta - now for e in envelopes]
    bodies = [encode(e) for e in envelopes]
    if not any(_keyed(e) for e in envelopes):
        yield value(sql.enqueue, ids, queues, prios, delays, bodies, channel)
        return [EnqueueResult(i) for i in ids]
    stored = yield rows(sql.enqueue_keyed, ids, queues, prios, delays,
                        [e.unique_key for e in envelopes],
                        [e.idempotency_key for e in envelopes], bodies, ttl, channel)
    return [EnqueueResult(r[0], duplicate=r[1]) for r in stored]
