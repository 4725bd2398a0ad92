"""Applying a big streamed transaction while it is still open upstream.

The upstream streams a transaction bigger than its
``logical_decoding_work_mem`` in blocks as it runs. The reader spools every
streamed change (``spool.py``) except those of one such transaction at a
time, which it hands to the applier thread instead: it applies them at once
on a second downstream connection, in a transaction of its own. At Stream
Commit only the commit is left: that connection takes the replication origin
for the commit, so data and position still commit together. Until then
nothing of it is visible; a Stream Abort rolls it back (a subtransaction's
abort rolls back to its savepoint).

Anything going wrong on that connection (an apply error, a lost connection)
rolls it back and leaves the transaction ``abandoned``: the session starts
over at once, with the transaction marked to be spooled, and the upstream
sends it again from its first change (see the reader's notes on
restart_lsn); it is then applied at commit on the main connection exactly as
without this (which reports any error as usual). A lock wait on the main
connection that could be a deadlock with this one ends the session the same
way. PostgreSQL 16's ``streaming = parallel`` works alike, but keeps a
spooled copy while the parallel worker keeps up: not writing one saves the
reader a sixth of its time per change.

Why the two connections do not deadlock: before each change of it the main
connection commits what it holds, so this one never waits for the main one;
the main one applies only transactions that committed upstream while this
one was open, which could not take its row locks there. Should the
downstream differ (other constraints, other sessions), the main connection
waits for a lock at most ``MAIN_LOCK_TIMEOUT``, and the session starts over.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from pg_follower.destinations.postgres.apply import PostgresApplier
from pg_follower.errors import FollowerError, ProtocolError, first_line
from pg_follower.source.decode import Begin, Commit
from pg_follower.source.spool import SpooledTransaction
from pg_follower.source.streamed import StreamedAbort, StreamedChange

logger = logging.getLogger("pg_follower.parallel_apply")

MAIN_LOCK_TIMEOUT = "5s"
_NEVER = 0xFFFF_FFFF_FFFF_FFFF  # a Begin's final LSN before the commit is known


class ParallelStream:
    """Applies the changes of one open streamed transaction on its own connection."""

    def __init__(self, main: PostgresApplier, connect: Callable[[], psycopg.Connection[Any]]):
        self.main = main
        self._connect = connect
        self.xid: int | None = None  # being applied, until its end
        self.abandoned: set[int] = set()  # stopped: to be sent again and spooled
        self._applier: PostgresApplier | None = None
        self._savepoints: list[int] = []

    def change(self, item: StreamedChange) -> None:
        """Apply one change now; the main connection must be idle."""
        if item.xid in self.abandoned:
            return
        try:
            if self.xid != item.xid:
                self._start(item.xid)
            applier = self._applier
            assert applier is not None
            if item.subxid != item.xid and item.subxid not in self._savepoints:
                applier.savepoint(f"pgf_{item.subxid}")
                self._savepoints.append(item.subxid)
            applier.apply(item.message)
        except (FollowerError, psycopg.Error) as exc:
            self._abandon(item.xid, exc)

    def abort(self, item: StreamedAbort) -> None:
        if item.subxid == item.xid:
            self.abandoned.discard(item.xid)
            if item.xid == self.xid:
                logger.info("streamed transaction %d: aborted upstream, rolled back", item.xid)
                self._end()
            return
        if item.xid != self.xid or item.subxid not in self._savepoints:
            return  # it made no change (or an aborted ancestor's rollback took them)
        applier = self._applier
        assert applier is not None
        try:
            applier.rollback_to(f"pgf_{item.subxid}")
        except (FollowerError, psycopg.Error) as exc:
            self._abandon(item.xid, exc)
            return
        # the savepoints made after it are gone with it
        del self._savepoints[self._savepoints.index(item.subxid) + 1 :]

    def finish(self, txn: SpooledTransaction) -> Commit | None:
        """Commit ``txn`` if it was applied here; None: apply it from the spool
        (or, not spooled, have it sent again).

        The main connection must be idle; an error while the origin moves
        between the sessions ends the session (the origin says what was
        committed).
        """
        c = txn.commit
        main = self.main
        applier = self._applier
        if c.xid in self.abandoned:
            self.abandoned.discard(c.xid)
            return None
        if c.xid != self.xid or applier is None:
            return None  # not applied here (or made no change here)
        if c.commit_lsn < main.position or main.skip_lsn is not None or not main.idle:
            self._end()  # the spool path knows what to do
            return None
        commit = Commit(
            flags=c.flags, commit_lsn=c.commit_lsn, end_lsn=c.end_lsn, commit_ts=c.commit_ts
        )
        try:
            applier.flush_pending()
        except (FollowerError, psycopg.Error) as exc:
            self._abandon(c.xid, exc)
            self.abandoned.discard(c.xid)
            return None
        main.release_origin()
        try:
            applier.take_origin()
            committed = applier.apply(commit)
            applier.release_origin()
        except BaseException:
            # Nothing committed: the session ends, the origin says where it was.
            with contextlib.suppress(psycopg.Error):
                applier.rollback()
            applier.conn.close()  # its end frees the origin
            self._applier = None
            self.xid = None
            raise
        finally:
            main.take_origin()
        self.xid = None
        self._savepoints = []
        self._reset_main_lock_timeout()
        main.position = c.end_lsn
        txn.discard()
        logger.info("streamed transaction %d: applied while it ran upstream, committed", c.xid)
        return committed or commit

    def _abandon(self, xid: int, exc: BaseException) -> None:
        logger.info(
            "streamed transaction %d: applying it while it runs stopped (%s);"
            " it is sent again and spooled, to be applied at its commit",
            xid,
            first_line(exc),
        )
        self.abandoned.add(xid)
        if xid == self.xid:
            self._end()

    def close(self) -> None:
        self._end()
        if self._applier is not None and not self._applier.conn.closed:
            self._applier.conn.close()
        self._applier = None

    # -- one transaction ----------------------------------------------------------
    def _start(self, xid: int) -> PostgresApplier:
        if self.xid is not None:
            self._end()
        if not self.main.idle:
            raise ProtocolError("the main apply connection is in a transaction at a stream")
        applier = self._applier
        if applier is None or applier.conn.closed:
            applier = self._applier = PostgresApplier(
                self._connect(), self.main.origin, self.main.sub_id, self.main.counts
            )
            applier.defer_updates = False  # one transaction, set-based runs already
            applier.prepare_session()
        self.main.set_lock_timeout(MAIN_LOCK_TIMEOUT)
        self.xid = xid
        self._savepoints = []
        applier.apply(Begin(final_lsn=_NEVER, commit_ts=0, xid=xid))
        return applier

    def _end(self) -> None:
        """Forget the current transaction, rolling back what is left of it."""
        if self.xid is None:
            return
        self.xid = None
        self._savepoints = []
        if self._applier is not None and not self._applier.conn.closed:
            try:
                self._applier.rollback()
            except psycopg.Error:
                self._applier.conn.close()
        self._reset_main_lock_timeout()

    def _reset_main_lock_timeout(self) -> None:
        if self.main.idle and not self.main.conn.closed:
            self.main.set_lock_timeout("0")
