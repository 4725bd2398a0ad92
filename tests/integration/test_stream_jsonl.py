"""``pg-follower stream``: the change stream as JSON lines on stdout, from a
plain upstream (no extension), resumed with --from across SIGKILLs."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import psycopg
import pytest

from conftest import Node, Pair, wait_until
from pg_follower.ops.cluster import Cluster

Line = dict[str, Any]


class Stream:
    """A ``pg-follower stream`` process, its stdout lines read by a thread."""

    running: ClassVar[list[Stream]] = []  # killed at the end of each test

    def __init__(self, dsn: str, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pg_follower", "stream", "--upstream", dsn, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.raw: list[bytes] = []
        self.err = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        Stream.running.append(self)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.raw.append(raw)

    @property
    def lines(self) -> list[Line]:
        """The whole lines written so far (a line cut by a kill is left out)."""
        return [json.loads(r) for r in list(self.raw) if r.endswith(b"\n")]

    def wait_lines(self, predicate: Any, timeout: float = 30.0) -> list[Line]:
        return wait_until(
            lambda: (lines := self.lines) and predicate(lines) and lines,
            timeout,
            lambda: f"stream lines; have {self.lines[-5:]}, stderr {self.stderr_now()}",
        )

    def stderr_now(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None or self.proc.stderr.closed:
            return "(running)"
        return self.proc.stderr.read().decode()

    def finish(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        # stdout is the reader thread's alone (communicate() would take lines)
        self.proc.wait(timeout)
        self.reader.join(timeout)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        if not self.proc.stderr.closed:
            self.err = self.proc.stderr.read().decode()
            self.proc.stdout.close()
            self.proc.stderr.close()
        return self.proc.returncode, self.err


@pytest.fixture
def streams() -> Iterator[None]:
    """Kills the streams a test left running (before its database goes)."""
    yield
    while Stream.running:
        stream = Stream.running.pop()
        if stream.proc.poll() is None:
            stream.proc.kill()
        stream.finish(signal.SIGKILL)


def kinds(lines: list[Line]) -> list[str]:
    return [line["kind"] for line in lines]


def commits(lines: list[Line]) -> int:
    return kinds(lines).count("commit")


def transactions(lines: list[Line]) -> list[list[Line]]:
    """The whole transactions (begin ... commit), snapshot lines left out."""
    out: list[list[Line]] = []
    current: list[Line] | None = None
    for line in lines:
        if line.get("snapshot"):
            continue
        if line["kind"] == "begin":
            current = [line]
        elif current is not None:
            current.append(line)
            if line["kind"] == "commit":
                out.append(current)
                current = None
    return out


def test_shape_of_every_kind(plain_upstream: Node, streams: None) -> None:
    up = plain_upstream
    up.execute("CREATE TABLE t (id int PRIMARY KEY, v text, big text)")
    up.execute("CREATE TABLE f (a int, b text)")
    up.execute("ALTER TABLE f REPLICA IDENTITY FULL")
    up.execute("CREATE TABLE t2 (id serial PRIMARY KEY)")
    up.execute("CREATE PUBLICATION pub FOR TABLE t, f, t2")
    stream = Stream(up.dsn, "--slot", "shape", "--publication", "pub")
    wait_until(
        lambda: up.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = 'shape'"),
        30,
        "the slot to be streamed",
    )
    big = "".join(random.choice("abcdefghij") for _ in range(100_000))  # TOASTed, not compressible
    up.execute("INSERT INTO t VALUES (1, 'a', %s)", [big])
    up.execute("UPDATE t SET v = 'b' WHERE id = 1")
    up.execute("UPDATE t SET id = 2 WHERE id = 1")
    up.execute("DELETE FROM t WHERE id = 2")
    up.execute("INSERT INTO f VALUES (1, 'x')")
    up.execute("UPDATE f SET b = 'y'")
    up.execute("DELETE FROM f")
    up.execute("TRUNCATE t, t2 RESTART IDENTITY CASCADE")
    lines = stream.wait_lines(lambda ls: commits(ls) == 8)
    txns = transactions(lines)
    assert len(txns) == 8
    for txn in txns:
        begin, commit = txn[0], txn[-1]
        assert set(begin) == {"kind", "xid", "commit_lsn", "commit_time"}
        assert isinstance(begin["xid"], int)
        assert begin["commit_time"].endswith("+00:00")
        assert commit == {
            "kind": "commit",
            "commit_lsn": begin["commit_lsn"],
            "end_lsn": commit["end_lsn"],
        }
        # LSNs in PostgreSQL's text form, the end past the commit record
        assert up.scalar(
            "SELECT %s::pg_lsn < %s::pg_lsn", [commit["commit_lsn"], commit["end_lsn"]]
        )
    changes = [txn[1:-1] for txn in txns]
    t = {"schema": "public", "table": "t"}
    f = {"schema": "public", "table": "f"}
    assert changes == [
        [{"kind": "insert", **t, "new": {"id": 1, "v": "a", "big": big}}],
        [
            {
                "kind": "update",
                **t,
                "new": {"id": 1, "v": "b"},
                "unchanged_toast": ["big"],
            }
        ],
        [
            {
                "kind": "update",
                **t,
                "old": {"id": 1},
                "new": {"id": 2, "v": "b"},
                "unchanged_toast": ["big"],
            }
        ],
        [{"kind": "delete", **t, "old": {"id": 2}}],
        [{"kind": "insert", **f, "new": {"a": 1, "b": "x"}}],
        [{"kind": "update", **f, "old": {"a": 1, "b": "x"}, "new": {"a": 1, "b": "y"}}],
        [{"kind": "delete", **f, "old": {"a": 1, "b": "y"}}],
        [
            {
                "kind": "truncate",
                "tables": [t, {"schema": "public", "table": "t2"}],
                "restart_identity": True,
                "cascade": True,
            }
        ],
    ]
    code, err = stream.finish(signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err
    assert "8 transactions written" in err


def test_values_of_each_type(plain_upstream: Node, streams: None) -> None:
    up = plain_upstream
    up.execute("CREATE DOMAIN posint AS int CHECK (VALUE > 0)")
    up.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
    up.execute(
        "CREATE TABLE v (id int8 PRIMARY KEY, i2 int2, i4 int4, d posint, o oid,"
        " f4 float4, f8 float8, nan float8, inf float8, b bool, n text, j json, jb jsonb,"
        " ia int[], ta text[], m int[][], num numeric, tz timestamptz, ts timestamp,"
        " dt date, by bytea, u uuid, e mood, iv interval)"
    )
    up.execute("CREATE PUBLICATION pub FOR TABLE v")
    stream = Stream(up.dsn, "--slot", "vals", "--publication", "pub")
    wait_until(
        lambda: up.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = 'vals'"),
        30,
        "the slot to be streamed",
    )
    up.execute(
        "INSERT INTO v VALUES (9223372036854775807, -32768, 2147483647, 5, 4294967295,"
        " 1.5, 0.1, 'NaN', '-Infinity', true, NULL, '{\"a\": [1, 2.5, null]}',"
        " '{\"b\": {\"c\": \"d\"}}', '{1,NULL,3}', ARRAY['a,b', 'q\"uote', NULL, 'NULL',"
        " 'back\\slash', ''], '{{1,2},{3,4}}', 12345678901234567890.000000000001,"
        " '2024-01-02 03:04:05.123+00', '2024-01-02 03:04:05.5', '2024-02-29', '\\xdeadbeef',"
        " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ok', '1 day 02:03:04')"
    )
    lines = stream.wait_lines(lambda ls: commits(ls) == 1)
    (insert,) = transactions(lines)[0][1:-1]
    assert insert["new"] == {
        "id": 9223372036854775807,
        "i2": -32768,
        "i4": 2147483647,
        "d": 5,
        "o": 4294967295,
        "f4": 1.5,
        "f8": 0.1,
        "nan": "NaN",
        "inf": "-Infinity",
        "b": True,
        "n": None,
        "j": {"a": [1, 2.5, None]},
        "jb": {"b": {"c": "d"}},
        "ia": [1, None, 3],
        "ta": ["a,b", 'q"uote', None, "NULL", "back\\slash", ""],
        "m": [[1, 2], [3, 4]],
        "num": "12345678901234567890.000000000001",
        "tz": "2024-01-02T03:04:05.123+00:00",
        "ts": "2024-01-02T03:04:05.5",
        "dt": "2024-02-29",
        "by": "\\xdeadbeef",
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "e": "ok",
        "iv": "1 day 02:03:04",
    }
    # the raw line: numbers as JSON numbers, exactly
    raw = next(r for r in stream.raw if b'"insert"' in r)
    assert b'"id":9223372036854775807' in raw and b'"f8":0.1' in raw
    code, err = stream.finish(signal.SIGINT)  # as Ctrl-C in a terminal
    assert code == 0 and "Traceback" not in err, err


def test_snapshot_then_changes(plain_upstream: Node, streams: None) -> None:
    up = plain_upstream
    up.execute("CREATE TABLE table1 (id int PRIMARY KEY, v text)")
    up.execute("CREATE TABLE table2 (v text)")
    up.execute("INSERT INTO table1 SELECT g, 'r' || g FROM generate_series(1, 1500) g")
    up.execute("INSERT INTO table2 VALUES ('x')")
    up.execute("CREATE PUBLICATION my_publication FOR TABLE table1, table2")
    stream = Stream(up.dsn, "--slot", "snap", "--publication", "my_publication", "--snapshot")
    lines = stream.wait_lines(lambda ls: len(ls) == 1501)
    assert all(line["snapshot"] is True and line["kind"] == "insert" for line in lines)
    assert lines[0] == {
        "kind": "insert",
        "snapshot": True,
        "schema": "public",
        "table": "table1",
        "new": {"id": 1, "v": "r1"},
    }
    assert sorted(line["new"]["id"] for line in lines[:1500]) == list(range(1, 1501))
    assert lines[1500]["table"] == "table2"
    up.execute("INSERT INTO table2 VALUES ('after')")
    lines = stream.wait_lines(lambda ls: commits(ls) == 1)
    assert transactions(lines)[0][1]["new"] == {"v": "after"}
    assert stream.finish()[0] == 0
    # the slot exists now: its snapshot is gone
    again = Stream(up.dsn, "--slot", "snap", "--publication", "my_publication", "--snapshot")
    code, err = again.finish(sig=0)
    assert code == 1
    assert "slot 'snap' exists already" in err
    assert "pg_drop_replication_slot('snap')" in err and err.count("\n") == 1
    assert again.lines == []


def _writer(dsn: str, writer: int, count: int, xids: list[int]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(count):
            with conn.transaction():
                xids.append(int(conn.execute("SELECT txid_current()").fetchone()[0]))  # type: ignore[index]
                conn.execute("INSERT INTO w VALUES (%s, %s, 'x')", [writer, n])
                if n % 3 == 1:
                    conn.execute(
                        "UPDATE w SET v = 'y' WHERE writer = %s AND n = %s", [writer, n - 1]
                    )
                if n % 5 == 4:
                    conn.execute("DELETE FROM w WHERE writer = %s AND n = %s", [writer, n - 2])


def test_two_writers_in_commit_order(plain_upstream: Node, streams: None) -> None:
    up = plain_upstream
    up.execute("CREATE TABLE w (writer int, n int, v text, PRIMARY KEY (writer, n))")
    up.execute("CREATE PUBLICATION pub FOR TABLE w")
    stream = Stream(up.dsn, "--slot", "two", "--publication", "pub")
    wait_until(
        lambda: up.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = 'two'"),
        30,
        "the slot to be streamed",
    )
    xids: list[list[int]] = [[], []]
    writers = [threading.Thread(target=_writer, args=(up.dsn, k, 1000, xids[k])) for k in range(2)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    lines = stream.wait_lines(lambda ls: commits(ls) == 2000, timeout=60)
    txns = transactions(lines)
    assert sorted(t[0]["xid"] for t in txns) == sorted(xids[0] + xids[1])
    # in commit order: commit LSNs rise, and each writer's transactions keep their order
    lsns = [t[0]["commit_lsn"] for t in txns]
    assert up.scalar(
        "SELECT bool_and(a < b) FROM unnest(%s::pg_lsn[], %s::pg_lsn[]) u(a, b)",
        [lsns[:-1], lsns[1:]],
    )
    for k in range(2):
        ns = [t[1]["new"]["n"] for t in txns if t[1]["new"]["writer"] == k]
        assert ns == list(range(1000))
    for txn in txns:
        n = txn[1]["new"]["n"]
        expected = ["insert"] + ["update"] * (n % 3 == 1) + ["delete"] * (n % 5 == 4)
        assert kinds(txn[1:-1]) == expected
    assert stream.finish()[0] == 0


def test_sigkill_and_resume_from_exactly_once(plain_upstream: Node, streams: None) -> None:
    up = plain_upstream
    up.execute("CREATE TABLE k (id int PRIMARY KEY, v text)")
    up.execute("CREATE PUBLICATION pub FOR TABLE k")
    args = ["--slot", "kill", "--publication", "pub"]
    total = 1500
    kept: list[list[Line]] = []  # what a consumer keeps: whole transactions

    def write() -> None:
        with psycopg.connect(up.dsn, autocommit=True) as conn:
            for n in range(total):
                with conn.transaction():
                    conn.execute("INSERT INTO k VALUES (%s, 'x')", [n])
                    if n % 4 == 0:
                        conn.execute("UPDATE k SET v = 'y' WHERE id = %s", [n])
                time.sleep(0.002)  # spread over the kills

    stream = Stream(up.dsn, *args)
    wait_until(
        lambda: up.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = 'kill'"),
        30,
        "the slot to be streamed",
    )
    writer = threading.Thread(target=write)
    writer.start()
    rng = random.Random(10)
    during_writes = 0
    for _ in range(5):
        # it streams again (unless the writer is done)
        wait_until(
            lambda s=stream: s.raw or not writer.is_alive(),
            60,
            "the stream to go on",
        )
        time.sleep(rng.uniform(0.0, 0.6))
        during_writes += writer.is_alive()
        stream.finish(signal.SIGKILL)
        kept.extend(transactions(stream.lines))
        # restarted at once: it waits for the upstream to let go of the slot
        resume = ["--from", kept[-1][-1]["end_lsn"]] if kept else []
        stream = Stream(up.dsn, *args, *resume)
    writer.join(120)
    assert during_writes == 5, "kills after the writes test nothing: slow the writer down"
    stream.wait_lines(
        lambda ls: any(line.get("new", {}).get("id") == total - 1 for line in ls[-3:]), 60
    )
    assert stream.finish()[0] == 0
    kept.extend(transactions(stream.lines))
    ids = [t[1]["new"]["id"] for t in kept]
    missing = sorted(set(range(total)) - set(ids))
    twice = sorted(i for i in set(ids) if ids.count(i) > 1)
    assert (missing, twice) == ([], [])
    assert ids == list(range(total))  # each once, in order
    for txn in kept:
        update = ["update"] if txn[1]["new"]["id"] % 4 == 0 else []
        assert kinds(txn) == ["begin", "insert", *update, "commit"]


def test_stdout_closed_ends_quietly(plain_upstream: Node, streams: None) -> None:
    up = plain_upstream
    up.execute("CREATE TABLE t (id int)")
    up.execute("CREATE PUBLICATION pub FOR TABLE t")
    # like `pg-follower stream ... | head -n 3`
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pg_follower",
            "stream",
            "--upstream",
            up.dsn,
            "--slot",
            "pipe",
            "--publication",
            "pub",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    wait_until(
        lambda: up.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = 'pipe'"),
        30,
        "the slot to be streamed",
    )
    up.execute("INSERT INTO t VALUES (1)")
    assert json.loads(proc.stdout.readline())["kind"] == "begin"
    proc.stdout.close()
    up.execute("INSERT INTO t VALUES (2)")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"Exception" not in err


def test_bad_input(plain_upstream: Node, clusters: tuple[Cluster, Cluster], streams: None) -> None:
    up = plain_upstream

    def run(*args: str) -> tuple[int, str]:
        proc = subprocess.run(
            [sys.executable, "-m", "pg_follower", "stream", *args],
            capture_output=True,
            timeout=30,
        )
        assert proc.stdout == b""
        return proc.returncode, proc.stderr.decode()

    code, err = run("--upstream", up.dsn, "--slot", "s", "--from", "12345")
    assert code == 2 and "--from '12345' is not an LSN" in err and "X/Y" in err
    assert err.count("\n") == 1
    code, err = run("--upstream", up.dsn, "--slot", "s", "--publication", "nope")
    assert code == 1 and "no publication 'nope'" in err and "CREATE PUBLICATION" in err
    assert err.count("\n") == 1
    assert not up.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 's'")
    # the downstream test cluster runs with wal_level = replica
    code, err = run("--upstream", clusters[1].dsn("postgres"), "--slot", "s")
    assert code == 1 and "wal_level = replica" in err and "wal_level = logical" in err


def test_ddl_line_when_the_upstream_has_the_extension(pair: Pair, streams: None) -> None:
    up = pair.up
    up.execute("CREATE TABLE d (id int PRIMARY KEY)")
    up.execute("CREATE PUBLICATION pub FOR TABLE d")
    stream = Stream(up.dsn, "--slot", "any_name", "--publication", "pub")
    wait_until(
        lambda: up.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = 'any_name'"),
        30,
        "the slot to be streamed",
    )
    up.execute("ALTER TABLE d ADD COLUMN note text")
    up.execute("INSERT INTO d VALUES (1, 'n')")
    lines = stream.wait_lines(lambda ls: commits(ls) == 2)
    ddl_txn, insert_txn = transactions(lines)
    (ddl,) = ddl_txn[1:-1]
    assert ddl["kind"] == "ddl"
    assert ddl["statement"] == "ALTER TABLE d ADD COLUMN note text"
    assert ddl["tag"] == "ALTER TABLE"
    assert ddl["command"] == "alter_table" and ddl["objects"] == ["public.d"]
    assert ddl["search_path"] == "public"
    assert ddl["role"] == up.scalar("SELECT current_user")
    assert insert_txn[1]["new"] == {"id": 1, "note": "n"}
    # the slot, named as the user likes, keeps the capture on
    assert up.scalar("SELECT pgfollower.is_followed()")
    assert up.rows("SELECT slot_name FROM pgfollower.consumer_slots") == [("any_name",)]
    assert stream.finish()[0] == 0
