-- DDL capture on the upstream. PL/Python cannot be an event-trigger function
-- and cannot read pg_event_trigger_ddl_commands().command, so thin PL/pgSQL
-- triggers hand the text and object identities to these functions.

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

CREATE FUNCTION pgfollower.capture_ddl(p_tag text, p_query text, p_commands text,
                                       p_search_path text, p_nested boolean,
                                       p_standard_strings boolean) RETURNS text[]
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
# Deparse one DDL command into the logical messages that replay it.
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
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
# The logical messages that replay the DROP of what a command dropped.
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

-- Write the messages into the WAL of the DDL's own (sub)transaction. Not from
-- PL/Python: plpy.execute runs in a subtransaction of its own, and at commit
-- logical decoding merges subtransactions by LSN, where a message (queued at
-- its end LSN) ties with the record that follows it and may come out after
-- it. The padding message takes that tie, so the DDL always precedes the DML
-- that follows it; the worker ignores it.
CREATE FUNCTION pgfollower.emit(p_messages text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- one transactional message per DDL statement to replay, then the pad
    IF p_messages IS NULL OR cardinality(p_messages) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_logical_emit_message(true, 'pg_follower_py', m) FROM unnest(p_messages) AS m;
    PERFORM pg_logical_emit_message(true, 'pg_follower_py.pad', '');
END
$$;

CREATE FUNCTION pgfollower.on_ddl_command_end() RETURNS event_trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_commands text;
    v_context text;
BEGIN
    -- hand the command text and object identities to PL/Python
    IF pg_catalog.current_setting('pg_follower_py.internal_ddl', true) = 'on' THEN
        RETURN;  -- our own ALTER TABLE ... REPLICA IDENTITY, already covered
    END IF;
    PERFORM pgfollower.ensure_replica_identity(objid)
       FROM pg_catalog.pg_event_trigger_ddl_commands()
      WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND object_type = 'table' AND NOT in_extension;
    IF NOT pgfollower.is_followed() THEN
        RETURN;
    END IF;
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
               'command_tag', command_tag, 'object_type', object_type,
               'schema_name', schema_name, 'object_identity', object_identity,
               'in_extension', in_extension)), '[]')::text
      INTO v_commands
      FROM pg_catalog.pg_event_trigger_ddl_commands();
    -- More than one context line: the DDL ran inside a function or DO block,
    -- so the client's query text is not the statement that ran.
    GET DIAGNOSTICS v_context = PG_CONTEXT;
    PERFORM pgfollower.emit(pgfollower.capture_ddl(
        tg_tag, pg_catalog.current_query(), v_commands, pgfollower.effective_search_path(),
        pg_catalog.strpos(v_context, pg_catalog.chr(10)) > 0,
        pg_catalog.current_setting('standard_conforming_strings') = 'on'));
END
$$;

CREATE FUNCTION pgfollower.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_dropped text;
    v_context text;
BEGIN
    -- hand the dropped objects' identities to PL/Python
    IF NOT pgfollower.is_followed() THEN
        RETURN;
    END IF;
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
               'object_type', object_type, 'schema_name', schema_name,
               'object_name', object_name, 'object_identity', object_identity,
               'original', original, 'is_temporary', is_temporary)), '[]')::text
      INTO v_dropped
      FROM pg_catalog.pg_event_trigger_dropped_objects();
    GET DIAGNOSTICS v_context = PG_CONTEXT;
    PERFORM pgfollower.emit(pgfollower.capture_drop(
        tg_tag, pg_catalog.current_query(), v_dropped, pgfollower.effective_search_path(),
        pg_catalog.strpos(v_context, pg_catalog.chr(10)) > 0,
        pg_catalog.current_setting('standard_conforming_strings') = 'on'));
END
$$;

CREATE EVENT TRIGGER pg_follower_py_ddl ON ddl_command_end
    EXECUTE FUNCTION pgfollower.on_ddl_command_end();
CREATE EVENT TRIGGER pg_follower_py_drop ON sql_drop
    EXECUTE FUNCTION pgfollower.on_sql_drop();
