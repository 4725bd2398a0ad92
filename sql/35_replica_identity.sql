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
