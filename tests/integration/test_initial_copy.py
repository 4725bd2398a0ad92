"""copy_data: the upstream's schema and rows from one snapshot, then its changes."""

from __future__ import annotations

import threading

import psycopg

from conftest import Pair, wait_until

SCHEMA = """
CREATE SCHEMA shop;
CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN shop.positive AS integer CHECK (VALUE > 0);
CREATE TABLE shop.customer (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name    text NOT NULL UNIQUE,
    mood    shop.mood DEFAULT 'ok',
    tags    text[]
);
CREATE TABLE shop."Order" (
    id          serial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customer (id),
    qty         shop.positive NOT NULL,
    total       numeric(12, 2) GENERATED ALWAYS AS (qty * 2.5) STORED,
    placed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_customer ON shop."Order" (customer_id);
CREATE TABLE public.keyless (a int, b text);
CREATE SEQUENCE public.counter START 100;
CREATE TABLE public.empty_one (id int PRIMARY KEY);
"""

DATA = """
INSERT INTO shop.customer (name, mood, tags)
     SELECT 'c' || g, (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::shop.mood, ARRAY['t' || g, NULL]
       FROM generate_series(1, 2000) g;
INSERT INTO shop."Order" (customer_id, qty) SELECT 1 + g % 2000, 1 + g % 7
  FROM generate_series(1, 20000) g;
INSERT INTO public.keyless SELECT g % 10, 'dup' FROM generate_series(1, 500) g;
SELECT nextval('public.counter') FROM generate_series(1, 5);
"""

COMPARE = [
    "SELECT id, name, mood::text, tags FROM shop.customer ORDER BY id",
    'SELECT id, customer_id, qty, total, placed_at FROM shop."Order" ORDER BY id',
    "SELECT a, b, count(*) FROM public.keyless GROUP BY a, b ORDER BY a, b",
    "SELECT id FROM public.empty_one ORDER BY id",
]

DEFINITIONS = [
    # columns, defaults, constraints and indexes of the copied tables
    "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
    "       a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid)"
    "  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    "  JOIN pg_namespace n ON n.oid = c.relnamespace"
    "  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    " WHERE n.nspname IN ('shop', 'public') AND c.relkind = 'r' AND a.attnum > 0"
    "   AND NOT a.attisdropped ORDER BY 1, a.attnum",
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE connamespace IN ('shop'::regnamespace, 'public'::regnamespace) ORDER BY 1, 2",
    "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
    " WHERE indrelid::regclass::text LIKE 'shop.%' ORDER BY 1",
    "SELECT enumlabel FROM pg_enum WHERE enumtypid = 'shop.mood'::regtype ORDER BY enumsortorder",
]


def _wait_state(pair: Pair, state: str, timeout: float) -> dict[str, object]:
    """Wait for the subscription's state; on time-out the failure shows the status."""
    seen: dict[str, object] = {}

    def reached() -> bool:
        seen.clear()
        seen.update(pair.status())
        return seen.get("state") == state

    try:
        wait_until(reached, timeout, f"state {state}")
    except BaseException:
        print("last status:", seen)
        raise
    return dict(seen)


def _same(pair: Pair, queries: list[str]) -> None:
    for query in queries:
        assert pair.down.rows(query) == pair.up.rows(query), query


def test_copy_schema_and_rows_while_a_writer_keeps_writing(pair: Pair) -> None:
    pair.up.execute(SCHEMA)
    pair.up.execute(DATA)
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        with psycopg.connect(pair.up.dsn, autocommit=True) as conn:
            while not stop.is_set():
                n = len(written) + 1
                conn.execute(
                    'INSERT INTO shop."Order" (customer_id, qty) VALUES (%s, %s)', [n % 2000 + 1, 3]
                )
                conn.execute("UPDATE shop.customer SET mood = 'happy' WHERE id = %s", [n])
                written.append(n)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until(lambda: len(written) >= 20, 20, "the writer to start")
        pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
        _wait_state(pair, "streaming", 60)
        copied_while_writing = len(written)
        wait_until(lambda: len(written) >= copied_while_writing + 50, 20, "more writes")
    finally:
        stop.set()
        thread.join()
    pair.caught_up()
    _same(pair, COMPARE)
    _same(pair, DEFINITIONS)
    status = pair.status()
    assert status["tables_total"] == status["tables_copied"] == 4
    assert status["rows_copied"] >= 22_500 + 20
    # sequences follow at the copy; the identity and serial ones are used by
    # replicated inserts and must not collide downstream either
    assert pair.down.scalar("SELECT nextval('public.counter')") == 105
    assert pair.down.scalar("SELECT last_value FROM shop.customer_id_seq") == 2000
    # the copied schema is live: later DML and DDL keep replicating
    pair.up.execute("INSERT INTO public.empty_one VALUES (1), (2)")
    pair.up.execute("DELETE FROM public.keyless WHERE a = 3")
    pair.caught_up()
    _same(pair, COMPARE)


def test_empty_upstream_is_followed_at_once(pair: Pair) -> None:
    pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
    _wait_state(pair, "streaming", 30)
    status = pair.status()
    assert (status["tables_total"], status["tables_copied"], status["rows_copied"]) == (0, 0, 0)
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY)")
    pair.up.execute("INSERT INTO t VALUES (1)")
    pair.caught_up()
    assert pair.down.rows("SELECT id FROM t") == [(1,)]


def test_copy_conflict_is_an_error_that_is_retried(pair: Pair) -> None:
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    pair.up.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g")
    pair.down.execute("CREATE TABLE t (id int)")  # in the way of the copy
    pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
    status = _wait_state(pair, "error", 30)
    assert 'relation "t" already exists' in status["last_error"]
    assert "copy_data => false" in status["last_error"]
    assert "CREATE TABLE public.t" in status["error_statement"]
    # nothing of the failed copy is left downstream, and no slot piles up WAL
    assert pair.down.scalar("SELECT count(*) FROM pg_class WHERE relname = 't_pkey'") == 0
    # the operator moves the table away; the retry copies everything
    pair.down.execute("DROP TABLE t")
    _wait_state(pair, "streaming", 60)
    pair.caught_up()
    assert pair.down.scalar("SELECT count(*) FROM t") == 100
