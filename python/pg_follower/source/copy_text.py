"""Rows of COPY's text format, decoded (for the snapshot of a source)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_ESCAPE = re.compile(rb"\\(?:[0-7]{1,3}|x[0-9a-fA-F]{1,2}|.)", re.S)
_SIMPLE = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


def _unescape(match: re.Match[bytes]) -> bytes:
    body = match.group(0)[1:]
    if body[:1].isdigit():
        return bytes([int(body, 8) & 0xFF])
    if body[:1] == b"x" and len(body) > 1:
        return bytes([int(body[1:], 16)])
    return _SIMPLE.get(body, body)


def parse_copy_line(line: bytes) -> tuple[str | None, ...]:
    """One line of ``COPY ... TO STDOUT`` text format (no trailing newline kept)."""
    if line.endswith(b"\n"):
        line = line[:-1]
    out: list[str | None] = []
    for field in line.split(b"\t"):
        if field == b"\\N":
            out.append(None)
        elif b"\\" in field:
            out.append(_ESCAPE.sub(_unescape, field).decode())
        else:
            out.append(field.decode())
    return tuple(out)


def parse_copy_lines(chunks: Iterable[bytes]) -> Iterator[tuple[str | None, ...]]:
    """Rows from COPY text output, whatever the chunks' boundaries."""
    rest = b""
    for chunk in chunks:
        data = rest + chunk if rest else chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield parse_copy_line(line)
    if rest:
        yield parse_copy_line(rest)
