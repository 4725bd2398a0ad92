"""The initial copy's row formats: binary where both servers read it alike,
text otherwise; every type arrives exactly either way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_types import (
    COLUMNS,
    COMPARE_OPTIONS,
    DOWNSTREAM_SETTINGS,
    ROWS,
    SETUP,
    UPSTREAM_SETTINGS,
    _fill,
)

from conftest import Pair, text_rows, wait_until
from pg_follower.destinations.postgres.initial_copy import CopyProgress, InitialCopy

# Columns of test_types whose types are not built in, or are built in but
# name objects by OID in binary (reg*): those tables go in text.
NOT_BINARY = {"rc", "rt", "en", "ena", "cmp", "cmpa", "nst", "nsta", "fr"}
NOT_BINARY |= {"dpos", "dpos2", "darr", "dcmp", "dtxt", "dposa", "hs", "hsa"}
BUILTIN = [c for c in COLUMNS if c[0] not in NOT_BINARY]

FORMAT_CASES = {
    # table definition: copied in binary?
    "plain (id int PRIMARY KEY, t text, ts timestamptz, n numeric, a int[], j jsonb)": True,
    "ranges (r int8range, m int4multirange, ra tstzrange[])": True,
    "with_enum (id int, m mood)": False,
    "with_enum_array (m mood[])": False,
    "with_domain (d posint)": False,
    "with_composite (c comp)": False,
    "with_extension_type (h hstore)": False,
    "with_regclass (id int, r regclass)": False,
    "with_regtype_array (r regtype[])": False,
    "no_columns ()": False,
}


def _downstream_log(pair: Pair) -> str:
    return Path(pair.down.cluster.datadir / "pg_follower_py.log").read_text()


def _format_logged(pair: Pair, table: str) -> str | None:
    """The format the worker's log says it copied ``table`` in."""
    marker = f'initial copy: "public"."{table}" (about '
    for line in reversed(_downstream_log(pair).splitlines()):
        if marker in line:  # the latest: tests run one at a time
            return line.rstrip(")").rsplit(", ", 1)[-1]
    return None


def test_binary_only_for_built_in_types(pair: Pair) -> None:
    for statement in SETUP:
        pair.up.execute(statement)
    for definition in FORMAT_CASES:
        pair.up.execute(f"CREATE TABLE {definition}")
    pair.up.execute("SELECT pgfollower.ensure_publication()")
    with psycopg.connect(pair.up.dsn) as up, psycopg.connect(pair.down.dsn) as down:
        copy = InitialCopy(pair.up.dsn, "unused", down, CopyProgress(), lambda: False)
        tables = {t.name: t for t in copy._published_tables(up)}
        assert copy._binary_possible(up)  # same major version and encoding
    for definition, binary in FORMAT_CASES.items():
        name = definition.split(" ", 1)[0]
        assert tables[name].builtin_types is binary, definition
    assert tables["plain"].plain


def test_every_type_copies_exactly_in_binary_and_text(pair: Pair) -> None:
    for statement in SETUP:  # upstream only: the copy brings the types along
        pair.up.execute(statement)
    for node, settings in ((pair.up, UPSTREAM_SETTINGS), (pair.down, DOWNSTREAM_SETTINGS)):
        for name, value in settings.items():
            node.execute(f"ALTER DATABASE {node.dbname} SET {name} = {value}")
    tables: dict[str, list[tuple[str, str, list[str]]]] = {
        "types_builtin": BUILTIN,
        "types_all": COLUMNS,
    }
    with psycopg.connect(pair.up.dsn, autocommit=True) as up:
        for table, columns in tables.items():
            defs = ", ".join(f"{name} {type_}" for name, type_, _ in columns)
            up.execute(f"CREATE TABLE {table} (rid int PRIMARY KEY, {defs})")
            _fill_columns(up, table, columns)
    pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
    wait_until(lambda: pair.status().get("state") == "streaming", 60, lambda: str(pair.status()))
    assert _format_logged(pair, "types_builtin") == "binary"
    assert _format_logged(pair, "types_all") == "text"
    compare = [
        psycopg.connect(n.dsn, autocommit=True, options=COMPARE_OPTIONS)
        for n in (pair.up, pair.down)
    ]
    try:
        for table, columns in tables.items():
            names = ["rid", *(name for name, _, _ in columns)]
            select = f"SELECT {', '.join(names)} FROM {table} ORDER BY rid"
            up_rows, down_rows = (text_rows(c, select) for c in compare)
            assert len(up_rows) == ROWS + 1
            for u, d in zip(up_rows, down_rows, strict=True):
                for name, uv, dv in zip(names, u, d, strict=True):
                    assert dv == uv, f"{table}.{name}: downstream {dv!r}, upstream {uv!r}"
    finally:
        for conn in compare:
            conn.close()


