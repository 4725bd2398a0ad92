"""Every type round-trips exactly, whatever the two databases' session settings.

Like PostgreSQL's src/test/subscription/t/002_types.pl (arrays, enums,
composites, ranges, domains, hstore), plus the built-in types with values at
their edges. The upstream and the downstream database get different TimeZone,
DateStyle, IntervalStyle, extra_float_digits, bytea_output, search_path,
array_nulls and xmloption; both sides are then compared as one fixed session
prints them, with INSERT, UPDATE (of every column, under a key and under
REPLICA IDENTITY FULL, so old rows are found by every type) and DELETE.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conftest import Pair, text_rows

# What both sides need before following: CREATE TYPE, DOMAIN, EXTENSION and
# SCHEMA are not replicated yet (and refused upstream while it is followed).
SETUP = [
    "CREATE EXTENSION hstore",
    "CREATE SCHEMA sch",
    "CREATE TABLE sch.reg_target (id int PRIMARY KEY)",
    "CREATE TYPE mood AS ENUM ('happy', 'sad, really', 'ünï \"q\"')",
    "CREATE TYPE comp AS (a int, b text, c float8)",
    "CREATE TYPE nest AS (c comp, cs comp[], m mood, ms mood[], n int[], h hstore)",
    "CREATE TYPE floatrange AS RANGE (subtype = float8)",
    "CREATE DOMAIN posint AS int CHECK (VALUE > 0)",
    "CREATE DOMAIN intarr AS int[] CHECK (cardinality(VALUE) < 10)",
    "CREATE DOMAIN compdom AS comp CHECK ((VALUE).a IS NULL OR (VALUE).a > 0)",
    "CREATE DOMAIN shorttext AS varchar(8) CHECK (VALUE <> 'bad')",
    "CREATE DOMAIN posint2 AS posint",
]

# Settings each database gives its sessions (the worker's included, were it
# not immune): unlike each other, and unlike the comparing sessions'.
UPSTREAM_SETTINGS = {
    "TimeZone": "'Pacific/Chatham'",
    "DateStyle": "'SQL, DMY'",
    "IntervalStyle": "'sql_standard'",
    "extra_float_digits": "'0'",
    "bytea_output": "'escape'",
    "lc_monetary": "'C.utf8'",
    "search_path": "public, sch",  # a list: unquoted
}
DOWNSTREAM_SETTINGS = {
    "TimeZone": "'Asia/Kathmandu'",
    "DateStyle": "'German, YMD'",
    "IntervalStyle": "'iso_8601'",
    "extra_float_digits": "'-15'",
    "bytea_output": "'escape'",
    "lc_monetary": "'POSIX'",
    "search_path": "public",
    "array_nulls": "'off'",
    "xmloption": "'document'",
}
COMPARE_OPTIONS = (
    "-c timezone=UTC -c datestyle=ISO,YMD -c intervalstyle=postgres -c extra_float_digits=3"
    " -c bytea_output=hex -c lc_monetary=C -c search_path=public"
)

ALL_BYTES = (
    "(SELECT string_agg(set_byte('\\x00'::bytea, 0, g), ''::bytea ORDER BY g)"
    " FROM generate_series(0, 255) g)"
)
TEXT = "E'tab\\there\\nnew line\\r\\\\back\\\\slash \"dq\" ''sq'' é € 😀 \\\\N \\\\. {a,b} (x)'"

# (column, type, values as SQL expressions): row r gets values[r % len(values)];
# one more row is all NULL.
COLUMNS: list[tuple[str, str, list[str]]] = [
    ("i2", "int2", ["32767", "-32768", "0"]),
    ("i4", "int4", ["2147483647", "-2147483648", "0"]),
    ("i8", "int8", ["9223372036854775807", "-9223372036854775808", "0"]),
    (
        "num",
        "numeric",
        [
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "0.000000000000000000000000000000000000000000000000000000000001",
            "123456789012345678901234567890.123456789012345678901234567890",
            "1.10",
            "-0.0",
        ],
    ),
    ("num_t", "numeric(12,3)", ["1.5", "-999999999.999", "0"]),
    (
        "f4",
        "float4",
        ["'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "'0.1'", "'1e-45'", "'3.4028235e38'"],
    ),
    (
        "f8",
        "float8",
        [
            "'NaN'",
            "'-Infinity'",
            "'Infinity'",
            "'-0'",
            "'0.1'",
            "'1e-310'",
            "0.1::float8 + 0.2::float8",
            "'1.7976931348623157e308'",
            "'5e-324'",
        ],
    ),
    ("mon", "money", ["'-92233720368547758.08'", "'92233720368547758.07'", "'12.34'", "0"]),
    ("b", "bool", ["true", "false"]),
    ("t", "text", [TEXT, "''", "'NULL'", "'\\N'", "'\\.'", "' lead and trail '"]),
    ("vc", "varchar(20)", ["'abc'", "'a\tb'", "''"]),
    ("ch", "char(6)", ["'ab'", "'  x'", "''"]),
    ("c1", '"char"', ["'a'", "'\\200'", "''", "'\\\\'"]),
    ("nm", "name", ["'some name'", "'ünï'"]),
    ("by", "bytea", [ALL_BYTES, "'\\x'", "'\\x00'", "'\\x5c0a09'"]),
    (
        "uid",
        "uuid",
        ["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'00000000-0000-0000-0000-000000000000'"],
    ),
    (
        "js",
        "json",
        [
            '\'{"b": 1, "a":  [1, 2.50, "x\\u00e9"], "a": null}\'',
            "' [ ] '",
            "'\"\\ud83d\\ude00\"'",
            "'1e400'",
        ],
    ),
    (
        "jb",
        "jsonb",
        [
            '\'{"b": 1.10, "a": [1, 2.50, null, "é"], "n": 1e400}\'',
            "'[]'",
            "'{}'",
            "'\"\\t\"'",
            "'-0.0'",
        ],
    ),
    (
        "x",
        "xml",
        [
            "'<a b=\"1\">text &amp; <c/></a>'",
            "'abc<d/>  tail'",
            "'<?xml version=\"1.0\"?><r/>'",
            "'<!DOCTYPE r><r>doc</r>'",
            "''",
        ],
    ),
    (
        "d",
        "date",
        ["'infinity'", "'-infinity'", "'4713-01-01 BC'", "'5874897-12-31'", "'2000-02-29'"],
    ),
    (
        "ts",
        "timestamp",
        [
            "'infinity'",
            "'-infinity'",
            "'0044-03-15 12:00:00.000001 BC'",
            "'294276-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00.5'",
        ],
    ),
    (
        "tstz",
        "timestamptz",
        [
            "'infinity'",
            "'-infinity'",
            "'2000-06-30 23:59:59.999999+14'",
            "'1900-01-01 00:00:00+00'",
            "'0001-01-01 00:00:00+00 BC'",
            "'2024-03-31 02:30:00'",
        ],
    ),
    ("tm", "time", ["'24:00:00'", "'00:00:00.000001'", "'23:59:59.999999'"]),
    ("ttz", "timetz", ["'24:00:00+1559'", "'12:34:56.789-15:59'", "'00:00+00'"]),
    (
        "iv",
        "interval",
        [
            "'P1Y2M-3DT4H5M6.000007S'",
            "'P-178000000Y'",
            "'PT-0.000001S'",
            "'P1DT-24H'",
            "'P-1Y-2M3DT-4H'",
            "'P0D'",
        ],
    ),
    ("ip", "inet", ["'192.168.1.5/24'", "'::ffff:1.2.3.4'", "'2001:db8::1/64'", "'10.0.0.1'"]),
    ("cid", "cidr", ["'10.0.0.0/8'", "'2001:db8::/32'"]),
    ("mac", "macaddr", ["'08:00:2b:01:02:03'"]),
    ("mac8", "macaddr8", ["'08:00:2b:01:02:03:04:05'"]),
    ("bt", "bit(4)", ["B'1010'", "B'0000'"]),
    ("vb", "varbit", ["B''", "B'101010101'"]),
    ("pt", "point", ["'(1.5,-0)'", "'(NaN,1e-310)'", "'(0.1,Infinity)'"]),
    ("ln", "line", ["'{1,-1,0.1}'"]),
    ("ls", "lseg", ["'[(0,0),(1,1e-310)]'"]),
    ("bx", "box", ["'(1,1),(0,0)'", "'(0.1,0.2),(0.3,0.4)'"]),
    ("pth", "path", ["'[(0,0),(1,1),(2,0)]'", "'((0,0),(1,1))'"]),
    ("pg", "polygon", ["'((0,0),(1,0),(0.1,0.3))'"]),
    ("ci", "circle", ["'<(0,0),0.1>'"]),
    ("tsv", "tsvector", ["'a:1A fat:2B,4C cat:5 ''it''''s'':7'", "''"]),
    ("tsq", "tsquery", ["'fat & (rat | !cat) <-> ''x y'''"]),
    ("o", "oid", ["4294967295", "0"]),
    ("rc", "regclass", ["'sch.reg_target'", "'pg_class'"]),
    ("rt", "regtype", ["'integer[]'", "'mood'", "'timestamp with time zone'"]),
    ("i4a", "int4[]", ["'{1,NULL,3}'", "'{{1,2},{3,4}}'", "'[0:1]={5,6}'", "'{}'", "'{NULL}'"]),
    (
        "ta",
        "text[]",
        [
            "ARRAY['a,b', '\"q\"', 'NULL', NULL, '', E'back\\\\slash', 'é', ' sp ', '{}']",
            "'{{a,b},{c,NULL}}'",
        ],
    ),
    ("f8a", "float8[]", ["ARRAY['NaN', '-0', '1e-310', '0.1']::float8[]"]),
    ("iva", "interval[]", ["ARRAY['P1Y-2M'::interval, NULL]"]),
    ("tsa", "timestamptz[]", ["ARRAY['infinity'::timestamptz, '2000-01-01 00:00+05:45']"]),
    ("numa", "numeric[]", ["'{{1.10,NaN},{NULL,-0.0}}'"]),
    ("bya", "bytea[]", ["ARRAY['\\x00'::bytea, '\\x5c22', NULL]"]),
    ("jba", "jsonb[]", ["ARRAY['{\"a\":1}'::jsonb, '[]']"]),
    ("jsa", "json[]", ["ARRAY['{\"x\":  1}'::json, ' [ ] ']"]),
    ("pta", "point[]", ["ARRAY[point '(1,2)', NULL]"]),
    ("xa", "xml[]", ["ARRAY['<a/>'::xml, 'text']"]),
    ("bpa", "char(3)[]", ["ARRAY['a'::char(3), 'bc']"]),
    ("en", "mood", ["'happy'", "'sad, really'", "'ünï \"q\"'"]),
    (
        "ena",
        "mood[]",
        ["'{happy,\"sad, really\"}'", '\'{{happy,happy},{NULL,"ünï \\"q\\""}}\''],
    ),
    (
        "cmp",
        "comp",
        ["ROW(1, 'x, \"y\" \\\\ (z)', '-0')", "ROW(NULL, NULL, NULL)", "ROW(2, '', 'NaN')"],
    ),
    (
        "cmpa",
        "comp[]",
        ["ARRAY[ROW(1, 'a', NULL)::comp, NULL, ROW(NULL, NULL, NULL)::comp]", "'{}'"],
    ),
    (
        "nst",
        "nest",
        [
            "ROW(ROW(1, 'a', 0.1), ARRAY[ROW(2, 'b,c', '-0')::comp], 'sad, really',"
            " '{happy,NULL}', '{{1,2}}', 'a=>1, \"b c\"=>NULL')",
            "ROW(NULL, '{}', NULL, NULL, NULL, '')",
        ],
    ),
    (
        "nsta",
        "nest[]",
        ["ARRAY[ROW(ROW(3, 'd', 1e-310), NULL, 'happy', NULL, '{}', NULL)::nest]"],
    ),
    ("r4", "int4range", ["'empty'", "'[1,10)'", "'(,5]'", "'(,)'"]),
    ("r8", "int8range", ["'[-9223372036854775808,9223372036854775807)'", "'empty'"]),
    ("nr", "numrange", ["'[1.10,2.2]'", "'(,)'", "'(NaN,)'"]),
    ("tsr", "tsrange", ["'[-infinity,infinity]'", "'[\"2000-01-01 00:00:00.000001\",)'"]),
    ("tstzr", "tstzrange", ["'[2000-01-01 00:00+00,2000-01-02 00:00+05:45)'", "'empty'"]),
    ("dr", "daterange", ["'[2000-01-01,infinity)'", "'[-infinity,2000-01-01]'"]),
    ("fr", "floatrange", ["'[-0,1e-310)'", "'(0.1,)'"]),
    ("mr", "int4multirange", ["'{[1,3),[5,7)}'", "'{}'"]),
    ("ra", "int8range[]", ["ARRAY['[1,2)'::int8range, 'empty']"]),
    ("dpos", "posint", ["1", "2147483647"]),
    ("dpos2", "posint2", ["7"]),
    ("darr", "intarr", ["'{1,2,NULL}'", "'{}'"]),
    ("dcmp", "compdom", ["ROW(5, 'd', 1.5)", "ROW(NULL, 'n', '-0')"]),
    ("dtxt", "shorttext", ["'ok'", "'  pad  '"]),
    ("dposa", "posint[]", ["'{1,2}'"]),
    ("hs", "hstore", [r""" '"a"=>"1", "b"=>NULL, "c d"=>"e\"f\\" ' """.strip(), "''"]),
    ("hsa", "hstore[]", ["ARRAY['a=>1'::hstore, NULL]"]),
]
NAMES = [name for name, _, _ in COLUMNS]
ROWS = max(len(values) for _, _, values in COLUMNS)

# Tables whose key is of an interesting type (002_types.pl's): (table, key type,
# other column type, key values, other values).
KEYED: list[tuple[str, str, str, list[str], list[str]]] = [
    ("k_arr", "int4[]", "text[]", ["'{1,2,3}'", "'{{1,2},{3,NULL}}'", "'{}'"], ["'{a,NULL}'"]),
    ("k_text_arr", "text[]", "float8[]", ["'{a,\"b c\"}'", "'{NULL}'", "'{\"\"}'"], ["'{-0,NaN}'"]),
    ("k_enum", "mood", "mood[]", ["'happy'", "'sad, really'", "'ünï \"q\"'"], ["'{happy}'"]),
    (
        "k_comp",
        "comp",
        "comp[]",
        ["ROW(1, 'a', 0.5)", "ROW(1, 'a', NULL)", "ROW(2, 'x,y', '-0')"],
        ["ARRAY[ROW(1, 'a', 0.5)::comp]"],
    ),
    (
        "k_nest",
        "nest",
        "nest[]",
        [
            "ROW(ROW(1, 'a', 0.1), '{}', 'happy', '{happy}', '{1}', 'a=>b')",
            "ROW(NULL, NULL, NULL, NULL, NULL, NULL)",
            "ROW(ROW(1, 'a', 0.1), '{}', 'happy', '{happy}', '{1}', 'a=>c')",
        ],
        ["NULL"],
    ),
    ("k_range", "int4range", "tstzrange", ["'[1,5)'", "'empty'", "'(,)'"], ["'[-infinity,)'"]),
    ("k_hstore", "hstore", "hstore[]", ["'a=>1'", "'a=>1, b=>2'", "''"], ["ARRAY['x=>y'::hstore]"]),
    ("k_domain", "posint", "compdom", ["1", "2", "3"], ["ROW(1, 'x', 2)"]),
    ("k_interval", "interval", "interval[]", ["'1 day'", "'P1M'", "'P-1Y2M-3DT4H'"], ["'{P30D}'"]),
    ("k_numeric", "numeric", "jsonb", ["1.0", "'NaN'", "'-Infinity'"], ["'{\"a\": 1.0}'"]),
]


def _settings(conn: psycopg.Connection[Any], dbname: str, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        conn.execute(f"ALTER DATABASE {dbname} SET {name} = {value}")


@pytest.fixture
def typed(
    pair: Pair,
) -> Iterator[tuple[Pair, psycopg.Connection[Any], list[psycopg.Connection[Any]]]]:
    """The pair, followed, with the types on both sides and unlike settings; an
    upstream session under the upstream's settings; a comparing session on each side."""
    for node in (pair.up, pair.down):
        for statement in SETUP:
            node.execute(statement)
    _settings(pair.up.conn, pair.up.dbname, UPSTREAM_SETTINGS)
    _settings(pair.down.conn, pair.down.dbname, DOWNSTREAM_SETTINGS)
    pair.follow()
    up = psycopg.connect(pair.up.dsn, autocommit=True)
    assert up.execute("SHOW DateStyle").fetchone() == ("SQL, DMY",)
    compare = [
        psycopg.connect(n.dsn, autocommit=True, options=COMPARE_OPTIONS)
        for n in (pair.up, pair.down)
    ]
    try:
        yield pair, up, compare
    finally:
        for conn in (up, *compare):
            conn.close()


