"""The upstream side: a replication connection, its slot, and the reader thread.

The reader owns the replication connection. It decodes what arrives, hands it
to the applier through a bounded queue and answers keepalives itself, so the
upstream always hears from us however long an apply takes. Transactions the
upstream streams before they commit go to the spool (``spool.py``) and reach
the applier whole, as one item, once committed.
"""

from __future__ import annotations

import logging
import queue
import select
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TypeAlias

import psycopg
from psycopg import pq

from pg_follower import APPLICATION_NAME, INTERNAL_SCHEMA
from pg_follower.errors import ProtocolError, UpstreamError, first_line
from pg_follower.source import conninfo as conninfo_mod
from pg_follower.source.decode import (
    Begin,
    Commit,
    Decoder,
    InsertRun,
    Keepalive,
    Message,
    Relation,
    RowRun,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    XLogData,
    decode_message,
    insert_copy_line,
    lsn_to_str,
    parse_copy_data,
    row_change,
    standby_status_update,
    str_to_lsn,
)
from pg_follower.source.spool import Spool, SpooledTransaction
from pg_follower.source.streamed import StreamedAbort, StreamedChange

logger = logging.getLogger("pg_follower.stream")

# Session settings that make every value's text form the same on both sides
# and read back exactly, whatever the databases or roles set: output styles,
# shortest-exact floats, money in one locale (the same digits both sides), NULL
# in array input, XML content, UTF-8 on the wire, and schema-qualified reg*
# names (as native replication does, with an empty search_path).
STABLE_OUTPUT_OPTIONS = (
    "-c datestyle=ISO,MDY -c intervalstyle=postgres -c extra_float_digits=3"
    " -c timezone=UTC -c bytea_output=hex -c lc_monetary=C -c array_nulls=on"
    " -c xmloption=content -c client_encoding=UTF8 -c search_path=pg_catalog"
)
FEEDBACK_INTERVAL = 1.0
# With streaming, the upstream sends a big transaction once its decoded
# changes pass logical_decoding_work_mem (64MB by default): about 400,000
# narrow rows before the first is sent, and as many left to send and apply
# after its commit. A smaller limit for our own walsender starts the stream,
# and the apply while it is open, sooner and leaves a short tail at commit
# (a 1M-row insert is visible ~20% sooner here). A value the user set in the
# conninfo's options, or a smaller one configured on the server, is kept.
STREAMING_WORK_MEM_KB = 8192


def worker_conninfo(conninfo: str) -> str:
    """``conninfo`` for one of our connections: named, timed out, stable output settings."""
    params = conninfo_mod.parse(conninfo)
    params["application_name"] = APPLICATION_NAME
    params["options"] = f"{params.get('options', '')} {STABLE_OUTPUT_OPTIONS}".strip()
    params.setdefault("connect_timeout", "10")
    return conninfo_mod.make_conninfo(params)


@dataclass(frozen=True, slots=True)
class CreatedSlot:
    name: str
    consistent_point: int
    snapshot: str | None


