"""Classify upstream DDL and deparse it into versioned records the worker replays.

Each record is a JSON-able dict (the caller does ``json.dumps``); the upstream's
writer (sql/30_capture.sql) stores it as one row of ``pgfollower.ddl_queue``, with
the role that ran the DDL:

- ``v``: the format version, ``FORMAT_VERSION``.
- ``kind``: what to replay, ``"create_table"`` or ``"drop_table"``.
- ``tag``: the command tag of the upstream command (``TG_TAG``).
- ``identity``: the schema-qualified, quoted name of the object; for several objects
  their names joined by ``", "``.
- ``search_path``: the upstream's effective search path, a SQL list of quoted identifiers.
- ``sql``: the statement to replay, with no trailing semicolon.

The worker replays a row as ``SET LOCAL search_path TO <search_path>``, ``SET LOCAL
ROLE <role>`` and then ``sql``, with standard_conforming_strings on. Upstream, the
statement is taken from the client's query text, or for DDL run inside a function,
a procedure or a DO block from the event trigger's call stack (``statement_source``);
if it cannot be replicated exactly, ``Unsupported`` is raised.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "DIGEST_SETTINGS",
    "FORMAT_VERSION",
    "LITERAL_SETTINGS",
    "MATVIEW_DIGEST_KIND",
    "Command",
    "DroppedObject",
    "Unsupported",
    "capture_command",
    "capture_drop",
    "granted_relations",
    "matview_digest",
    "matview_digest_query",
    "populated_matviews",
    "redacted",
    "split_statements",
    "statement_tag",
    "way_out",
]

# 2: rows of pgfollower.ddl_queue with the DDL's role (1: logical messages, no role)
FORMAT_VERSION = 2

# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
NAMEDATALEN = 64
# Our own extension: ALTER EXTENSION on it is each node's business.
EXTENSION = "pg_follower_py"


@dataclass(frozen=True)
class Command:
    """One row of pg_event_trigger_ddl_commands()."""

    command_tag: str
    object_type: str | None
    schema_name: str | None
    object_identity: str | None
    in_extension: bool


@dataclass(frozen=True)
class DroppedObject:
    """One row of pg_event_trigger_dropped_objects()."""

    object_type: str | None
    schema_name: str | None
    object_name: str | None
    object_identity: str | None
    original: bool
    is_temporary: bool


class Unsupported(Exception):
    """The DDL cannot be replicated exactly; ``message`` says why, ``hint`` what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# --- Lexing -----------------------------------------------------------------
#
# sqlparse is not used to split: its lexer and splitter disagree with PostgreSQL's
# (a column named "begin" glues the next statements on, so does a backslash before
# the closing quote of a standard string, nested /* */ comments and the # operator),
# and a wrong split would replay text the upstream never ran as one statement. This
# scanner follows PostgreSQL's scan.l for everything that can hide a semicolon.

_IDENT = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_DOLLAR_DELIM = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_PARAM = re.compile(r"\$[0-9]+")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# A string continues after whitespace holding a newline (scan.l's quotecontinue).
_QUOTE_CONTINUE = re.compile(r"[ \t\f]*(?:--[^\n\r]*)?[\n\r](?:[ \t\n\r\f]|--[^\n\r]*[\n\r])*'")
_WHITESPACE = " \t\n\r\f\v"
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclass(frozen=True, slots=True)
class _Token:
    # kind: ident (unquoted, value folded), qident ("quoted", value unescaped),
    # uident (U&"quoted", value unescaped but not decoded), str, estr, nstr, ustr,
    # bstr (value is the raw literal), dollar, param, num, op (one character).
    kind: str
    value: str
    start: int
    end: int


def _ident_char(ch: str) -> bool:
    return (ch.isascii() and (ch.isalnum() or ch in "_$")) or ch >= "\x80"


def _string_end(text: str, quote: int, backslashes: bool) -> int:
    """Return the end of the string literal whose opening quote is at ``quote``."""
    i = quote + 1
    n = len(text)
    while True:
        while i < n:
            ch = text[i]
            if ch == "\\" and backslashes:
                i += 2
            elif ch == "'":
                if not text.startswith("''", i):
                    break
                i += 2
            else:
                i += 1
        if i >= n:
            return n + 1  # unterminated
        i += 1
        more = _QUOTE_CONTINUE.match(text, i)
        if more is None:
            return i
        i = more.end()


def _quoted_end(text: str, quote: int) -> int:
    """Return the end of the quoted identifier whose opening quote is at ``quote``."""
    i = quote + 1
    while True:
        i = text.find('"', i)
        if i < 0:
            return len(text) + 1  # unterminated
        if not text.startswith('""', i):
            return i + 1
        i += 2


def _comment_end(text: str, start: int) -> int:
    """Return the end of the block comment at ``start``; they nest in PostgreSQL."""
    depth = 0
    i = start + 2
    n = len(text)
    while i < n:
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            if depth == 0:
                return i + 2
            depth -= 1
            i += 2
        else:
            i += 1
    return n + 1  # unterminated


def _scan(text: str, scs: bool = True) -> list[_Token]:
    """Split ``text`` into tokens, dropping whitespace and comments.

    Unterminated literals and comments run to the end: PostgreSQL would have refused
    such a query, so no DDL can come from it anyway.
    """
    return _scan_checked(text, scs)[0]


