CREATE FUNCTION @extschema@.start_follow_worker() RETURNS integer
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Launch the worker for this database unless a live one holds its lock;
# return the worker's pid once it is up (NULL if it did not come up).
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
return server.ensure_worker(plpy, wait=True)
$$;
COMMENT ON FUNCTION @extschema@.start_follow_worker() IS
    'Start the pg_follower worker for this database if none is running; returns its pid';
REVOKE ALL ON FUNCTION @extschema@.start_follow_worker() FROM PUBLIC;
