CREATE FUNCTION @extschema@.start_follow(
    conninfo text,
    name text DEFAULT 'default',
    copy_data boolean DEFAULT true
) RETURNS void
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Register a subscription to the upstream at conninfo and make sure a worker
# serves it. Validation errors are raised before anything is stored.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
server.start_follow(plpy, conninfo, name, copy_data)
$$;
COMMENT ON FUNCTION @extschema@.start_follow(text, text, boolean) IS
    'Follow the upstream database at conninfo: copy it (copy_data) then stream its changes';
REVOKE ALL ON FUNCTION @extschema@.start_follow(text, text, boolean) FROM PUBLIC;