def _scan_checked(text: str, scs: bool = True) -> tuple[list[_Token], bool]:
    """The tokens of ``text`` and whether every literal, quoted name and comment in
    it is closed (the ``_*_end`` helpers return one past the end for those that are
    not)."""
    closed = True
    tokens: list[_Token] = []
    n = len(text)
    pos = 0
    while pos < n:
        ch = text[pos]
        nxt = text[pos + 1 : pos + 2]
        start = pos
        if ch in _WHITESPACE:
            pos += 1
            continue
        if ch == "-" and nxt == "-":
            while pos < n and text[pos] not in "\n\r":
                pos += 1
            continue
        if ch == "/" and nxt == "*":
            pos = _comment_end(text, pos)
            closed = closed and pos <= n
            continue
        kind = "op"
        value = ch
        if ch == "'":
            kind = "str"
            pos = _string_end(text, pos, backslashes=not scs)
        elif ch == '"':
            kind = "qident"
            pos = _quoted_end(text, pos)
            value = text[start + 1 : pos - 1].replace('""', '"')
        elif ch == "$":
            delim = _DOLLAR_DELIM.match(text, pos)
            param = _PARAM.match(text, pos)
            if delim is not None:
                kind = "dollar"
                close = text.find(delim.group(), delim.end())
                pos = n + 1 if close < 0 else close + len(delim.group())
            elif param is not None:
                kind = "param"
                pos = param.end()
            else:
                pos += 1
        elif (ch.isascii() and ch.isdigit()) or (ch == "." and nxt.isascii() and nxt.isdigit()):
            number = _NUMBER.match(text, pos)
            assert number is not None
            kind = "num"
            pos = number.end()
        elif nxt == "'" and ch in "eEbBxXnN":
            kind = {"e": "estr", "b": "bstr", "x": "bstr", "n": "nstr"}[ch.lower()]
            escaped = kind == "estr" or (kind == "nstr" and not scs)
            pos = _string_end(text, pos + 1, backslashes=escaped)
        elif ch in "uU" and nxt == "&" and text[pos + 2 : pos + 3] == "'":
            kind = "ustr"
            pos = _string_end(text, pos + 2, backslashes=False)
        elif ch in "uU" and nxt == "&" and text[pos + 2 : pos + 3] == '"':
            kind = "uident"
            pos = _quoted_end(text, pos + 2)
            value = text[start + 3 : pos - 1].replace('""', '"')
        elif (ident := _IDENT.match(text, pos)) is not None:
            kind = "ident"
            pos = ident.end()
            value = ident.group().translate(_ASCII_LOWER)
        else:
            pos += 1
        if pos > n:
            closed, pos = False, n
        if kind not in ("op", "ident", "qident", "uident"):
            value = text[start:pos]
        tokens.append(_Token(kind, value, start, pos))
    return tokens, closed


# --- Statements -------------------------------------------------------------


@dataclass(frozen=True)
class _Statement:
    text: str
    tokens: tuple[_Token, ...]  # offsets relative to text

    def word(self, i: int) -> str | None:
        """The i-th token if it is an unquoted word (folded), else None."""
        if i < len(self.tokens) and self.tokens[i].kind == "ident":
            return self.tokens[i].value
        return None

    def words_at(self, i: int, *words: str) -> bool:
        return all(self.word(i + k) == w for k, w in enumerate(words))

    def is_op(self, i: int, op: str) -> bool:
        return i < len(self.tokens) and self.tokens[i].kind == "op" and self.tokens[i].value == op

    def top_level_words(self, start: int = 0) -> list[tuple[int, str]]:
        """(index, word) of the unquoted words outside any parentheses."""
        found: list[tuple[int, str]] = []
        depth = 0
        for i in range(start, len(self.tokens)):
            tok = self.tokens[i]
            if tok.kind == "op" and tok.value in ("(", "["):
                depth += 1
            elif tok.kind == "op" and tok.value in (")", "]"):
                depth -= 1
            elif tok.kind == "ident" and depth == 0:
                found.append((i, tok.value))
        return found


def _make_statement(query: str, tokens: list[_Token]) -> _Statement:
    base = tokens[0].start
    text = query[base : tokens[-1].end]
    shifted = tuple(_Token(t.kind, t.value, t.start - base, t.end - base) for t in tokens)
    return _Statement(text, shifted)


def _is_routine(words: list[str]) -> bool:
    """Whether the statement starts CREATE [OR REPLACE] FUNCTION|PROCEDURE."""
    routine = ("function", "procedure")
    if words[:1] != ["create"] or len(words) < 2:
        return False
    return words[1] in routine or (
        words[1:3] == ["or", "replace"] and words[3:4] in (["function"], ["procedure"])
    )


def _split(query: str, scs: bool = True) -> list[_Statement]:
    statements: list[_Statement] = []
    current: list[_Token] = []
    depth = 0
    begin_depth = 0
    words: list[str] = []
    for tok in _scan(query, scs):
        if tok.kind == "op" and tok.value == ";" and depth == 0 and begin_depth == 0:
            if current:
                statements.append(_make_statement(query, current))
            current, words = [], []
            continue
        current.append(tok)
        if tok.kind == "op" and tok.value == "(":
            depth += 1
        elif tok.kind == "op" and tok.value == ")":
            depth = max(0, depth - 1)
        elif tok.kind == "ident":
            if len(words) < 4:
                words.append(tok.value)
            # Same heuristic as psql for SQL-standard bodies (BEGIN ATOMIC ... END),
            # whose semicolons do not end the statement.
            if depth == 0 and _is_routine(words):
                if tok.value == "begin" or (tok.value == "case" and begin_depth > 0):
                    begin_depth += 1
                elif tok.value == "end" and begin_depth > 0:
                    begin_depth -= 1
    if current:
        statements.append(_make_statement(query, current))
    return statements


def split_statements(query: str, *, standard_conforming_strings: bool = True) -> list[str]:
    """Split a query string into its statements, as PostgreSQL does.

    Each statement runs from its first token to its last: no surrounding whitespace or
    comments, no semicolon. Empty statements are left out.
    """
    return [s.text for s in _split(query, standard_conforming_strings)]


# Words that may stand between the verb and the object type, by verb.
_MODIFIERS = {
    "create": frozenset(
        [
            "global",
            "local",
            "temp",
            "temporary",
            "unlogged",
            "unique",
            "recursive",
            "constraint",
            "trusted",
            "procedural",
            "default",
        ]
    ),
    "alter": frozenset(),
    "drop": frozenset(["procedural"]),
}
_OBJECT_TYPES = sorted(
    (
        tuple(name.split())
        for name in [
            "access method", "aggregate", "cast", "collation", "conversion", "database",
            "default privileges", "domain", "event trigger", "extension",
            "foreign data wrapper", "foreign table", "function", "group", "index",
            "language", "large object", "materialized view", "operator",
            "operator class", "operator family", "owned", "policy", "procedure",
            "publication", "role", "routine", "rule", "schema", "sequence", "server",
            "statistics", "subscription", "table", "tablespace",
            "text search configuration", "text search dictionary", "text search parser",
            "text search template", "transform", "trigger", "type", "user",
            "user mapping", "view",
        ]
    ),
    key=len,
    reverse=True,
)  # fmt: skip
_OBJECT_ALIASES: dict[tuple[str, ...], str] = {("user",): "ROLE", ("group",): "ROLE"}
_OTHER_TAGS = {
    ("grant",): "GRANT",
    ("revoke",): "REVOKE",
    ("comment",): "COMMENT",
    ("security", "label"): "SECURITY LABEL",
    ("import", "foreign", "schema"): "IMPORT FOREIGN SCHEMA",
    ("refresh", "materialized", "view"): "REFRESH MATERIALIZED VIEW",
    ("reassign", "owned"): "REASSIGN OWNED",
}


