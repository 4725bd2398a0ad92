"""The image's entrypoint on this machine's server binaries: a cluster made at the
first start with the given password, scram on the network, trust on the socket only."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest

from conftest import wait_until
from pg_follower.ops.cluster import SERVER_USER, bindir, free_port, make_base_dir

ROOT = Path(__file__).resolve().parents[2]
SOCKETS = Path("/var/run/postgresql")  # Debian's default unix_socket_directories
PASSWORD = "Im4ge-Pw-31"


@pytest.mark.skipif(
    shutil.which("runuser") is None and not Path("/usr/sbin/runuser").exists(),
    reason="no runuser",
)
@pytest.mark.skipif(not SOCKETS.is_dir(), reason=f"no {SOCKETS}")
def test_entrypoint_makes_a_password_protected_cluster() -> None:
    base = make_base_dir("pgf-image-")
    port = free_port()
    env = {
        "PATH": f"{bindir()}:/usr/sbin:/usr/bin:/sbin:/bin",
        "PGDATA": str(base / "data"),
        "PGPORT": str(port),  # beside any server already on 5432
        "POSTGRES_PASSWORD": PASSWORD,
        "FOLLOWER_DB": "app",
    }
    log = open(base / "entrypoint.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "docker-entrypoint.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    network = f"host=127.0.0.1 port={port} dbname=app user=postgres connect_timeout=5"
    try:

        def up() -> bool:
            try:
                psycopg.connect(f"{network} password={PASSWORD}").close()
            except psycopg.OperationalError:
                return proc.poll() is not None  # stop waiting: it exited
            return True

        wait_until(up, 120, lambda: (base / "entrypoint.log").read_text())
        assert proc.poll() is None, (base / "entrypoint.log").read_text()
        with psycopg.connect(f"{network} password={PASSWORD}") as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_extension WHERE extname = 'pg_follower_py'"
            ).fetchone() == (1,)
            assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
            assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"{network} password=wrong").close()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(network, passfile="/dev/null").close()
        # the local socket trusts (inside the container)
        psycopg.connect(f"host={SOCKETS} port={port} dbname=app user=postgres").close()
        hba = (base / "data" / "pg_hba.conf").read_text()
        assert "trust" not in "".join(ln for ln in hba.splitlines() if ln.startswith("host"))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the trap stops the server
        try:
            proc.wait(timeout=60)
        finally:
            log.close()
            pid_file = base / "data" / "postmaster.pid"
            if pid_file.exists():
                subprocess.run(
                    [
                        "runuser",
                        "-u",
                        SERVER_USER,
                        "--",
                        str(bindir() / "pg_ctl"),
                        "-D",
                        str(base / "data"),
                        "-m",
                        "immediate",
                        "stop",
                    ],
                    env=env,
                    check=False,
                )
            shutil.rmtree(base, ignore_errors=True)
