"""Unit tests for pg_follower.ddl: splitting, tagging and deparsing DDL, no server."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from pg_follower.server import ddl
from pg_follower.server.ddl import (
    FORMAT_VERSION,
    Command,
    DroppedObject,
    Unsupported,
    capture_command,
    capture_drop,
    split_statements,
    statement_tag,
)

NOT_IN_QUERY = "the {tag} statement for {identity} is not in the client's query text"
NOT_IN_QUERY_HINT = (
    "Run the DDL as a plain statement, or from PL/pgSQL (a function, a procedure, a DO"
    " block; static or by EXECUTE)."
)
ONLY_HINT = ddl.SUPPORTED_HINT
CTAS_HINT = "Create the table with CREATE TABLE, then fill it with INSERT ... SELECT."
DROP_OWNED_HINT = (
    "DROP OWNED also revokes the role's privileges on the cluster's databases and"
    " tablespaces: drop its objects with DROP and revoke its privileges with REVOKE."
)
LARGE_OBJECT_HINT = (
    "Large objects are not replicated (their rows are in pg_largeobject, a catalog):"
    " run this on each side yourself."
)


def table(identity: str, schema: str = "public", *, in_extension: bool = False) -> Command:
    return Command("CREATE TABLE", "table", schema, identity, in_extension)


def serial_table(identity: str, schema: str = "public") -> list[Command]:
    """The rows of CREATE TABLE with a serial primary key, in the server's order."""
    seq = identity + "_id_seq"
    return [
        Command("CREATE SEQUENCE", "sequence", schema, seq, False),
        table(identity, schema),
        Command("CREATE INDEX", "index", schema, identity + "_pkey", False),
        Command("ALTER SEQUENCE", "sequence", schema, seq, False),
    ]


def create_sql(query: str, identity: str, search_path: str = "public", **kw: bool) -> str:
    schema = identity.rsplit(".", 1)[0].strip('"')
    messages = capture_command("CREATE TABLE", query, [table(identity, schema)], search_path, **kw)
    assert len(messages) == 1
    return str(messages[0]["sql"])


def refusal(call: object, *args: object, **kw: object) -> tuple[str, str]:
    assert callable(call)
    with pytest.raises(Unsupported) as info:
        call(*args, **kw)
    assert str(info.value) == info.value.message
    return info.value.message, info.value.hint


def dropped(
    identity: str,
    schema: str,
    name: str,
    *,
    original: bool = True,
    temporary: bool = False,
    object_type: str = "table",
) -> DroppedObject:
    return DroppedObject(object_type, schema, name, identity, original, temporary)


# --- split_statements ---------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", []),
        ("  ;; ; ", []),
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;", ["SELECT 1"]),
        ("SELECT 1; SELECT 2;\n", ["SELECT 1", "SELECT 2"]),
        ("-- lead\n/* more */ SELECT 1 -- tail", ["SELECT 1"]),
        ("SELECT 1 /* a ; b */ + 2; SELECT 3", ["SELECT 1 /* a ; b */ + 2", "SELECT 3"]),
        ("SELECT 'a;b', 'it''s;'; SELECT 2", ["SELECT 'a;b', 'it''s;'", "SELECT 2"]),
        ("SELECT E'\\';'; SELECT 2", ["SELECT E'\\';'", "SELECT 2"]),
        ('SELECT "a;""b"; SELECT 2', ['SELECT "a;""b"', "SELECT 2"]),
        ("SELECT $$;$$, $x$ $$ ; $x$; SELECT 2", ["SELECT $$;$$, $x$ $$ ; $x$", "SELECT 2"]),
        ("SELECT a$$b; SELECT 2", ["SELECT a$$b", "SELECT 2"]),
        ("SELECT $1; SELECT 2", ["SELECT $1", "SELECT 2"]),
        # Where sqlparse (0.4.2 to 0.5) splits differently from PostgreSQL:
        ("CREATE TABLE t (begin int); SELECT 2", ["CREATE TABLE t (begin int)", "SELECT 2"]),
        ("SELECT 'a\\'; SELECT 2; --'", ["SELECT 'a\\'", "SELECT 2"]),
        ("/* a /* b */ ; SELECT 1; */ SELECT 2", ["SELECT 2"]),
        ("SELECT 1 # 2; SELECT 3", ["SELECT 1 # 2", "SELECT 3"]),
        ("SELECT (x<>$$)$$); SELECT 3", ["SELECT (x<>$$)$$)", "SELECT 3"]),
        # A string continues across a newline, in the mode it started in.
        ("SELECT E'a'\n'\\';'; SELECT 2", ["SELECT E'a'\n'\\';'", "SELECT 2"]),
        ("SELECT E'a' '\\'; SELECT 2; --'", ["SELECT E'a' '\\'", "SELECT 2"]),
        ("SELECT U&'\\0041;'; SELECT 2", ["SELECT U&'\\0041;'", "SELECT 2"]),
        # SQL-standard routine bodies, as psql splits them.
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT"
            " CASE WHEN true THEN 2 END; END; SELECT f()",
            [
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT"
                " CASE WHEN true THEN 2 END; END",
                "SELECT f()",
            ],
        ),
        (
            "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2); SELECT 3",
            ["CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)", "SELECT 3"],
        ),
        (
            "DO $$ BEGIN CREATE TABLE t(x int); END $$; SELECT 2",
            ["DO $$ BEGIN CREATE TABLE t(x int); END $$", "SELECT 2"],
        ),
        ("BEGIN; CREATE TABLE t (x int); END", ["BEGIN", "CREATE TABLE t (x int)", "END"]),
        ("SELECT 'unterminated; SELECT 2", ["SELECT 'unterminated; SELECT 2"]),
    ],
)
def test_split_statements(query: str, expected: list[str]) -> None:
    assert split_statements(query) == expected


def test_split_statements_standard_conforming_strings_off() -> None:
    query = "SELECT 'a\\'; SELECT 2; --'"
    assert split_statements(query, standard_conforming_strings=False) == [query]
    assert split_statements("SELECT N'a\\'b'; SELECT 2", standard_conforming_strings=False) == [
        "SELECT N'a\\'b'",
        "SELECT 2",
    ]


def test_split_statements_is_linear_on_comment_runs() -> None:
    query = "SELECT 'x' " + "-- " * 20000 + "\nSELECT 2"
    assert split_statements(query) == [query]


