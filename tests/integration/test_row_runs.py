"""Runs of UPDATEs and DELETEs applied set-based: one statement per run, exactly
what the upstream changed, in its order; errors still name the row at fault."""

from __future__ import annotations

import signal

from conftest import Node, Pair, text_rows, wait_until


def _same(pair: Pair, query: str) -> list[tuple[str | None, ...]]:
    up, down = (
        sorted(text_rows(pair.up, query), key=repr),
        sorted(text_rows(pair.down, query), key=repr),
    )
    assert down == up
    return up


def _count_statements(down: Node, table: str) -> None:
    """Log each UPDATE and DELETE statement run on ``table`` downstream."""
    down.execute("CREATE TABLE IF NOT EXISTS stmts (seq serial, tbl text, op text)")
    down.execute(
        "CREATE OR REPLACE FUNCTION log_stmt() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN"
        " INSERT INTO public.stmts (tbl, op) VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END$$"
    )
    down.execute(
        f"CREATE TRIGGER log_stmt AFTER UPDATE OR DELETE ON {table}"
        " FOR EACH STATEMENT EXECUTE FUNCTION log_stmt()"
    )
    # The applier runs as a replica: only ALWAYS triggers fire for it.
    down.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER log_stmt")


def _statements(down: Node, table: str) -> dict[str, int]:
    return dict(down.rows("SELECT op, count(*) FROM stmts WHERE tbl = %s GROUP BY op", [table]))


def _failing_with(pair: Pair, text: str) -> dict[str, object]:
    return wait_until(
        lambda: (s := pair.status()).get("state") == "error" and text in str(s["last_error"]) and s,
        60,
        lambda: f"an error with {text!r}: {pair.status()}",
    )


def test_runs_go_set_based_around_a_key_change_and_a_repeated_key(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY, n int, v text)")
    pair.up.execute("INSERT INTO t SELECT g, g, 'v' || g FROM generate_series(1, 1000) g")
    pair.caught_up()
    _count_statements(pair.down, "t")
    with pair.up.conn.transaction():
        pair.up.execute("UPDATE t SET n = n + 1 WHERE id <= 400")
        # Rows 351..400 again: the run ends before the first of them, so
        # they get (n + 1) * 2, as upstream.
        pair.up.execute("UPDATE t SET n = n * 2 WHERE id > 350 AND id <= 600")
        pair.up.execute("UPDATE t SET id = -id, v = 'moved' WHERE id = 500")  # row by row
        pair.up.execute("UPDATE t SET v = v || '!' WHERE id > 450 AND id <= 700")
        pair.up.execute("DELETE FROM t WHERE id > 900")
        pair.up.execute("DELETE FROM t WHERE id BETWEEN 10 AND 20")
        pair.up.execute("DELETE FROM t WHERE id = -500")
    pair.up.execute("UPDATE t SET v = NULL WHERE id BETWEEN 100 AND 199")  # NULLs in the arrays
    pair.caught_up()
    rows = _same(pair, "SELECT id, n, v FROM t")
    assert len(rows) == 1000 - 100 - 11 - 1
    assert pair.down.rows("SELECT n FROM t WHERE id IN (350, 351, 400, 401) ORDER BY id") == [
        (351,),
        (704,),
        (802,),
        (802,),
    ]
    counts = _statements(pair.down, "t")
    # Row by row, it would be 1,100 UPDATEs and 112 DELETEs.
    assert counts["UPDATE"] <= 8, counts
    assert counts["DELETE"] <= 3, counts


