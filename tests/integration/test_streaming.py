"""Big transactions: streamed by the upstream before they commit, applied whole.

The upstream streams a transaction once it outgrows logical_decoding_work_mem;
at 64kB (set for the test database, which its walsender obeys) a few
thousand rows are enough. The first streamed transaction at a time is applied
while it is open (not spooled); others, and one whose apply while open
fails, are spooled and applied at their commit.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import Node, Pair, wait_until

ROWS = 50_000


def stream_small_transactions(pair: Pair) -> None:
    """Make the upstream's walsender stream any transaction over 64kB of changes."""
    pair.up.execute(f"ALTER DATABASE {pair.up.dbname} SET logical_decoding_work_mem = '64kB'")


def streamed_transactions(pair: Pair) -> int:
    """How many transactions the upstream streamed to our slot so far."""
    slot = pair.status()["slot_name"]
    n = pair.up.scalar(
        "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = %s", [slot]
    )
    return int(n or 0)


def checksum(node: Node, table: str, columns: str = "id, payload") -> tuple[int, str]:
    """Row count and a digest of the table's rows in key order."""
    row = node.rows(
        f"SELECT count(*), md5(coalesce(string_agg(({columns})::text, ',' ORDER BY {columns}),"
        f" '')) FROM {table}"
    )[0]
    return int(row[0]), str(row[1])


def assert_same(pair: Pair, table: str, columns: str = "id, payload") -> int:
    up, down = checksum(pair.up, table, columns), checksum(pair.down, table, columns)
    assert down == up, f"{table}: downstream {down}, upstream {up}"
    return up[0]


def spool_dir(pair: Pair) -> Path:
    """Where the launched worker spools (its environment has no TMPDIR)."""
    pid = pair.worker_pid()
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    return Path("/tmp") / f"pg_follower_py-{uid}" / pair.status()["slot_name"]


def spooled_bytes(directory: Path) -> int:
    try:
        return sum(p.stat().st_size for p in directory.iterdir())
    except FileNotFoundError:  # a file (or the directory) deleted while we looked
        return 0


def applying_while_open(pair: Pair) -> bool:
    """Whether the worker's second connection holds an open transaction that wrote rows."""
    return bool(
        pair.down.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'pg_follower worker' AND backend_xid IS NOT NULL"
        )
    )


@pytest.fixture
def session(pair: Pair) -> Iterator[psycopg.Connection[Any]]:
    """A second upstream connection, for a transaction left open."""
    with psycopg.connect(pair.up.dsn) as conn:
        yield conn


def _wait_applied_atomically(pair: Pair, table: str, final: int) -> None:
    """Wait for ``final`` rows downstream, never seeing any count in between."""
    seen: set[int] = set()

    def arrived() -> bool:
        n = int(pair.down.scalar(f"SELECT count(*) FROM {table}"))
        seen.add(n)
        return n == final

    wait_until(arrived, 180, f"{final} rows in {table} downstream")
    assert seen <= {0, final}, f"the downstream showed part of a transaction: {sorted(seen)}"


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "sent-at-commit"])
def test_big_transaction_with_inserts_updates_deletes(pair: Pair, streamed: bool) -> None:
    if streamed:
        stream_small_transactions(pair)
        pair.follow()
    else:  # a limit set in the conninfo is the walsender's, not ours
        pair.follow(upstream=f"{pair.up.dsn} options='-c logical_decoding_work_mem=64MB'")
    pair.up.execute("CREATE TABLE big (id int PRIMARY KEY, payload text)")
    pair.caught_up()
    with pair.up.conn.transaction():
        pair.up.execute(
            "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, %s) g", [ROWS]
        )
        pair.up.execute("UPDATE big SET payload = 'updated ' || id WHERE id % 7 = 0")
        pair.up.execute("DELETE FROM big WHERE id % 11 = 0")
        pair.up.execute("UPDATE big SET id = id + 1000000 WHERE id % 13 = 0")  # key changes
    final = int(pair.up.scalar("SELECT count(*) FROM big"))
    _wait_applied_atomically(pair, "big", final)
    pair.caught_up(120)
    assert assert_same(pair, "big") == final
    assert (streamed_transactions(pair) > 0) == streamed
    assert list(spool_dir(pair).iterdir()) == []


