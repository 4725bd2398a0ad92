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
