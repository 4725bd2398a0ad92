"""The change stream as JSON lines: one object per line, on a binary stream.

Each transaction's lines (``begin``, its changes, ``commit``) are written and
flushed together at its commit, so a reader never sees half a transaction and
what was flushed is what the slot may forget (``durable_lsn``). The reader
keeps the ``end_lsn`` of the last ``commit`` line it holds and resumes after
it (``pg-follower stream --from``). LSNs are PostgreSQL's text form ``X/Y``.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO

from pg_follower.destinations.base import (
    UNCHANGED_TOAST,
    Change,
    Ddl,
    Delete,
    Insert,
    Row,
    TableInfo,
    TableSnapshot,
    Transaction,
    Truncate,
    Update,
)
from pg_follower.source.decode import lsn_to_str
from pg_follower.source.values import Convert, converter

__all__ = ["JsonLinesDestination"]

MATVIEW_DIGEST = "matview_digest"  # server.ddl.MATVIEW_DIGEST_KIND
SNAPSHOT_BATCH = 1000  # snapshot lines written per write


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class JsonLinesDestination:
    """Writes to ``out`` (stdout's buffer). ``start``: the end LSN of the last
    transaction the reader holds (the stream resumes after it), or None to go
    on from where the slot stands."""

    def __init__(self, out: BinaryIO, start: int | None = None):
        self.out = out
        self.start = start
        self._lines: list[bytes] = []
        self._durable: int | None = None
        self._converters: dict[int, tuple[TableInfo, tuple[Convert, ...]]] = {}
        self.transactions = 0

    # -- the Destination protocol --------------------------------------------

    def open(self) -> int | None:
        return self.start

    def write_snapshot(self, snapshot: TableSnapshot) -> None:
        table = snapshot.table
        head = {"kind": "insert", "snapshot": True, "schema": table.schema, "table": table.name}
        batch: list[bytes] = []
        for row in snapshot.rows():
            batch.append(_dumps({**head, "new": self._object(table, row)}))
            if len(batch) >= SNAPSHOT_BATCH:
                self._write(batch)
                batch = []
        self._write(batch)

    def snapshot_done(self, lsn: int) -> None:
        self._durable = lsn

    def begin(self, transaction: Transaction) -> None:
        self._lines = [
            _dumps(
                {
                    "kind": "begin",
                    "xid": transaction.xid,
                    "commit_lsn": lsn_to_str(transaction.commit_lsn),
                    "commit_time": transaction.commit_time.isoformat(),
                }
            )
        ]

    def change(self, change: Change) -> None:
        if isinstance(change, Ddl) and change.record.get("kind") == MATVIEW_DIGEST:
            return  # the follower's check of a materialized view's rows, not DDL
        self._lines.append(_dumps(self.line(change)))

    def commit(self, transaction: Transaction) -> None:
        self._lines.append(
            _dumps(
                {
                    "kind": "commit",
                    "commit_lsn": lsn_to_str(transaction.commit_lsn),
                    "end_lsn": lsn_to_str(transaction.end_lsn),
                }
            )
        )
        self._write(self._lines)
        self._lines = []
        self._durable = transaction.end_lsn
        self.transactions += 1

    def flush(self) -> None:
        pass  # each commit was flushed

    def durable_lsn(self) -> int | None:
        return self._durable

    def close(self) -> None:
        pass  # stdout is the caller's

    # -- lines ----------------------------------------------------------------

    def line(self, change: Change) -> dict[str, Any]:
        """The JSON object of one change."""
        if isinstance(change, Insert):
            return {
                "kind": "insert",
                **self._where(change.table),
                "new": self._object(change.table, change.new),
            }
        if isinstance(change, Update):
            obj: dict[str, Any] = {"kind": "update", **self._where(change.table)}
            if change.old is not None:
                obj["old"] = self._old(change.table, change.old)
            obj["new"] = self._object(change.table, change.new)
            toasted = [
                c.name
                for c, v in zip(change.table.columns, change.new, strict=False)
                if v is UNCHANGED_TOAST
            ]
            if toasted:
                obj["unchanged_toast"] = toasted
            return obj
        if isinstance(change, Delete):
            return {
                "kind": "delete",
                **self._where(change.table),
                "old": self._old(change.table, change.old),
            }
        if isinstance(change, Truncate):
            return {
                "kind": "truncate",
                "tables": [{"schema": t.schema, "table": t.name} for t in change.tables],
                "restart_identity": change.restart_identity,
                "cascade": change.cascade,
            }
        if isinstance(change, Ddl):
            record = change.record
            return {
                "kind": "ddl",
                "statement": record.get("statement"),
                "tag": record.get("tag"),
                "command": record.get("kind"),
                "objects": [record.get("identity")],
                "search_path": record.get("search_path"),
                "role": change.role,
            }
        raise TypeError(f"not a change: {change!r}")

    @staticmethod
    def _where(table: TableInfo) -> dict[str, str]:
        return {"schema": table.schema, "table": table.name}

    def _converters_of(self, table: TableInfo) -> tuple[Convert, ...]:
        known = self._converters.get(table.relation_id)
        if known is None or known[0] is not table:  # a new Relation message: new types
            known = (table, tuple(converter(c) for c in table.columns))
            self._converters[table.relation_id] = known
        return known[1]

    def _object(self, table: TableInfo, row: Row) -> dict[str, Any]:
        """The row keyed by column name, unchanged TOAST left out."""
        out: dict[str, Any] = {}
        for column, convert, value in zip(
            table.columns, self._converters_of(table), row, strict=False
        ):
            if value is UNCHANGED_TOAST:
                continue
            out[column.name] = None if value is None else convert(value)
        return out

    def _old(self, table: TableInfo, row: Row) -> dict[str, Any]:
        """The old key (every column under REPLICA IDENTITY FULL)."""
        full = table.replica_identity == "f"
        out: dict[str, Any] = {}
        for column, convert, value in zip(
            table.columns, self._converters_of(table), row, strict=False
        ):
            if value is UNCHANGED_TOAST or not (full or column.key):
                continue
            out[column.name] = None if value is None else convert(value)
        return out

    def _write(self, lines: list[bytes]) -> None:
        if lines:
            self.out.write(b"".join(lines))
            self.out.flush()
