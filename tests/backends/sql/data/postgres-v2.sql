--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: __SCHEMA__; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA __SCHEMA__;


--
-- Name: enqueue_keyed(text[], text[], integer[], double precision[], text[], text[], bytea[], double precision, text); Type: FUNCTION; Schema: __SCHEMA__; Owner: -
--

CREATE FUNCTION __SCHEMA__.enqueue_keyed(p_ids text[], p_queues text[], p_prios integer[], p_delays double precision[], p_ukeys text[], p_ikeys text[], p_bodies bytea[], p_ttl double precision, p_channel text) RETURNS TABLE(out_id text, out_dup boolean)
    LANGUAGE plpgsql
    AS $$
    #variable_conflict use_column
    DECLARE
        v_now float8 := extract(epoch FROM clock_timestamp());
        v_held text;
        i integer;
    BEGIN
        FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
            IF p_ikeys[i] IS NOT NULL THEN
                v_held := NULL;
                INSERT INTO __SCHEMA__.idempotency AS k (key, id, expires_at)
                VALUES (p_ikeys[i], p_ids[i], v_now + p_ttl)
                ON CONFLICT (key) DO UPDATE SET id = excluded.id, expires_at = excluded.expires_at
                    WHERE k.expires_at <= v_now
                RETURNING k.id INTO v_held;
                IF v_held IS NULL THEN
                    SELECT k.id INTO v_held FROM __SCHEMA__.idempotency k WHERE k.key = p_ikeys[i];
                    out_id := v_held; out_dup := true; RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            LOOP
                v_held := NULL;
                INSERT INTO __SCHEMA__.jobs (id, queue, priority, available_at, unique_key, body)
                VALUES (p_ids[i], p_queues[i], p_prios[i],
                        CASE WHEN p_delays[i] > 0 THEN v_now + p_delays[i] ELSE 0 END,
                        p_ukeys[i], p_bodies[i])
                ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
                RETURNING id INTO v_held;
                IF v_held IS NOT NULL THEN
                    out_id := v_held; out_dup := false; RETURN NEXT;
                    EXIT;
                END IF;
                SELECT j.id INTO v_held FROM __SCHEMA__.jobs j WHERE j.unique_key = p_ukeys[i];
                IF v_held IS NOT NULL THEN  -- else the holder was settled meanwhile: insert again
                    out_id := v_held; out_dup := true; RETURN NEXT;
                    EXIT;
                END IF;
            END LOOP;
        END LOOP;
        PERFORM pg_notify(p_channel, left(q, 200)) FROM (SELECT DISTINCT unnest(p_queues) AS q) qs;
    END
    $$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: bindings; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.bindings (
    pattern text NOT NULL,
    grp text NOT NULL
);


--
-- Name: buckets; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.buckets (
    key text NOT NULL,
    tokens double precision NOT NULL,
    updated_at double precision NOT NULL,
    allowed boolean NOT NULL
);


--
-- Name: cancels; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.cancels (
    id text NOT NULL,
    expires_at double precision NOT NULL
);


--
-- Name: claims; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.claims (
    key text NOT NULL,
    holder text NOT NULL,
    expires_at double precision
);


--
-- Name: dead; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.dead (
    seq bigint NOT NULL,
    id text NOT NULL,
    queue text NOT NULL,
    body bytea NOT NULL,
    reason text NOT NULL,
    failed_at double precision NOT NULL
);


--
-- Name: dead_seq_seq; Type: SEQUENCE; Schema: __SCHEMA__; Owner: -
--

CREATE SEQUENCE __SCHEMA__.dead_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: dead_seq_seq; Type: SEQUENCE OWNED BY; Schema: __SCHEMA__; Owner: -
--

ALTER SEQUENCE __SCHEMA__.dead_seq_seq OWNED BY __SCHEMA__.dead.seq;


--
-- Name: history; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.history (
    minute bigint NOT NULL,
    queue text NOT NULL,
    task text NOT NULL,
    succeeded bigint DEFAULT 0 NOT NULL,
    retried bigint DEFAULT 0 NOT NULL,
    dead bigint DEFAULT 0 NOT NULL,
    run_ms bigint DEFAULT 0 NOT NULL,
    wait_ms bigint DEFAULT 0 NOT NULL,
    h0 bigint DEFAULT 0 NOT NULL,
    h1 bigint DEFAULT 0 NOT NULL,
    h2 bigint DEFAULT 0 NOT NULL,
    h3 bigint DEFAULT 0 NOT NULL,
    h4 bigint DEFAULT 0 NOT NULL,
    h5 bigint DEFAULT 0 NOT NULL,
    h6 bigint DEFAULT 0 NOT NULL,
    h7 bigint DEFAULT 0 NOT NULL,
    h8 bigint DEFAULT 0 NOT NULL,
    h9 bigint DEFAULT 0 NOT NULL,
    h10 bigint DEFAULT 0 NOT NULL,
    h11 bigint DEFAULT 0 NOT NULL,
    h12 bigint DEFAULT 0 NOT NULL,
    h13 bigint DEFAULT 0 NOT NULL
);


