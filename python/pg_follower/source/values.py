"""PostgreSQL text-form values as JSON-ready Python values, by column type.

The text forms are those of the source's sessions (``datestyle ISO``,
``timezone UTC``, ``extra_float_digits 3``, ``bytea_output hex``). A value
becomes a JSON type where that is exact (integers, floats, booleans, json,
arrays) and stays PostgreSQL's text form otherwise (numeric, money, uuid, ...),
with timestamps in ISO 8601.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Final

from pg_follower.source.changes import ColumnInfo

__all__ = ["converter", "iso_timestamp", "parse_array"]

# pg_type OIDs of the types with a JSON form of their own
INTEGERS: Final = frozenset({20, 21, 23, 26, 28, 29})  # int8, int2, int4, oid, xid, cid
FLOATS: Final = frozenset({700, 701})  # float4, float8
BOOL: Final = 16
JSONS: Final = frozenset({114, 3802})  # json, jsonb
TIMESTAMP: Final = 1114
TIMESTAMPTZ: Final = 1184
BOX: Final = 603  # the one built-in type whose array delimiter is ';'

Convert = Callable[[str], Any]

_OFFSET = re.compile(r"([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?$")


def _integer(text: str) -> int:
    return int(text)


def _float(text: str) -> float | str:
    # JSON has no NaN or infinities: those stay PostgreSQL's words
    if text in ("NaN", "Infinity", "-Infinity"):
        return text
    return float(text)


def _bool(text: str) -> bool:
    return text == "t"


def _json(text: str) -> Any:
    return json.loads(text)


def _text(text: str) -> str:
    return text


def iso_timestamp(text: str) -> str:
    """``2024-01-02 03:04:05.123+00`` -> ``2024-01-02T03:04:05.123+00:00``
    (ISO datestyle output; 'infinity' and BC dates stay as they are)."""
    if len(text) < 11 or text[10] != " " or text.endswith(" BC"):
        return text
    iso = text[:10] + "T" + text[11:]
    match = _OFFSET.search(iso, 19)
    if match is None:
        return iso  # timestamp without time zone
    sign, hours, minutes, seconds = match.groups()
    offset = f"{sign}{hours}:{minutes or '00'}" + (f":{seconds}" if seconds else "")
    return iso[: match.start()] + offset


_SCALARS: Final[dict[int, Convert]] = {
    **dict.fromkeys(INTEGERS, _integer),
    **dict.fromkeys(FLOATS, _float),
    BOOL: _bool,
    **dict.fromkeys(JSONS, _json),
    TIMESTAMP: iso_timestamp,
    TIMESTAMPTZ: iso_timestamp,
}


def scalar_converter(base_oid: int) -> Convert:
    """How a value of the (base) type ``base_oid`` becomes JSON-ready."""
    return _SCALARS.get(base_oid, _text)


def converter(column: ColumnInfo) -> Convert:
    """How a value of ``column`` becomes JSON-ready (domains by their base
    type, arrays element by element, everything else as its text form)."""
    if column.category == "A" and column.element_oid:
        element = scalar_converter(column.element_oid)
        delimiter = ";" if column.element_oid == BOX else ","
        # int2vector and oidvector are arrays too, printed '1 2 3': kept as text
        return lambda text: (
            parse_array(text, element, delimiter) if text[:1] in ("{", "[") else text
        )
    return scalar_converter(column.base_oid)


def parse_array(text: str, element: Convert = _text, delimiter: str = ",") -> list[Any]:
    """A PostgreSQL array literal (``array_out``'s form) as nested lists:
    quoted and backslash-escaped elements, unquoted ``NULL`` as None, any
    number of dimensions; an explicit ``[1:2]=`` bounds prefix is dropped."""
    pos = 0
    if text.startswith("["):  # lower bounds other than 1: '[0:1]={a,b}'
        pos = text.index("=") + 1
    value, end = _parse_level(text, pos, element, delimiter)
    if text[end:].strip():
        raise ValueError(f"malformed array literal {text!r}: trailing {text[end:]!r}")
    return value


def _parse_level(text: str, pos: int, element: Convert, delimiter: str) -> tuple[list[Any], int]:
    if text[pos : pos + 1] != "{":
        raise ValueError(f"malformed array literal {text!r}: '{{' expected at {pos}")
    pos += 1
    items: list[Any] = []
    n = len(text)
    if text[pos : pos + 1] == "}":
        return items, pos + 1
    while pos < n:
        ch = text[pos]
        if ch == "{":
            sub, pos = _parse_level(text, pos, element, delimiter)
            items.append(sub)
        elif ch == '"':
            pos += 1
            chars: list[str] = []
            while pos < n and text[pos] != '"':
                if text[pos] == "\\":
                    pos += 1
                chars.append(text[pos])
                pos += 1
            if pos >= n:
                raise ValueError(f"malformed array literal {text!r}: unterminated quote")
            pos += 1
            items.append(element("".join(chars)))
        else:
            start = pos
            while pos < n and text[pos] not in (delimiter, "}"):
                pos += 1
            raw = text[start:pos].strip()
            items.append(None if raw.upper() == "NULL" else element(raw))
        if pos >= n:
            break
        if text[pos] == delimiter:
            pos += 1
        elif text[pos] == "}":
            return items, pos + 1
        else:
            raise ValueError(f"malformed array literal {text!r}: unexpected {text[pos]!r}")
    raise ValueError(f"malformed array literal {text!r}: '}}' missing")
