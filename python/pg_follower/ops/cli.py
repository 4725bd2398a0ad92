"""The ``pg-follower`` command line: worker, status, stream, duckdb, demo, bench."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pg_follower import __version__
from pg_follower.errors import FollowerError

logger = logging.getLogger("pg_follower.cli")


def _dsn_default() -> str | None:
    return os.environ.get("PG_FOLLOWER_DSN")


def cmd_worker(args: argparse.Namespace) -> int:
    from pg_follower.ops import daemon
    from pg_follower.ops.supervise import Supervisor

    if not args.dsn:
        print(
            "pg-follower worker: no downstream given: pass --dsn or set PG_FOLLOWER_DSN",
            file=sys.stderr,
        )
        return 2
    daemon.reset_signals()
    if args.detach:
        daemon.detach(args.log_file or os.devnull)
    daemon.configure_logging(args.log_level, args.log_format)
    daemon.set_title()
    supervisor = Supervisor(args.dsn, metrics_address=args.metrics_address)
    supervisor.install_signal_handlers()
    return supervisor.run()


def cmd_status(args: argparse.Namespace) -> int:
    from pg_follower.ops.status import show_status

    if args.watch or args.once:
        from pg_follower.ops.screen import show_screen
        from pg_follower.source import conninfo

        dsn = args.dsn or ""
        title = f"pg_follower_py  {conninfo.redact(dsn)}" if dsn else "pg_follower_py"
        return show_screen(dsn, title, interval=args.interval, once=args.once)
    return show_status(args.dsn or "", watch=False, interval=args.interval)


def cmd_stream(args: argparse.Namespace) -> int:
    from pg_follower.ops.stream import run_stream
    from pg_follower.source.decode import str_to_lsn

    start = None
    if args.start is not None:
        try:
            start = str_to_lsn(args.start)
        except ValueError:
            print(
                f"pg-follower stream: --from {args.start!r} is not an LSN: give the end_lsn"
                " of the last commit line kept, as X/Y (e.g. 0/16B3748)",
                file=sys.stderr,
            )
            return 2
    if not args.upstream:
        print(
            "pg-follower stream: no upstream given: pass --upstream CONNINFO"
            " or set PG_FOLLOWER_UPSTREAM",
            file=sys.stderr,
        )
        return 2
    return run_stream(args.upstream, args.slot, args.publication, args.snapshot, start)


def cmd_demo(args: argparse.Namespace) -> int:
    from pg_follower.ops.demo import run_demo

    return run_demo(keep=args.keep)


def cmd_bench_memory(args: argparse.Namespace) -> int:
    from pg_follower.ops.bench import run_memory

    return run_memory(
        args.rows,
        worker_path=args.worker_path,
        work_mem=args.logical_decoding_work_mem,
        json_path=args.json,
        timeout=args.timeout,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from pg_follower.ops.bench import run_bench

    return run_bench(
        only=args.only,
        scale=args.scale,
        repeat=args.repeat,
        timeout=args.bench_timeout,
        json_path=args.bench_json,
        plot_path=args.plot,
        worker_path=args.bench_worker_path,
        oltp_rate=args.oltp_rate,
    )


def cmd_duckdb(args: argparse.Namespace) -> int:
    from pg_follower.ops import daemon
    from pg_follower.ops.duckdb_copy import run_duckdb

    daemon.configure_logging(args.log_level)
    return run_duckdb(
        args.upstream,
        args.database,
        publication=args.publication,
        slot=args.slot,
        until_caught_up=args.until_caught_up,
    )


def cmd_drop_slot(args: argparse.Namespace) -> int:
    from pg_follower.ops.slots import drop_slot

    conninfo = sys.stdin.read().strip()
    return drop_slot(conninfo, args.slot)


def cmd_sequences(_args: argparse.Namespace) -> int:
    from pg_follower.ops.slots import print_sequences

    return print_sequences(sys.stdin.read().strip())


def cmd_wal_lsn(_args: argparse.Namespace) -> int:
    from pg_follower.ops.slots import print_wal_lsn

    return print_wal_lsn(sys.stdin.read().strip())


def cmd_roles(args: argparse.Namespace) -> int:
    from pg_follower.ops.slots import print_roles

    return print_roles(sys.stdin.read().strip(), args.with_passwords)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pg-follower", description="Logical replication follower for PostgreSQL."
    )
    parser.add_argument("--version", action="version", version=f"pg_follower_py {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="serve every subscription of a downstream database")
    worker.add_argument(
        "--dsn", default=_dsn_default(), help="the downstream database (default: $PG_FOLLOWER_DSN)"
    )
    worker.add_argument("--detach", action="store_true", help="run in the background")
    worker.add_argument("--log-file", help="with --detach: where to write the log")
    worker.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    worker.add_argument(
        "--log-format",
        default=os.environ.get("PG_FOLLOWER_LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="json: one object per line for log shippers (default: $PG_FOLLOWER_LOG_FORMAT,"
        " else text)",
    )
    worker.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        default=os.environ.get("PG_FOLLOWER_METRICS_ADDRESS"),
        help="serve Prometheus metrics there (default: $PG_FOLLOWER_METRICS_ADDRESS, then"
        " the database's pg_follower_py.metrics_address setting; else none)",
    )
    worker.set_defaults(func=cmd_worker)

    status = sub.add_parser("status", help="show follow_status of a downstream database")
    status.add_argument(
        "--dsn",
        default=_dsn_default(),
        help="the downstream database (default: $PG_FOLLOWER_DSN, then libpq's)",
    )
    status.add_argument(
        "--watch", action="store_true", help="a live screen, refreshed until interrupted"
    )
    status.add_argument(
        "--once", action="store_true", help="one frame of the live screen, then exit"
    )
    status.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    status.set_defaults(func=cmd_status)

    stream = sub.add_parser(
        "stream",
        help="an upstream's changes as JSON lines on stdout",
        description="Writes the upstream's committed transactions to stdout, one JSON object"
        " per line (begin, insert/update/delete/truncate/ddl, commit), each transaction"
        " flushed whole. Needs wal_level = logical and a publication upstream.",
    )
    stream.add_argument(
        "--upstream",
        metavar="CONNINFO",
        default=os.environ.get("PG_FOLLOWER_UPSTREAM"),
        help="the upstream database (default: $PG_FOLLOWER_UPSTREAM)",
    )
    stream.add_argument(
        "--slot", required=True, metavar="NAME", help="the replication slot (made if missing)"
    )
    stream.add_argument(
        "--publication",
        metavar="P",
        help="the publication to stream (default: pg_follower_py, where our extension made it)",
    )
    stream.add_argument(
        "--snapshot",
        action="store_true",
        help='first write the published tables\' rows (insert lines with "snapshot": true)'
        " from the snapshot of the slot, which must be new",
    )
    stream.add_argument(
        "--from",
        dest="start",
        metavar="LSN",
        help="resume after this end_lsn (of the last commit line kept)",
    )
    stream.set_defaults(func=cmd_stream)

    demo = sub.add_parser("demo", help="the seed walkthrough on two throwaway clusters")
    demo.add_argument("--keep", action="store_true", help="leave the clusters running")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser(
        "bench",
        help="native logical replication and pg_follower_py side by side",
        description="Runs each workload on native logical replication and on pg_follower_py,"
        " each on a fresh pair of throwaway clusters, and prints seconds, rates and the"
        " ratio native/ours (above 1: pg_follower_py is faster).",
    )
    from pg_follower.ops.bench.workloads import WORKLOADS

    bench.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help=f"these workloads only (default: all): {', '.join(WORKLOADS)}",
    )
    bench.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply row and transaction counts (default 1)",
    )
    bench.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each N times, report the median (default 1)",
    )
    bench.add_argument("--json", dest="bench_json", metavar="PATH", help="write the figures there")
    bench.add_argument("--plot", metavar="PATH", help="draw a PNG bar chart there (matplotlib)")
    bench.add_argument(
        "--timeout",
        dest="bench_timeout",
        metavar="SECONDS",
        type=float,
        default=3600.0,
        help="seconds any one wait may take (default 3600)",
    )
    bench.add_argument(
        "--oltp-rate",
        type=int,
        default=500,
        metavar="TPS",
        help="the oltp-rate workload's pgbench -R (default 500)",
    )
    bench.add_argument(
        "--worker-path",
        dest="bench_worker_path",
        metavar="DIR",
        help="run the worker from this source tree (default: $PG_FOLLOWER_WORKER_PATH,"
        " else the installed one)",
    )
    bench.set_defaults(func=cmd_bench)
    bench_sub = bench.add_subparsers(dest="bench", metavar="memory")
    memory = bench_sub.add_parser(
        "memory", help="the worker's memory while one big transaction goes through"
    )
    memory.add_argument("--rows", type=int, default=10_000_000, help="rows in the transaction")
    memory.add_argument(
        "--worker-path",
        help="run the worker from this source tree (default: $PG_FOLLOWER_WORKER_PATH,"
        " else the installed one)",
    )
    memory.add_argument(
        "--logical-decoding-work-mem",
        metavar="SIZE",
        help="the worker's walsender's setting, in the upstream conninfo (default: the"
        " worker's 8MB; past the transaction's size, it is sent at commit instead of"
        " streamed)",
    )
    memory.add_argument("--json", metavar="FILE", help="also write the figures there")
    memory.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds to wait for the apply"
    )
    memory.set_defaults(func=cmd_bench_memory)

    duck = sub.add_parser(
        "duckdb",
        help="keep an embedded DuckDB file a copy of the published tables",
        description="Back-fills the DuckDB file from a slot's snapshot, then applies the"
        " upstream's changes in batches, exactly once across restarts. Tables are"
        " schema.table as upstream; the upstream needs only wal_level = logical and a"
        " publication.",
    )
    duck.add_argument("--upstream", required=True, metavar="CONNINFO", help="the upstream")
    duck.add_argument("--database", required=True, metavar="FILE", help="the DuckDB file")
    duck.add_argument(
        "--publication",
        help="the upstream publication to copy (default: pg_follower_py's, if there)",
    )
    duck.add_argument(
        "--slot",
        help="the upstream slot (default: pgf_duckdb_ and a hash of the file's absolute path)",
    )
    duck.add_argument(
        "--until-caught-up",
        action="store_true",
        help="exit 0 once everything the upstream had committed at the start is in the file",
    )
    duck.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    duck.set_defaults(func=cmd_duckdb)

    drop = sub.add_parser("drop-slot", help=argparse.SUPPRESS)
    drop.add_argument("--slot", required=True)
    drop.set_defaults(func=cmd_drop_slot)
    seqs = sub.add_parser("upstream-sequences", help=argparse.SUPPRESS)
    seqs.set_defaults(func=cmd_sequences)
    wal = sub.add_parser("upstream-wal-lsn", help=argparse.SUPPRESS)
    wal.set_defaults(func=cmd_wal_lsn)
    roles = sub.add_parser("upstream-roles", help=argparse.SUPPRESS)
    roles.add_argument("--with-passwords", action="store_true")
    roles.set_defaults(func=cmd_roles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except FollowerError as exc:
        print(f"pg-follower {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
