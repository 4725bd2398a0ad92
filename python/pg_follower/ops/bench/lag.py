"""Replication lag sampled the same way for both systems.

Every 100 ms a thread reads the upstream's ``pg_current_wal_lsn()`` (and
remembers when) and then the downstream's applied position, the
``remote_lsn`` of its replication origin. The lag at that moment is how long
ago the upstream was first seen past the applied position (0 when it has
not been: caught up). The resolution is one sample interval.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pg_follower.source.decode import str_to_lsn

LAG_INTERVAL = 0.1


@dataclass(slots=True)
class LagSummary:
    p50: float
    p99: float
    max: float
    samples: int
    series: list[tuple[float, float]] = field(default_factory=list)  # (s since start, lag s)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: a value that was observed)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def lag_at(times: list[float], lsns: list[int], applied: int, now: float) -> float:
    """Seconds since the upstream was first seen past ``applied`` (0: it was not).

    ``lsns`` are the upstream positions read at ``times``, in order.
    """
    first = bisect.bisect_right(lsns, applied)  # the oldest sample not yet applied
    return max(0.0, now - times[first]) if first < len(lsns) else 0.0


class LagSampler(threading.Thread):
    def __init__(self, up_dsn: str, down_dsn: str, origin_lsn_query: str):
        super().__init__(name="lag-sampler", daemon=True)
        self.up_dsn, self.down_dsn, self.origin_lsn_query = up_dsn, down_dsn, origin_lsn_query
        self.stop_event = threading.Event()
        self.upstream_times: list[float] = []  # when each upstream position was read
        self.upstream_lsns: list[int] = []  # non-decreasing
        self.lags: list[tuple[float, float]] = []
        self.error: BaseException | None = None
        self.started_at = time.monotonic()

    def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            with (
                psycopg.connect(self.up_dsn, autocommit=True) as upc,
                psycopg.connect(self.down_dsn, autocommit=True) as downc,
            ):
                while True:
                    self.sample(upc, downc)
                    if self.stop_event.wait(LAG_INTERVAL):
                        self.sample(upc, downc)  # the caught-up state at the end
                        return
        except BaseException as exc:  # reported by summary()
            self.error = exc

    def sample(self, upc: psycopg.Connection[Any], downc: psycopg.Connection[Any]) -> None:
        row = upc.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        self.upstream_times.append(time.monotonic())
        self.upstream_lsns.append(str_to_lsn(str(row[0])))
        applied_row = downc.execute(self.origin_lsn_query).fetchone()
        now = time.monotonic()
        applied = str_to_lsn(str(applied_row[0])) if applied_row and applied_row[0] else 0
        lag = lag_at(self.upstream_times, self.upstream_lsns, applied, now)
        self.lags.append((now - self.started_at, lag))

    def stop(self) -> LagSummary:
        self.stop_event.set()
        self.join()
        if self.error is not None:
            raise self.error
        values = [lag for _, lag in self.lags]
        return LagSummary(
            p50=round(percentile(values, 0.50), 3),
            p99=round(percentile(values, 0.99), 3),
            max=round(max(values, default=0.0), 3),
            samples=len(values),
            series=[(round(t, 2), round(lag, 3)) for t, lag in self.lags],
        )
