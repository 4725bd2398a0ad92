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