def _fill_columns(
    up: psycopg.Connection[Any], table: str, columns: list[tuple[str, str, list[str]]]
) -> None:
    if columns is COLUMNS:
        _fill(up, table)
        return
    names = ", ".join(name for name, _, _ in columns)
    for r in range(ROWS):
        values = ", ".join(values[r % len(values)] for _, _, values in columns)
        up.execute(f"INSERT INTO {table} (rid, {names}) VALUES ({r + 1}, {values})")
    up.execute(f"INSERT INTO {table} (rid) VALUES ({ROWS + 1})")


@pytest.mark.parametrize("rows", [0, 1, 5000])
def test_tables_without_columns_and_partitions(pair: Pair, rows: int) -> None:
    """Zero-column tables (COPY takes no empty column list), empty tables in
    binary (the header and trailer only), and partitions (each leaf is copied)."""
    pair.up.execute("CREATE TABLE nothing ()")
    pair.up.execute(f"INSERT INTO nothing SELECT FROM generate_series(1, {rows})")
    pair.up.execute("CREATE TABLE measure (id int, at date, v float8) PARTITION BY RANGE (at)")
    pair.up.execute(
        "CREATE TABLE measure_old PARTITION OF measure FOR VALUES FROM (MINVALUE) TO ('2020-01-01')"
    )
    pair.up.execute("CREATE TABLE measure_new PARTITION OF measure DEFAULT")
    pair.up.execute(
        "INSERT INTO measure SELECT g, date '2019-12-01' + (g % 60), g / 3.0"
        f" FROM generate_series(1, {rows}) g"
    )
    pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
    wait_until(lambda: pair.status().get("state") == "streaming", 60, lambda: str(pair.status()))
    assert pair.down.scalar("SELECT count(*) FROM nothing") == rows
    query = "SELECT tableoid::regclass::text, id, at, v FROM measure ORDER BY id"
    assert pair.down.rows(query) == pair.up.rows(query)
    assert _format_logged(pair, "measure_old") == "binary"
    assert pair.status()["rows_copied"] == 2 * rows
    # COPY FREEZE: the copied pages are all frozen, no later vacuum rewrites them
    pair.down.execute("CREATE EXTENSION pg_visibility")
    pages, frozen = pair.down.rows(
        "SELECT pg_relation_size('measure_old') / current_setting('block_size')::int,"
        " all_frozen FROM pg_visibility_map_summary('measure_old')"
    )[0]
    assert frozen == pages


def test_a_row_the_downstream_refuses_mid_copy(pair: Pair) -> None:
    """The downstream's error ends the COPY: reported with the table and the
    statement, nothing left behind, and the retry copies everything."""
    pair.up.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int"
        "  CHECK (current_setting('test.refuse', true) IS DISTINCT FROM 'on' OR v > 0))"
    )
    pair.up.execute("INSERT INTO t SELECT g, g FROM generate_series(1, 50000) g")
    pair.up.execute("INSERT INTO t VALUES (50001, 0)")  # the last row read
    pair.down.execute(f"ALTER DATABASE {pair.down.dbname} SET test.refuse = 'on'")
    pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
    wait_until(lambda: pair.status().get("state") == "error", 60, lambda: str(pair.status()))
    status = pair.status()
    assert 'initial copy of "public"."t"' in status["last_error"]
    assert "violates check constraint" in status["last_error"]
    assert status["error_statement"].startswith('COPY "public"."t"')
    assert pair.down.scalar("SELECT to_regclass('public.t')") is None
    pair.down.execute(f"ALTER DATABASE {pair.down.dbname} RESET test.refuse")
    wait_until(lambda: pair.status().get("state") == "streaming", 60, lambda: str(pair.status()))
    assert pair.down.scalar("SELECT count(*) FROM t") == 50001


def test_upstream_session_terminated_mid_copy(pair: Pair) -> None:
    """A COPY cut short upstream is an error, never a short table: the retry
    copies every row exactly once."""
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
    pair.up.execute(
        "INSERT INTO t SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 300000) g"
    )
    pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
    terminated = wait_until(
        lambda: pair.up.scalar(
            "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'pg_follower worker' AND state = 'active'"
            " AND query LIKE 'COPY % TO STDOUT%'"
        ),
        60,
        "the copy to read the upstream",
    )
    assert terminated
    wait_until(lambda: pair.status().get("state") == "streaming", 90, lambda: str(pair.status()))
    assert pair.down.rows("SELECT count(*), count(DISTINCT id), sum(id) FROM t") == [
        (300000, 300000, 300000 * 300001 // 2)
    ]
    status = pair.status()
    assert status["rows_copied"] == 300000
    assert 'initial copy of "public"."t": reading the upstream failed' in status["last_error"]