def _verb_object(stmt: _Statement) -> tuple[str, tuple[str, ...], int] | None:
    """CREATE/ALTER/DROP, the object type's words, and the index of the token
    after them (the object's name, or IF [NOT] EXISTS...); None for other verbs."""
    verb = stmt.word(0)
    if verb not in _MODIFIERS:
        return None
    i = 1
    if verb == "create" and stmt.words_at(1, "or", "replace"):
        i = 3
    while stmt.word(i) in _MODIFIERS[verb]:
        i += 1
    obj = next((o for o in _OBJECT_TYPES if stmt.words_at(i, *o)), None)
    return None if obj is None else (verb, obj, i + len(obj))


def _tag(stmt: _Statement) -> str | None:
    verb = stmt.word(0)
    if verb in _MODIFIERS:
        found = _verb_object(stmt)
        if found is None:
            return None
        _, obj, after = found
        name = _OBJECT_ALIASES.get(obj) or " ".join(obj).upper()
        tag = f"{verb.upper()} {name}"
        if tag == "CREATE TABLE" and any(w == "as" for _, w in stmt.top_level_words(after)):
            return "CREATE TABLE AS"
        return tag
    if verb in ("select", "with"):
        # A WITH query is a SELECT INTO when its main verb, outside the CTEs, is SELECT.
        words = stmt.top_level_words()
        verbs = ("select", "insert", "update", "delete", "merge", "values", "table")
        main = next((k for k, (_, w) in enumerate(words) if w in verbs), None)
        into = any(w == "into" for _, w in words[main or 0 :])
        return "SELECT INTO" if main is not None and words[main][1] == "select" and into else None
    for words_, tag in _OTHER_TAGS.items():
        if stmt.words_at(0, *words_):
            return tag
    return None


def statement_tag(statement: str) -> str | None:
    """The command tag the (first) statement would produce if it is DDL, else None."""
    statements = _split(statement)
    return _tag(statements[0]) if statements else None


# --- Names ------------------------------------------------------------------


def _truncate(name: str) -> str:
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) < NAMEDATALEN:
        return name
    return raw[: NAMEDATALEN - 1].decode("utf-8", "ignore")


def _decode_unicode(body: str, escape: str) -> str | None:
    """Decode the escapes of a U&"..." identifier; None if they are invalid."""
    if len(escape) != 1 or escape in string.hexdigits + "+'\" \t\n\r\f":
        return None
    units: list[str] = []
    i = 0
    while i < len(body):
        if body[i] != escape:
            units.append(body[i])
            i += 1
            continue
        if body.startswith(escape, i + 1):
            units.append(escape)
            i += 2
            continue
        width = 6 if body.startswith("+", i + 1) else 4
        digits = body[i + 1 + (width == 6) : i + 1 + (width == 6) + width]
        if len(digits) != width or any(c not in string.hexdigits for c in digits):
            return None
        code = int(digits, 16)
        if code == 0 or code > 0x10FFFF:
            return None
        units.append(chr(code))
        i += 1 + (width == 6) + width
    try:
        # Surrogate pairs written as two escapes make one character.
        return "".join(units).encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class _Name:
    parts: tuple[str | None, ...]  # None for a part that does not decode
    start: int
    end: int
    next: int  # index of the token after the name


def _parse_name(stmt: _Statement, i: int) -> _Name | None:
    """Parse a possibly qualified name starting at token i, PostgreSQL-style."""
    toks = stmt.tokens
    parts: list[str | None] = []
    first = i
    while i < len(toks):
        tok = toks[i]
        part: str | None
        if tok.kind in ("ident", "qident"):
            part = tok.value
            i += 1
        elif tok.kind == "uident":
            escape = "\\"
            i += 1
            if stmt.word(i) == "uescape" and i + 1 < len(toks) and toks[i + 1].kind == "str":
                escape = toks[i + 1].value[1:-1].replace("''", "'")
                i += 2
            part = _decode_unicode(tok.value, escape)
        else:
            return None
        parts.append(None if part is None else _truncate(part))
        if not stmt.is_op(i, "."):
            return _Name(tuple(parts), toks[first].start, toks[i - 1].end, i)
        i += 1
    return None


def _parse_identity(identity: str | None) -> tuple[str | None, ...] | None:
    """Split a quoted, qualified name such as an object_identity into its parts."""
    if not identity:
        return None
    stmts = _split(identity)
    if len(stmts) != 1:
        return None
    name = _parse_name(stmts[0], 0)
    if name is None or name.next != len(stmts[0].tokens):
        return None
    return name.parts


def _parse_search_path(search_path: str) -> list[str]:
    schemas: list[str] = []
    for k, tok in enumerate(_scan(search_path)):
        if k % 2 == 0 and tok.kind in ("ident", "qident"):
            schemas.append(tok.value)
        elif not (k % 2 == 1 and tok.kind == "op" and tok.value == ","):
            raise ValueError(f"not a list of schema names: {search_path!r}")
    return schemas


def _is_temp_schema(schema: str | None) -> bool:
    return schema is not None and (schema == "pg_temp" or schema.startswith("pg_temp_"))


def _replace(text: str, start: int, end: int, new: str) -> str:
    """Replace text[start:end] by ``new``, with a space where tokens would merge."""
    before, after = text[:start], text[end:]

    def merge(a: str, b: str) -> bool:
        return (_ident_char(a) and _ident_char(b)) or a == b == '"'

    if before and new and merge(before[-1], new[0]):
        new = " " + new
    if after and new and merge(new[-1], after[0]):
        new = new + " "
    return before + new + after


# --- Where the statement text comes from --------------------------------------
#
# A top-level DDL statement is in the client's query text. One run by a
# function, a procedure or a DO block is not: the event trigger's call stack
# (GET DIAGNOSTICS ... PG_CONTEXT, innermost frame first, frames separated by
# newlines) shows it instead. Its first frame below the trigger is the DDL's:
#
# - ``SQL statement "<text>"``: SPI ran <text> (PL/pgSQL's static SQL and
#   EXECUTE, plpy.execute...), verbatim, with quotes and newlines unescaped;
# - ``SQL function "<name>" statement <n>``: the n-th statement of a
#   SQL-language function's body, read from pg_proc by the caller.
#
# Where <text> ends is not marked: it ends at a quote followed by a newline and
# the next frame, and such a sequence can also be inside <text> (a quoted name
# holding a newline). Candidates are cut at every such place; one is kept only
# if every literal, quoted name and comment in it is closed and its
# parentheses balance, as in any statement PostgreSQL ran. The shortest kept
# candidate holding a statement of the firing's tag for its object is the
# statement: a longer one runs on into the outer frames.

