"""A pipeline: one source's changes into one destination, in commit order.

    Pipeline(PostgresSource(conninfo, slot="s", publication="p"),
             DuckDBDestination("analytics.duckdb")).run()

The destination says where it stands (``open``); the pipeline starts the slot
there, back-fills a new destination from the slot's snapshot when asked, then
hands over each transaction whole and in order, and confirms to the upstream
only what the destination reports durable. Killed at any moment and run again,
it gives a transactional destination every transaction exactly once.

One thread: the read, the destination's work and the upstream's feedback take
turns, so a destination must not block for longer than the upstream's
``wal_sender_timeout`` (60 s by default).
"""

from __future__ import annotations

import logging
import threading
import time

from pg_follower import INTERNAL_SCHEMA
from pg_follower.destinations.base import Destination
from pg_follower.errors import ConfigError, ProtocolError
from pg_follower.source import decode
from pg_follower.source.changes import Delete, Insert, TableInfo, Transaction, Truncate, Update
from pg_follower.source.postgres import PostgresSource

logger = logging.getLogger("pg_follower.pipeline")

FEEDBACK_INTERVAL = 1.0  # how often the upstream hears how far we are
IDLE_WAIT = 0.2  # a read waits this long before the destination is flushed
DDL_QUEUE = "ddl_queue"
_XLOGDATA = 0x77  # 'w'
_HEAD = 1 + 8 + 8 + 8  # XLogData's kind, data start, WAL end, send time
_ROW_CHANGES = frozenset(b"IUD")
DRAIN = 1000  # messages handled between two looks at the clock
_INSERT, _UPDATE = 0x49, 0x55


