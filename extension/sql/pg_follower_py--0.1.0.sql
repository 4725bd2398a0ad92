-- complain if the script is sourced in psql rather than run by CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_follower_py CASCADE" to load this file. \quit
-- Internal objects live in their own schema (names starting with pg_ are
-- reserved); the user-facing API is created in @extschema@ (public by
-- default) so it is callable unqualified with the default search_path.
CREATE SCHEMA pgfollower;
REVOKE ALL ON SCHEMA pgfollower FROM PUBLIC;
COMMENT ON SCHEMA pgfollower IS 'pg_follower_py internals: subscriptions, status, capture';
-- One row per subscription of this (downstream) database. The conninfo may
-- hold a password: the table is superuser-only and kept by pg_dump.
CREATE TABLE pgfollower.subscription (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> '' AND length(name) <= 63),
    conninfo    text NOT NULL,
    upstream    text NOT NULL,  -- conninfo with passwords removed, for display
    slot_name   text NOT NULL UNIQUE,
    origin_name text NOT NULL UNIQUE,
    copy_data   boolean NOT NULL,
    skip_lsn    pg_lsn,  -- skip_transaction(): commit LSN of the one transaction to skip
    created_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON pgfollower.subscription FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pgfollower.subscription', '');
SELECT pg_catalog.pg_extension_config_dump('pgfollower.subscription_id_seq', '');
-- What the worker last reported for each subscription. Written by the
-- worker about once a second; not dumped (it describes this server's worker).
CREATE TABLE pgfollower.subscription_status (
    sub_id          integer PRIMARY KEY
                    REFERENCES pgfollower.subscription (id) ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'starting'
                    CHECK (state IN ('starting', 'copying', 'streaming', 'error', 'stopped')),
    received_lsn    pg_lsn,
    applied_lsn     pg_lsn,
    upstream_lsn    pg_lsn,
    lag_seconds     double precision,
    last_error      text,
    last_error_at   timestamptz,
    error_lsn       pg_lsn,
    error_statement text,
    tables_copied   integer NOT NULL DEFAULT 0,
    tables_total    integer,
    rows_copied     bigint NOT NULL DEFAULT 0,
    rows_total      bigint,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON pgfollower.subscription_status FROM PUBLIC;
-- The worker serving this database: it holds a session advisory lock while
-- it runs (so liveness is exact) and writes a heartbeat here.
CREATE TABLE pgfollower.worker (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    version      text NOT NULL
);
REVOKE ALL ON pgfollower.worker FROM PUBLIC;

-- The advisory lock key (classid, objid) the worker holds; see supervise.py.
CREATE FUNCTION pgfollower.worker_pid() RETURNS integer
LANGUAGE sql STABLE
SECURITY DEFINER  -- follow_status readers (pg_monitor) cannot read the table
SET search_path = pg_catalog, pg_temp
AS $$
    -- The worker's OS pid if a worker holds this database's lock, else NULL.
    SELECT w.pid
      FROM pgfollower.worker w
     WHERE EXISTS (SELECT 1 FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted
                      AND l.database = (SELECT oid FROM pg_database
                                         WHERE datname = current_database())
                      AND l.classid = 1885759088 AND l.objid = 1 AND l.objsubid = 2)
$$;
CREATE FUNCTION @extschema@.start_follow(
    conninfo text,
    name text DEFAULT 'default',
    copy_data boolean DEFAULT true
) RETURNS void
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Register a subscription to the upstream at conninfo and make sure a worker
# serves it. Validation errors are raised before anything is stored.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
server.start_follow(plpy, conninfo, name, copy_data)
$$;
COMMENT ON FUNCTION @extschema@.start_follow(text, text, boolean) IS
    'Follow the upstream database at conninfo: copy it (copy_data) then stream its changes';
REVOKE ALL ON FUNCTION @extschema@.start_follow(text, text, boolean) FROM PUBLIC;
CREATE FUNCTION @extschema@.stop_follow(name text DEFAULT 'default') RETURNS void
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Remove the subscription, its replication origin and its upstream slot.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
server.stop_follow(plpy, name)
$$;
COMMENT ON FUNCTION @extschema@.stop_follow(text) IS
    'Stop following: drop the subscription, its origin and its upstream replication slot';
REVOKE ALL ON FUNCTION @extschema@.stop_follow(text) FROM PUBLIC;
CREATE FUNCTION @extschema@.start_follow_worker() RETURNS integer
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Launch the worker for this database unless a live one holds its lock;
# return the worker's pid once it is up (NULL if it did not come up).
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
return server.ensure_worker(plpy, wait=True)
$$;
COMMENT ON FUNCTION @extschema@.start_follow_worker() IS
    'Start the pg_follower worker for this database if none is running; returns its pid';
REVOKE ALL ON FUNCTION @extschema@.start_follow_worker() FROM PUBLIC;
-- One row per subscription. A subscription whose worker is gone shows
-- state 'stopped' and no worker_pid, whatever the worker wrote last.
CREATE VIEW @extschema@.follow_status AS
SELECT s.name,
       s.upstream,
       s.slot_name,
       CASE
           WHEN w.pid IS NOT NULL THEN st.state
           WHEN st.state = 'starting' AND s.created_at > now() - interval '15 seconds'
               THEN 'starting'
           ELSE 'stopped'
       END AS state,
       w.pid AS worker_pid,
       st.received_lsn,
       st.applied_lsn,
       greatest(pg_catalog.pg_wal_lsn_diff(st.upstream_lsn, st.applied_lsn), 0)::bigint
           AS lag_bytes,
       st.lag_seconds,
       CASE
           WHEN w.pid IS NULL AND st.last_error IS NULL
                AND s.created_at <= now() - interval '15 seconds'
               THEN 'no worker is running for this database: run SELECT start_follow_worker()'
                    ' or start "pg-follower worker"'
           ELSE st.last_error
       END AS last_error,
       st.last_error_at,
       st.error_lsn,
       st.error_statement,
       st.tables_copied,
       st.tables_total,
       st.rows_copied,
       st.rows_total,
       s.skip_lsn,
       st.updated_at
  FROM pgfollower.subscription s
  LEFT JOIN pgfollower.subscription_status st ON st.sub_id = s.id
  LEFT JOIN LATERAL (SELECT pgfollower.worker_pid() AS pid) w ON true;
COMMENT ON VIEW @extschema@.follow_status IS
    'Subscriptions of this database: state, positions, lag, last error and copy progress';
REVOKE ALL ON @extschema@.follow_status FROM PUBLIC;
GRANT SELECT ON @extschema@.follow_status TO pg_monitor;
-- The operator's way past an apply error: skip exactly the failing upstream
-- transaction, named by the commit LSN follow_status shows in error_lsn, and
-- only while it is failing. Its changes are then missing downstream.
CREATE FUNCTION @extschema@.skip_transaction(lsn pg_lsn, name text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sub record;
BEGIN
    -- NO KEY UPDATE: the worker's FOR KEY SHARE SKIP LOCKED still sees the row
    SELECT s.id, st.state, st.error_lsn
      INTO sub
      FROM pgfollower.subscription s
      LEFT JOIN pgfollower.subscription_status st ON st.sub_id = s.id
     WHERE s.name = skip_transaction.name
       FOR NO KEY UPDATE OF s;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_follower_py: there is no subscription named %', quote_literal(name)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM follow_status lists the subscriptions.';
    END IF;
    IF lsn IS NULL THEN
        RAISE EXCEPTION 'pg_follower_py: the LSN of the transaction to skip is NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass error_lsn from follow_status.';
    END IF;
    IF sub.state IS DISTINCT FROM 'error' OR sub.error_lsn IS NULL THEN
        RAISE EXCEPTION 'pg_follower_py: subscription % has no failing transaction to skip',
                        quote_literal(name)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'skip_transaction only skips the transaction shown in follow_status.error_lsn while the state is ''error''.';
    END IF;
    IF sub.error_lsn <> lsn THEN
        RAISE EXCEPTION 'pg_follower_py: subscription % is failing at %, not at %',
                        quote_literal(name), sub.error_lsn, lsn
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('To skip the failing transaction: SELECT skip_transaction(%L, %L);',
                                sub.error_lsn, name);
    END IF;
    UPDATE pgfollower.subscription SET skip_lsn = lsn WHERE id = sub.id;
    PERFORM pg_notify('pg_follower_py', 'skip');
    RAISE NOTICE 'pg_follower_py: subscription % will skip the upstream transaction committed at %',
                 quote_literal(name), lsn
        USING DETAIL = 'Its changes will be missing downstream.';
END
$$;
COMMENT ON FUNCTION @extschema@.skip_transaction(pg_lsn, text) IS
    'Skip the one failing upstream transaction at lsn (follow_status.error_lsn); its changes are lost downstream';
REVOKE ALL ON FUNCTION @extschema@.skip_transaction(pg_lsn, text) FROM PUBLIC;
-- Sequences are copied by the initial copy; later their values move
-- downstream only through replicated column values. This brings every
-- downstream sequence to its upstream value, on demand (before a switchover).
CREATE FUNCTION @extschema@.sync_sequences(name text DEFAULT 'default') RETURNS integer
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Read the upstream's sequences through a helper process, set them here.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
return server.sync_sequences(plpy, name)
$$;
COMMENT ON FUNCTION @extschema@.sync_sequences(text) IS
    'Set every sequence of this database to its value on the upstream of subscription name';
REVOKE ALL ON FUNCTION @extschema@.sync_sequences(text) FROM PUBLIC;
-- DDL capture on the upstream. PL/Python cannot be an event-trigger function
-- and cannot read pg_event_trigger_ddl_commands().command, so thin PL/pgSQL
-- triggers call PL/pgSQL writers, which hand the text and object identities
-- to the PL/Python deparser and queue its statements in pgfollower.ddl_queue.

-- True when DDL here must be captured: logical WAL and a slot of ours on
-- this database. Elsewhere (a downstream, an unfollowed database) DDL runs
-- untouched.
CREATE FUNCTION pgfollower.is_followed() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT current_setting('wal_level') = 'logical'
       AND EXISTS (SELECT 1 FROM pg_replication_slots
                    WHERE database = current_database()
                      AND plugin = 'pgoutput'
                      AND slot_name LIKE 'pgf\_%')
$$;

-- The schemas unqualified names resolved in, as a quoted SQL list. No SET
-- search_path here or in the triggers below: it would hide the caller's.
CREATE FUNCTION pgfollower.effective_search_path() RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(pg_catalog.string_agg(pg_catalog.quote_ident(s), ', ' ORDER BY o), '')
      FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS t(s, o)
$$;

-- The DDL to replay downstream. Only the SECURITY DEFINER writers below can
-- add rows (PUBLIC has no privilege on the table); a row travels in the row
-- stream (the publication is FOR ALL TABLES) at exactly its place in the
-- transaction, and the worker replays nothing else: a logical message any
-- role can emit is never executed. Each row is deleted right after it is
-- inserted, so the table stays empty; the worker ignores the Delete, and the
-- initial copy skips the schema.
CREATE TABLE pgfollower.ddl_queue (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    v           integer NOT NULL,  -- the format version, ddl.FORMAT_VERSION
    kind        text NOT NULL,
    tag         text NOT NULL,
    identity    text NOT NULL,
    search_path text NOT NULL,
    role_name   text NOT NULL,     -- current_user of the DDL: replayed as that role
    statement   text NOT NULL
);
REVOKE ALL ON pgfollower.ddl_queue FROM PUBLIC;

-- Deparse one DDL command into the statements that replay it (JSON texts).
-- Pure functions of their arguments plus catalog reads; not for PUBLIC: only
-- the writers below call them, with what the event trigger reported.
CREATE FUNCTION pgfollower.capture_ddl(p_tag text, p_query text, p_commands text,
                                       p_search_path text, p_nested boolean,
                                       p_standard_strings boolean) RETURNS text[]
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Deparse one DDL command into the statements that replay it.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
return server.capture_ddl(plpy, p_tag, p_query, p_commands, p_search_path,
                          p_nested, p_standard_strings)
$$;

CREATE FUNCTION pgfollower.capture_drop(p_tag text, p_query text, p_dropped text,
                                        p_search_path text, p_nested boolean,
                                        p_standard_strings boolean) RETURNS text[]
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# The statements that replay the DROP of what a command dropped.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
return server.capture_drop(plpy, p_tag, p_query, p_dropped, p_search_path,
                           p_nested, p_standard_strings)
$$;
REVOKE ALL ON FUNCTION pgfollower.capture_ddl(text, text, text, text, boolean, boolean)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION pgfollower.capture_drop(text, text, text, text, boolean, boolean)
    FROM PUBLIC;

-- Insert the statements to replay, then delete them at once: the WAL keeps
-- the Insert for the row stream, the table stays empty. p_role comes from the
-- (non-definer) trigger, where current_user is the DDL's role: a caller can
-- only name a role its session could SET ROLE to anyway.
CREATE FUNCTION pgfollower.enqueue(p_messages text[], p_role text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    -- one row per statement, in order
    IF p_messages IS NULL OR cardinality(p_messages) = 0 THEN
        RETURN;
    END IF;
    IF p_role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_role)
       OR NOT pg_has_role(session_user, p_role, 'MEMBER') THEN
        RAISE EXCEPTION 'pg_follower_py: cannot queue DDL as role %: this session cannot act as it',
                        quote_ident(coalesce(p_role, ''))
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    WITH ins AS (
        INSERT INTO pgfollower.ddl_queue (v, kind, tag, identity, search_path, role_name, statement)
        SELECT (m ->> 'v')::integer, m ->> 'kind', m ->> 'tag', m ->> 'identity',
               m ->> 'search_path', p_role, m ->> 'sql'
          FROM unnest(p_messages) WITH ORDINALITY AS u(t, n), LATERAL (SELECT u.t::jsonb AS m) j
         ORDER BY u.n
        RETURNING id)
    SELECT array_agg(id) INTO v_ids FROM ins;
    DELETE FROM pgfollower.ddl_queue WHERE id = ANY (v_ids);
END
$$;
REVOKE ALL ON FUNCTION pgfollower.enqueue(text[], text) FROM PUBLIC;

-- Whether a writer's PG_CONTEXT (innermost frame first) shows it was not
-- called right under a top-level DDL's event trigger: the trigger's frame
-- (p_trigger) is missing (a call from user code) or not the outermost one
-- (the DDL ran inside a function or a DO block).
CREATE FUNCTION pgfollower.called_nested(p_context text, p_trigger text) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(min(n) < max(cardinality(l.lines)), true)
      FROM (SELECT string_to_array(p_context, chr(10)) AS lines) l,
           unnest(l.lines) WITH ORDINALITY AS u(line, n)
     WHERE u.line LIKE 'PL/pgSQL function ' || p_trigger || '() line % at PERFORM'
$$;

-- The writers the event triggers call (any role's DDL fires them, so PUBLIC
-- may execute them). They read the event trigger's own report, which raises
-- outside an event trigger, and the client's query text themselves: a caller
-- cannot hand them SQL to queue, and the role they are given is checked in
-- enqueue(). Called from anywhere but the trigger of a top-level DDL, the
-- deparser is told the DDL is nested and refuses anything from the query.
CREATE FUNCTION pgfollower.queue_ddl(p_tag text, p_role text, p_search_path text,
                                     p_standard_strings boolean) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_commands text;
    v_context text;
BEGIN
    -- queue what this ddl_command_end firing replays downstream
    SELECT coalesce(json_agg(json_build_object(
               'command_tag', command_tag, 'object_type', object_type,
               'schema_name', schema_name, 'object_identity', object_identity,
               'in_extension', in_extension)), '[]')::text
      INTO v_commands
      FROM pg_event_trigger_ddl_commands();
    GET DIAGNOSTICS v_context = PG_CONTEXT;
    PERFORM pgfollower.enqueue(pgfollower.capture_ddl(
        p_tag, current_query(), v_commands, p_search_path,
        pgfollower.called_nested(v_context, 'pgfollower.on\_ddl\_command\_end'),
        p_standard_strings), p_role);
END
$$;

CREATE FUNCTION pgfollower.queue_drop(p_tag text, p_role text, p_search_path text,
                                      p_standard_strings boolean) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_dropped text;
    v_context text;
BEGIN
    -- queue the DROP this sql_drop firing replays downstream
    SELECT coalesce(json_agg(json_build_object(
               'object_type', object_type, 'schema_name', schema_name,
               'object_name', object_name, 'object_identity', object_identity,
               'original', original, 'is_temporary', is_temporary)), '[]')::text
      INTO v_dropped
      FROM pg_event_trigger_dropped_objects();
    GET DIAGNOSTICS v_context = PG_CONTEXT;
    PERFORM pgfollower.enqueue(pgfollower.capture_drop(
        p_tag, current_query(), v_dropped, p_search_path,
        pgfollower.called_nested(v_context, 'pgfollower.on\_sql\_drop'),
        p_standard_strings), p_role);
END
$$;

CREATE FUNCTION pgfollower.on_ddl_command_end() RETURNS event_trigger
LANGUAGE plpgsql
AS $$
BEGIN
    -- queue the DDL for the followers, as the role that ran it
    IF pg_catalog.current_setting('pg_follower_py.internal_ddl', true) OPERATOR(pg_catalog.=) 'on' THEN
        RETURN;  -- our own ALTER TABLE ... REPLICA IDENTITY, already covered
    END IF;
    PERFORM pgfollower.ensure_replica_identity(objid)
       FROM pg_catalog.pg_event_trigger_ddl_commands()
      WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
        AND object_type OPERATOR(pg_catalog.=) 'table' AND NOT in_extension;
    IF NOT pgfollower.is_followed() THEN
        RETURN;
    END IF;
    -- current_user here is the DDL's role (inside the writer it is the definer)
    PERFORM pgfollower.queue_ddl(tg_tag, current_user::text, pgfollower.effective_search_path(),
        pg_catalog.current_setting('standard_conforming_strings') OPERATOR(pg_catalog.=) 'on');
END
$$;

CREATE FUNCTION pgfollower.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql
AS $$
BEGIN
    -- queue the DROP for the followers, as the role that ran it
    IF NOT pgfollower.is_followed() THEN
        RETURN;
    END IF;
    PERFORM pgfollower.queue_drop(tg_tag, current_user::text, pgfollower.effective_search_path(),
        pg_catalog.current_setting('standard_conforming_strings') OPERATOR(pg_catalog.=) 'on');
END
$$;

CREATE EVENT TRIGGER pg_follower_py_ddl ON ddl_command_end
    EXECUTE FUNCTION pgfollower.on_ddl_command_end();
CREATE EVENT TRIGGER pg_follower_py_drop ON sql_drop
    EXECUTE FUNCTION pgfollower.on_sql_drop();
-- The upstream keeps working: a published table with no replica identity
-- would make every UPDATE and DELETE on it fail, so such tables get
-- REPLICA IDENTITY FULL, with a NOTICE, when the publication starts and when
-- they are created or altered later.
CREATE FUNCTION pgfollower.ensure_replica_identity(p_relid oid) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name text;
BEGIN
    -- give p_relid REPLICA IDENTITY FULL when it is published and has none
    SELECT c.oid::regclass::text INTO v_name
      FROM pg_class c
     WHERE c.oid = p_relid
       AND c.relkind = 'r' AND c.relpersistence = 'p'
       AND c.relreplident = 'd'
       AND c.relnamespace <> 'pgfollower'::regnamespace
       AND EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pg_follower_py')
       -- a DEFERRABLE primary key cannot serve as replica identity
       AND NOT EXISTS (SELECT 1 FROM pg_index i
                        WHERE i.indrelid = c.oid AND i.indisprimary AND i.indimmediate);
    IF v_name IS NULL THEN
        RETURN false;
    END IF;
    PERFORM set_config('pg_follower_py.internal_ddl', 'on', true);
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', v_name);
    PERFORM set_config('pg_follower_py.internal_ddl', '', true);
    RAISE NOTICE 'pg_follower_py: table % has no primary key (or only a DEFERRABLE one); set REPLICA IDENTITY FULL so that UPDATE and DELETE on it can be published', v_name
        USING HINT = 'Add a primary key, or set another replica identity, for faster replication of this table.';
    RETURN true;
END
$$;
-- The upstream publishes every table while someone follows it. Publications
-- cannot be extension members, so the worker calls this when a follow starts
-- and the slot-drop helper removes the publication with the last slot.
CREATE FUNCTION pgfollower.ensure_publication() RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- create the publication, then give keyless tables a replica identity
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pg_follower_py') THEN
        -- our own DDL: the capture trigger must not refuse it
        PERFORM set_config('pg_follower_py.internal_ddl', 'on', true);
        CREATE PUBLICATION pg_follower_py FOR ALL TABLES;
        PERFORM set_config('pg_follower_py.internal_ddl', '', true);
    END IF;
    PERFORM pgfollower.ensure_replica_identity(c.oid)
       FROM pg_class c
      WHERE c.relkind = 'r' AND c.oid >= 16384;
END
$$;
REVOKE ALL ON FUNCTION pgfollower.ensure_publication() FROM PUBLIC;
COMMENT ON FUNCTION pgfollower.ensure_publication() IS
    'Upstream side: publish all tables for pg_follower_py (called by the worker)';

-- The publication goes with the last pg_follower_py slot of this database:
-- the slot-drop helper calls this, so its role needs only EXECUTE here (the
-- publication belongs to the extension's owner).
CREATE FUNCTION pgfollower.drop_publication() RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- drop the publication unless a slot of ours still uses it; true if dropped
    IF EXISTS (SELECT 1 FROM pg_replication_slots
                WHERE database = current_database() AND plugin = 'pgoutput'
                  AND slot_name LIKE 'pgf\_%')
       OR NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pg_follower_py') THEN
        RETURN false;
    END IF;
    DROP PUBLICATION pg_follower_py;
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION pgfollower.drop_publication() FROM PUBLIC;
COMMENT ON FUNCTION pgfollower.drop_publication() IS
    'Upstream side: drop the pg_follower_py publication once no follower slot is left (called by the slot-drop helper)';
-- Any role's DDL runs the event triggers with that role's rights: let it reach
-- the functions they call (the writers are SECURITY DEFINER with a pinned
-- search_path and read what they queue from the event trigger itself). The
-- tables, the deparser and enqueue() stay superuser-only.
GRANT USAGE ON SCHEMA pgfollower TO PUBLIC;
GRANT EXECUTE ON FUNCTION pgfollower.queue_ddl(text, text, text, boolean),
                          pgfollower.queue_drop(text, text, text, boolean)
    TO PUBLIC;
