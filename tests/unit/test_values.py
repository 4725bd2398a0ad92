"""PostgreSQL text forms as JSON-ready values: the array parser and timestamps."""

from __future__ import annotations

import pytest

from pg_follower.source.changes import ColumnInfo
from pg_follower.source.values import converter, iso_timestamp, parse_array


def column(base_oid: int, category: str = "N", element_oid: int = 0) -> ColumnInfo:
    return ColumnInfo("c", "t", base_oid, base_oid, -1, element_oid, category, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", []),
        ("{a,b}", ["a", "b"]),
        ('{NULL,null,"NULL"}', [None, None, "NULL"]),
        ('{"a,b","c\\"d","e\\\\f","{x}"," sp "}', ["a,b", 'c"d', "e\\f", "{x}", " sp "]),
        ('{""}', [""]),
        ("{{1,2},{3,4}}", [["1", "2"], ["3", "4"]]),
        ("{{{a}},{{b}}}", [[["a"]], [["b"]]]),
        ("[0:1]={x,y}", ["x", "y"]),
        ("{é,日本}", ["é", "日本"]),
    ],
)
def test_parse_array(text: str, expected: list[object]) -> None:
    assert parse_array(text) == expected


def test_elements_converted_by_type() -> None:
    assert converter(column(1007, "A", 23))("{1,NULL,-3}") == [1, None, -3]
    assert converter(column(1022, "A", 701))("{1.5,NaN,-Infinity}") == [1.5, "NaN", "-Infinity"]
    assert converter(column(1000, "A", 16))("{t,f}") == [True, False]
    assert converter(column(3807, "A", 3802))('{"{\\"a\\": 1}",null}') == [{"a": 1}, None]
    assert converter(column(1231, "A", 1700))("{1.10,2}") == ["1.10", "2"]
    assert converter(column(22, "A", 21))("1 2") == "1 2"  # int2vector: its text form
    # box[] is the one built-in array with ';' between elements
    assert converter(column(1020, "A", 603))("{(1,1),(0,0);(2,2),(1,1)}") == [
        "(1,1),(0,0)",
        "(2,2),(1,1)",
    ]


@pytest.mark.parametrize("text", ["{a", "{a}x", "a", '{"a}', "{a b}c}"])
def test_malformed_array(text: str) -> None:
    with pytest.raises(ValueError, match="malformed array literal"):
        parse_array(text)


def test_scalars() -> None:
    assert converter(column(20))("-9223372036854775808") == -9223372036854775808
    assert converter(column(701))("1.0000000000000002") == 1.0000000000000002
    assert converter(column(700))("NaN") == "NaN"
    assert converter(column(16, "B"))("f") is False
    assert converter(column(3802, "U"))('{"a": [1, null]}') == {"a": [1, None]}
    assert converter(column(1700))("12345678901234567890.123") == "12345678901234567890.123"
    assert converter(column(17, "U"))("\\xdead") == "\\xdead"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02 03:04:05.123+00", "2024-01-02T03:04:05.123+00:00"),
        ("2024-01-02 03:04:05+05:30", "2024-01-02T03:04:05+05:30"),
        ("1850-01-02 03:04:05-00:01:15", "1850-01-02T03:04:05-00:01:15"),
        ("2024-01-02 03:04:05.5", "2024-01-02T03:04:05.5"),
        ("2024-01-02 03:04:05", "2024-01-02T03:04:05"),
        ("infinity", "infinity"),
        ("0044-03-15 12:00:00+00 BC", "0044-03-15 12:00:00+00 BC"),
    ],
)
def test_iso_timestamp(text: str, expected: str) -> None:
    assert iso_timestamp(text) == expected