# How the frame after a statement's can start: the routine or block that ran it.
_FRAME_STARTS = (
    "PL/pgSQL function ",
    'SQL statement "',
    'SQL function "',
    "PL/Python ",
    "PL/Perl ",
    "PL/Tcl ",
)
_SPI_FRAME = 'SQL statement "'
_SQL_FUNCTION_FRAME = 'SQL function "'


@dataclass(frozen=True)
class Source:
    """Where a firing's statement is looked for.

    ``texts`` are query texts tried in turn (``first_wins``) or alternatives
    that must agree (the bodies of same-named SQL functions); ``where`` names
    them in messages; ``problem`` says why there is no text at all.
    """

    texts: tuple[str, ...]
    where: str
    nested: bool
    first_wins: bool = True
    problem: str | None = None


def _frame_summary(frames: str) -> str:
    line = frames.split("\n", 1)[0]
    return line if len(line) <= 80 else line[:77] + "..."


def _complete(text: str, scs: bool) -> bool:
    """Whether ``text`` could be a query PostgreSQL parsed: no unclosed literal,
    quoted name or comment, balanced parentheses."""
    tokens, closed = _scan_checked(text, scs)
    if not closed or not tokens:
        return False
    depth = 0
    for tok in tokens:
        if tok.kind == "op" and tok.value in "([":
            depth += 1
        elif tok.kind == "op" and tok.value in ")]":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def spi_texts(frames: str, *, standard_conforming_strings: bool = True) -> list[str]:
    """The candidate texts of the ``SQL statement "<text>"`` frame that starts
    ``frames``, shortest first (see the comment above)."""
    if not frames.startswith(_SPI_FRAME):
        return []
    begin = len(_SPI_FRAME)
    texts: list[str] = []
    end = frames.find('"', begin)
    while end >= 0:
        last = end == len(frames) - 1
        if last or (frames[end + 1] == "\n" and frames.startswith(_FRAME_STARTS, end + 2)):
            text = frames[begin:end]
            if _complete(text, standard_conforming_strings):
                texts.append(text)
        end = frames.find('"', end + 1)
    return texts


_STATEMENT_NUMBER = re.compile(r"([0-9]+)(?:\n|$)")


def sql_function_statement(frames: str, name: str, body: str, scs: bool = True) -> str | None:
    """The statement a ``SQL function "<name>" statement <n>`` frame starting
    ``frames`` ran, if ``name`` is that function's and its ``body`` has one."""
    prefix = f'{_SQL_FUNCTION_FRAME}{name}" statement '
    if not frames.startswith(prefix):
        return None
    number = _STATEMENT_NUMBER.match(frames, len(prefix))
    statements = _split(body, scs)
    if number is None or not 0 < int(number.group(1)) <= len(statements):
        return None
    return statements[int(number.group(1)) - 1].text


def statement_source(
    query: str,
    frames: str,
    *,
    standard_conforming_strings: bool = True,
    sql_functions: Callable[[], Sequence[tuple[str, str]]] = lambda: (),
) -> Source:
    """Where the statement of a firing is: ``frames`` are the trigger's call
    stack below its own frame ("" for a top-level statement, whose text is the
    client's ``query``); ``sql_functions`` lists (name, body) of the
    SQL-language functions whose frame can start ``frames``."""
    scs = standard_conforming_strings
    if not frames:
        return Source((query,), "the client's query text", nested=False)
    summary = _frame_summary(frames)
    if frames.startswith(_SPI_FRAME):
        cut = tuple(spi_texts(frames, standard_conforming_strings=scs))
        problem = None if cut else f"where its text ends in the call stack ({summary}) is unclear"
        return Source(cut, "the statement text its call stack shows", True, True, problem)
    if frames.startswith(_SQL_FUNCTION_FRAME):
        found = [sql_function_statement(frames, n, b, scs) for n, b in sql_functions()]
        bodies = tuple(t for t in dict.fromkeys(found) if t is not None)
        problem = None if bodies else f"the body of the function of {summary} was not found"
        where = f"the statement of {summary}"
        return Source(bodies, where, True, first_wins=False, problem=problem)
    return Source((), "", True, problem=f"its call stack ({summary}) does not show its text")


# --- Capture ----------------------------------------------------------------


class _NotFound(Unsupported):
    """The firing's statement is not in its source text."""


@dataclass(frozen=True)
class _Firing:
    """One firing of the event trigger, as the handlers see it."""

    tag: str
    source: Source
    search_path: str
    scs: bool
    commands: tuple[Command, ...] = ()
    dropped: tuple[DroppedObject, ...] = ()
    ordinal: int | None = None  # this firing is the n-th (from 0) with its tag in the query

    def message(self, kind: str, identity: str, sql: str) -> dict[str, object]:
        return {
            "v": FORMAT_VERSION,
            "kind": kind,
            "tag": self.tag,
            "identity": identity,
            "search_path": self.search_path,
            "sql": sql,
        }

    def statements(self, identity: str, matches: Callable[[_Statement], bool]) -> list[_Statement]:
        """The statements of the source text with this tag that ``matches`` accepts."""
        source = self.source
        if source.problem is not None:
            raise Unsupported(
                f"the {self.tag} statement for {identity} cannot be replicated: {source.problem}",
                _NESTED_HINT,
            )
        tags = _STATEMENT_TAGS.get(self.tag, (self.tag,))
        found: list[_Statement] = []
        for text in source.texts:
            these = [s for s in _split(text, self.scs) if _tag(s) in tags and matches(s)]
            found.extend(these)
            if these and source.first_wins:
                break
        if not found:
            raise _not_in_source(self.tag, identity, source)
        if not source.first_wins and len({s.text for s in found}) > 1:
            raise self.ambiguous(identity, len(found))
        if not self.scs:
            for stmt in found:
                if any(t.kind in ("str", "nstr") and "\\" in t.value for t in stmt.tokens):
                    raise Unsupported(
                        f"the {self.tag} statement for {identity} has a backslash in a string"
                        " literal while standard_conforming_strings is off",
                        "Write such literals as E'...' strings, or turn"
                        " standard_conforming_strings on.",
                    )
        return found

    def ambiguous(self, identity: str, count: int) -> Unsupported:
        if self.source.nested:
            return Unsupported(
                f"{self.source.where} holds {count} different {self.tag} statements for {identity}",
                "Run each of these statements by an EXECUTE of its own.",
            )
        return Unsupported(
            f"the client's query text holds {count} different {self.tag} statements for {identity}",
            "Send each of these statements as a query of its own.",
        )


