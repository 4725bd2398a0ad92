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
