"""DDL run inside functions, procedures and DO blocks: its text comes from the
event trigger's call stack (the frames below the trigger's own, as
pgfollower.trigger_frames() returns them), never from the client's query."""

from __future__ import annotations

import pytest

from pg_follower.server import ddl
from pg_follower.server.ddl import (
    Command,
    DroppedObject,
    Unsupported,
    capture_command,
    capture_drop,
    spi_texts,
    sql_function_statement,
    statement_source,
)

DO = "PL/pgSQL function inline_code_block line 1 at SQL statement"
DO_EXECUTE = "PL/pgSQL function inline_code_block line 3 at EXECUTE"
HINT = (
    "Run the DDL as a plain statement, or from PL/pgSQL (a function, a procedure, a DO"
    " block; static or by EXECUTE)."
)


def spi(text: str, *outer: str) -> str:
    """The frames of a statement SPI ran, under ``outer`` frames."""
    return "\n".join([f'SQL statement "{text}"', *outer])


def cmd(tag: str, object_type: str, identity: str, schema: str = "public") -> Command:
    return Command(tag, object_type, schema, identity, False)


def sqls(tag: str, frames: str, commands: list[Command], **kw: object) -> list[str]:
    query = kw.pop("query", "SELECT f()")
    assert isinstance(query, str)
    messages = capture_command(tag, query, commands, "public", frames=frames, **kw)  # type: ignore[arg-type]
    return [str(m["sql"]) for m in messages]


def refusal(tag: str, frames: str, commands: list[Command], **kw: object) -> tuple[str, str]:
    with pytest.raises(Unsupported) as info:
        sqls(tag, frames, commands, **kw)
    return info.value.message, info.value.hint


T = cmd("CREATE TABLE", "table", "public.t")
ALTER_T = cmd("ALTER TABLE", "table", "public.t")
MOOD = cmd("CREATE TYPE", "type", "public.mood")


# -- where the text ends ----------------------------------------------------------


def test_spi_text_of_a_do_block() -> None:
    assert spi_texts(spi("CREATE TABLE t (id int)", DO)) == ["CREATE TABLE t (id int)"]


def test_spi_text_with_quotes_and_newlines_inside() -> None:
    text = 'CREATE TABLE "c""\nx" (id int, "a\nb" text DEFAULT \'it\'\'s\n"\')'
    assert spi_texts(spi(text, DO_EXECUTE)) == [text]


def test_spi_text_cut_inside_a_literal_is_not_a_candidate() -> None:
    # a crafted text showing a frame boundary inside a comment, a string, a
    # quoted name and a dollar quote: the cuts there leave them open
    for inner in ('/* "\n{f} */', "'\"\n{f}'", '$q$"\n{f}$q$', "E'\\'\"\n{f}'"):
        text = "ALTER TABLE t ADD a int " + inner.format(f=DO) + ", ADD b int"
        assert spi_texts(spi(text, DO)) == [text], inner


def test_spi_text_cut_after_a_quoted_name_is_a_candidate() -> None:
    # A doubled quote then a newline and a frame inside a quoted name looks
    # like the end of a text that ends with a quoted name (RENAME TO "x"):
    # both are candidates, and the shorter one wins. The cut statement has the
    # same command on the same object, and no DDL statement goes on after a
    # complete one with a name, so its replay fails downstream (an apply
    # error) rather than doing something else.
    text = 'ALTER TABLE t ADD a int "x""\n' + DO + '", ADD b int'
    assert spi_texts(spi(text, DO)) == ['ALTER TABLE t ADD a int "x"', text]
    legit = 'ALTER TABLE t RENAME COLUMN a TO "x"'
    assert spi_texts(spi(legit, DO)) == [legit]


def test_spi_texts_of_nested_calls_shortest_first() -> None:
    frames = spi(
        "ALTER TABLE t ADD z int",
        "PL/pgSQL function g() line 1 at EXECUTE",
        'SQL statement "SELECT g()"',
        "PL/pgSQL function f() line 1 at EXECUTE",
    )
    texts = spi_texts(frames)
    assert texts[0] == "ALTER TABLE t ADD z int"
    assert len(texts) == 2  # the second runs on into the outer frame
    assert sqls("ALTER TABLE", frames, [ALTER_T]) == ["ALTER TABLE t ADD z int"]


def test_spi_text_boundary_needs_a_frame_after_it() -> None:
    # a quoted name followed by a newline and not by a frame is no boundary
    text = 'ALTER TABLE "t"\n  ADD z int'
    assert spi_texts(spi(text, DO)) == [text]