# Event trigger tags reported for statements of another tag: CREATE LANGUAGE
# without a handler creates the language's extension.
_STATEMENT_TAGS = {"CREATE EXTENSION": ("CREATE EXTENSION", "CREATE LANGUAGE")}


_NESTED_HINT = (
    "Run the DDL as a plain statement, or from PL/pgSQL (a function, a procedure, a DO"
    " block; static or by EXECUTE)."
)


def _not_in_source(tag: str, identity: str, source: Source) -> Unsupported:
    return _NotFound(f"the {tag} statement for {identity} is not in {source.where}", _NESTED_HINT)


def _create_table(firing: _Firing) -> list[dict[str, object]]:
    tables = [
        c for c in firing.commands if c.command_tag == "CREATE TABLE" and c.object_type == "table"
    ]
    if not tables:
        return []  # CREATE TABLE IF NOT EXISTS that found the table: nothing changed
    if len(tables) > 1:
        raise _unexpected(firing.tag, [c.object_identity for c in tables], f"{len(tables)} tables")
    table = tables[0]
    if _is_temp_schema(table.schema_name):
        return []
    identity = table.object_identity or ""
    parts = _parse_identity(identity)
    if parts is None or len(parts) != 2:
        raise _unexpected(firing.tag, [identity], "a table with no usable identity")
    schema, relname = parts
    path = _parse_search_path(firing.search_path)
    creation_schema = path[0] if path else None

    def target(stmt: _Statement) -> _Name | None:
        i = 1
        temp = False
        while stmt.word(i) in ("global", "local", "temp", "temporary", "unlogged"):
            temp = temp or stmt.word(i) in ("temp", "temporary")
            i += 1
        if not stmt.words_at(i, "table"):
            return None
        i += 1
        if stmt.words_at(i, "if", "not", "exists"):
            i += 3
        name = _parse_name(stmt, i)
        if name is None or temp:
            return None
        if len(name.parts) == 1 and name.parts == (relname,) and schema == creation_schema:
            return name
        # A third part, the database, was checked by the upstream.
        if len(name.parts) in (2, 3) and name.parts[-2:] == (schema, relname):
            return name
        return None

    found = firing.statements(identity, lambda s: target(s) is not None)
    if len({s.text for s in found}) > 1:
        raise firing.ambiguous(identity, len(found))
    stmt = found[0]
    name = target(stmt)
    assert name is not None
    sql = _replace(stmt.text, name.start, name.end, identity)
    return [firing.message("create_table", identity, sql)]


def _object_name(stmt: _Statement) -> _Name | None:
    """The name a CREATE/ALTER/DROP statement acts on (None: unnamed, or not found)."""
    found = _verb_object(stmt)
    if found is None:
        return None
    i = found[2]
    for skip in (("concurrently",), ("if", "not", "exists"), ("if", "exists"), ("only",)):
        if stmt.words_at(i, *skip):
            i += len(skip)
    if stmt.word(i) == "on":
        return None  # CREATE INDEX ON t: the index has no name in the text
    return _parse_name(stmt, i)


def _names(name: _Name, identity: str | None) -> bool:
    """Whether ``name`` (as written) can be the object whose identity is given."""
    parts = _parse_identity(identity)
    if parts is None:
        return False
    if len(name.parts) == 1:
        return name.parts[-1] == parts[-1]
    return name.parts[-2:] == parts[-2:]


# Words the replay leaves out: they cannot run in the applier's transaction
# and do not change the result.
_NOT_IN_A_TRANSACTION = {"CREATE INDEX": "concurrently", "DROP INDEX": "concurrently"}


def _without_word(stmt: _Statement, word: str) -> str:
    """The statement without ``word`` among its first tokens (and the space after it)."""
    text = stmt.text
    toks = stmt.tokens
    for k in reversed(range(min(6, len(toks) - 1))):
        if toks[k].kind == "ident" and toks[k].value == word:
            text = text[: toks[k].start] + text[toks[k + 1].start :]
    return text


def _replay(firing: _Firing) -> list[dict[str, object]]:
    """Replay the statement itself, under the upstream's effective search_path.

    Downstream, the same schemas in the same order resolve every name the
    statement holds (tables, types, functions in defaults...) to the same
    objects as upstream, and create new ones in the same schema.
    """
    mine = [c for c in firing.commands if c.command_tag == firing.tag]
    if not mine:
        return []  # IF NOT EXISTS that found the object: nothing changed
    identities = [c.object_identity for c in mine]
    # GRANT and ALTER DEFAULT PRIVILEGES report only the kind of their objects
    identity = ", ".join(
        dict.fromkeys(c.object_identity or (c.object_type or "?").lower() for c in mine)
    )

    def matches(stmt: _Statement) -> bool:
        name = _object_name(stmt)
        if name is None:
            return True
        moved = _moved_to(stmt)
        return any(_names(name, i) or (moved is not None and moved(i)) for i in identities)

    # A top-level query's only statement of the tag is the one (some name the
    # object differently: an index by its table); nested text is checked more
    # tightly: every candidate cut of a call stack frame must name the object.
    nested = firing.source.nested
    every = firing.statements(identity, matches if nested else lambda s: True)
    found = every if len({s.text for s in every}) == 1 else [s for s in every if matches(s)]
    if len({s.text for s in found}) != 1:
        # Statements of a multi-statement query run, and fire, in order.
        k = firing.ordinal
        if k is None or k >= len(every) or not matches(every[k]):
            raise firing.ambiguous(identity, len(every))
        found = [every[k]]
    stmt = found[0]
    word = _NOT_IN_A_TRANSACTION.get(firing.tag)
    sql = _without_word(stmt, word) if word else stmt.text
    kind = firing.tag.lower().replace(" ", "_")
    return [firing.message(kind, identity, sql)]


def _moved_to(stmt: _Statement) -> Callable[[str | None], bool] | None:
    """For ... RENAME TO name and ... SET SCHEMA name (whose reported identity is
    the new one): whether an identity is where the statement moves its object."""
    for i, word in stmt.top_level_words():
        if (word, stmt.word(i + 1)) not in (("rename", "to"), ("set", "schema")):
            continue
        new = _parse_name(stmt, i + 2)
        if new is None or new.next != len(stmt.tokens) or len(new.parts) != 1:
            return None
        if word == "rename":
            return lambda identity: _names(new, identity)
        old = _object_name(stmt)
        return lambda identity: (
            old is not None
            and (parts := _parse_identity(identity)) is not None
            and parts[-2:] == (new.parts[0], old.parts[-1])
        )
    return None


