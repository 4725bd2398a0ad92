"""Fault injection: the pipeline is killed, restarted and cut at random
moments while the upstream keeps writing; the downstream must converge with
nothing missing and nothing applied twice.

Each test prints what it did. PG_FOLLOWER_FAULT_SEED replays a run,
PG_FOLLOWER_FAULT_ROUNDS makes it longer.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from conftest import Pair, wait_until

# rounds of faults; at least one of each kind (the default)
ROUNDS = int(os.environ.get("PG_FOLLOWER_FAULT_ROUNDS", "0"))

SCHEMA = """
CREATE TABLE items (id bigserial PRIMARY KEY, v int NOT NULL, note text);
CREATE TABLE ledger (txn bigint, rows int);  -- keyless: a doubled transaction shows twice
"""


@pytest.fixture
def rng(capsys: pytest.CaptureFixture[str]) -> random.Random:
    seed = int(os.environ.get("PG_FOLLOWER_FAULT_SEED", random.randrange(1 << 30)))
    with capsys.disabled():
        print(f"\n[faults] seed {seed} (PG_FOLLOWER_FAULT_SEED={seed} replays it)")
    return random.Random(seed)


class Workload(threading.Thread):
    """Upstream writer: transactions of mixed size and shape, and subtransactions
    rolled back; it reconnects after outages (restarts)."""

    def __init__(self, dsn: str, rng: random.Random):
        super().__init__(name="workload", daemon=True)
        self.dsn = dsn
        self.rng = random.Random(rng.random())
        self.stop = threading.Event()
        self.big_now = threading.Event()
        self.big_update_now = threading.Event()
        self.committed = 0
        self.outages = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    with psycopg.connect(self.dsn, autocommit=True) as conn:
                        while not self.stop.is_set():
                            self._transaction(conn)
                except psycopg.OperationalError:
                    self.outages += 1
                    self.stop.wait(0.2)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def _transaction(self, conn: psycopg.Connection[Any]) -> None:
        roll = self.rng.random()
        n = self.committed + 1
        with conn.transaction():
            if self.big_update_now.is_set():
                # many rows changed in one transaction: applied as a set
                self.big_update_now.clear()
                cur = conn.execute("UPDATE items SET v = v + 1 WHERE id % 3 = 0")
                rows = cur.rowcount
                conn.execute("DELETE FROM items WHERE id % 7 = 0")
            elif self.big_now.is_set() or roll < 0.01:
                # big enough to be applied in several COPY batches
                rows = 20_000 if self.big_now.is_set() else 3_000
                self.big_now.clear()
                conn.execute(
                    "INSERT INTO items (v, note) SELECT g, md5(g::text)"
                    " FROM generate_series(1, %s) g",
                    [rows],
                )
            else:
                rows = self.rng.randint(1, 20)
                conn.execute(
                    "INSERT INTO items (v, note) SELECT g, 'n' FROM generate_series(1, %s) g",
                    [rows],
                )
                top = conn.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()
                start = self.rng.randint(1, max(1, int(top[0] if top else 1)))
                conn.execute(
                    "UPDATE items SET v = v + 1, note = NULL WHERE id BETWEEN %s AND %s",
                    [start, start + 3],
                )
                conn.execute("DELETE FROM items WHERE id = %s", [start + 5])
                if roll < 0.2:
                    # a subtransaction rolled back: its rows must never appear
                    try:
                        with conn.transaction():
                            conn.execute("INSERT INTO items (v, note) VALUES (-1, 'rolled back')")
                            raise _Rollback
                    except _Rollback:
                        pass
            conn.execute("INSERT INTO ledger VALUES (%s, %s)", [n, rows])
        self.committed = n

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=60)
        assert self.error is None, f"the workload failed: {self.error!r}"


class _Rollback(Exception):
    pass


def _relaunch(pair: Pair) -> None:
    pair.down.execute("SELECT start_follow_worker()")
    wait_until(pair.worker_pid, 20, "a new worker")


_BURST_IDS = itertools.count(1)


def _burst(dsn: str, transactions: int) -> str:
    """Many small transactions at once (so the worker groups them); the WAL
    position after the last. Their ledger entries are negative, one each."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(transactions):
            with conn.transaction():
                conn.execute("INSERT INTO items (v, note) VALUES (%s, 'burst')", [i])
                conn.execute("INSERT INTO ledger VALUES (%s, 1)", [-next(_BURST_IDS)])
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def _update_burst(dsn: str, transactions: int) -> None:
    """Small transactions that UPDATE a few rows again and again, one ledger
    entry each: grouped, their UPDATEs wait and are coalesced downstream."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(transactions):
            with conn.transaction():
                conn.execute(
                    "UPDATE items SET v = v + 1, note = 'updated'"
                    " WHERE id = (SELECT min(id) + %s FROM items)",
                    [i % 7],
                )
                conn.execute("INSERT INTO ledger VALUES (%s, 1)", [-next(_BURST_IDS)])


def _worker_writing(pair: Pair) -> bool:
    """Does an apply session of the worker hold a transaction with writes?"""
    rows = pair.down.rows(
        "SELECT backend_xid, left(query, 60) FROM pg_stat_activity"
        " WHERE application_name = 'pg_follower worker'"
    )
    return any(xid is not None and "pgfollower." not in q for xid, q in rows)


def _window_open(pair: Pair) -> bool:
    """Is something committed downstream but not yet confirmed upstream?"""
    slot = pair.status()["slot_name"]
    applied = pair.down.scalar(
        "SELECT remote_lsn FROM pg_replication_origin_status s"
        " JOIN pgfollower.subscription sub ON sub.origin_name = s.external_id"
    )
    confirmed = pair.up.scalar(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s", [slot]
    )
    if applied is None or confirmed is None:
        return False
    return bool(pair.up.scalar("SELECT %s::pg_lsn > %s::pg_lsn", [applied, confirmed]))


def _compare(pair: Pair) -> dict[str, int]:
    """Both sides hold exactly the same rows; no upstream transaction twice."""
    items = "SELECT id, v, note FROM items ORDER BY id"
    up_items, down_items = pair.up.rows(items), pair.down.rows(items)
    assert len(down_items) == len(up_items)
    assert down_items == up_items
    ledger = "SELECT txn, rows FROM ledger"
    up_ledger, down_ledger = Counter(pair.up.rows(ledger)), Counter(pair.down.rows(ledger))
    doubled = [k for k, c in down_ledger.items() if c > 1]
    assert not doubled, f"transactions applied twice: {doubled[:10]}"
    assert down_ledger == up_ledger
    assert not pair.down.scalar("SELECT count(*) FROM items WHERE note = 'rolled back'")
    return {"rows": len(up_items), "transactions": len(up_ledger)}


def _copy_backend_or_done(pair: Pair) -> Callable[[], int | None]:
    """The pid of the downstream session writing the copy's rows, or -1 once
    the copy is done."""

    def check() -> int | None:
        pid = pair.down.scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_follower worker'"
            " AND state = 'active' AND query LIKE 'COPY % FROM STDIN%'"
        )
        if pid is not None:
            return int(pid)
        return -1 if pair.status().get("state") == "streaming" else None

    return check


def _report(capsys: pytest.CaptureFixture[str], lines: list[str]) -> None:
    with capsys.disabled():
        for line in lines:
            print(f"[faults] {line}")


def test_random_faults_while_streaming(
    pair: Pair, rng: random.Random, capsys: pytest.CaptureFixture[str]
) -> None:
    pair.up.execute(SCHEMA)
    pair.follow(copy_data=True)
    workload = Workload(pair.up.dsn, rng)
    workload.start()
    done: Counter[str] = Counter()
    in_window = 0

    def kill_worker() -> None:
        nonlocal in_window
        in_window += _window_open(pair)
        pair.kill_worker(signal.SIGKILL)
        _relaunch(pair)

    def kill_worker_mid_transaction() -> None:
        workload.big_now.set()
        # the applier's connection has a transaction with writes in it
        seen: list[Any] = []

        def applying() -> bool:
            seen[:] = pair.down.rows(
                "SELECT backend_xid, state, left(query, 60) FROM pg_stat_activity"
                " WHERE application_name = 'pg_follower worker'"
            )
            return any(xid is not None and "pgfollower." not in q for xid, _, q in seen)

        try:
            busy = wait_until(applying, 30, "the worker to be inside a transaction")
        except BaseException:
            print("worker sessions:", seen, pair.status())
            raise
        assert busy
        kill_worker()

    def restart_downstream() -> None:
        pair.down.cluster.restart("immediate")
        pair.down.reconnect()

    def crash_downstream_after_a_burst() -> None:
        # Commits downstream do not wait for their WAL flush: a crash right
        # after some are visible loses them there, so the upstream must not
        # have been told of them.
        end = _burst(pair.up.dsn, 300)
        wait_until(
            lambda: pair.down.scalar(
                "SELECT remote_lsn >= %s::pg_lsn FROM pg_replication_origin_status s"
                " JOIN pgfollower.subscription sub ON sub.origin_name = s.external_id",
                [end],
            ),
            30,
            "the burst to be applied",
        )
        restart_downstream()

    def kill_worker_in_a_group() -> None:
        burst = threading.Thread(target=_burst, args=(pair.up.dsn, 2000), daemon=True)
        burst.start()
        wait_until(lambda: _worker_writing(pair), 30, "the worker to apply a group")
        kill_worker()
        burst.join(60)

    def kill_worker_in_grouped_updates() -> None:
        burst = threading.Thread(target=_update_burst, args=(pair.up.dsn, 2000), daemon=True)
        burst.start()
        wait_until(lambda: _worker_writing(pair), 30, "the worker to apply a group")
        kill_worker()
        burst.join(60)

    def kill_worker_in_a_set_based_apply() -> None:
        workload.big_update_now.set()
        wait_until(lambda: _worker_writing(pair), 30, "the worker to apply the big UPDATE")
        kill_worker()

    def restart_upstream() -> None:
        pair.up.cluster.restart("fast")
        pair.up.reconnect()

    def terminate_walsender() -> None:
        wait_until(
            lambda: pair.up.scalar(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE backend_type = 'walsender' AND datname = current_database()"
            ),
            30,
            "a walsender to terminate",
        )

    faults: dict[str, Callable[[], None]] = {
        "SIGKILL worker": kill_worker,
        "SIGKILL worker mid-transaction": kill_worker_mid_transaction,
        "restart downstream (immediate)": restart_downstream,
        "stop downstream (immediate) right after a burst": crash_downstream_after_a_burst,
        "SIGKILL worker inside a grouped apply": kill_worker_in_a_group,
        "SIGKILL worker inside grouped, coalesced UPDATEs": kill_worker_in_grouped_updates,
        "SIGKILL worker inside a set-based apply": kill_worker_in_a_set_based_apply,
        "restart upstream (fast)": restart_upstream,
        "terminate walsender": terminate_walsender,
    }
    names = list(faults)
    try:
        for i in range(max(ROUNDS, len(names))):
            # every kind at least once, then at random
            name = names[i] if i < len(names) else rng.choice(names)
            wait_until(lambda: workload.committed > 0, 30, "the workload")
            threading.Event().wait(rng.uniform(0.2, 1.5))  # a random moment, not a condition
            faults[name]()
            done[name] += 1
    finally:
        workload.finish()
    pair.caught_up(180)
    compared = _compare(pair)
    _report(
        capsys,
        [f"{count} x {name}" for name, count in done.items()]
        + [
            f"kills landing between a downstream commit and its feedback: {in_window}",
            f"upstream outages seen by the workload: {workload.outages}",
            f"upstream transactions: {workload.committed}; compared {compared['rows']} rows"
            f" and {compared['transactions']} ledger entries: converged, none doubled",
        ],
    )


def test_sigkill_during_the_initial_copy(
    pair: Pair, rng: random.Random, capsys: pytest.CaptureFixture[str]
) -> None:
    pair.up.execute(SCHEMA)
    pair.up.execute(
        "INSERT INTO items (v, note) SELECT g, repeat(md5(g::text), 4)"
        " FROM generate_series(1, 400000) g"
    )
    pair.up.execute("ANALYZE items")
    workload = Workload(pair.up.dsn, rng)
    workload.start()
    kills = interrupted = 0
    try:
        pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
        for attempt in range(3):
            backend = wait_until(_copy_backend_or_done(pair), 60, "the copy to be under way")
            if backend == -1:
                break  # finished first: nothing left to interrupt
            if attempt:  # the first kill lands mid-COPY, the others at random moments
                threading.Event().wait(rng.uniform(0.0, 0.5))
            pair.kill_worker(signal.SIGKILL)
            kills += 1
            wait_until(
                lambda b=backend: (
                    not pair.down.scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [b]
                    )
                ),
                30,
                "the killed copy's session to end",
            )
            copied = pair.down.scalar("SELECT to_regclass('public.items') IS NOT NULL")
            interrupted += not copied  # and then it left nothing behind
            _relaunch(pair)
            if copied:
                break  # it had committed just before the kill
        wait_until(lambda: pair.status().get("state") == "streaming", 120, "the copy to finish")
    finally:
        workload.finish()
    assert interrupted >= 1, "no kill landed inside the copy"
    pair.caught_up(120)
    compared = _compare(pair)
    slots = pair.up.scalar(
        "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"
    )
    assert slots == 1
    status = pair.status()
    # the worker that finished the copy may not be the one running now
    assert status["tables_copied"] == status["tables_total"] == 2
    _report(
        capsys,
        [
            f"{kills} x SIGKILL worker during the initial copy, {interrupted} before its commit"
            " (and nothing of it was left downstream)",
            f"copy: {status['tables_copied']}/{status['tables_total']} tables,"
            f" {status['rows_copied']} rows (estimated {status['rows_total']})",
            f"upstream transactions during the copy and after: {workload.committed};"
            f" compared {compared['rows']} rows: converged, none doubled",
        ],
    )