def test_a_10mb_transaction_is_streamed_by_default(pair: Pair) -> None:
    """Our walsender streams past 8MB (STREAMING_WORK_MEM_KB), not the default 64MB."""
    pair.follow()
    pair.up.execute("CREATE TABLE big (id int PRIMARY KEY, payload text)")
    pair.caught_up()
    pair.up.execute("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 60000) g")
    _wait_applied_atomically(pair, "big", 60_000)
    assert assert_same(pair, "big") == 60_000
    assert streamed_transactions(pair) == 1


def test_aborted_big_transaction_leaves_nothing(
    pair: Pair, session: psycopg.Connection[Any]
) -> None:
    stream_small_transactions(pair)
    pair.follow()
    pair.up.execute("CREATE TABLE big (id int PRIMARY KEY, payload text)")
    pair.caught_up()
    spool = spool_dir(pair)
    session.execute("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, %s) g", [ROWS])
    # It is being applied downstream before the upstream even decides.
    wait_until(lambda: applying_while_open(pair), 60, "the transaction applied while open")
    assert pair.down.scalar("SELECT count(*) FROM big") == 0
    session.rollback()
    pair.up.execute("INSERT INTO big VALUES (0, 'after')")
    pair.caught_up(60)
    assert pair.down.rows("SELECT id, payload FROM big") == [(0, "after")]
    assert streamed_transactions(pair) == 1
    assert list(spool.iterdir()) == []


def test_rollback_to_savepoint_in_a_streamed_transaction(pair: Pair) -> None:
    stream_small_transactions(pair)
    pair.follow()
    pair.up.execute("CREATE TABLE big (id int PRIMARY KEY, payload text)")
    pair.caught_up()
    ins = "INSERT INTO big SELECT g, %s || g FROM generate_series(%s::int, %s::int) g"
    up = pair.up
    with up.conn.transaction():
        up.execute(ins, ["top ", 1, 10_000])
        up.execute("SAVEPOINT a")
        up.execute(ins, ["a ", 10_001, 20_000])
        up.execute("SAVEPOINT b")
        up.execute(ins, ["b ", 20_001, 30_000])
        up.execute("UPDATE big SET payload = 'b touched' WHERE id <= 5000")
        up.execute("ROLLBACK TO SAVEPOINT b")  # b's rows and update go; a's stay
        up.execute(ins, ["after b ", 30_001, 31_000])
        up.execute("RELEASE SAVEPOINT a")
        up.execute("SAVEPOINT c")
        up.execute("SAVEPOINT d")
        up.execute(ins, ["d ", 40_001, 50_000])
        up.execute("RELEASE SAVEPOINT d")
        up.execute("DELETE FROM big WHERE id <= 2000")
        up.execute("ROLLBACK TO SAVEPOINT c")  # c and its released child d go
        up.execute("UPDATE big SET payload = 'kept' WHERE id % 1000 = 0")
        up.execute(ins, ["top again ", 50_001, 52_000])
    expected = 10_000 + 10_000 + 1_000 + 2_000
    assert up.scalar("SELECT count(*) FROM big") == expected
    _wait_applied_atomically(pair, "big", expected)
    pair.caught_up(120)
    assert assert_same(pair, "big") == expected
    assert pair.down.scalar("SELECT count(*) FROM big WHERE payload LIKE 'b %%'") == 0
    assert pair.down.scalar("SELECT count(*) FROM big WHERE payload = 'kept'") == 21
    assert streamed_transactions(pair) == 1


