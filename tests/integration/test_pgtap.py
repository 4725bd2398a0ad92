"""Run the pgTAP tests in tests/pgtap with pg_prove, each file in a fresh database."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import wait_until
from pg_follower.ops.cluster import Cluster, bindir

PGTAP_DIR = Path(__file__).resolve().parent.parent / "pgtap"
PGTAP_FILES = sorted(PGTAP_DIR.glob("*.sql"))


def _admin(cluster: Cluster, dbname: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(cluster.dsn(dbname), autocommit=True)


def _slots(cluster: Cluster, dbname: str) -> list[str]:
    with _admin(cluster) as conn:
        rows = conn.execute(
            "SELECT slot_name FROM pg_replication_slots"
            " WHERE database = %s AND slot_name LIKE 'pgf\\_%%'",
            [dbname],
        ).fetchall()
    return [row[0] for row in rows]


def _stop_worker(cluster: Cluster, dbname: str) -> None:
    """Stop a worker serving dbname, should a test have launched one anyway."""
    with _admin(cluster, dbname) as conn:
        row = conn.execute("SELECT pgfollower.worker_pid()").fetchone()
    pid = row[0] if row else None
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with _admin(cluster, dbname) as conn:
        wait_until(
            lambda: conn.execute("SELECT pgfollower.worker_pid() IS NULL").fetchone() == (True,),
            20,
            f"worker {pid} to exit",
        )


@pytest.fixture
def tap_db(clusters: tuple[Cluster, Cluster]) -> Iterator[tuple[Cluster, str]]:
    """A fresh database on the upstream cluster (wal_level=logical) with pgtap."""
    cluster = clusters[0]
    dbname = "tap_" + uuid.uuid4().hex[:10]
    with _admin(cluster) as conn:
        conn.execute(f"CREATE DATABASE {dbname}")
    try:
        with _admin(cluster, dbname) as conn:
            conn.execute("CREATE EXTENSION pgtap")
            conn.execute("CREATE EXTENSION pg_follower_py CASCADE")
        yield cluster, dbname
    finally:
        with contextlib.suppress(psycopg.Error):
            _stop_worker(cluster, dbname)
        with _admin(cluster) as conn:
            for slot in _slots(cluster, dbname):
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
            conn.execute(f"DROP DATABASE {dbname} WITH (FORCE)")


def _pg_prove(cluster: Cluster, dbname: str, script: Path) -> subprocess.CompletedProcess[str]:
    pg_prove = shutil.which("pg_prove")
    assert pg_prove, (
        "pg_prove not found: run scripts/bootstrap.sh (libtap-parser-sourcehandler-pgtap-perl)"
    )
    argv = [
        pg_prove,
        "--verbose",
        "--psql-bin",
        str(bindir() / "psql"),
        "-h",
        str(cluster.sockdir),
        "-p",
        str(cluster.port),
        "-U",
        "postgres",
        "-d",
        dbname,
        str(script),
    ]
    # No PG* variables: they would point psql elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("script", PGTAP_FILES, ids=[p.stem for p in PGTAP_FILES])
def test_pgtap(tap_db: tuple[Cluster, str], script: Path) -> None:
    cluster, dbname = tap_db
    res = _pg_prove(cluster, dbname, script)
    assert res.returncode == 0, (
        f"pg_prove {script.name} exited with {res.returncode}\n"
        f"--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}"
    )
    assert "Result: PASS" in res.stdout, res.stdout
    # The files clean up their replication slots themselves (a temporary slot
    # goes when its backend exits, which may be just after psql does).
    wait_until(lambda: not _slots(cluster, dbname), 10, f"the slots of {script.name} to go")
