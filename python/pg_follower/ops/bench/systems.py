"""The two systems under test, behind one interface the runner drives alike.

``native``: PostgreSQL's logical replication, a publication FOR ALL TABLES
upstream and a subscription with default settings downstream (its tables
made there first from ``pg_dump --schema-only``, as it needs).
``ours``: pg_follower_py, ``start_follow(conninfo, 'bench', true)``.

Both keep a replication origin downstream whose ``remote_lsn`` is the end of
the last upstream commit applied, so lag is read from the same catalog view.
"""

from __future__ import annotations

import subprocess
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from pg_follower.errors import FollowerError
from pg_follower.ops.bench.common import scalar
from pg_follower.ops.cluster import Cluster, bindir
from pg_follower.ops.demo import stop_worker

SUBSCRIPTION = "bench"
_ORIGIN_LSN = (
    "SELECT s.remote_lsn::text FROM pg_replication_origin_status s"
    " JOIN pg_replication_origin o ON o.roident = s.local_id WHERE "
)


class System:
    name: ClassVar[str]
    label: ClassVar[str]
    origin_lsn_query: ClassVar[str]  # downstream: the applied upstream position

    def __init__(self, up: Cluster, down: Cluster, worker_path: str | None):
        self.up, self.down, self.worker_path = up, down, worker_path

    def downstream_settings(self) -> dict[str, str]:
        return {}

    def prepare(self, upc: psycopg.Connection[Any], downc: psycopg.Connection[Any]) -> None:
        """Before the workload's tables exist upstream (not measured)."""

    def before_follow(self, upc: psycopg.Connection[Any], downc: psycopg.Connection[Any]) -> None:
        """After the workload's setup, before following (not measured)."""

    def follow(self, downc: psycopg.Connection[Any]) -> None:
        """Start replicating, initial copy included (measured by ``copy``)."""
        raise NotImplementedError

    def copied(self, downc: psycopg.Connection[Any]) -> bool:
        """The system's own word that its initial copy is over (cheap to ask)."""
        raise NotImplementedError

    def describe(self, downc: psycopg.Connection[Any]) -> str:
        """The system's state downstream, for a timeout's message."""
        raise NotImplementedError

    def teardown(self) -> None:
        """Before the clusters are destroyed."""


class Native(System):
    name = "native"
    label = "native logical replication"
    origin_lsn_query = (
        _ORIGIN_LSN + "o.roname = (SELECT 'pg_' || oid FROM pg_subscription"
        f" WHERE subname = '{SUBSCRIPTION}')"
    )

    def before_follow(self, upc: psycopg.Connection[Any], downc: psycopg.Connection[Any]) -> None:
        upc.execute(f"CREATE PUBLICATION {SUBSCRIPTION} FOR ALL TABLES")
        copy_schema(self.up, self.down)

    def follow(self, downc: psycopg.Connection[Any]) -> None:
        downc.execute(
            sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}").format(
                sql.Identifier(SUBSCRIPTION),
                sql.Literal(self.up.dsn()),
                sql.Identifier(SUBSCRIPTION),
            )
        )

    def copied(self, downc: psycopg.Connection[Any]) -> bool:
        return bool(scalar(downc, "SELECT bool_and(srsubstate = 'r') FROM pg_subscription_rel"))

    def describe(self, downc: psycopg.Connection[Any]) -> str:
        states = scalar(
            downc,
            "SELECT string_agg(srsubstate::text || ' ' || srrelid::regclass::text, ', ')"
            " FROM pg_subscription_rel",
        )
        return f"pg_subscription_rel: {states}"


class Ours(System):
    name = "ours"
    label = "pg_follower_py"
    origin_lsn_query = _ORIGIN_LSN + "o.roname LIKE 'pgf\\_%'"

    def downstream_settings(self) -> dict[str, str]:
        if not self.worker_path:
            return {}
        return {"pg_follower_py.worker_pythonpath": f"'{self.worker_path}'"}

    def prepare(self, upc: psycopg.Connection[Any], downc: psycopg.Connection[Any]) -> None:
        upc.execute("CREATE EXTENSION pg_follower_py CASCADE")
        downc.execute("CREATE EXTENSION pg_follower_py CASCADE")

    def follow(self, downc: psycopg.Connection[Any]) -> None:
        downc.execute("SELECT start_follow(%s, %s, true)", [self.up.dsn(), SUBSCRIPTION])

    def copied(self, downc: psycopg.Connection[Any]) -> bool:
        row = downc.execute(
            "SELECT state, last_error FROM follow_status WHERE name = %s", [SUBSCRIPTION]
        ).fetchone()
        if row and row[0] == "error":
            raise FollowerError(f"pg_follower_py failed: {row[1]}")
        return bool(row and row[0] == "streaming")

    def describe(self, downc: psycopg.Connection[Any]) -> str:
        row = downc.execute(
            "SELECT state, applied_lsn, last_error FROM follow_status WHERE name = %s",
            [SUBSCRIPTION],
        ).fetchone()
        return f"follow_status: {row}"

    def teardown(self) -> None:
        if self.down.running():
            stop_worker(self.down)


SYSTEMS: dict[str, type[System]] = {cls.name: cls for cls in (Native, Ours)}


def copy_schema(up: Cluster, down: Cluster) -> None:
    """The upstream's schema onto the downstream (native needs its tables there)."""
    dump = subprocess.run(
        [str(bindir() / "pg_dump"), "--schema-only", "--no-publications", "-d", up.dsn()],
        capture_output=True,
        text=True,
        check=False,
    )
    if dump.returncode != 0:
        raise FollowerError(f"pg_dump --schema-only of the upstream failed: {dump.stderr}")
    load = subprocess.run(
        [str(bindir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", down.dsn()],
        input=dump.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    if load.returncode != 0:
        raise FollowerError(f"loading the upstream's schema downstream failed: {load.stderr}")