def test_interleaved_big_transactions_commit_in_the_other_order(pair: Pair) -> None:
    stream_small_transactions(pair)
    pair.follow()
    pair.up.execute("CREATE TABLE shared (id int, payload text)")  # no key: order matters
    pair.caught_up()
    ins = "INSERT INTO {} SELECT g, %s || g FROM generate_series(%s::int, %s::int) g"
    with psycopg.connect(pair.up.dsn) as first, psycopg.connect(pair.up.dsn) as second:
        first.execute("CREATE TABLE from_first (id int PRIMARY KEY, payload text)")
        second.execute("CREATE TABLE from_second (id int PRIMARY KEY, payload text)")
        # 2,000 rows a statement stream at 64kB; every UPDATE of the keyless
        # table scans it, so more rows only cost time
        for n in range(3):  # alternate, so that their stream blocks alternate
            lo, hi = n * 2_000 + 1, (n + 1) * 2_000
            first.execute(ins.format("from_first"), ["first ", lo, hi])
            first.execute(ins.format("shared"), ["first ", lo, hi])
            second.execute(ins.format("from_second"), ["second ", lo, hi])
            second.execute(ins.format("shared"), ["second ", lo, hi])
        second.commit()
        # The first now sees the second's rows and changes them: applied in
        # the wrong order, these updates would find nothing downstream.
        first.execute(
            "UPDATE shared SET payload = 'first saw ' || id WHERE payload LIKE 'second %%'"
        )
        first.execute("DROP TABLE from_second")
        first.execute(ins.format("from_first"), ["first late ", 6_001, 6_200])
        first.commit()
    pair.caught_up(180)
    assert pair.down.scalar("SELECT to_regclass('from_second')") is None
    assert assert_same(pair, "from_first") == 6_200
    assert assert_same(pair, "shared") == 12_000
    assert (
        pair.down.scalar("SELECT count(*) FROM shared WHERE payload LIKE 'first saw %%'") == 6_000
    )
    assert streamed_transactions(pair) == 2


def test_ddl_inside_a_streamed_transaction_is_applied_in_place(pair: Pair) -> None:
    stream_small_transactions(pair)
    pair.follow()
    pair.up.execute("CREATE TABLE old (id int PRIMARY KEY, payload text)")
    pair.caught_up()
    up = pair.up
    with up.conn.transaction():
        up.execute("INSERT INTO old SELECT g, 'old ' || g FROM generate_series(1, 20000) g")
        up.execute("CREATE TABLE new (id int PRIMARY KEY, payload text NOT NULL)")
        up.execute("INSERT INTO new SELECT id, payload || ' moved' FROM old")
        up.execute("DROP TABLE old")
        up.execute("CREATE TABLE old (id int PRIMARY KEY, payload text)")  # new oid, same name
        up.execute("INSERT INTO old SELECT g, 'recreated' FROM generate_series(1, 10) g")
    pair.caught_up(120)
    assert assert_same(pair, "new") == 20_000
    assert assert_same(pair, "old") == 10
    assert pair.down.scalar(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'new'::regclass"
        " AND attname = 'payload'"
    )
    assert streamed_transactions(pair) == 1


def test_sigkill_while_streaming_after_confirming_past_it(
    pair: Pair, session: psycopg.Connection[Any]
) -> None:
    """Killed mid-stream, with the slot confirmed past the open transaction's changes."""
    stream_small_transactions(pair)
    pair.follow()
    pair.up.execute("CREATE TABLE events (id int, payload text)")  # no key: dupes would show
    pair.caught_up()
    spool = spool_dir(pair)
    session.execute("INSERT INTO events SELECT g, 'big ' || g FROM generate_series(1, 30000) g")
    streamed_to = pair.up.scalar("SELECT pg_current_wal_lsn()")
    wait_until(lambda: applying_while_open(pair), 60, "the open transaction applied while open")
    # Others commit meanwhile: the slot moves past the open transaction's changes.
    pair.up.execute("INSERT INTO events VALUES (-1, 'small')")
    pair.caught_up(60)
    slot = pair.status()["slot_name"]
    wait_until(
        lambda: pair.up.scalar(
            "SELECT confirmed_flush_lsn > %s::pg_lsn FROM pg_replication_slots"
            " WHERE slot_name = %s",
            [streamed_to, slot],
        ),
        30,
        f"the slot confirmed past {streamed_to}",
    )
    pair.kill_worker(signal.SIGKILL)
    session.execute("INSERT INTO events SELECT g, 'big ' || g FROM generate_series(30001, 40000) g")
    assert pair.down.scalar("SELECT start_follow_worker()") is not None
    session.execute("INSERT INTO events SELECT g, 'big ' || g FROM generate_series(40001, 50000) g")
    session.commit()
    pair.caught_up(180)
    assert assert_same(pair, "events") == 50_001
    assert (
        pair.down.scalar(
            "SELECT count(*) FROM (SELECT id FROM events GROUP BY id HAVING count(*) > 1) d"
        )
        == 0
    )
    assert list(spool.iterdir()) == []


