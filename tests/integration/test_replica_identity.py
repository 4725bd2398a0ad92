"""Replica identity goes back (issue 9, point 5): a table the tool gave REPLICA
IDENTITY FULL returns to DEFAULT, with a NOTICE, once it has a usable primary
key; a table whose identity its user set is never touched."""

from __future__ import annotations

import subprocess

from conftest import Node, Pair
from pg_follower.ops.cluster import SUPERUSER, bindir

IDENTITY = (
    "SELECT relname::text, relreplident FROM pg_class"
    " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1"
)


def _pgbench(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    cluster = node.cluster
    argv = [str(bindir() / "pgbench"), *args]
    argv += ["-h", str(cluster.sockdir), "-p", str(cluster.port), "-U", SUPERUSER, node.dbname]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_pgbench_tables_get_their_default_identity_back_and_replicate(pair: Pair) -> None:
    pair.follow()
    init = _pgbench(pair.up, "-i", "-q", "-s", "1")
    # made without keys, filled, then given primary keys
    for table in ("pgbench_accounts", "pgbench_branches", "pgbench_tellers"):
        assert f"table public.{table} has a primary key now" in init.stderr, init.stderr
    expected = [
        ("pgbench_accounts", "d"),
        ("pgbench_branches", "d"),
        ("pgbench_history", "f"),  # never has a key
        ("pgbench_tellers", "d"),
    ]
    assert pair.up.rows(IDENTITY) == expected
    pair.caught_up(60)
    assert pair.down.rows(IDENTITY) == expected
    _pgbench(pair.up, "-n", "-c", "2", "-j", "2", "-t", "300")
    pair.caught_up(60)
    for query in (
        "SELECT * FROM pgbench_accounts ORDER BY aid",
        "SELECT * FROM pgbench_branches ORDER BY bid",
        "SELECT * FROM pgbench_tellers ORDER BY tid",
        "SELECT tid, bid, aid, delta, mtime FROM pgbench_history ORDER BY 1, 2, 3, 4, 5",
    ):
        assert pair.down.rows(query) == pair.up.rows(query), query
    assert pair.down.scalar("SELECT count(*) FROM pgbench_history") == 600


def test_only_the_tools_own_full_identity_goes_back(pair: Pair) -> None:
    # keyless before anyone follows: FULL from ensure_publication(), as the worker
    pair.up.execute("CREATE TABLE early (id int NOT NULL, v text)")
    pair.up.execute("INSERT INTO early VALUES (1, 'a')")
    pair.follow(copy_data=True)
    pair.up.execute("CREATE TABLE mine (id int NOT NULL)")  # FULL from the tool...
    pair.up.execute("ALTER TABLE mine REPLICA IDENTITY FULL")  # ...then the user's own
    pair.up.execute("CREATE TABLE deferred (id int NOT NULL)")
    pair.up.execute("CREATE TABLE by_index (id int NOT NULL)")
    pair.up.execute("CREATE UNIQUE INDEX by_index_id ON by_index (id)")
    pair.up.execute("ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_id")
    pair.up.execute("CREATE TABLE later_key (id int NOT NULL, v text)")
    assert dict(pair.up.rows(IDENTITY)) == {
        "early": "f",
        "mine": "f",
        "deferred": "f",
        "by_index": "i",
        "later_key": "f",
    }

    for table in ("early", "mine", "by_index", "later_key"):
        pair.up.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
    pair.up.execute("ALTER TABLE deferred ADD PRIMARY KEY (id) DEFERRABLE")  # not usable
    identities = {
        "early": "d",
        "mine": "f",
        "deferred": "f",
        "by_index": "i",
        "later_key": "d",
    }
    assert dict(pair.up.rows(IDENTITY)) == identities
    pair.up.execute("UPDATE early SET v = 'b'")
    pair.caught_up()
    assert dict(pair.down.rows(IDENTITY)) == identities
    assert pair.down.rows("SELECT * FROM early") == [(1, "b")]
    # nothing is left recorded but the tables still FULL by the tool's doing
    recorded = pair.up.rows(
        "SELECT relid::regclass::text FROM pgfollower.replica_identity_full ORDER BY 1"
    )
    assert recorded == [("deferred",)]
    pair.up.execute("DROP TABLE deferred")
    pair.up.execute("CREATE TABLE again (id int)")  # a new row; the dropped one's is gone
    assert pair.up.rows(
        "SELECT relid::regclass::text FROM pgfollower.replica_identity_full ORDER BY 1"
    ) == [("again",)]
