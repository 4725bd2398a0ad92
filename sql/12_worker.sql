-- The worker serving this database: it holds a session advisory lock while
-- it runs (so liveness is exact) and writes a heartbeat here.
CREATE TABLE pgfollower.worker (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    version      text NOT NULL
);
REVOKE ALL ON pgfollower.worker FROM PUBLIC;

-- The advisory lock key (classid, objid) the worker holds; see supervise.py.
CREATE FUNCTION pgfollower.worker_pid() RETURNS integer
LANGUAGE sql STABLE
SECURITY DEFINER  -- follow_status readers (pg_monitor) cannot read the table
SET search_path = pg_catalog, pg_temp
AS $$
    -- The worker's OS pid if a worker holds this database's lock, else NULL.
    SELECT w.pid
      FROM pgfollower.worker w
     WHERE EXISTS (SELECT 1 FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted
                      AND l.database = (SELECT oid FROM pg_database
                                         WHERE datname = current_database())
                      AND l.classid = 1885759088 AND l.objid = 1 AND l.objsubid = 2)
$$;
