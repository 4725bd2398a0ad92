"""``pg-follower duckdb``: keep an embedded DuckDB file a copy of the published tables."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
from types import FrameType

from pg_follower.errors import ConfigError, FollowerError, first_line

logger = logging.getLogger("pg_follower.duckdb")


class Interrupted(FollowerError):
    """A signal came while the back-fill ran: nothing of it was kept."""


def default_slot(database: str) -> str:
    """``pgf_duckdb_<hash of the file's absolute path>``: one slot per file, stable."""
    digest = hashlib.sha256(os.path.abspath(database).encode()).hexdigest()[:12]
    return f"pgf_duckdb_{digest}"


def run_duckdb(
    upstream: str,
    database: str,
    publication: str | None = None,
    slot: str | None = None,
    until_caught_up: bool = False,
) -> int:
    import duckdb

    from pg_follower.destinations.duckdb import DuckDBDestination
    from pg_follower.pipeline import Pipeline
    from pg_follower.source.postgres import PostgresSource

    if not upstream:
        raise ConfigError("no upstream given: pass --upstream CONNINFO")
    directory = os.path.dirname(os.path.abspath(database))
    if not os.path.isdir(directory):
        raise ConfigError(f"--database {database!r}: directory {directory!r} does not exist")
    slot = slot or default_slot(database)
    destination = DuckDBDestination(database, slot=slot)
    source = PostgresSource(upstream, slot=slot, publication=publication)
    pipeline = Pipeline(
        source, destination, snapshot=True, until_caught_up=until_caught_up, own_slot=True
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        pipeline.stop()
        if destination.committed_lsn is None and destination.con is not None:
            # the back-fill is one DuckDB transaction: stop it, keep nothing
            raise Interrupted(
                f"stopped by signal {signum} during the back-fill: {database!r} holds nothing"
                " of it; run again to back-fill from a new snapshot"
            )

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    logger.info("copying into %s through slot %s", database, slot)
    try:
        pipeline.run()
    except duckdb.Error as exc:
        raise FollowerError(f"DuckDB file {database!r}: {first_line(exc)}") from exc
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(
        f"pg-follower duckdb: {database} holds the upstream up to"
        f" {_lsn(destination.durable_lsn())}: {destination.rows_loaded} rows back-filled,"
        f" {pipeline.transactions} transactions ({pipeline.changes} changes) applied",
        file=sys.stderr,
    )
    return 0


def _lsn(lsn: int | None) -> str:
    return "nothing" if lsn is None else f"LSN {lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
