"""``pg-follower status``: follow_status as a table, optionally refreshed."""

from __future__ import annotations

import sys
import time
from typing import Any

import psycopg

from pg_follower.errors import FollowerError, first_line

COLUMNS = (
    "name",
    "state",
    "worker_pid",
    "applied_lsn",
    "lag_bytes",
    "lag_seconds",
    "copy",
    "upstream",
    "last_error",
)


def _copy_progress(row: dict[str, Any]) -> str:
    total = row["tables_total"]
    if not total:
        return "-"
    width = 10
    fraction = row["tables_copied"] / total
    if row.get("rows_total") and row["tables_copied"] < total:
        # one big table would leave a table-count bar at zero: use the rows
        fraction = min(1.0, row["rows_copied"] / row["rows_total"])
    done = int(width * fraction)
    rows = f"{row['rows_copied']}"
    if row.get("rows_total"):
        rows += f"/~{row['rows_total']}"
    return (
        f"[{'#' * done}{'.' * (width - done)}] {row['tables_copied']}/{total} tables, {rows} rows"
    )


def fetch(dsn: str) -> list[dict[str, Any]]:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT * FROM follow_status ORDER BY name")
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    except psycopg.Error as exc:
        raise FollowerError(first_line(exc)) from exc


def render(rows: list[dict[str, Any]]) -> str:
    table = [list(COLUMNS)]
    for row in rows:
        row = dict(row, copy=_copy_progress(row))
        if row["lag_seconds"] is not None:
            row["lag_seconds"] = f"{row['lag_seconds']:.1f}"
        table.append(["" if row[c] is None else str(row[c]) for c in COLUMNS])
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if not rows:
        lines.append("(no subscriptions: SELECT start_follow('<upstream conninfo>'))")
    return "\n".join(lines)


def show_status(dsn: str, watch: bool, interval: float) -> int:
    while True:
        text = render(fetch(dsn))
        if not watch:
            print(text)
            return 0
        sys.stdout.write("\x1b[H\x1b[2J" + time.strftime("%H:%M:%S") + "\n" + text + "\n")
        sys.stdout.flush()
        time.sleep(interval)