# --- statement_tag ------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "tag"),
    [
        ("CREATE TABLE t (x int)", "CREATE TABLE"),
        ("create table t (x int)", "CREATE TABLE"),
        ("/* c */ -- c\n CREATE TABLE t (x int)", "CREATE TABLE"),
        ("CREATE GLOBAL TEMPORARY TABLE t (x int)", "CREATE TABLE"),
        ("CREATE UNLOGGED TABLE IF NOT EXISTS t (x int)", "CREATE TABLE"),
        ("CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)", "CREATE TABLE"),
        ("CREATE TABLE t (x int GENERATED ALWAYS AS (1) STORED)", "CREATE TABLE"),
        ("CREATE TABLE x AS SELECT 1", "CREATE TABLE AS"),
        ("CREATE TEMP TABLE x (a, b) WITH (fillfactor = 70) AS VALUES (1, 2)", "CREATE TABLE AS"),
        ("CREATE TABLE x AS EXECUTE p", "CREATE TABLE AS"),
        ('CREATE TABLE "as" (x int)', "CREATE TABLE"),
        ("SELECT 1 INTO t", "SELECT INTO"),
        ("SELECT * INTO TEMP t FROM u", "SELECT INTO"),
        ("WITH a AS (SELECT 1) SELECT * INTO t FROM a", "SELECT INTO"),
        ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", None),
        ("SELECT 1", None),
        ("SELECT x FROM (SELECT 1 AS x) s", None),
        ("INSERT INTO t VALUES (1)", None),
        ("DO $$ BEGIN CREATE TABLE t(x int); END $$", None),
        ("CALL p()", None),
        ("", None),
        ("DROP TABLE t", "DROP TABLE"),
        ("DROP TABLE IF EXISTS a, b CASCADE", "DROP TABLE"),
        ("DROP FOREIGN TABLE f", "DROP FOREIGN TABLE"),
        ("DROP INDEX CONCURRENTLY i", "DROP INDEX"),
        ("DROP OWNED BY bob", "DROP OWNED"),
        ("DROP PROCEDURAL LANGUAGE l", "DROP LANGUAGE"),
        ("ALTER TABLE t ADD COLUMN y int", "ALTER TABLE"),
        ("ALTER TABLE t RENAME TO u", "ALTER TABLE"),
        ("ALTER USER bob", "ALTER ROLE"),
        ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob", "ALTER DEFAULT PRIVILEGES"),
        ("CREATE INDEX ON t (x)", "CREATE INDEX"),
        ("CREATE UNIQUE INDEX CONCURRENTLY i ON t (x)", "CREATE INDEX"),
        ("CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE VIEW"),
        ("CREATE TEMP RECURSIVE VIEW v (n) AS SELECT 1", "CREATE VIEW"),
        ("CREATE MATERIALIZED VIEW m AS SELECT 1", "CREATE MATERIALIZED VIEW"),
        (
            "CREATE OR REPLACE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
            "CREATE FUNCTION",
        ),
        (
            "CREATE CONSTRAINT TRIGGER t AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
            "CREATE TRIGGER",
        ),
        ("CREATE EVENT TRIGGER e ON ddl_command_end EXECUTE FUNCTION f()", "CREATE EVENT TRIGGER"),
        ("CREATE SCHEMA s CREATE TABLE t (x int)", "CREATE SCHEMA"),
        ("CREATE SEQUENCE s", "CREATE SEQUENCE"),
        ("CREATE TYPE t AS (a int)", "CREATE TYPE"),
        (
            "CREATE OPERATOR CLASS c FOR TYPE int USING btree AS OPERATOR 1 <",
            "CREATE OPERATOR CLASS",
        ),
        ("CREATE OPERATOR === (function = f)", "CREATE OPERATOR"),
        (
            "CREATE TEXT SEARCH CONFIGURATION c (parser = default)",
            "CREATE TEXT SEARCH CONFIGURATION",
        ),
        ("CREATE FOREIGN DATA WRAPPER w", "CREATE FOREIGN DATA WRAPPER"),
        ("CREATE USER MAPPING FOR bob SERVER s", "CREATE USER MAPPING"),
        ("CREATE USER bob", "CREATE ROLE"),
        ("CREATE DEFAULT CONVERSION c FOR 'LATIN1' TO 'UTF8' FROM f", "CREATE CONVERSION"),
        ("CREATE TRUSTED PROCEDURAL LANGUAGE l", "CREATE LANGUAGE"),
        ("GRANT SELECT ON t TO bob", "GRANT"),
        ("REVOKE SELECT ON t FROM bob", "REVOKE"),
        ("COMMENT ON TABLE t IS 'x'", "COMMENT"),
        ("SECURITY LABEL ON TABLE t IS 'x'", "SECURITY LABEL"),
        ("IMPORT FOREIGN SCHEMA s FROM SERVER f INTO t", "IMPORT FOREIGN SCHEMA"),
        ("REFRESH MATERIALIZED VIEW m", "REFRESH MATERIALIZED VIEW"),
        ("CREATE WIDGET w", None),
        ("CREATE TABLE a (x int); SELECT 1", "CREATE TABLE"),
    ],
)
def test_statement_tag(statement: str, tag: str | None) -> None:
    assert statement_tag(statement) == tag


# --- capture_command: CREATE TABLE ----------------------------------------------


def test_create_table_message() -> None:
    query = "CREATE TABLE t (id serial PRIMARY KEY, v text);"
    assert capture_command(
        "CREATE TABLE", query, serial_table("public.t"), 'public, "My Schema"'
    ) == [
        {
            "v": FORMAT_VERSION,
            "kind": "create_table",
            "tag": "CREATE TABLE",
            "identity": "public.t",
            "search_path": 'public, "My Schema"',
            "sql": "CREATE TABLE public.t (id serial PRIMARY KEY, v text)",
        }
    ]
    assert FORMAT_VERSION == 2


