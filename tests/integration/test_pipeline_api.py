"""The Python API: a pipeline from a plain upstream (no extension) into the
README's example destination, which counts changes per table."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from conftest import Node, wait_until
from pg_follower.pipeline import Pipeline
from pg_follower.source.postgres import PostgresSource

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "count_changes.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("count_changes", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pipeline_snapshot_then_changes_in_order(plain_upstream: Node) -> None:
    up = plain_upstream
    up.execute("CREATE TABLE t1 (id int PRIMARY KEY, v text)")
    up.execute("CREATE TABLE t2 (v text)")
    up.execute("INSERT INTO t1 SELECT g, 'x' FROM generate_series(1, 100) g")
    up.execute("CREATE PUBLICATION my_publication FOR TABLE t1, t2")
    destination = _example().CountChanges()
    source = PostgresSource(up.dsn, slot="api_slot", publication="my_publication")
    pipeline = Pipeline(source, destination, snapshot=True)
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    wait_until(lambda: destination.counts["public.t1"] == 100, 30, "the snapshot of t1")
    up.execute("UPDATE t1 SET v = 'y' WHERE id <= 10")
    up.execute("DELETE FROM t1 WHERE id > 90")
    up.execute("INSERT INTO t2 VALUES ('a'), ('b')")
    up.execute("TRUNCATE t2")
    expected = {"public.t1": 120, "public.t2": 3}
    wait_until(lambda: dict(destination.counts) == expected, 30, lambda: str(destination.counts))
    # the slot is confirmed up to what the destination holds
    wait_until(
        lambda: up.scalar(
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots"
            " WHERE slot_name = 'api_slot'",
            [f"{destination.last_lsn >> 32:X}/{destination.last_lsn & 0xFFFFFFFF:X}"],
        ),
        10,
        "the slot's confirmed position",
    )
    pipeline.stop()
    runner.join(10)
    assert not runner.is_alive()


def test_until_caught_up_returns(plain_upstream: Node) -> None:
    up = plain_upstream
    up.execute("CREATE TABLE t (id int PRIMARY KEY)")
    up.execute("CREATE PUBLICATION p FOR TABLE t")
    destination = _example().CountChanges()
    source = PostgresSource(up.dsn, slot="api_once", publication="p")
    Pipeline(source, destination, until_caught_up=True).run()  # makes the slot
    up.execute("INSERT INTO t SELECT generate_series(1, 50)")
    Pipeline(
        PostgresSource(up.dsn, slot="api_once", publication="p"), destination, until_caught_up=True
    ).run()
    assert destination.counts["public.t"] == 50
