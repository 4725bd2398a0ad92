"""JsonLinesDestination: a transaction reaches the stream whole, at its commit."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from pg_follower.destinations.jsonl import JsonLinesDestination
from pg_follower.source.changes import (
    UNCHANGED_TOAST,
    ColumnInfo,
    Ddl,
    Insert,
    TableInfo,
    Transaction,
    Update,
)


class Recording(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[bytes] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


def _table() -> TableInfo:
    return TableInfo(
        1,
        "public",
        "t",
        "d",
        (
            ColumnInfo("id", "integer", 23, 23, -1, 0, "N", True),
            ColumnInfo("doc", "text", 25, 25, -1, 0, "S", False),
        ),
    )


def test_written_and_flushed_at_commit_only() -> None:
    out = Recording()
    destination = JsonLinesDestination(out, start=0x10)
    assert destination.open() == 0x10
    assert destination.durable_lsn() is None
    txn = Transaction(7, 0x1_0000_0010, datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC))
    destination.begin(txn)
    destination.change(Insert(_table(), ("1", "a")))
    destination.change(Update(_table(), None, ("1", UNCHANGED_TOAST)))
    destination.change(Ddl({"kind": "matview_digest", "sql": "x"}, None))  # not DDL: left out
    assert out.getvalue() == b"" and out.flushed == []
    done = Transaction(txn.xid, txn.commit_lsn, txn.commit_time, end_lsn=0x1_0000_0040)
    destination.commit(done)
    assert len(out.flushed) == 1
    assert destination.durable_lsn() == 0x1_0000_0040
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [
        {
            "kind": "begin",
            "xid": 7,
            "commit_lsn": "1/10",
            "commit_time": "2024-01-02T03:04:05.123000+00:00",
        },
        {"kind": "insert", "schema": "public", "table": "t", "new": {"id": 1, "doc": "a"}},
        {
            "kind": "update",
            "schema": "public",
            "table": "t",
            "new": {"id": 1},
            "unchanged_toast": ["doc"],
        },
        {"kind": "commit", "commit_lsn": "1/10", "end_lsn": "1/40"},
    ]
