"""The workloads: what each sets up upstream (not measured) and what it measures.

Each run of a workload gets a fresh cluster pair. The runner creates the
``bench_marker`` table, calls ``setup``, then (unless the workload measures
the initial copy itself) starts the system and waits for its initial copy,
then calls ``measure``. "Visible downstream" is always ``Run.caught_up``: a
marker row committed upstream after the workload, polled for downstream
every 20 ms; both systems apply in upstream commit order, so it is applied
only after everything before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pg_follower.ops.bench.runner import Options, PgbenchResult, Run

Figures = dict[str, Any]  # "seconds" and "count" (of the unit), plus extras


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    description: str
    unit: str  # what count() counts: "rows" or "txns"
    full_size: int  # the count at --scale 1
    setup: Callable[[Run], None] | None = None
    measure: Callable[[Run], Figures] | None = None
    measures_copy: bool = False  # measure() starts the system itself
    standalone: Callable[[Options, int], Figures] | None = None  # ours only, own clusters
    section: str | None = None  # printed in a table of its own (no native counterpart)

    def size(self, scale: float) -> int:
        return max(1, round(self.full_size * scale))


# -- insert / update / delete: one big transaction --------------------------------
def _rows_table(run: Run) -> None:
    run.upc.execute(
        "CREATE TABLE bench_rows (id int PRIMARY KEY, n int NOT NULL, payload text NOT NULL)"
    )


def _fill_rows(run: Run) -> None:
    _rows_table(run)
    run.upc.execute(
        "INSERT INTO bench_rows SELECT g, g, md5(g::text) FROM generate_series(1, %s) g",
        [run.size],
    )


def _one_transaction(statement: str) -> Callable[[Run], Figures]:
    def measure(run: Run) -> Figures:
        started = run.now()
        cur = run.upc.execute(statement, [run.size] if "%s" in statement else None)
        committed = run.now()
        if cur.rowcount != run.size:
            raise AssertionError(f"{statement!r} touched {cur.rowcount} rows, not {run.size}")
        visible = run.caught_up()
        return {
            "seconds": visible - committed,
            "count": run.size,
            "upstream_seconds": committed - started,
        }

    return measure


# -- small transactions and TPC-B from pgbench -----------------------------------
CLIENTS = ["-c", "4", "-j", "2"]
SMALL_SCRIPT = "INSERT INTO bench_small (client) VALUES (:client_id);\n"


def _small_setup(run: Run) -> None:
    run.upc.execute(
        "CREATE TABLE bench_small (id bigserial PRIMARY KEY, client int NOT NULL,"
        " at timestamptz NOT NULL DEFAULT now())"
    )


def _per_client(run: Run) -> int:
    return max(1, round(run.size / 4))


def _pgbench_figures(result: PgbenchResult, visible: float) -> Figures:
    """A pgbench run's figures: start to caught up, and how far behind its end."""
    return {
        "seconds": visible - result.started,
        "count": result.transactions,
        "behind_seconds": visible - result.ended,
        "pgbench_seconds": result.ended - result.started,
        "pgbench_tps": result.tps,
    }


def _pgbench_measure(script: str | None) -> Callable[[Run], Figures]:
    def measure(run: Run) -> Figures:
        args = ["-n", *CLIENTS, "-t", str(_per_client(run))]
        result = run.pgbench(args, script)
        return _pgbench_figures(result, run.caught_up())

    return measure


def _tpcb_setup(run: Run) -> None:
    run.pgbench_init()


# -- oltp-rate: a fixed rate of mixed transactions, lag sampled --------------------
OLTP_RATE = 500  # transactions a second: one native sustains on 2 cores
OLTP_SECONDS = 20  # at --scale 1; at least 2
MIX_ROWS = 100_000
OLTP_SCRIPT = f"""\\set aid random(1, 100000)
\\set tid random(1, 10)
\\set delta random(-5000, 5000)
\\set rid random(1, {2 * MIX_ROWS})
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = 1;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
  VALUES (:tid, 1, :aid, :delta, CURRENT_TIMESTAMP);
DELETE FROM bench_mix WHERE id = :rid;
INSERT INTO bench_mix VALUES (:rid, :delta) ON CONFLICT (id) DO NOTHING;
END;
"""


def oltp_seconds(scale: float) -> int:
    return max(2, round(OLTP_SECONDS * scale))


def _oltp_setup(run: Run) -> None:
    run.pgbench_init()
    run.upc.execute("CREATE TABLE bench_mix (id int PRIMARY KEY, v int NOT NULL)")
    run.upc.execute("INSERT INTO bench_mix SELECT g, g FROM generate_series(1, %s) g", [MIX_ROWS])


def _oltp_measure(run: Run) -> Figures:
    seconds = oltp_seconds(run.scale)
    args = ["-n", *CLIENTS, "-R", str(run.options.oltp_rate), "-T", str(seconds)]
    sampler = run.lag_sampler()
    sampler.start()
    try:
        result = run.pgbench(args, OLTP_SCRIPT)
        visible = run.caught_up()
    finally:
        lag = sampler.stop()
    return {
        **_pgbench_figures(result, visible),
        "rate": run.options.oltp_rate,
        "lag_p50": lag.p50,
        "lag_p99": lag.p99,
        "lag_max": lag.max,
        "lag_samples": lag.samples,
        "lag_series": lag.series,
    }


