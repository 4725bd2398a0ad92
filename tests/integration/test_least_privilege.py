"""A downstream worker that is not superuser (issue 12, point 4), on real clusters.

A superuser installs the extension on both nodes and makes the worker's role
with exactly the grants the README's "Security model" lists; that role then
calls start_follow itself, so the launched worker connects as it. The copy,
the row stream, DDL by an ordinary role and stop_follow must all work, and no
session of the worker downstream may be a superuser's.
"""

from __future__ import annotations

from typing import Any

import psycopg

from conftest import Pair, wait_until

# The README's list, for a worker role :r that applies the tables of :owner.
_DOWNSTREAM_GRANTS = [
    "GRANT SET ON PARAMETER session_replication_role TO {r}",
    "GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text),"
    " pg_replication_origin_session_progress(boolean),"
    " pg_replication_origin_session_reset(),"
    " pg_replication_origin_xact_setup(pg_lsn, timestamptz),"
    " pg_replication_origin_create(text), pg_replication_origin_drop(text) TO {r}",
    "GRANT EXECUTE ON FUNCTION start_follow(text, text, boolean), stop_follow(text) TO {r}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgfollower TO {r}",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgfollower TO {r}",
    "GRANT CREATE ON SCHEMA public TO {r}",
    "GRANT {owner} TO {r}",
    # the launch reads unix_socket_directories and data_directory
    "GRANT pg_read_all_settings TO {r}",
]


def _other_sessions(conn: psycopg.Connection[Any], mine: list[int]) -> list[tuple[Any, ...]]:
    """(user, superuser?, application) of every client session in this database
    but ``mine``: the worker's."""
    return conn.execute(
        "SELECT a.usename::text, r.rolsuper, a.application_name FROM pg_stat_activity a"
        " JOIN pg_roles r ON r.oid = a.usesysid"
        " WHERE a.datname = current_database() AND a.backend_type = 'client backend'"
        "   AND a.pid <> ALL(%s)",
        [mine],
    ).fetchall()


def _roles(pair: Pair) -> tuple[str, str]:
    """The worker's role (downstream only, with the README's grants) and an
    ordinary role on both sides that it is a member of downstream."""
    suffix = pair.up.dbname[2:]
    applier, app = f"applier_{suffix}", f"app_{suffix}"
    pair.down.execute(f"CREATE ROLE {applier} LOGIN")
    for node in (pair.up, pair.down):
        node.execute(f"CREATE ROLE {app} LOGIN")
        node.execute(f"GRANT CREATE ON SCHEMA public TO {app}")
    for grant in _DOWNSTREAM_GRANTS:
        pair.down.execute(grant.format(r=applier, owner=app))
    return applier, app


def test_a_worker_role_that_is_not_superuser_follows(pair: Pair) -> None:
    applier, app = _roles(pair)
    with psycopg.connect(pair.up.cluster.dsn(pair.up.dbname, user=app), autocommit=True) as up:
        up.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        up.execute("INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 100) g")
        up.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
        up.execute("INSERT INTO notes (body) VALUES ('before')")

        down_dsn = pair.down.cluster.dsn(pair.down.dbname, user=applier)
        with psycopg.connect(down_dsn, autocommit=True) as down:
            assert down.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone() == (False,)
            down.execute("SELECT start_follow(%s, 'default', true)", [pair.up.dsn])
            wait_until(
                lambda: pair.status().get("state") == "streaming", 60, lambda: str(pair.status())
            )
            assert pair.down.rows("SELECT count(*), max(v) FROM items") == [(100, "row 99")]

            up.execute("INSERT INTO items VALUES (101, 'new')")
            up.execute("UPDATE items SET v = 'changed' WHERE id = 1")
            up.execute("DELETE FROM items WHERE id = 2")
            up.execute("ALTER TABLE notes ADD COLUMN tag text")
            up.execute("INSERT INTO notes (body, tag) VALUES ('after', 'ddl')")
            up.execute("CREATE TABLE later (id int PRIMARY KEY)")
            up.execute("INSERT INTO later VALUES (7)")
            pair.caught_up(30)

            for query in (
                "SELECT * FROM items ORDER BY id",
                "SELECT * FROM notes ORDER BY id",
                "SELECT * FROM later",
            ):
                assert pair.down.rows(query) == pair.up.rows(query), query
            owners = (
                "SELECT relname::text, pg_get_userbyid(relowner) FROM pg_class"
                " WHERE relname IN ('items', 'notes', 'later') ORDER BY 1"
            )
            assert pair.down.rows(owners) == pair.up.rows(owners)
            status = pair.status()
            assert status["state"] == "streaming" and status["last_error"] is None, status

            mine = [pair.down.conn.info.backend_pid, down.info.backend_pid]
            sessions = _other_sessions(pair.down.conn, mine)
            assert sessions, "the worker has no session downstream"
            assert {user for user, _super, _app in sessions} == {applier}, sessions
            assert not any(superuser for _user, superuser, _app in sessions), sessions

            down.execute("SELECT stop_follow()")
    assert not pair.down.rows("SELECT * FROM pgfollower.subscription")
    assert not pair.down.rows(
        "SELECT roname FROM pg_replication_origin WHERE roname LIKE 'pgf\\_%%'"
        " AND roname LIKE '%%' || (SELECT oid FROM pg_database"
        " WHERE datname = current_database()) || '\\_%%'"
    )
    assert not pair.up.rows(
        "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"
    )


def test_superusers_tables_and_ddl_with_a_worker_that_is_not_superuser(pair: Pair) -> None:
    """The documented limit: a superuser's table is applied to with grants
    (no copy), a superuser's DDL is an apply error naming the role."""
    applier, _app = _roles(pair)
    for node in (pair.up, pair.down):
        node.execute("CREATE TABLE admin_t (id int PRIMARY KEY, v text)")
    pair.down.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON admin_t TO {applier}")
    down_dsn = pair.down.cluster.dsn(pair.down.dbname, user=applier)
    with psycopg.connect(down_dsn, autocommit=True) as down:
        down.execute("SELECT start_follow(%s, 'default', false)", [pair.up.dsn])
        wait_until(
            lambda: pair.status().get("state") == "streaming", 60, lambda: str(pair.status())
        )
        pair.up.execute("INSERT INTO admin_t VALUES (1, 'one'), (2, 'two')")
        pair.up.execute("UPDATE admin_t SET v = 'uno' WHERE id = 1")
        pair.up.execute("DELETE FROM admin_t WHERE id = 2")
        pair.caught_up(30)
        assert pair.down.rows("SELECT * FROM admin_t") == [(1, "uno")]

        pair.up.execute("ALTER TABLE admin_t ADD COLUMN n int")  # as postgres
        wait_until(lambda: pair.status().get("last_error"), 30, lambda: str(pair.status()))
        error = pair.status()["last_error"]
        assert 'permission denied to set role "postgres"' in error, error
        assert (
            pair.down.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [applier]) is False
        )
        # No stop_follow here: one called while the worker restarts after the
        # error can race with it (the worker made the slot again, and a later
        # subscription found a position but no slot); the fixture kills the
        # worker first, then drops the slot and the origin.
