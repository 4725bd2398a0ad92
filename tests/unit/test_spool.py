"""Tests of pg_follower.spool (and the reader's Inbox), on synthetic and captured streams."""

from __future__ import annotations

import json
import os
import queue
import struct
import threading
from pathlib import Path

import pytest

from pg_follower.errors import FollowerError, ProtocolError
from pg_follower.source.decode import (
    Begin,
    Commit,
    Decoder,
    Insert,
    LogicalMessage,
    Message,
    Relation,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
)
from pg_follower.source.spool import Spool, SpooledTransaction, apply_spooled, spool_directory
from pg_follower.source.stream import Inbox

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pgoutput"


def change(xid: int, text: str) -> bytes:
    """A streamed Insert into relation 1 of one text column, made by ``xid``."""
    value = text.encode()
    return b"I" + struct.pack("!IIcHcI", xid, 1, b"N", 1, b"t", len(value)) + value


def commit_of(xid: int, lsn: int = 0x1000) -> StreamCommit:
    return StreamCommit(xid=xid, flags=0, commit_lsn=lsn, end_lsn=lsn + 0x30, commit_ts=42)


def texts(txn: SpooledTransaction) -> list[str]:
    out = []
    for m in txn.messages():
        if isinstance(m, Insert):
            value = m.new[0]
            assert isinstance(value, bytes)
            out.append(value.decode())
    return out


def block(spool: Spool, xid: int, first: bool, changes: list[tuple[int, str]]) -> None:
    spool.start(xid, first)
    for subxid, text in changes:
        spool.write(subxid, change(subxid, text))
    spool.stop()


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    directory = tmp_path / "spool" / "pgf_1_2_3"
    return Spool(directory)


def test_rollback_to_savepoint_cuts_the_subtransaction_and_its_children(spool: Spool) -> None:
    top, s1, s2, s3 = 100, 101, 102, 103
    block(spool, top, True, [(top, "t1"), (s1, "s1a")])
    # s2 is a child of s1, its first change in the next block.
    block(spool, top, False, [(s2, "s2a"), (s1, "s1b"), (s2, "s2b")])
    spool.abort(top, s2)  # ROLLBACK TO the savepoint of s2: s2 and what follows
    block(spool, top, False, [(s1, "s1c"), (s3, "s3a"), (top, "t2")])
    spool.abort(top, 999)  # a subtransaction with no change: nothing to do
    txn = spool.commit(commit_of(top))
    assert texts(txn) == ["t1", "s1a", "s1c", "s3a", "t2"]
    assert txn.size == txn.path.stat().st_size


def test_aborting_a_parent_cuts_its_released_children_in_either_order(spool: Spool) -> None:
    top, parent, child = 200, 201, 202
    for order in ([child, parent], [parent, child]):
        xid = top + len(spool.open_xids)
        block(spool, xid, True, [(xid, "t1"), (child, "c1")])  # child's change first
        block(spool, xid, False, [(parent, "p1"), (child, "c2"), (xid, "t2")])
        for sub in order:  # an abort record lists the children, then the parent
            spool.abort(xid, sub)
        block(spool, xid, False, [(xid, "t3")])
        assert texts(spool.commit(commit_of(xid))) == ["t1", "t3"]


def test_interleaved_transactions_commit_in_any_order(spool: Spool) -> None:
    a, b = 300, 400
    block(spool, a, True, [(a, "a1"), (a + 1, "a-sub")])
    block(spool, b, True, [(b, "b1")])
    spool.abort(a, a + 1)
    block(spool, a, False, [(a, "a2")])
    block(spool, b, False, [(b, "b2"), (b + 1, "b-sub")])
    spool.abort(b, b + 1)
    assert spool.open_xids == [a, b]
    second = spool.commit(commit_of(b, 0x2000))
    first = spool.commit(commit_of(a, 0x3000))
    assert spool.open_xids == []
    assert texts(second) == ["b1", "b2"]
    assert texts(first) == ["a1", "a2"]


def test_aborted_transaction_leaves_nothing(spool: Spool) -> None:
    block(spool, 500, True, [(500, "x"), (501, "y")])
    spool.abort(500, 500)
    assert spool.open_xids == []
    assert list(spool.directory.iterdir()) == []
    spool.abort(500, 500)  # unknown by now: ignored
    with pytest.raises(ProtocolError, match="never streamed"):
        spool.commit(commit_of(500))


def test_replay_is_begin_changes_commit(spool: Spool) -> None:
    block(spool, 600, True, [(600, "only")])
    txn = spool.commit(commit_of(600, 0x5000))
    msgs = list(txn.messages())
    assert msgs[0] == Begin(final_lsn=0x5000, commit_ts=42, xid=600)
    assert isinstance(msgs[1], Insert)
    assert msgs[1].xid == 600
    assert msgs[2] == Commit(flags=0, commit_lsn=0x5000, end_lsn=0x5030, commit_ts=42)


def test_apply_spooled_deletes_the_file_and_stops_on_request(spool: Spool) -> None:
    block(spool, 700, True, [(700, "a"), (700, "b")])
    txn = spool.commit(commit_of(700))
    applied: list[Message] = []

    def apply(m: Message) -> Commit | None:
        applied.append(m)
        return m if isinstance(m, Commit) else None

    committed = apply_spooled(txn, apply, threading.Event())
    assert committed is not None and committed.end_lsn == 0x1030
    assert [type(m) for m in applied] == [Begin, Insert, Insert, Commit]
    assert not txn.path.exists()

    block(spool, 701, True, [(701, "a")])
    txn = spool.commit(commit_of(701))
    stopped = threading.Event()
    stopped.set()
    assert apply_spooled(txn, apply, stopped) is None
    assert not txn.path.exists()