--
-- Name: idempotency; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.idempotency (
    key text NOT NULL,
    id text NOT NULL,
    expires_at double precision NOT NULL
);


--
-- Name: jobs; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.jobs (
    seq bigint NOT NULL,
    id text NOT NULL,
    queue text NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    available_at double precision DEFAULT 0 NOT NULL,
    token bigint DEFAULT 0 NOT NULL,
    unique_key text,
    body bytea NOT NULL
);


--
-- Name: jobs_seq_seq; Type: SEQUENCE; Schema: __SCHEMA__; Owner: -
--

CREATE SEQUENCE __SCHEMA__.jobs_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: jobs_seq_seq; Type: SEQUENCE OWNED BY; Schema: __SCHEMA__; Owner: -
--

ALTER SEQUENCE __SCHEMA__.jobs_seq_seq OWNED BY __SCHEMA__.jobs.seq;


--
-- Name: meta; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.meta (
    key text NOT NULL,
    value text NOT NULL
);


--
-- Name: paused; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.paused (
    queue text NOT NULL
);


--
-- Name: results; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.results (
    id text NOT NULL,
    expires_at double precision NOT NULL,
    record bytea NOT NULL
);


--
-- Name: ticks; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.ticks (
    job text NOT NULL,
    tick double precision NOT NULL,
    claimed_at double precision NOT NULL
);


--
-- Name: totals; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.totals (
    queue text NOT NULL,
    processed bigint NOT NULL,
    failed bigint NOT NULL
);


--
-- Name: windows; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.windows (
    key text NOT NULL,
    win bigint NOT NULL,
    hits integer NOT NULL,
    expires_at double precision NOT NULL
);


--
-- Name: workers; Type: TABLE; Schema: __SCHEMA__; Owner: -
--

CREATE TABLE __SCHEMA__.workers (
    id text NOT NULL,
    expires_at double precision NOT NULL,
    info bytea NOT NULL
);


--
-- Name: dead seq; Type: DEFAULT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.dead ALTER COLUMN seq SET DEFAULT nextval('__SCHEMA__.dead_seq_seq'::regclass);


--
-- Name: jobs seq; Type: DEFAULT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.jobs ALTER COLUMN seq SET DEFAULT nextval('__SCHEMA__.jobs_seq_seq'::regclass);


--
-- Data for Name: bindings; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.bindings VALUES ('order.*', 'billing');


--
-- Data for Name: buckets; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--



--
-- Data for Name: cancels; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--



--
-- Data for Name: claims; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--



--
-- Data for Name: dead; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.dead VALUES (1, 'mail-bounced', 'mail', '\xde0006a26964ac6d61696c2d626f756e636564a46e616d65a86170703a6d61696ca57175657565a46d61696ca77061796c6f616481a2746fad62406578616d706c652e636f6dab6d61785f7265747269657300ab656e7175657565645f6174cb41da13b860000000', 'SMTP 550: mailbox unavailable', 1796322267.115164);


--
-- Data for Name: history; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.history VALUES (4102444800, 'mail', 'app:mail', 1, 0, 1, 180, 40, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);


--
-- Data for Name: idempotency; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.idempotency VALUES ('order-42', 'idempotent-holder', 4796322267.099305);


--
-- Data for Name: jobs; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.jobs VALUES (1, 'ready-high', 'default', 9, 0, 0, NULL, '\xde0005a26964aa72656164792d68696768a46e616d65ab6170703a64656661756c74a77061796c6f616482a16e01a474657874a56669727374a87072696f7269747909ab656e7175657565645f6174cb41da13b860000000');
INSERT INTO __SCHEMA__.jobs VALUES (2, 'ready-mid', 'default', 5, 0, 0, NULL, '\xde0005a26964a972656164792d6d6964a46e616d65ab6170703a64656661756c74a77061796c6f616482a16e02a47461677392a161a162a87072696f7269747905ab656e7175657565645f6174cb41da13b860000000');
INSERT INTO __SCHEMA__.jobs VALUES (3, 'ready-low', 'default', 1, 0, 0, NULL, '\xde0005a26964a972656164792d6c6f77a46e616d65ab6170703a64656661756c74a77061796c6f616481a16e03a87072696f7269747901ab656e7175657565645f6174cb41da13b860000000');
INSERT INTO __SCHEMA__.jobs VALUES (4, 'delayed', 'default', 0, 4102444800.0087357, 0, NULL, '\xde0005a26964a764656c61796564a46e616d65ab6170703a64656661756c74a77061796c6f616481a16e04a3657461cb41ee90cae0000000ab656e7175657565645f6174cb41da13b860000000');
INSERT INTO __SCHEMA__.jobs VALUES (5, 'unique-holder', 'keyed', 0, 0, 0, 'report:2024-06', '\xde0006a26964ad756e697175652d686f6c646572a46e616d65a96170703a6b65796564a57175657565a56b65796564a77061796c6f6164a67265706f7274ab656e7175657565645f6174cb41da13b860000000aa756e697175655f6b6579ae7265706f72743a323032342d3036');
INSERT INTO __SCHEMA__.jobs VALUES (6, 'idempotent-holder', 'keyed', 0, 0, 0, NULL, '\xde0006a26964b16964656d706f74656e742d686f6c646572a46e616d65a96170703a6b65796564a57175657565a56b65796564a77061796c6f6164a6636861726765ab656e7175657565645f6174cb41da13b860000000af6964656d706f74656e63795f6b6579a86f726465722d3432');


