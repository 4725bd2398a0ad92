"""``pg-follower status --watch``: follow_status as a live terminal screen (rich).

Throughput is computed between two refreshes from what ``follow_status``
shows: rows per second during the initial copy, transactions per second when
the view has a ``transactions_applied`` counter, else applied WAL per second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from pg_follower.ops.status import fetch
from pg_follower.source.decode import str_to_lsn

STATE_STYLES = {
    "streaming": "bold green",
    "copying": "bold cyan",
    "starting": "yellow",
    "paused": "magenta",
    "error": "bold red",
    "stopped": "dim",
}


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    applied: int | None
    transactions: int | None
    rows_copied: int


def _sample(row: dict[str, Any], at: float) -> Sample:
    applied = row.get("applied_lsn")
    transactions = row.get("transactions_applied")
    return Sample(
        at,
        str_to_lsn(str(applied)) if applied is not None else None,
        int(transactions) if transactions is not None else None,
        int(row.get("rows_copied") or 0),
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


class Screen:
    """One frame per call to ``frame``; remembers the previous sample of each row."""

    def __init__(self, title: str = ""):
        self.title = title
        self.previous: dict[str, Sample] = {}

    def frame(self, rows: list[dict[str, Any]], now: float | None = None) -> RenderableType:
        now = time.time() if now is None else now
        title = f"{self.title}  {time.strftime('%H:%M:%S', time.localtime(now))}"
        table = Table(expand=True, title=title.strip(), title_justify="left")
        for column in ("name", "state", "lag", "throughput", "progress", "last error"):
            wide = column in ("progress", "last error")
            table.add_column(column, overflow="fold", ratio=2 if wide else None)
        samples = {}
        for row in rows:
            sample = _sample(row, now)
            samples[row["name"]] = sample
            table.add_row(
                Text(str(row["name"]), style="bold"),
                Text(str(row["state"]), style=STATE_STYLES.get(str(row["state"]), "")),
                self._lag(row),
                self._throughput(row, self.previous.get(row["name"]), sample),
                self._progress(row, self.previous.get(row["name"]), sample),
                Text(str(row.get("last_error") or ""), style="red"),
            )
        self.previous = samples
        if not rows:
            return Group(
                table, Text("(no subscriptions: SELECT start_follow('<upstream conninfo>'))")
            )
        return table

    @staticmethod
    def _lag(row: dict[str, Any]) -> str:
        parts = []
        if row.get("lag_bytes") is not None:
            parts.append(human_bytes(float(row["lag_bytes"])))
        if row.get("lag_seconds") is not None:
            parts.append(f"{float(row['lag_seconds']):.1f} s")
        return ", ".join(parts) or "-"

    @staticmethod
    def _throughput(row: dict[str, Any], before: Sample | None, now: Sample) -> str:
        if before is None or now.at <= before.at:
            return "…"
        elapsed = now.at - before.at
        if row.get("state") == "copying":
            return f"{(now.rows_copied - before.rows_copied) / elapsed:,.0f} rows/s"
        if now.transactions is not None and before.transactions is not None:
            return f"{(now.transactions - before.transactions) / elapsed:,.0f} txn/s"
        if now.applied is not None and before.applied is not None:
            return f"{human_bytes(max(0, now.applied - before.applied) / elapsed)}/s WAL"
        return "-"

    @staticmethod
    def _progress(row: dict[str, Any], before: Sample | None, now: Sample) -> RenderableType:
        tables_total = row.get("tables_total")
        if row.get("state") != "copying" or not tables_total:
            if tables_total:
                return f"copied {row.get('tables_copied')}/{tables_total} tables"
            return ""
        rows_total = int(row.get("rows_total") or 0)
        done = now.rows_copied
        label = f"{row.get('tables_copied')}/{tables_total} tables, {done:,}/~{rows_total:,} rows"
        if before is not None and now.at > before.at:
            rate = (done - before.rows_copied) / (now.at - before.at)
            label += f", {rate:,.0f} rows/s"
            if rate > 0 and rows_total > done:
                label += f", ETA {human_duration((rows_total - done) / rate)}"
        cell = Table.grid()
        cell.add_row(ProgressBar(total=max(rows_total, done, 1), completed=done, width=30))
        cell.add_row(Text(label))
        return cell


def show_screen(dsn: str, title: str, interval: float, once: bool) -> int:
    """Draw frames until interrupted (``once``: one frame, for scripts and tests)."""
    screen = Screen(title)
    console = Console()
    if once:
        console.print(screen.frame(fetch(dsn)))
        return 0
    with Live(screen.frame(fetch(dsn)), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            live.update(screen.frame(fetch(dsn)), refresh=True)
