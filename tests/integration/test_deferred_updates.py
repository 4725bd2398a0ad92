"""Plain UPDATEs held back within a group of upstream transactions, coalesced
by key and sent per table at a flush point.

Most tests drive the applier itself on the downstream database, with the
transactions of one group fed in by hand (so the grouping is certain, not a
matter of timing); the last one goes through the worker.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import count

import psycopg
import pytest

from conftest import Node, Pair
from pg_follower.destinations.postgres.apply import PostgresApplier
from pg_follower.errors import ApplyError
from pg_follower.source.decode import (
    UNCHANGED_TOAST,
    Begin,
    Column,
    Commit,
    Delete,
    Insert,
    Relation,
    RowRun,
    Update,
    Value,
)

Change = Insert | Update | Delete | RowRun


class Group:
    """Upstream transactions fed to one applier, which groups them while told
    more is waiting."""

    def __init__(self, down: Node):
        self.down = down
        oid = down.scalar("SELECT oid FROM pg_database WHERE datname = current_database()")
        self.origin = f"pgf_{oid}_deferred"  # dropped with the test database's
        down.execute("SELECT pg_replication_origin_create(%s)", [self.origin])
        self._lsn = count(0x1000_0000, 0x100)
        self.relations: dict[str, Relation] = {}
        self.conn = psycopg.connect(down.dsn)
        self.applier = self._new_applier()

    def _new_applier(self) -> PostgresApplier:
        applier = PostgresApplier(self.conn, self.origin)
        applier.setup()
        applier.more_waiting = lambda wait: True
        return applier

    def restart(self, group_after: int) -> None:
        """A new session, as the worker's after an error (what the runner does)."""
        self.conn.close()
        self.conn = psycopg.connect(self.down.dsn)
        self.applier = self._new_applier()
        self.applier.group_after = group_after
        for rel in self.relations.values():
            self.applier.apply(rel)

    def relation(self, table: str, columns: Sequence[str], keys: int = 1) -> Relation:
        oid = int(self.down.scalar("SELECT %s::regclass::oid", [table]))
        rel = Relation(
            None,
            oid,
            "public",
            table,
            "d",
            tuple(Column(1 if i < keys else 0, c, 0, -1) for i, c in enumerate(columns)),
        )
        self.relations[table] = rel
        self.applier.apply(rel)
        return rel

    def txn(self, *changes: Change, lsn: int | None = None) -> int:
        """One upstream transaction (the next, or the one at ``lsn`` again); its
        commit LSN."""
        lsn = next(self._lsn) if lsn is None else lsn
        self.applier.apply(Begin(final_lsn=lsn, commit_ts=0, xid=lsn))
        for change in changes:
            self.applier.apply(change)
        self.applier.apply(Commit(0, lsn, lsn + 1, 0))
        return lsn

    def commit(self) -> None:
        """The group ends: nothing more is waiting."""
        assert self.applier.commit_pending() is not None

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def group(pair: Pair) -> Iterator[Group]:
    g = Group(pair.down)
    try:
        yield g
    finally:
        g.close()


def _row(*values: object) -> tuple[Value, ...]:
    return tuple(_value(v) for v in values)


def _value(v: object) -> Value:
    if v is None or v is UNCHANGED_TOAST:
        return UNCHANGED_TOAST if v is not None else None
    return str(v).encode()


def _update(rel: Relation, *values: object) -> Update:
    return Update(None, rel.relation_id, None, None, _row(*values))


