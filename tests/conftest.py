"""Fixtures: throwaway upstream and downstream clusters, a fresh database pair per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pg_follower.ops.cluster import Cluster, make_base_dir


def wait_until(
    predicate: Callable[[], Any], timeout: float = 20.0, what: str | Callable[[], str] = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``.

    ``what`` names what is awaited; a callable is called at the failure (current state).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {described or predicate}")
        time.sleep(0.05)


class Node:
    """One database on one of the clusters."""

    def __init__(self, cluster: Cluster, dbname: str):
        self.cluster = cluster
        self.dbname = dbname
        self.dsn = cluster.dsn(dbname)
        self.conn = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None)

    def reconnect(self, timeout: float = 60.0) -> None:
        """A new session, once the server accepts one (after a restart)."""
        self.conn.close()

        def connect() -> psycopg.Connection[Any] | None:
            try:
                return psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None)
            except psycopg.OperationalError:
                return None

        self.conn = wait_until(connect, timeout, f"{self.cluster.name} to accept connections")

    def execute(self, query: str, params: Any = None) -> None:
        self.conn.execute(query, params)

    def rows(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(query, params).fetchall()

    def scalar(self, query: str, params: Any = None) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self.conn.close()


def text_rows(
    node: Node | psycopg.Connection[Any], query: str, params: Any = None
) -> list[tuple[str | None, ...]]:
    """The rows of ``query`` exactly as the server prints them (type output functions)."""
    conn = node.conn if isinstance(node, Node) else node
    cur = conn.execute(query, params)
    res = cur.pgresult
    assert res is not None
    return [
        tuple(
            None if (v := res.get_value(r, c)) is None else bytes(v).decode()
            for c in range(res.nfields)
        )
        for r in range(res.ntuples)
    ]


class Pair:
    """An upstream and a downstream database, both with the extension."""

    def __init__(self, up: Node, down: Node):
        self.up = up
        self.down = down

    def follow(
        self, name: str = "default", copy_data: bool = False, upstream: str | None = None
    ) -> None:
        """start_follow from the upstream (``upstream``: another conninfo for it)."""
        conninfo = upstream or self.up.dsn
        self.down.execute("SELECT start_follow(%s, %s, %s)", [conninfo, name, copy_data])
        wait_until(
            lambda: (
                self.down.scalar("SELECT state FROM follow_status WHERE name = %s", [name])
                == "streaming"
            ),
            30,
            f"subscription {name} to stream: {self.status()}",
        )

    def status(self, name: str = "default") -> dict[str, Any]:
        cur = self.down.conn.execute("SELECT * FROM follow_status WHERE name = %s", [name])
        row = cur.fetchone()
        names = [d.name for d in cur.description or []]
        return dict(zip(names, row, strict=True)) if row else {}

    def caught_up(self, timeout: float = 20.0) -> None:
        """Wait until the downstream applied everything the upstream wrote so far."""
        target = self.up.scalar("SELECT pg_current_wal_lsn()")
        wait_until(
            lambda: self.down.scalar(
                "SELECT bool_and(applied_lsn >= %s::pg_lsn) FROM follow_status", [target]
            ),
            timeout,
            lambda: f"downstream to reach {target}: {self.status()}",
        )

    def worker_pid(self) -> int | None:
        pid = self.down.scalar("SELECT pgfollower.worker_pid()")
        return int(pid) if pid else None

    def kill_worker(self, sig: int = signal.SIGTERM) -> None:
        pid = self.worker_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        wait_until(lambda: not _alive(pid), 20, f"worker {pid} to exit")
        wait_until(lambda: self.worker_pid() is None, 20, "the worker's lock to go")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purposes.
    with contextlib.suppress(OSError):
        # the state follows the parenthesised name, which may hold spaces
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rindex(")") + 1 :].split()[0] == "Z":
            return False
    return True


@pytest.fixture(scope="session")
def clusters() -> Iterator[tuple[Cluster, Cluster]]:
    base = make_base_dir("pgf-test-")
    up = Cluster(base, "up")
    down = Cluster(base, "down")
    # Developers (and parallel work in other checkouts) can run the worker
    # from a source tree instead of the installed copy.
    worker_path = os.environ.get("PG_FOLLOWER_WORKER_PATH")
    extra = {"pg_follower_py.worker_pythonpath": f"'{worker_path}'"} if worker_path else {}
    try:
        up.init(extra).start()
        down.init({"wal_level": "replica", **extra}).start()
        yield up, down
    finally:
        up.destroy()
        down.destroy()
        shutil.rmtree(base, ignore_errors=True)


def _admin(cluster: Cluster) -> psycopg.Connection[Any]:
    return psycopg.connect(cluster.dsn("postgres"), autocommit=True)


def _drop_slots(conn: psycopg.Connection[Any], dbname: str) -> None:
    """Drop the replication slots of ``dbname`` (they would keep it from being dropped)."""
    for (slot,) in conn.execute(
        "SELECT slot_name FROM pg_replication_slots WHERE database = %s", [dbname]
    ).fetchall():
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])


@contextlib.contextmanager
def database_pair(clusters: tuple[Cluster, Cluster], version: str | None = None) -> Iterator[Pair]:
    """A fresh database on each cluster with pg_follower_py (``version``, else
    the default one) on both; dropped with its slots and origins at the end."""
    up_cluster, down_cluster = clusters
    dbname = "t_" + uuid.uuid4().hex[:10]
    for cluster in clusters:
        with _admin(cluster) as conn:
            conn.execute(f"CREATE DATABASE {dbname}")
    up, down = Node(up_cluster, dbname), Node(down_cluster, dbname)
    create = "CREATE EXTENSION pg_follower_py" + (f" VERSION '{version}'" if version else "")
    up.execute(create + " CASCADE")
    down.execute(create + " CASCADE")
    p = Pair(up, down)
    try:
        yield p
    finally:
        p.kill_worker()
        up.close()
        down.close()
        with _admin(up_cluster) as conn:
            _drop_slots(conn, dbname)
        with _admin(down_cluster) as conn:
            # Origins are cluster-wide: drop this database's, so tests can
            # check the origin catalog starts empty.
            conn.execute(
                "SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin"
                " WHERE roname LIKE 'pgf\\_' || (SELECT oid FROM pg_database"
                " WHERE datname = %s) || '\\_%%'",
                [dbname],
            )
        for cluster in clusters:
            with _admin(cluster) as conn:
                conn.execute(f"DROP DATABASE {dbname} WITH (FORCE)")


@pytest.fixture
def pair(clusters: tuple[Cluster, Cluster]) -> Iterator[Pair]:
    """A fresh database on each cluster, with pg_follower_py installed on both."""
    with database_pair(clusters) as p:
        yield p


@pytest.fixture
def plain_upstream(clusters: tuple[Cluster, Cluster]) -> Iterator[Node]:
    """A fresh database on the upstream cluster without pg_follower_py (a source
    for pipelines to other destinations); dropped with its slots at the end."""
    up_cluster = clusters[0]
    dbname = "p_" + uuid.uuid4().hex[:10]
    with _admin(up_cluster) as conn:
        conn.execute(f"CREATE DATABASE {dbname}")
    node = Node(up_cluster, dbname)
    try:
        yield node
    finally:
        node.close()
        with _admin(up_cluster) as conn:
            _drop_slots(conn, dbname)
            conn.execute(f"DROP DATABASE {dbname} WITH (FORCE)")
