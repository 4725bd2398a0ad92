"""The bench's lag arithmetic (no clusters)."""

from __future__ import annotations

from pg_follower.ops.bench.lag import lag_at, percentile


def test_lag_is_the_age_of_the_oldest_unapplied_upstream_sample() -> None:
    times, lsns = [10.0, 10.1, 10.2, 10.3], [100, 200, 200, 300]
    assert lag_at(times, lsns, applied=300, now=10.35) == 0.0  # caught up
    assert abs(lag_at(times, lsns, applied=250, now=10.35) - 0.05) < 1e-9  # only the last
    assert abs(lag_at(times, lsns, applied=200, now=10.35) - 0.05) < 1e-9
    assert abs(lag_at(times, lsns, applied=150, now=10.35) - 0.25) < 1e-9
    assert abs(lag_at(times, lsns, applied=0, now=10.35) - 0.35) < 1e-9


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) == 0.0
