"""One subscription's pipeline: set up the slot and origin, then stream and apply.

Runs in its own thread, with its own connections; reconnects with jittered
exponential back-off after any failure and reports what it is doing in a
``Status`` the supervisor writes to ``pgfollower.subscription_status``.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from pg_follower import PUBLICATION
from pg_follower.destinations.postgres.apply import AppliedCounts, PostgresApplier
from pg_follower.destinations.postgres.initial_copy import CopyProgress, InitialCopy
from pg_follower.destinations.postgres.parallel_apply import ParallelStream
from pg_follower.destinations.postgres.sequences import SequenceFollower
from pg_follower.errors import ApplyError, FollowerError, ProtocolError, UpstreamError, first_line
from pg_follower.source.decode import Commit, lsn_to_str, pg_timestamp_to_datetime, str_to_lsn
from pg_follower.source.spool import Spool, SpooledTransaction, apply_spooled, spool_directory
from pg_follower.source.stream import (
    BatchItem,
    Inbox,
    Progress,
    ReplicationConnection,
    StreamReader,
    worker_conninfo,
)
from pg_follower.source.streamed import StreamedAbort, StreamedChange

logger = logging.getLogger("pg_follower.pipeline")

QUEUE_SIZE = 200  # batches of decoded messages in flight between reader and applier
QUEUE_BYTES = 32 << 20  # and at most about this much of their pgoutput payload
# Apply one big streamed transaction at a time while it runs upstream.
PARALLEL_STREAMING = True
FLUSH_CHECK_INTERVAL = 0.1  # how often a busy applier reads back its durable position


@dataclass(frozen=True, slots=True)
class SubscriptionConfig:
    id: int
    name: str
    conninfo: str
    upstream: str  # redacted, for messages
    slot_name: str
    origin_name: str
    copy_data: bool


@dataclass(slots=True)
class Status:
    """What follow_status shows; written by the supervisor about once a second."""

    state: str = "starting"
    received_lsn: str | None = None
    applied_lsn: str | None = None
    flushed_lsn: str | None = None  # applied and durable downstream (what the slot is told)
    upstream_lsn: str | None = None
    lag_seconds: float | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    error_lsn: str | None = None
    error_statement: str | None = None
    tables_copied: int = 0
    tables_total: int | None = None
    rows_copied: int = 0
    rows_total: int | None = None
    errors: int = 0  # recorded since the worker started (metrics)
    retries: int = 0  # sessions started again after an error, since the worker started
    extra: dict[str, Any] = field(default_factory=dict)


class Backoff:
    """Jittered exponential delays: 1 s, 2 s, 4 s ... up to ``maximum``."""

    def __init__(self, first: float = 1.0, maximum: float = 30.0):
        self.first = first
        self.maximum = maximum
        self.attempt = 0

    def next(self) -> float:
        delay = min(self.maximum, self.first * 2**self.attempt)
        self.attempt += 1
        return float(delay * random.uniform(0.75, 1.0))

    def reset(self) -> None:
        self.attempt = 0


class SubscriptionRunner(threading.Thread):
    """Follows one upstream for one subscription until stopped."""

    def __init__(self, config: SubscriptionConfig, downstream_dsn: str):
        super().__init__(name=f"sub-{config.name}", daemon=True)
        self.config = config
        self.downstream_dsn = downstream_dsn
        self.status = Status()
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()  # ends a back-off wait early
        self.progress: Progress | None = None
        self.copy_progress: CopyProgress | None = None
        self.reader: StreamReader | None = None
        self.ungroup_until = 0  # commit LSN up to which transactions are applied one by one
        self.no_parallel: set[int] = set()  # streamed xids left to the spool
        self.counts = AppliedCounts()  # committed downstream, since the worker started
        self.paused = False  # pause_follow(): no session, nothing applied

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def wake(self) -> None:
        """Retry now (skip_transaction() was called)."""
        self.wake_event.set()

    def set_paused(self, paused: bool) -> None:
        """Pause (end the session, apply nothing) or resume, as the catalog says."""
        if paused == self.paused:
            return
        self.paused = paused
        logger.info(
            "subscription %s: %s",
            self.config.name,
            "paused: ending the stream (the upstream slot keeps its WAL)" if paused else "resumed",
            extra={"subscription": self.config.name},
        )
        self.wake_event.set()

    def _leaving(self) -> bool:
        """Whether the session must end: stop_follow, the worker's stop, or a pause."""
        return self.paused or self.stop_event.is_set()

    def _wait_paused(self) -> None:
        self.status.state = "paused"
        while self.paused and not self.stop_event.is_set():
            self.wake_event.wait(1.0)
            self.wake_event.clear()
        if not self.stop_event.is_set():
            self.status.state = "starting"

    def run(self) -> None:
        backoff = Backoff()
        while not self.stop_event.is_set():
            if self.paused:
                self._wait_paused()
                continue
            try:
                self._session(backoff)
            except ApplyError as exc:
                if exc.retry_now and not self._leaving():
                    self.status.retries += 1
                    # Which of the grouped transactions failed is not known:
                    # apply them one at a time, at once, to find out.
                    if exc.lsn:
                        self.ungroup_until = max(self.ungroup_until, str_to_lsn(exc.lsn))
                        logger.info(
                            "subscription %s: %s; applying the transactions up to %s one at a time",
                            self.config.name,
                            exc,
                            exc.lsn,
                        )
                    else:
                        logger.info("subscription %s: %s", self.config.name, exc)
                    continue
                self._record_error(str(exc), lsn=exc.lsn, statement=exc.statement)
            except (FollowerError, psycopg.Error, OSError) as exc:
                self._record_error(first_line(exc))
            except Exception as exc:  # a bug: report it, keep the worker alive
                logger.exception("subscription %s: unexpected error", self.config.name)
                self._record_error(f"internal error: {type(exc).__name__}: {exc}")
            if self.stop_event.is_set():
                break
            if self.paused:
                continue  # the session ended for the pause, not for an error
            self.status.retries += 1
            delay = backoff.next()
            logger.info("subscription %s: retrying in %.1f s", self.config.name, delay)
            self.wake_event.wait(delay)
            self.wake_event.clear()
        self.status.state = "stopped"

    def _record_error(
        self, message: str, lsn: str | None = None, statement: str | None = None
    ) -> None:
        if self._leaving():
            return  # errors from tearing down on request are not errors
        logger.error("subscription %s: %s", self.config.name, message, extra={"lsn": lsn})
        st = self.status
        st.state = "error"
        st.errors += 1
        st.last_error = message
        st.last_error_at = datetime.now(UTC)
        st.error_lsn = lsn
        st.error_statement = statement

    # -- one connected session ---------------------------------------------------
    def _session(self, backoff: Backoff) -> None:
        cfg = self.config
        with psycopg.connect(worker_conninfo(self.downstream_dsn)) as down:
            applier = PostgresApplier(down, cfg.origin_name, cfg.id, self.counts)
            position = applier.setup()
            applier.load_skip_request()
            # kept for the session: the sequences are read on it
            up = self._prepare_upstream()
            try:
                repl = ReplicationConnection(cfg.conninfo)
            except BaseException:
                up.close()
                raise
            try:
                if position is None:
                    position = self._initialize(repl, down, applier)
                self._stream(repl, applier, position, backoff, up)
            finally:
                applier.rollback()
                repl.close()
                up.close()

    def _connect_upstream(self) -> psycopg.Connection[Any]:
        """A normal connection to the upstream (not the replication one)."""
        cfg = self.config
        try:
            return psycopg.connect(worker_conninfo(cfg.conninfo), autocommit=True)
        except psycopg.OperationalError as exc:
            raise UpstreamError(
                f"cannot connect to the upstream ({cfg.upstream}): {first_line(exc)}"
            ) from exc

    def _prepare_upstream(self) -> psycopg.Connection[Any]:
        """Check the upstream can be followed and make sure it publishes; the
        connection, left open."""
        up = self._connect_upstream()
        try:
            row = up.execute("SELECT current_setting('wal_level')").fetchone()
            if row is None or row[0] != "logical":
                raise UpstreamError(
                    f"the upstream's wal_level is {row[0] if row else '?'!r}, not 'logical':"
                    " run ALTER SYSTEM SET wal_level = logical there and restart it"
                )
            if not up.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'pg_follower_py'"
            ).fetchone():
                raise UpstreamError(
                    "pg_follower_py is not installed on the upstream database:"
                    " run CREATE EXTENSION pg_follower_py CASCADE there"
                )
            up.execute("SELECT pgfollower.ensure_publication()")
        except BaseException:
            up.close()
            raise
        return up

    def _initialize(
        self, repl: ReplicationConnection, down: psycopg.Connection[Any], applier: PostgresApplier
    ) -> int:
        """Create the slot, copy the upstream as of its snapshot (copy_data),
        and record the slot's consistent point as our starting position.

        Copy and position commit in one downstream transaction; until then
        nothing was applied, so a slot left by an interrupted start is
        dropped and made again, and the copy starts over.
        """
        cfg = self.config
        if repl.slot_exists(cfg.slot_name):
            repl.drop_slot(cfg.slot_name)
        slot = repl.create_slot(cfg.slot_name, export_snapshot=cfg.copy_data)
        logger.info(
            "subscription %s: created slot %s at %s",
            cfg.name,
            slot.name,
            lsn_to_str(slot.consistent_point),
        )
        if cfg.copy_data:
            if slot.snapshot is None:
                raise UpstreamError("the upstream exported no snapshot for the initial copy")
            self.status.state = "copying"
            self.copy_progress = CopyProgress()
            # The snapshot lives while ``repl`` stays idle: it is used next
            # for START_REPLICATION, after the copy.
            InitialCopy(cfg.conninfo, slot.snapshot, down, self.copy_progress, self._leaving).run()
        with down.cursor() as cur:
            # Writing the status row makes the transaction commit a record that
            # carries the origin position even when nothing else is written.
            copied = self.copy_progress or CopyProgress()
            cur.execute(
                "UPDATE pgfollower.subscription_status SET state = 'streaming',"
                " tables_copied = %s, tables_total = %s, rows_copied = %s, rows_total = %s,"
                " updated_at = now() WHERE sub_id = %s",
                [
                    copied.tables_copied,
                    copied.tables_total if cfg.copy_data else None,
                    copied.rows_copied,
                    copied.rows_total if cfg.copy_data else None,
                    cfg.id,
                ],
            )
            cur.execute(
                "SELECT pg_catalog.pg_replication_origin_xact_setup(%s, now())",
                [lsn_to_str(slot.consistent_point)],
            )
        down.commit()
        applier.position = slot.consistent_point
        return slot.consistent_point

    def _stream(
        self,
        repl: ReplicationConnection,
        applier: PostgresApplier,
        position: int,
        backoff: Backoff,
        up: psycopg.Connection[Any],
    ) -> None:
        cfg = self.config
        inbox = Inbox(QUEUE_SIZE, QUEUE_BYTES)
        progress = Progress(position)
        spool = Spool(spool_directory(cfg.slot_name))
        repl.start(cfg.slot_name, position, PUBLICATION)
        logger.info(
            "subscription %s: streaming from %s",
            cfg.name,
            lsn_to_str(position),
            extra={"lsn": lsn_to_str(position)},
        )
        stop = threading.Event()
        reader = StreamReader(
            repl,
            inbox,
            progress,
            stop,
            cfg.name,
            spool,
            parallel=PARALLEL_STREAMING and applier.skip_lsn is None,
            no_parallel=self.no_parallel,
        )
        parallel = ParallelStream(
            applier, lambda: psycopg.connect(worker_conninfo(self.downstream_dsn))
        )
        sequences = SequenceFollower(
            self._connect_upstream,
            applier.conn,
            lambda: max(progress.received_lsn, progress.upstream_lsn),
            cfg.name,
            upstream=up,
        )

        def follow_sequences(busy: bool) -> None:
            # between downstream transactions, and never beside one applied
            # while open (its locks could make the two connections wait on
            # each other)
            if applier.idle and parallel.xid is None:
                sequences.maybe_sync(busy)

        self.progress, self.reader = progress, reader
        if self.status.state != "error":
            self.status.state = "streaming"
        reader.start()
        left = 0  # of the batch being applied
        # What the applier may wait for to make a group larger (apply.GROUP_WAIT).
        applier.more_waiting = lambda wait: left > 0 or inbox.wait(wait)
        # Right after an apply error, its predecessors commit one by one, so
        # it alone is left failing.
        applier.group_after = self.ungroup_until
        if self.status.error_lsn:
            applier.group_after = max(applier.group_after, str_to_lsn(self.status.error_lsn))
        last_flush_check = 0.0
        try:
            while not self._leaving():
                try:
                    item = inbox.get(timeout=0.2)
                except queue.Empty:
                    if not reader.is_alive():
                        raise UpstreamError("the stream reader stopped") from None
                    self._applied(applier, applier.commit_pending(), progress, backoff)
                    if not progress.durable:
                        self._confirm_durable(applier, progress)
                        last_flush_check = time.monotonic()
                    if progress.caught_up and not reader.in_transaction:
                        self.status.state = "streaming"  # idle and healthy again
                    follow_sequences(busy=False)
                    continue
                if isinstance(item, BaseException):
                    raise item
                left = len(item)
                for entry in item:
                    if self._leaving():
                        break  # what was applied of a transaction is rolled back
                    left -= 1
                    committed, commits = self._apply(entry, applier, parallel, progress, backoff)
                    if committed is not None:
                        self._applied(applier, committed, progress, backoff, commits)
                        if time.monotonic() - last_flush_check >= FLUSH_CHECK_INTERVAL:
                            self._confirm_durable(applier, progress)
                            last_flush_check = time.monotonic()
                        follow_sequences(busy=True)
        except (ApplyError, ProtocolError, psycopg.Error) as exc:
            if parallel.xid is None or parallel.xid in parallel.abandoned:
                raise
            # Beside the transaction applied while open (perhaps a lock wait
            # between the two connections): start over at once with it left
            # to the spool.
            error = exc if isinstance(exc, ApplyError) else ApplyError(first_line(exc))
            raise self._send_again(parallel.xid, error) from exc
        finally:
            stop.set()
            reader.join(timeout=5)
            parallel.close()
            spool.close()
            sequences.close()

    def _apply(
        self,
        entry: BatchItem,
        applier: PostgresApplier,
        parallel: ParallelStream,
        progress: Progress,
        backoff: Backoff,
    ) -> tuple[Commit | None, int]:
        """Apply one item of a batch; the Commit of what it committed, and how many
        upstream transactions that was."""
        if isinstance(entry, StreamedChange | StreamedAbort | SpooledTransaction):
            # the main connection commits what it holds first
            self._applied(applier, applier.commit_pending(), progress, backoff)
        if isinstance(entry, StreamedChange):
            parallel.change(entry)
            if entry.xid in parallel.abandoned:
                raise self._send_again(entry.xid)
            return None, 0
        if isinstance(entry, StreamedAbort):
            parallel.abort(entry)
            if entry.xid in parallel.abandoned:
                raise self._send_again(entry.xid)
            return None, 0
        if isinstance(entry, SpooledTransaction):
            committed = parallel.finish(entry)
            if committed is None:
                # Not spooled: it is sent again unless applied before (below
                # the position, so the applier skips it by its Begin).
                if not entry.complete and entry.commit.commit_lsn >= applier.position:
                    raise self._send_again(entry.commit.xid)
                committed = apply_spooled(
                    entry, applier.apply, self.stop_event, with_changes=entry.complete
                )
            return committed, 1
        committed = applier.apply(entry)
        return committed, applier.committed_commits

    def _send_again(self, xid: int, error: ApplyError | None = None) -> ApplyError:
        """Applying ``xid`` while open stopped (or ``error`` happened beside
        it), and it is not spooled: the session starts over at once, and the
        upstream sends it again from its first change, to the spool this time."""
        self.no_parallel.add(xid)
        if error is None:
            error = ApplyError(
                f"streamed transaction {xid}: applying it while it runs upstream stopped;"
                " starting over with it spooled, to be applied at its commit"
            )
        error.retry_now = True
        return error

    def _applied(
        self,
        applier: PostgresApplier,
        committed: Commit | None,
        progress: Progress,
        backoff: Backoff,
        commits: int | None = None,
    ) -> None:
        """A downstream commit of whole upstream transactions, up to ``committed``."""
        if committed is None:
            return
        progress.applied(
            committed.end_lsn,
            applier.committed_commits if commits is None else commits,
            pg_timestamp_to_datetime(committed.commit_ts).timestamp(),
        )
        if self.status.state != "streaming":
            self.status.state = "streaming"
        backoff.reset()

    @staticmethod
    def _confirm_durable(applier: PostgresApplier, progress: Progress) -> None:
        """Tell the reader how far the downstream has flushed what it applied."""
        durable = applier.durable_position()
        if durable is not None:
            progress.confirm(durable)

    # -- status ---------------------------------------------------------------------
    def snapshot(self) -> Status:
        """The status as of now, with positions from the running stream."""
        st = self.status
        progress, reader = self.progress, self.reader
        copied = self.copy_progress
        if copied is not None:
            st.tables_copied, st.tables_total = copied.tables_copied, copied.tables_total
            st.rows_copied, st.rows_total = copied.rows_copied, copied.rows_total
        if progress is not None:
            st.received_lsn = lsn_to_str(progress.received_lsn)
            st.applied_lsn = lsn_to_str(progress.applied_lsn)
            st.flushed_lsn = lsn_to_str(progress.flushed_lsn)
            st.upstream_lsn = lsn_to_str(progress.upstream_lsn)
            busy = not progress.caught_up or (reader is not None and reader.in_transaction)
            if st.state == "paused":
                st.lag_seconds = None  # not applying: the upstream's position is not known
            elif not busy:
                st.lag_seconds = 0.0
            elif progress.last_commit_ts is not None:
                st.lag_seconds = max(0.0, time.time() - progress.last_commit_ts)
        return st
