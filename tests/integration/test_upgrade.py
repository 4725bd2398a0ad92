"""Extension upgrades: 0.1.0 updated to 0.2.0 equals a fresh 0.2.0, and a
following pair updated while it follows loses nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conftest import database_pair, wait_until
from pg_follower.ops.cluster import Cluster

OLD = "0.1.0"
NEW = "0.2.0"

# Everything the extension owns, described so that two databases compare
# equal exactly when the objects are the same (definitions, defaults,
# constraints, comments, owners and grants). Each query takes the
# extension's oid as its only parameter.
MEMBERS = """
SELECT pg_catalog.pg_describe_object(classid, objid, objsubid)
  FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND refobjid = %(ext)s
   AND deptype = 'e' ORDER BY 1
"""
_MEMBER_OF = """
EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_extension'::regclass
         AND d.refobjid = %(ext)s AND d.deptype = 'e'
         AND d.classid = '{catalog}'::regclass AND d.objid = {oid})
"""
FUNCTIONS = f"""
SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proacl::text,
       p.proowner::regrole::text, obj_description(p.oid, 'pg_proc')
  FROM pg_proc p WHERE {_MEMBER_OF.format(catalog="pg_proc", oid="p.oid")} ORDER BY 1
"""
RELATIONS = f"""
SELECT c.oid::regclass::text, c.relkind::text, c.relacl::text, c.relowner::regrole::text,
       c.reloptions::text, c.relreplident::text, obj_description(c.oid, 'pg_class'),
       CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END
  FROM pg_class c WHERE {_MEMBER_OF.format(catalog="pg_class", oid="c.oid")} ORDER BY 1
"""
COLUMNS = f"""
SELECT c.oid::regclass::text, a.attnum, a.attname::text, format_type(a.atttypid, a.atttypmod),
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
       a.attgenerated::text, a.attacl::text, col_description(c.oid, a.attnum)
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE {_MEMBER_OF.format(catalog="pg_class", oid="c.oid")} AND NOT a.attisdropped
 ORDER BY 1, 2
"""
CONSTRAINTS = f"""
SELECT k.conrelid::regclass::text, k.conname::text, pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
 WHERE {_MEMBER_OF.format(catalog="pg_class", oid="c.oid")} ORDER BY 1, 2
"""
INDEXES = f"""
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
  FROM pg_index i WHERE {_MEMBER_OF.format(catalog="pg_class", oid="i.indrelid")} ORDER BY 1
"""
TRIGGERS = f"""
SELECT t.tgname::text, pg_get_triggerdef(t.oid)
  FROM pg_trigger t WHERE NOT t.tgisinternal
   AND {_MEMBER_OF.format(catalog="pg_class", oid="t.tgrelid")} ORDER BY 1
"""
SEQUENCES = f"""
SELECT s.seqrelid::regclass::text, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
       s.seqmax, s.seqmin, s.seqcache, s.seqcycle
  FROM pg_sequence s WHERE {_MEMBER_OF.format(catalog="pg_class", oid="s.seqrelid")} ORDER BY 1
"""
EVENT_TRIGGERS = f"""
SELECT e.evtname::text, e.evtevent::text, e.evtfoid::regprocedure::text, e.evtenabled::text,
       e.evttags::text, e.evtowner::regrole::text
  FROM pg_event_trigger e
 WHERE {_MEMBER_OF.format(catalog="pg_event_trigger", oid="e.oid")} ORDER BY 1
"""
SCHEMAS = f"""
SELECT n.nspname::text, n.nspacl::text, n.nspowner::regrole::text,
       obj_description(n.oid, 'pg_namespace')
  FROM pg_namespace n WHERE {_MEMBER_OF.format(catalog="pg_namespace", oid="n.oid")}
 ORDER BY 1
"""
TYPES = f"""
SELECT t.oid::regtype::text, t.typtype::text, t.typacl::text
  FROM pg_type t WHERE {_MEMBER_OF.format(catalog="pg_type", oid="t.oid")} ORDER BY 1
