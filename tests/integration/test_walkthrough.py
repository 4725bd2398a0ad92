"""The seed walkthrough and the basic DML shapes, through psql-level SQL only."""

from __future__ import annotations

from pathlib import Path

from conftest import Pair, wait_until


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def test_seed_walkthrough(pair: Pair) -> None:
    pair.follow()
    pid = pair.worker_pid()
    assert pid is not None
    assert _cmdline(pid) == "pg_follower worker"
    apps = pair.down.rows(
        "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name LIKE 'pg_follower%'"
    )
    assert apps == [("pg_follower worker",)]

    pair.up.execute("CREATE TABLE foo (id int)")
    pair.up.execute("INSERT INTO foo VALUES (generate_series(1, 20))")
    wait_until(
        lambda: (
            pair.down.scalar("SELECT to_regclass('public.foo') IS NOT NULL")
            and pair.down.scalar("SELECT count(*) FROM foo") == 20
        ),
        10,
        "the 20 rows downstream",
    )
    assert pair.down.rows("SELECT id FROM foo ORDER BY id") == [(i,) for i in range(1, 21)]


def test_update_and_delete_with_primary_key(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)")
    pair.up.execute("INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 50) g")
    pair.up.execute("UPDATE items SET qty = qty * 10 WHERE id % 2 = 0")
    pair.up.execute("UPDATE items SET id = id + 1000 WHERE id = 7")  # the key itself changes
    pair.up.execute("UPDATE items SET name = NULL WHERE id = 3")
    pair.up.execute("DELETE FROM items WHERE id > 40")
    pair.caught_up()
    query = "SELECT id, name, qty FROM items ORDER BY id"
    assert pair.down.rows(query) == pair.up.rows(query)
    assert pair.down.scalar("SELECT count(*) FROM items") == 39


def test_update_and_delete_without_primary_key(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE nokey (a int, b text)")
    pair.up.execute("INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (2, 'y'), (3, NULL)")
    pair.up.execute("UPDATE nokey SET b = 'z' WHERE a = 2")
    pair.up.execute("DELETE FROM nokey WHERE a = 3")
    pair.up.execute("DELETE FROM nokey WHERE ctid = (SELECT min(ctid) FROM nokey WHERE a = 1)")
    pair.caught_up()
    query = "SELECT a, b FROM nokey ORDER BY a, b"
    assert pair.down.rows(query) == pair.up.rows(query) == [(1, "x"), (2, "z")]


def test_truncate(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE t1 (id serial PRIMARY KEY, v int)")
    pair.up.execute("CREATE TABLE t2 (id int PRIMARY KEY, v int)")
    pair.up.execute("INSERT INTO t1 (v) SELECT generate_series(1, 10)")
    pair.up.execute("INSERT INTO t2 SELECT g, g FROM generate_series(1, 10) g")
    pair.caught_up()
    assert pair.down.scalar("SELECT count(*) FROM t1") == 10
    pair.up.execute("TRUNCATE t1, t2")
    pair.up.execute("INSERT INTO t2 VALUES (99, 99)")
    pair.caught_up()
    assert pair.down.scalar("SELECT count(*) FROM t1") == 0
    assert pair.down.rows("SELECT id, v FROM t2") == [(99, 99)]


def test_drop_table(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE doomed (id int PRIMARY KEY)")
    pair.up.execute("CREATE TABLE kept (id int PRIMARY KEY)")
    pair.caught_up()
    assert pair.down.scalar("SELECT to_regclass('public.doomed') IS NOT NULL")
    pair.up.execute("DROP TABLE doomed")
    pair.caught_up()
    assert pair.down.scalar("SELECT to_regclass('public.doomed')") is None
    assert pair.down.scalar("SELECT to_regclass('public.kept') IS NOT NULL")


def test_ddl_and_dml_in_one_transaction_keep_their_order(pair: Pair) -> None:
    pair.follow()
    with pair.up.conn.transaction():
        pair.up.execute("CREATE TABLE s1 (id int PRIMARY KEY, v text)")
        pair.up.execute("INSERT INTO s1 VALUES (1, 'a'), (2, 'b')")
        pair.up.execute("CREATE TABLE s2 (id int)")
        pair.up.execute("INSERT INTO s2 SELECT id FROM s1")
        pair.up.execute("DROP TABLE s1")
    pair.caught_up()
    assert pair.down.scalar("SELECT to_regclass('public.s1')") is None
    assert pair.down.rows("SELECT id FROM s2 ORDER BY id") == [(1,), (2,)]
