"""The DuckDB destination's figures (no native counterpart): the back-fill of
N rows, and N row events of change data applied after a back-fill.

Each runs on one throwaway upstream cluster and a fresh DuckDB file; the
pipeline runs in this process with ``until_caught_up``, as ``pg-follower
duckdb --until-caught-up`` does.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from pg_follower.ops.bench.common import BENCH_SETTINGS, connect
from pg_follower.ops.cluster import Cluster, make_base_dir

if TYPE_CHECKING:
    from pg_follower.ops.bench.runner import Options
    from pg_follower.ops.bench.workloads import Figures

BACKFILL_TARGET = 300_000  # rows/s the issue asks for on the 2-core machine
CDC_TARGET = 50_000  # row events/s
CDC_TRANSACTION_ROWS = 10_000  # the change mix commits in transactions of this many rows
TABLE = (
    "CREATE TABLE bench_rows (id int PRIMARY KEY, n int NOT NULL, payload text NOT NULL,"
    " at timestamptz NOT NULL DEFAULT now())"
)


def _copy(up: Cluster, database: Path) -> tuple[float, int, int]:
    """Run the pipeline until caught up: seconds, rows back-filled, changes applied."""
    from pg_follower.destinations.duckdb import DuckDBDestination
    from pg_follower.pipeline import Pipeline
    from pg_follower.source.postgres import PostgresSource

    destination = DuckDBDestination(str(database), slot="bench_duckdb")
    source = PostgresSource(up.dsn(), slot="bench_duckdb", publication="bench")
    pipeline = Pipeline(source, destination, snapshot=True, until_caught_up=True, own_slot=True)
    started = time.monotonic()
    pipeline.run()
    return time.monotonic() - started, destination.rows_loaded, pipeline.changes


def _count(database: Path) -> int:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM public.bench_rows").fetchone()
    return int(row[0]) if row else 0


def _with_upstream(rows: int, run: str) -> Figures:
    base = make_base_dir(f"pgf-bench-duckdb-{run}-")
    up = Cluster(base, "up")
    database = base / "bench.duckdb"
    try:
        up.init(BENCH_SETTINGS).start()
        with connect(up) as upc:
            upc.execute(TABLE)
            upc.execute(
                "INSERT INTO bench_rows SELECT g, g, md5(g::text) FROM generate_series(1, %s) g",
                [rows],
            )
            upc.execute("CREATE PUBLICATION bench FOR TABLE bench_rows")
            upc.execute("VACUUM ANALYZE")
            upc.execute("CHECKPOINT")
            if run == "backfill":
                seconds, loaded, _ = _copy(up, database)
                if _count(database) != rows:
                    raise AssertionError(f"the DuckDB copy has {_count(database)} rows, not {rows}")
                return {"seconds": seconds, "count": loaded, "target_per_second": BACKFILL_TARGET}
            _copy(up, database)  # the back-fill, not measured
            events = _change_mix(upc, rows)
            upc.execute("CHECKPOINT")
            seconds, _, changes = _copy(up, database)
            expected = int(upc.execute("SELECT count(*) FROM bench_rows").fetchone()[0])  # type: ignore[index]
            if changes != events or _count(database) != expected:
                raise AssertionError(
                    f"{changes} changes applied of {events}; the copy has {_count(database)}"
                    f" rows, the upstream {expected}"
                )
            return {"seconds": seconds, "count": changes, "target_per_second": CDC_TARGET}
    finally:
        up.destroy()
        shutil.rmtree(base, ignore_errors=True)


def _change_mix(conn: psycopg.Connection[Any], events: int) -> int:
    """40% INSERT, 40% UPDATE, 20% DELETE, in transactions of CDC_TRANSACTION_ROWS."""
    inserts, updates = round(events * 0.4), round(events * 0.4)
    deletes = events - inserts - updates
    step = CDC_TRANSACTION_ROWS
    done = 0
    plan = [
        ("INSERT INTO bench_rows SELECT g, g, md5(g::text) FROM generate_series(%s, %s) g",
         10_000_000, inserts),
        ("UPDATE bench_rows SET n = n + 1, payload = md5(payload) WHERE id BETWEEN %s AND %s",
         1, updates),
        ("DELETE FROM bench_rows WHERE id BETWEEN %s AND %s", updates + 1, deletes),
    ]  # fmt: skip
    for statement, first, count in plan:
        for start in range(first, first + count, step):
            end = min(start + step, first + count) - 1
            cur = conn.execute(statement, [start, end])
            done += cur.rowcount
    return done


def backfill_standalone(options: Options, rows: int) -> Figures:
    return _with_upstream(rows, "backfill")


def cdc_standalone(options: Options, events: int) -> Figures:
    return _with_upstream(events, "cdc")
