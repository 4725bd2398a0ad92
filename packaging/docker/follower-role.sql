-- The upstream role a follower connects as: replication, reading, no superuser.
-- Run in the upstream database after CREATE EXTENSION pg_follower_py, with
--   psql -v follower_password=... -f follower-role.sql
-- (the password travels as a psql variable: it is not in this file, nor in a
-- server log line, since CREATE ROLE ... PASSWORD is not logged by default.)
\set ON_ERROR_STOP on
SELECT format('CREATE ROLE follower LOGIN REPLICATION PASSWORD %L', :'follower_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'follower') \gexec
-- the initial copy and sync_sequences read every table and sequence (pg_dump, COPY)
GRANT pg_read_all_data TO follower;
-- the worker and the slot-drop helper create and drop the FOR ALL TABLES
-- publication through these SECURITY DEFINER functions (drop_publication()
-- where this version of the extension has it)
GRANT USAGE ON SCHEMA pgfollower TO follower;
SELECT format('GRANT EXECUTE ON FUNCTION %s TO follower', f)
  FROM unnest(ARRAY['pgfollower.ensure_publication()', 'pgfollower.drop_publication()']) f
 WHERE to_regprocedure(f) IS NOT NULL \gexec
