#!/usr/bin/env bash
# The walkthrough on the compose nodes: follow the upstream, write, see it arrive.
set -euo pipefail
PGPASSWORD=$(tr -d '\n' < /run/secrets/pg_superuser)
export PGPASSWORD PGUSER=postgres PGCONNECT_TIMEOUT=10
up="host=upstream dbname=app"
down="host=downstream dbname=app"
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
wait_for() {  # wait_for DESCRIPTION DSN QUERY: until QUERY returns t, 60 s at most
    for _ in $(seq 120); do
        [ "$(q "$2" -c "$3" 2>/dev/null)" = t ] && return 0
        sleep 0.5
    done
    echo "walkthrough: timed out waiting for $1" >&2
    q "$down" -c "SELECT name, state, last_error FROM follow_status" >&2 || true
    exit 1
}

q "$up" -c "CREATE TABLE IF NOT EXISTS walkthrough (id int PRIMARY KEY, note text)"
q "$up" -c "INSERT INTO walkthrough VALUES (1, 'before start_follow') ON CONFLICT DO NOTHING"
# No password in the conninfo: the downstream's worker has it in its .pgpass.
if [ "$(q "$down" -c "SELECT count(*) FROM follow_status WHERE name = 'default'")" = 0 ]; then
    q "$down" -c "SELECT start_follow('host=upstream dbname=app user=follower')"
fi
wait_for "the copy and the stream" "$down" \
    "SELECT state = 'streaming' FROM follow_status WHERE name = 'default'"
q "$up" -c "INSERT INTO walkthrough VALUES (2, 'after start_follow') ON CONFLICT DO NOTHING"
wait_for "row 2 downstream" "$down" "SELECT count(*) = 2 FROM walkthrough"
q "$down" -c "SELECT * FROM walkthrough ORDER BY id"
q "$down" -c "SELECT name, state, applied_lsn, lag_bytes FROM follow_status"
echo "walkthrough: ok"