"""
CONFIG = """
SELECT e.extversion, ARRAY(SELECT c::regclass::text FROM unnest(e.extconfig) c)::text,
       e.extcondition::text, e.extrelocatable, e.extnamespace::regnamespace::text
  FROM pg_extension e WHERE e.oid = %(ext)s
"""
DESCRIPTIONS = {
    "member objects": MEMBERS,
    "functions": FUNCTIONS,
    "tables, views and sequences": RELATIONS,
    "columns": COLUMNS,
    "constraints": CONSTRAINTS,
    "indexes": INDEXES,
    "triggers": TRIGGERS,
    "sequences": SEQUENCES,
    "event triggers": EVENT_TRIGGERS,
    "schemas": SCHEMAS,
    "types": TYPES,
    "extension row": CONFIG,
}


def describe_extension(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    row = conn.execute("SELECT oid FROM pg_extension WHERE extname = 'pg_follower_py'").fetchone()
    assert row, "pg_follower_py is not installed"
    return {
        what: conn.execute(query, {"ext": row[0]}).fetchall()
        for what, query in DESCRIPTIONS.items()
    }


@pytest.fixture
def database(clusters: tuple[Cluster, Cluster]) -> Iterator[Any]:
    """Make fresh databases on the downstream cluster (dropped at the end)."""
    cluster = clusters[1]
    made: list[str] = []

    def make() -> psycopg.Connection[Any]:
        name = "u_" + uuid.uuid4().hex[:10]
        with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return psycopg.connect(cluster.dsn(name), autocommit=True)

    yield make
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as admin:
        for name in made:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_updated_extension_equals_a_fresh_install(database: Any) -> None:
    """Whatever SQL changes, the upgrade script must bring 0.1.0 to exactly
    what a fresh install of the default version makes."""
    with database() as fresh, database() as updated:
        fresh.execute("CREATE EXTENSION pg_follower_py CASCADE")
        updated.execute(f"CREATE EXTENSION pg_follower_py VERSION '{OLD}' CASCADE")
        assert updated.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_follower_py'"
        ).fetchone() == (OLD,)
        updated.execute("ALTER EXTENSION pg_follower_py UPDATE")
        want, got = describe_extension(fresh), describe_extension(updated)
        assert want["extension row"][0][0] == NEW
        for what in DESCRIPTIONS:
            missing = [r for r in want[what] if r not in got[what]]
            extra = [r for r in got[what] if r not in want[what]]
            assert not missing and not extra, (
                f"{what} differ between a fresh {NEW} and {OLD} updated:\n"
                f"  only in the fresh install: {missing}\n  only after the update: {extra}"
            )
            assert got[what] == want[what], f"{what}: same objects in another order"


def test_update_both_nodes_while_following(clusters: tuple[Cluster, Cluster]) -> None:
    """The acceptance test: 0.1.0 on both nodes, following; ALTER EXTENSION
    UPDATE on both while a writer runs; more writes; nothing lost or doubled,
    subscription, origin and status kept, and the new API works."""
    with database_pair(clusters, OLD) as pair:
        up, down = pair.up, pair.down
        # no key: a change applied twice would show as a duplicate row
        up.execute("CREATE TABLE events (n int, phase text)")
        up.execute("CREATE TABLE counters (id int PRIMARY KEY, v bigint)")
        up.execute("INSERT INTO counters SELECT g, 0 FROM generate_series(1, 10) g")
        pair.follow(copy_data=True)
        up.execute("INSERT INTO events SELECT g, 'before' FROM generate_series(1, 1000) g")
        pair.caught_up()
        subscription = "SELECT id, name, slot_name, origin_name FROM pgfollower.subscription"
        sub_before = down.rows(subscription)
        origin_before = down.scalar(
            "SELECT remote_lsn FROM pg_replication_origin_status s"
            " JOIN pg_replication_origin o ON o.roident = s.local_id"
            " JOIN pgfollower.subscription f ON f.origin_name = o.roname"
        )
        worker = pair.worker_pid()
        assert worker

        # a writer keeps committing while both nodes are updated
        stop = threading.Event()
        written = [0]

        def write() -> None:
            with psycopg.connect(up.dsn, autocommit=True) as conn:
                while not stop.is_set():
                    written[0] += 1
                    with conn.transaction():
                        conn.execute("INSERT INTO events VALUES (%s, 'during')", [written[0]])
                        conn.execute(
                            "UPDATE counters SET v = v + 1 WHERE id = %s", [written[0] % 10 + 1]
                        )

        writer = threading.Thread(target=write)
        writer.start()
        try:
            wait_until(lambda: written[0] > 50, 30, "the writer to start")
            up.execute("ALTER EXTENSION pg_follower_py UPDATE")
            wait_until(lambda: down.scalar("SELECT count(*) FROM events") > 1100, 30, pair.status)
            down.execute("ALTER EXTENSION pg_follower_py UPDATE")
            mark = written[0]
            wait_until(lambda: written[0] > mark + 50, 30, "the writer to go on")
        finally:
            stop.set()
            writer.join(timeout=30)
        for node in (up, down):
            assert (
                node.scalar("SELECT extversion FROM pg_extension WHERE extname = 'pg_follower_py'")
                == NEW
            )
        up.execute("INSERT INTO events SELECT g, 'after' FROM generate_series(1, 1000) g")
        up.execute("UPDATE counters SET v = v * 2")
        up.execute("ALTER TABLE events ADD COLUMN note text")  # DDL still replicates
        up.execute("INSERT INTO events VALUES (0, 'last', 'x')")

        # the new API on the updated downstream
        target = down.scalar("SELECT wait_for_catchup('default', '60s')")
        assert target is not None
        for query in (
            "SELECT n, phase, note FROM events ORDER BY phase, n",
            "SELECT id, v FROM counters ORDER BY id",
        ):
            assert down.rows(query) == up.rows(query), query
        assert down.scalar("SELECT count(*) FROM events WHERE phase = 'during'") == written[0]
        assert (
            down.scalar(
                "SELECT count(*) FROM (SELECT n, phase FROM events GROUP BY 1, 2"
                " HAVING count(*) > 1) d"
            )
            == 0
        ), "a change was applied twice"

        # the subscription, its origin and the worker were kept
        assert down.rows(subscription) == sub_before
        assert down.scalar(
            "SELECT remote_lsn > %s::pg_lsn FROM pg_replication_origin_status s"
            " JOIN pg_replication_origin o ON o.roident = s.local_id"
            " JOIN pgfollower.subscription f ON f.origin_name = o.roname",
            [origin_before],
        )
        assert pair.worker_pid() == worker, "the worker was restarted by the update"
        assert (
            up.scalar(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [sub_before[0][2]]
            )
            == 1
        )

        # the 0.2.0 status: state, flushed_lsn and counters written by the same worker
        def counted() -> dict[str, Any] | None:
            st = pair.status()
            return st if st.get("transactions_applied", 0) > 0 else None

        st = wait_until(counted, 20, pair.status)
        assert st["state"] == "streaming"
        assert down.scalar("SELECT flushed_lsn >= %s::pg_lsn FROM follow_status", [target]), (
            "wait_for_catchup returned before flushed_lsn reached its target"
        )
        assert st["rows_applied"] >= st["transactions_applied"]
        down.execute("SELECT pause_follow()")
        wait_until(lambda: pair.status()["state"] == "paused", 20, pair.status)
        down.execute("SELECT resume_follow()")
        up.execute("INSERT INTO events VALUES (-1, 'resumed', NULL)")
        down.scalar("SELECT wait_for_catchup()")
        assert down.scalar("SELECT count(*) FROM events WHERE phase = 'resumed'") == 1
