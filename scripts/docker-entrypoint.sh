#!/usr/bin/env bash
# Run PostgreSQL and the pg_follower worker side by side; stop both on SIGTERM.
set -euo pipefail
runuser -u postgres -- pg_ctl -D "$PGDATA" -w start
trap 'kill -TERM "$worker" 2>/dev/null; runuser -u postgres -- pg_ctl -D "$PGDATA" -m fast stop; exit 0' TERM INT
while true; do
    runuser -u postgres -- env PYTHONPATH=/usr/share/postgresql/15/pg_follower_py/python \
        python3 -m pg_follower worker --dsn "host=/var/run/postgresql dbname=${FOLLOWER_DB:-postgres} user=postgres" &
    worker=$!
    wait "$worker" || true
    sleep 5  # the extension may not be created yet: try again
done