def test_unbalanced_parentheses_are_not_a_candidate() -> None:
    text = 'CREATE INDEX i ON t ("\n' + DO + '")'
    assert spi_texts(spi(text, DO)) == [text]


# -- replayed as it ran ----------------------------------------------------------


def test_do_block_create_table_is_replayed_qualified() -> None:
    assert sqls("CREATE TABLE", spi("CREATE TABLE t (id int)", DO), [T]) == [
        "CREATE TABLE public.t (id int)"
    ]


def test_static_sql_in_a_do_block_in_a_query_string() -> None:
    # the client's query holds a no-op CREATE TABLE IF NOT EXISTS t: not the one
    query = "DO $$ BEGIN CREATE TABLE t (z int); END $$; CREATE TABLE IF NOT EXISTS t (x int)"
    assert sqls("CREATE TABLE", spi("CREATE TABLE t (z int)", DO), [T], query=query) == [
        "CREATE TABLE public.t (z int)"
    ]


def test_execute_of_several_statements_picks_each_firings() -> None:
    frames = spi("CREATE TABLE a (id int); CREATE TABLE t (id int)", DO_EXECUTE)
    assert sqls("CREATE TABLE", frames, [T]) == ["CREATE TABLE public.t (id int)"]


def test_execute_of_two_statements_on_one_object_is_ambiguous() -> None:
    frames = spi("ALTER TABLE t ADD a int; ALTER TABLE t ADD b int", DO_EXECUTE)
    assert refusal("ALTER TABLE", frames, [ALTER_T]) == (
        "the statement text its call stack shows holds 2 different ALTER TABLE statements"
        " for public.t",
        "Run each of these statements by an EXECUTE of its own.",
    )


def test_partition_created_and_attached_by_execute_format() -> None:
    create = (
        "CREATE TABLE sales_2024 PARTITION OF sales"
        " FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')"
    )
    frames = spi(create, "PL/pgSQL function make_partition(integer) line 5 at EXECUTE")
    part = cmd("CREATE TABLE", "table", "public.sales_2024")
    assert sqls("CREATE TABLE", frames, [part]) == [
        create.replace("sales_2024", "public.sales_2024")
    ]
    attach = (
        "ALTER TABLE sales ATTACH PARTITION sales_old FOR VALUES FROM (MINVALUE) TO ('2024-01-01')"
    )
    frames = spi(attach, "PL/pgSQL function make_partition(integer) line 9 at EXECUTE")
    assert sqls("ALTER TABLE", frames, [cmd("ALTER TABLE", "table", "public.sales")]) == [attach]


def test_drop_in_a_do_block() -> None:
    p = DroppedObject("table", "public", "p", "public.p", True, False)
    messages = capture_drop(
        "DROP TABLE", "DO $$ ... $$", [p], "public", frames=spi("DROP TABLE p CASCADE", DO)
    )
    assert [m["sql"] for m in messages] == ["DROP TABLE public.p CASCADE"]


def test_nested_text_must_name_the_reported_object() -> None:
    frames = spi("ALTER TABLE other ADD x int", DO)
    assert refusal("ALTER TABLE", frames, [ALTER_T]) == (
        "the ALTER TABLE statement for public.t is not in the statement text its call stack shows",
        HINT,
    )
    renamed = cmd("ALTER TABLE", "table", "public.u")
    assert sqls("ALTER TABLE", spi("ALTER TABLE t RENAME TO u", DO), [renamed]) == [
        "ALTER TABLE t RENAME TO u"
    ]
    moved = cmd("ALTER TABLE", "table", "s2.t", "s2")
    assert sqls("ALTER TABLE", spi("ALTER TABLE public.t SET SCHEMA s2", DO), [moved]) == [
        "ALTER TABLE public.t SET SCHEMA s2"
    ]
    unnamed = cmd("CREATE INDEX", "index", "public.t_a_idx")
    assert sqls("CREATE INDEX", spi("CREATE INDEX ON t (a)", DO), [unnamed]) == [
        "CREATE INDEX ON t (a)"
    ]


def test_the_client_query_is_not_used_for_nested_ddl() -> None:
    # the client's text holds a matching statement; the frame's text does not
    frames = spi("CREATE TYPE other AS ENUM ('x')", DO)
    assert refusal("CREATE TYPE", frames, [MOOD], query="CREATE TYPE mood AS ENUM ('a')") == (
        "the CREATE TYPE statement for public.mood is not in the statement text its call"
        " stack shows",
        HINT,
    )


