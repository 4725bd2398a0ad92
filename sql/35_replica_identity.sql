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
