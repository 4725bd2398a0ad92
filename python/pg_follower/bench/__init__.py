"""``pg-follower bench``: native logical replication and pg_follower_py side by side.

Modules: ``workloads`` (what is run and measured), ``systems`` (native and
ours behind one interface), ``runner`` (a fresh cluster pair per run, the
shared "visible downstream" check), ``lag`` (the lag sampler), ``report``
(table, JSON, plot), ``memory`` (``bench memory``: ours' peak RSS).
"""

from __future__ import annotations

from .common import WORKER_PATH_ENV
from .memory import MemoryResult, bench_memory, run_memory
from .suite import run_bench

__all__ = ["WORKER_PATH_ENV", "MemoryResult", "bench_memory", "run_bench", "run_memory"]
