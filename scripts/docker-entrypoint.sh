#!/usr/bin/env bash
# Run PostgreSQL and the pg_follower worker side by side; stop both on SIGTERM.
#
# First start (empty $PGDATA): initdb with a superuser password taken from
# POSTGRES_PASSWORD or the file POSTGRES_PASSWORD_FILE (a compose/Docker
# secret); refuses to start without one. Only the local socket trusts;
# network connections need scram-sha-256. Optional, also first start only:
#   FOLLOWER_DB                     database to create with pg_follower_py (default postgres)
#   FOLLOWER_PASSWORD(_FILE)        create the non-superuser role "follower"
#                                   (packaging/docker/follower-role.sql) in it
#   UPSTREAM_HOST                   on a downstream: the worker's .pgpass gets a line
#                                   for follower@UPSTREAM_HOST (every start)
# Every start: PG_FOLLOWER_METRICS_ADDRESS, PG_FOLLOWER_LOG_FORMAT go to the worker.
set -euo pipefail

secret() {  # secret NAME: the value of $NAME, else of the file named by $NAME_FILE
    local name=$1 file_var="${1}_FILE"
    if [ -n "${!file_var:-}" ]; then
        tr -d '\n' < "${!file_var}"
    else
        printf '%s' "${!name:-}"
    fi
}

db=${FOLLOWER_DB:-postgres}
as_postgres() { runuser -u postgres -- "$@"; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password=$(secret POSTGRES_PASSWORD)
    if [ -z "$password" ]; then
        echo "docker-entrypoint: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (the superuser's password)" >&2
        exit 1
    fi
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    pwfile=$(mktemp) && chown postgres "$pwfile" && printf '%s\n' "$password" > "$pwfile"
    as_postgres initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    cat >> "$PGDATA/postgresql.conf" <<'CONF'
wal_level = logical
listen_addresses = '*'
password_encryption = scram-sha-256
pg_follower_py.launch_worker = off
CONF
    # local socket: trust (inside the container only); any network address: scram
    cat > "$PGDATA/pg_hba.conf" <<'HBA'
local   all             all                                     trust
host    all             all             0.0.0.0/0               scram-sha-256
host    all             all             ::/0                    scram-sha-256
host    replication     all             0.0.0.0/0               scram-sha-256
host    replication     all             ::/0                    scram-sha-256
HBA
    as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    if [ "$db" != postgres ]; then as_postgres createdb "$db"; fi
    as_postgres psql -X -q -d "$db" -c "CREATE EXTENSION IF NOT EXISTS pg_follower_py CASCADE"
    follower_password=$(secret FOLLOWER_PASSWORD)
    if [ -n "$follower_password" ] && [ -z "${UPSTREAM_HOST:-}" ]; then
        as_postgres psql -X -q -d "$db" -v follower_password="$follower_password" \
            -f /opt/pg_follower_py/packaging/docker/follower-role.sql
    fi
    as_postgres pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
fi

# The worker's password for the upstream, never on a command line or in a conninfo.
pgpass=/var/lib/postgresql/.pgpass
follower_password=$(secret FOLLOWER_PASSWORD)
if [ -n "$follower_password" ] && [ -n "${UPSTREAM_HOST:-}" ]; then
    install -o postgres -g postgres -m 0600 /dev/null "$pgpass"
    printf '%s:*:*:follower:%s\n' "$UPSTREAM_HOST" "$follower_password" > "$pgpass"
fi

as_postgres pg_ctl -D "$PGDATA" -w start
trap 'kill -TERM "$worker" 2>/dev/null; as_postgres pg_ctl -D "$PGDATA" -m fast stop; exit 0' TERM INT
while true; do
    as_postgres env PYTHONPATH=/usr/share/postgresql/15/pg_follower_py/python \
        PGPASSFILE="$pgpass" \
        PG_FOLLOWER_METRICS_ADDRESS="${PG_FOLLOWER_METRICS_ADDRESS:-}" \
        PG_FOLLOWER_LOG_FORMAT="${PG_FOLLOWER_LOG_FORMAT:-text}" \
        PG_FOLLOWER_SPOOL_DIR=/var/lib/postgresql/pg_follower_spool \
        python3 -m pg_follower worker --dsn "host=/var/run/postgresql dbname=$db user=postgres" &
    worker=$!
    wait "$worker" || true
    sleep 5  # the extension may not be created yet: try again
done