_CONSTRAINT_WORDS = frozenset(["constraint", "primary", "unique", "check", "foreign", "exclude"])


def added_columns(statement: str) -> list[str]:
    """The columns an ALTER TABLE statement adds (ADD [COLUMN] [IF NOT EXISTS] name)."""
    stmts = _split(statement)
    if not stmts:
        return []
    stmt = stmts[0]
    names: list[str] = []
    for i, word in stmt.top_level_words():
        if word != "add":
            continue
        k = i + 1
        if stmt.word(k) == "column":
            k += 1
        elif stmt.word(k) in _CONSTRAINT_WORDS:
            continue
        if stmt.words_at(k, "if", "not", "exists"):
            k += 3
        if k < len(stmt.tokens) and stmt.tokens[k].kind in ("ident", "qident"):
            names.append(_truncate(stmt.tokens[k].value))
    return names


# Words after GRANT ... ON that name another kind of object than a relation.
_NOT_RELATIONS = frozenset(
    [
        "all", "database", "domain", "foreign", "function", "language", "large",
        "parameter", "procedure", "routine", "schema", "tablespace", "type",
    ]
)  # fmt: skip


def granted_relations(statement: str) -> list[tuple[str | None, ...]]:
    """The tables or sequences a GRANT or REVOKE names one by one, as written
    (GRANT reports no identity, so the capture looks for temporary ones)."""
    stmts = _split(statement)
    if not stmts or stmts[0].word(0) not in ("grant", "revoke"):
        return []
    stmt = stmts[0]
    on = next((i for i, w in stmt.top_level_words() if w == "on"), None)
    if on is None:
        return []
    i = on + 1
    if stmt.word(i) in _NOT_RELATIONS:
        return []
    if stmt.word(i) in ("table", "sequence"):
        i += 1
    names: list[tuple[str | None, ...]] = []
    while (name := _parse_name(stmt, i)) is not None:
        names.append(name.parts)
        if not stmt.is_op(name.next, ","):
            break
        i = name.next + 1
    return names


def _drop(firing: _Firing) -> list[dict[str, object]]:
    """DROP of the objects the statement named, by their identities."""
    originals = [d for d in firing.dropped if d.original]
    kept = [d for d in originals if not _is_temp(d)]
    identities = list(dict.fromkeys(d.object_identity or "" for d in kept))
    identity = ", ".join(identities)
    if firing.tag == "DROP TABLE":
        for obj in kept:
            if obj.object_type != "table" or not obj.object_identity:
                raise _unexpected(firing.tag, [obj.object_identity], f"a {obj.object_type}")
    if not all(identities):
        raise _unexpected(firing.tag, identities, "an object with no identity")
    path = _parse_search_path(firing.search_path)

    def names_object(name: _Name, obj: DroppedObject) -> bool:
        if obj.schema_name is None:  # a schema
            return name.parts == (obj.object_name,)
        if len(name.parts) == 1:
            visible = _is_temp(obj) or obj.schema_name in path
            return visible and name.parts[0] == obj.object_name
        if len(name.parts) not in (2, 3) or name.parts[-1] != obj.object_name:
            return False
        schema = name.parts[-2]
        return schema == obj.schema_name or (_is_temp(obj) and _is_temp_schema(schema))

    def target(stmt: _Statement) -> bool | None:
        """CASCADE or not, if the statement drops exactly these objects; else None."""
        found = _verb_object(stmt)
        if found is None:
            return None
        i = found[2]
        if stmt.word(i) == "concurrently":
            i += 1
        if_exists = stmt.words_at(i, "if", "exists")
        i += 2 * if_exists
        names: list[_Name] = []
        while True:
            name = _parse_name(stmt, i)
            if name is None:
                return None
            names.append(name)
            if not stmt.is_op(name.next, ","):
                break
            i = name.next + 1
        rest = [stmt.word(k) for k in range(names[-1].next, len(stmt.tokens))]
        if rest not in ([], ["cascade"], ["restrict"]):
            return None
        if not all(any(names_object(n, o) for n in names) for o in originals):
            return None
        if not if_exists and not all(any(names_object(n, o) for o in originals) for n in names):
            return None
        return rest == ["cascade"]

    def cascade(stmt: _Statement) -> bool | None:
        """Whether the statement ends in CASCADE (None: not a DROP of this kind)."""
        last = stmt.word(len(stmt.tokens) - 1)
        return last == "cascade" if len(stmt.tokens) > 2 else None

    # Routines, operators, casts and objects named "x ON table" are written with
    # their arguments: their statements are told apart by the identities only.
    named = firing.tag not in _DROPPED_WITH_ARGUMENTS
    found = firing.statements(identity, lambda s: (target if named else cascade)(s) is not None)
    cascades = {(target if named else cascade)(s) for s in found}
    if len(cascades) > 1:
        raise firing.ambiguous(identity, len(found))
    sql = _drop_sql(firing.tag, identities) + (" CASCADE" if cascades.pop() else "")
    return [firing.message(firing.tag.lower().replace(" ", "_"), identity, sql)]


# DROPs whose statement names the objects with more than a name.
_DROPPED_WITH_ARGUMENTS = frozenset(
    f"DROP {kind}"
    for kind in (
        "FUNCTION", "PROCEDURE", "ROUTINE", "AGGREGATE", "OPERATOR", "OPERATOR CLASS",
        "OPERATOR FAMILY", "CAST", "TRIGGER", "RULE", "POLICY", "USER MAPPING", "TRANSFORM",
    )
)  # fmt: skip


def _drop_sql(tag: str, identities: list[str]) -> str:
    """DROP of objects by their identities, in the statement's own syntax."""
    if tag == "DROP USER MAPPING":
        # identity: "<user> on server <server>"; the statement: FOR <user> SERVER <server>
        user, _, server = identities[0].partition(" on server ")
        return f"DROP USER MAPPING FOR {user} SERVER {server}"
    if tag == "DROP TRANSFORM":
        # identity: "for <type> on language <language>"
        type_, _, language = identities[0].removeprefix("for ").rpartition(" on language ")
        return f"DROP TRANSFORM FOR {type_} LANGUAGE {language}"
    return f"{tag} {', '.join(identities)}"