def test_a_row_updated_by_several_transactions_of_a_group_is_written_once(
    pair: Pair, group: Group
) -> None:
    pair.down.execute("CREATE TABLE t (id int PRIMARY KEY, n int, v text)")
    pair.down.execute("INSERT INTO t VALUES (1, 0, 'a'), (2, 0, 'b')")
    t = group.relation("t", ["id", "n", "v"])
    group.txn(_update(t, 1, 1, "x"))
    group.txn(_update(t, 1, 2, "y"), _update(t, 2, 5, "q"))
    group.txn(RowRun(t.relation_id, False, [_row(1, 3, "z")], 0))
    group.commit()
    assert group.applier.committed_commits == 3
    assert pair.down.rows("SELECT id, n, v FROM t ORDER BY id") == [(1, 3, "z"), (2, 5, "q")]
    # one new version of each row, in the order they were first changed
    assert pair.down.rows("SELECT id, ctid::text FROM t ORDER BY id") == [
        (1, "(0,3)"),
        (2, "(0,4)"),
    ]
    assert group.applier.counts.updated == 4


def test_unchanged_toast_values_are_merged_column_by_column(pair: Pair, group: Group) -> None:
    pair.down.execute("CREATE TABLE t (id int PRIMARY KEY, big text, n int, note text)")
    pair.down.execute("INSERT INTO t VALUES (1, 'big1', 0, 'n1'), (2, 'big2', 0, 'n2')")
    t = group.relation("t", ["id", "big", "n", "note"])
    u = UNCHANGED_TOAST
    # row 1: the first update sets big, the second leaves it out (unchanged)
    group.txn(_update(t, 1, "new big", 1, u))
    group.txn(_update(t, 1, u, 2, u), _update(t, 2, u, 7, u))
    # row 2: never sent, so what the downstream has stays; note set last
    group.txn(_update(t, 2, u, 8, "last"))
    group.commit()
    assert pair.down.rows("SELECT id, big, n, note FROM t ORDER BY id") == [
        (1, "new big", 2, "n1"),
        (2, "big2", 8, "last"),
    ]


def test_a_held_back_update_goes_before_an_insert_into_its_table(pair: Pair, group: Group) -> None:
    pair.down.execute("CREATE TABLE u (id int PRIMARY KEY, code text UNIQUE)")
    pair.down.execute("INSERT INTO u VALUES (1, 'a')")
    rel = group.relation("u", ["id", "code"])
    group.txn(_update(rel, 1, "b"))  # frees 'a' ...
    group.txn(Insert(None, rel.relation_id, _row(2, "a")))  # ... which this takes
    group.txn(_update(rel, 2, "c"), Delete(None, rel.relation_id, "K", _row(1, None)))
    group.commit()
    assert pair.down.rows("SELECT id, code FROM u ORDER BY id") == [(2, "c")]


def test_interleaved_tables_end_as_applied_in_order(pair: Pair, group: Group) -> None:
    pair.down.execute("CREATE TABLE acc (id int PRIMARY KEY, bal int NOT NULL)")
    pair.down.execute("CREATE TABLE tel (id int PRIMARY KEY, bal int NOT NULL)")
    pair.down.execute("CREATE TABLE hist (acc int, delta int)")
    pair.down.execute("INSERT INTO acc SELECT g, 0 FROM generate_series(1, 100) g")
    pair.down.execute("INSERT INTO tel SELECT g, 0 FROM generate_series(1, 3) g")
    acc, tel = group.relation("acc", ["id", "bal"]), group.relation("tel", ["id", "bal"])
    hist = group.relation("hist", ["acc", "delta"], keys=0)
    accounts = dict.fromkeys(range(1, 101), 0)
    tellers = dict.fromkeys(range(1, 4), 0)
    history = []
    for i in range(120):  # more than SET_MIN_ROWS rows of acc: that run goes set-based
        a, t, delta = i % 100 + 1, i % 3 + 1, i + 1
        accounts[a] += delta
        tellers[t] += delta
        history.append((a, delta))
        changes: list[Change] = [
            _update(acc, a, accounts[a]),
            _update(tel, t, tellers[t]),
            Insert(None, hist.relation_id, _row(a, delta)),
        ]
        if i == 60:  # a delete of a row updated before (not after), in the same group
            changes.append(Delete(None, acc.relation_id, "K", _row(50, None)))
            del accounts[50]
        group.txn(*changes)
    group.commit()
    assert group.applier.committed_commits == 120
    assert dict(pair.down.rows("SELECT id, bal FROM acc")) == accounts
    assert dict(pair.down.rows("SELECT id, bal FROM tel")) == tellers
    assert sorted(pair.down.rows("SELECT acc, delta FROM hist")) == sorted(history)
    assert pair.down.scalar("SELECT count(DISTINCT xmin::text) FROM acc WHERE bal <> 0") == 1


