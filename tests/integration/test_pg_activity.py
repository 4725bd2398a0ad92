"""pg_activity (the operator extra) lists the worker's sessions by their application_name."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from conftest import Pair, wait_until

PG_ACTIVITY = Path(sys.executable).with_name("pg_activity")


def _drain(master: int, stop: threading.Event) -> None:
    """Read the screen so pg_activity never blocks on a full terminal."""
    while not stop.is_set():
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return


@pytest.mark.skipif(not PG_ACTIVITY.exists(), reason="pg_activity not installed (ops extra)")
def test_pg_activity_shows_the_workers_replication_session(pair: Pair, tmp_path: Path) -> None:
    pair.follow()
    csv = tmp_path / "activity.csv"
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    stop = threading.Event()
    proc = subprocess.Popen(
        [str(PG_ACTIVITY), "--output", str(csv), "--refresh", "0.5", "--no-db-size", pair.up.dsn],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=dict(os.environ, TERM="xterm"),
        start_new_session=True,
    )
    os.close(slave)
    drainer = threading.Thread(target=_drain, args=[master, stop], daemon=True)
    drainer.start()
    try:

        def worker_rows() -> list[list[str]]:
            if not csv.exists():
                return []
            rows = [line.split(";") for line in csv.read_text().splitlines()[1:]]
            return [r for r in rows if len(r) > 4 and r[4] == '"pg_follower worker"']

        rows = wait_until(worker_rows, 60, lambda: f"pg_activity to list the worker: {proc.poll()}")
        assert any("START_REPLICATION" in r[-1] for r in rows), rows
        os.write(master, b"q")
        proc.wait(timeout=20)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drainer.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(master)