class Pipeline:
    """Runs until ``stop()``, or with ``until_caught_up`` until it has passed
    what the upstream had written when it started."""

    def __init__(
        self,
        source: PostgresSource,
        destination: Destination,
        *,
        snapshot: bool = False,
        until_caught_up: bool = False,
        own_slot: bool = False,
    ):
        """``snapshot``: back-fill a destination that holds nothing from the
        snapshot of a slot made now. ``own_slot``: the slot serves this
        destination alone, so when the destination holds nothing the slot is
        made again (its snapshot is needed, and nothing of it was kept)."""
        self.source = source
        self.destination = destination
        self.snapshot = snapshot
        self.until_caught_up = until_caught_up
        self.own_slot = own_slot
        self._stop = threading.Event()
        self.tables: dict[int, TableInfo] = {}
        self.committed_lsn = 0  # where the stream stands: the last commit handed over
        self.handed_lsn = 0  # end LSN of the last transaction handed over by this run
        self.confirmed_lsn = 0  # told to the upstream (never moves back)
        self.transactions = 0  # handed over by this run
        self.changes = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        source, destination = self.source, self.destination
        source.connect()
        try:
            position = destination.open()
            fresh = position is None and self.own_slot and self.snapshot
            if (
                fresh
                and source.replication is not None
                and source.replication.slot_exists(source.slot)
            ):
                logger.info("the destination is empty: making slot %s again", source.slot)
                source.drop_slot()
            start = source.open_slot(position, snapshot=self.snapshot and position is None)
            if position is None and self.snapshot:
                if start.created is None or start.created.snapshot is None:
                    raise ConfigError(
                        f"slot {source.slot!r} exists already, so the snapshot it was made"
                        " with is gone: drop it upstream (SELECT pg_drop_replication_slot("
                        f"'{source.slot}')) to back-fill again, or go on from the slot"
                        " without a snapshot"
                    )
                for table in source.snapshot_tables(start.created.snapshot):
                    destination.write_snapshot(table)
                destination.snapshot_done(start.created.consistent_point)
            self.committed_lsn = start.lsn
            self.confirmed_lsn = start.lsn
            target = source.wal_end() if self.until_caught_up else None
            source.start(start.lsn)
            if self._stream(start.lsn, target):
                destination.flush()  # between transactions only
                self._feedback(idle_end=None)
        finally:
            source.close()
            destination.close()

    def _stream(self, position: int, target: int | None) -> bool:
        """Hand over transactions until stopped or past ``target``; whether it
        ended between two transactions (else one is begun, not committed)."""
        assert self.source.replication is not None
        connection = self.source.replication
        destination = self.destination
        decoder = decode.Decoder()
        txn: Transaction | None = None
        skipping = False
        dirty = False  # committed to the destination since its last flush
        idle_end: int | None = None  # upstream WAL end while nothing is in flight
        last_feedback = 0.0
        while not self._stop.is_set():
            between = txn is None and not skipping
            first = connection.read(timeout=0.0 if dirty and between else IDLE_WAIT)
            if first is None:
                if dirty and between:
                    destination.flush()
                    dirty = False
                    self._feedback(idle_end)
                    last_feedback = time.monotonic()
                if target is not None and between and self._passed(target, idle_end):
                    return True
            # and everything else already received, without a wait per message
            for buf in () if first is None else (first, *connection.read_buffered(DRAIN)):
                if buf[0] == _XLOGDATA and txn is not None and buf[_HEAD] in _ROW_CHANGES:
                    # the common case, read straight from the bytes
                    self._row_change(buf[_HEAD:])
                else:
                    frame = decode.parse_copy_data(buf)
                    if isinstance(frame, decode.Keepalive):
                        if txn is None and not skipping:
                            idle_end = max(idle_end or 0, frame.wal_end)
                        if frame.reply_requested:
                            self._feedback(idle_end)
                            last_feedback = time.monotonic()
                    else:
                        msg = decoder.decode(frame.payload)
                        if isinstance(msg, decode.Begin):
                            idle_end = None
                            skipping = msg.final_lsn < position
                            if not skipping:
                                txn = Transaction(
                                    msg.xid,
                                    msg.final_lsn,
                                    decode.pg_timestamp_to_datetime(msg.commit_ts),
                                )
                                destination.begin(txn)
                        elif isinstance(msg, decode.Commit):
                            if txn is not None:
                                done = Transaction(
                                    txn.xid, msg.commit_lsn, txn.commit_time, end_lsn=msg.end_lsn
                                )
                                destination.commit(done)
                                self.committed_lsn = self.handed_lsn = msg.end_lsn
                                self.transactions += 1
                                dirty = True
                            txn = None
                            skipping = False
                        elif isinstance(msg, decode.Relation):
                            self.tables[msg.relation_id] = self.source.table_of(msg)
                        elif txn is not None:
                            self._change(msg)
            if time.monotonic() - last_feedback >= FEEDBACK_INTERVAL:
                self._feedback(idle_end)
                last_feedback = time.monotonic()
        return txn is None and not skipping

    def _passed(self, target: int, idle_end: int | None) -> bool:
        """Whether everything the upstream had at the start is handed over and durable."""
        reached = max(self.committed_lsn, idle_end or 0)
        durable = self.destination.durable_lsn() or 0
        return reached >= target and durable >= self.handed_lsn

    def _table(self, relation_id: int) -> TableInfo:
        table = self.tables.get(relation_id)
        if table is None:
            raise ProtocolError(f"change for relation {relation_id} before its Relation message")
        return table

    def _row_change(self, payload: bytes) -> None:
        """An Insert, Update or Delete, decoded to text in one pass."""
        kind, relation_id, old, new = decode.text_change(payload)
        table = self._table(relation_id)
        if table.schema == INTERNAL_SCHEMA:
            if kind == _INSERT and table.name == DDL_QUEUE and new is not None:
                self.destination.change(self.source.ddl_of(new, table))
                self.changes += 1
            return
        if kind == _INSERT:
            assert new is not None
            self.destination.change(Insert(table, new))
        elif kind == _UPDATE:
            assert new is not None
            self.destination.change(Update(table, old, new))
        else:
            assert old is not None
            self.destination.change(Delete(table, old))
        self.changes += 1

    def _change(self, msg: decode.Message) -> None:
        """What is left once Inserts, Updates and Deletes went by ``_row_change``."""
        if isinstance(msg, decode.Truncate):
            tables = tuple(self._table(r) for r in msg.relation_ids)
            tables = tuple(t for t in tables if t.schema != INTERNAL_SCHEMA)
            if tables:
                self.destination.change(Truncate(tables, msg.cascade, msg.restart_identity))
                self.changes += 1
        # Origin, Type, LogicalMessage: nothing for a destination

    def _feedback(self, idle_end: int | None) -> None:
        """Tell the upstream what the destination holds durably: the slot keeps the rest."""
        connection = self.source.replication
        if connection is None:
            return
        durable = self.destination.durable_lsn() or 0
        # Nothing in flight and all handed over durable: the slot may move on
        # to the upstream's WAL end (no WAL piles up while it is idle). A
        # destination that can hold that position too (``skip_to``) resumes
        # there, so a restart does not find the slot ahead of it.
        if idle_end is not None and durable >= self.handed_lsn and idle_end > durable:
            skip_to = getattr(self.destination, "skip_to", None)
            if skip_to is not None:
                skip_to(idle_end)
            durable = max(durable, idle_end)
        durable = self.confirmed_lsn = max(self.confirmed_lsn, durable)
        connection.send(decode.standby_status_update(durable, durable, durable, now=time.time()))
