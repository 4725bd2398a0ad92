"""The worker's supervisor: serves every subscription of one downstream database.

It holds a session advisory lock (so one worker serves a database and
``follow_status`` knows whether it lives), notices new and stopped
subscriptions within a second (LISTEN/NOTIFY plus polling), runs one
``SubscriptionRunner`` thread per subscription and writes their status and
its own heartbeat. SIGTERM stops it cleanly; SIGUSR1 makes it look at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

import psycopg

from pg_follower import __version__
from pg_follower.errors import ConfigError, FollowerError, first_line
from pg_follower.pipeline.subscription import (
    Backoff,
    SubscriptionConfig,
    SubscriptionRunner,
)
from pg_follower.source import conninfo as conninfo_mod
from pg_follower.source.stream import worker_conninfo

logger = logging.getLogger("pg_follower.supervise")

# pg_try_advisory_lock(int4, int4) key; pgfollower.worker_pid() looks for it.
LOCK_KEY = (1885759088, 1)
CHANNEL = "pg_follower_py"
POLL_INTERVAL = 1.0
# Where a launched worker serves metrics (ALTER DATABASE ... SET), if anywhere.
METRICS_SETTING = "pg_follower_py.metrics_address"
WAIT_SLICE = 0.2
# The first extension version whose catalog has the pause flag, flushed_lsn
# and the counters. The installed Python is always the newest, while a
# database may still have an older version's tables until ALTER EXTENSION
# ... UPDATE: the worker writes what the catalog it finds has.
PAUSE_AND_COUNTERS = (0, 2, 0)


def version_tuple(version: str) -> tuple[int, ...]:
    """'0.2.0' -> (0, 2, 0); anything unparsable sorts first."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


class AnotherWorker(FollowerError):
    """Another worker already serves this database."""


class ExtensionMissing(FollowerError):
    """The downstream database has no pg_follower_py extension (any more)."""


