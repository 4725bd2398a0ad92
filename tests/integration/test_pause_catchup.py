"""pause_follow / resume_follow, wait_for_catchup and the counters of follow_status."""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg
import pytest

from conftest import Pair, wait_until
from pg_follower.ops.cluster import Cluster


def _slot(pair: Pair) -> dict[str, Any]:
    slot = pair.down.scalar("SELECT slot_name FROM pgfollower.subscription")
    cur = pair.up.conn.execute(
        "SELECT active, restart_lsn, confirmed_flush_lsn FROM pg_replication_slots"
        " WHERE slot_name = %s",
        [slot],
    )
    row = cur.fetchone()
    assert row is not None, f"slot {slot} is gone from the upstream"
    return dict(zip(["active", "restart_lsn", "confirmed_flush_lsn"], row, strict=True))


def _error(pair: Pair, query: str) -> tuple[str, str | None, float]:
    started = time.monotonic()
    with pytest.raises(psycopg.Error) as info:
        pair.down.execute(query)
    diag = info.value.diag
    return str(diag.message_primary), diag.message_hint, time.monotonic() - started


def test_pause_keeps_the_slot_applies_nothing_and_survives_a_restart(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE items (id int PRIMARY KEY)")
    pair.up.execute("INSERT INTO items VALUES (1)")
    pair.caught_up()
    pair.down.execute("SELECT pause_follow()")
    assert pair.down.scalar("SELECT paused FROM pgfollower.subscription")
    wait_until(lambda: pair.status()["state"] == "paused", 20, pair.status)
    # the stream is closed: the slot stays, inactive, and nothing can be applied
    wait_until(lambda: not _slot(pair)["active"], 20, lambda: str(_slot(pair)))
    pair.up.execute("INSERT INTO items SELECT g FROM generate_series(2, 100) g")
    kept = _slot(pair)

    # a paused subscription cannot catch up: an error at once, not at the timeout
    message, hint, took = _error(pair, "SELECT wait_for_catchup('default', '30s')")
    assert message == (
        'plpy.Error: subscription "default" is paused: it does not catch up until it is resumed'
    )
    assert hint and "resume_follow('default')" in hint
    assert took < 10

    # the pause is in the catalog: a new worker starts paused
    pair.kill_worker()
    assert pair.status()["state"] == "paused"  # no worker, still paused
    started = pair.down.scalar("SELECT now()")
    assert pair.down.scalar("SELECT start_follow_worker()")
    # the new worker's status writes (it must not stream)
    wait_until(lambda: pair.status()["updated_at"] > started, 20, pair.status)
    assert pair.status()["state"] == "paused"
    assert not _slot(pair)["active"]
    assert _slot(pair)["confirmed_flush_lsn"] == kept["confirmed_flush_lsn"]
    assert pair.down.scalar("SELECT count(*) FROM items") == 1

    pair.down.execute("SELECT resume_follow()")
    pair.down.execute("SELECT wait_for_catchup()")
    assert pair.down.scalar("SELECT count(*) FROM items") == 100
    assert pair.status()["state"] == "streaming"


def test_pause_and_resume_refusals_and_notices(pair: Pair) -> None:
    message, hint, _ = _error(pair, "SELECT pause_follow('nope')")
    assert message == "pg_follower_py: there is no subscription named 'nope'"
    assert hint and "follow_status" in hint
    message, _, _ = _error(pair, "SELECT wait_for_catchup('nope')")
    assert message == 'plpy.Error: subscription "nope" does not exist'
    notices: list[str] = []
    pair.down.conn.add_notice_handler(lambda d: notices.append(str(d.message_primary)))
    pair.down.execute("SET pg_follower_py.launch_worker = off")
    pair.down.execute("SELECT start_follow('host=/nonexistent', 'x', false)")
    pair.down.execute("SELECT resume_follow('x')")
    assert "pg_follower_py: subscription 'x' is already not paused" in notices
    pair.down.execute("SELECT pause_follow('x')")
    pair.down.execute("SELECT pause_follow('x')")
    assert "pg_follower_py: subscription 'x' is already paused" in notices
    with pair.down.conn.transaction():
        pair.down.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        message, _, took = _error(pair, "SELECT wait_for_catchup('x', '30s')")
    assert message == (
        "plpy.Error: wait_for_catchup cannot wait in a REPEATABLE READ transaction:"
        " it would never see the worker's progress"
    )
    assert took < 10
    pair.down.execute("DELETE FROM pgfollower.subscription")


def test_wait_for_catchup_timeout_names_target_position_and_distance(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE items (id int PRIMARY KEY)")
    pair.down.execute("SELECT wait_for_catchup()")
    pair.kill_worker()  # nobody applies what follows
    pair.up.execute("INSERT INTO items SELECT g FROM generate_series(1, 1000) g")
    written = pair.up.scalar("SELECT pg_current_wal_lsn()")
    message, hint, took = _error(pair, "SELECT wait_for_catchup('default', '1s')")
    assert 1 <= took < 15
    flushed = pair.down.scalar("SELECT flushed_lsn FROM follow_status")
    match = re.fullmatch(
        r'plpy\.Error: subscription "default" did not catch up with the upstream within 1 s:'
        r" the target was (\S+), the upstream's WAL position at the call;"
        rf" it has applied up to {flushed}, (\d+) bytes behind \((.*)\)",
        message,
    )
    assert match, message
    target, behind = match.group(1), int(match.group(2))
    # the upstream's position when the function ran: at or after our writes
    assert pair.up.scalar("SELECT %s::pg_lsn >= %s::pg_lsn", [target, written])
    assert behind == pair.up.scalar("SELECT pg_wal_lsn_diff(%s, %s)", [target, flushed]) > 0
    assert "state stopped: no worker is running for this database" in message
    assert hint and "follow_status" in hint


def test_wait_for_catchup_returns_when_other_databases_moved_the_wal(
    pair: Pair, clusters: tuple[Cluster, Cluster]
) -> None:
    """The upstream's WAL moved by another database has nothing for us: the
    worker's flushed position follows the keepalives, the wait ends."""
    pair.follow()
    pair.up.execute("CREATE TABLE items (id int PRIMARY KEY)")
    pair.down.execute("SELECT wait_for_catchup()")
    with psycopg.connect(clusters[0].dsn("postgres"), autocommit=True) as other:
        noise = f"noise_{pair.up.dbname}"
        other.execute(f"CREATE TABLE {noise} (v text)")
        other.execute(f"INSERT INTO {noise} SELECT repeat('x', 100) FROM generate_series(1, 20000)")
        other.execute(f"DROP TABLE {noise}")
    before = pair.down.scalar("SELECT flushed_lsn FROM follow_status")
    started = time.monotonic()
    target = pair.down.scalar("SELECT wait_for_catchup('default', '30s')")
    assert time.monotonic() - started < 20
    assert pair.down.scalar("SELECT %s::pg_lsn > %s::pg_lsn", [target, before])
    assert pair.down.scalar("SELECT flushed_lsn >= %s::pg_lsn FROM follow_status", [target])


def test_counters_count_committed_transactions_and_rows(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE items (id int PRIMARY KEY, v int)")
    pair.down.execute("SELECT wait_for_catchup()")
    wait_until(lambda: pair.status()["updated_at"] is not None, 10, pair.status)
    before = pair.status()
    assert before["counters_since"] is not None
    for i in range(10):
        pair.up.execute(
            "INSERT INTO items SELECT g, 0 FROM generate_series(%s::int, %s::int) g",
            [i * 5 + 1, i * 5 + 5],
        )
    pair.up.execute("UPDATE items SET v = 1 WHERE id <= 3")
    pair.up.execute("DELETE FROM items WHERE id > 48")
    pair.down.execute("SELECT wait_for_catchup()")

    def counted() -> dict[str, Any] | None:
        st = pair.status()
        done = st["transactions_applied"] - before["transactions_applied"] >= 12
        return st if done else None

    after = wait_until(counted, 10, pair.status)
    assert after["transactions_applied"] - before["transactions_applied"] == 12
    assert after["rows_applied"] - before["rows_applied"] == 50 + 3 + 2
    assert after["counters_since"] == before["counters_since"]
    # the counters are kept across worker restarts
    pair.kill_worker()
    assert pair.down.scalar("SELECT start_follow_worker()")
    wait_until(lambda: pair.status()["state"] == "streaming", 20, pair.status)
    pair.up.execute("INSERT INTO items VALUES (1000, 0)")
    pair.down.execute("SELECT wait_for_catchup()")
    wait_until(lambda: pair.status()["rows_applied"] == after["rows_applied"] + 1, 10, pair.status)
    assert pair.status()["transactions_applied"] == after["transactions_applied"] + 1


def test_stop_follow_of_a_paused_subscription_drops_its_slot(pair: Pair) -> None:
    pair.follow()
    slot = pair.down.scalar("SELECT slot_name FROM pgfollower.subscription")
    pair.down.execute("SELECT pause_follow()")
    wait_until(lambda: pair.status()["state"] == "paused", 20, pair.status)
    warnings: list[str] = []
    pair.down.conn.add_notice_handler(lambda d: warnings.append(str(d.message_primary)))
    pair.down.execute("SELECT stop_follow()")
    assert not [w for w in warnings if "could not drop" in w], warnings
    assert not pair.up.scalar(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [slot]
    )
    assert pair.down.scalar("SELECT count(*) FROM follow_status") == 0
