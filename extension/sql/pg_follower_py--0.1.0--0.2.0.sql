-- complain if the script is sourced in psql rather than run by ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_follower_py UPDATE TO '0.2.0'" to load this file. \quit

-- pg_follower_py 0.1.0 -> 0.2.0, hand-written deltas. The result must equal a
-- fresh 0.2.0 install (sql/*.sql): tests/integration/test_upgrade.py compares
-- every object of the extension. Columns are appended (ALTER TABLE ... ADD
-- COLUMN), so sql/ declares new columns last too. The installed Python is
-- already the 0.2.0 one while this has not run: the worker reads the
-- extension's version and writes only what the catalog has.

-- pause_follow / resume_follow: the pause flag, kept across worker restarts
ALTER TABLE pgfollower.subscription
    ADD COLUMN paused boolean NOT NULL DEFAULT false;

-- the 'paused' state; flushed_lsn (wait_for_catchup's criterion); counters
ALTER TABLE pgfollower.subscription_status
    DROP CONSTRAINT subscription_status_state_check,
    ADD CONSTRAINT subscription_status_state_check
        CHECK (state IN ('starting', 'copying', 'streaming', 'paused', 'error',
                         'stopped')),
    ADD COLUMN flushed_lsn pg_lsn,
    ADD COLUMN transactions_applied bigint NOT NULL DEFAULT 0,
    ADD COLUMN rows_applied bigint NOT NULL DEFAULT 0,
    ADD COLUMN counters_since timestamptz NOT NULL DEFAULT now();

-- follow_status: state 'paused'; flushed_lsn and the counters, appended
-- (CREATE OR REPLACE VIEW keeps its grants and comment)
CREATE OR REPLACE VIEW @extschema@.follow_status AS
SELECT s.name,
       s.upstream,
       s.slot_name,
       CASE
           WHEN w.pid IS NOT NULL THEN st.state
           WHEN s.paused THEN 'paused'
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
       st.updated_at,
       st.flushed_lsn,
       st.transactions_applied,
       st.rows_applied,
       st.counters_since
  FROM pgfollower.subscription s
  LEFT JOIN pgfollower.subscription_status st ON st.sub_id = s.id
  LEFT JOIN LATERAL (SELECT pgfollower.worker_pid() AS pid) w ON true;

-- new: pause_follow, resume_follow (sql/26_pause_follow.sql)
-- Pause and resume a subscription. Paused, the worker applies nothing and
-- keeps no stream open, but the upstream slot stays: the upstream retains
-- WAL from the slot's position until resume_follow (watch its disk). The
-- flag lives in the subscription row, so a pause survives worker restarts.
CREATE FUNCTION pgfollower.set_paused(p_name text, p_paused boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_was boolean;
BEGIN
    -- NO KEY UPDATE: the worker's FOR KEY SHARE SKIP LOCKED still sees the row
    SELECT s.paused INTO v_was
      FROM pgfollower.subscription s
     WHERE s.name = p_name
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_follower_py: there is no subscription named %', quote_literal(p_name)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM follow_status lists the subscriptions.';
    END IF;
    IF v_was = p_paused THEN
        RAISE NOTICE 'pg_follower_py: subscription % is already %', quote_literal(p_name),
                     CASE WHEN p_paused THEN 'paused' ELSE 'not paused' END;
        RETURN;
    END IF;
    UPDATE pgfollower.subscription SET paused = p_paused WHERE name = p_name;
    -- the worker looks at the subscriptions again when this commits
    PERFORM pg_notify('pg_follower_py', CASE WHEN p_paused THEN 'pause' ELSE 'resume' END);
    IF p_paused THEN
        RAISE NOTICE 'pg_follower_py: subscription % is paused', quote_literal(p_name)
            USING DETAIL = 'Nothing is applied until resume_follow; the upstream keeps WAL for its slot meanwhile.',
                  HINT = 'follow_status.state shows ''paused'' once the worker has stopped applying.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION pgfollower.set_paused(text, boolean) FROM PUBLIC;

CREATE FUNCTION @extschema@.pause_follow(name text DEFAULT 'default') RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- mark the subscription paused; the worker stops applying within a second
    PERFORM pgfollower.set_paused(pause_follow.name, true);
END
$$;
COMMENT ON FUNCTION @extschema@.pause_follow(text) IS
    'Stop applying the subscription''s changes, keeping its upstream slot (which retains WAL) until resume_follow';
REVOKE ALL ON FUNCTION @extschema@.pause_follow(text) FROM PUBLIC;

CREATE FUNCTION @extschema@.resume_follow(name text DEFAULT 'default') RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- clear the pause; the worker streams again from where it stopped
    PERFORM pgfollower.set_paused(resume_follow.name, false);
END
$$;
COMMENT ON FUNCTION @extschema@.resume_follow(text) IS
    'Apply the subscription''s changes again after pause_follow, from where it stopped';
REVOKE ALL ON FUNCTION @extschema@.resume_follow(text) FROM PUBLIC;

-- new: wait_for_catchup (sql/27_wait_for_catchup.sql)
-- For switchover scripts and tests: wait until the subscription has durably
-- applied everything the upstream had written when the call began.
CREATE FUNCTION @extschema@.wait_for_catchup(
    name text DEFAULT 'default',
    timeout interval DEFAULT '60s'
) RETURNS pg_lsn
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Read the upstream's WAL position through a helper process, then poll the
# worker's status here; return that position once it is applied.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
return server.wait_for_catchup(plpy, name, timeout)
$$;
COMMENT ON FUNCTION @extschema@.wait_for_catchup(text, interval) IS
    'Wait until the subscription has applied (and flushed) the upstream''s WAL position at the time of the call; returns it, or raises at the timeout';
REVOKE ALL ON FUNCTION @extschema@.wait_for_catchup(text, interval) FROM PUBLIC;

-- DDL capture (sql/30_capture.sql from its deparser on, copied whole):
-- DDL inside functions, procedures and DO blocks; the writers became
-- procedures the triggers CALL. Everything after the queue table is dropped
-- and made again as a fresh install makes it.
ALTER TABLE pgfollower.ddl_queue ADD COLUMN settings text NOT NULL DEFAULT '{}';
DROP EVENT TRIGGER pg_follower_py_ddl;
DROP EVENT TRIGGER pg_follower_py_drop;
DROP FUNCTION pgfollower.on_ddl_command_end();
DROP FUNCTION pgfollower.on_sql_drop();
DROP FUNCTION pgfollower.queue_ddl(text, text, text, boolean);
DROP FUNCTION pgfollower.queue_drop(text, text, text, boolean);
DROP FUNCTION pgfollower.called_nested(text, text);
DROP FUNCTION pgfollower.capture_ddl(text, text, text, text, boolean, boolean);
DROP FUNCTION pgfollower.capture_drop(text, text, text, text, boolean, boolean);
DROP FUNCTION pgfollower.enqueue(text[], text);

-- Deparse one DDL command into the statements that replay it (JSON texts).
-- Pure functions of their arguments plus catalog reads; not for PUBLIC: only
-- the writers below call them, with what the event trigger reported.
CREATE FUNCTION pgfollower.capture_ddl(p_tag text, p_query text, p_commands text,
                                       p_search_path text, p_frames text,
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
                          p_frames, p_standard_strings)
$$;

CREATE FUNCTION pgfollower.capture_drop(p_tag text, p_query text, p_dropped text,
                                        p_search_path text, p_frames text,
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
                           p_frames, p_standard_strings)
$$;
REVOKE ALL ON FUNCTION pgfollower.capture_ddl(text, text, text, text, text, boolean)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION pgfollower.capture_drop(text, text, text, text, text, boolean)
    FROM PUBLIC;

-- Insert the statements to replay, then delete them at once: the WAL keeps
-- the Insert for the row stream, the table stays empty. p_role is the
-- current_user of the DDL, passed by the (non-definer) trigger: the writers
-- only get here once their own call stack shows that trigger called them
-- (pgfollower.trigger_frames), so it is not a caller's choice. Under a
-- SECURITY DEFINER function it is the function's owner, a role the session
-- itself may not be able to become.
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
    IF p_role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_role) THEN
        RAISE EXCEPTION 'pg_follower_py: cannot queue DDL as role %: it does not exist',
                        quote_ident(coalesce(p_role, ''))
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    WITH ins AS (
        INSERT INTO pgfollower.ddl_queue (v, kind, tag, identity, search_path, role_name, statement,
                                          settings)
        SELECT (m ->> 'v')::integer, m ->> 'kind', m ->> 'tag', m ->> 'identity',
               m ->> 'search_path', p_role, m ->> 'sql',
               -- the caller's settings the literals were read under (ddl.LITERAL_SETTINGS)
               json_build_object('DateStyle', current_setting('DateStyle'),
                                 'IntervalStyle', current_setting('IntervalStyle'),
                                 'TimeZone', current_setting('TimeZone'))::text
          FROM unnest(p_messages) WITH ORDINALITY AS u(t, n), LATERAL (SELECT u.t::jsonb AS m) j
         ORDER BY u.n
        RETURNING id)
    SELECT array_agg(id) INTO v_ids FROM ins;
    DELETE FROM pgfollower.ddl_queue WHERE id = ANY (v_ids);
END
$$;
REVOKE ALL ON FUNCTION pgfollower.enqueue(text[], text) FROM PUBLIC;

-- A writer's PG_CONTEXT (innermost frame first, one a line) below the frame of
-- the event trigger that called it: "" for a top-level DDL, else the frames of
-- the function, procedure or DO block the DDL ran in, the first one holding
-- its text. NULL when the writer was not called by that trigger (user code
-- running during a DDL can call the writers too). Its first frame is the
-- writer's own; the next two must be exactly the trigger's CALL statement
-- (p_call, as written in the trigger) and the trigger function's frame. No
-- other role can forge them: the trigger function's name is qualified with
-- pgfollower (where PUBLIC cannot create), and no text can follow the closing
-- parenthesis of a CALL, so a statement of one's own cannot hold them either.
CREATE FUNCTION pgfollower.trigger_frames(p_context text, p_call text, p_trigger text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_head text := 'SQL statement "' || p_call || E'"\nPL/pgSQL function pgfollower.'
                   || p_trigger || '() line ';
    v_rest text;
    v_line text;
BEGIN
    -- skip the writer's own frame, then match the trigger's two
    IF strpos(p_context, E'\n') = 0 THEN
        RETURN NULL;
    END IF;
    v_rest := substr(p_context, strpos(p_context, E'\n') + 1);
    IF left(v_rest, length(v_head)) IS DISTINCT FROM v_head THEN
        RETURN NULL;
    END IF;
    v_rest := substr(v_rest, length(v_head) + 1);
    v_line := substring(v_rest FROM E'^[0-9]+ at CALL(?:\n|$)');
    IF v_line IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN substr(v_rest, length(v_line) + 1);
END
$$;
REVOKE ALL ON FUNCTION pgfollower.trigger_frames(text, text, text) FROM PUBLIC;

-- The writers the event triggers CALL (any role's DDL fires them, so PUBLIC
-- may execute them). They read the event trigger's report (which raises
-- outside an event trigger), the client's query text and their own call
-- stack themselves: a caller cannot hand them SQL to queue. Called by anything
-- but the trigger, they refuse. The DDL's text is the client's query (a
-- top-level DDL) or what the call stack shows (DDL inside a function, a
-- procedure or a DO block); the deparser checks it is a statement of the
-- reported command on the reported object.
CREATE PROCEDURE pgfollower.queue_ddl(p_tag text, p_role text, p_search_path text,
                                      p_standard_strings boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_commands text;
    v_context text;
    v_frames text;
BEGIN
    -- queue what this ddl_command_end firing replays downstream
    SELECT coalesce(json_agg(json_build_object(
               'command_tag', command_tag, 'object_type', object_type,
               'schema_name', schema_name, 'object_identity', object_identity,
               'in_extension', in_extension)), '[]')::text
      INTO v_commands
      FROM pg_event_trigger_ddl_commands();
    GET DIAGNOSTICS v_context = PG_CONTEXT;
    -- the CALL exactly as pgfollower.on_ddl_command_end() writes it
    v_frames := pgfollower.trigger_frames(v_context,
        'CALL pgfollower.queue_ddl(tg_tag, current_user::text, pgfollower.effective_search_path(), pg_catalog.current_setting(''standard_conforming_strings'') OPERATOR(pg_catalog.=) ''on'')',
        'on_ddl_command_end');
    IF v_frames IS NULL THEN
        PERFORM pgfollower.not_called_by_trigger('pgfollower.queue_ddl', 'pg_follower_py_ddl');
    END IF;
    PERFORM pgfollower.enqueue(pgfollower.capture_ddl(
        p_tag, current_query(), v_commands, p_search_path, v_frames, p_standard_strings), p_role);
END
$$;

CREATE PROCEDURE pgfollower.queue_drop(p_tag text, p_role text, p_search_path text,
                                       p_standard_strings boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_dropped text;
    v_context text;
    v_frames text;
BEGIN
    -- queue the DROP this sql_drop firing replays downstream
    SELECT coalesce(json_agg(json_build_object(
               'object_type', object_type, 'schema_name', schema_name,
               'object_name', object_name, 'object_identity', object_identity,
               'original', original, 'is_temporary', is_temporary)), '[]')::text
      INTO v_dropped
      FROM pg_event_trigger_dropped_objects();
    GET DIAGNOSTICS v_context = PG_CONTEXT;
    -- the CALL exactly as pgfollower.on_sql_drop() writes it
    v_frames := pgfollower.trigger_frames(v_context,
        'CALL pgfollower.queue_drop(tg_tag, current_user::text, pgfollower.effective_search_path(), pg_catalog.current_setting(''standard_conforming_strings'') OPERATOR(pg_catalog.=) ''on'')',
        'on_sql_drop');
    IF v_frames IS NULL THEN
        PERFORM pgfollower.not_called_by_trigger('pgfollower.queue_drop', 'pg_follower_py_drop');
    END IF;
    PERFORM pgfollower.enqueue(pgfollower.capture_drop(
        p_tag, current_query(), v_dropped, p_search_path, v_frames, p_standard_strings), p_role);
END
$$;

-- The error of a writer called by something else than its event trigger.
CREATE FUNCTION pgfollower.not_called_by_trigger(p_writer text, p_trigger text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'pg_follower_py: % may only be called by the event trigger %', p_writer, p_trigger
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'If the schema pgfollower is in search_path, take it out: the trigger''s'
                     ' own frame in the call stack then no longer names it.';
END
$$;
REVOKE ALL ON FUNCTION pgfollower.not_called_by_trigger(text, text) FROM PUBLIC;

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
    -- on one line: pgfollower.queue_ddl() checks its call stack for this exact text
    CALL pgfollower.queue_ddl(tg_tag, current_user::text, pgfollower.effective_search_path(), pg_catalog.current_setting('standard_conforming_strings') OPERATOR(pg_catalog.=) 'on');
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
    -- on one line: pgfollower.queue_drop() checks its call stack for this exact text
    CALL pgfollower.queue_drop(tg_tag, current_user::text, pgfollower.effective_search_path(), pg_catalog.current_setting('standard_conforming_strings') OPERATOR(pg_catalog.=) 'on');
END
$$;

CREATE EVENT TRIGGER pg_follower_py_ddl ON ddl_command_end
    EXECUTE FUNCTION pgfollower.on_ddl_command_end();
CREATE EVENT TRIGGER pg_follower_py_drop ON sql_drop
    EXECUTE FUNCTION pgfollower.on_sql_drop();

GRANT EXECUTE ON PROCEDURE pgfollower.queue_ddl(text, text, text, boolean),
                           pgfollower.queue_drop(text, text, text, boolean)
    TO PUBLIC;
-- end of DDL capture

-- copy_roles, replica identity back (sql/26_copy_roles.sql, 28, 35, and 40's ensure_publication):
-- Roles belong to the cluster: event triggers never see them, so they are not
-- replicated. This creates the upstream's roles that this cluster lacks (and
-- memberships), before or after the initial copy that needs them as owners
-- and grantees. Passwords only with with_passwords (a superuser upstream).
CREATE FUNCTION @extschema@.copy_roles(name text DEFAULT 'default',
                                       with_passwords boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Read the upstream's roles through a helper process, create the missing ones.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
return server.copy_roles(plpy, name, with_passwords)
$$;
COMMENT ON FUNCTION @extschema@.copy_roles(text, boolean) IS
    'Create the roles of the upstream of subscription name that this cluster lacks, and their memberships';
REVOKE ALL ON FUNCTION @extschema@.copy_roles(text, boolean) FROM PUBLIC;

-- The tables pg_follower_py gave REPLICA IDENTITY FULL (sql/35_replica_identity.sql):
-- only those are ever set back to DEFAULT. Made before the event triggers
-- (sql/30_capture.sql), which would fire on its CREATE TABLE.
CREATE TABLE pgfollower.replica_identity_full (
    relid oid PRIMARY KEY  -- a table pg_follower_py gave REPLICA IDENTITY FULL
);
REVOKE ALL ON pgfollower.replica_identity_full FROM PUBLIC;
-- read by ensure_replica_identity(), which runs as the DDL's role
GRANT SELECT ON pgfollower.replica_identity_full TO PUBLIC;
COMMENT ON TABLE pgfollower.replica_identity_full IS
    'Tables whose REPLICA IDENTITY FULL pg_follower_py set (and may set back to DEFAULT)';

-- The upstream keeps working: a published table with no replica identity
-- would make every UPDATE and DELETE on it fail, so such tables get
-- REPLICA IDENTITY FULL, with a NOTICE, when the publication starts and when
-- they are created or altered later. Once such a table has a usable primary
-- key, it goes back to DEFAULT (FULL logs whole old rows for every UPDATE).
-- Only tables the tool made FULL (pgfollower.replica_identity_full) are
-- ever changed back.
-- Give p_relid REPLICA IDENTITY FULL when it is published and has none (true
-- then), or DEFAULT again when the tool had made it FULL and it has a usable
-- primary key now. A statement that sets REPLICA IDENTITY itself makes the
-- table the user's: never touched again.
-- (first in this file: the event trigger calls it on every DDL from here on)
CREATE OR REPLACE FUNCTION pgfollower.ensure_replica_identity(p_relid oid) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name text;
BEGIN
    -- give p_relid REPLICA IDENTITY FULL when it is published and has none
    IF current_query() ~* '\mreplica\s+identity\M'
       AND EXISTS (SELECT 1 FROM pgfollower.replica_identity_full WHERE relid = p_relid) THEN
        PERFORM pgfollower.track_replica_identity(p_relid, false);  -- the user's now
        RETURN false;
    END IF;
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
    IF v_name IS NOT NULL THEN
        PERFORM set_config('pg_follower_py.internal_ddl', 'on', true);
        EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', v_name);
        PERFORM set_config('pg_follower_py.internal_ddl', '', true);
        PERFORM pgfollower.track_replica_identity(p_relid, true);
        RAISE NOTICE 'pg_follower_py: table % has no primary key (or only a DEFERRABLE one); set REPLICA IDENTITY FULL so that UPDATE and DELETE on it can be published', v_name
            USING HINT = 'Add a primary key, or set another replica identity, for faster replication of this table.';
        RETURN true;
    END IF;
    -- ours, and now with a usable primary key: back to DEFAULT
    SELECT c.oid::regclass::text INTO v_name
      FROM pg_class c
     WHERE c.oid = p_relid AND c.relreplident = 'f'
       AND EXISTS (SELECT 1 FROM pgfollower.replica_identity_full f WHERE f.relid = c.oid)
       AND EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = c.oid AND i.indisprimary AND i.indimmediate);
    IF v_name IS NULL THEN
        RETURN false;
    END IF;
    PERFORM set_config('pg_follower_py.internal_ddl', 'on', true);
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY DEFAULT', v_name);
    PERFORM set_config('pg_follower_py.internal_ddl', '', true);
    PERFORM pgfollower.track_replica_identity(p_relid, false);
    -- the DDL capture replays it downstream (server.py, _replica_identity)
    PERFORM set_config('pg_follower_py.replica_identity_default',
                       concat_ws(',', nullif(current_setting('pg_follower_py.replica_identity_default', true), ''),
                                 p_relid::text), true);
    RAISE NOTICE 'pg_follower_py: table % has a primary key now; its REPLICA IDENTITY is back to DEFAULT from the FULL that pg_follower_py set', v_name;
    RETURN false;
END
$$;

-- Record (or forget) that the tool set a table's REPLICA IDENTITY FULL: only
-- what is true of the table now, and only for a session that could ALTER it.
CREATE FUNCTION pgfollower.track_replica_identity(p_relid oid, p_ours boolean) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- insert or delete p_relid's row in pgfollower.replica_identity_full
    IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = p_relid
                     AND pg_has_role(session_user, c.relowner, 'MEMBER')) THEN
        RETURN;
    END IF;
    IF NOT p_ours THEN
        DELETE FROM pgfollower.replica_identity_full WHERE relid = p_relid;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = p_relid AND c.relreplident = 'f') THEN
        -- rows of dropped tables go too (their OIDs may come back)
        DELETE FROM pgfollower.replica_identity_full f
         WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = f.relid);
        INSERT INTO pgfollower.replica_identity_full (relid) VALUES (p_relid)
            ON CONFLICT DO NOTHING;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION pgfollower.track_replica_identity(oid, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgfollower.track_replica_identity(oid, boolean) TO PUBLIC;

-- The upstream publishes every table while someone follows it. Publications
-- cannot be extension members, so the worker calls this when a follow starts
-- and the slot-drop helper removes the publication with the last slot.
CREATE OR REPLACE FUNCTION pgfollower.ensure_publication() RETURNS void
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
    -- recorded here: the caller (the worker's upstream role) need not own them
    INSERT INTO pgfollower.replica_identity_full (relid)
    SELECT c.oid
      FROM pg_class c
     WHERE c.relkind = 'r' AND c.oid >= 16384 AND pgfollower.ensure_replica_identity(c.oid)
        ON CONFLICT DO NOTHING;
END
$$;
REVOKE ALL ON FUNCTION pgfollower.ensure_publication() FROM PUBLIC;
COMMENT ON FUNCTION pgfollower.ensure_publication() IS
    'Upstream side: publish all tables for pg_follower_py (called by the worker)';
-- end of copy_roles and replica identity

-- new: consumer slots of any name keep the DDL capture on; their DDL queue
-- publication (sql/30_capture.sql's consumer_slots and is_followed,
-- sql/40_publication.sql's ensure_consumer)
-- Slots of our other tools (pg-follower stream, duckdb) on this database,
-- whatever they are called: while one exists the DDL capture runs, so their
-- consumers get the DDL too. Recorded by pgfollower.ensure_consumer();
-- readable by all, as is pg_replication_slots (every DDL checks it).
CREATE TABLE pgfollower.consumer_slots (
    slot_name name PRIMARY KEY,
    added     timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON pgfollower.consumer_slots FROM PUBLIC;
GRANT SELECT ON pgfollower.consumer_slots TO PUBLIC;

-- True when DDL here must be captured: logical WAL and a slot of ours on
-- this database (a follower's, named pgf_..., or a recorded consumer's).
-- Elsewhere (a downstream, an unfollowed database) DDL runs untouched.
CREATE OR REPLACE FUNCTION pgfollower.is_followed() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT current_setting('wal_level') = 'logical'
       AND EXISTS (SELECT 1 FROM pg_replication_slots s
                    WHERE s.database = current_database()
                      AND s.plugin = 'pgoutput'
                      AND (s.slot_name LIKE 'pgf\_%'
                           OR s.slot_name IN (SELECT c.slot_name
                                                FROM pgfollower.consumer_slots c)))
$$;

-- Our other tools (pg-follower stream, duckdb) stream their own publication
-- plus pg_follower_py_ddl, the queue of captured DDL, through slots of any
-- name: they call this with the slot's name first. It makes the publication
-- if missing and records the slot, so the capture runs while it exists.
CREATE FUNCTION pgfollower.ensure_consumer(p_slot name) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pg_follower_py_ddl') THEN
        -- our own DDL: the capture trigger must not refuse it
        PERFORM set_config('pg_follower_py.internal_ddl', 'on', true);
        CREATE PUBLICATION pg_follower_py_ddl FOR TABLE pgfollower.ddl_queue
            WITH (publish = 'insert');
        PERFORM set_config('pg_follower_py.internal_ddl', '', true);
    END IF;
    INSERT INTO pgfollower.consumer_slots (slot_name) VALUES (p_slot) ON CONFLICT DO NOTHING;
END
$$;
REVOKE ALL ON FUNCTION pgfollower.ensure_consumer(name) FROM PUBLIC;
COMMENT ON FUNCTION pgfollower.ensure_consumer(name) IS
    'Upstream side: publish the DDL queue (pg_follower_py_ddl) and keep the DDL capture on while slot p_slot exists (called by pg-follower stream and duckdb)';
