"""Prometheus metrics of a worker, read from its runners at each scrape.

A custom collector rather than gauges updated in the apply loop: the hot path
stays untouched, and a scrape sees the same ``Status``/``Progress`` objects
the supervisor writes to ``follow_status``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pg_follower.errors import ConfigError
from pg_follower.source.decode import str_to_lsn
from pg_follower.source.spool import spool_directory

if TYPE_CHECKING:
    from pg_follower.pipeline.subscription import SubscriptionRunner

logger = logging.getLogger("pg_follower.metrics")

STATES = ("starting", "copying", "streaming", "paused", "error", "stopped")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6, ``:PORT`` for every interface)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"invalid metrics address {address!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def _spool_bytes(subscription_slot: str) -> int:
    """Bytes of big in-progress transactions waiting on disk for their commit."""
    total = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(spool_directory(subscription_slot)):
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class WorkerCollector(Collector):
    """Per subscription and per worker figures, as of the scrape."""

    def __init__(self, runners: Callable[[], Mapping[int, SubscriptionRunner]]):
        self.runners = runners
        self.started = time.time()

    def collect(self) -> Iterator[Any]:
        labels = ["subscription"]
        state = GaugeMetricFamily(
            "pg_follower_subscription_state",
            "1 for the subscription's current state",
            labels=[*labels, "state"],
        )
        received = GaugeMetricFamily(
            "pg_follower_received_lsn", "end of the WAL received (LSN as a number)", labels=labels
        )
        applied = GaugeMetricFamily(
            "pg_follower_applied_lsn",
            "everything below it is applied (LSN as a number)",
            labels=labels,
        )
        lag_bytes = GaugeMetricFamily(
            "pg_follower_lag_bytes", "upstream WAL not yet applied downstream", labels=labels
        )
        lag_seconds = GaugeMetricFamily(
            "pg_follower_lag_seconds", "age of the last applied commit while busy", labels=labels
        )
        transactions = CounterMetricFamily(
            "pg_follower_transactions_applied", "upstream transactions applied", labels=labels
        )
        rows = CounterMetricFamily(
            "pg_follower_rows_applied",
            "rows applied by kind (truncate: tables truncated)",
            labels=[*labels, "kind"],
        )
        errors = CounterMetricFamily(
            "pg_follower_apply_errors",
            "errors recorded (in follow_status.last_error)",
            labels=labels,
        )
        retries = CounterMetricFamily(
            "pg_follower_apply_retries",
            "sessions started again after an error",
            labels=labels,
        )
        spool = GaugeMetricFamily(
            "pg_follower_spool_bytes", "big transactions spooled until commit", labels=labels
        )
        copy = {
            key: GaugeMetricFamily(
                f"pg_follower_copy_{key}", f"initial copy: {text}", labels=labels
            )
            for key, text in (
                ("tables_done", "tables copied"),
                ("tables_total", "tables to copy"),
                ("rows_done", "rows copied"),
                ("rows_total", "rows to copy (planner estimate)"),
            )
        }
        runners = dict(self.runners())
        for runner in runners.values():
            name = [runner.config.name]
            st = runner.snapshot()
            for known in {*STATES, st.state}:
                state.add_metric([*name, known], 1.0 if known == st.state else 0.0)
            progress = runner.progress
            if progress is not None:
                received.add_metric(name, progress.received_lsn)
                applied.add_metric(name, progress.applied_lsn)
                upstream = max(progress.upstream_lsn, progress.received_lsn)
                lag_bytes.add_metric(name, max(0, upstream - progress.applied_lsn))
            elif st.applied_lsn:
                applied.add_metric(name, str_to_lsn(st.applied_lsn))
            if st.lag_seconds is not None:
                lag_seconds.add_metric(name, st.lag_seconds)
            counts = runner.counts
            transactions.add_metric(name, counts.transactions)
            for kind, value in (
                ("insert", counts.inserted),
                ("update", counts.updated),
                ("delete", counts.deleted),
                ("truncate", counts.truncated),
            ):
                rows.add_metric([*name, kind], value)
            errors.add_metric(name, st.errors)
            retries.add_metric(name, st.retries)
            spool.add_metric(name, _spool_bytes(runner.config.slot_name))
            copy["tables_done"].add_metric(name, st.tables_copied)
            copy["tables_total"].add_metric(name, st.tables_total or 0)
            copy["rows_done"].add_metric(name, st.rows_copied)
            copy["rows_total"].add_metric(name, st.rows_total or 0)
        yield state
        yield received
        yield applied
        yield lag_bytes
        yield lag_seconds
        yield transactions
        yield rows
        yield errors
        yield retries
        yield spool
        yield from copy.values()
        yield GaugeMetricFamily("pg_follower_worker_up", "1 while the worker runs", 1.0)
        yield GaugeMetricFamily(
            "pg_follower_worker_uptime_seconds", "seconds since start", time.time() - self.started
        )
        yield GaugeMetricFamily(
            "pg_follower_worker_rss_bytes", "resident memory of the worker", _rss_bytes()
        )
        yield GaugeMetricFamily(
            "pg_follower_worker_subscriptions", "subscriptions served", len(runners)
        )


def serve(address: str, runners: Callable[[], Mapping[int, SubscriptionRunner]]) -> None:
    """Serve ``/metrics`` on ``address`` from a daemon thread."""
    host, port = parse_address(address)
    registry = CollectorRegistry()
    registry.register(WorkerCollector(runners))
    start_http_server(port, addr=host, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", host, port)