@pytest.mark.parametrize(
    ("query", "identity", "search_path", "sql"),
    [
        ("CREATE TABLE t (x int)", "public.t", "public", "CREATE TABLE public.t (x int)"),
        ("create table T (x int)", "public.t", "public", "create table public.t (x int)"),
        ("  CREATE TABLE t (x int) ;  \n", "public.t", "public", "CREATE TABLE public.t (x int)"),
        ("CREATE TABLE t ()", "public.t", "public", "CREATE TABLE public.t ()"),
        (
            'CREATE TABLE "My Table" (x int)',
            'public."My Table"',
            "public",
            'CREATE TABLE public."My Table" (x int)',
        ),
        (
            'CREATE TABLE "S"."T" (x int)',
            '"S"."T"',
            "public",
            'CREATE TABLE "S"."T" (x int)',
        ),
        (
            'CREATE TABLE "My Schema"."Mixed" (x int)',
            '"My Schema"."Mixed"',
            "public",
            'CREATE TABLE "My Schema"."Mixed" (x int)',
        ),
        ("CREATE TABLE s.t (x int)", "s.t", "public", "CREATE TABLE s.t (x int)"),
        ("CREATE TABLE S.T (x int)", "s.t", "public", "CREATE TABLE s.t (x int)"),
        ("CREATE TABLE s . /* odd */ t (x int)", "s.t", "public", "CREATE TABLE s.t (x int)"),
        ("CREATE TABLE mydb.s.t (x int)", "s.t", "public", "CREATE TABLE s.t (x int)"),
        (
            "CREATE TABLE t (x int)",
            '"My Schema".t',
            '"My Schema", public',
            'CREATE TABLE "My Schema".t (x int)',
        ),
        (
            'CREATE TABLE "Q""uote" (x int)',
            'public."Q""uote"',
            "public",
            'CREATE TABLE public."Q""uote" (x int)',
        ),
        ('CREATE TABLE"t"(x int)', "public.t", "public", "CREATE TABLE public.t(x int)"),
        ('CREATE TABLE "if" (x int)', 'public."if"', "public", 'CREATE TABLE public."if" (x int)'),
        ("CREATE TABLE if (x int)", 'public."if"', "public", 'CREATE TABLE public."if" (x int)'),
        (
            "CREATE TABLE IF NOT EXISTS t (x int)",
            "public.t",
            "public",
            "CREATE TABLE IF NOT EXISTS public.t (x int)",
        ),
        (
            "CREATE UNLOGGED TABLE t (x int)",
            "public.t",
            "public",
            "CREATE UNLOGGED TABLE public.t (x int)",
        ),
        (
            "CREATE TABLE p (k int, v text) PARTITION BY RANGE (k)",
            "public.p",
            "public",
            "CREATE TABLE public.p (k int, v text) PARTITION BY RANGE (k)",
        ),
        (
            "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)",
            "public.p1",
            "public",
            "CREATE TABLE public.p1 PARTITION OF p FOR VALUES FROM (0) TO (10)",
        ),
        (
            "CREATE TABLE c (z int) INHERITS (a, b)",
            "public.c",
            "public",
            "CREATE TABLE public.c (z int) INHERITS (a, b)",
        ),
        (
            "CREATE TABLE t OF pair (a PRIMARY KEY)",
            "public.t",
            "public",
            "CREATE TABLE public.t OF pair (a PRIMARY KEY)",
        ),
        (
            "CREATE TABLE t (x text DEFAULT $$a;b$$ CHECK (x <> $q$;$q$))",
            "public.t",
            "public",
            "CREATE TABLE public.t (x text DEFAULT $$a;b$$ CHECK (x <> $q$;$q$))",
        ),
        (
            "CREATE TABLE t (x text DEFAULT 'a;b' CHECK (x ~ '^\\d+;$'))",
            "public.t",
            "public",
            "CREATE TABLE public.t (x text DEFAULT 'a;b' CHECK (x ~ '^\\d+;$'))",
        ),
        (
            "-- make t\n/* lead */ CREATE TABLE t ( -- id\n x int /* ; */ ) -- tail",
            "public.t",
            "public",
            "CREATE TABLE public.t ( -- id\n x int /* ; */ )",
        ),
        (
            'CREATE TABLE U&"d\\0061t\\+000061" (x int)',
            "public.data",
            "public",
            "CREATE TABLE public.data (x int)",
        ),
        (
            "CREATE TABLE U&\"d!0061ta\" UESCAPE '!' (x int)",
            "public.data",
            "public",
            "CREATE TABLE public.data (x int)",
        ),
        (
            'CREATE TABLE "Ünïcode Täble" (ä int)',
            'public."Ünïcode Täble"',
            "public",
            'CREATE TABLE public."Ünïcode Täble" (ä int)',
        ),
        (
            "CREATE TABLE Ärger (x int)",  # only ASCII letters fold to lower case
            'public."Ärger"',
            "public",
            'CREATE TABLE public."Ärger" (x int)',
        ),
        (
            "CREATE TABLE t_" + "x" * 70 + " (x int)",
            "public.t_" + "x" * 61,
            "public",
            "CREATE TABLE public.t_" + "x" * 61 + " (x int)",
        ),
    ],
)
def test_create_table_sql(query: str, identity: str, search_path: str, sql: str) -> None:
    assert create_sql(query, identity, search_path) == sql


def test_create_table_each_firing_of_a_multi_statement_query() -> None:
    query = (
        "CREATE TABLE a (x int); INSERT INTO a VALUES (1);\n"
        "CREATE TABLE b (begin int, y text DEFAULT 'it''s; fine'); CREATE TABLE s.a (z int)"
    )
    assert create_sql(query, "public.a") == "CREATE TABLE public.a (x int)"
    assert create_sql(query, "public.b") == (
        "CREATE TABLE public.b (begin int, y text DEFAULT 'it''s; fine')"
    )
    assert create_sql(query, "s.a") == "CREATE TABLE s.a (z int)"


def test_create_table_identical_statements_are_not_ambiguous() -> None:
    query = "CREATE TABLE IF NOT EXISTS a (x int); CREATE TABLE IF NOT EXISTS a (x int)"
    assert create_sql(query, "public.a") == "CREATE TABLE IF NOT EXISTS public.a (x int)"


def test_create_table_statement_of_another_tag_is_skipped() -> None:
    query = "CREATE TABLE t AS SELECT 1; DROP TABLE t; CREATE TABLE t (x int)"
    assert create_sql(query, "public.t") == "CREATE TABLE public.t (x int)"


@pytest.mark.parametrize(
    "commands",
    [
        [],  # CREATE TABLE IF NOT EXISTS on an existing table
        [table("pg_temp.t", "pg_temp")],
        [table("pg_temp_3.t", "pg_temp_3")],
        [table("public.t", in_extension=True)],
        [
            Command("CREATE SEQUENCE", "sequence", "pg_temp", "pg_temp.t_id_seq", False),
            table("pg_temp.t", "pg_temp"),
        ],
        # Even next to rows of permanent objects, a temporary table is not replicated.
        [
            table("pg_temp.t", "pg_temp"),
            Command("CREATE TYPE", "type", "public", "public.x", False),
        ],
    ],
)
def test_create_table_needing_nothing(commands: list[Command]) -> None:
    for query in ("CREATE TABLE t (x int)", "CREATE TEMP TABLE t (x int)", "SELECT f()"):
        assert capture_command("CREATE TABLE", query, commands, "public") == []


@pytest.mark.parametrize(
    ("tag", "query", "commands"),
    [
        ("CREATE TABLE AS", "CREATE TEMP TABLE t AS SELECT 1", [
            Command("CREATE TABLE AS", "table", "pg_temp", "pg_temp.t", False)
        ]),
        ("SELECT INTO", "SELECT 1 INTO TEMPORARY t", [
            Command("SELECT INTO", "table", "pg_temp", "pg_temp.t", False)
        ]),
        ("CREATE INDEX", "CREATE INDEX ON tmp (x)", [
            Command("CREATE INDEX", "index", "pg_temp", "pg_temp.tmp_x_idx", False)
        ]),
        ("CREATE FUNCTION", "CREATE EXTENSION e", [
            Command("CREATE FUNCTION", "function", "public", "public.f()", True)
        ]),
        ("DROP TABLE", "DROP TABLE t", []),
        ("DROP INDEX", "DROP INDEX i", []),
    ],
)  # fmt: skip
def test_other_commands_needing_nothing(tag: str, query: str, commands: list[Command]) -> None:
    assert capture_command(tag, query, commands, "public") == []


# --- capture_command: refusals --------------------------------------------------


