"""Streamed transactions on disk until they commit: one file per upstream transaction.

With ``streaming 'on'`` the upstream sends a transaction that outgrows its
``logical_decoding_work_mem`` while it still runs, in Stream Start ... Stream
Stop blocks, several transactions' blocks interleaved, then a Stream Commit or
a Stream Abort. The reader writes each change of a block, as the raw pgoutput
bytes behind a 4-byte length, to the file of the block's top-level xid, so a
transaction of any size costs no memory. The file's offset of each
subtransaction's first change is kept: a subtransaction's Stream Abort cuts
the file back there. At Stream Commit the file is handed to the applier, which
replays it between a synthesized Begin and Commit as one downstream
transaction (``apply_spooled``).

The spool lives only as long as the replication session: the upstream sends
an unfinished transaction again from its first change after a reconnection,
so a new session starts with an empty directory.

The one transaction applied while it is still open (``parallel_apply.py``)
is not written at all (``start(..., spooled=False)``): writing every change
of it cost the reader a sixth of its time. Its ``SpooledTransaction`` says
``complete=False``; should it still be needed (applying it while open had
to stop), the session starts over and the upstream sends it again, from its
first change, to be spooled this time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from pg_follower.errors import FollowerError, ProtocolError
from pg_follower.source.decode import Begin, Commit, Message, StreamCommit, decode_message

logger = logging.getLogger("pg_follower.spool")

SPOOL_DIR_ENV: Final = "PG_FOLLOWER_SPOOL_DIR"
_LENGTH: Final = struct.Struct("!I")
_BUFFER: Final = 1 << 20  # bytes of file buffer, writing or reading


def spool_directory(subscription: str) -> Path:
    """The spool directory of one subscription (named by its slot, unique per machine).

    Under ``$PG_FOLLOWER_SPOOL_DIR`` if set, else under
    ``<temp dir>/pg_follower_py-<uid>``.
    """
    base = os.environ.get(SPOOL_DIR_ENV) or os.path.join(
        tempfile.gettempdir(), f"pg_follower_py-{os.geteuid()}"
    )
    return Path(base) / subscription


def _private_dir(path: Path) -> None:
    """Make ``path`` a directory only we can use, or refuse one someone else could."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    st = path.lstat()
    # The default base is in a shared temp dir: never follow a planted symlink
    # or write into a directory another user controls.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise FollowerError(
            f"spool directory {path} is not a directory private to this user (uid"
            f" {os.geteuid()}, mode 0700): remove it, or set {SPOOL_DIR_ENV} elsewhere"
        )


@dataclass(slots=True)
class _OpenTransaction:
    """A streamed transaction not committed or aborted yet."""

    xid: int
    path: Path
    spooled: bool = True  # False: its changes are not written (applied while open)
    size: int = 0
    # subxact xid -> offset of its first change; offsets grow in insertion order.
    subxacts: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpooledTransaction:
    """A committed streamed transaction, waiting in its file to be applied."""

    commit: StreamCommit
    path: Path
    size: int
    complete: bool = True  # False: not spooled, only applied while open upstream

    def records(self) -> Iterator[bytes]:
        """The spooled pgoutput messages, in the order they arrived."""
        if not self.complete:
            # Never half a transaction: the caller has the upstream send it again.
            raise ProtocolError(f"streamed transaction {self.commit.xid} was not spooled")
        end = self.size
        with open(self.path, "rb", buffering=_BUFFER) as f:
            read = f.read
            pos = 0
            while pos < end:
                head = read(4)
                if len(head) != 4:
                    raise ProtocolError(f"spool file {self.path} ends inside a record at {pos}")
                (length,) = _LENGTH.unpack(head)
                payload = read(length)
                if len(payload) != length:
                    raise ProtocolError(f"spool file {self.path} ends inside a record at {pos}")
                pos += 4 + length
                yield payload

    def messages(self, with_changes: bool = True) -> Iterator[Message]:
        """The transaction as the applier takes it: Begin, the changes, Commit
        (without the changes: for one the applier is known to skip)."""
        c = self.commit
        # A Begin's final_lsn is the commit record's LSN: the applier skips a
        # transaction below its recorded position by it, streamed or not.
        yield Begin(final_lsn=c.commit_lsn, commit_ts=c.commit_ts, xid=c.xid)
        if with_changes:
            for payload in self.records():
                yield decode_message(payload, in_stream=True)
        yield Commit(
            flags=c.flags, commit_lsn=c.commit_lsn, end_lsn=c.end_lsn, commit_ts=c.commit_ts
        )

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def apply_spooled(
    txn: SpooledTransaction,
    apply: Callable[[Message], Commit | None],
    stop: threading.Event,
    with_changes: bool = True,
) -> Commit | None:
    """Apply a spooled transaction through ``apply``; its Commit, or None if stopped first.

    Reads one message at a time: memory does not grow with the transaction.
    ``with_changes`` False: its Begin and Commit only, for one applied before.
    """
    logger.info(
        "applying streamed transaction %d (%.1f MB spooled)", txn.commit.xid, txn.size / 1e6
    )
    committed: Commit | None = None
    try:
        for message in txn.messages(with_changes):
            if stop.is_set():
                return None  # the caller rolls back what was applied so far
            committed = apply(message)
    finally:
        txn.discard()
    return committed


