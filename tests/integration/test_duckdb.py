"""``pg-follower duckdb``: an embedded DuckDB copy of a plain upstream's published
tables, compared table by table through the duckdb package."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from conftest import Node, Pair, wait_until
from pg_follower.source.decode import lsn_to_str

PYTHON_DIR = Path(__file__).resolve().parents[2] / "python"


def _command(up: Node, database: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pg_follower", "duckdb", "--upstream", up.dsn,
        "--database", str(database), "--publication", "pub", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PYTHON_DIR), env.get("PYTHONPATH")) if p)
    return env


def catch_up(up: Node, database: Path) -> str:
    done = subprocess.run(
        _command(up, database, "--until-caught-up"),
        env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr


def start(up: Node, database: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(_command(up, database), env=_env(), stderr=subprocess.PIPE, text=True)


def duck_rows(database: Path, table: str, columns: str = "*") -> list[tuple[Any, ...]]:
    qualified = table if "." in table else f"public.{table}"
    with duckdb.connect(str(database), read_only=True) as con:
        return sorted(con.execute(f"SELECT {columns} FROM {qualified}").fetchall(), key=repr)


def up_rows(up: Node, table: str, columns: str = "*") -> list[tuple[Any, ...]]:
    return sorted(up.rows(f"SELECT {columns} FROM {table}"), key=repr)


def assert_same(up: Node, database: Path, tables: list[str]) -> None:
    for table in tables:
        expected = up_rows(up, table)
        assert duck_rows(database, table) == expected, table


class Writers:
    """Two writers committing small mixed transactions until stopped."""

    def __init__(self, up: Node, count: int = 2):
        self.up = up
        self.stopping = threading.Event()
        self.committed = 0
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._write, args=(w,)) for w in range(count)]

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        assert not self.errors, self.errors

    def _write(self, writer: int) -> None:
        rng = random.Random(writer)
        try:
            with psycopg.connect(self.up.dsn, autocommit=True) as conn:
                seq = 0
                while not self.stopping.is_set():
                    seq += 1
                    key = rng.randint(1, 2000) * 2 + writer  # each writer its own keys
                    with conn.transaction():
                        conn.execute(
                            "INSERT INTO accounts VALUES (%s, %s, 'w') ON CONFLICT (id)"
                            " DO UPDATE SET n = accounts.n + 1, note = accounts.note || 'u'",
                            [key, seq],
                        )
                        if seq % 3 == 0:
                            conn.execute("DELETE FROM accounts WHERE id = %s", [key + 2])
                        if seq % 7 == 0:  # the key moves
                            conn.execute(
                                "UPDATE accounts SET id = id + 10000 WHERE id = %s AND NOT"
                                " EXISTS (SELECT FROM accounts WHERE id = %s + 10000)",
                                [key + 4, key + 4],
                            )
                        conn.execute(
                            "INSERT INTO events VALUES (%s, %s, 'e'), (%s, %s, 'e')",
                            [writer, seq % 50, writer, seq % 50],
                        )
                        if seq % 5 == 0:  # one of the duplicates goes
                            conn.execute(
                                "DELETE FROM events WHERE ctid = (SELECT ctid FROM events"
                                " WHERE w = %s AND seq = %s LIMIT 1)",
                                [writer, (seq - 5) % 50],
                            )
                    self.committed += 1
        except BaseException as exc:  # reported by __exit__
            self.errors.append(exc)


def _setup_workload(up: Node) -> None:
    up.execute("CREATE TABLE accounts (id int PRIMARY KEY, n int NOT NULL, note text)")
    up.execute("CREATE TABLE events (w int, seq int, v text)")
    up.execute("ALTER TABLE events REPLICA IDENTITY FULL")
    up.execute("INSERT INTO accounts SELECT g, g, 'seed' FROM generate_series(1, 3000) g")
    up.execute("INSERT INTO events SELECT g % 2, g % 50, 'seed' FROM generate_series(1, 1000) g")
    up.execute("CREATE PUBLICATION pub FOR TABLE accounts, events")


def test_backfill_then_changes_while_writers_write(plain_upstream: Node, tmp_path: Path) -> None:
    up = plain_upstream
    _setup_workload(up)
    database = tmp_path / "copy.duckdb"
    with Writers(up) as writers:
        process = start(up, database)
        try:
            wait_until(lambda: writers.committed >= 300, 60, "the writers' transactions")
            # made, then moved on: the back-fill and some changes are in DuckDB
            made = "SELECT confirmed_flush_lsn::text FROM pg_replication_slots"
            created = wait_until(lambda: up.scalar(made), 30, "the copy's slot")
            moved = "SELECT confirmed_flush_lsn > %s::pg_lsn FROM pg_replication_slots"
            wait_until(
                lambda: process.poll() is None and up.scalar(moved, [created]),
                60, "the copy to hold the writers' first transactions",
            )  # fmt: skip
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
    catch_up(up, database)
    assert_same(up, database, ["public.accounts", "public.events"])
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("SELECT slot FROM _pg_follower.state").fetchone() == (
            up.scalar("SELECT slot_name FROM pg_replication_slots"),
        )


SLOT_AHEAD = "past the position asked for"


def _state_lsn(database: Path) -> str:
    with duckdb.connect(str(database), read_only=True) as con:
        row = con.execute("SELECT end_lsn FROM _pg_follower.state").fetchone()
    assert row is not None
    return lsn_to_str(int(row[0]))


def test_an_idle_slot_moves_on_with_the_file(plain_upstream: Node, tmp_path: Path) -> None:
    """While only unpublished tables are written, the slot moves on to the WAL
    end and the file's position with it: a restart is not "behind the slot".
    A file restored from an older copy is, and says so."""
    up = plain_upstream
    up.execute("CREATE TABLE kept (id int PRIMARY KEY, v text)")
    up.execute("CREATE TABLE other (id int, v text)")
    up.execute("CREATE PUBLICATION pub FOR TABLE kept")
    up.execute("INSERT INTO kept VALUES (1, 'a')")
    database = tmp_path / "idle.duckdb"
    assert SLOT_AHEAD not in catch_up(up, database)
    confirmed = "SELECT confirmed_flush_lsn::text FROM pg_replication_slots"
    passed = "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots"
    process = start(up, database)
    try:
        for _ in range(3):  # WAL of other tables only
            up.execute("INSERT INTO other SELECT g, 'x' FROM generate_series(1, 20000) g")
            end = up.scalar("SELECT pg_current_wal_flush_lsn()::text")
            wait_until(
                lambda end=end: process.poll() is None and up.scalar(passed, [end]),
                30, "the slot to move on while the published table is idle",
            )  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert _state_lsn(database) == up.scalar(confirmed)
    assert SLOT_AHEAD not in catch_up(up, database)
    older = tmp_path / "older.duckdb"
    older.write_bytes(database.read_bytes())
    up.execute("INSERT INTO kept VALUES (2, 'b')")
    catch_up(up, database)
    assert duck_rows(database, "kept") == [(1, "a"), (2, "b")]
    database.write_bytes(older.read_bytes())  # the row's transaction is confirmed, not in it
    assert SLOT_AHEAD in catch_up(up, database)
    assert duck_rows(database, "kept") == [(1, "a")]


def test_sigkill_and_restart_five_times_exactly_once(plain_upstream: Node, tmp_path: Path) -> None:
    up = plain_upstream
    _setup_workload(up)
    database = tmp_path / "copy.duckdb"
    rng = random.Random(10)
    with Writers(up) as writers:
        for kill in range(5):
            process = start(up, database)
            before = writers.committed
            wait_until(lambda b=before: writers.committed >= b + 50, 60, "more transactions")  # type: ignore[misc]
            # a random moment: in the back-fill (first run), in a batch, between
            threading.Event().wait(rng.uniform(0.2, 2.0) if kill else rng.uniform(0.0, 1.0))
            process.kill()
            process.communicate(timeout=30)
    catch_up(up, database)
    assert_same(up, database, ["public.accounts", "public.events"])


def test_schema_changes(plain_upstream: Node, tmp_path: Path) -> None:
    up = plain_upstream
    database = tmp_path / "schema.duckdb"
    up.execute("CREATE TABLE s1 (id int PRIMARY KEY, a text, b int, c int)")
    up.execute("INSERT INTO s1 VALUES (1, 'x', 1, 1)")
    up.execute("CREATE TABLE later (id int PRIMARY KEY)")
    up.execute("CREATE PUBLICATION pub FOR TABLE s1")
    catch_up(up, database)
    up.execute("ALTER TABLE s1 ADD COLUMN d numeric(10,2)")
    up.execute("ALTER TABLE s1 RENAME COLUMN a TO a2")
    up.execute("ALTER TABLE s1 DROP COLUMN b")
    up.execute("ALTER TABLE s1 ALTER COLUMN c TYPE bigint")
    up.execute("INSERT INTO s1 VALUES (2, 'y', 2, 2.5)")
    up.execute("UPDATE s1 SET d = 1.25 WHERE id = 1")
    up.execute("ALTER PUBLICATION pub ADD TABLE later")
    up.execute("INSERT INTO later VALUES (7)")
    catch_up(up, database)
    with duckdb.connect(str(database), read_only=True) as con:
        columns = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = 's1' ORDER BY ordinal_position"
        ).fetchall()
    assert columns == [
        ("id", "INTEGER"),
        ("a2", "VARCHAR"),
        ("c", "BIGINT"),
        ("d", "DECIMAL(10,2)"),
    ]
    assert_same(up, database, ["public.s1", "public.later"])
    up.execute("ALTER TABLE s1 RENAME TO s1_renamed")
    up.execute("INSERT INTO s1_renamed VALUES (3, 'z', 3, 3)")
    up.execute("TRUNCATE later")
    catch_up(up, database)
    assert_same(up, database, ["public.s1_renamed", "public.later"])


def test_tables_without_key_keep_duplicates(plain_upstream: Node, tmp_path: Path) -> None:
    up = plain_upstream
    database = tmp_path / "dups.duckdb"
    up.execute("CREATE TABLE dups (a int, b text)")
    up.execute("ALTER TABLE dups REPLICA IDENTITY FULL")
    up.execute("INSERT INTO dups VALUES (1, 'a'), (1, 'a'), (1, 'a'), (2, NULL), (2, NULL)")
    up.execute("CREATE PUBLICATION pub FOR TABLE dups")
    catch_up(up, database)
    one = "(SELECT ctid FROM dups WHERE a = %s LIMIT 1)"
    up.execute(f"DELETE FROM dups WHERE ctid = {one}", [1])
    up.execute(f"UPDATE dups SET b = 'z' WHERE ctid = {one}", [2])
    with up.conn.transaction():  # inserted and deleted in one batch
        up.execute("INSERT INTO dups VALUES (3, 'c'), (3, 'c')")
        up.execute(f"DELETE FROM dups WHERE ctid = {one}", [3])
    catch_up(up, database)
    assert duck_rows(database, "dups") == up_rows(up, "dups")
    assert sorted(duck_rows(database, "dups"), key=repr) == sorted(
        [(1, "a"), (1, "a"), (2, None), (2, "z"), (3, "c")], key=repr
    )


def test_unchanged_toast_keeps_its_value(plain_upstream: Node, tmp_path: Path) -> None:
    up = plain_upstream
    database = tmp_path / "toast.duckdb"
    up.execute("CREATE TABLE big (id int PRIMARY KEY, n int, body text)")
    up.execute("ALTER TABLE big ALTER COLUMN body SET STORAGE EXTERNAL")
    up.execute("CREATE PUBLICATION pub FOR TABLE big")
    catch_up(up, database)
    up.execute(
        "INSERT INTO big SELECT g, 0, repeat(md5(g::text), 400) FROM generate_series(1, 3) g"
    )
    catch_up(up, database)
    up.execute("UPDATE big SET n = 1 WHERE id = 1")  # applied against DuckDB's row
    with up.conn.transaction():  # and against the batch's
        up.execute("UPDATE big SET n = 2 WHERE id = 2")
        up.execute("UPDATE big SET n = 3 WHERE id = 2")
        up.execute("UPDATE big SET id = 30, n = 4 WHERE id = 3")
    catch_up(up, database)
    assert duck_rows(database, "big") == up_rows(up, "big")


TYPE_ROWS = [
    # (PostgreSQL type, value as SQL, DuckDB's value printed as VARCHAR)
    ("smallint", "-32768", "-32768"),
    ("integer", "2147483647", "2147483647"),
    ("bigint", "-9223372036854775808", "-9223372036854775808"),
    ("numeric(38,4)", "'1234567890123456789012345678901234.5678'",
     "1234567890123456789012345678901234.5678"),
    ("numeric(10,2)", "'NaN'", None),
    ("numeric", "'NaN'", "NaN"),
    ("numeric", "'-1.000000000000000000000000000000000000000001'",
     "-1.000000000000000000000000000000000000000001"),
    ("text", "E'tab\\there\\nnewline, \"quoted\"'", 'tab\there\nnewline, "quoted"'),
    ("text", "''", ""),
    ("varchar(5)", "'abc'", "abc"),
    ("char(4)", "'ab'", "ab  "),
    ("bytea", "'\\x00ff0a'::bytea", "\\x00\\xFF\\x0A"),
    ("boolean", "false", "false"),
    ("date", "'2024-02-29'", "2024-02-29"),
    ("date", "'infinity'", "infinity"),
    ("date", "'0044-03-15 BC'", "0044-03-15 (BC)"),
    ("time", "'23:59:59.999999'", "23:59:59.999999"),
    ("timestamp", "'-infinity'", "-infinity"),
    ("timestamp", "'2024-01-02 03:04:05.678'", "2024-01-02 03:04:05.678"),
    ("timestamptz", "'2024-01-02 03:04:05+02'", "2024-01-02 01:04:05+00"),
    ("timestamptz", "'infinity'", "infinity"),
    ("interval", "'-1 year -2 months 3 days -04:05:06'", "-1 year -2 months 3 days -04:05:06"),
    ("uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("json", "'{\"a\": [1, null]}'", '{"a": [1, null]}'),
    ("jsonb", "'{\"b\": 2, \"a\": 1}'", '{"a": 1, "b": 2}'),
    ("real", "'-Infinity'", "-inf"),
    ("double precision", "'NaN'", "nan"),
    ("double precision", "1.2345678901234567", "1.2345678901234567"),
    ("integer[]", "'{1,NULL,3}'", "[1, NULL, 3]"),
    ("text[]", "'{\"a b\",\"c\\\"d\",NULL}'", "[a b, 'c\"d', NULL]"),
    ("point", "'(1,2)'", "(1,2)"),
    ("inet", "'10.1.2.3/8'", "10.1.2.3/8"),
]  # fmt: skip


def test_type_mapping(plain_upstream: Node, tmp_path: Path) -> None:
    """Each row's value arrives the same through the back-fill (row id 1) and
    the change stream (row id 2)."""
    up = plain_upstream
    database = tmp_path / "types.duckdb"
    tables = []
    for n, (pg_type, value, _) in enumerate(TYPE_ROWS):
        table = f"ty_{n}"
        tables.append(table)
        up.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v {pg_type})")
        up.execute(f"INSERT INTO {table} VALUES (1, {value})")
    up.execute("SET timezone = 'UTC'")
    up.execute(f"CREATE PUBLICATION pub FOR TABLE {', '.join(tables)}")
    catch_up(up, database)
    for n, (_, value, _) in enumerate(TYPE_ROWS):
        up.execute(f"INSERT INTO ty_{n} VALUES (2, {value})")
    catch_up(up, database)
    with duckdb.connect(str(database), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for n, (pg_type, _, expected) in enumerate(TYPE_ROWS):
            got = con.execute(
                f"SELECT id, CAST(v AS VARCHAR) FROM public.ty_{n} ORDER BY id"
            ).fetchall()
            assert got == [(1, expected), (2, expected)], pg_type


def test_drop_table_with_the_extension_upstream(pair: Pair, tmp_path: Path) -> None:
    """With pg_follower_py upstream its captured DDL is in the stream: a DROP
    TABLE drops the DuckDB table too."""
    up = pair.up
    database = tmp_path / "drop.duckdb"
    up.execute("CREATE TABLE gone (id int PRIMARY KEY)")
    up.execute("CREATE TABLE kept (id int PRIMARY KEY)")
    up.execute("INSERT INTO gone VALUES (1)")
    up.execute("CREATE PUBLICATION pub FOR TABLE gone, kept")
    # the extension's queue of captured DDL, as PostgresSource reads it
    if not up.scalar("SELECT 1 FROM pg_publication WHERE pubname = 'pg_follower_py_ddl'"):
        up.execute("CREATE PUBLICATION pg_follower_py_ddl FOR TABLE pgfollower.ddl_queue")
    catch_up(up, database)
    up.execute("DROP TABLE gone")
    up.execute("INSERT INTO kept VALUES (1)")
    catch_up(up, database)
    with duckdb.connect(str(database), read_only=True) as con:
        names = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' ORDER BY 1"
        ).fetchall()
    assert names == [("public.kept",)]


def test_errors_are_one_line_naming_the_way_out(plain_upstream: Node, tmp_path: Path) -> None:
    up = plain_upstream
    database = tmp_path / "errors.duckdb"
    done = subprocess.run(
        _command(up, database, "--until-caught-up"),
        env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "pg-follower duckdb: the upstream has no publication 'pub': create it there"
        " (CREATE PUBLICATION pub FOR TABLE ...) or name another"
    )
    up.execute("CREATE TABLE t (id int PRIMARY KEY)")
    up.execute("CREATE PUBLICATION pub FOR TABLE t")
    catch_up(up, database)
    done = subprocess.run(
        _command(up, database, "--until-caught-up", "--slot", "pgf_other"),
        env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "follows slot 'pgf_duckdb_" in last and "pass --slot pgf_duckdb_" in last, last


def test_python_api_backfill_in_many_parts(
    plain_upstream: Node, tmp_path: Path, monkeypatch: Any
) -> None:
    """The README's Python use; the back-fill split into many files (each
    loaded while the next is read), all in the one transaction."""
    from pg_follower.destinations.duckdb import DuckDBDestination, destination
    from pg_follower.pipeline import Pipeline
    from pg_follower.source.postgres import PostgresSource

    up = plain_upstream
    up.execute("CREATE TABLE parts (id int PRIMARY KEY, body text)")
    up.execute("INSERT INTO parts SELECT g, repeat('x', g % 50) FROM generate_series(1, 5000) g")
    up.execute("CREATE PUBLICATION pub FOR TABLE parts")
    monkeypatch.setattr(destination, "PART_BYTES", 4096)
    database = tmp_path / "api.duckdb"
    copy = DuckDBDestination(str(database), slot="api")
    source = PostgresSource(up.dsn, slot="api", publication="pub")
    Pipeline(source, copy, snapshot=True, own_slot=True, until_caught_up=True).run()
    assert copy.rows_loaded == 5000
    assert duck_rows(database, "parts") == up_rows(up, "parts")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pgf-backfill-")]