# -- copy: the initial copy of one big and four small tables ----------------------
COPY_PARTS = 4  # small tables of 1/20 of the rows each; the big one has the rest


def _copy_setup(run: Run) -> None:
    small = max(1, round(run.size / 20))
    big = max(1, run.size - COPY_PARTS * small)
    tables = [("bench_big", big)] + [(f"bench_part_{i}", small) for i in range(1, 5)]
    for table, rows in tables:
        run.upc.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, n int NOT NULL, payload text NOT NULL)"
        )
        run.upc.execute(
            f"INSERT INTO {table} SELECT g, g, md5(g::text) FROM generate_series(1, %s) g",
            [rows],
        )


def _copy_measure(run: Run) -> Figures:
    started = run.now()
    done = run.follow_and_wait()
    return {"seconds": done - started, "count": sum(run.expected_counts.values())}


# -- memory: today's bench memory -------------------------------------------------
MEMORY_FULL_ROWS = 1_000_000  # in the suite; `bench memory` alone keeps its own default


def _memory_standalone(options: Options, rows: int) -> Figures:
    from pg_follower.ops.bench.memory import bench_memory

    result = bench_memory(rows, worker_path=options.worker_path, timeout=options.timeout)
    return {
        "seconds": result.apply_seconds,
        "count": result.rows,
        "upstream_seconds": result.insert_seconds,
        "peak_rss_mb": result.peak_rss_mb,
        "peak_sampled_rss_mb": result.peak_sampled_rss_mb,
        "start_rss_mb": result.start_rss_mb,
        "peak_spool_mb": result.peak_spool_mb,
        "streamed": result.streamed,
        "worker_restarts": result.worker_restarts,
    }


# -- the DuckDB destination: its own table -----------------------------------------
def _duckdb_backfill(options: Options, rows: int) -> Figures:
    from pg_follower.ops.bench.duckdb_copy import backfill_standalone

    return backfill_standalone(options, rows)


def _duckdb_cdc(options: Options, events: int) -> Figures:
    from pg_follower.ops.bench.duckdb_copy import cdc_standalone

    return cdc_standalone(options, events)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "insert",
            "INSERT of N rows in one transaction: upstream commit -> all visible",
            "rows",
            1_000_000,
            setup=_rows_table,
            measure=_one_transaction(
                "INSERT INTO bench_rows SELECT g, g, md5(g::text) FROM generate_series(1, %s) g"
            ),
        ),
        Workload(
            "small-txns",
            "N single-row INSERT transactions, pgbench 4 clients: start -> caught up",
            "txns",
            50_000,
            setup=_small_setup,
            measure=_pgbench_measure(SMALL_SCRIPT),
        ),
        Workload(
            "copy",
            "initial copy of N rows, one big table and 4 small: follow -> all rows there",
            "rows",
            5_000_000,
            setup=_copy_setup,
            measure=_copy_measure,
            measures_copy=True,
        ),
        Workload(
            "update",
            "UPDATE of N rows in one transaction: commit -> visible",
            "rows",
            1_000_000,
            setup=_fill_rows,
            measure=_one_transaction("UPDATE bench_rows SET n = n + 1"),
        ),
        Workload(
            "delete",
            "DELETE of N rows in one transaction: commit -> visible",
            "rows",
            1_000_000,
            setup=_fill_rows,
            measure=_one_transaction("DELETE FROM bench_rows"),
        ),
        Workload(
            "tpcb",
            "N pgbench TPC-B transactions (scale 1), 4 clients: start -> caught up",
            "txns",
            20_000,
            setup=_tpcb_setup,
            measure=_pgbench_measure(None),
        ),
        Workload(
            "oltp-rate",
            "TPC-B plus a DELETE and an INSERT at a fixed rate (pgbench -R): start -> caught"
            " up, replication lag sampled every 100 ms",
            "txns",
            OLTP_RATE * OLTP_SECONDS,
            setup=_oltp_setup,
            measure=_oltp_measure,
        ),
        Workload(
            "memory",
            "ours only: the worker's peak RSS while an N-row transaction replicates",
            "rows",
            MEMORY_FULL_ROWS,
            standalone=_memory_standalone,
        ),
        Workload(
            "duckdb-backfill",
            "pg-follower duckdb: back-fill of an N-row table into a new DuckDB file",
            "rows",
            5_000_000,
            standalone=_duckdb_backfill,
            section="duckdb",
        ),
        Workload(
            "duckdb-cdc",
            "pg-follower duckdb: N row events (40% INSERT, 40% UPDATE, 20% DELETE, 10,000"
            " a transaction) applied after a back-fill of N rows",
            "row events",
            1_000_000,
            standalone=_duckdb_cdc,
            section="duckdb",
        ),
    )
}