@pytest.mark.parametrize(
    ("query", "identity", "search_path", "kw"),
    [
        ("DO $$ BEGIN CREATE TABLE t (x int); END $$", "public.t", "public", {}),
        ("SELECT make_tables()", "public.t", "public", {}),
        ("EXECUTE p", "public.t", "public", {}),
        ("CREATE TABLE t AS SELECT 1", "public.t", "public", {}),
        ("CREATE TEMP TABLE t (x int)", "public.t", "public", {}),
        ("CREATE TABLE other.t (x int)", "public.t", "public", {}),
        ("CREATE TABLE u (x int)", "public.t", "public", {}),
        ('CREATE TABLE "T" (x int)', "public.t", "public", {}),
        # Unqualified, the statement creates in the first schema of the path.
        ("CREATE TABLE t (x int)", "public.t", "s, public", {}),
        ("CREATE TABLE t (x int)", "public.t", "", {}),
        ("/* CREATE TABLE t (x int); */ SELECT f()", "public.t", "public", {}),
    ],
)
def test_create_table_not_in_query(
    query: str, identity: str, search_path: str, kw: dict[str, bool]
) -> None:
    assert refusal(create_sql, query, identity, search_path, **kw) == (
        NOT_IN_QUERY.format(tag="CREATE TABLE", identity=identity),
        NOT_IN_QUERY_HINT,
    )


def test_create_table_ambiguous() -> None:
    query = "CREATE TABLE IF NOT EXISTS a (x int); CREATE TABLE IF NOT EXISTS a (y int)"
    assert refusal(create_sql, query, "public.a") == (
        "the client's query text holds 2 different CREATE TABLE statements for public.a",
        "Send each of these statements as a query of its own.",
    )
    query = "CREATE TABLE a (x int); DROP TABLE a; CREATE TABLE public.a (x int)"
    assert refusal(create_sql, query, "public.a")[0] == (
        "the client's query text holds 2 different CREATE TABLE statements for public.a"
    )


def test_create_table_backslash_with_standard_conforming_strings_off() -> None:
    query = "CREATE TABLE t (x text DEFAULT 'a\\'';')"
    kw = {"standard_conforming_strings": False}
    assert refusal(create_sql, query, "public.t", **kw) == (
        "the CREATE TABLE statement for public.t has a backslash in a string literal while"
        " standard_conforming_strings is off",
        "Write such literals as E'...' strings, or turn standard_conforming_strings on.",
    )
    query = "CREATE TABLE t (x text DEFAULT E'a\\';' CHECK (x <> 'b'))"
    assert create_sql(query, "public.t", **kw) == (
        "CREATE TABLE public.t (x text DEFAULT E'a\\';' CHECK (x <> 'b'))"
    )


@pytest.mark.parametrize(
    ("tag", "query", "commands", "message", "hint"),
    [
        (
            "CREATE TABLE AS",
            "CREATE TABLE t AS SELECT 1",
            [Command("CREATE TABLE AS", "table", "public", "public.t", False)],
            "CREATE TABLE AS on public.t cannot be replicated",
            CTAS_HINT,
        ),
        (
            "SELECT INTO",
            "SELECT 1 AS x INTO t",
            [Command("SELECT INTO", "table", "public", "public.t", False)],
            "SELECT INTO on public.t cannot be replicated",
            CTAS_HINT,
        ),
        (
            "IMPORT FOREIGN SCHEMA",
            "IMPORT FOREIGN SCHEMA remote FROM SERVER srv INTO public",
            [Command("IMPORT FOREIGN SCHEMA", "foreign table", "public", "public.ft", False)],
            "IMPORT FOREIGN SCHEMA on public.ft cannot be replicated",
            "The downstream would read the remote schema again, maybe another one: create the"
            " foreign tables with CREATE FOREIGN TABLE.",
        ),
        (
            "DROP OWNED",
            "DROP OWNED BY bob",
            [Command("REVOKE", "TABLE", None, None, False)],
            "DROP OWNED cannot be replicated",
            DROP_OWNED_HINT,
        ),
        (
            "CREATE SUBSCRIPTION",
            "CREATE SUBSCRIPTION sub CONNECTION 'host=x' PUBLICATION p",
            [Command("CREATE SUBSCRIPTION", "subscription", None, "sub", False)],
            "CREATE SUBSCRIPTION on sub cannot be replicated",
            "A subscription is one node's own: create, alter or drop it on each side yourself.",
        ),
        (
            "COMMENT",
            "COMMENT ON LARGE OBJECT 4242 IS 'x'",
            [Command("COMMENT", "large object", None, "4242", False)],
            "COMMENT on large object 4242 cannot be replicated",
            LARGE_OBJECT_HINT,
        ),
        (
            "GRANT",
            "GRANT SELECT ON LARGE OBJECT 4242 TO bob",
            [Command("GRANT", "LARGE OBJECT", None, None, False)],
            "GRANT on large object cannot be replicated",
            LARGE_OBJECT_HINT,
        ),
        (
            "CREATE EVENT TRIGGER",
            "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
            [],
            "CREATE EVENT TRIGGER cannot be replicated",
            ONLY_HINT,
        ),
        (
            "CREATE TABLE",
            "CREATE TABLE t (x int)",
            [table("public.t"), table("public.u")],
            "CREATE TABLE on public.t, public.u cannot be replicated: the event trigger"
            " reported 2 tables",
            "Please report this to the pg_follower_py developers.",
        ),
    ],
)
def test_unsupported_commands(
    tag: str, query: str, commands: list[Command], message: str, hint: str
) -> None:
    assert refusal(capture_command, tag, query, commands, "public") == (message, hint)


def test_unsupported_is_an_exception_with_message_and_hint() -> None:
    exc = Unsupported("m", "h")
    assert isinstance(exc, Exception)
    assert (exc.message, exc.hint, str(exc)) == ("m", "h", "m")


def test_bad_search_path_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="not a list of schema names"):
        capture_command("CREATE TABLE", "CREATE TABLE t ()", [table("public.t")], "public; x")


# --- capture_drop -----------------------------------------------------------------

MIXED = dropped('"My Schema"."Mixed"', "My Schema", "Mixed")
MIXED_SEQ = dropped(
    '"My Schema"."Mixed_id_seq"',
    "My Schema",
    "Mixed_id_seq",
    original=False,
    object_type="sequence",
)
P = dropped("public.p", "public", "p")
P1 = dropped("public.p1", "public", "p1", original=False)
TT = dropped("pg_temp.tt", "pg_temp", "tt", temporary=True)


