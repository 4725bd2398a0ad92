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
