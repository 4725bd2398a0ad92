-- Roles belong to the cluster: event triggers never see them, so they are not
-- replicated. This creates the upstream's roles that this cluster lacks (and
-- memberships), before or after the initial copy that needs them as owners
-- and grantees. Passwords only with with_passwords (a superuser upstream).
CREATE FUNCTION @extschema@.copy_roles(name text DEFAULT 'default',
                                       with_passwords boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
# Read the upstream's roles through a helper process, create the missing ones.
import sys
if "@PYDIR@" not in sys.path:
    sys.path.insert(0, "@PYDIR@")
from pg_follower import server
return server.copy_roles(plpy, name, with_passwords)
$$;
COMMENT ON FUNCTION @extschema@.copy_roles(text, boolean) IS
    'Create the roles of the upstream of subscription name that this cluster lacks, and their memberships';
REVOKE ALL ON FUNCTION @extschema@.copy_roles(text, boolean) FROM PUBLIC;