def test_short_runs_and_full_identities_stay_row_by_row(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    pair.up.execute("CREATE TABLE f (a int, b text)")  # no key: the whole row finds it
    pair.up.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g")
    pair.up.execute("INSERT INTO f SELECT g % 10, 'b' FROM generate_series(1, 100) g")
    pair.caught_up()
    _count_statements(pair.down, "t")
    pair.up.execute("UPDATE t SET v = 'short' WHERE id <= 5")
    pair.up.execute("UPDATE f SET b = 'c' WHERE a < 5")
    pair.up.execute("DELETE FROM f WHERE a = 7")
    pair.caught_up()
    _same(pair, "SELECT id, v FROM t")
    _same(pair, "SELECT a, b FROM f")
    assert _statements(pair.down, "t") == {"UPDATE": 5}


def test_keys_whose_equality_is_not_identity(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE nk (k numeric PRIMARY KEY, v int)")
    pair.up.execute("CREATE TABLE fk (k float8 PRIMARY KEY, v int)")
    # 1.0, 2.00, 3.000, 4, 5.0, ...: equal to integers, each spelled its own way
    pair.up.execute(
        "INSERT INTO nk SELECT (g || rtrim('.' || repeat('0', g % 4), '.'))::numeric, g"
        " FROM generate_series(1, 100) g"
    )
    pair.up.execute("INSERT INTO fk SELECT g, g FROM generate_series(1, 99) g")
    pair.up.execute("INSERT INTO fk VALUES ('-0', 0)")
    pair.caught_up()
    with pair.up.conn.transaction():
        pair.up.execute("UPDATE nk SET v = v + 1")
        pair.up.execute("UPDATE nk SET k = 1.00 WHERE k = 1")  # equal, spelled otherwise
        pair.up.execute("UPDATE fk SET v = -v")
        pair.up.execute("UPDATE fk SET k = 0 WHERE k = 0")  # -0 becomes 0
        pair.up.execute("UPDATE nk SET v = v * 10")
        pair.up.execute("DELETE FROM nk WHERE v > 500")
        pair.up.execute("DELETE FROM fk WHERE v < -50")
    pair.caught_up()
    assert len(_same(pair, "SELECT k, v FROM nk")) == 49
    assert len(_same(pair, "SELECT k, v FROM fk")) == 51
    assert text_rows(pair.down, "SELECT k FROM nk WHERE v = 20") == [("1.00",)]
    assert text_rows(pair.down, "SELECT k FROM fk WHERE v = 0") == [("0",)]


def test_set_based_update_that_finds_no_row_names_it_and_recovers(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY, n int)")
    pair.up.execute("INSERT INTO t SELECT g, g FROM generate_series(1, 100) g")
    pair.caught_up()
    pair.down.execute("DELETE FROM t WHERE id = 42")
    pair.up.execute("UPDATE t SET n = n + 1")
    pair.up.execute("INSERT INTO t VALUES (101, 101)")
    # The set-based statement finds 99 rows; the retry goes row by row and
    # names the missing one.
    status = _failing_with(pair, "where (id) = (42)")
    assert "UPDATE found no row in" in str(status["last_error"])
    assert str(status["error_statement"]).startswith('UPDATE ONLY "public"."t" SET')
    assert "ROWS FROM" not in str(status["error_statement"])
    log = pair.down.cluster.datadir / "pg_follower_py.log"
    assert "UPDATE found 99 of the 100 rows it changes" in log.read_text()
    assert pair.down.scalar("SELECT count(*) FROM t WHERE n <> id") == 0  # nothing applied
    # it is retried, and fails the same way, at the same transaction
    first_at = status["last_error_at"]
    again = wait_until(
        lambda: (s := pair.status())["last_error_at"] != first_at and s, 30, "a retry"
    )
    assert again["error_lsn"] == status["error_lsn"]
    pair.down.execute("INSERT INTO t VALUES (42, 42)")  # the operator repairs it
    pair.caught_up(60)
    _same(pair, "SELECT id, n FROM t")
    assert pair.status()["state"] == "streaming"


def test_set_based_delete_that_finds_no_row_names_it_and_recovers(pair: Pair) -> None:
    pair.follow()
    pair.up.execute("CREATE TABLE t (a int, b text, n int, PRIMARY KEY (a, b))")
    pair.up.execute("INSERT INTO t SELECT g, 'b' || g, g FROM generate_series(1, 100) g")
    pair.caught_up()
    pair.down.execute("DELETE FROM t WHERE a = 7")
    pair.up.execute("DELETE FROM t WHERE a > 5")
    status = _failing_with(pair, "where (a, b) = (7, b7)")
    assert "DELETE found no row in" in str(status["last_error"])
    assert str(status["error_statement"]).startswith('DELETE FROM ONLY "public"."t" WHERE')
    log = pair.down.cluster.datadir / "pg_follower_py.log"
    assert "DELETE found 94 of the 95 rows it changes" in log.read_text()
    assert pair.down.scalar("SELECT count(*) FROM t") == 99
    pair.down.execute("INSERT INTO t VALUES (7, 'b7', 7)")
    pair.caught_up(60)
    assert len(_same(pair, "SELECT a, b, n FROM t")) == 5


def test_sigkill_during_a_set_based_apply_converges(pair: Pair) -> None:
    # Streamed (64kB of changes is enough), spooled, applied at commit.
    pair.up.execute(f"ALTER DATABASE {pair.up.dbname} SET logical_decoding_work_mem = '64kB'")
    pair.follow()
    rows = 200_000
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY, n int, v text)")
    pair.up.execute("INSERT INTO t SELECT g, g, md5(g::text) FROM generate_series(1, %s) g", [rows])
    pair.caught_up(120)
    pair.up.execute("UPDATE t SET n = n + 1, v = v || 'x'")
    # The applier has run a set-based UPDATE in its (uncommitted) transaction.
    wait_until(
        lambda: pair.down.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'pg_follower worker' AND backend_xid IS NOT NULL"
            " AND (query LIKE 'UPDATE ONLY %ROWS FROM%' OR query LIKE '%enable_hashjoin%')"
        ),
        120,
        "a set-based UPDATE being applied",
    )
    pair.kill_worker(signal.SIGKILL)
    assert pair.down.scalar("SELECT count(*) FROM t WHERE n <> id") == 0
    assert pair.down.scalar("SELECT start_follow_worker()") is not None
    pair.up.execute("DELETE FROM t WHERE id % 2 = 0")
    pair.caught_up(300)
    digest = "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM t"
    assert pair.down.rows(digest) == pair.up.rows(digest)
    assert pair.down.scalar("SELECT count(*) FROM t WHERE n <> id + 1") == 0