def _same(
    pair: Pair, compare: list[psycopg.Connection[Any]], table: str, columns: list[str]
) -> int:
    """Asserts both sides hold the same rows, column by column as text; their number."""
    pair.caught_up()
    select = f"SELECT {', '.join(columns)} FROM {table}"
    up, down = (sorted(text_rows(c, select), key=repr) for c in compare)
    assert len(down) == len(up), f"{table}: {len(down)} rows downstream, {len(up)} upstream"
    for u, d in zip(up, down, strict=True):
        for name, uv, dv in zip(columns, u, d, strict=True):
            assert dv == uv, f"{table}.{name}: downstream {dv!r}, upstream {uv!r}"
    return len(up)


def _create(up: psycopg.Connection[Any], table: str, key: str) -> None:
    columns = ", ".join(f"{name} {type_}" for name, type_, _ in COLUMNS)
    up.execute(f"CREATE TABLE {table} ({key}, {columns})")


def _fill(up: psycopg.Connection[Any], table: str) -> None:
    for r in range(ROWS):
        values = ", ".join(values[r % len(values)] for _, _, values in COLUMNS)
        up.execute(f"INSERT INTO {table} (rid, {', '.join(NAMES)}) VALUES ({r + 1}, {values})")
    up.execute(f"INSERT INTO {table} (rid) VALUES ({ROWS + 1})")


