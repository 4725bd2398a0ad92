"""Tests of pg_follower.decode, mostly on pgoutput messages captured from PostgreSQL 15."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pg_follower.errors import ProtocolError
from pg_follower.source.decode import (
    UNCHANGED_TOAST,
    Begin,
    BinaryValue,
    Commit,
    Decoder,
    Delete,
    Insert,
    Keepalive,
    LogicalMessage,
    Message,
    Origin,
    Relation,
    Row,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    Type,
    Update,
    XLogData,
    copy_escape,
    decode_message,
    insert_copy_line,
    lsn_to_str,
    parse_copy_data,
    pg_timestamp_now,
    pg_timestamp_to_datetime,
    row_change,
    standby_status_update,
    str_to_lsn,
    text_change,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pgoutput"
PGOUTPUT_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.json") if p.stem != "copydata")

T = TypeVar("T")

# The capture script labels each message with its protocol name.
CLASS_OF_LABEL: dict[str, type[Any]] = {
    "Begin": Begin,
    "Commit": Commit,
    "Origin": Origin,
    "Relation": Relation,
    "Type": Type,
    "Insert": Insert,
    "Update": Update,
    "Delete": Delete,
    "Truncate": Truncate,
    "Message": LogicalMessage,
    "Stream Start": StreamStart,
    "Stream Stop": StreamStop,
    "Stream Commit": StreamCommit,
    "Stream Abort": StreamAbort,
}


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return doc


def raw_messages(name: str) -> list[bytes]:
    return [bytes.fromhex(m["hex"]) for m in load(name)["messages"]]


def decode_all(name: str) -> list[Message]:
    decoder = Decoder()
    msgs = [decoder.decode(raw) for raw in raw_messages(name)]
    assert not decoder.in_stream
    return msgs


def of_type(msgs: list[Message], cls: type[T]) -> list[T]:
    return [m for m in msgs if isinstance(m, cls)]


def one(msgs: list[Message], cls: type[T]) -> T:
    (found,) = of_type(msgs, cls)
    return found


def relation(msgs: list[Message], name: str) -> Relation:
    (rel,) = [m for m in of_type(msgs, Relation) if m.name == name]
    return rel


def kinds(msgs: list[Message]) -> list[type[Any]]:
    return [type(m) for m in msgs]


def check_transaction(msgs: list[Message]) -> None:
    """Begin and Commit frame the transaction and agree on its LSN and time."""
    begin, commit = msgs[0], msgs[-1]
    assert isinstance(begin, Begin)
    assert isinstance(commit, Commit)
    assert begin.final_lsn == commit.commit_lsn
    assert commit.end_lsn > commit.commit_lsn
    assert begin.commit_ts == commit.commit_ts
    assert commit.flags == 0
    assert all(getattr(m, "xid", None) is None for m in msgs[1:-1])


# -- every fixture ------------------------------------------------------------


@pytest.mark.parametrize("name", [*PGOUTPUT_FIXTURES, "copydata"])
def test_fixture_comes_from_postgresql_15(name: str) -> None:
    doc = load(name)
    assert doc["server_version_num"] // 10000 == 15
    assert doc["options"]["proto_version"] == "2"
    assert doc["messages"]


@pytest.mark.parametrize("name", PGOUTPUT_FIXTURES)
def test_fixture_messages_decode_to_their_labelled_type(name: str) -> None:
    decoder = Decoder()
    for item in load(name)["messages"]:
        msg = decoder.decode(bytes.fromhex(item["hex"]))
        label = item["what"].split(",")[0].split(" (")[0]
        assert type(msg) is CLASS_OF_LABEL[label], item


# -- plain transactions -------------------------------------------------------


def test_insert_of_many_types_and_nulls() -> None:
    msgs = decode_all("basic")
    assert kinds(msgs) == [Begin, Relation, Insert, Insert, Commit]
    check_transaction(msgs)
    rel = relation(msgs, "kinds")
    assert rel.namespace == "public"
    assert rel.replica_identity == "d"
    assert rel.xid is None
    assert [c.name for c in rel.columns] == [
        "id", "i8", "t", "n", "b", "ts", "raw", "doc", "arr", "v",
    ]  # fmt: skip
    assert [c.type_oid for c in rel.columns] == [23, 20, 25, 1700, 16, 1184, 17, 3802, 1007, 1043]
    assert [c.is_key for c in rel.columns] == [True] + [False] * 9
    by_name = {c.name: c for c in rel.columns}
    assert by_name["n"].type_modifier == (10 << 16 | 2) + 4  # numeric(10, 2)
    assert by_name["v"].type_modifier == 20 + 4  # varchar(20)
    assert by_name["t"].type_modifier == -1

    full, nulls = of_type(msgs, Insert)
    assert full.relation_id == nulls.relation_id == rel.relation_id
    assert full.new == (
        b"1",
        b"9007199254740993",
        "héllo, wörld".encode(),
        b"12.50",
        b"t",
        b"2024-02-29 12:34:56.789+00",
        b"\\x00ff10",
        b'{"a": [1, 2]}',
        b"{1,NULL,3}",
        b"short",
    )
    assert nulls.new == (b"2", *[None] * 9)


def test_updates_and_delete_with_default_replica_identity() -> None:
    msgs = decode_all("update_delete")
    assert kinds(msgs) == [Begin, Relation, Update, Update, Delete, Commit]
    check_transaction(msgs)
    rel = relation(msgs, "people")
    assert [(c.name, c.is_key) for c in rel.columns] == [
        ("id", True), ("name", False), ("age", False),
    ]  # fmt: skip
    same_key, new_key = of_type(msgs, Update)
    assert same_key.relation_id == rel.relation_id
    assert (same_key.old_kind, same_key.old) == (None, None)
    assert same_key.new == (b"1", b"ann", b"31")
    # A changed key sends the old key columns only; the others come as NULL.
    assert new_key.old_kind == "K"
    assert new_key.old == (b"2", None, None)
    assert new_key.new == (b"20", b"bob", None)
    delete = one(msgs, Delete)
    assert (delete.old_kind, delete.old) == ("K", (b"1", None, None))


@pytest.mark.parametrize("name", PGOUTPUT_FIXTURES)
def test_row_change_shortcut_agrees_with_the_decoder(name: str) -> None:
    """The reader's shortcut takes exactly the plain UPDATEs and the DELETEs by
    key, with the tuple the decoder reads; every other shape is left to it."""
    decoder = Decoder()
    seen = 0
    for item in load(name)["messages"]:
        raw = bytes.fromhex(item["hex"])
        in_stream = decoder.in_stream
        msg = decoder.decode(raw)
        if raw[0] not in b"UD":
            continue
        got = row_change(raw, in_stream)
        if isinstance(msg, Update) and msg.old_kind is None:
            assert got == (msg.relation_id, msg.new)
            seen += 1
        elif isinstance(msg, Delete) and msg.old_kind == "K":
            assert got == (msg.relation_id, msg.old)
            seen += 1
        else:
            assert got is None
        assert row_change(raw[:-1], in_stream) is None  # truncated: the decoder reports it
        # read in place, after an XLogData header
        assert row_change(FRAME + raw, in_stream, len(FRAME)) == got
    if name == "update_delete":
        assert seen == 2


# An XLogData header whose LSNs hold each byte COPY's text format escapes.
FRAME = b"w" + b"\t\n\r\\\x00\x01\x02" + b"\x00" * 16


@pytest.mark.parametrize("name", PGOUTPUT_FIXTURES)
def test_insert_copy_line_is_the_decoded_row_in_copy_text(name: str) -> None:
    """Every inserted row of text values, as COPY's text format reads it back,
    read from the message alone or in place after an XLogData header."""
    decoder = Decoder()
    for item in load(name)["messages"]:
        raw = bytes.fromhex(item["hex"])
        in_stream = decoder.in_stream
        msg = decoder.decode(raw)
        if not isinstance(msg, Insert) or not all(
            v is None or isinstance(v, bytes) for v in msg.new
        ):
            continue
        fields = [b"\\N" if v is None else copy_escape(v) for v in msg.new]
        expected = (msg.relation_id, b"\t".join(fields) + b"\n")
        assert insert_copy_line(raw, in_stream) == expected
        assert insert_copy_line(FRAME + raw, in_stream, len(FRAME)) == expected


def test_replica_identity_full_sends_whole_old_rows() -> None:
    msgs = decode_all("replica_full")
    assert kinds(msgs) == [Begin, Relation, Update, Delete, Commit]
    rel = relation(msgs, "full_ident")
    assert rel.replica_identity == "f"
    assert all(c.is_key for c in rel.columns)
    update = one(msgs, Update)
    assert (update.old_kind, update.old, update.new) == ("O", (b"1", b"one"), (b"1", b"uno"))
    delete = one(msgs, Delete)
    assert (delete.old_kind, delete.old) == ("O", (b"2", None))


def test_truncate_cascade_restart_identity() -> None:
    msgs = decode_all("truncate")
    assert kinds(msgs) == [Begin, Relation, Relation, Truncate, Commit]
    check_transaction(msgs)
    truncate = one(msgs, Truncate)
    assert truncate.cascade
    assert truncate.restart_identity
    assert truncate.xid is None
    # Only parent was named: child comes from CASCADE.
    parent, child = relation(msgs, "parent"), relation(msgs, "child")
    assert truncate.relation_ids == (parent.relation_id, child.relation_id)


def test_unchanged_toast_value() -> None:
    msgs = decode_all("toast")
    assert kinds(msgs) == [Begin, Relation, Update, Commit]
    update = one(msgs, Update)
    assert update.old is None
    assert update.new == (b"1", b"1", UNCHANGED_TOAST)
    assert update.new[2] is UNCHANGED_TOAST
    assert repr(UNCHANGED_TOAST) == "UNCHANGED_TOAST"


def test_logical_messages() -> None:
    msgs = decode_all("messages")
    assert kinds(msgs) == [LogicalMessage, Begin, LogicalMessage, Commit, LogicalMessage]
    check_transaction(msgs[1:4])
    first, in_tx, after_rollback = of_type(msgs, LogicalMessage)
    # Non-transactional messages come as soon as decoded, before their transaction's end.
    assert (first.transactional, first.prefix, first.content) == (False, "fixture", b"\x00\xff")
    assert (in_tx.transactional, in_tx.content) == (True, b"in the transaction")
    assert in_tx.lsn < first.lsn
    # The rolled back transaction's non-transactional message survives; the other does not.
    assert (after_rollback.transactional, after_rollback.content) == (
        False,
        b"survives the rollback",
    )
    assert all(m.xid is None for m in (first, in_tx, after_rollback))


def test_user_defined_type() -> None:
    msgs = decode_all("type")
    assert kinds(msgs) == [Begin, Type, Relation, Insert, Insert, Commit]
    check_transaction(msgs)
    typ = one(msgs, Type)
    assert (typ.namespace, typ.name, typ.xid) == ("public", "mood", None)
    rel = relation(msgs, "moods")
    assert rel.columns[1].name == "feeling"
    assert rel.columns[1].type_oid == typ.type_oid
    assert [i.new for i in of_type(msgs, Insert)] == [(b"1", b"happy"), (b"2", None)]


def test_origin() -> None:
    msgs = decode_all("origin")
    assert kinds(msgs) == [Begin, Origin, Relation, Insert, Commit]
    check_transaction(msgs)
    origin = one(msgs, Origin)
    assert origin.name == "upstream_a"
    assert origin.origin_lsn == str_to_lsn("0/ABCDEF0")
    # The commit time is the one given to pg_replication_origin_xact_setup.
    begin = one(msgs, Begin)
    assert pg_timestamp_to_datetime(begin.commit_ts) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert one(msgs, Insert).new == (b"4", b"dee", b"50")


def test_binary_values() -> None:
    msgs = decode_all("binary")
    assert kinds(msgs) == [Begin, Relation, Insert, Insert, Commit]
    full, nulls = of_type(msgs, Insert)
    values = full.new
    assert all(isinstance(v, BinaryValue) for v in values)
    assert values[0] == BinaryValue(struct.pack("!i", 3))
    assert values[1] == BinaryValue(struct.pack("!q", 42))
    assert values[2] == BinaryValue(b"bin")
    assert values[4] == BinaryValue(b"\x00")
    assert values[5] == BinaryValue(struct.pack("!q", 1_000_000))  # one second after 2000
    assert values[6] == BinaryValue(b"\x01")
    assert values[7] == BinaryValue(b"\x01{}")  # jsonb version 1
    assert nulls.new == (BinaryValue(struct.pack("!i", 4)), *[None] * 9)


# -- streamed transactions ----------------------------------------------------


def stream_blocks(msgs: list[Message]) -> list[list[Message]]:
    """The messages between each Stream Start and its Stream Stop, Start included."""
    blocks: list[list[Message]] = []
    current: list[Message] | None = None
    for msg in msgs:
        if isinstance(msg, StreamStart):
            current = [msg]
        elif isinstance(msg, StreamStop):
            assert current is not None
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(msg)
    return blocks


def test_streamed_transaction_with_aborted_subtransaction() -> None:
    msgs = decode_all("stream_commit")
    starts = of_type(msgs, StreamStart)
    top = starts[0].xid
    assert [s.first_segment for s in starts] == [True] + [False] * (len(starts) - 1)
    assert {s.xid for s in starts} == {top}
    assert not of_type(msgs, Begin)

    # Changes in a stream carry the xid of their (sub)transaction, not the top one.
    blocks = stream_blocks(msgs)
    changes = [m for block in blocks for m in block[1:]]
    assert all(getattr(m, "xid", None) is not None for m in changes)
    abort = one(msgs, StreamAbort)
    assert abort.xid == top
    assert abort.subxid != top
    assert (abort.abort_lsn, abort.abort_ts) == (None, None)
    aborted = [m for m in of_type(changes, Insert) if m.xid == abort.subxid]
    assert aborted
    assert all(m.new[1][:1] == b"b" for m in aborted if isinstance(m.new[1], bytes))

    first_rel = of_type(blocks[0], Relation)[0]
    assert (first_rel.name, first_rel.xid) == ("big", top)
    first_insert = of_type(blocks[0], Insert)[0]
    assert (first_insert.xid, first_insert.new) == (top, (b"1", b"a1"))
    message = one(changes, LogicalMessage)
    assert (message.xid, message.transactional, message.content) == (top, True, b"streamed")
    update = one(changes, Update)
    assert (update.xid, update.new) == (top, (b"1", b"updated"))
    delete = one(changes, Delete)
    assert (delete.xid, delete.old_kind, delete.old) == (top, "K", (b"2", None))

    # After ROLLBACK TO SAVEPOINT the savepoint lives on as a new subtransaction.
    last_insert = of_type(blocks[-1], Insert)[-1]
    assert last_insert.new == (b"1210", b"c1210")
    assert last_insert.xid not in (top, abort.subxid)

    commit = msgs[-1]
    assert isinstance(commit, StreamCommit)
    assert commit.xid == top
    assert commit.end_lsn > commit.commit_lsn
    assert commit.flags == 0


def test_streamed_transaction_rolled_back() -> None:
    msgs = decode_all("stream_abort")
    start = of_type(msgs, StreamStart)[0]
    assert start.first_segment
    inserts = of_type(msgs, Insert)
    assert inserts[0].new == (b"2001", b"d2001")
    assert {i.xid for i in inserts} == {start.xid}
    abort = msgs[-1]
    assert isinstance(abort, StreamAbort)
    assert abort.xid == abort.subxid == start.xid


def test_stream_changes_need_the_decoder_state() -> None:
    raw = raw_messages("stream_commit")
    inserts = [m for m in raw if m[:1] == b"I"]
    msg = decode_message(inserts[0], in_stream=True)
    assert isinstance(msg, Insert)
    with pytest.raises(ProtocolError, match="Insert"):
        decode_message(inserts[0])


def test_decoder_tracks_stream_blocks() -> None:
    decoder = Decoder()
    start = b"S" + struct.pack("!IB", 77, 1)
    assert decoder.decode(start) == StreamStart(77, True)
    assert decoder.in_stream
    assert decoder.stream_xid == 77
    with pytest.raises(ProtocolError, match="inside the stream block of xid 77"):
        decoder.decode(start)
    assert decoder.decode(b"E") == StreamStop()
    assert not decoder.in_stream
    with pytest.raises(ProtocolError, match="Stream Stop outside"):
        decoder.decode(b"E")
    decoder.decode(start)
    decoder.reset()
    assert decoder.stream_xid is None


def test_stream_abort_with_abort_lsn_and_time() -> None:
    msg = decode_message(b"A" + struct.pack("!IIQq", 5, 6, 0x1_0000_0010, 123))
    assert msg == StreamAbort(5, 6, 0x1_0000_0010, 123)


# -- CopyData framing ---------------------------------------------------------


def test_copydata_captured_from_a_walsender() -> None:
    frames = [parse_copy_data(raw) for raw in raw_messages("copydata")]
    keepalives = [f for f in frames if isinstance(f, Keepalive)]
    assert keepalives[-1].reply_requested
    assert not any(k.reply_requested for k in keepalives[:-1])
    decoder = Decoder()
    data = [f for f in frames if isinstance(f, XLogData)]
    msgs = [decoder.decode(f.payload) for f in data]
    assert kinds(msgs) == [Begin, Relation, Insert, Commit]
    check_transaction(msgs)
    begin, commit = data[0], data[-1]
    assert isinstance(msgs[-1], Commit)
    assert commit.data_start == commit.wal_end == msgs[-1].end_lsn
    assert begin.data_start <= msgs[-1].commit_lsn
    assert all(b.send_time <= a.send_time for a, b in zip(frames[1:], frames[:-1], strict=True))
    assert keepalives[-1].wal_end >= commit.wal_end


def test_parse_xlogdata() -> None:
    payload = b"B" + struct.pack("!QqI", 0x20, 7, 42)
    raw = b"w" + struct.pack("!QQq", 0x10, 0x30, 99) + payload
    for buf in (raw, bytearray(raw), memoryview(raw)):
        frame = parse_copy_data(buf)
        assert frame == XLogData(0x10, 0x30, 99, payload)
        assert isinstance(frame, XLogData)
        assert type(frame.payload) is bytes
    assert decode_message(payload) == Begin(0x20, 7, 42)


@pytest.mark.parametrize("reply", [False, True])
def test_parse_keepalive(reply: bool) -> None:
    raw = b"k" + struct.pack("!QqB", 0x1_0000_0000, -5, reply)
    assert parse_copy_data(raw) == Keepalive(0x1_0000_0000, -5, reply)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"", "empty CopyData"),
        (b"x123", r"unknown CopyData message type 'x' \(0x78\)"),
        (b"\x00", "0x00"),
        (b"w" + bytes(23), "XLogData message too short"),
        (b"k" + bytes(16), "keepalive message of 17 bytes"),
        (b"k" + bytes(18), "keepalive message of 19 bytes"),
    ],
)
def test_parse_copy_data_rejects(raw: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_copy_data(raw)


def test_standby_status_update_layout() -> None:
    now = 946_684_800 + 1.5  # 1.5 s after the PostgreSQL epoch
    raw = standby_status_update(0x10, 0x20, 0x30, reply=True, now=now)
    assert len(raw) == 34
    assert struct.unpack("!cQQQqB", raw) == (b"r", 0x10, 0x20, 0x30, 1_500_000, 1)
    raw = standby_status_update(1, 2, 3)
    assert raw[-1] == 0
    (clock,) = struct.unpack_from("!q", raw, 25)
    assert abs(clock - pg_timestamp_now()) < 10_000_000


# -- LSNs and timestamps ------------------------------------------------------


@pytest.mark.parametrize(
    ("lsn", "text"),
    [(0, "0/0"), (0x16_B374D848, "16/B374D848"), (2**64 - 1, "FFFFFFFF/FFFFFFFF")],
)
def test_lsn_round_trip(lsn: int, text: str) -> None:
    assert lsn_to_str(lsn) == text
    assert str_to_lsn(text) == lsn
    assert str_to_lsn(text.lower()) == lsn


@pytest.mark.parametrize(
    "text",
    ["", "12", "1/", "/1", "G/0", "1/2/3", "123456789/0", "-1/0", "+1/0", "1_0/0", " 1/0", "1/0 "],
)
def test_str_to_lsn_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid LSN"):
        str_to_lsn(text)


@pytest.mark.parametrize("lsn", [-1, 2**64])
def test_lsn_to_str_rejects(lsn: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        lsn_to_str(lsn)


def test_pg_timestamp_to_datetime() -> None:
    assert pg_timestamp_to_datetime(0) == datetime(2000, 1, 1, tzinfo=UTC)
    assert pg_timestamp_to_datetime(-1) == datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    ts = pg_timestamp_to_datetime(1_500_000)
    assert ts.tzinfo is UTC
    assert ts.isoformat() == "2000-01-01T00:00:01.500000+00:00"


# -- malformed pgoutput -------------------------------------------------------


def all_fixture_messages() -> list[bytes]:
    return [m for name in PGOUTPUT_FIXTURES for m in raw_messages(name)]


def test_every_truncation_is_a_protocol_error() -> None:
    for name in PGOUTPUT_FIXTURES:
        decoder = Decoder()
        for raw in raw_messages(name):
            in_stream = decoder.in_stream
            decoder.decode(raw)
            for cut in range(len(raw)):
                with pytest.raises(ProtocolError):
                    decode_message(raw[:cut], in_stream=in_stream)


def test_trailing_bytes_are_a_protocol_error() -> None:
    raw = raw_messages("basic")[2]
    with pytest.raises(ProtocolError, match="Insert message has 1 unexpected trailing bytes"):
        decode_message(raw + b"\x00")


MALFORMED = [
    (b"Z", r"unknown pgoutput message type 'Z' \(0x5a\) at offset 0"),
    (b"\xff\x00", "0xff at offset 0"),
    (b"", "empty pgoutput message"),
    (
        b"I" + struct.pack("!IcH", 1, b"N", 1) + b"x",
        r"Insert message: unknown tuple data kind 'x' \(0x78\) at offset 8",
    ),
    (
        b"I" + struct.pack("!IcH", 1, b"K", 0),
        r"Insert message: expected 'N' \(new tuple\), got 'K' \(0x4b\) at offset 5",
    ),
    (
        b"U" + struct.pack("!IcH", 1, b"Q", 0),
        r"Update message: expected 'K', 'O' or 'N' .*'Q' \(0x51\) at offset 5",
    ),
    (b"D" + struct.pack("!IcH", 1, b"N", 0), "Delete message: expected 'K' or 'O'"),
    (
        b"I" + struct.pack("!IcHcI", 1, b"N", 1, b"t", 9) + b"abc",
        "Insert message: tuple data runs past the end",
    ),
    (b"O" + struct.pack("!Q", 1) + b"no terminator", "Origin message: unterminated string"),
    (b"Y" + struct.pack("!I", 1) + b"\xff\x00n\x00", "Type message is truncated or malformed"),
    (
        b"M" + struct.pack("!BQ", 1, 1) + b"p\x00" + struct.pack("!I", 5) + b"abc",
        "Logical Message message: message content runs past the end",
    ),
]


@pytest.mark.parametrize(("raw", "match"), MALFORMED)
def test_malformed_messages(raw: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_message(raw)


def _as_text(row: Row | None) -> tuple[object, ...] | None:
    if row is None:
        return None
    return tuple(v.decode() if isinstance(v, bytes) else v for v in row)


@pytest.mark.parametrize("name", PGOUTPUT_FIXTURES)
def test_text_change_agrees_with_the_decoder(name: str) -> None:
    """The pipeline's one-pass reading of Inserts, Updates and Deletes gives the
    decoder's tuples, as text, for every row change outside a stream block."""
    decoder = Decoder()
    seen = 0
    for item in load(name)["messages"]:
        raw = bytes.fromhex(item["hex"])
        in_stream = decoder.in_stream
        msg = decoder.decode(raw)
        if in_stream or raw[0] not in b"IUD":
            continue
        if any(isinstance(v, BinaryValue) for v in getattr(msg, "new", None) or ()):
            continue
        kind, relation_id, old, new = text_change(raw)
        assert (kind, relation_id) == (raw[0], msg.relation_id)  # type: ignore[union-attr]
        if isinstance(msg, Insert):
            assert (old, new) == (None, _as_text(msg.new))
        elif isinstance(msg, Update):
            assert (old, new) == (_as_text(msg.old), _as_text(msg.new))
        elif isinstance(msg, Delete):
            assert (old, new) == (_as_text(msg.old), None)
        seen += 1
        with pytest.raises(ProtocolError):
            text_change(raw[:-1])
    if name == "update_delete":
        assert seen >= 3