@pytest.mark.parametrize(
    ("query", "objects", "identity", "sql"),
    [
        ("DROP TABLE p", [P, P1], "public.p", "DROP TABLE public.p"),
        ("drop table P;", [P], "public.p", "DROP TABLE public.p"),
        ("DROP TABLE public.p RESTRICT", [P], "public.p", "DROP TABLE public.p"),
        ("DROP TABLE p CASCADE", [P, P1], "public.p", "DROP TABLE public.p CASCADE"),
        (
            'DROP TABLE p, tt, "My Schema"."Mixed" CASCADE',
            [MIXED, MIXED_SEQ, TT, P, P1],
            '"My Schema"."Mixed", public.p',
            'DROP TABLE "My Schema"."Mixed", public.p CASCADE',
        ),
        (
            "DROP TABLE IF EXISTS p, missing, tt",
            [TT, P],
            "public.p",
            "DROP TABLE public.p",
        ),
        (
            "CREATE TABLE x (y int); DROP TABLE x; -- p\nDROP TABLE p",
            [P],
            "public.p",
            "DROP TABLE public.p",
        ),
        (
            "DROP TABLE IF EXISTS p CASCADE; CREATE TABLE p (); DROP TABLE IF EXISTS p CASCADE",
            [P],
            "public.p",
            "DROP TABLE public.p CASCADE",
        ),
    ],
)
def test_drop_table(query: str, objects: list[DroppedObject], identity: str, sql: str) -> None:
    assert capture_drop("DROP TABLE", query, objects, 'public, "My Schema"') == [
        {
            "v": FORMAT_VERSION,
            "kind": "drop_table",
            "tag": "DROP TABLE",
            "identity": identity,
            "search_path": 'public, "My Schema"',
            "sql": sql,
        }
    ]


@pytest.mark.parametrize(
    ("tag", "objects"),
    [
        (
            "DROP TABLE",
            [TT, dropped("pg_temp.tt", "pg_temp", "tt", original=False, temporary=True)],
        ),
        ("DROP TABLE", [dropped("pg_temp_3.t", "pg_temp_3", "t")]),
        ("DROP TABLE", []),
        ("DROP INDEX", [dropped("pg_temp.i", "pg_temp", "i", temporary=True, object_type="index")]),
        ("ALTER TABLE", [dropped("public.t.x", "public", None, object_type="table column")]),
        ("DROP TABLE", [P1]),
    ],
)
def test_drop_needing_nothing(tag: str, objects: list[DroppedObject]) -> None:
    assert capture_drop(tag, "DROP TABLE tt", objects, "public") == []


@pytest.mark.parametrize(
    ("query", "objects", "search_path", "kw"),
    [
        ("DO $$ BEGIN DROP TABLE p; END $$", [P], "public", {}),
        ("SELECT drop_things()", [P], "public", {}),
        ("DROP TABLE q", [P], "public", {}),
        ("DROP TABLE other.p", [P], "public", {}),
        ("DROP TABLE p", [P], "s", {}),
        ("DROP TABLE p, q", [P], "public", {}),
        ("DROP TABLE p", [P, dropped("public.q", "public", "q")], "public", {}),
        ("DROP VIEW p", [P], "public", {}),
        ('DROP TABLE p, "q" cascade', [P], "public", {}),
        ('DROP TABLE p "cascade"', [P], "public", {}),
    ],
)
def test_drop_table_not_in_query(
    query: str, objects: list[DroppedObject], search_path: str, kw: dict[str, bool]
) -> None:
    identity = ", ".join(o.object_identity or "" for o in objects if o.original)
    assert refusal(capture_drop, "DROP TABLE", query, objects, search_path, **kw) == (
        NOT_IN_QUERY.format(tag="DROP TABLE", identity=identity),
        NOT_IN_QUERY_HINT,
    )


def test_drop_table_ambiguous_cascade() -> None:
    query = "DROP TABLE IF EXISTS p; CREATE TABLE p (); DROP TABLE p CASCADE"
    assert refusal(capture_drop, "DROP TABLE", query, [P], "public") == (
        "the client's query text holds 2 different DROP TABLE statements for public.p",
        "Send each of these statements as a query of its own.",
    )


@pytest.mark.parametrize(
    ("tag", "query", "objects", "message", "hint"),
    [
        (
            "DROP OWNED",
            "DROP OWNED BY bob",
            [P, dropped("public.q", "public", "q")],
            "DROP OWNED on public.p, public.q cannot be replicated",
            DROP_OWNED_HINT,
        ),
        (
            "DROP SUBSCRIPTION",
            "DROP SUBSCRIPTION sub",
            [dropped("sub", None, "sub", object_type="subscription")],
            "DROP SUBSCRIPTION on sub cannot be replicated",
            "A subscription is one node's own: create, alter or drop it on each side yourself.",
        ),
    ],
)
def test_drop_unsupported(
    tag: str, query: str, objects: list[DroppedObject], message: str, hint: str
) -> None:
    assert refusal(capture_drop, tag, query, objects, "public") == (message, hint)


def test_drop_table_of_something_else_is_reported() -> None:
    objects = [dropped("public.f", "public", "f", object_type="foreign table")]
    assert refusal(capture_drop, "DROP TABLE", "DROP TABLE f", objects, "public") == (
        "DROP TABLE on public.f cannot be replicated: the event trigger reported a foreign table",
        "Please report this to the pg_follower_py developers.",
    )


# --- The module itself ----------------------------------------------------------


