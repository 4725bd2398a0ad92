-- One row per subscription. A subscription whose worker is gone shows
-- state 'stopped' (or 'paused', if paused) and no worker_pid, whatever the
-- worker wrote last; with a worker, 'paused' once it has stopped applying.
-- The 0.1.0 -> 0.2.0 upgrade script repeats this definition: keep them alike.
CREATE VIEW @extschema@.follow_status AS
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
COMMENT ON VIEW @extschema@.follow_status IS
    'Subscriptions of this database: state, positions, lag, last error and copy progress';
REVOKE ALL ON @extschema@.follow_status FROM PUBLIC;
GRANT SELECT ON @extschema@.follow_status TO pg_monitor;