class ReplicationConnection:
    """A ``replication=database`` connection (simple query protocol only)."""

    def __init__(self, conninfo: str):
        try:
            self.conn = psycopg.connect(
                worker_conninfo(conninfo), replication="database", autocommit=True
            )
        except psycopg.OperationalError as exc:
            raise UpstreamError(f"cannot connect to the upstream: {first_line(exc)}") from exc
        self.pgconn = self.conn.pgconn

    def close(self) -> None:
        self.conn.close()

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """Run one command; its rows, or [] for a command that returns none."""
        cur = self.conn.execute(sql.encode())
        return cur.fetchall() if cur.description else []

    def slot_exists(self, name: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = " + _literal(name)
        )
        return bool(rows)

    def create_slot(self, name: str, export_snapshot: bool) -> CreatedSlot:
        snapshot = "export" if export_snapshot else "nothing"
        row = self.query(
            f"CREATE_REPLICATION_SLOT {_ident(name)} LOGICAL pgoutput (SNAPSHOT '{snapshot}')"
        )[0]
        return CreatedSlot(
            name=str(row[0]),
            consistent_point=str_to_lsn(str(row[1])),
            snapshot=str(row[2]) if row[2] else None,
        )

    def drop_slot(self, name: str) -> None:
        self.query(f"DROP_REPLICATION_SLOT {_ident(name)}")

    def limit_decoding_memory(self) -> str:
        """Lower logical_decoding_work_mem to STREAMING_WORK_MEM_KB; the value now in effect."""
        self.query(
            "SELECT pg_catalog.set_config('logical_decoding_work_mem',"
            f" '{STREAMING_WORK_MEM_KB}kB', false) FROM pg_catalog.pg_settings"
            " WHERE name = 'logical_decoding_work_mem' AND source <> 'client'"
            f" AND setting::bigint > {STREAMING_WORK_MEM_KB}"
        )
        return str(self.query("SHOW logical_decoding_work_mem")[0][0])

    def start(self, slot: str, start_lsn: int, publication: str, streaming: bool = True) -> None:
        """Enter CopyBoth mode, streaming pgoutput from ``start_lsn``.

        ``publication`` may name several, comma-separated. With ``streaming``
        (protocol 2) big transactions come while they run; without it
        (protocol 1) each comes whole at its commit.
        """
        names = ",".join(_ident(p) for p in publication.split(",")).replace("'", "''")
        options = "proto_version '2', streaming 'on'" if streaming else "proto_version '1'"
        if streaming:  # without streaming a lower limit would only spill more to disk
            self.limit_decoding_memory()
        command = (
            f"START_REPLICATION SLOT {_ident(slot)} LOGICAL {lsn_to_str(start_lsn)}"
            f" ({options}, publication_names '{names}', messages 'true')"
        )
        self.pgconn.send_query(command.encode())
        res = self.pgconn.get_result()
        if res is None or res.status != pq.ExecStatus.COPY_BOTH:
            message = res.error_message.decode(errors="replace") if res else "no result"
            raise UpstreamError(f"START_REPLICATION failed: {message.strip()}")

    def read(self, timeout: float) -> bytes | None:
        """One CopyData message, or None if none arrived within ``timeout``."""
        nbytes, data = self.pgconn.get_copy_data(1)
        if nbytes == 0:
            ready, _, _ = select.select([self.pgconn.socket], [], [], timeout)
            if not ready:
                return None
            self.pgconn.consume_input()
            nbytes, data = self.pgconn.get_copy_data(1)
            if nbytes == 0:
                return None
        if nbytes < 0:
            res = self.pgconn.get_result()
            message = res.error_message.decode(errors="replace").strip() if res else ""
            raise UpstreamError(f"the upstream ended the replication stream: {message}")
        return bytes(data)

    def read_buffered(self, limit: int) -> list[bytes]:
        """The CopyData messages already received (at most ``limit``), without waiting."""
        get = self.pgconn.get_copy_data
        out: list[bytes] = []
        while len(out) < limit:
            nbytes, data = get(1)
            if nbytes <= 0:  # none buffered, or the end (which read() reports)
                break
            out.append(bytes(data))
        return out

    def send(self, data: bytes) -> None:
        if self.pgconn.put_copy_data(data) != 1 or self.pgconn.flush() != 0:
            raise UpstreamError(
                "cannot send feedback to the upstream: "
                + self.pgconn.error_message.decode(errors="replace").strip()
            )