def _rotate(up: psycopg.Connection[Any], table: str, names: list[str]) -> None:
    """Give every row the values ``names`` had in the next row (NULL included)."""
    sets = ", ".join(f"{n} = s.{n}" for n in names)
    up.execute(
        f"UPDATE {table} SET {sets} FROM {table} AS s WHERE s.rid = {table}.rid % {ROWS + 1} + 1"
    )


@pytest.mark.parametrize("identity", ["key", "full"])
def test_every_type_round_trips(
    typed: tuple[Pair, psycopg.Connection[Any], list[Any]], identity: str
) -> None:
    pair, up, compare = typed
    table = f"types_{identity}"
    # Without a key, the table gets REPLICA IDENTITY FULL: UPDATE and DELETE
    # find the downstream row by every column, of every type.
    _create(up, table, "rid int PRIMARY KEY" if identity == "key" else "rid int")
    replident = "d" if identity == "key" else "f"
    assert up.execute(
        f"SELECT relreplident FROM pg_class WHERE oid = '{table}'::regclass"
    ).fetchone() == (replident,)
    _fill(up, table)
    columns = ["rid", *NAMES]
    assert _same(pair, compare, table, columns) == ROWS + 1
    # The values really are as meant, not mangled on the way in or out.
    (cmp,) = compare[1].execute(
        f"SELECT by = {ALL_BYTES} AND md5(t) = md5({TEXT}) FROM {table} WHERE rid = 1"
    ).fetchone() or (None,)
    assert cmp is True
    for name in NAMES:  # one column at a time: old rows differ in that column only
        _rotate(up, table, [name])
    assert _same(pair, compare, table, columns) == ROWS + 1
    _rotate(up, table, NAMES)  # every column at once
    assert _same(pair, compare, table, columns) == ROWS + 1
    up.execute(f"UPDATE {table} SET rid = rid + 100 WHERE rid % 2 = 0")
    assert _same(pair, compare, table, columns) == ROWS + 1
    up.execute(f"DELETE FROM {table} WHERE rid % 3 = 0")
    remaining = _same(pair, compare, table, columns)
    assert 0 < remaining < ROWS + 1
    up.execute(f"DELETE FROM {table}")
    assert _same(pair, compare, table, columns) == 0


def test_keys_of_every_kind(typed: tuple[Pair, psycopg.Connection[Any], list[Any]]) -> None:
    pair, up, compare = typed
    for table, key_type, other_type, keys, others in KEYED:
        up.execute(f"CREATE TABLE {table} (k {key_type} PRIMARY KEY, v {other_type}, n int)")
        for i, key in enumerate(keys):
            up.execute(f"INSERT INTO {table} VALUES ({key}, {others[i % len(others)]}, {i})")
    for table, _, _, keys, _ in KEYED:
        assert _same(pair, compare, table, ["k", "v", "n"]) == len(keys)
        up.execute(f"UPDATE {table} SET n = n + 10, v = NULL WHERE n = 0")  # found by its key
        up.execute(f"DELETE FROM {table} WHERE n = 10")
        up.execute(f"UPDATE {table} SET k = {keys[0]} WHERE n = 1")  # the key changes
    for table, _, _, keys, _ in KEYED:
        assert _same(pair, compare, table, ["k", "v", "n"]) == len(keys) - 1
        up.execute(f"DELETE FROM {table} WHERE n = 2")
        assert _same(pair, compare, table, ["k", "v", "n"]) == len(keys) - 2
