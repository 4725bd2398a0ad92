"""The DuckDB type mapping: each PostgreSQL type's DuckDB type, and its text form
converted by DuckDB itself (the SQL the destination runs)."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from pg_follower.destinations.duckdb import types
from pg_follower.source.changes import ColumnInfo


def column(base_oid: int, modifier: int = -1, element_oid: int = 0) -> ColumnInfo:
    category = "A" if element_oid else "X"
    return ColumnInfo("c", "t", base_oid, base_oid, modifier, element_oid, category, False)


def numeric(precision: int, scale: int) -> int:
    return ((precision << 16) | (scale & 0x7FF)) + 4


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.create_function(types.ARRAY_FUNCTION, types.parse_array, ["VARCHAR"], "VARCHAR[]")
    return c


CASES: list[tuple[ColumnInfo, str, str, Any]] = [
    (column(types.INT2), "SMALLINT", "-32768", -32768),
    (column(types.INT4), "INTEGER", "2147483647", 2147483647),
    (column(types.INT8), "BIGINT", "-9223372036854775808", -9223372036854775808),
    (
        column(types.NUMERIC, numeric(38, 4)),
        "DECIMAL(38,4)",
        "1234567890123456789012345678901234.5678",
        Decimal("1234567890123456789012345678901234.5678"),
    ),
    (column(types.NUMERIC, numeric(10, 2)), "DECIMAL(10,2)", "NaN", None),
    (column(types.NUMERIC), "VARCHAR", "1e-5000", "1e-5000"),
    (column(types.NUMERIC, numeric(40, 2)), "VARCHAR", "NaN", "NaN"),
    (column(types.NUMERIC, numeric(5, -2)), "VARCHAR", "12300", "12300"),
    (column(types.TEXT), "VARCHAR", "tab\there", "tab\there"),
    (column(types.BPCHAR, 9), "VARCHAR", "ab   ", "ab   "),
    (column(types.BYTEA), "BLOB", "\\x00ff10", b"\x00\xff\x10"),
    (column(types.BOOL), "BOOLEAN", "t", True),
    (column(types.DATE), "DATE", "2024-02-29", dt.date(2024, 2, 29)),
    (column(types.DATE), "DATE", "0044-03-15 BC", "0044-03-15 (BC)"),  # compared as text
    (column(types.TIME), "TIME", "23:59:59.999999", dt.time(23, 59, 59, 999999)),
    (
        column(types.TIMESTAMP),
        "TIMESTAMP",
        "2024-01-02 03:04:05.5",
        dt.datetime(2024, 1, 2, 3, 4, 5, 500000),
    ),
    (
        column(types.TIMESTAMPTZ),
        "TIMESTAMPTZ",
        "2024-01-02 03:04:05+00",
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    ),
    (
        column(types.INTERVAL),
        "INTERVAL",
        "1 year 2 mons 3 days 04:05:06.5",
        dt.timedelta(days=423, seconds=14706.5),
    ),
    (
        column(types.UUID),
        "UUID",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ),
    (column(types.JSONB), "JSON", '{"a": [1, null]}', '{"a": [1, null]}'),
    (column(types.FLOAT8), "DOUBLE", "1.2345678901234567", 1.2345678901234567),
    (column(types.FLOAT4), "FLOAT", "-Infinity", -math.inf),
    (column(600), "VARCHAR", "(1,2)", "(1,2)"),  # point: text form
    (column(types.INT4, element_oid=types.INT4), "INTEGER[]", "{1,NULL,3}", [1, None, 3]),
    (
        column(types.TEXT, element_oid=types.TEXT),
        "VARCHAR[]",
        '{"a b","c\\"d",NULL,"NULL"}',
        ["a b", 'c"d', None, "NULL"],
    ),
    (column(types.BYTEA, element_oid=types.BYTEA), "BLOB[]", '{"\\\\x01"}', [b"\x01"]),
]


@pytest.mark.parametrize(("col", "duck_type", "text", "expected"), CASES)
def test_mapping_and_conversion(
    con: duckdb.DuckDBPyConnection, col: ColumnInfo, duck_type: str, text: str, expected: Any
) -> None:
    assert types.mapping(col).duckdb_type == duck_type
    query = f"SELECT CAST({types.cast_sql(col, '$1::VARCHAR')} AS {duck_type})"
    if isinstance(expected, str) and duck_type == "DATE":
        query = f"SELECT CAST(({query[7:]}) AS VARCHAR)"
    row = con.execute(query, [text]).fetchone()
    assert row is not None
    assert row[0] == expected


def test_infinite_dates_and_timestamps_stay_infinite(con: duckdb.DuckDBPyConnection) -> None:
    for oid in (types.DATE, types.TIMESTAMP, types.TIMESTAMPTZ):
        for text in ("infinity", "-infinity"):
            sql = types.cast_sql(column(oid), "$1::VARCHAR")
            row = con.execute(f"SELECT CAST({sql} AS VARCHAR), isinf({sql})", [text]).fetchone()
            assert row == (text, True)


def test_negative_intervals(con: duckdb.DuckDBPyConnection) -> None:
    sql = types.cast_sql(column(types.INTERVAL), "$1::VARCHAR")
    got = con.execute(
        f"SELECT {sql} = INTERVAL '-14 months 3 days -4 hours -5 minutes -6 seconds'",
        ["-1 years -2 mons +3 days -04:05:06"],
    ).fetchone()
    assert got == (True,)


def test_bc_timestamps(con: duckdb.DuckDBPyConnection) -> None:
    sql = types.cast_sql(column(types.TIMESTAMPTZ), "$1::VARCHAR")
    got = con.execute(f"SELECT CAST({sql} AS VARCHAR)", ["0044-03-15 12:00:00+00 BC"]).fetchone()
    assert got == ("0044-03-15 (BC) 12:00:00+00",)


def test_multidimensional_array_refused() -> None:
    with pytest.raises(types.ArrayLiteralError, match="multi-dimensional"):
        types.parse_array("{{1,2},{3,4}}")


def test_numeric_modifiers() -> None:
    assert types.numeric_precision_scale(-1) is None
    assert types.numeric_precision_scale(numeric(10, 2)) == (10, 2)
    assert types.numeric_precision_scale(numeric(5, -2)) == (5, -2)
