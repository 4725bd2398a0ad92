"""``pg-follower bench memory`` (and the suite's ``memory`` workload): ours only.

It follows an upstream, runs one big INSERT transaction there,
and samples the worker's memory (``/proc/<pid>/status``) until the
downstream has applied it.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pg_follower.errors import FollowerError
from pg_follower.ops.bench.common import connect as _connect
from pg_follower.ops.bench.common import scalar as _scalar
from pg_follower.ops.bench.common import wait as _wait
from pg_follower.ops.bench.common import worker_path as _worker_path_default
from pg_follower.ops.cluster import Cluster, make_base_dir
from pg_follower.ops.demo import stop_worker

SAMPLE_INTERVAL = 0.1


@dataclass(slots=True)
class MemoryResult:
    rows: int
    streamed: bool
    insert_seconds: float  # the upstream INSERT, to its commit
    apply_seconds: float  # upstream commit to downstream applied_lsn past it
    total_seconds: float
    peak_rss_mb: float  # VmHWM: the worker's high-water mark, whole life
    peak_sampled_rss_mb: float  # highest VmRSS seen while the transaction went through
    start_rss_mb: float
    peak_spool_mb: float
    worker_restarts: int


def _status_kb(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _dir_bytes(path: Path) -> int:
    total = 0
    try:
        for entry in path.iterdir():
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                continue
    except FileNotFoundError:
        pass
    return total


class _Sampler(threading.Thread):
    """Samples the worker's RSS and its spool's size until stopped."""

    def __init__(self, down: Cluster, pid: int, spool: Path):
        super().__init__(name="rss-sampler", daemon=True)
        self.down = down
        self.pid = pid
        self.spool = spool
        self.stop_event = threading.Event()
        self.peak_rss_kb = 0
        self.peak_hwm_kb = 0
        self.peak_spool = 0
        self.pids = {pid}

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_INTERVAL):
            self.sample()

    def sample(self) -> None:
        rss = _status_kb(self.pid, "VmRSS")
        hwm = _status_kb(self.pid, "VmHWM")
        if rss is None:  # the worker went away: follow its successor
            pid = _worker_pid(self.down)
            if pid is not None:
                self.pid = pid
                self.pids.add(pid)
            return
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_hwm_kb = max(self.peak_hwm_kb, hwm or 0)
        self.peak_spool = max(self.peak_spool, _dir_bytes(self.spool))


def _worker_pid(down: Cluster) -> int | None:
    with _connect(down) as conn:
        pid = _scalar(conn, "SELECT pgfollower.worker_pid()")
    return int(pid) if pid else None


def _spool_dir(pid: int, slot: str) -> Path:
    """Where the launched worker spools (its environment has no TMPDIR)."""
    uid = os.stat(f"/proc/{pid}").st_uid
    return Path("/tmp") / f"pg_follower_py-{uid}" / slot


def bench_memory(
    rows: int,
    worker_path: str | None = None,
    work_mem: str | None = None,
    timeout: float = 3600.0,
) -> MemoryResult:
    """One ``rows``-row INSERT transaction upstream; the worker's memory meanwhile."""
    base = make_base_dir("pgf-bench-")
    up, down = Cluster(base, "up"), Cluster(base, "down")
    extra = {"pg_follower_py.worker_pythonpath": f"'{worker_path}'"} if worker_path else {}
    roomy = {"max_wal_size": "8GB", "checkpoint_timeout": "30min"}
    up_conf = {**roomy, **extra}
    # Set in the conninfo, the worker's walsender keeps it (stream.STREAMING_WORK_MEM_KB).
    upstream = up.dsn(options=f"-c logical_decoding_work_mem={work_mem}") if work_mem else up.dsn()
    try:
        up.init(up_conf).start()
        down.init({"wal_level": "replica", **roomy, **extra}).start()
        with _connect(up) as upc, _connect(down) as downc:
            upc.execute("CREATE EXTENSION pg_follower_py CASCADE")
            downc.execute("CREATE EXTENSION pg_follower_py CASCADE")
            downc.execute("SELECT start_follow(%s, 'bench', false)", [upstream])
            _wait(
                "the subscription to stream",
                lambda: _scalar(downc, "SELECT state FROM follow_status") == "streaming",
                60,
            )
            upc.execute("CREATE TABLE bench (id int PRIMARY KEY, payload text)")
            _wait(
                "the table downstream",
                lambda: _scalar(downc, "SELECT to_regclass('public.bench') IS NOT NULL"),
                60,
            )
            pid = _worker_pid(down)
            if pid is None:
                raise FollowerError("no worker runs for the downstream")
            slot = str(_scalar(downc, "SELECT slot_name FROM follow_status"))
            sampler = _Sampler(down, pid, _spool_dir(pid, slot))
            sampler.sample()
            start_rss = sampler.peak_rss_kb
            sampler.start()
            try:
                t0 = time.monotonic()
                upc.execute(
                    "INSERT INTO bench SELECT g, md5(g::text) FROM generate_series(1, %s) g",
                    [rows],
                )
                t1 = time.monotonic()
                target = _scalar(upc, "SELECT pg_current_wal_lsn()::text")
                _wait(
                    "the downstream to apply the transaction",
                    lambda: _scalar(
                        downc,
                        "SELECT applied_lsn >= %s::pg_lsn FROM follow_status",
                        [target],
                    ),
                    timeout,
                )
                t2 = time.monotonic()
            finally:
                sampler.stop_event.set()
                sampler.join()
            sampler.sample()
            applied = _scalar(downc, "SELECT count(*) FROM bench")
            if applied != rows:
                raise FollowerError(f"{applied} rows downstream, expected {rows}")
            streamed = _scalar(
                upc, "SELECT coalesce(sum(stream_txns), 0) > 0 FROM pg_stat_replication_slots"
            )
            downc.execute("SELECT stop_follow('bench')")
        return MemoryResult(
            rows=rows,
            streamed=bool(streamed),
            insert_seconds=round(t1 - t0, 2),
            apply_seconds=round(t2 - t1, 2),
            total_seconds=round(t2 - t0, 2),
            peak_rss_mb=round(sampler.peak_hwm_kb / 1024, 1),
            peak_sampled_rss_mb=round(sampler.peak_rss_kb / 1024, 1),
            start_rss_mb=round(start_rss / 1024, 1),
            peak_spool_mb=round(sampler.peak_spool / 1e6, 1),
            worker_restarts=len(sampler.pids) - 1,
        )
    finally:
        if down.running():
            stop_worker(down)
        up.destroy()
        down.destroy()
        shutil.rmtree(base, ignore_errors=True)


def run_memory(
    rows: int,
    worker_path: str | None,
    work_mem: str | None,
    json_path: str | None,
    timeout: float,
) -> int:
    worker_path = _worker_path_default(worker_path)
    print(
        f"bench memory: {rows:,} rows in one transaction"
        + (f", worker from {worker_path}" if worker_path else "")
        + (f", the walsender's logical_decoding_work_mem = {work_mem}" if work_mem else ""),
        flush=True,
    )
    result = bench_memory(rows, worker_path=worker_path, work_mem=work_mem, timeout=timeout)
    width = max(len(k) for k in asdict(result))
    for key, value in asdict(result).items():
        print(f"  {key:<{width}}  {value}")
    if json_path:
        Path(json_path).write_text(json.dumps(asdict(result), indent=1) + "\n")
    return 0
