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
