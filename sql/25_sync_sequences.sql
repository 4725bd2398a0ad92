-- Sequences are copied by the initial copy; later their values move
-- downstream only through replicated column values. This brings every
-- downstream sequence to its upstream value, on demand (before a switchover).
CREATE FUNCTION @extschema@.sync_sequences(name text DEFAULT 'default') RETURNS integer
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Read the upstream's sequences through a helper process, set them here.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
return server.sync_sequences(plpy, name)
$$;
COMMENT ON FUNCTION @extschema@.sync_sequences(text) IS
    'Set every sequence of this database to its value on the upstream of subscription name';
REVOKE ALL ON FUNCTION @extschema@.sync_sequences(text) FROM PUBLIC;
