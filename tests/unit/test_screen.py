"""The live status screen's frames: throughput, progress bar and ETA between refreshes."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from pg_follower.ops.screen import Screen


def _text(screen: Screen, rows: list[dict[str, Any]], now: float) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(screen.frame(rows, now))
    return console.export_text()


def _row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": "default",
        "state": "streaming",
        "applied_lsn": "0/1000000",
        "lag_bytes": 0,
        "lag_seconds": 0.0,
        "last_error": None,
        "tables_copied": 0,
        "tables_total": None,
        "rows_copied": 0,
        "rows_total": None,
    }
    row.update(values)
    return row


def test_copy_progress_rate_and_eta() -> None:
    screen = Screen("test")
    copying = {"state": "copying", "tables_total": 3, "tables_copied": 1, "rows_total": 100_000}
    first = _text(screen, [_row(**copying, rows_copied=10_000)], now=100.0)
    assert "1/3 tables, 10,000/~100,000 rows" in first
    assert "rows/s" not in first  # no rate before a second refresh
    second = _text(screen, [_row(**copying, rows_copied=30_000)], now=110.0)
    assert "2,000 rows/s" in second
    assert "ETA 35s" in second
    assert "━" in second  # the bar


def test_throughput_between_refreshes() -> None:
    screen = Screen()
    _text(screen, [_row(transactions_applied=1000)], now=0.0)
    assert "250 txn/s" in _text(screen, [_row(transactions_applied=1500)], now=2.0)
    # without a transaction counter in the view: applied WAL per second
    plain = Screen()
    _text(plain, [_row(applied_lsn="0/1000000")], now=0.0)
    assert "1.0 MB/s WAL" in _text(plain, [_row(applied_lsn="0/1200000")], now=2.0)


def test_error_state_and_message() -> None:
    text = _text(Screen(), [_row(state="error", last_error="duplicate key (23505)")], now=0.0)
    assert "error" in text
    assert "duplicate key (23505)" in text