# Kinds of objects whose CREATE, ALTER and DROP are replayed as the statement
# (DROPs by identity). CREATE TABLE rewrites the table's name; the rest run as sent.
_REPLAYED_KINDS = (
    "TABLE", "INDEX", "SCHEMA", "TYPE", "DOMAIN", "SEQUENCE",
    "FUNCTION", "PROCEDURE", "ROUTINE", "AGGREGATE", "OPERATOR", "OPERATOR CLASS",
    "OPERATOR FAMILY", "CAST", "COLLATION", "CONVERSION", "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "VIEW",
    "MATERIALIZED VIEW", "TRIGGER", "RULE", "POLICY", "STATISTICS", "EXTENSION",
    "LANGUAGE", "ACCESS METHOD", "TRANSFORM", "FOREIGN DATA WRAPPER", "SERVER",
    "USER MAPPING", "FOREIGN TABLE", "PUBLICATION",
)  # fmt: skip
# Commands that are no CREATE, ALTER or DROP, replayed as sent.
_REPLAYED_OTHERS = (
    "GRANT", "REVOKE", "ALTER DEFAULT PRIVILEGES", "COMMENT", "SECURITY LABEL",
    "REFRESH MATERIALIZED VIEW",
)  # fmt: skip

# Handlers by command tag: those for ddl_command_end, then those for sql_drop.
_COMMAND_HANDLERS: dict[str, Callable[[_Firing], list[dict[str, object]]]] = {
    **{f"{verb} {kind}": _replay for kind in _REPLAYED_KINDS for verb in ("CREATE", "ALTER")},
    **{tag: _replay for tag in _REPLAYED_OTHERS},
    "CREATE TABLE": _create_table,
}
_DROP_HANDLERS: dict[str, Callable[[_Firing], list[dict[str, object]]]] = {
    f"DROP {kind}": _drop for kind in _REPLAYED_KINDS
}
SUPPORTED_HINT = (
    "Replicated DDL: CREATE, ALTER and DROP of every object a database holds, GRANT,"
    " REVOKE, COMMENT, SECURITY LABEL and REFRESH MATERIALIZED VIEW; run other DDL on"
    " each side yourself."
)
_SUBSCRIPTION_HINT = (
    "A subscription is one node's own: create, alter or drop it on each side yourself."
)
_HINTS = {
    "CREATE TABLE AS": "Create the table with CREATE TABLE, then fill it with INSERT ... SELECT.",
    "SELECT INTO": "Create the table with CREATE TABLE, then fill it with INSERT ... SELECT.",
    "IMPORT FOREIGN SCHEMA": (
        "The downstream would read the remote schema again, maybe another one: create the"
        " foreign tables with CREATE FOREIGN TABLE."
    ),
    "DROP OWNED": (
        "DROP OWNED also revokes the role's privileges on the cluster's databases and"
        " tablespaces: drop its objects with DROP and revoke its privileges with REVOKE."
    ),
    "CREATE SUBSCRIPTION": _SUBSCRIPTION_HINT,
    "ALTER SUBSCRIPTION": _SUBSCRIPTION_HINT,
    "DROP SUBSCRIPTION": _SUBSCRIPTION_HINT,
}
# Refused even when they report no object (DROP OWNED may only revoke).
_REFUSED = frozenset(["DROP OWNED"])
_LARGE_OBJECT_HINT = (
    "Large objects are not replicated (their rows are in pg_largeobject, a catalog):"
    " run this on each side yourself."
)


# --- Replay downstream -----------------------------------------------------------

# Statements whose OPTIONS may hold secrets (a user mapping's password).
_SECRET_KINDS = ("USER MAPPING", "SERVER", "FOREIGN DATA WRAPPER")


def redacted(tag: str | None, statement: str) -> str:
    """``statement`` as errors and logs may show it: the string literals of
    foreign-data DDL (OPTIONS (password '...')) replaced by '***'."""
    if not tag or not any(tag.endswith(kind) for kind in _SECRET_KINDS):
        return statement
    out: list[str] = []
    pos = 0
    for tok in _scan(statement):
        if tok.kind in ("str", "estr", "nstr", "ustr", "dollar"):
            out.append(statement[pos : tok.start] + "'***'")
            pos = tok.end
    return "".join(out) + statement[pos:]


# What to do when a replayed statement fails for want of something, by SQLSTATE.
_WAYS_OUT = {
    "42704": (  # undefined_object: a role, mostly
        "roles are cluster-wide and not replicated: create it downstream (see the"
        ' README\'s "Roles"); the worker retries'
    ),
    "58P01": (  # undefined_file: an extension's control file
        "install the extension's files on the downstream server (its package, of"
        " the upstream's version); the worker retries"
    ),
}


def way_out(sqlstate: str | None, message: str) -> str:
    """How to get past a replayed statement's error (empty when nothing to say)."""
    if sqlstate == "42704" and not message.startswith("role "):
        return ""
    return _WAYS_OUT.get(sqlstate or "", "")


# Settings under which a statement's literals are read ('2024-01-01'::timestamptz
# in a view or a default is stored as the instant it meant upstream): the worker
# sets the upstream's around the replay (pgfollower.enqueue() stores them in the
# queue row's ``settings``, a JSON object). Any role may set them for itself.
LITERAL_SETTINGS = ("DateStyle", "IntervalStyle", "TimeZone")


# --- Materialized views ---------------------------------------------------------
#
# The rows CREATE MATERIALIZED VIEW and REFRESH write are not in the change stream
# (a materialized view is not published): the downstream computes them again from
# its own tables. That gives other rows when the query reads what the downstream
# does not have at that point (a write committed while the upstream REFRESH ran,
# an unlogged table, a volatile function), so the upstream queues a digest of the
# rows after the statement and the worker compares it with its own.

MATVIEW_DIGEST_KIND = "matview_digest"
_MATVIEW_TAGS = ("CREATE MATERIALIZED VIEW", "REFRESH MATERIALIZED VIEW")
# The text form of rows the same on both sides: the worker's session settings.
DIGEST_SETTINGS = {
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "TimeZone": "UTC",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "xmloption": "content",
}


def matview_digest_query(relation: str) -> str:
    """The query giving ``rows:md5`` of a materialized view's rows, in any order.

    ``relation`` is a quoted, qualified name, the view's identity.
    """
    return (
        "SELECT pg_catalog.count(*)::pg_catalog.text OPERATOR(pg_catalog.||) ':'"
        " OPERATOR(pg_catalog.||) COALESCE(pg_catalog.md5(pg_catalog.string_agg("
        "h, '' ORDER BY h COLLATE \"C\")), '') AS digest"
        f" FROM (SELECT pg_catalog.md5(t::pg_catalog.text) AS h FROM {relation} t) s"
    )