def test_a_failing_held_back_update_is_retried_to_name_its_transaction(
    pair: Pair, group: Group
) -> None:
    pair.down.execute("CREATE TABLE t (id int PRIMARY KEY, n int)")
    pair.down.execute("INSERT INTO t SELECT g, 0 FROM generate_series(1, 50) g")
    pair.down.execute("DELETE FROM t WHERE id = 42")  # the downstream differs
    t = group.relation("t", ["id", "n"])
    ids = [i for i in range(1, 51) if i != 42]
    every = [[_update(t, i, n + 1) for i in ids if i % 3 == n] for n in range(3)]
    first = group.txn(*every[0])
    failing = group.txn(*every[1], _update(t, 42, 9))
    last = group.txn(*every[2])
    with pytest.raises(ApplyError) as grouped:
        group.commit()
    # which of the group failed is not known: the runner applies the
    # transactions up to this one one by one (SubscriptionRunner.ungroup_until)
    assert grouped.value.retry_now
    assert grouped.value.lsn is not None and int(grouped.value.lsn.replace("/", ""), 16) >= last
    assert pair.down.scalar("SELECT count(*) FROM t WHERE n <> 0") == 0  # all rolled back
    group.restart(group_after=last)
    group.txn(*every[0], lsn=first)  # commits alone
    with pytest.raises(ApplyError) as alone:
        group.txn(*every[1], _update(t, 42, 9), lsn=failing)
    assert not alone.value.retry_now
    assert alone.value.lsn == f"0/{failing:X}"
    assert "where (id) = (42)" in str(alone.value)
    assert pair.down.scalar("SELECT count(*) FROM t WHERE n <> 0") == len(every[0])


def test_tables_with_always_triggers_are_applied_in_order(pair: Pair) -> None:
    """A trigger that fires for the applier sees each change in the upstream's
    order, one by one (nothing held back or coalesced for its table)."""
    pair.up.execute("CREATE TABLE a (id int PRIMARY KEY, n int)")
    pair.up.execute("CREATE TABLE b (id int PRIMARY KEY, n int)")
    pair.up.execute("INSERT INTO a VALUES (1, 0)")
    pair.up.execute("INSERT INTO b VALUES (1, 0)")
    pair.down.execute("CREATE TABLE a (id int PRIMARY KEY, n int)")
    pair.down.execute("CREATE TABLE b (id int PRIMARY KEY, n int)")
    pair.down.execute("INSERT INTO a VALUES (1, 0)")
    pair.down.execute("INSERT INTO b VALUES (1, 0)")
    pair.down.execute("CREATE TABLE seen (seq serial, what text)")
    for table in ("a", "b"):
        pair.down.execute(
            f"CREATE FUNCTION log_{table}() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN"
            f" INSERT INTO public.seen (what) VALUES ('{table}' || NEW.n); RETURN NULL; END$$"
        )
        pair.down.execute(
            f"CREATE TRIGGER log AFTER UPDATE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION log_{table}()"
        )
        pair.down.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER log")
    pair.follow()
    pair.down.execute("SELECT pause_follow()")
    for n in range(1, 6):
        pair.up.execute("UPDATE a SET n = %s", [n])
        pair.up.execute("UPDATE b SET n = %s", [n])
    pair.down.execute("SELECT resume_follow()")
    pair.caught_up(60)
    expected = [f"{t}{n}" for n in range(1, 6) for t in "ab"]
    assert [w for (w,) in pair.down.rows("SELECT what FROM seen ORDER BY seq")] == expected
