"""Count the changes per table that an upstream commits: a destination in 30 lines.

python examples/count_changes.py "host=/tmp dbname=shop" my_slot my_publication
"""

import sys
from collections import Counter

from pg_follower.destinations.base import Change, TableSnapshot, Transaction, Truncate
from pg_follower.pipeline import Pipeline
from pg_follower.source.postgres import PostgresSource


class CountChanges:
    """Keeps nothing, so it resumes where the slot stands (``open`` -> None)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.last_lsn: int | None = None

    def open(self) -> int | None:
        return None

    def write_snapshot(self, snapshot: TableSnapshot) -> None:
        self.counts[snapshot.table.qualified_name] += sum(1 for _ in snapshot.rows())

    def snapshot_done(self, lsn: int) -> None:
        self.last_lsn = lsn

    def begin(self, transaction: Transaction) -> None:
        pass

    def change(self, change: Change) -> None:
        tables = change.tables if isinstance(change, Truncate) else [getattr(change, "table", None)]
        for table in tables:
            self.counts[table.qualified_name if table else "(ddl)"] += 1

    def commit(self, transaction: Transaction) -> None:
        self.last_lsn = transaction.end_lsn
        print(dict(self.counts), flush=True)

    def flush(self) -> None:
        pass

    def durable_lsn(self) -> int | None:
        return self.last_lsn  # counted is as good as kept here

    def close(self) -> None:
        pass


if __name__ == "__main__":
    conninfo, slot, publication = sys.argv[1:4]
    Pipeline(PostgresSource(conninfo, slot=slot, publication=publication), CountChanges()).run()
