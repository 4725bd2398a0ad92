#!/usr/bin/env bash
# The pgTAP suite (tests/pgtap) against the compose upstream, each file in a
# fresh database, as tests/integration/test_pgtap.py runs it.
set -euo pipefail
PGPASSWORD=$(tr -d '\n' < /run/secrets/pg_superuser)
export PGPASSWORD PGUSER=postgres PGHOST=upstream
status=0
for script in tests/pgtap/*.sql; do
    db="tap_$(basename "$script" .sql | tr -c 'a-z0-9\n' _)"
    dropdb --if-exists --force "$db"
    createdb "$db"
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
        -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION pg_follower_py CASCADE"
    pg_prove --verbose -d "$db" "$script" || status=1
    dropdb --force "$db"
done
exit "$status"
