"""DDL run inside DO blocks, functions and procedures replicates as the
statement that ran (taken from the event trigger's call stack), under the
search_path of that moment; the catalogs of both sides are compared.

Functions are not replicated here (CREATE FUNCTION is refused while followed),
so the routines are created on both sides before following."""

from __future__ import annotations

import psycopg
import pytest
from test_ddl_replication import SCHEMAS, TYPES, definition, same_definition, same_rows

from conftest import Pair

PARTITIONS = """
    SELECT c.oid::regclass::text, i.inhparent::regclass::text, pg_get_expr(c.relpartbound, c.oid)
      FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
     WHERE c.relkind IN ('r', 'p') ORDER BY 1"""

RELATIONS = """
    SELECT n.nspname, c.relname, c.relkind FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgfollower', 'pg_toast')
       AND c.relkind IN ('r', 'p', 'i', 'I', 'S') ORDER BY 1, 2"""


def on_both(pair: Pair, *statements: str) -> None:
    for node in (pair.up, pair.down):
        for statement in statements:
            node.execute(statement)


def healthy(pair: Pair) -> None:
    status = pair.status()
    assert status["state"] == "streaming" and status["last_error"] is None, status


def test_do_blocks_including_the_idempotent_create_type(pair: Pair) -> None:
    pair.follow()
    idempotent = (
        "DO $$ BEGIN CREATE TYPE mood AS ENUM ('sad', 'ok'); "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    pair.up.execute(idempotent)
    pair.up.execute(idempotent)  # the second attempt fails and is caught: nothing to replay
    pair.up.execute(
        """DO $$
        BEGIN
            CREATE TABLE t (id int PRIMARY KEY, m mood DEFAULT 'ok');
            CREATE INDEX t_m ON t (m);
            ALTER TABLE t ADD COLUMN note text;
        END $$"""
    )
    # a subtransaction that queued DDL and rolled back: its queue row is not decoded
    pair.up.execute(
        """DO $$
        BEGIN
            BEGIN
                CREATE TABLE gone (id int PRIMARY KEY);
                ALTER TABLE t ADD COLUMN gone int;
                RAISE EXCEPTION 'undo';
            EXCEPTION WHEN raise_exception THEN NULL;
            END;
            ALTER TYPE mood ADD VALUE 'glad';
        END $$"""
    )
    pair.up.execute("INSERT INTO t VALUES (1, 'glad', 'x'), (2, DEFAULT, NULL)")
    pair.caught_up()
    same_definition(pair, "t")
    same_rows(pair, "t")
    assert pair.down.rows(RELATIONS) == pair.up.rows(RELATIONS)
    assert pair.down.scalar("SELECT to_regclass('gone')") is None
    healthy(pair)


def test_partition_maintenance_function_with_execute_format(pair: Pair) -> None:
    maintain = """
        CREATE FUNCTION add_month(p_first date) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
            v_name text := 'sales_' || to_char(p_first, 'YYYY_MM');
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF sales FOR VALUES FROM (%L) TO (%L)',
                           v_name, p_first, p_first + interval '1 month');
            EXECUTE format('CREATE INDEX %I ON %I (amount)', v_name || '_amount', v_name);
        END $$"""
    attach = """
        CREATE FUNCTION attach_old(p_before date) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE 'CREATE TABLE sales_old (LIKE sales INCLUDING DEFAULTS)';
            EXECUTE format('ALTER TABLE sales ATTACH PARTITION sales_old'
                           ' FOR VALUES FROM (MINVALUE) TO (%L)', p_before);
        END $$"""
    on_both(pair, maintain, attach)
    pair.follow()
    pair.up.execute(
        "CREATE TABLE sales (id bigint, sold date NOT NULL, amount numeric(10, 2) DEFAULT 0)"
        " PARTITION BY RANGE (sold)"
    )
    pair.up.execute("SELECT add_month('2024-01-01'), add_month('2024-02-01')")
    pair.up.execute("SELECT attach_old('2024-01-01')")
    pair.up.execute(
        "INSERT INTO sales VALUES (1, '2023-06-01', 5), (2, '2024-01-15', 7), (3, '2024-02-29', 9)"
    )
    pair.caught_up()
    assert pair.down.rows(PARTITIONS) == pair.up.rows(PARTITIONS)
    assert len(pair.up.rows(PARTITIONS)) == 3
    same_definition(pair, "sales", "sales_2024_01", "sales_2024_02", "sales_old")
    same_rows(pair, "sales")
    healthy(pair)


def test_procedure_committing_between_ddl_statements(pair: Pair) -> None:
    procedure = """
        CREATE PROCEDURE migrate() LANGUAGE plpgsql AS $$
        BEGIN
            CREATE TABLE step1 (id int PRIMARY KEY);
            INSERT INTO step1 VALUES (1);
            COMMIT;
            ALTER TABLE step1 ADD COLUMN v text DEFAULT 'two';
            INSERT INTO step1 VALUES (2);
            COMMIT;
            CREATE SEQUENCE step_seq START 10;
            ROLLBACK;
            CREATE SCHEMA step_s;
            CREATE TABLE step_s.step2 (id int PRIMARY KEY REFERENCES public.step1);
        END $$"""
    half = """
        CREATE PROCEDURE half() LANGUAGE plpgsql AS $$
        BEGIN
            CREATE TABLE half1 (id int PRIMARY KEY);
            COMMIT;
            CREATE TABLE half2 (id int PRIMARY KEY);
            RAISE EXCEPTION 'stop here';
        END $$"""
    on_both(pair, procedure, half)
    pair.follow()
    pair.up.execute("CALL migrate()")
    # what committed before the error stays committed, and replicated
    with pytest.raises(psycopg.errors.RaiseException):
        pair.up.execute("CALL half()")
    pair.up.execute("INSERT INTO step_s.step2 VALUES (2)")
    pair.caught_up()
    same_definition(pair, "step1", "step_s.step2")
    same_rows(pair, "step1")
    same_rows(pair, "step_s.step2")
    assert pair.down.scalar("SELECT to_regclass('step_seq')") is None  # rolled back
    assert pair.down.scalar("SELECT to_regclass('half2')") is None
    same_definition(pair, "half1")
    # each COMMIT made a transaction of its own upstream, applied as such
    assert pair.up.rows(SCHEMAS) == pair.down.rows(SCHEMAS)
    healthy(pair)


def test_sql_functions_nested_calls_and_trigger_functions(pair: Pair) -> None:
    on_both(
        pair,
        "CREATE TABLE t (id int PRIMARY KEY)",
        "CREATE TABLE events (id int PRIMARY KEY, kind text)",
        # a SQL-language function: the frame names its statement by number
        "CREATE FUNCTION widen() RETURNS void LANGUAGE sql AS $$"
        " ALTER TABLE t ADD COLUMN a int; ALTER TABLE t ADD COLUMN b text DEFAULT 'b' $$",
        # a function calling a function calling a function that runs DDL
        "CREATE FUNCTION inner_ddl(p text) RETURNS void LANGUAGE plpgsql AS $$"
        " BEGIN EXECUTE format('ALTER TABLE t ADD COLUMN %I numeric(6, 2)', p); END $$",
        "CREATE FUNCTION middle(p text) RETURNS void LANGUAGE sql AS $$ SELECT inner_ddl(p) $$",
        "CREATE FUNCTION outer_ddl() RETURNS void LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM middle('c'); EXECUTE 'SELECT middle(''d'')'; END $$",
        # a trigger function that runs DDL the first time a kind shows up
        "CREATE FUNCTION by_kind() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN EXECUTE format('CREATE TABLE IF NOT EXISTS %I (id int PRIMARY KEY)',"
        " 'kind_' || NEW.kind); RETURN NEW; END $$",
        "CREATE TRIGGER by_kind BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION by_kind()",
    )
    # downstream the trigger does not fire on applied rows: the tables come
    # from the replicated DDL
    pair.follow()
    pair.up.execute("SELECT widen()")
    pair.up.execute("SELECT outer_ddl()")
    pair.up.execute("INSERT INTO events VALUES (1, 'a'), (2, 'b'), (3, 'a')")
    pair.up.execute("INSERT INTO t VALUES (1, 1, 'x', 1.5, 2.5)")
    pair.caught_up()
    same_definition(pair, "t", "events", "kind_a", "kind_b")
    same_rows(pair, "t")
    same_rows(pair, "events")
    healthy(pair)


def test_the_search_path_of_that_moment(pair: Pair) -> None:
    on_both(
        pair,
        "CREATE SCHEMA app",
        "CREATE SCHEMA other",
        "CREATE TYPE other.kind AS ENUM ('x')",
        "CREATE TYPE app.kind AS ENUM ('y', 'z')",
        # SET search_path in the definition: names resolve in app
        "CREATE FUNCTION app.make() RETURNS void LANGUAGE plpgsql SET search_path = app AS $$"
        " BEGIN CREATE TABLE made (id int PRIMARY KEY, k kind DEFAULT 'y'); END $$",
        # set_config and SET LOCAL inside the body
        "CREATE FUNCTION make_other() RETURNS void LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM set_config('search_path', 'other', true);"
        " CREATE TABLE made (id int PRIMARY KEY, k kind DEFAULT 'x');"
        " SET LOCAL search_path = app, other; CREATE INDEX made_k ON made (k); END $$",
    )
    pair.follow()
    pair.up.execute("SET search_path = public")
    pair.up.execute("SELECT app.make()")
    with pair.up.conn.transaction():
        pair.up.execute("SELECT make_other()")
    pair.up.execute("INSERT INTO app.made VALUES (1, 'z')")
    pair.up.execute("INSERT INTO other.made VALUES (1, DEFAULT)")
    pair.caught_up()
    same_definition(pair, "app.made", "other.made")
    assert definition(pair.down, "app.made")["indexes"] == [
        ("app.made_k", "CREATE INDEX made_k ON app.made USING btree (k)"),
        ("app.made_pkey", "CREATE UNIQUE INDEX made_pkey ON app.made USING btree (id)"),
    ]
    same_rows(pair, "app.made")
    same_rows(pair, "other.made")
    assert pair.down.rows(TYPES) == pair.up.rows(TYPES)
    healthy(pair)


def test_plpython_ddl_and_drops_inside_functions(pair: Pair) -> None:
    on_both(
        pair,
        "CREATE TABLE doomed (id int PRIMARY KEY)",
        "CREATE TABLE kept (id int PRIMARY KEY)",
        "CREATE FUNCTION drop_it(p text) RETURNS void LANGUAGE plpgsql AS $$"
        " BEGIN EXECUTE format('DROP TABLE %I CASCADE', p); END $$",
    )
    pair.follow()
    pair.up.execute(
        "DO LANGUAGE plpython3u $$"
        " plpy.execute('ALTER TABLE kept ADD COLUMN \"from python\" text') $$"
    )
    pair.up.execute("SELECT drop_it('doomed')")
    pair.up.execute("""INSERT INTO kept VALUES (1, 'py')""")
    pair.caught_up()
    assert pair.down.scalar("SELECT to_regclass('doomed')") is None
    same_definition(pair, "kept")
    same_rows(pair, "kept")
    healthy(pair)


def test_extension_scripts_stay_the_extensions(pair: Pair) -> None:
    """CREATE EXTENSION's script creates types and functions: they are the
    extension's (in_extension), never replayed on their own downstream."""
    pair.follow()
    pair.up.execute("SET pg_follower_py.unsupported_ddl = 'warn'")  # CREATE EXTENSION itself
    warnings: list[str] = []
    pair.up.conn.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
    pair.up.execute("CREATE EXTENSION hstore")
    pair.up.execute("RESET pg_follower_py.unsupported_ddl")
    pair.up.execute("CREATE TABLE after_ext (id int PRIMARY KEY)")
    pair.up.execute("INSERT INTO after_ext VALUES (1)")
    pair.caught_up()
    assert all("CREATE EXTENSION" in w for w in warnings if "pg_follower_py" in w), warnings
    loose = (
        "SELECT count(*) FROM pg_type t WHERE t.typname = 'hstore' AND NOT EXISTS"
        " (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')"
    )
    assert pair.down.scalar(loose) == 0
    same_rows(pair, "after_ext")
    healthy(pair)


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "DO $$ BEGIN EXECUTE 'ALTER TABLE t ADD x int; ALTER TABLE t ADD y int'; END $$",
            "pg_follower_py: the statement text its call stack shows holds 2 different"
            " ALTER TABLE statements for public.t",
        ),
        (
            "SELECT twice()",
            'pg_follower_py: the statement of SQL function "twice" statement 1 holds 2'
            " different ALTER TABLE statements for public.t",
        ),
    ],
)
def test_nested_text_that_cannot_be_told_apart_is_refused(
    pair: Pair, statement: str, message: str
) -> None:
    on_both(
        pair,
        "CREATE TABLE t (id int PRIMARY KEY)",
        "CREATE SCHEMA s2",
        # two SQL functions of one name: the frame names neither's schema
        "CREATE FUNCTION public.twice() RETURNS void LANGUAGE sql AS $$ ALTER TABLE t ADD x int $$",
        "CREATE FUNCTION s2.twice() RETURNS void LANGUAGE sql AS $$ ALTER TABLE t ADD y int $$",
    )
    pair.follow()
    with pytest.raises(psycopg.errors.InternalError_) as info:
        pair.up.execute(statement)
    assert info.value.diag.message_primary == f"plpy.Error: {message}", info.value
    assert info.value.diag.message_hint
    pair.up.execute("INSERT INTO t VALUES (1)")
    pair.caught_up()
    same_definition(pair, "t")
    healthy(pair)
