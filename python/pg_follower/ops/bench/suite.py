"""``pg-follower bench`` itself: parse the choices, run, print, write files."""

from __future__ import annotations

from pg_follower.errors import FollowerError
from pg_follower.ops.bench.common import worker_path as default_worker_path
from pg_follower.ops.bench.report import format_table, write_json, write_plot
from pg_follower.ops.bench.runner import Options, run_suite
from pg_follower.ops.bench.workloads import WORKLOADS, oltp_seconds


def parse_only(only: str | None) -> list[str]:
    if not only:
        return list(WORKLOADS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    for name in names:
        if name not in WORKLOADS:
            raise FollowerError(
                f"unknown workload {name!r} in --only: choose from {', '.join(WORKLOADS)}"
            )
    return names


def run_bench(
    only: str | None = None,
    scale: float = 1.0,
    repeat: int = 1,
    timeout: float = 3600.0,
    json_path: str | None = None,
    plot_path: str | None = None,
    worker_path: str | None = None,
    oltp_rate: int = 500,
) -> int:
    if scale <= 0:
        raise FollowerError(f"--scale must be above 0, not {scale}")
    if repeat < 1:
        raise FollowerError(f"--repeat must be 1 or more, not {repeat}")
    if oltp_rate < 1:
        raise FollowerError(f"--oltp-rate must be 1 or more, not {oltp_rate}")
    options = Options(
        only=parse_only(only),
        scale=scale,
        repeat=repeat,
        timeout=timeout,
        worker_path=default_worker_path(worker_path),
        oltp_rate=oltp_rate,
    )
    print(
        f"pg-follower bench: {', '.join(options.only)}; scale {scale}, repeat {repeat}"
        + (
            f", oltp-rate {oltp_rate} tps for {oltp_seconds(scale)} s"
            if "oltp-rate" in options.only
            else ""
        )
        + (f"; worker from {options.worker_path}" if options.worker_path else ""),
        flush=True,
    )
    results = run_suite(options)
    print()
    print(format_table(results))
    if json_path:
        write_json(json_path, results, options)
        print(f"\nfigures written to {json_path}")
    if plot_path:
        write_plot(plot_path, results, options)
        print(f"plot written to {plot_path}")
    return 1 if any(e.get("errors") for e in results) else 0