def test_ddl_imports_only_the_standard_library() -> None:
    # The server's PL/Python imports this module with nothing but Debian's python3.
    tree = ast.parse(Path(ddl.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


# --- Replayed statements: ALTER TABLE, indexes, schemas, types, domains, sequences ----


def cmd(tag: str, object_type: str, schema: str | None, identity: str) -> Command:
    return Command(tag, object_type, schema, identity, False)


def replayed(tag: str, query: str, commands: list[Command], path: str = "public") -> list[str]:
    return [str(m["sql"]) for m in capture_command(tag, query, commands, path)]


ALTER_T = cmd("ALTER TABLE", "table", "public", "public.t")


@pytest.mark.parametrize(
    ("tag", "query", "commands", "sql"),
    [
        (
            "ALTER TABLE",
            "ALTER TABLE t ADD COLUMN y int",
            [ALTER_T],
            "ALTER TABLE t ADD COLUMN y int",
        ),
        (
            "ALTER TABLE",
            "/* c */ alter table ONLY t add y text default 'a;b' -- tail\n;",
            [ALTER_T],
            "alter table ONLY t add y text default 'a;b'",
        ),
        (
            "ALTER TABLE",
            'ALTER TABLE "My"."Tab" ALTER COLUMN "X" SET DEFAULT $d$;$d$',
            [cmd("ALTER TABLE", "table", "My", '"My"."Tab"')],
            'ALTER TABLE "My"."Tab" ALTER COLUMN "X" SET DEFAULT $d$;$d$',
        ),
        (
            "ALTER TABLE",
            # several ALTER TABLEs in one string: the one naming this table
            "ALTER TABLE a ADD x int; INSERT INTO t VALUES (1); ALTER TABLE t ADD y int",
            [ALTER_T],
            "ALTER TABLE t ADD y int",
        ),
        (
            "ALTER TABLE",
            "ALTER TABLE t RENAME TO u",
            [cmd("ALTER TABLE", "table", "public", "public.u")],
            "ALTER TABLE t RENAME TO u",
        ),
        (
            "ALTER TABLE",
            # ALTER TABLE ADD PRIMARY KEY also reports the index it made
            "ALTER TABLE t ADD PRIMARY KEY (id)",
            [cmd("CREATE INDEX", "index", "public", "public.t_pkey"), ALTER_T],
            "ALTER TABLE t ADD PRIMARY KEY (id)",
        ),
        (
            "CREATE INDEX",
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (lower(v))",
            [cmd("CREATE INDEX", "index", "public", "public.i")],
            "CREATE UNIQUE INDEX IF NOT EXISTS i ON t (lower(v))",
        ),
        (
            "CREATE INDEX",
            "CREATE INDEX ON t USING gin (v) WHERE v IS NOT NULL",
            [cmd("CREATE INDEX", "index", "public", "public.t_v_idx")],
            "CREATE INDEX ON t USING gin (v) WHERE v IS NOT NULL",
        ),
        (
            "CREATE SCHEMA",
            "CREATE SCHEMA s CREATE TABLE t (x int) CREATE INDEX ON t (x)",
            [
                cmd("CREATE SCHEMA", "schema", None, "s"),
                cmd("CREATE TABLE", "table", "s", "s.t"),
                cmd("CREATE INDEX", "index", "s", "s.t_x_idx"),
            ],
            "CREATE SCHEMA s CREATE TABLE t (x int) CREATE INDEX ON t (x)",
        ),
        (
            "CREATE TYPE",
            "CREATE TYPE mood AS ENUM ('sad', 'o''k')",
            [cmd("CREATE TYPE", "type", "public", "public.mood")],
            "CREATE TYPE mood AS ENUM ('sad', 'o''k')",
        ),
        (
            "ALTER TYPE",
            "ALTER TYPE mood ADD VALUE 'happy' AFTER 'sad'",
            [cmd("ALTER TYPE", "type", "public", "public.mood")],
            "ALTER TYPE mood ADD VALUE 'happy' AFTER 'sad'",
        ),
        (
            "CREATE DOMAIN",
            "CREATE DOMAIN posint AS int CHECK (VALUE > 0)",
            [cmd("CREATE DOMAIN", "domain", "public", "public.posint")],
            "CREATE DOMAIN posint AS int CHECK (VALUE > 0)",
        ),
        (
            "CREATE SEQUENCE",
            "CREATE SEQUENCE s.seq START 10 INCREMENT 5",
            [cmd("CREATE SEQUENCE", "sequence", "s", "s.seq")],
            "CREATE SEQUENCE s.seq START 10 INCREMENT 5",
        ),
        (
            "ALTER SEQUENCE",
            "ALTER SEQUENCE IF EXISTS seq RESTART WITH 3",
            [cmd("ALTER SEQUENCE", "sequence", "public", "public.seq")],
            "ALTER SEQUENCE IF EXISTS seq RESTART WITH 3",
        ),
    ],
)
def test_replayed_statements(tag: str, query: str, commands: list[Command], sql: str) -> None:
    assert replayed(tag, query, commands) == [sql]


def test_replay_carries_the_search_path_and_kind() -> None:
    [message] = capture_command(
        "ALTER TABLE", "ALTER TABLE t ADD y int", [ALTER_T], '"My Schema", public'
    )
    assert message == {
        "v": FORMAT_VERSION,
        "kind": "alter_table",
        "tag": "ALTER TABLE",
        "identity": "public.t",
        "search_path": '"My Schema", public',
        "sql": "ALTER TABLE t ADD y int",
    }


@pytest.mark.parametrize(
    ("tag", "commands"),
    [
        # IF EXISTS / IF NOT EXISTS that did nothing
        ("ALTER TABLE", []),
        ("CREATE INDEX", []),
        # temporary objects are never replicated
        ("ALTER TABLE", [cmd("ALTER TABLE", "table", "pg_temp_3", "pg_temp.t")]),
        ("CREATE INDEX", [cmd("CREATE INDEX", "index", "pg_temp_3", "pg_temp.i")]),
    ],
)
def test_replay_needing_nothing(tag: str, commands: list[Command]) -> None:
    assert capture_command(tag, "ALTER TABLE t ADD y int", commands, "public") == []


def test_replay_refuses_ambiguous() -> None:
    assert refusal(
        capture_command, "ALTER TABLE", "ALTER TABLE t ADD y int; ALTER TABLE t ADD z int",
        [ALTER_T], "public",
    ) == (
        "the client's query text holds 2 different ALTER TABLE statements for public.t",
        "Send each of these statements as a query of its own.",
    )  # fmt: skip
    # the same statement twice is not ambiguous: either firing replays it
    query = "ALTER TABLE t ADD y int; ALTER TABLE t ADD y int"
    assert replayed("ALTER TABLE", query, [ALTER_T]) == ["ALTER TABLE t ADD y int"]


@pytest.mark.parametrize(
    ("tag", "query", "objects", "sql"),
    [
        (
            "DROP INDEX",
            "DROP INDEX CONCURRENTLY IF EXISTS i",
            [dropped("public.i", "public", "i", object_type="index")],
            "DROP INDEX public.i",
        ),
        (
            "DROP SCHEMA",
            'DROP SCHEMA "S" CASCADE',
            [
                dropped('"S"', None, "S", object_type="schema"),
                dropped('"S".t', "S", "t", original=False),
            ],
            'DROP SCHEMA "S" CASCADE',
        ),
        (
            "DROP TYPE",
            "DROP TYPE mood, comp",
            [
                dropped("public.mood", "public", "mood", object_type="type"),
                dropped("public.comp", "public", "comp", object_type="composite type"),
                dropped("public.comp", "public", "comp", object_type="type"),
            ],
            "DROP TYPE public.mood, public.comp",
        ),
        (
            "DROP DOMAIN",
            "drop domain s.posint restrict",
            [dropped("s.posint", "s", "posint", object_type="domain")],
            "DROP DOMAIN s.posint",
        ),
        (
            "DROP SEQUENCE",
            "DROP SEQUENCE seq",
            [dropped("public.seq", "public", "seq", object_type="sequence")],
            "DROP SEQUENCE public.seq",
        ),
    ],
)
def test_drop_other_objects(tag: str, query: str, objects: list[DroppedObject], sql: str) -> None:
    [message] = capture_drop(tag, query, objects, "public")
    assert message["sql"] == sql


@pytest.mark.parametrize(
    ("sql", "columns"),
    [
        ("ALTER TABLE t ADD COLUMN a int", ["a"]),
        ('ALTER TABLE t ADD "B" serial, ADD IF NOT EXISTS c int DEFAULT random()', ["B", "c"]),
        ("ALTER TABLE t ADD COLUMN IF NOT EXISTS d timestamptz", ["d"]),
        ("ALTER TABLE t ADD PRIMARY KEY (id), ADD CONSTRAINT c CHECK (x > 0)", []),
        ("ALTER TABLE t ALTER COLUMN a SET DEFAULT 1", []),
        ("ALTER TABLE t ADD CHECK (a > 0), ADD UNIQUE (a)", []),
    ],
)
def test_added_columns(sql: str, columns: list[str]) -> None:
    assert ddl.added_columns(sql) == columns


def test_ordinal_tells_apart_statements_on_the_same_object() -> None:
    query = "ALTER TABLE t ADD y int; INSERT INTO t VALUES (1); ALTER TABLE t ADD z int"
    for k, sql in enumerate(["ALTER TABLE t ADD y int", "ALTER TABLE t ADD z int"]):
        [message] = capture_command("ALTER TABLE", query, [ALTER_T], "public", ordinal=k)
        assert message["sql"] == sql
    # an ordinal that does not name this table is no way out of the ambiguity
    query = "ALTER TABLE u ADD y int; ALTER TABLE t ADD y int; ALTER TABLE t ADD z int"
    with pytest.raises(Unsupported, match="holds 3 different"):
        capture_command("ALTER TABLE", query, [ALTER_T], "public", ordinal=0)


def test_alter_extension_pg_follower_py_is_not_replicated() -> None:
    """Each node runs ALTER EXTENSION pg_follower_py UPDATE itself; other
    extensions' ALTER EXTENSION is replayed."""
    own = ddl.Command("ALTER EXTENSION", "extension", None, "pg_follower_py", False)
    update = "ALTER EXTENSION pg_follower_py UPDATE"
    assert ddl.capture_command("ALTER EXTENSION", update, [own], "public") == []
    other = ddl.Command("ALTER EXTENSION", "extension", None, "hstore", False)
    [message] = ddl.capture_command(
        "ALTER EXTENSION", "ALTER EXTENSION hstore UPDATE", [other], "public"
    )
    assert message["sql"] == "ALTER EXTENSION hstore UPDATE"


# --- Every other kind of object ------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "query", "commands"),
    [
        (
            "CREATE FUNCTION",
            "CREATE FUNCTION f(a int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN a; END $$",
            [cmd("CREATE FUNCTION", "function", "public", "public.f(integer)")],
        ),
        (
            "CREATE FUNCTION",
            "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
            [cmd("CREATE FUNCTION", "function", "public", "public.f()")],
        ),
        (
            "CREATE PROCEDURE",
            "CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'",
            [cmd("CREATE PROCEDURE", "procedure", "public", "public.p()")],
        ),
        (
            "ALTER ROUTINE",
            "ALTER ROUTINE f() SET work_mem = '1MB'",
            [cmd("ALTER ROUTINE", "function", "public", "public.f()")],
        ),
        (
            "CREATE AGGREGATE",
            "CREATE AGGREGATE agg(int) (SFUNC = int4pl, STYPE = int)",
            [cmd("CREATE AGGREGATE", "aggregate", "public", "public.agg(integer)")],
        ),
        (
            "CREATE OPERATOR",
            "CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq)",
            [cmd("CREATE OPERATOR", "operator", "public", "public.===(integer,integer)")],
        ),
        (
            "CREATE OPERATOR CLASS",
            "CREATE OPERATOR CLASS c FOR TYPE int USING btree AS OPERATOR 1 <",
            [cmd("CREATE OPERATOR CLASS", "operator class", "public", "public.c USING btree")],
        ),
        (
            "CREATE CAST",
            "CREATE CAST (mood AS text) WITH INOUT",
            [cmd("CREATE CAST", "cast", None, "(public.mood AS pg_catalog.text)")],
        ),
        (
            "CREATE COLLATION",
            "CREATE COLLATION c (locale = 'C')",
            [cmd("CREATE COLLATION", "collation", "public", "public.c")],
        ),
        (
            "CREATE TEXT SEARCH CONFIGURATION",
            "CREATE TEXT SEARCH CONFIGURATION cfg (COPY = english)",
            [
                cmd(
                    "CREATE TEXT SEARCH CONFIGURATION",
                    "text search configuration",
                    "public",
                    "public.cfg",
                )
            ],
        ),
        (
            "CREATE VIEW",
            "CREATE OR REPLACE RECURSIVE VIEW v (n) AS SELECT 1",
            [cmd("CREATE VIEW", "view", "public", "public.v")],
        ),
        (
            "CREATE MATERIALIZED VIEW",
            "CREATE MATERIALIZED VIEW mv AS SELECT * FROM t WITH NO DATA",
            [cmd("CREATE MATERIALIZED VIEW", "materialized view", "public", "public.mv")],
        ),
        (
            "REFRESH MATERIALIZED VIEW",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
            [cmd("REFRESH MATERIALIZED VIEW", "materialized view", "public", "public.mv")],
        ),
        (
            "CREATE TRIGGER",
            "CREATE CONSTRAINT TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
            [cmd("CREATE TRIGGER", "trigger", "public", "tr on public.t")],
        ),
        (
            "CREATE RULE",
            "CREATE OR REPLACE RULE r AS ON INSERT TO v DO INSTEAD NOTHING",
            [cmd("CREATE RULE", "rule", "public", "r on public.v")],
        ),
        (
            "CREATE POLICY",
            "CREATE POLICY p ON t USING (owner = current_user)",
            [cmd("CREATE POLICY", "policy", "public", "p on public.t")],
        ),
        (
            "GRANT",
            "GRANT SELECT, UPDATE (v) ON t TO app WITH GRANT OPTION",
            [cmd("GRANT", "TABLE", None, None)],  # type: ignore[arg-type]
        ),
        (
            "REVOKE",
            "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC",
            [cmd("REVOKE", "FUNCTION", None, None)],  # type: ignore[arg-type]
        ),
        (
            "ALTER DEFAULT PRIVILEGES",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO app",
            [cmd("ALTER DEFAULT PRIVILEGES", "TABLES", None, None)],  # type: ignore[arg-type]
        ),
        (
            "COMMENT",
            "COMMENT ON COLUMN t.v IS 'the value; or none'",
            [cmd("COMMENT", "table column", "public", "public.t.v")],
        ),
        (
            "SECURITY LABEL",
            "SECURITY LABEL FOR selinux ON TABLE t IS 'system_u:object_r:sepgsql_table_t:s0'",
            [cmd("SECURITY LABEL", "table", "public", "public.t")],
        ),
        (
            "CREATE STATISTICS",
            "CREATE STATISTICS st (ndistinct) ON a, b FROM t",
            [cmd("CREATE STATISTICS", "statistics object", "public", "public.st")],
        ),
        (
            "CREATE EXTENSION",
            "CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA public CASCADE",
            [cmd("CREATE EXTENSION", "extension", None, "hstore")],
        ),
        (
            "CREATE EXTENSION",
            # CREATE LANGUAGE without a handler creates the language's extension
            "CREATE LANGUAGE plpython3u",
            [cmd("CREATE EXTENSION", "extension", None, "plpython3u")],
        ),
        (
            "ALTER EXTENSION",
            "ALTER EXTENSION hstore UPDATE TO '1.8'",
            [cmd("ALTER EXTENSION", "extension", None, "hstore")],
        ),
        (
            "CREATE SERVER",
            "CREATE SERVER srv FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'x')",
            [cmd("CREATE SERVER", "server", None, "srv")],
        ),
        (
            "CREATE USER MAPPING",
            "CREATE USER MAPPING FOR app SERVER srv OPTIONS (user 'u', password 'secret')",
            [cmd("CREATE USER MAPPING", "user mapping", None, "app on server srv")],
        ),
        (
            "CREATE FOREIGN TABLE",
            "CREATE FOREIGN TABLE ft (a int) SERVER srv",
            [cmd("CREATE FOREIGN TABLE", "foreign table", "public", "public.ft")],
        ),
        (
            "CREATE PUBLICATION",
            "CREATE PUBLICATION pub FOR TABLE t",
            [cmd("CREATE PUBLICATION", "publication", None, "pub")],
        ),
    ],
)
def test_every_kind_replays_as_sent(tag: str, query: str, commands: list[Command]) -> None:
    assert replayed(tag, query, commands) == [query]


def test_replay_of_an_extension_skips_the_objects_of_its_script() -> None:
    # objects an extension's script makes are the extension's: its CREATE
    # EXTENSION downstream makes them again
    commands = [Command("CREATE FUNCTION", "function", "public", "public.f()", True)]
    assert capture_command("CREATE FUNCTION", "CREATE EXTENSION e", commands, "public") == []


def test_grant_names_the_kind_of_its_objects() -> None:
    [message] = capture_command(
        "GRANT", "GRANT SELECT ON t TO app", [cmd("GRANT", "TABLE", None, None)], "public"
    )  # type: ignore[arg-type]
    assert (message["kind"], message["identity"]) == ("grant", "table")


def test_several_comments_in_one_query_replay_in_order() -> None:
    query = "COMMENT ON TABLE t IS 'a'; COMMENT ON TABLE u IS 'b'"
    for k, sql in enumerate(["COMMENT ON TABLE t IS 'a'", "COMMENT ON TABLE u IS 'b'"]):
        commands = [cmd("COMMENT", "table", "public", "public." + "tu"[k])]
        [message] = capture_command("COMMENT", query, commands, "public", ordinal=k)
        assert message["sql"] == sql


@pytest.mark.parametrize(
    ("tag", "query", "objects", "sql"),
    [
        (
            "DROP FUNCTION",
            "DROP FUNCTION IF EXISTS f(int), g CASCADE",
            [
                dropped("public.f(integer)", "public", None, object_type="function"),
                dropped("public.g()", "public", None, object_type="function"),
            ],
            "DROP FUNCTION public.f(integer), public.g() CASCADE",
        ),
        (
            "DROP OPERATOR",
            "DROP OPERATOR === (int, int)",
            [dropped("public.===(integer,integer)", "public", None, object_type="operator")],
            "DROP OPERATOR public.===(integer,integer)",
        ),
        (
            "DROP OPERATOR CLASS",
            "DROP OPERATOR CLASS c USING btree",
            [dropped("public.c USING btree", "public", "c", object_type="operator class")],
            "DROP OPERATOR CLASS public.c USING btree",
        ),
        (
            "DROP CAST",
            "DROP CAST (mood AS text)",
            [dropped("(public.mood AS pg_catalog.text)", None, None, object_type="cast")],
            "DROP CAST (public.mood AS pg_catalog.text)",
        ),
        (
            "DROP TRIGGER",
            "DROP TRIGGER tr ON t",
            [dropped("tr on public.t", "public", None, object_type="trigger")],
            "DROP TRIGGER tr on public.t",
        ),
        (
            "DROP POLICY",
            "DROP POLICY IF EXISTS p ON t",
            [dropped("p on public.t", "public", None, object_type="policy")],
            "DROP POLICY p on public.t",
        ),
        (
            "DROP USER MAPPING",
            "DROP USER MAPPING FOR app SERVER srv",
            [dropped("app on server srv", None, None, object_type="user mapping")],
            "DROP USER MAPPING FOR app SERVER srv",
        ),
        (
            "DROP TRANSFORM",
            "DROP TRANSFORM FOR hstore LANGUAGE plpython3u",
            [
                dropped(
                    "for public.hstore on language plpython3u", None, None, object_type="transform"
                )
            ],
            "DROP TRANSFORM FOR public.hstore LANGUAGE plpython3u",
        ),
        (
            "DROP VIEW",
            "DROP VIEW v, w",
            [
                dropped("public.v", "public", "v", object_type="view"),
                dropped("public.w", "public", "w", object_type="view"),
            ],
            "DROP VIEW public.v, public.w",
        ),
        (
            "DROP MATERIALIZED VIEW",
            "DROP MATERIALIZED VIEW mv CASCADE",
            [dropped("public.mv", "public", "mv", object_type="materialized view")],
            "DROP MATERIALIZED VIEW public.mv CASCADE",
        ),
        (
            "DROP EXTENSION",
            "DROP EXTENSION hstore",
            [
                dropped("hstore", None, "hstore", object_type="extension"),
                dropped("public.hstore", "public", "hstore", object_type="type", original=False),
            ],
            "DROP EXTENSION hstore",
        ),
        (
            "DROP SERVER",
            "DROP SERVER srv CASCADE",
            [dropped("srv", None, "srv", object_type="server")],
            "DROP SERVER srv CASCADE",
        ),
    ],
)
def test_drop_of_every_kind(tag: str, query: str, objects: list[DroppedObject], sql: str) -> None:
    [message] = capture_drop(tag, query, objects, "public")
    assert message["sql"] == sql


def test_drop_with_arguments_ambiguous_cascade() -> None:
    objects = [dropped("public.f()", "public", None, object_type="function")]
    query = "DROP FUNCTION f() CASCADE; DROP FUNCTION g()"
    assert refusal(capture_drop, "DROP FUNCTION", query, objects, "public")[0] == (
        "the client's query text holds 2 different DROP FUNCTION statements for public.f()"
    )


def test_drops_by_an_extension_script_are_the_extension_s() -> None:
    objects = [dropped("public.@(public.hstore,public.hstore)", "public", None,
                       object_type="operator")]  # fmt: skip
    query = "CREATE EXTENSION hstore"
    assert capture_drop("DROP OPERATOR", query, objects, "public") == []


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("GRANT SELECT ON t, s.u TO app", [("t",), ("s", "u")]),
        ("REVOKE ALL ON TABLE pg_temp.t FROM PUBLIC", [("pg_temp", "t")]),
        ("GRANT USAGE ON SEQUENCE seq TO app", [("seq",)]),
        ("GRANT SELECT (a, b) ON t TO app", [("t",)]),
        ("GRANT SELECT ON ALL TABLES IN SCHEMA public TO app", []),
        ("GRANT EXECUTE ON FUNCTION f(int) TO app", []),
        ("GRANT app TO bob", []),
        ("COMMENT ON TABLE t IS 'x'", []),
    ],
)
def test_granted_relations(sql: str, names: list[tuple[str, ...]]) -> None:
    assert ddl.granted_relations(sql) == names
