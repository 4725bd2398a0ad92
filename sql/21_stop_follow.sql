CREATE FUNCTION @extschema@.stop_follow(name text DEFAULT 'default') RETURNS void
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Remove the subscription, its replication origin and its upstream slot.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
server.stop_follow(plpy, name)
$$;
COMMENT ON FUNCTION @extschema@.stop_follow(text) IS
    'Stop following: drop the subscription, its origin and its upstream replication slot';
REVOKE ALL ON FUNCTION @extschema@.stop_follow(text) FROM PUBLIC;