class Progress:
    """Positions shared by the reader and the applier (plain ints under the GIL).

    Downstream commits run with ``synchronous_commit = off``, so a committed
    transaction is visible (``applied_lsn``) before it is durable
    (``flushed_lsn``, read back from the replication origin with a WAL flush).
    The upstream is only ever told the durable one.
    """

    def __init__(self, start_lsn: int):
        self.received_lsn = start_lsn  # end of the last WAL data received
        self.upstream_lsn = start_lsn  # the upstream's WAL end, from keepalives
        self.applied_lsn = start_lsn  # every change below it is committed downstream
        self.flushed_lsn = start_lsn  # ... and durably so
        self.last_commit_lsn = start_lsn  # end LSN of the last upstream commit applied
        self.commits_queued = 0
        self.commits_applied = 0
        self.last_commit_ts: float | None = None  # unix time of the last applied commit

    def applied(self, end_lsn: int, commits: int, commit_ts: float) -> None:
        """``commits`` upstream transactions up to ``end_lsn`` committed downstream."""
        # last_commit_lsn before commits_applied: the reader trusts it once caught up
        self.last_commit_lsn = max(self.last_commit_lsn, end_lsn)
        self.applied_lsn = max(self.applied_lsn, end_lsn)
        self.last_commit_ts = commit_ts
        self.commits_applied += commits

    def confirm(self, lsn: int) -> None:
        """Everything below ``lsn`` is durably applied downstream."""
        if lsn > self.flushed_lsn:
            self.flushed_lsn = lsn
        if lsn > self.applied_lsn:
            self.applied_lsn = lsn

    def idle_at(self, wal_end: int) -> None:
        """Nothing is in flight and the upstream's WAL reached ``wal_end``."""
        if wal_end > self.applied_lsn:
            self.applied_lsn = wal_end
        # Only once every applied commit is durable may the slot move past it.
        if self.flushed_lsn >= self.last_commit_lsn:
            self.confirm(wal_end)

    @property
    def caught_up(self) -> bool:
        return self.commits_applied == self.commits_queued

    @property
    def durable(self) -> bool:
        """Whether every transaction committed downstream is known to be flushed."""
        return self.flushed_lsn >= self.last_commit_lsn


BatchItem: TypeAlias = Message | SpooledTransaction | StreamedChange | StreamedAbort
Batch: TypeAlias = list[BatchItem]
"""Messages and committed streamed transactions, in stream order."""

InboxItem: TypeAlias = Batch | BaseException
"""What the reader hands the applier: a batch of what arrived together, or the error
that stopped the reader."""

BATCH_ITEMS = 256  # the reader hands over at most this many messages at once
BATCH_BYTES = 1 << 20  # ... or about this much payload
RUN_ROWS = 5000  # inserted rows handed over as one run at most
DRAIN_MESSAGES = 1000  # messages read at once before feedback is considered
# A batch started waits this long for more before it goes: a steady stream
# of small transactions is read a few at a time (one wake-up, one read of
# the socket) and handed over so, not one wake-up of the reader and of the
# applier per message, which costs more CPU than applying it.
BATCH_LINGER = 0.002
# ... but only on a busy stream: a batch whose first message comes this long
# after the last hand-over goes at once (light traffic is applied at once).
QUIET_GAP = 0.01


class Inbox:
    """The queue from reader to applier, bounded in items and in payload bytes.

    Items alone would not bound memory: ten thousand rows of a megabyte each
    are ten gigabytes. An item larger than ``max_bytes`` still goes through,
    alone.
    """

    def __init__(self, max_items: int, max_bytes: int):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[tuple[InboxItem, int]] = deque()
        self._bytes = 0
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: InboxItem, nbytes: int = 0, timeout: float | None = None) -> None:
        """Add ``item`` (``nbytes`` of payload); raise queue.Full after ``timeout`` seconds."""
        with self._not_full:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._items and (
                len(self._items) >= self.max_items or self._bytes + nbytes > self.max_bytes
            ):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Full
                self._not_full.wait(remaining)
            self._items.append((item, nbytes))
            self._bytes += nbytes
            self._not_empty.notify()

    def wait(self, timeout: float) -> bool:
        """Whether an item is there, or arrives within ``timeout`` seconds."""
        with self._not_empty:
            if not self._items:
                self._not_empty.wait(timeout)
            return bool(self._items)

    def get(self, timeout: float | None = None) -> InboxItem:
        """The oldest item; raise queue.Empty after ``timeout`` seconds."""
        with self._not_empty:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._not_empty.wait(remaining)
            item, nbytes = self._items.popleft()
            self._bytes -= nbytes
            self._not_full.notify()
            return item


