"""Runs each workload on each system, on a fresh cluster pair per run."""

from __future__ import annotations

import contextlib
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pg_follower.errors import FollowerError
from pg_follower.ops.bench.common import BENCH_SETTINGS, POLL_INTERVAL, connect, scalar, wait
from pg_follower.ops.bench.lag import LagSampler
from pg_follower.ops.bench.systems import SYSTEMS, System
from pg_follower.ops.bench.workloads import WORKLOADS, Figures, Workload, oltp_seconds
from pg_follower.ops.cluster import SUPERUSER, Cluster, bindir, make_base_dir

MARKER_TABLE = "bench_marker"


@dataclass(slots=True)
class Options:
    only: list[str]
    scale: float = 1.0
    repeat: int = 1
    timeout: float = 3600.0
    worker_path: str | None = None
    oltp_rate: int = 500


@dataclass(slots=True)
class PgbenchResult:
    started: float
    ended: float
    transactions: int
    tps: float | None
    output: str


@dataclass(slots=True)
class Run:
    """One workload on one system, on its own pair of clusters."""

    workload: Workload
    system: System
    options: Options
    up: Cluster
    down: Cluster
    upc: psycopg.Connection[Any]
    downc: psycopg.Connection[Any]
    expected_counts: dict[str, int] = field(default_factory=dict)
    markers: int = 0

    @property
    def scale(self) -> float:
        return self.options.scale

    @property
    def size(self) -> int:
        return self.workload.size(self.options.scale)

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def caught_up(self) -> float:
        """Commit a marker row upstream; the time it is first seen downstream."""
        self.markers += 1
        marker = self.markers
        self.upc.execute(f"INSERT INTO {MARKER_TABLE} VALUES (%s)", [marker])
        return wait(
            f"marker {marker} to be visible downstream ({self.system.name})",
            lambda: scalar(
                self.downc, f"SELECT EXISTS (SELECT FROM {MARKER_TABLE} WHERE id = %s)", [marker]
            ),
            self.options.timeout,
            POLL_INTERVAL,
            self._state,
        )

    def _state(self) -> str:
        try:
            return self.system.describe(self.downc)
        except psycopg.Error as exc:
            return f"cannot tell: {exc}"

    def follow_and_wait(self) -> float:
        """Start the system; the time its initial copy is over and every count matches."""
        self.system.follow(self.downc)
        what = f"the initial copy ({self.system.name})"
        timeout = self.options.timeout
        wait(what, lambda: self.system.copied(self.downc), timeout, POLL_INTERVAL, self._state)
        return wait(what, self._counts_match, timeout, POLL_INTERVAL, self._state)

    def _counts_match(self) -> bool:
        return all(
            _count(self.downc, table) == rows for table, rows in self.expected_counts.items()
        )

    def lag_sampler(self) -> LagSampler:
        return LagSampler(self.up.dsn(), self.down.dsn(), self.system.origin_lsn_query)

    def pgbench(self, args: list[str], script: str | None) -> PgbenchResult:
        with tempfile.NamedTemporaryFile("w", suffix=".pgbench", prefix="pgf-bench-") as f:
            if script is not None:
                f.write(script)
                f.flush()
                args = [*args, "-f", f.name]
            started = time.monotonic()
            done = self._pgbench(args)
            ended = time.monotonic()
        processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
        tps = re.search(r"tps = ([\d.]+)", done.stdout)
        return PgbenchResult(
            started=started,
            ended=ended,
            transactions=int(processed.group(1)) if processed else 0,
            tps=float(tps.group(1)) if tps else None,
            output=done.stdout,
        )

    def pgbench_init(self) -> None:
        self._pgbench(["-i", "-q", "-s", "1"])

    def _pgbench(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        argv = [str(bindir() / "pgbench"), *args]
        argv += ["-h", str(self.up.sockdir), "-p", str(self.up.port), "-U", SUPERUSER, "postgres"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise FollowerError(f"pgbench {' '.join(args)} failed: {done.stderr.strip()}")
        return done


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
    return int(conn.execute(query).fetchone()[0])  # type: ignore[index]


def _upstream_counts(upc: psycopg.Connection[Any]) -> dict[str, int]:
    tables = [
        str(r[0])
        for r in upc.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    ]
    return {table: _count(upc, table) for table in tables}


def run_once(workload: Workload, system_name: str, options: Options) -> Figures:
    """A fresh cluster pair, the workload's setup, the system, the measured step."""
    if workload.standalone is not None:
        return workload.standalone(options, workload.size(options.scale))
    base = make_base_dir(f"pgf-bench-{workload.name}-")
    up, down = Cluster(base, "up"), Cluster(base, "down")
    system = SYSTEMS[system_name](up, down, options.worker_path)
    try:
        up.init(BENCH_SETTINGS).start()
        down.init({**BENCH_SETTINGS, **system.downstream_settings()}).start()
        with connect(up) as upc, connect(down) as downc:
            run = Run(workload, system, options, up, down, upc, downc)
            system.prepare(upc, downc)
            upc.execute(f"CREATE TABLE {MARKER_TABLE} (id int PRIMARY KEY)")
            if workload.setup is not None:
                workload.setup(run)
            upc.execute("VACUUM ANALYZE")
            run.expected_counts = _upstream_counts(upc)
            system.before_follow(upc, downc)
            upc.execute("CHECKPOINT")
            if not workload.measures_copy:
                run.follow_and_wait()
                upc.execute("CHECKPOINT")
                downc.execute("CHECKPOINT")
                # Whatever the copy left to stream is applied, and the origin
                # is past the checkpoint record (no phantom lag at the start).
                run.caught_up()
            assert workload.measure is not None
            figures = workload.measure(run)
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    finally:
        with contextlib.suppress(Exception):
            system.teardown()
        up.destroy()
        down.destroy()
        shutil.rmtree(base, ignore_errors=True)


def planned_size(workload: Workload, options: Options) -> int:
    """How many rows or transactions the workload is meant to run."""
    if workload.name == "oltp-rate":
        return options.oltp_rate * oltp_seconds(options.scale)
    return workload.size(options.scale)


def systems_of(workload: Workload) -> list[str]:
    return ["ours"] if workload.standalone is not None else list(SYSTEMS)


def median_figures(runs: list[Figures]) -> Figures:
    """Each numeric figure's median over the runs (seconds the same way)."""
    merged: Figures = {}
    for key in runs[0]:
        values = [r[key] for r in runs if key in r]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            merged[key] = round(statistics.median(values))
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            merged[key] = round(statistics.median(values), 3)
        elif not isinstance(values[0], list):  # series stay in the runs
            merged[key] = values[0]
    return merged


def run_suite(options: Options, log: Any = print) -> list[dict[str, Any]]:
    """Every chosen workload, each system ``repeat`` times, native and ours in turn."""
    results = []
    for name in options.only:
        workload = WORKLOADS[name]
        names = systems_of(workload)
        runs: dict[str, list[Figures]] = {s: [] for s in names}
        errors: dict[str, str] = {}
        for attempt in range(1, options.repeat + 1):
            for system_name in names:
                if system_name in errors:
                    continue
                label = f"{name} / {system_name} ({attempt}/{options.repeat})"
                log(f"  {label} ...", end="", flush=True)
                try:
                    figures = run_once(workload, system_name, options)
                except (FollowerError, psycopg.Error, AssertionError) as exc:
                    errors[system_name] = str(exc).strip().splitlines()[0]
                    log(f" failed: {errors[system_name]}", flush=True)
                    continue
                runs[system_name].append(figures)
                log(f" {figures['seconds']:.2f} s", flush=True)
        entry: dict[str, Any] = {
            "workload": name,
            "description": workload.description,
            "unit": workload.unit,
            "size": planned_size(workload, options),
        }
        if workload.section:
            entry["section"] = workload.section
        for system_name in SYSTEMS:
            system_runs = runs.get(system_name)
            if system_runs:
                summary = median_figures(system_runs)
                summary["rate_per_second"] = _rate(summary)
                summary["runs"] = system_runs
                entry[system_name] = summary
            else:
                entry[system_name] = None
            if system_name in errors:
                entry.setdefault("errors", {})[system_name] = errors[system_name]
        native, ours = entry.get("native"), entry.get("ours")
        entry["ratio"] = (
            round(native["seconds"] / ours["seconds"], 3)
            if native and ours and ours["seconds"] > 0
            else None
        )
        results.append(entry)
    return results


def _rate(figures: Figures) -> float | None:
    seconds = figures.get("seconds")
    count = figures.get("count")
    if not seconds or not count:
        return None
    return round(float(count) / float(seconds), 1)