class Spool:
    """The streamed transactions of one replication session, in one directory.

    Used by the stream reader only; a committed transaction's file then
    belongs to whoever applies it (``SpooledTransaction``).
    """

    def __init__(self, directory: Path):
        self.directory = directory
        _private_dir(directory.parent)
        _private_dir(directory)
        self._wipe()  # files of an earlier session, maybe of a killed worker
        self._open: dict[int, _OpenTransaction] = {}
        self._current: _OpenTransaction | None = None
        self._file: BinaryIO | None = None

    @property
    def open_xids(self) -> list[int]:
        """The xids of the transactions streamed and not finished, oldest first."""
        return list(self._open)

    def _wipe(self) -> None:
        for entry in self.directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    # -- stream blocks ---------------------------------------------------------
    def start(self, xid: int, first_segment: bool, spooled: bool = True) -> None:
        """Stream Start: the following changes belong to transaction ``xid``.

        ``spooled`` (taken at its first block) False: its changes are not
        written, and ``write`` refuses them.
        """
        if self._current is not None:
            raise ProtocolError(
                f"Stream Start for xid {xid} inside the block of xid {self._current.xid}"
            )
        txn = self._open.get(xid)
        if first_segment:
            if txn is not None:
                raise ProtocolError(f"a second first Stream Start for xid {xid}")
            txn = _OpenTransaction(xid, self.directory / f"{xid}.changes", spooled)
            self._open[xid] = txn
            txn.path.unlink(missing_ok=True)
        elif txn is None:
            # The upstream streams a transaction from its first change in
            # every session: we cannot have missed its beginning.
            raise ProtocolError(f"Stream Start continues xid {xid}, whose first block never came")
        self._current = txn
        if txn.spooled:
            self._file = open(txn.path, "ab", buffering=_BUFFER)  # noqa: SIM115 (closed in stop)

    def write(self, subxid: int, payload: bytes) -> None:
        """Spool one change of the open block, made by (sub)transaction ``subxid``."""
        txn, f = self._current, self._file
        if txn is None:
            raise ProtocolError("a streamed change outside of a stream block")
        if f is None:
            raise ProtocolError(f"a change of streamed transaction {txn.xid}, which is not spooled")
        if subxid != txn.xid and subxid not in txn.subxacts:
            txn.subxacts[subxid] = txn.size
        f.write(_LENGTH.pack(len(payload)) + payload)
        txn.size += 4 + len(payload)

    def stop(self) -> None:
        """Stream Stop: the block is over; its file is closed until the next one."""
        if self._file is not None:
            self._file.close()
        self._current = None
        self._file = None

    # -- ends of transactions ----------------------------------------------------
    def abort(self, xid: int, subxid: int) -> None:
        """Stream Abort: drop the whole transaction, or one subtransaction's changes."""
        if self._current is not None:
            raise ProtocolError(f"Stream Abort for xid {xid} inside a stream block")
        txn = self._open.get(xid)
        if txn is None:
            logger.debug("stream abort of unknown transaction %d", xid)
            return
        if subxid == xid:
            del self._open[xid]
            txn.path.unlink(missing_ok=True)
            logger.debug("streamed transaction %d aborted", xid)
            return
        offset = txn.subxacts.get(subxid)
        if offset is None:
            return  # it made no change (or an aborted ancestor's cut took them)
        # Every change after a subtransaction's first one, until it ended,
        # belongs to it or its children: a subtransaction can only be aborted
        # alone while it is open, and aborting its parent later aborts it (and
        # all after it) anyway. So cutting there and forgetting the
        # subtransactions that started later is exact (as PostgreSQL's own
        # apply worker does).
        os.truncate(txn.path, offset)
        txn.size = offset
        txn.subxacts = {s: o for s, o in txn.subxacts.items() if o < offset}
        logger.debug("streamed transaction %d: subtransaction %d aborted", xid, subxid)

    def commit(self, m: StreamCommit) -> SpooledTransaction:
        """Stream Commit: the transaction's file, complete, to be applied."""
        if self._current is not None:
            raise ProtocolError(f"Stream Commit for xid {m.xid} inside a stream block")
        txn = self._open.pop(m.xid, None)
        if txn is None:
            raise ProtocolError(f"Stream Commit for xid {m.xid}, which was never streamed")
        return SpooledTransaction(commit=m, path=txn.path, size=txn.size, complete=txn.spooled)

    def close(self) -> None:
        """End of the session: delete everything, committed files and the directory too."""
        self.stop()
        self._open.clear()
        try:
            self._wipe()
            self.directory.rmdir()  # made again by the next session; none piles up
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("cannot clean the spool directory %s: %s", self.directory, exc)
