"""pg_follower_py: logical replication for PostgreSQL with no C code.

Kept import-light: the server's PL/Python imports submodules of this package
(``ddl``, ``conninfo``, ``server``) without psycopg being available.
"""

__version__ = "0.2.0"

# Names shared by the extension and the worker.
PUBLICATION = "pg_follower_py"
MESSAGE_PREFIX = "pg_follower_py"
APPLICATION_NAME = "pg_follower worker"
# The extension's own schema: its tables are published like any other, and
# never applied (but for the DDL queue, whose rows are the DDL to replay).
INTERNAL_SCHEMA = "pgfollower"
