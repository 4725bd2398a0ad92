"""Apply errors stop the subscription at the failing transaction; only the
operator's skip_transaction() moves past it."""

from __future__ import annotations

import psycopg
import pytest

from conftest import Pair, wait_until


def _failing(pair: Pair) -> dict[str, object]:
    return wait_until(
        lambda: (s := pair.status()).get("state") == "error" and s.get("error_lsn") and s,
        30,
        "the subscription to stop on the conflict",
    )


def _conflict(pair: Pair) -> dict[str, object]:
    """A row written downstream by someone else collides with an upstream insert."""
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    pair.up.execute("INSERT INTO t VALUES (1, 'before')")
    pair.caught_up()
    pair.down.execute("INSERT INTO t VALUES (2, 'written downstream')")
    with pair.up.conn.transaction():
        pair.up.execute("INSERT INTO t VALUES (3, 'same transaction')")
        pair.up.execute("INSERT INTO t VALUES (2, 'upstream')")
    pair.up.execute("INSERT INTO t VALUES (4, 'after')")
    return _failing(pair)


def test_conflict_stops_at_the_transaction_and_shows_it(pair: Pair) -> None:
    pair.follow()
    status = _conflict(pair)
    assert "duplicate key value violates unique constraint" in str(status["last_error"])
    assert "SQLSTATE 23505" in str(status["last_error"])
    assert str(status["error_statement"]).startswith("COPY")
    # nothing of the failing transaction, nor of later ones, is applied
    assert pair.down.rows("SELECT id FROM t ORDER BY id") == [(1,), (2,)]
    # it is retried, and fails the same way, at the same transaction
    first_at = status["last_error_at"]
    again = wait_until(
        lambda: (s := pair.status())["last_error_at"] != first_at and s, 30, "a retry"
    )
    assert again["error_lsn"] == status["error_lsn"]
    # the operator repairs the downstream: the retry goes through by itself
    pair.down.execute("DELETE FROM t WHERE id = 2")
    pair.caught_up(60)
    assert pair.down.rows("SELECT id, v FROM t ORDER BY id") == pair.up.rows(
        "SELECT id, v FROM t ORDER BY id"
    )
    assert pair.status()["state"] == "streaming"


def test_skip_transaction_skips_exactly_the_failing_one(pair: Pair) -> None:
    pair.follow()
    status = _conflict(pair)
    lsn = status["error_lsn"]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="is failing at") as excinfo:
        pair.down.execute("SELECT skip_transaction('0/1')")
    assert f"SELECT skip_transaction('{lsn}', 'default')" in str(excinfo.value.diag.message_hint)
    with pytest.raises(psycopg.errors.UndefinedObject, match="no subscription named 'nope'"):
        pair.down.execute("SELECT skip_transaction(%s, 'nope')", [lsn])
    notices: list[str] = []
    pair.down.conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    pair.down.execute("SELECT skip_transaction(%s)", [lsn])
    assert any("will skip the upstream transaction committed at" in n for n in notices)
    pair.caught_up(60)
    # the skipped transaction's rows (3 and the upstream's 2) are missing; the rest is there
    assert pair.down.rows("SELECT id, v FROM t ORDER BY id") == [
        (1, "before"),
        (2, "written downstream"),
        (4, "after"),
    ]
    status = pair.status()
    assert status["state"] == "streaming"
    assert status["skip_lsn"] is None
    # once past it, nothing is failing, so there is nothing to skip
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no failing transaction"):
        pair.down.execute("SELECT skip_transaction(%s)", [lsn])
    # and the restarted worker does not skip anything again
    pair.kill_worker()
    pair.down.execute("SELECT start_follow_worker()")
    pair.up.execute("INSERT INTO t VALUES (5, 'later')")
    pair.caught_up(30)
    assert pair.down.scalar("SELECT count(*) FROM t") == 4
