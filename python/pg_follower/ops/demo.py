"""``pg-follower demo``: the seed walkthrough on two throwaway clusters, printed as it runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time

from pg_follower.errors import FollowerError
from pg_follower.ops.cluster import Cluster, make_base_dir


def _say(text: str) -> None:
    print(text, flush=True)


def _run(cluster: Cluster, label: str, statement: str) -> str:
    _say(f"{label}=# {statement}")
    out = cluster.psql(statement, notices=True)
    _say(out.rstrip("\n") + "\n")
    return out


def _scalar(cluster: Cluster, query: str) -> str:
    out = subprocess.run(
        ["psql", "-X", "-At", "-d", cluster.dsn(), "-c", query],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip()


def wait_for(predicate_query: str, cluster: Cluster, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _scalar(cluster, predicate_query) == "t":
            return True
        time.sleep(0.2)
    return False


def stop_worker(cluster: Cluster) -> None:
    """SIGTERM the worker of the cluster's postgres database, if any."""
    pid = _scalar(cluster, "SELECT pgfollower.worker_pid()")
    if pid.isdigit():
        with contextlib.suppress(OSError):
            os.kill(int(pid), signal.SIGTERM)


def run_demo(keep: bool = False) -> int:
    base = make_base_dir("pgf-demo-")
    up = Cluster(base, "up")
    down = Cluster(base, "down")
    _say(
        f"Starting two throwaway clusters in {base}:"
        f" upstream on port {up.port}, downstream on port {down.port}.\n"
    )
    try:
        up.init().start()
        down.init({"wal_level": "replica"}).start()
        _run(up, "upstream", "CREATE EXTENSION pg_follower_py CASCADE;")
        _run(down, "downstream", "CREATE EXTENSION pg_follower_py CASCADE;")
        _run(down, "downstream", f"SELECT * FROM start_follow('{up.dsn()}');")
        if not wait_for("SELECT state = 'streaming' FROM follow_status", down, 30):
            raise FollowerError(
                "the subscription did not start streaming:\n"
                + down.psql("SELECT * FROM follow_status")
            )
        pid = _scalar(down, "SELECT worker_pid FROM follow_status")
        ps = subprocess.run(
            ["ps", "-o", "pid,user,args", "-p", pid], capture_output=True, text=True, check=False
        ).stdout
        _say(f"$ ps -o pid,user,args -p {pid}\n{ps}")
        _run(up, "upstream", "CREATE TABLE foo (id int);")
        _run(up, "upstream", "INSERT INTO foo VALUES (generate_series(1, 20));")
        if not wait_for(
            "SELECT to_regclass('public.foo') IS NOT NULL AND (SELECT count(*) FROM foo) = 20",
            down,
            30,
        ):
            raise FollowerError(
                "the 20 rows did not arrive downstream:\n"
                + down.psql("SELECT * FROM follow_status")
            )
        _run(down, "downstream", "SELECT * FROM foo;")
        target = _scalar(up, "SELECT pg_current_wal_lsn()")
        wait_for(f"SELECT applied_lsn >= '{target}' FROM follow_status", down, 30)
        _run(
            down,
            "downstream",
            "SELECT name, state, applied_lsn, lag_bytes, last_error FROM follow_status;",
        )
        _say("The downstream follows the upstream.")
        if keep:
            _say(
                f"Clusters left running in {base}:\n  upstream:   psql '{up.dsn()}'\n"
                f"  downstream: psql '{down.dsn()}'"
            )
            return 0
        _run(down, "downstream", "SELECT stop_follow();")
        return 0
    except FollowerError as exc:
        _say(f"demo failed: {exc}")
        return 1
    finally:
        if not keep:
            stop_worker(down)
            up.destroy()
            down.destroy()
            shutil.rmtree(base, ignore_errors=True)