def populated_matviews(tag: str, commands: Sequence[Command]) -> list[str]:
    """The materialized views whose rows a command of ``tag`` wrote (maybe none)."""
    if tag not in _MATVIEW_TAGS:
        return []
    return [
        c.object_identity
        for c in commands
        if c.command_tag == tag and c.object_type == "materialized view" and c.object_identity
    ]


def matview_digest(
    firing_tag: str, identity: str, search_path: str, digest: str
) -> dict[str, object]:
    """The record that makes the worker check a materialized view's rows."""
    return {
        "v": FORMAT_VERSION,
        "kind": MATVIEW_DIGEST_KIND,
        "tag": firing_tag,
        "identity": identity,
        "search_path": search_path,
        "sql": digest,
    }


def _unsupported(tag: str, objects: Sequence[str | None]) -> Unsupported:
    names = list(dict.fromkeys(o for o in objects if o))
    message = (
        f"{tag} on {', '.join(names)} cannot be replicated"
        if names
        else f"{tag} cannot be replicated"
    )
    return Unsupported(message, _HINTS.get(tag, SUPPORTED_HINT))


def _unexpected(tag: str, objects: Sequence[str | None], what: str) -> Unsupported:
    """The event trigger reported something the handler for ``tag`` cannot replay."""
    names = ", ".join(o for o in objects if o) or "?"
    return Unsupported(
        f"{tag} on {names} cannot be replicated: the event trigger reported {what}",
        "Please report this to the pg_follower_py developers.",
    )


def _is_temp(obj: DroppedObject) -> bool:
    return obj.is_temporary or _is_temp_schema(obj.schema_name)


def capture_command(
    tag: str,
    query: str,
    commands: Sequence[Command],
    search_path: str,
    *,
    frames: str = "",
    standard_conforming_strings: bool = True,
    ordinal: int | None = None,
    sql_functions: Callable[[], Sequence[tuple[str, str]]] = lambda: (),
) -> list[dict[str, object]]:
    """The messages to emit for one ddl_command_end firing.

    ``frames`` is the trigger's call stack below its own frame: empty for a
    top-level statement (its text is then in the client's ``query``), else the
    statement ran inside a function, a procedure or a DO block and its text is
    recovered from the frames (see ``statement_source``, which ``sql_functions``
    is passed to). ``standard_conforming_strings`` is the setting the text was
    parsed with. ``ordinal`` counts the earlier firings with this tag for the
    same client query (they run in order): it tells apart statements naming the
    same object in a top-level query string.
    Raises ``Unsupported`` when the command cannot be replicated exactly.
    """
    if tag in _REFUSED:
        raise _unsupported(tag, [c.object_identity for c in commands])
    if tag.startswith("DROP "):
        return []  # the sql_drop firing handles what was dropped
    relevant = [c for c in commands if not c.in_extension]
    large = [c for c in relevant if (c.object_type or "").lower() == "large object"]
    if large:
        names = ", ".join(f"large object {c.object_identity or ''}".strip() for c in large)
        raise Unsupported(f"{tag} on {names} cannot be replicated", _LARGE_OBJECT_HINT)
    if commands and not relevant:
        return []  # the extension script runs again downstream with CREATE EXTENSION
    if tag == "ALTER EXTENSION" and all(
        c.object_type == "extension" and c.object_identity == EXTENSION for c in relevant
    ):
        return []  # each node updates its own pg_follower_py (README: "Upgrades")
    if relevant and all(_is_temp_schema(c.schema_name) for c in relevant):
        return []
    handler = _COMMAND_HANDLERS.get(tag)
    if handler is None:
        raise _unsupported(tag, [c.object_identity for c in relevant])
    source = statement_source(
        query, frames, standard_conforming_strings=standard_conforming_strings,
        sql_functions=sql_functions,
    )  # fmt: skip
    firing = _Firing(
        tag,
        source,
        search_path,
        standard_conforming_strings,
        commands=tuple(relevant),
        ordinal=None if source.nested else ordinal,
    )
    return handler(firing)


def capture_drop(
    tag: str,
    query: str,
    dropped: Sequence[DroppedObject],
    search_path: str,
    *,
    frames: str = "",
    standard_conforming_strings: bool = True,
    sql_functions: Callable[[], Sequence[tuple[str, str]]] = lambda: (),
) -> list[dict[str, object]]:
    """The messages to emit for one sql_drop firing (parameters as ``capture_command``).

    Only what DROP statements name is replicated: objects dropped along with them are
    dropped again downstream by the same statement, and the other commands that drop
    something (ALTER TABLE ... DROP COLUMN, ...) are handled at ddl_command_end.
    A DROP run by the script of CREATE/ALTER EXTENSION is the extension's own
    (its DROPs, unlike its other DDL, are not marked ``in_extension``).
    """
    if not tag.startswith("DROP "):
        return []
    kept = [d for d in dropped if d.original and not _is_temp(d)]
    if not kept:
        return []
    scs = standard_conforming_strings
    extension = _runs_extension_script(query, scs)
    if extension and not frames and all(_tag(s) != tag for s in _split(query, scs)):
        return []  # a DROP of the extension's script: it runs downstream too
    handler = _DROP_HANDLERS.get(tag)
    if handler is None:
        raise _unsupported(tag, [d.object_identity for d in kept])
    source = statement_source(query, frames, standard_conforming_strings=scs,
                              sql_functions=sql_functions)  # fmt: skip
    firing = _Firing(tag, source, search_path, scs, dropped=tuple(dropped))
    if extension and source.nested:
        identities = ", ".join(dict.fromkeys(d.object_identity or "?" for d in kept))
        raise Unsupported(
            f"{tag} of {identities} ran inside a function or a DO block while the client's"
            f" query runs {extension}, whose script's own DROPs are not replicated",
            f"Run {extension} as a query of its own.",
        )
    try:
        return handler(firing)
    except _NotFound:
        if extension:
            return []  # a DROP of the extension's script: it runs downstream too
        raise


def _runs_extension_script(query: str, scs: bool) -> str | None:
    """CREATE EXTENSION or ALTER EXTENSION (or CREATE LANGUAGE, which creates
    the language's extension) if the client's query runs one."""
    tags = {_tag(s) for s in _split(query, scs)}
    scripts = ("CREATE EXTENSION", "ALTER EXTENSION", "CREATE LANGUAGE")
    return next((t for t in scripts if t in tags), None)