# -- SQL-language functions --------------------------------------------------------


def test_sql_function_statement_by_number() -> None:
    body = " ALTER TABLE t ADD x int; ALTER TABLE t ADD y int "
    frames = 'SQL function "addcols" statement 2'
    assert sql_function_statement(frames, "addcols", body) == "ALTER TABLE t ADD y int"
    assert sql_function_statement(frames, "other", body) is None
    assert sql_function_statement('SQL function "addcols" statement 3', "addcols", body) is None
    assert sqls("ALTER TABLE", frames, [ALTER_T], sql_functions=lambda: [("addcols", body)]) == [
        "ALTER TABLE t ADD y int"
    ]


def test_same_named_sql_functions_that_disagree_are_refused() -> None:
    frames = 'SQL function "addcols" statement 1\nSQL statement "SELECT addcols()"\n' + DO
    bodies = [("addcols", "ALTER TABLE t ADD x int"), ("addcols", "ALTER TABLE t ADD y int")]
    assert refusal("ALTER TABLE", frames, [ALTER_T], sql_functions=lambda: bodies) == (
        'the statement of SQL function "addcols" statement 1 holds 2 different ALTER TABLE'
        " statements for public.t",
        "Run each of these statements by an EXECUTE of its own.",
    )


def test_sql_function_not_found() -> None:
    assert refusal("ALTER TABLE", 'SQL function "gone" statement 1', [ALTER_T]) == (
        "the ALTER TABLE statement for public.t cannot be replicated: the body of the"
        ' function of SQL function "gone" statement 1 was not found',
        HINT,
    )


# -- refused: the text cannot be recovered ---------------------------------------------


def test_unknown_frame_is_refused() -> None:
    frames = 'PL/Perl function "mk"'
    assert refusal("ALTER TABLE", frames, [ALTER_T]) == (
        "the ALTER TABLE statement for public.t cannot be replicated: its call stack"
        ' (PL/Perl function "mk") does not show its text',
        HINT,
    )


def test_spi_text_without_an_end_is_refused() -> None:
    frames = 'SQL statement "ALTER TABLE t ADD x int"\nsome C function'
    assert refusal("ALTER TABLE", frames, [ALTER_T]) == (
        "the ALTER TABLE statement for public.t cannot be replicated: where its text ends"
        ' in the call stack (SQL statement "ALTER TABLE t ADD x int") is unclear',
        HINT,
    )


def test_nothing_to_recover_when_nothing_changed() -> None:
    # CREATE TABLE IF NOT EXISTS that found the table: no command, no refusal
    assert sqls("CREATE TABLE", 'PL/Perl function "mk"', []) == []


# -- extension scripts ---------------------------------------------------------------


def test_drops_of_an_extension_script_stay_the_extensions() -> None:
    old = DroppedObject("table", "public", "old", "public.old", True, False)
    query = "ALTER EXTENSION x UPDATE TO '1.1'"
    assert capture_drop("DROP TABLE", query, [old], "public") == []
    # whatever the object: the script's DROP OPERATOR is not refused either
    op = DroppedObject("operator", "public", None, "public.@(hstore,hstore)", True, False)
    assert capture_drop("DROP OPERATOR", "CREATE EXTENSION hstore", [op], "public") == []
    with pytest.raises(Unsupported) as info:
        capture_drop("DROP TABLE", query, [old], "public", frames=spi("DROP TABLE old", DO))
    assert info.value.message == (
        "DROP TABLE of public.old ran inside a function or a DO block while the client's"
        " query runs ALTER EXTENSION, whose script's own DROPs are not replicated"
    )
    # a DROP the client sent with it is replayed
    query = "ALTER EXTENSION x UPDATE; DROP TABLE old"
    assert [m["sql"] for m in capture_drop("DROP TABLE", query, [old], "public")] == [
        "DROP TABLE public.old"
    ]


def test_in_extension_commands_need_no_text() -> None:
    member = Command("CREATE TABLE", "table", "public", "public.x_t", True)
    assert sqls("CREATE TABLE", spi("CREATE TABLE x_t ()", DO), [member]) == []


def test_top_level_source_is_the_client_query() -> None:
    source = statement_source("CREATE TABLE t ()", "")
    assert source == ddl.Source(("CREATE TABLE t ()",), "the client's query text", nested=False)
