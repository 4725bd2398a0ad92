"""PostgreSQL column types as DuckDB types, and the SQL that converts a value's
PostgreSQL text form (as the source gives it) into the DuckDB type.

Exact types where DuckDB has one; the rest stay VARCHAR in PostgreSQL's text
form. Conversions run inside DuckDB (vectorised), never per row in Python,
except for arrays, which a small Python function splits into a list of text
elements first (PostgreSQL's array literal is not DuckDB's).
"""

from __future__ import annotations

from dataclasses import dataclass

from pg_follower.source.changes import ColumnInfo

# pg_type OIDs of the built-in types mapped
BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON, FLOAT4, FLOAT8 = 16, 17, 20, 21, 23, 25, 114, 700, 701
BPCHAR, VARCHAR, DATE, TIME, TIMESTAMP, TIMESTAMPTZ = 1042, 1043, 1082, 1083, 1114, 1184
INTERVAL, TIMETZ, NUMERIC, UUID, JSONB, NAME = 1186, 1266, 1700, 2950, 3802, 19

DECIMAL_MAX_PRECISION = 38  # DuckDB's DECIMAL holds up to 38 digits
ARRAY_FUNCTION = "pgf_array"  # registered on each connection: text[] literal -> VARCHAR[]

_SIMPLE: dict[int, str] = {
    BOOL: "BOOLEAN",
    INT2: "SMALLINT",
    INT4: "INTEGER",
    INT8: "BIGINT",
    FLOAT4: "FLOAT",
    FLOAT8: "DOUBLE",
    TEXT: "VARCHAR",
    VARCHAR: "VARCHAR",
    BPCHAR: "VARCHAR",
    NAME: "VARCHAR",
    UUID: "UUID",
    JSON: "JSON",
    JSONB: "JSON",
    TIME: "TIME",
    TIMETZ: "TIMETZ",
}


@dataclass(frozen=True, slots=True)
class Mapping:
    """How one PostgreSQL type lands in DuckDB."""

    duckdb_type: str  # as written in CREATE TABLE
    exact: bool  # False: VARCHAR holding PostgreSQL's text form


def numeric_precision_scale(modifier: int) -> tuple[int, int] | None:
    """numeric(p,s) from its type modifier; None when unconstrained."""
    if modifier < 4:
        return None
    packed = modifier - 4
    precision = (packed >> 16) & 0xFFFF
    scale = ((packed & 0x7FF) ^ 1024) - 1024  # PostgreSQL 15 allows negative scales
    return precision, scale


def _scalar_mapping(base_oid: int, modifier: int) -> Mapping:
    if base_oid in _SIMPLE:
        return Mapping(_SIMPLE[base_oid], True)
    if base_oid == NUMERIC:
        ps = numeric_precision_scale(modifier)
        if ps is not None and 1 <= ps[0] <= DECIMAL_MAX_PRECISION and 0 <= ps[1] <= ps[0]:
            return Mapping(f"DECIMAL({ps[0]},{ps[1]})", True)
        return Mapping("VARCHAR", False)  # unconstrained or too wide: exact digits as text
    if base_oid == BYTEA:
        return Mapping("BLOB", True)
    if base_oid == DATE:
        return Mapping("DATE", True)
    if base_oid == TIMESTAMP:
        return Mapping("TIMESTAMP", True)
    if base_oid == TIMESTAMPTZ:
        return Mapping("TIMESTAMPTZ", True)
    if base_oid == INTERVAL:
        return Mapping("INTERVAL", True)
    return Mapping("VARCHAR", False)


def mapping(column: ColumnInfo) -> Mapping:
    """The DuckDB type of a column (domains by their base type, arrays as LIST)."""
    if column.category == "A" and column.element_oid:
        element = _scalar_mapping(column.element_oid, column.type_modifier)
        return Mapping(element.duckdb_type + "[]", element.exact)
    return _scalar_mapping(column.base_oid, column.type_modifier)