def test_blocks_must_be_well_formed(spool: Spool) -> None:
    with pytest.raises(ProtocolError, match="first block never came"):
        spool.start(800, False)
    with pytest.raises(ProtocolError, match="outside of a stream block"):
        spool.write(800, change(800, "x"))
    spool.start(800, True)
    with pytest.raises(ProtocolError, match="inside the block of xid 800"):
        spool.start(801, True)
    with pytest.raises(ProtocolError, match="inside a stream block"):
        spool.abort(800, 800)
    spool.stop()
    with pytest.raises(ProtocolError, match="second first Stream Start"):
        spool.start(800, True)


def test_a_new_spool_wipes_leftovers_and_close_deletes_everything(tmp_path: Path) -> None:
    directory = tmp_path / "base" / "sub"
    directory.mkdir(parents=True, mode=0o700)
    (tmp_path / "base").chmod(0o700)
    (directory / "123.changes").write_bytes(b"left by a killed worker")
    spool = Spool(directory)
    assert list(directory.iterdir()) == []
    block(spool, 900, True, [(900, "a")])
    committed = spool.commit(commit_of(900))
    block(spool, 901, True, [(901, "b")])
    spool.close()
    assert not directory.exists()
    assert not committed.path.exists()
    spool.close()  # twice is harmless


def test_spool_directory_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_FOLLOWER_SPOOL_DIR", str(tmp_path / "spools"))
    directory = spool_directory("pgf_1_2_3")
    assert directory == tmp_path / "spools" / "pgf_1_2_3"
    Spool(directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    os.chmod(directory.parent, 0o755)
    with pytest.raises(FollowerError, match="not a directory private to this user"):
        Spool(directory)
    os.chmod(directory.parent, 0o700)
    directory.rmdir()
    directory.symlink_to(tmp_path)
    with pytest.raises(FollowerError, match="not a directory private"):
        Spool(directory)


def test_captured_stream_with_rollback_to_savepoint(spool: Spool) -> None:
    """Feed a stream captured from PostgreSQL 15 the way the reader does."""
    doc = json.loads((FIXTURES / "stream_commit.json").read_text())
    decoder = Decoder()
    relations: list[Relation] = []
    commit: StreamCommit | None = None
    for raw in (bytes.fromhex(m["hex"]) for m in doc["messages"]):
        subxid = decoder.stream_change_xid(raw)
        if subxid is not None:
            spool.write(subxid, raw)
            continue
        msg = decoder.decode(raw)
        if isinstance(msg, StreamStart):
            spool.start(msg.xid, msg.first_segment)
        elif isinstance(msg, StreamStop):
            spool.stop()
        elif isinstance(msg, StreamAbort):
            spool.abort(msg.xid, msg.subxid)
        elif isinstance(msg, StreamCommit):
            commit = msg
    assert commit is not None
    msgs = list(spool.commit(commit).messages())
    assert isinstance(msgs[0], Begin) and msgs[0].final_lsn == commit.commit_lsn
    assert isinstance(msgs[-1], Commit) and msgs[-1].end_lsn == commit.end_lsn
    relations = [m for m in msgs if isinstance(m, Relation)]
    assert relations and all(r.name == "big" for r in relations)
    values = [m.new[1] for m in msgs if isinstance(m, Insert)]
    assert values, "the fixture keeps some inserts"
    # The rows inserted in the rolled back savepoint ('b...') are gone; the rest stays.
    assert not [v for v in values if isinstance(v, bytes) and v.startswith(b"b")]
    assert values[0] == b"a1" and values[-1] == b"c1210"
    assert any(isinstance(m, LogicalMessage) and m.content == b"streamed" for m in msgs)


def test_inbox_is_bounded_by_items_and_bytes() -> None:
    inbox = Inbox(max_items=3, max_bytes=100)
    inbox.put(Begin(0, 0, 1), 60)
    with pytest.raises(queue.Full):
        inbox.put(Begin(0, 0, 2), 60, timeout=0)  # 120 bytes would be over
    assert inbox.get(timeout=0) == Begin(0, 0, 1)
    inbox.put(Begin(0, 0, 3), 500)  # bigger than the budget: goes through, alone
    with pytest.raises(queue.Full):
        inbox.put(Begin(0, 0, 4), 1, timeout=0)
    inbox.get(timeout=0)
    for i in range(3):
        inbox.put(Begin(0, 0, i), 1)
    with pytest.raises(queue.Full):
        inbox.put(Begin(0, 0, 9), 1, timeout=0)
    assert len(inbox) == 3
    for _ in range(3):
        inbox.get()
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0)


def test_a_transaction_not_spooled_is_never_read_as_if_it_were(spool: Spool) -> None:
    """The one applied while open is not written: its commit says so, and
    reading its changes fails rather than giving an empty transaction."""
    xid = 1200
    spool.start(xid, True, spooled=False)
    with pytest.raises(ProtocolError, match="not spooled"):
        spool.write(xid, change(xid, "x"))
    spool.stop()
    spool.start(xid, False)  # later blocks keep the first block's choice
    spool.stop()
    spool.abort(xid, xid + 1)  # a subtransaction's rollback: nothing to cut
    txn = spool.commit(commit_of(xid, 0x7000))
    assert not txn.complete and txn.size == 0 and not txn.path.exists()
    with pytest.raises(ProtocolError, match="was not spooled"):
        list(txn.messages())
    applied: list[Message] = []

    def apply(message: Message) -> None:
        applied.append(message)

    apply_spooled(txn, apply, threading.Event(), with_changes=False)
    assert [type(m) for m in applied] == [Begin, Commit]
    assert isinstance(applied[0], Begin) and applied[0].final_lsn == 0x7000