_XLOGDATA_KIND = ord("w")
_XLOGDATA_LSNS = struct.Struct("!QQ")
_U32 = struct.Struct("!I")  # a streamed change's xid
_XLOGDATA_HEAD = 1 + 8 + 8 + 8  # kind, data start, WAL end, send time
_RELATION = ord("R")
_INSERT = ord("I")
_DELETE = ord("D")
_UPDATE = ord("U")
_UPDATE_DELETE = frozenset(b"UD")


class StreamReader(threading.Thread):
    """Reads the stream into ``out`` and keeps the upstream informed of progress."""

    def __init__(
        self,
        connection: ReplicationConnection,
        out: Inbox,
        progress: Progress,
        stop: threading.Event,
        name: str,
        spool: Spool,
        parallel: bool = False,
        no_parallel: set[int] | None = None,
    ):
        super().__init__(name=f"reader-{name}", daemon=True)
        self.connection = connection
        self.out = out
        self.progress = progress
        self.stop_event = stop
        self.spool = spool
        self.decoder = Decoder()
        self.in_transaction = False  # inside a Begin ... Commit (not a streamed one)
        # One streamed transaction at a time is also applied while open
        # (parallel_apply.py); never those in no_parallel (left to the spool).
        self.parallel = parallel
        self.no_parallel: set[int] = no_parallel if no_parallel is not None else set()
        self.parallel_xid: int | None = None
        self._last_feedback = 0.0
        # What arrived back to back goes to the applier as one batch: one
        # queue hand-over (lock, wake-up) for many rows instead of one each.
        self._batch: Batch = []
        self._batch_bytes = 0
        self._handed_over = 0.0  # when the last batch went
        # rows of one kind and relation not yet in the batch, and their (xid, subxid)
        self._run: InsertRun | RowRun | None = None
        self._run_key: tuple[int | None, int | None] = (None, None)
        self._internal: set[int] = set()  # relation ids of the extension's own tables

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # handed to the applier, which owns error handling
            if not self.stop_event.is_set():
                self._flush_batch()
                self.out.put(exc)

    def _loop(self) -> None:
        since = 0.0  # when the batch being gathered got its first message
        while not self.stop_event.is_set():
            # Nothing more after the linger: hand over the batch before waiting.
            pending = bool(self._batch) or self._run is not None
            if pending and since - self._handed_over < QUIET_GAP:
                linger = since + BATCH_LINGER - time.monotonic()
                if linger > 0:
                    time.sleep(linger)
            buf = self.connection.read(timeout=0.0 if pending else 0.2)
            if buf is not None:
                if not pending:
                    since = time.monotonic()
                self._handle(buf)
                # and what else came with it, without a call per message
                self._handle_many(self.connection.read_buffered(DRAIN_MESSAGES))
            elif pending:
                self._flush_batch()
            if time.monotonic() - self._last_feedback >= FEEDBACK_INTERVAL:
                self.send_feedback()

    def _handle(self, buf: bytes) -> None:
        progress = self.progress
        if buf[0] == _XLOGDATA_KIND and len(buf) > _XLOGDATA_HEAD:
            # the common case, without an XLogData object
            data_start, wal_end = _XLOGDATA_LSNS.unpack_from(buf, 1)
            payload = buf[_XLOGDATA_HEAD:]
            self._handle_wal(data_start, wal_end, payload)
            return
        frame = parse_copy_data(buf)
        if isinstance(frame, Keepalive):
            progress.upstream_lsn = max(progress.upstream_lsn, frame.wal_end)
            # Nothing in flight: everything before wal_end that concerns us is
            # applied, so the slot may move on (no WAL pile-up while idle).
            #
            # Streamed transactions still open (spooled, not committed) need
            # not hold this back: confirming a position past some of their
            # changes never makes the upstream skip them after a restart.
            # confirmed_flush becomes the next session's start_decoding_at,
            # and a transaction is skipped only if its commit record lies
            # before that (DecodeCommit -> DecodeTXNNeedSkip ->
            # SnapBuildXactNeedsSkip(commit LSN)); an open transaction's
            # commit comes after any wal_end sent to us now. Decoding restarts
            # at restart_lsn, which running_xacts records keep at or before
            # the oldest open transaction's first change whatever we confirm,
            # so all its changes are decoded again; and streaming cannot
            # start before start_decoding_at (ReorderBufferCanStartStreaming),
            # so it comes again from its first change: streamed afresh
            # (first_segment set) or whole at commit. Our spool dies with the
            # session, so nothing is applied twice. PostgreSQL's own apply
            # worker confirms the same way (flush = received when no commit
            # is pending). What must hold the slot back is a commit received
            # and not applied yet (caught_up), a transaction sent at commit,
            # from its Begin to its Commit (in_transaction), and a commit
            # applied but not yet flushed downstream (Progress.idle_at).
            if not self.in_transaction and progress.caught_up:
                progress.idle_at(frame.wal_end)
            if frame.reply_requested:
                self.send_feedback()
            return
        assert isinstance(frame, XLogData)
        self._handle_wal(frame.data_start, frame.wal_end, frame.payload)

    def _handle_many(self, bufs: list[bytes]) -> None:
        """``_handle`` each of ``bufs``; row changes that go on the run being
        gathered are read by ``_continue_run``, in a loop of their own (a bulk
        change is almost only those)."""
        i, n = 0, len(bufs)
        while i < n:
            if self._run is not None:
                i = self._continue_run(bufs, i)
                if i == n:
                    break
            self._handle(bufs[i])
            i += 1

    def _continue_run(self, bufs: list[bytes], i: int) -> int:
        """Add to the run the row changes from ``bufs[i]`` on that continue it;
        the index of the first that does not (left to ``_handle``).

        What the run's transaction, relation and kind are cannot change in
        here, so it is checked against values read once: a change continues
        the run if it is an XLogData of the same kind, in the same (streamed)
        subtransaction, on the same relation, with room in the run.
        """
        run = self._run
        assert run is not None
        xid, subxid = self._run_key
        stream_xid = self.decoder.stream_xid
        if stream_xid is None:
            if xid is not None:
                return i
        elif stream_xid != xid or xid != self.parallel_xid or subxid is None:
            return i
        in_stream = stream_xid is not None
        # what the change's subtransaction xid must read, as bytes
        xid_bytes = b"" if subxid is None else _U32.pack(subxid)
        xid_end = _XLOGDATA_HEAD + 1 + len(xid_bytes)
        head = _XLOGDATA_HEAD
        relation_id = run.relation_id
        batch_room = BATCH_BYTES - self._batch_bytes
        taken = 0  # bytes added to the run
        last = None  # the last buffer taken, for the stream positions
        n = len(bufs)
        if type(run) is InsertRun:
            lines = run.lines
            room = RUN_ROWS - len(lines)
            append = lines.append
            while i < n and room > 0 and taken < batch_room:
                buf = bufs[i]
                if (
                    buf[0] != _XLOGDATA_KIND
                    or len(buf) <= head + 5
                    or buf[head] != _INSERT
                    or buf[head + 1 : xid_end] != xid_bytes
                ):
                    break
                rel, line = insert_copy_line(buf, in_stream, head)
                if rel != relation_id:
                    break
                append(line)
                taken += len(line)
                room -= 1
                last = buf
                i += 1
        else:
            assert isinstance(run, RowRun)
            rows = run.rows
            room = RUN_ROWS - len(rows)
            append_row = rows.append
            kind = _DELETE if run.deleting else _UPDATE
            while i < n and room > 0 and taken < batch_room:
                buf = bufs[i]
                if (
                    buf[0] != _XLOGDATA_KIND
                    or len(buf) <= head + 5
                    or buf[head] != kind
                    or buf[head + 1 : xid_end] != xid_bytes
                ):
                    break
                change = row_change(buf, in_stream, head)
                if change is None or change[0] != relation_id:
                    break
                append_row(change[1])
                taken += len(buf) - head
                room -= 1
                last = buf
                i += 1
        if last is not None:
            # as _handle_wal does; positions only grow along the stream
            progress = self.progress
            data_start, wal_end = _XLOGDATA_LSNS.unpack_from(last, 1)
            if wal_end > progress.received_lsn or data_start > progress.received_lsn:
                progress.received_lsn = max(progress.received_lsn, wal_end, data_start)
            if wal_end > progress.upstream_lsn:
                progress.upstream_lsn = wal_end
            run.nbytes += taken
            self._batch_bytes += taken
            if self._batch_bytes >= BATCH_BYTES:
                self._flush_batch()
        return i

    def _handle_wal(self, data_start: int, wal_end: int, payload: bytes) -> None:
        progress = self.progress
        if wal_end > progress.received_lsn or data_start > progress.received_lsn:
            progress.received_lsn = max(progress.received_lsn, wal_end, data_start)
        if wal_end > progress.upstream_lsn:
            progress.upstream_lsn = wal_end
        decoder = self.decoder
        subxid = None if decoder.stream_xid is None else decoder.stream_change_xid(payload)
        if subxid is not None:
            xid = decoder.stream_xid
            assert xid is not None
            if xid == self.parallel_xid:
                # Applied while open, and not spooled (should that stop, the
                # upstream sends it again): to the applier now.
                kind = payload[0]
                if kind == _INSERT:
                    self._insert(payload, True, xid, subxid)
                    return
                if kind in _UPDATE_DELETE:  # no stream state to follow
                    if self._row_change(payload, True, xid, subxid):
                        return
                    change = decode_message(payload, in_stream=True)
                    self._put(StreamedChange(xid, subxid, change), len(payload))
                    return
                change = decoder.decode(payload)
                self._put(StreamedChange(xid, subxid, change), len(payload))
                if isinstance(change, Relation):
                    self._relation(change)
                    self._put(change, 0)
                return
            # To disk, undecoded, applied at its commit.
            self.spool.write(subxid, payload)
            if payload[0] == _RELATION:
                # A Relation also goes to the applier at once: its relation
                # cache, like pgoutput's, is not transactional. The spooled
                # copy is what the transaction's replay relies on, whatever
                # was applied in between. Sending it now too is harmless:
                # pgoutput sends a non-streamed transaction the shape it
                # needs again after a stream block or abort that changed it
                # (their invalidations reset its schema_sent).
                relation = decoder.decode(payload)
                assert isinstance(relation, Relation)
                self._relation(relation)
                self._put(relation, len(payload))
            return
        if not decoder.in_stream:
            kind = payload[0]
            if kind == _INSERT:
                self._insert(payload, False, None, None)
                return
            if kind in _UPDATE_DELETE and self._row_change(payload, False, None, None):
                return
        message = decoder.decode(payload)
        if isinstance(message, StreamStart):
            if (
                self.parallel
                and self.parallel_xid is None
                and message.first_segment
                and message.xid not in self.no_parallel
            ):
                self.parallel_xid = message.xid
            self.spool.start(
                message.xid, message.first_segment, spooled=message.xid != self.parallel_xid
            )
        elif isinstance(message, StreamStop):
            self.spool.stop()
        elif isinstance(message, StreamAbort):
            self.spool.abort(message.xid, message.subxid)
            if message.xid == self.parallel_xid:
                self._put(StreamedAbort(message.xid, message.subxid), 0)
                if message.subxid == message.xid:
                    self.parallel_xid = None
        elif isinstance(message, StreamCommit):
            progress.commits_queued += 1
            if message.xid == self.parallel_xid:
                self.parallel_xid = None
            self._put(self.spool.commit(message), 0)
        else:
            if isinstance(message, Begin):
                self.in_transaction = True
            elif isinstance(message, Commit):
                self.in_transaction = False
                progress.commits_queued += 1
            elif isinstance(message, Relation):
                self._relation(message)
            self._put(message, len(payload))

    def _relation(self, relation: Relation) -> None:
        """Remember which relations are the extension's own (their rows are read whole)."""
        if relation.namespace == INTERNAL_SCHEMA:
            self._internal.add(relation.relation_id)
        else:
            self._internal.discard(relation.relation_id)

    def _insert(self, payload: bytes, in_stream: bool, xid: int | None, subxid: int | None) -> None:
        """An inserted row, into the run of rows for its relation."""
        relation_id, line = insert_copy_line(payload, in_stream)
        run = self._run
        if (
            type(run) is not InsertRun
            or run.relation_id != relation_id
            or self._run_key[1] != subxid
            or self._run_key[0] != xid
            or len(run.lines) >= RUN_ROWS
        ):
            if relation_id in self._internal:
                message = self.decoder.decode(payload)
                item = message if xid is None else StreamedChange(xid, subxid or xid, message)
                self._put(item, 0)
                return
            self._end_run()
            run = self._run = InsertRun(relation_id, [], 0)
            self._run_key = (xid, subxid)
        run.lines.append(line)
        # _added_to_run, inline: this runs once per inserted row
        nbytes = len(line)
        run.nbytes += nbytes
        self._batch_bytes += nbytes
        if self._batch_bytes >= BATCH_BYTES:
            self._flush_batch()

    def _row_change(
        self, payload: bytes, in_stream: bool, xid: int | None, subxid: int | None
    ) -> bool:
        """An UPDATE with no old tuple or a DELETE by key into the run of such
        changes for its relation; False (nothing done) for any other shape."""
        change = row_change(payload, in_stream)
        if change is None:
            return False
        relation_id, row = change
        deleting = payload[0] == _DELETE
        run = self._run
        if (
            not isinstance(run, RowRun)
            or run.relation_id != relation_id
            or run.deleting != deleting
            or self._run_key != (xid, subxid)
            or len(run.rows) >= RUN_ROWS
        ):
            if relation_id in self._internal:
                return False
            self._end_run()
            run = self._run = RowRun(relation_id, deleting, [], 0)
            self._run_key = (xid, subxid)
        run.rows.append(row)
        self._added_to_run(run, len(payload))
        return True

    def _added_to_run(self, run: InsertRun | RowRun, nbytes: int) -> None:
        run.nbytes += nbytes
        self._batch_bytes += nbytes
        if self._batch_bytes >= BATCH_BYTES:
            self._flush_batch()

    def _take_run(self) -> None:
        """The run of inserted rows into the batch (a new one follows)."""
        run, self._run = self._run, None
        if run is not None:
            xid, subxid = self._run_key
            self._batch.append(run if xid is None else StreamedChange(xid, subxid or xid, run))

    def _end_run(self) -> None:
        self._take_run()
        if len(self._batch) >= BATCH_ITEMS:
            self._flush_batch()

    def _put(self, item: BatchItem, nbytes: int) -> None:
        if self._run is not None:
            self._end_run()
        self._batch.append(item)
        self._batch_bytes += nbytes
        if len(self._batch) >= BATCH_ITEMS or self._batch_bytes >= BATCH_BYTES:
            self._flush_batch()

    def _flush_batch(self) -> None:
        self._take_run()
        batch, nbytes = self._batch, self._batch_bytes
        if not batch:
            return
        self._batch, self._batch_bytes = [], 0
        self._handed_over = time.monotonic()
        # A bounded queue keeps memory flat; while it is full we still talk
        # to the upstream so it does not time us out.
        while not self.stop_event.is_set():
            try:
                self.out.put(batch, nbytes, timeout=0.5)
                return
            except queue.Full:
                self.send_feedback()

    def send_feedback(self, reply: bool = False) -> None:
        p = self.progress
        self.connection.send(
            standby_status_update(p.received_lsn, p.flushed_lsn, p.applied_lsn, reply=reply)
        )
        self._last_feedback = time.monotonic()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


__all__ = [
    "Batch",
    "BatchItem",
    "CreatedSlot",
    "Inbox",
    "InboxItem",
    "Progress",
    "ProtocolError",
    "ReplicationConnection",
    "StreamReader",
    "worker_conninfo",
]