def _bc(ref: str, timestamp: bool) -> str:
    """PostgreSQL writes '0044-03-15 BC' (and '... 12:00:00+00 BC'); DuckDB
    reads '0044-03-15 (BC)' (and '0044-03-15 (BC) 12:00:00+00')."""
    moved = (
        f"regexp_replace({ref}, '^(\\S+) (.*) BC$', '\\1 (BC) \\2')"
        if timestamp
        else f"regexp_replace({ref}, ' BC$', ' (BC)')"
    )
    return f"CASE WHEN suffix({ref}, ' BC') THEN {moved} ELSE {ref} END"


def _scalar_cast(base_oid: int, modifier: int, ref: str) -> str:
    target = _scalar_mapping(base_oid, modifier)
    if not target.exact or target.duckdb_type == "VARCHAR":
        return ref
    if base_oid == BYTEA:  # hex output: \x0102ff
        return f"from_hex(substr({ref}, 3))"
    if base_oid == NUMERIC:  # 'NaN' fits no DECIMAL: NULL, and the load warns
        return f"CASE WHEN {ref} = 'NaN' THEN NULL ELSE CAST({ref} AS {target.duckdb_type}) END"
    if base_oid == DATE:
        return f"CAST({_bc(ref, False)} AS DATE)"
    if base_oid in (TIMESTAMP, TIMESTAMPTZ):
        return f"CAST({_bc(ref, True)} AS {target.duckdb_type})"
    if base_oid == INTERVAL:  # '-1 years -2 mons +3 days -04:05:06': DuckDB takes no '+'
        return f"CAST(replace({ref}, '+', '') AS INTERVAL)"
    return f"CAST({ref} AS {target.duckdb_type})"


def cast_sql(column: ColumnInfo, ref: str) -> str:
    """SQL turning ``ref`` (a VARCHAR: the value's PostgreSQL text form, NULL
    for NULL) into the column's DuckDB type."""
    if column.category == "A" and column.element_oid:
        element = _scalar_cast(column.element_oid, column.type_modifier, "x")
        listed = f"{ARRAY_FUNCTION}({ref})"
        if element == "x":
            return listed
        return f"list_transform({listed}, lambda x: {element})"
    return _scalar_cast(column.base_oid, column.type_modifier, ref)


def nan_checked(column: ColumnInfo) -> bool:
    """Whether a 'NaN' of this column becomes NULL (a DECIMAL): loads count them."""
    return column.base_oid == NUMERIC and mapping(column).exact and column.category != "A"


# -- PostgreSQL array literals ----------------------------------------------------
class ArrayLiteralError(ValueError):
    pass


def parse_array(text: str | None) -> list[str | None] | None:
    """A one-dimensional array's text form, '{1,NULL,"a b","c\\"d"}', as its
    elements' text forms (NULL as None). A multi-dimensional array has no
    DuckDB LIST of the element type: it is refused, naming the value."""
    if text is None:
        return None
    if text.startswith("["):  # '[0:1]={...}': explicit bounds, dropped
        text = text[text.index("=") + 1 :]
    if not (text.startswith("{") and text.endswith("}")):
        raise ArrayLiteralError(f"not an array literal: {text[:60]!r}")
    body = text[1:-1]
    if not body:
        return []
    out: list[str | None] = []
    i, n = 0, len(body)
    while i <= n:
        if i < n and body[i] == "{":
            raise ArrayLiteralError(
                f"multi-dimensional array {text[:60]!r}: a DuckDB LIST holds one dimension"
            )
        if i < n and body[i] == '"':
            i += 1
            chars = []
            while body[i] != '"':
                if body[i] == "\\":
                    i += 1
                chars.append(body[i])
                i += 1
            out.append("".join(chars))
            i += 1  # the closing quote; a comma or the end follows
        else:
            end = body.find(",", i)
            end = n if end < 0 else end
            item = body[i:end].strip()
            out.append(None if item == "NULL" else item)
            i = end
        i += 1  # past the comma
    return out
