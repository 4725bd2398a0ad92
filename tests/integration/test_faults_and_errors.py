"""Crash safety, error reporting, stop_follow and secrecy of passwords."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest

from conftest import Pair, wait_until
from pg_follower.ops.cluster import free_port

SECRET = "S3cret-Pw-7f1d"


def _no_duplicates_and_identical(pair: Pair, table: str) -> int:
    query = f"SELECT id, payload FROM {table} ORDER BY id"
    up, down = pair.up.rows(query), pair.down.rows(query)
    assert len(down) == len(up), f"downstream has {len(down)} rows, upstream {len(up)}"
    assert down == up
    dupes = pair.down.rows(f"SELECT id FROM {table} GROUP BY id HAVING count(*) > 1")
    assert dupes == []
    return len(up)


def test_sigkill_during_a_stream_of_small_transactions(pair: Pair) -> None:
    pair.follow()
    # No key: a transaction applied twice would show as duplicate rows.
    pair.up.execute("CREATE TABLE events (id int, payload text)")
    pair.caught_up()
    total = 3000
    done = threading.Event()

    def write() -> None:
        with psycopg.connect(pair.up.dsn, autocommit=True) as conn:
            for i in range(1, total + 1):
                conn.execute("INSERT INTO events VALUES (%s, %s)", [i, f"row {i}"])
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for kill_at in (300, 1200):
            wait_until(
                lambda n=kill_at: pair.down.scalar("SELECT count(*) FROM events") >= n,
                60,
                f"{kill_at} rows downstream",
            )
            pair.kill_worker(signal.SIGKILL)
            assert pair.down.scalar("SELECT start_follow_worker()") is not None
    finally:
        writer.join()
    assert done.is_set()
    pair.caught_up(60)
    assert _no_duplicates_and_identical(pair, "events") == total


def test_restarted_worker_resumes_where_it_stopped(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE events (id int, payload text)")
    pair.up.execute("INSERT INTO events SELECT g, 'a' FROM generate_series(1, 100) g")
    pair.caught_up()
    pair.kill_worker(signal.SIGTERM)
    assert pair.status()["state"] == "stopped"
    pair.up.execute("INSERT INTO events SELECT g, 'b' FROM generate_series(101, 200) g")
    pair.up.execute("UPDATE events SET payload = 'c' WHERE id <= 10")
    assert pair.down.scalar("SELECT start_follow_worker()") is not None
    pair.caught_up()
    assert _no_duplicates_and_identical(pair, "events") == 200


def test_malformed_conninfo_is_an_error_and_stores_nothing(pair: Pair) -> None:
    with pytest.raises(psycopg.errors.Error) as info:
        pair.down.execute(f"SELECT start_follow('host=localhost prot=5432 password={SECRET}')")
    assert 'invalid connection option "prot"' in str(info.value)
    assert SECRET not in str(info.value)
    # After a password, the parser names a position, never a token: it may be the secret.
    with pytest.raises(psycopg.errors.Error) as info:
        pair.down.execute(f"SELECT start_follow('host=localhost password={SECRET} prot')")
    assert "invalid upstream conninfo" in str(info.value)
    assert SECRET not in str(info.value)
    assert pair.down.scalar("SELECT count(*) FROM pgfollower.subscription") == 0
    assert pair.down.scalar("SELECT count(*) FROM pgfollower.subscription_status") == 0
    assert pair.down.scalar("SELECT count(*) FROM pg_replication_origin") == 0


def test_duplicate_name_is_an_error(pair: Pair) -> None:
    pair.follow()
    with pytest.raises(psycopg.errors.Error, match='subscription "default" already exists'):
        pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
    assert pair.down.scalar("SELECT count(*) FROM pgfollower.subscription") == 1


def test_unreachable_upstream_shows_as_an_error_within_15_seconds(pair: Pair) -> None:
    port = free_port()  # nothing listens there
    pair.down.execute(
        "SELECT start_follow(%s, 'nowhere')",
        [f"host=127.0.0.1 port={port} dbname=postgres user=postgres connect_timeout=5"],
    )
    status = wait_until(
        lambda: pair.down.rows(
            "SELECT state, last_error FROM follow_status WHERE name = 'nowhere'"
            " AND last_error IS NOT NULL"
        ),
        15,
        "the error in follow_status",
    )
    state, error = status[0]
    assert state == "error"
    assert "cannot connect to the upstream" in error
    assert str(port) in error


def test_stop_follow_removes_slot_origin_and_publication(pair: Pair) -> None:
    pair.follow()
    slot = pair.status()["slot_name"]
    assert pair.up.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [slot])
    pair.down.execute("SELECT stop_follow()")
    assert pair.down.scalar("SELECT count(*) FROM follow_status") == 0
    assert (
        pair.up.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [slot])
        == 0
    )
    assert pair.up.scalar("SELECT count(*) FROM pg_publication") == 0
    assert pair.down.scalar("SELECT count(*) FROM pg_replication_origin") == 0


def test_idle_upstream_still_advances_applied_lsn(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY)")
    pair.caught_up()
    # WAL from another database only: our slot must still move on.
    with psycopg.connect(pair.up.cluster.dsn("postgres"), autocommit=True) as other:
        other.execute("CREATE TABLE IF NOT EXISTS noise (x int)")
        other.execute("INSERT INTO noise SELECT generate_series(1, 1000)")
        other.execute("DROP TABLE noise")
        target = other.execute("SELECT pg_current_wal_lsn()").fetchone()
    assert target is not None
    slot = pair.status()["slot_name"]
    wait_until(
        lambda: pair.up.scalar(
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots"
            " WHERE slot_name = %s",
            [target[0], slot],
        ),
        30,
        "the slot's confirmed position to pass the other database's WAL",
    )
    pair.caught_up()


def test_password_never_shown(pair: Pair) -> None:
    up = pair.up.cluster
    pair.up.execute(f"CREATE ROLE follower LOGIN SUPERUSER REPLICATION PASSWORD '{SECRET}'")
    up.prepend_hba("host all,replication follower 127.0.0.1/32 scram-sha-256")
    conninfo = (
        f"host=127.0.0.1 port={up.port} dbname={pair.up.dbname} user=follower password={SECRET}"
    )
    try:
        pair.down.execute("SELECT start_follow(%s)", [conninfo])
        wait_until(lambda: pair.status().get("state") == "streaming", 30, "streaming")
        pair.up.execute("CREATE TABLE secret_test (id int PRIMARY KEY)")
        pair.up.execute("INSERT INTO secret_test VALUES (1)")
        pair.caught_up()
        assert pair.down.scalar("SELECT count(*) FROM secret_test") == 1

        status = pair.status()
        assert SECRET not in repr(status)
        assert "user=follower" in status["upstream"]
        worker_log = pair.down.cluster.datadir / "pg_follower_py.log"
        for log in (worker_log, up.logfile, pair.down.cluster.logfile):
            text = subprocess.run(["cat", str(log)], capture_output=True, text=True).stdout
            assert SECRET not in text, f"password in {log}"
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                assert SECRET.encode() not in cmdline.read_bytes(), f"password in {cmdline}"
            except OSError:
                continue
        apps = pair.up.rows(
            "SELECT application_name FROM pg_stat_activity WHERE usename = 'follower'"
        )
        assert apps and all(a == ("pg_follower worker",) for a in apps)
    finally:
        pair.kill_worker()
        pair.down.execute("DELETE FROM pgfollower.subscription")
        pair.up.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE database = current_database()"
        )
        pair.up.execute("DROP ROLE follower")
