"""Decoding of the streaming replication CopyData framing and of pgoutput messages."""

from __future__ import annotations

import enum
import re
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, TypeAlias

from pg_follower.errors import ProtocolError

# -- time and LSN helpers ---------------------------------------------------

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_UNIX_S: Final = 946_684_800
_PG_EPOCH_UNIX_US: Final = _PG_EPOCH_UNIX_S * 1_000_000
_MAX_LSN: Final = 0xFFFF_FFFF_FFFF_FFFF
# As strict as pg_lsn's input function (int() alone would take signs, "_" and spaces).
_LSN_RE: Final = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


def pg_timestamp_to_datetime(us: int) -> datetime:
    """An aware UTC datetime from microseconds since 2000-01-01 UTC."""
    return PG_EPOCH + timedelta(microseconds=us)


def pg_timestamp_now() -> int:
    """The current time as microseconds since 2000-01-01 UTC."""
    return time.time_ns() // 1000 - _PG_EPOCH_UNIX_US


def lsn_to_str(lsn: int) -> str:
    """Format an LSN the way PostgreSQL prints it: ``16/B374D848``."""
    if not 0 <= lsn <= _MAX_LSN:
        raise ValueError(f"LSN out of range: {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFF_FFFF:X}"


def str_to_lsn(text: str) -> int:
    """Parse ``X/Y`` (hex, as PostgreSQL prints it); raise ValueError if malformed."""
    m = _LSN_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid LSN {text!r}: expected X/Y with 1 to 8 hex digits each")
    return (int(m[1], 16) << 32) | int(m[2], 16)


# -- CopyData framing -------------------------------------------------------

_XLOGDATA: Final = struct.Struct("!QQq")
_KEEPALIVE: Final = struct.Struct("!QqB")
_STATUS_UPDATE: Final = struct.Struct("!cQQQqB")


@dataclass(slots=True)  # not frozen: made once a row, and frozen costs 4x
class XLogData:
    """A 'w' CopyData message: WAL data (here one pgoutput message) and its position."""

    data_start: int
    wal_end: int
    send_time: int
    payload: bytes


@dataclass(slots=True)
class Keepalive:
    """A 'k' primary keepalive message."""

    wal_end: int
    send_time: int
    reply_requested: bool


def parse_copy_data(buf: bytes | bytearray | memoryview) -> XLogData | Keepalive:
    """Parse one CopyData message received from a walsender."""
    if not buf:
        raise ProtocolError("empty CopyData message")
    kind = buf[0]
    if kind == 0x77:  # 'w'
        if len(buf) < 1 + _XLOGDATA.size:
            raise ProtocolError(f"XLogData message too short ({len(buf)} bytes)")
        data_start, wal_end, send_time = _XLOGDATA.unpack_from(buf, 1)
        # A bytes copy: values sliced from it are bytes, and it outlives the caller's buffer.
        return XLogData(data_start, wal_end, send_time, bytes(buf[1 + _XLOGDATA.size :]))
    if kind == 0x6B:  # 'k'
        if len(buf) != 1 + _KEEPALIVE.size:
            raise ProtocolError(f"keepalive message of {len(buf)} bytes, expected 18")
        wal_end, send_time, reply = _KEEPALIVE.unpack_from(buf, 1)
        return Keepalive(wal_end, send_time, bool(reply))
    raise ProtocolError(f"unknown CopyData message type {_show_byte(kind)} at offset 0")


def standby_status_update(
    write_lsn: int,
    flush_lsn: int,
    apply_lsn: int,
    reply: bool = False,
    now: float | None = None,
) -> bytes:
    """The 'r' message telling the walsender how far we got; ``now`` is a Unix time."""
    clock = pg_timestamp_now() if now is None else round((now - _PG_EPOCH_UNIX_S) * 1_000_000)
    return _STATUS_UPDATE.pack(b"r", write_lsn, flush_lsn, apply_lsn, clock, reply)


# -- pgoutput messages --------------------------------------------------------


class UnchangedToast(enum.Enum):
    """Type of the UNCHANGED_TOAST sentinel (an enum so that ``is`` narrows types)."""

    UNCHANGED_TOAST = "u"

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST: Final = UnchangedToast.UNCHANGED_TOAST
"""A TOASTed value that the update did not change, so the server did not send it."""


@dataclass(frozen=True, slots=True)
class BinaryValue:
    """A column value in the type's binary send format (the ``binary`` option)."""

    data: bytes


Value: TypeAlias = bytes | BinaryValue | UnchangedToast | None
"""One column of tuple data: text-format bytes (not decoded), binary, unchanged, or NULL."""

Row: TypeAlias = tuple[Value, ...]


@dataclass(slots=True)
class Begin:
    """'B': start of a transaction."""

    final_lsn: int
    commit_ts: int
    xid: int


@dataclass(slots=True)
class Commit:
    """'C': end of a transaction."""

    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts: int


@dataclass(frozen=True, slots=True)
class Origin:
    """'O': the transaction was replayed here from the named replication origin."""

    origin_lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a Relation message."""

    flags: int
    name: str
    type_oid: int
    type_modifier: int

    @property
    def is_key(self) -> bool:
        """Whether the column is part of the replica identity."""
        return bool(self.flags & 1)


@dataclass(frozen=True, slots=True)
class Relation:
    """'R': the shape of a table, sent before its first change and again after DDL.

    ``namespace`` is what the server sends: an empty string stands for pg_catalog.
    ``replica_identity`` is one of 'd' (default), 'n' (nothing), 'f' (full), 'i' (index).
    """

    xid: int | None
    relation_id: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Type:
    """'Y': a user-defined type used by a column of a following Relation."""

    xid: int | None
    type_oid: int
    namespace: str
    name: str


@dataclass(slots=True)  # not frozen: made once a row, and frozen costs 4x
class Insert:
    """'I': a new row."""

    xid: int | None
    relation_id: int
    new: Row


@dataclass(slots=True)
class InsertRun:
    """Consecutive 'I' messages for one relation, as lines of COPY's text format.

    Not a pgoutput message: the reader's shortcut for bulk inserts, which
    skips a Python object per row and per value (``copy_line``).
    """

    relation_id: int
    lines: list[bytes]
    nbytes: int


@dataclass(slots=True)
class RowRun:
    """Consecutive 'U' messages with no old tuple, or 'D' messages by key, for
    one relation: their tuples only.

    Not a pgoutput message: the reader's shortcut for bulk UPDATEs and
    DELETEs, as ``InsertRun`` is for inserts (``row_change``). Each row means
    ``Update(None, relation_id, None, None, row)`` or ``Delete(None,
    relation_id, "K", row)``.
    """

    relation_id: int
    deleting: bool
    rows: list[Row]
    nbytes: int


@dataclass(slots=True)  # not frozen: made once a row, and frozen costs 4x
class Update:
    """'U': a changed row; ``old`` comes only if the key changed ('K') or identity is FULL ('O')."""

    xid: int | None
    relation_id: int
    old_kind: str | None
    old: Row | None
    new: Row


@dataclass(slots=True)  # not frozen: made once a row, and frozen costs 4x
class Delete:
    """'D': a removed row, identified by its key columns ('K') or all columns ('O')."""

    xid: int | None
    relation_id: int
    old_kind: str
    old: Row


@dataclass(frozen=True, slots=True)
class Truncate:
    """'T': one TRUNCATE statement over one or more tables."""

    xid: int | None
    cascade: bool
    restart_identity: bool
    relation_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    """'M': a message from pg_logical_emit_message."""

    xid: int | None
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True, slots=True)
class StreamStart:
    """'S': the changes up to the next Stream Stop belong to in-progress transaction ``xid``."""

    xid: int
    first_segment: bool


@dataclass(frozen=True, slots=True)
class StreamStop:
    """'E': end of a block of streamed changes."""


@dataclass(frozen=True, slots=True)
class StreamCommit:
    """'c': a streamed transaction committed."""

    xid: int
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts: int


@dataclass(frozen=True, slots=True)
class StreamAbort:
    """'A': a streamed (sub)transaction aborted; ``subxid == xid`` for the whole transaction.

    ``abort_lsn`` and ``abort_ts`` are only sent by newer protocol versions (4, PostgreSQL 16).
    """

    xid: int
    subxid: int
    abort_lsn: int | None
    abort_ts: int | None


Message: TypeAlias = (
    Begin
    | Commit
    | Origin
    | Relation
    | Type
    | Insert
    | InsertRun
    | RowRun
    | Update
    | Delete
    | Truncate
    | LogicalMessage
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
)

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_U64: Final = struct.Struct("!Q")
_BEGIN: Final = struct.Struct("!QqI")
_COMMIT: Final = struct.Struct("!BQQq")
_COLUMN_TYPE: Final = struct.Struct("!Ii")
_TRUNCATE: Final = struct.Struct("!IB")
_MESSAGE: Final = struct.Struct("!BQ")
_STREAM_START: Final = struct.Struct("!IB")
_STREAM_COMMIT: Final = struct.Struct("!IBQQq")
_STREAM_ABORT: Final = struct.Struct("!II")
_STREAM_ABORT_V4: Final = struct.Struct("!IIQq")

_TRUNCATE_CASCADE: Final = 1
_TRUNCATE_RESTART_IDENTITY: Final = 2

_NAMES: Final = {
    ord("B"): "Begin",
    ord("C"): "Commit",
    ord("O"): "Origin",
    ord("R"): "Relation",
    ord("Y"): "Type",
    ord("I"): "Insert",
    ord("U"): "Update",
    ord("D"): "Delete",
    ord("T"): "Truncate",
    ord("M"): "Logical Message",
    ord("S"): "Stream Start",
    ord("E"): "Stream Stop",
    ord("c"): "Stream Commit",
    ord("A"): "Stream Abort",
}

# Messages that carry the (sub)transaction's xid first when inside a stream block.
_XID_PREFIXED: Final = frozenset(b"RYIUDTM")


def _show_byte(b: int) -> str:
    return f"{chr(b)!r} (0x{b:02x})" if 0x20 <= b < 0x7F else f"0x{b:02x}"


def _cstring(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.find(0, pos)
    if end < 0:
        raise ProtocolError(f"unterminated string at offset {pos}")
    return buf[pos:end].decode(), end + 1


def _tuple(buf: bytes, pos: int) -> tuple[Row, int]:
    (count,) = _U16.unpack_from(buf, pos)
    pos += 2
    values: list[Value] = []
    append = values.append
    for _ in range(count):
        kind = buf[pos]
        if kind == 0x74:  # 't'
            (length,) = _U32.unpack_from(buf, pos + 1)
            pos += 5
            append(buf[pos : pos + length])
            pos += length
        elif kind == 0x6E:  # 'n'
            append(None)
            pos += 1
        elif kind == 0x75:  # 'u'
            append(UNCHANGED_TOAST)
            pos += 1
        elif kind == 0x62:  # 'b'
            (length,) = _U32.unpack_from(buf, pos + 1)
            pos += 5
            append(BinaryValue(buf[pos : pos + length]))
            pos += length
        else:
            raise ProtocolError(f"unknown tuple data kind {_show_byte(kind)} at offset {pos}")
    # Slicing past the end does not fail: check once that the values were all there.
    if pos > len(buf):
        raise ProtocolError(f"tuple data runs past the end of the message ({len(buf)} bytes)")
    return tuple(values), pos


def text_tuple(buf: bytes, pos: int) -> tuple[tuple[str | UnchangedToast | None, ...], int]:
    """``_tuple`` for text-format values, decoded to ``str`` as they are read
    (a source's consumers want text; one pass instead of two)."""
    (count,) = _U16.unpack_from(buf, pos)
    pos += 2
    values: list[str | UnchangedToast | None] = []
    append = values.append
    unpack = _U32.unpack_from
    for _ in range(count):
        kind = buf[pos]
        if kind == 0x74:  # 't'
            (length,) = unpack(buf, pos + 1)
            pos += 5
            append(buf[pos : pos + length].decode())
            pos += length
        elif kind == 0x6E:  # 'n'
            append(None)
            pos += 1
        elif kind == 0x75:  # 'u'
            append(UNCHANGED_TOAST)
            pos += 1
        else:
            raise ProtocolError(
                f"tuple data kind {_show_byte(kind)} at offset {pos}: text expected"
            )
    if pos > len(buf):
        raise ProtocolError(f"tuple data runs past the end of the message ({len(buf)} bytes)")
    return tuple(values), pos


TextRow: TypeAlias = tuple[str | UnchangedToast | None, ...]


def text_change(buf: bytes) -> tuple[int, int, TextRow | None, TextRow | None]:
    """An Insert, Update or Delete outside a stream block, with text values:
    (kind byte, relation id, old tuple or None, new tuple or None)."""
    try:
        return _text_change(buf)
    except (IndexError, struct.error) as exc:
        raise ProtocolError(
            f"pgoutput {_NAMES.get(buf[0], 'message')} of {len(buf)} bytes is cut short"
        ) from exc


def _text_change(buf: bytes) -> tuple[int, int, TextRow | None, TextRow | None]:
    kind = buf[0]
    (relation_id,) = _U32.unpack_from(buf, 1)
    old: TextRow | None = None
    new: TextRow | None = None
    pos = 5
    marker = buf[pos]
    if kind != 0x49 and marker in (0x4B, 0x4F):  # 'K' key or 'O' old row
        old, pos = text_tuple(buf, pos + 1)
        marker = buf[pos] if pos < len(buf) else 0
    if kind != 0x44:  # Insert and Update end with 'N' and the new tuple
        if marker != 0x4E:
            raise ProtocolError(
                f"pgoutput {_NAMES[kind]}: {_show_byte(marker)} where 'N' was expected"
            )
        new, pos = text_tuple(buf, pos + 1)
    elif old is None:
        raise ProtocolError("pgoutput Delete without a key or old tuple")
    return kind, relation_id, old, new


_COPY_SPECIAL: Final = re.compile(rb"[\\\t\n\r]")
_COPY_ESCAPES: Final = ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"))
_COPY_NULL: Final = b"\\N"
_INSERT_HEAD: Final = struct.Struct("!IcH")  # relation id, 'N', number of columns


def copy_escape(value: bytes) -> bytes:
    """A text value as a field of COPY's text format."""
    for raw, escaped in _COPY_ESCAPES:
        if raw in value:
            value = value.replace(raw, escaped)
    return value


def copy_line(values: Sequence[Value]) -> bytes:
    """A decoded row as one line of COPY's text format."""
    try:
        # The common row: text values, no NULL, nothing to escape; all in C.
        if _COPY_SPECIAL.search(b"".join(values)) is None:  # type: ignore[arg-type]
            return b"\t".join(values) + b"\n"  # type: ignore[arg-type]
    except TypeError:  # a NULL (None) or a non-text value
        pass
    return b"\t".join([_copy_field(v) for v in values]) + b"\n"


def _copy_field(value: Value) -> bytes:
    if value is None:
        return _COPY_NULL
    if not isinstance(value, bytes):
        raise ProtocolError(f"unexpected value {value!r} in an inserted row")
    return copy_escape(value)


def row_change(buf: bytes, in_stream: bool, start: int = 0) -> tuple[int, Row] | None:
    """A 'U' message with no old tuple or a 'D' message by key (from ``start``
    to the end of ``buf``): its relation and its one tuple. None for any other
    shape, or a malformed message (which ``decode_message`` then reports)."""
    pos = start + (5 if in_stream else 1)
    try:
        (relation_id,) = _U32.unpack_from(buf, pos)
        if buf[pos + 4] != (_NEW_TUPLE if buf[start] == _UPDATE else _KEY_TUPLE):
            return None
        row, end = _tuple(buf, pos + 5)
    except (struct.error, IndexError, ProtocolError):
        return None
    return (relation_id, row) if end == len(buf) else None


_UPDATE: Final = ord("U")
_NEW_TUPLE: Final = ord("N")
_KEY_TUPLE: Final = ord("K")


def insert_copy_line(buf: bytes, in_stream: bool, start: int = 0) -> tuple[int, bytes]:
    """An 'I' message's relation and its new row as one line of COPY's text format.

    The message runs from ``start`` (so a caller need not copy it out of an
    XLogData frame) to the end of ``buf``. The same checks as
    ``decode_message``; NULLs become ``\\N``, special characters are escaped.
    Raises ProtocolError for what COPY cannot take (binary values) or a
    malformed message.
    """
    pos = start + (5 if in_stream else 1)
    try:
        relation_id, new, count = _INSERT_HEAD.unpack_from(buf, pos)
        if new != b"N":
            raise ProtocolError(f"expected 'N' (new tuple), got {_show_byte(buf[pos + 4])}")
        pos += 7
        parts: list[bytes] = []
        append = parts.append
        unpack = _U32.unpack_from
        special = False
        for _ in range(count):
            kind = buf[pos]
            if kind == 0x74:  # 't'
                end = pos + 5 + unpack(buf, pos + 1)[0]
                append(buf[pos + 5 : end])
                pos = end
            elif kind == 0x6E:  # 'n'
                append(_COPY_NULL)
                special = True
                pos += 1
            else:
                raise ProtocolError(
                    f"tuple data kind {_show_byte(kind)} at offset {pos} in an inserted row"
                )
    except (struct.error, IndexError) as exc:
        raise ProtocolError(
            f"pgoutput Insert message is truncated or malformed ({len(buf) - start} bytes): {exc}"
        ) from exc
    if pos != len(buf):
        raise ProtocolError(
            f"pgoutput Insert message has {len(buf) - pos} unexpected trailing bytes"
            f" (or runs past the end) at offset {pos}"
        )
    # No special byte anywhere in the message (its binary lengths included:
    # a false alarm only costs the careful path) means none in the values.
    if special or (
        _COPY_SPECIAL.search(buf, start) is not None and _COPY_SPECIAL.search(b"".join(parts))
    ):
        parts = [p if p is _COPY_NULL else copy_escape(p) for p in parts]
    return relation_id, b"\t".join(parts) + b"\n"


def _begin(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    return Begin(*_BEGIN.unpack_from(buf, pos)), pos + _BEGIN.size


def _commit(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    return Commit(*_COMMIT.unpack_from(buf, pos)), pos + _COMMIT.size


def _origin(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    (origin_lsn,) = _U64.unpack_from(buf, pos)
    name, pos = _cstring(buf, pos + 8)
    return Origin(origin_lsn, name), pos


def _relation(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    (relation_id,) = _U32.unpack_from(buf, pos)
    namespace, pos = _cstring(buf, pos + 4)
    name, pos = _cstring(buf, pos)
    replica_identity = chr(buf[pos])
    (ncols,) = _U16.unpack_from(buf, pos + 1)
    pos += 3
    columns = []
    for _ in range(ncols):
        flags = buf[pos]
        colname, pos = _cstring(buf, pos + 1)
        type_oid, type_modifier = _COLUMN_TYPE.unpack_from(buf, pos)
        pos += _COLUMN_TYPE.size
        columns.append(Column(flags, colname, type_oid, type_modifier))
    rel = Relation(xid, relation_id, namespace, name, replica_identity, tuple(columns))
    return rel, pos


def _type(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    (type_oid,) = _U32.unpack_from(buf, pos)
    namespace, pos = _cstring(buf, pos + 4)
    name, pos = _cstring(buf, pos)
    return Type(xid, type_oid, namespace, name), pos


def _expect(buf: bytes, pos: int, allowed: bytes, what: str) -> str:
    kind = buf[pos]
    if kind not in allowed:
        raise ProtocolError(f"expected {what}, got {_show_byte(kind)} at offset {pos}")
    return chr(kind)


def _insert(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    (relation_id,) = _U32.unpack_from(buf, pos)
    _expect(buf, pos + 4, b"N", "'N' (new tuple)")
    new, pos = _tuple(buf, pos + 5)
    return Insert(xid, relation_id, new), pos


def _update(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    (relation_id,) = _U32.unpack_from(buf, pos)
    pos += 4
    kind = _expect(buf, pos, b"KON", "'K', 'O' or 'N' (tuple kind)")
    old_kind: str | None = None
    old: Row | None = None
    if kind != "N":
        old_kind = kind
        old, pos = _tuple(buf, pos + 1)
        _expect(buf, pos, b"N", "'N' (new tuple)")
    new, pos = _tuple(buf, pos + 1)
    return Update(xid, relation_id, old_kind, old, new), pos


def _delete(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    (relation_id,) = _U32.unpack_from(buf, pos)
    old_kind = _expect(buf, pos + 4, b"KO", "'K' or 'O' (old tuple kind)")
    old, pos = _tuple(buf, pos + 5)
    return Delete(xid, relation_id, old_kind, old), pos


def _truncate(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    nrels, options = _TRUNCATE.unpack_from(buf, pos)
    pos += _TRUNCATE.size
    relation_ids = struct.unpack_from(f"!{nrels}I", buf, pos)
    msg = Truncate(
        xid,
        cascade=bool(options & _TRUNCATE_CASCADE),
        restart_identity=bool(options & _TRUNCATE_RESTART_IDENTITY),
        relation_ids=relation_ids,
    )
    return msg, pos + 4 * nrels


def _message(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    flags, lsn = _MESSAGE.unpack_from(buf, pos)
    prefix, pos = _cstring(buf, pos + _MESSAGE.size)
    (length,) = _U32.unpack_from(buf, pos)
    pos += 4
    content = buf[pos : pos + length]
    if len(content) != length:
        raise ProtocolError(f"message content runs past the end ({len(buf)} bytes)")
    return LogicalMessage(xid, bool(flags & 1), lsn, prefix, content), pos + length


def _stream_start(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    stream_xid, first = _STREAM_START.unpack_from(buf, pos)
    return StreamStart(stream_xid, bool(first)), pos + _STREAM_START.size


def _stream_stop(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    return StreamStop(), pos


def _stream_commit(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    return StreamCommit(*_STREAM_COMMIT.unpack_from(buf, pos)), pos + _STREAM_COMMIT.size


def _stream_abort(buf: bytes, pos: int, xid: int | None) -> tuple[Message, int]:
    if len(buf) - pos >= _STREAM_ABORT_V4.size:
        return StreamAbort(*_STREAM_ABORT_V4.unpack_from(buf, pos)), pos + _STREAM_ABORT_V4.size
    stream_xid, subxid = _STREAM_ABORT.unpack_from(buf, pos)
    return StreamAbort(stream_xid, subxid, None, None), pos + _STREAM_ABORT.size


_DECODERS: Final[dict[int, Callable[[bytes, int, int | None], tuple[Message, int]]]] = {
    ord("B"): _begin,
    ord("C"): _commit,
    ord("O"): _origin,
    ord("R"): _relation,
    ord("Y"): _type,
    ord("I"): _insert,
    ord("U"): _update,
    ord("D"): _delete,
    ord("T"): _truncate,
    ord("M"): _message,
    ord("S"): _stream_start,
    ord("E"): _stream_stop,
    ord("c"): _stream_commit,
    ord("A"): _stream_abort,
}


def decode_message(buf: bytes, *, in_stream: bool = False) -> Message:
    """Decode one pgoutput message; ``in_stream`` says whether it is inside a stream block."""
    if not buf:
        raise ProtocolError("empty pgoutput message")
    kind = buf[0]
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"unknown pgoutput message type {_show_byte(kind)} at offset 0")
    try:
        if in_stream and kind in _XID_PREFIXED:
            (xid,) = _U32.unpack_from(buf, 1)
            msg, end = decoder(buf, 5, xid)
        else:
            msg, end = decoder(buf, 1, None)
    except ProtocolError as exc:
        raise ProtocolError(f"pgoutput {_NAMES[kind]} message: {exc}") from None
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"pgoutput {_NAMES[kind]} message is truncated or malformed ({len(buf)} bytes): {exc}"
        ) from exc
    if end != len(buf):
        # Extra bytes mean a protocol version or message layout we do not know.
        raise ProtocolError(
            f"pgoutput {_NAMES[kind]} message has {len(buf) - end} unexpected trailing"
            f" bytes at offset {end}"
        )
    return msg


class Decoder:
    """Decodes a session's pgoutput messages in order, following stream blocks.

    ``stream_xid`` is the xid of the open stream block, None outside of one.
    """

    __slots__ = ("stream_xid",)

    def __init__(self) -> None:
        self.stream_xid: int | None = None

    @property
    def in_stream(self) -> bool:
        """Whether the next message is inside a Stream Start/Stop block."""
        return self.stream_xid is not None

    def reset(self) -> None:
        """Forget any open stream block (the replication session restarted)."""
        self.stream_xid = None

    def stream_change_xid(self, buf: bytes) -> int | None:
        """The xid a change inside the open stream block carries, without decoding the rest.

        That is the xid of the (sub)transaction that made the change. None
        outside a stream block and for messages that carry no xid (the
        stream's own Start, Stop, Commit and Abort, or Origin). A change read
        this way leaves the decoder's state as it was, as ``decode`` would.
        """
        if self.stream_xid is None or not buf or buf[0] not in _XID_PREFIXED:
            return None
        if len(buf) < 5:
            raise ProtocolError(
                f"pgoutput {_NAMES[buf[0]]} message in a stream block is too short"
                f" ({len(buf)} bytes) to hold an xid"
            )
        xid: int = _U32.unpack_from(buf, 1)[0]
        return xid

    def decode(self, buf: bytes) -> Message:
        """Decode the next message of the session."""
        msg = decode_message(buf, in_stream=self.stream_xid is not None)
        if isinstance(msg, StreamStart):
            if self.stream_xid is not None:
                raise ProtocolError(
                    f"Stream Start for xid {msg.xid} inside the stream block of xid"
                    f" {self.stream_xid}"
                )
            self.stream_xid = msg.xid
        elif isinstance(msg, StreamStop):
            if self.stream_xid is None:
                raise ProtocolError("Stream Stop outside of a stream block")
            self.stream_xid = None
        return msg