class Supervisor:
    """Runs until SIGTERM (or ``stop()``), reconnecting to the downstream as needed."""

    def __init__(self, dsn: str, metrics_address: str | None = None):
        try:
            self.params = conninfo_mod.parse(dsn)
        except ConfigError as exc:
            raise ConfigError(f"invalid --dsn: {exc}") from exc
        self.dsn = dsn
        self.runners: dict[int, SubscriptionRunner] = {}
        self.stop_event = threading.Event()
        self.metrics_address = metrics_address
        self.metrics_started = False
        self.catalog: tuple[int, ...] = (0,)  # the extension version of the downstream
        # What each runner's counters were at the last status write (deltas are added).
        self.counts_written: dict[int, tuple[int, int]] = {}

    # -- signals -------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGUSR1, self._on_wake_signal)
        signal.signal(signal.SIGHUP, self._on_wake_signal)

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s: stopping", signal.Signals(signum).name)
        self.stop()

    def _on_wake_signal(self, _signum: int, _frame: FrameType | None) -> None:
        """Nothing to do: the signal interrupts the wait, and the loop looks again."""

    def stop(self) -> None:
        self.stop_event.set()

    # -- main loop -------------------------------------------------------------
    def run(self) -> int:
        """Serve until stopped; the exit status for the command line."""
        backoff = Backoff(maximum=10.0)
        try:
            while not self.stop_event.is_set():
                try:
                    self._serve(backoff)
                except AnotherWorker as exc:
                    logger.info("%s", exc)
                    return 0
                except ExtensionMissing as exc:
                    logger.error("%s", exc)
                    return 1
                except psycopg.Error as exc:
                    if self._downstream_gone():
                        logger.error("the downstream's socket directory is gone: exiting")
                        return 1
                    logger.warning("downstream connection lost: %s", first_line(exc))
                if not self.stop_event.is_set():
                    self.stop_event.wait(backoff.next())
        finally:
            self._stop_runners(list(self.runners))
        return 0

    def _downstream_gone(self) -> bool:
        """A unix-socket downstream whose directory vanished was a throwaway server."""
        host = self.params.get("host", "")
        return host.startswith("/") and "," not in host and not os.path.isdir(host)

    def _serve(self, backoff: Backoff) -> None:
        with psycopg.connect(worker_conninfo(self.dsn), autocommit=True) as conn:
            if not conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'pg_follower_py'"
            ).fetchone():
                raise ExtensionMissing(
                    f"database {conn.info.dbname!r} has no pg_follower_py extension:"
                    " run CREATE EXTENSION pg_follower_py CASCADE there"
                )
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEY).fetchone()
            if not row or not row[0]:
                raise AnotherWorker(
                    f"another pg_follower worker already serves database {conn.info.dbname!r}"
                )
            conn.execute(
                "INSERT INTO pgfollower.worker (pid, started_at, heartbeat_at, version)"
                " VALUES (%s, now(), now(), %s)"
                " ON CONFLICT (singleton) DO UPDATE SET pid = excluded.pid,"
                " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
                " version = excluded.version",
                [os.getpid(), __version__],
            )
            conn.execute(f"LISTEN {CHANNEL}")
            self._start_metrics(conn)
            logger.info("serving database %r (pid %d)", conn.info.dbname, os.getpid())
            backoff.reset()
            while not self.stop_event.is_set():
                self._reconcile(conn)
                self._write_status(conn)
                self._wait(conn)

    def _start_metrics(self, conn: psycopg.Connection[Any]) -> None:
        """Serve metrics on --metrics-address, else on the database's setting."""
        if self.metrics_started:
            return
        self.metrics_started = True  # once: a failed bind is not retried
        address = self.metrics_address
        if not address:
            row = conn.execute("SELECT current_setting(%s, true)", [METRICS_SETTING]).fetchone()
            address = row[0] if row and row[0] else None
        if address:
            try:
                from pg_follower.ops import metrics  # prometheus-client only when asked for

                metrics.serve(address, lambda: self.runners)
            except (FollowerError, OSError, ImportError) as exc:
                logger.warning("no metrics on %s: %s", address, exc)

    def _wait(self, conn: psycopg.Connection[Any]) -> None:
        # Notifications wake us early; short slices bound how late we notice
        # a stop request (a signal does not interrupt psycopg's wait).
        deadline = time.monotonic() + POLL_INTERVAL
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            for notify in conn.notifies(timeout=WAIT_SLICE, stop_after=1):
                # pause/resume and new or stopped subscriptions: the
                # reconcile that follows at once reads them
                if notify.payload == "skip":
                    for runner in self.runners.values():
                        runner.wake()
                return

    def _reconcile(self, conn: psycopg.Connection[Any]) -> None:
        """Start runners for new subscriptions, stop those removed.

        Rows locked by an in-progress stop_follow are skipped, so the runner
        lets go of its slot and origin while stop_follow waits for them.
        """
        row = conn.execute(
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_follower_py'"
        ).fetchone()
        if row is None:
            raise ExtensionMissing(
                f"database {conn.info.dbname!r} has no pg_follower_py extension any more"
            )
        self.catalog = version_tuple(str(row[0]))
        paused = "paused" if self.catalog >= PAUSE_AND_COUNTERS else "false"
        rows = conn.execute(
            "SELECT id, name, conninfo, upstream, slot_name, origin_name, copy_data, "
            + paused
            + " FROM pgfollower.subscription FOR KEY SHARE SKIP LOCKED"
        ).fetchall()
        wanted = {r[0]: SubscriptionConfig(*r[:7]) for r in rows}
        pause = {r[0]: bool(r[7]) for r in rows}
        gone = [i for i, r in self.runners.items() if i not in wanted or not r.is_alive()]
        self._stop_runners(gone)
        for sub_id, config in wanted.items():
            runner = self.runners.get(sub_id)
            if runner is not None:
                runner.set_paused(pause[sub_id])
                continue
            logger.info(
                "subscription %s: starting (upstream %s)%s",
                config.name,
                config.upstream,
                ", paused" if pause[sub_id] else "",
                extra={"subscription": config.name},
            )
            runner = SubscriptionRunner(config, self.dsn)
            runner.paused = pause[sub_id]
            self.runners[sub_id] = runner
            runner.start()

    def _stop_runners(self, ids: list[int]) -> None:
        for i in ids:
            self.counts_written.pop(i, None)
        runners = [self.runners.pop(i) for i in ids if i in self.runners]
        for runner in runners:
            logger.info(
                "subscription %s: stopping",
                runner.config.name,
                extra={"subscription": runner.config.name},
            )
            runner.stop()
        for runner in runners:
            runner.join(timeout=10)

    def _write_status(self, conn: psycopg.Connection[Any]) -> None:
        # 0.2.0 catalogs also take flushed_lsn and the counters, which grow by
        # what was applied since the last write (so they survive restarts).
        counters = self.catalog >= PAUSE_AND_COUNTERS
        extra = (
            " flushed_lsn = %s, transactions_applied = transactions_applied + %s,"
            " rows_applied = rows_applied + %s,"
            if counters
            else ""
        )
        written: dict[int, tuple[int, int]] = {}
        with conn.transaction():
            conn.execute(
                "UPDATE pgfollower.worker SET heartbeat_at = now(), pid = %s", [os.getpid()]
            )
            for sub_id, runner in self.runners.items():
                st = runner.snapshot()
                # A worker that did not copy (it started after the copy) keeps
                # the copy's figures that the row already holds.
                copied = runner.copy_progress is not None
                params: list[Any] = [
                    st.state,
                    st.received_lsn,
                    st.applied_lsn,
                    st.upstream_lsn,
                    st.lag_seconds,
                    st.last_error,
                    st.last_error_at,
                    st.error_lsn,
                    st.error_statement,
                    st.tables_copied if copied else None,
                    copied,
                    st.tables_total,
                    st.rows_copied if copied else None,
                    copied,
                    st.rows_total,
                ]
                now = (runner.counts.transactions, runner.counts.rows)
                if counters:
                    before = self.counts_written.get(sub_id, (0, 0))
                    params += [st.flushed_lsn, now[0] - before[0], now[1] - before[1]]
                # (an older catalog: counted from the update on, as counters_since says)
                written[sub_id] = now
                conn.execute(
                    "UPDATE pgfollower.subscription_status SET state = %s,"
                    " received_lsn = %s, applied_lsn = %s, upstream_lsn = %s,"
                    " lag_seconds = %s, last_error = %s, last_error_at = %s,"
                    " error_lsn = %s, error_statement = %s,"
                    " tables_copied = coalesce(%s, tables_copied),"
                    " tables_total = CASE WHEN %s THEN %s ELSE tables_total END,"
                    " rows_copied = coalesce(%s, rows_copied),"
                    " rows_total = CASE WHEN %s THEN %s ELSE rows_total END,"
                    + extra
                    + " updated_at = now() WHERE sub_id = %s",
                    [*params, sub_id],
                )
        self.counts_written.update(written)  # only once they are committed
