"""``pg-follower bench``: native logical replication and pg_follower_py side by side.

Modules: ``workloads`` (what is run and measured), ``systems`` (native and
ours behind one interface), ``runner`` (a fresh cluster pair per run, the
shared "visible downstream" check), ``lag`` (the lag sampler), ``report``
(table, JSON, plot), ``memory`` (``bench memory``: ours' peak RSS).
"""

from __future__ import annotations

from pg_follower.ops.bench.common import WORKER_PATH_ENV
from pg_follower.ops.bench.memory import MemoryResult, bench_memory, run_memory
from pg_follower.ops.bench.suite import run_bench

__all__ = ["WORKER_PATH_ENV", "MemoryResult", "bench_memory", "run_bench", "run_memory"]