--
-- Data for Name: meta; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.meta VALUES ('schema_version', '2');


--
-- Data for Name: paused; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.paused VALUES ('reports');


--
-- Data for Name: results; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.results VALUES ('mail-sent', 4796322267.116886, '\x8aa26964a96d61696c2d73656e74a57374617465a9737563636565646564a576616c756581a964656c697665726564c3aa6572726f725f74797065a0ad6572726f725f6d657373616765a0a974726163656261636ba0a870726f6772657373c0a76d657373616765a0a7617474656d707401aa757064617465645f6174cb41da13b860000000');


--
-- Data for Name: ticks; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.ticks VALUES ('nightly-report', 4102444800, 4102444800);


--
-- Data for Name: totals; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.totals VALUES ('mail', 1, 0);
INSERT INTO __SCHEMA__.totals VALUES ('mail', 0, 1);


--
-- Data for Name: windows; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--



--
-- Data for Name: workers; Type: TABLE DATA; Schema: __SCHEMA__; Owner: -
--

INSERT INTO __SCHEMA__.workers VALUES ('worker-1', 4796322267.118543, '\x7b226964223a22776f726b65722d31222c22686f7374223a22666978747572652d686f7374222c22706964223a343234322c22717565756573223a5b2264656661756c74222c226d61696c225d2c22636f6e63757272656e6379223a342c22737461727465645f6174223a313735303030303030302e302c227365656e5f6174223a313735303030303030302e302c226578747261223a7b2276657273696f6e223a2266697874757265227d7d');


--
-- Name: dead_seq_seq; Type: SEQUENCE SET; Schema: __SCHEMA__; Owner: -
--

SELECT pg_catalog.setval('__SCHEMA__.dead_seq_seq', 1, true);


--
-- Name: jobs_seq_seq; Type: SEQUENCE SET; Schema: __SCHEMA__; Owner: -
--

SELECT pg_catalog.setval('__SCHEMA__.jobs_seq_seq', 8, true);


--
-- Name: bindings bindings_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.bindings
    ADD CONSTRAINT bindings_pkey PRIMARY KEY (pattern, grp);


--
-- Name: buckets buckets_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.buckets
    ADD CONSTRAINT buckets_pkey PRIMARY KEY (key);


--
-- Name: cancels cancels_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.cancels
    ADD CONSTRAINT cancels_pkey PRIMARY KEY (id);


--
-- Name: claims claims_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.claims
    ADD CONSTRAINT claims_pkey PRIMARY KEY (key);


--
-- Name: dead dead_id_key; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.dead
    ADD CONSTRAINT dead_id_key UNIQUE (id);


--
-- Name: dead dead_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.dead
    ADD CONSTRAINT dead_pkey PRIMARY KEY (seq);


--
-- Name: history history_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.history
    ADD CONSTRAINT history_pkey PRIMARY KEY (minute, queue, task);


--
-- Name: idempotency idempotency_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.idempotency
    ADD CONSTRAINT idempotency_pkey PRIMARY KEY (key);


--
-- Name: jobs jobs_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (seq);


--
-- Name: meta meta_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.meta
    ADD CONSTRAINT meta_pkey PRIMARY KEY (key);


--
-- Name: paused paused_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.paused
    ADD CONSTRAINT paused_pkey PRIMARY KEY (queue);


--
-- Name: results results_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.results
    ADD CONSTRAINT results_pkey PRIMARY KEY (id);


--
-- Name: ticks ticks_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.ticks
    ADD CONSTRAINT ticks_pkey PRIMARY KEY (job, tick);


--
-- Name: windows windows_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.windows
    ADD CONSTRAINT windows_pkey PRIMARY KEY (key, win);


--
-- Name: workers workers_pkey; Type: CONSTRAINT; Schema: __SCHEMA__; Owner: -
--

ALTER TABLE ONLY __SCHEMA__.workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);


--
-- Name: dead_queue; Type: INDEX; Schema: __SCHEMA__; Owner: -
--

CREATE INDEX dead_queue ON __SCHEMA__.dead USING btree (queue, seq);


--
-- Name: jobs_ready; Type: INDEX; Schema: __SCHEMA__; Owner: -
--

CREATE INDEX jobs_ready ON __SCHEMA__.jobs USING btree (queue, priority DESC, available_at, seq);


--
-- Name: jobs_unique; Type: INDEX; Schema: __SCHEMA__; Owner: -
--

CREATE UNIQUE INDEX jobs_unique ON __SCHEMA__.jobs USING btree (unique_key) WHERE (unique_key IS NOT NULL);


--
-- PostgreSQL database dump complete
--