def test_sigkill_while_a_streamed_transaction_is_applied(pair: Pair) -> None:
    stream_small_transactions(pair)
    pair.follow()
    pair.up.execute("CREATE TABLE events (id int, payload text)")
    pair.caught_up()
    rows = 300_000
    pair.up.execute(
        "INSERT INTO events SELECT g, md5(g::text) FROM generate_series(1, %s) g", [rows]
    )
    # The apply transaction has written rows (so has an xid) but not committed.
    wait_until(lambda: applying_while_open(pair), 120, "the streamed transaction being applied")
    pair.kill_worker(signal.SIGKILL)
    assert pair.down.scalar("SELECT count(*) FROM events") == 0
    assert pair.down.scalar("SELECT start_follow_worker()") is not None
    pair.up.execute("INSERT INTO events VALUES (0, 'after')")
    pair.caught_up(300)
    assert assert_same(pair, "events") == rows + 1
    assert (
        pair.down.scalar(
            "SELECT count(*) FROM (SELECT id FROM events GROUP BY id HAVING count(*) > 1) d"
        )
        == 0
    )


def test_a_transaction_applied_while_open_commits_with_its_position(pair: Pair) -> None:
    """Its data and the origin's position commit together: a worker killed
    right after it applies nothing twice."""
    stream_small_transactions(pair)
    pair.follow()
    pair.up.execute("CREATE TABLE big (id int PRIMARY KEY, payload text)")
    pair.caught_up()
    before = pair.up.scalar("SELECT pg_current_wal_lsn()")
    pair.up.execute("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, %s) g", [ROWS])
    pair.caught_up(120)
    assert streamed_transactions(pair) == 1
    origin_at = pair.down.scalar(
        "SELECT remote_lsn FROM pg_replication_origin_status s"
        " JOIN pgfollower.subscription sub ON sub.origin_name = s.external_id"
    )
    assert pair.up.scalar("SELECT %s::pg_lsn > %s::pg_lsn", [origin_at, before])
    pair.kill_worker(signal.SIGKILL)
    assert pair.down.scalar("SELECT start_follow_worker()") is not None
    pair.up.execute("INSERT INTO big VALUES (0, 'after')")
    pair.caught_up(120)
    assert assert_same(pair, "big") == ROWS + 1
    assert pair.status()["state"] == "streaming"


def test_a_failed_apply_while_open_is_sent_again_and_spooled(
    pair: Pair, session: psycopg.Connection[Any]
) -> None:
    """A row only the downstream has makes the apply while open fail: the
    worker starts over, the upstream sends the transaction again, and this
    time it is spooled; applied at commit it fails the same way, as an apply
    error, until the row goes; then it lands once, whole."""
    stream_small_transactions(pair)
    pair.follow()
    pair.up.execute("CREATE TABLE big (id int PRIMARY KEY, payload text)")
    pair.caught_up()
    # Early in the rows: in the first COPY batch the apply while open sends
    # (the last rows of an open transaction may wait for its next change).
    pair.down.execute("INSERT INTO big VALUES (10, 'only downstream')")
    spool = spool_dir(pair)
    session.execute("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, %s) g", [ROWS])
    # Sent again while still open: spooled this time.
    wait_until(
        lambda: spooled_bytes(spool) > 1_000_000,
        120,
        lambda: f"the transaction spooled ({spooled_bytes(spool)} bytes; {pair.status()})",
    )
    session.execute(
        "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(%s, %s) g",
        [ROWS + 1, ROWS + 5_000],
    )
    session.commit()
    wait_until(lambda: pair.status()["state"] == "error", 120, "the apply error")
    assert "duplicate key" in pair.status()["last_error"]
    assert pair.down.scalar("SELECT count(*) FROM big") == 1
    pair.down.execute("DELETE FROM big")
    pair.caught_up(180)
    assert assert_same(pair, "big") == ROWS + 5_000
    assert pair.status()["state"] == "streaming"
    assert list(spool.iterdir()) == []
