"""The interface a destination implements.

A source (``pg_follower.source.postgres.PostgresSource``) decodes the upstream's
change stream into the values of ``pg_follower.source.changes``; the pipeline
(``pg_follower.pipeline.Pipeline``) hands them, in commit order, to one
``Destination``.

A destination owns its resumption position: ``open()`` says the end LSN of the
last transaction it holds, and ``durable_lsn()`` how far what it holds survives
a crash. The pipeline starts the stream after the first and confirms to the
upstream only the second, so a transactional destination that stores its
position with its data gets every transaction exactly once.

While the stream is idle (nothing in flight, all of it durable) the pipeline
lets the slot move on to the upstream's WAL end, so the upstream keeps no WAL
for it. A destination may also have ``skip_to(lsn)``: nothing up to ``lsn``
concerns it, and it holds ``lsn`` (durably, before returning) as the position
``open()`` gives next time. Without it, a restart finds the slot ahead of
the destination's position and says so in a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from pg_follower.source.changes import (
    UNCHANGED_TOAST,
    Change,
    ColumnInfo,
    Ddl,
    Delete,
    Insert,
    Row,
    TableInfo,
    Transaction,
    Truncate,
    Update,
    Value,
)

__all__ = [
    "UNCHANGED_TOAST",
    "Change",
    "ColumnInfo",
    "Ddl",
    "Delete",
    "Destination",
    "Insert",
    "Row",
    "TableInfo",
    "TableSnapshot",
    "Transaction",
    "Truncate",
    "Update",
    "Value",
]


class TableSnapshot(Protocol):
    """One table's rows as of the slot's exported snapshot (for a backfill)."""

    table: TableInfo

    def rows(self) -> Iterator[Row]:
        """The rows, decoded (no UNCHANGED_TOAST in them)."""
        ...

    def copy_chunks(self, format: str = "text") -> Iterator[bytes]:
        """The rows as the output of ``COPY ... TO STDOUT (FORMAT <format>)``
        ('text' or 'csv'), in chunks: for a destination that loads COPY data
        itself, with no work per row in Python."""
        ...


class Destination(Protocol):
    """Where a pipeline writes. Calls come from one thread, in this order:
    ``open``; when the destination is new and a snapshot was taken,
    ``write_snapshot`` per table then ``snapshot_done``; then per upstream
    transaction ``begin``, ``change`` for each change, ``commit``; ``flush`` when
    the stream goes idle or ends; ``close`` last."""

    def open(self) -> int | None:
        """The end LSN of the last transaction held (the stream resumes after
        it), or None when this destination holds nothing yet."""
        ...

    def write_snapshot(self, snapshot: TableSnapshot) -> None: ...

    def snapshot_done(self, lsn: int) -> None:
        """The snapshot is complete: it is the upstream as of ``lsn``, and the
        stream goes on from there."""
        ...

    def begin(self, transaction: Transaction) -> None: ...

    def change(self, change: Change) -> None: ...

    def commit(self, transaction: Transaction) -> None:
        """The transaction is whole (``transaction.end_lsn`` set). It need not
        be durable yet: ``durable_lsn`` says when it is."""
        ...

    def flush(self) -> None:
        """Make everything committed so far durable now (called between
        transactions only)."""
        ...

    def durable_lsn(self) -> int | None:
        """The end LSN up to which what this destination holds survives a
        crash: the upstream may forget everything before it."""
        ...

    def close(self) -> None:
        """The end; a transaction begun and not committed is dropped (the
        stream sends it again)."""
        ...
