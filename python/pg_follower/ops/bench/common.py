"""What every bench module shares: connections, polling, the clusters' settings."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from pg_follower.errors import FollowerError
from pg_follower.ops.cluster import Cluster

WORKER_PATH_ENV = "PG_FOLLOWER_WORKER_PATH"  # as in the tests: run a checkout's worker
POLL_INTERVAL = 0.02  # "visible downstream" is polled this often, for both systems

# Both systems run on clusters with PostgreSQL's default settings except these.
# cluster.DEFAULT_SETTINGS is tuned for fast tests (fsync off...): put the
# defaults back, then raise only what replication and big transactions need.
POSTGRES_DEFAULTS: Mapping[str, str] = {
    "fsync": "on",
    "full_page_writes": "on",
    "shared_buffers": "128MB",
    "max_worker_processes": "8",
}
REPLICATION_SETTINGS: Mapping[str, str] = {
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
}
# So that no workload waits on checkpoints forced by WAL volume (the same for
# both systems; the bench also runs CHECKPOINT before each measured step).
NOT_WAL_BOUND: Mapping[str, str] = {"max_wal_size": "8GB", "checkpoint_timeout": "30min"}
BENCH_SETTINGS: Mapping[str, str] = {**POSTGRES_DEFAULTS, **REPLICATION_SETTINGS, **NOT_WAL_BOUND}


def worker_path(explicit: str | None = None) -> str | None:
    """The source tree the worker runs from: ``explicit``, else $PG_FOLLOWER_WORKER_PATH."""
    return explicit or os.environ.get(WORKER_PATH_ENV) or None


def connect(cluster: Cluster) -> psycopg.Connection[Any]:
    return psycopg.connect(cluster.dsn(), autocommit=True)


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def wait(
    what: str,
    predicate: Callable[[], Any],
    timeout: float,
    interval: float = 0.2,
    state: Callable[[], str] | None = None,
) -> float:
    """Poll until ``predicate`` is true; return the monotonic time it was seen true.

    ``state`` describes what is going on, for the timeout's message.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            seen = f" ({state()})" if state else ""
            raise FollowerError(f"timed out after {timeout:g} s waiting for {what}{seen}")
        time.sleep(interval)
