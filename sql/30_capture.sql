-- DDL capture on the upstream. PL/Python cannot be an event-trigger function
-- and cannot read pg_event_trigger_ddl_commands().command, so thin PL/pgSQL
-- triggers CALL PL/pgSQL writers, which hand the text (the client's query, or
-- the call stack of DDL run inside a function, a procedure or a DO block) and
-- the object identities to the PL/Python deparser and queue its statements in
-- pgfollower.ddl_queue.

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
CREATE FUNCTION pgfollower.is_followed() RETURNS boolean
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
    statement   text NOT NULL,
    settings    text NOT NULL DEFAULT '{}'  -- JSON: the settings literals were read under
);
REVOKE ALL ON pgfollower.ddl_queue FROM PUBLIC;

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
