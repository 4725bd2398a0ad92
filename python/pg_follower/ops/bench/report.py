"""The bench's output: the table, the JSON file (with the machine) and the plot."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pg_follower import __version__
from pg_follower.ops.bench.common import BENCH_SETTINGS, POLL_INTERVAL
from pg_follower.ops.bench.lag import LAG_INTERVAL
from pg_follower.ops.bench.runner import Options
from pg_follower.ops.cluster import bindir

NATIVE_COLOR, OURS_COLOR = "#8c8c8c", "#2a7ab9"
HEADERS = ["workload", "size", "native s", "ours s", "native /s", "ours /s", "native/ours"]


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value < 1000:
        return f"{value:.{digits}f}"
    return f"{round(value):,}"


def _figure(entry: dict[str, Any], system: str, key: str) -> Any:
    figures = entry.get(system)
    return figures.get(key) if figures else None


def _failed(entry: dict[str, Any], system: str) -> bool:
    return system in entry.get("errors", {})


def _lines(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)])

    return [line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


SECTION_HEADERS = ["size", "seconds", "per second", "target /s"]


def format_section(section: str, results: list[dict[str, Any]]) -> list[str]:
    """Workloads with no native counterpart (the DuckDB destination's)."""
    rows = []
    for e in results:
        size = _figure(e, "ours", "count") or e["size"]
        if _failed(e, "ours"):
            figures = ["failed", "failed"]
        else:
            figures = [
                _num(_figure(e, "ours", "seconds")),
                _num(_figure(e, "ours", "rate_per_second") and round(e["ours"]["rate_per_second"])),
            ]
        target = _figure(e, "ours", "target_per_second")
        rows.append([e["workload"], f"{size:,} {e['unit']}", *figures, _num(target)])
    return _lines([section, *SECTION_HEADERS], rows)


def format_table(results: list[dict[str, Any]]) -> str:
    sections: dict[str, list[dict[str, Any]]] = {}
    for e in results:
        if e.get("section"):
            sections.setdefault(e["section"], []).append(e)
    compared = [e for e in results if not e.get("section")]
    out = _compared_table(compared) if compared else []
    for section, entries in sections.items():
        out += ([""] if out else []) + format_section(section, entries)
    notes = format_notes(results)
    return "\n".join(out + (["", *notes] if notes else []))


def _compared_table(results: list[dict[str, Any]]) -> list[str]:
    rows = []
    for e in results:
        size = _figure(e, "ours", "count") or _figure(e, "native", "count") or e["size"]
        cells = [e["workload"], f"{size:,} {e['unit']}"]
        for key in ("seconds", "rate_per_second"):
            for system in ("native", "ours"):
                value = _figure(e, system, key)
                text = _num(value) if key == "seconds" else _num(value and round(value))
                cells.append("failed" if _failed(e, system) else text)
        cells.append(_num(e["ratio"], 2))
        rows.append(cells)
    return _lines(HEADERS, rows)


def format_notes(results: list[dict[str, Any]]) -> list[str]:
    notes = []
    for e in results:
        name = e["workload"]
        n, o = e.get("native"), e.get("ours")
        if name == "oltp-rate":
            for label, f in (("native", n), ("ours", o)):
                if f:
                    notes.append(
                        f"oltp-rate {label}: lag p50 {f['lag_p50']:.2f} s, p99"
                        f" {f['lag_p99']:.2f} s, max {f['lag_max']:.2f} s"
                        f" ({f['lag_samples']} samples); pgbench {_num(f.get('pgbench_tps'), 0)}"
                        f" tps of {f['rate']} asked; caught up {f['behind_seconds']:.2f} s"
                        " after pgbench's end"
                    )
        elif (n and "behind_seconds" in n) or (o and "behind_seconds" in (o or {})):
            parts = [
                f"{label} {f['behind_seconds']:.2f} s"
                for label, f in (("native", n), ("ours", o))
                if f
            ]
            notes.append(f"{name}: caught up after pgbench's end: " + ", ".join(parts))
        elif name == "memory" and o:
            notes.append(
                f"memory (ours only): peak RSS {o['peak_rss_mb']} MB"
                f" (sampled {o['peak_sampled_rss_mb']} MB, at start {o['start_rss_mb']} MB),"
                f" spool peak {o['peak_spool_mb']} MB, streamed {o['streamed']}"
            )
        for system, message in e.get("errors", {}).items():
            notes.append(f"{name} / {system} failed: {message}")
    return notes


# -- the machine ------------------------------------------------------------------
def _first(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _command(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def machine(options: Options) -> dict[str, Any]:
    import psycopg

    memory = _first("/proc/meminfo", "MemTotal")
    worker = options.worker_path
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "memory_mb": round(int(memory.split()[0]) / 1024) if memory else None,
        "kernel": platform.release(),
        "os": platform.platform(),
        "postgresql": _command([str(bindir() / "postgres"), "--version"]),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "pg_follower_py": __version__,
        "worker_path": worker,
        "worker_commit": _command(["git", "-C", worker, "rev-parse", "HEAD"]) if worker else None,
        "worker_changes": _command(["git", "-C", worker, "status", "--porcelain", "--", "."])
        if worker
        else None,  # uncommitted changes in the worker's tree, if any
    }


def document(results: list[dict[str, Any]], options: Options) -> dict[str, Any]:
    return {
        "bench": "pg-follower bench",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {
            "only": options.only,
            "scale": options.scale,
            "repeat": options.repeat,
            "timeout": options.timeout,
            "oltp_rate": options.oltp_rate,
        },
        "machine": machine(options),
        "settings": {
            "both_clusters": dict(BENCH_SETTINGS),
            "native_subscription": "CREATE SUBSCRIPTION with default options",
            "ours": "start_follow(conninfo, 'bench', true)",
            "visible_poll_seconds": POLL_INTERVAL,
            "lag_sample_seconds": LAG_INTERVAL,
        },
        "results": results,
    }


def write_json(path: str, results: list[dict[str, Any]], options: Options) -> None:
    Path(path).write_text(json.dumps(document(results, options), indent=1) + "\n")


# -- the plot ---------------------------------------------------------------------
def write_plot(path: str, results: list[dict[str, Any]], options: Options) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    compared = [e for e in results if (e.get("native") or e.get("ours")) and not e.get("section")]
    oltp = next((e for e in results if e["workload"] == "oltp-rate"), None)
    panels = 2 if oltp else 1
    fig, axes = plt.subplots(panels, 1, figsize=(9, 3 + 0.55 * len(compared) + 3 * (panels - 1)))
    ax = axes[0] if panels == 2 else axes
    names = [
        e["workload"] + ("" if e.get("native") or "native" in e.get("errors", {}) else " (ours)")
        for e in compared
    ][::-1]
    height = 0.38
    for offset, system, color in (
        (height / 2, "native", "#8c8c8c"),
        (-height / 2, "ours", "#2a7ab9"),
    ):
        values = [_figure(e, system, "seconds") or 0 for e in compared][::-1]
        ys = [i + offset for i in range(len(names))]
        ax.barh(ys, values, height, label=system, color=color)
    for i, e in enumerate(compared[::-1]):
        if e["ratio"] is not None:
            longest = max(_figure(e, s, "seconds") or 0 for s in ("native", "ours"))
            ax.text(longest, i, f"  {e['ratio']:.2f}x", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("seconds (lower is better); label: native / ours")
    ax.set_title(f"pg-follower bench, scale {options.scale}, median of {options.repeat}")
    ax.legend(loc="best")
    if oltp:
        lag_ax = axes[1]
        for system, color in (("native", NATIVE_COLOR), ("ours", OURS_COLOR)):
            figures = oltp.get(system)
            if figures and figures.get("runs"):
                series = figures["runs"][0].get("lag_series") or []
                lag_ax.plot(
                    [t for t, _ in series], [v for _, v in series], label=system, color=color
                )
        lag_ax.set_xlabel("seconds since pgbench start")
        lag_ax.set_ylabel("replication lag, s")
        lag_ax.set_title(f"oltp-rate: lag at {options.oltp_rate} tps (first run)")
        lag_ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
