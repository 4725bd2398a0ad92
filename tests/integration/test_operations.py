"""Operations: a worker run by hand (launch_worker = off) with metrics, the status
screen, JSON logs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from conftest import Pair, wait_until
from pg_follower.ops.cluster import bindir, free_port

SECRET = "S3cret-Pw-0ps9"
TRANSACTIONS = int(os.environ.get("PG_FOLLOWER_TEST_METRICS_TXNS", "100000"))
PYTHON_DIR = Path(__file__).resolve().parents[2] / "python"


@contextlib.contextmanager
def hand_run_worker(pair: Pair, *args: str, log: Path | None = None) -> Iterator[None]:
    """``pg-follower worker`` started by us, as systemd would, until the block ends."""
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR), PG_FOLLOWER_DSN=pair.down.dsn)
    env.pop("PG_FOLLOWER_METRICS_ADDRESS", None)
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "pg_follower", "worker", *args],
        env=env,
        stdout=out,
        stderr=out,
    )
    try:
        wait_until(lambda: pair.worker_pid() == proc.pid, 30, "the hand-run worker to serve")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if log:
            out.close()  # type: ignore[union-attr]


def _call(pair: Pair, procedure: str, *args: int) -> None:
    with psycopg.connect(pair.up.dsn, autocommit=True) as conn:
        conn.execute(f"CALL {procedure}({', '.join(['%s'] * len(args))})", args)


def start_without_worker(pair: Pair, conninfo: str | None = None, copy_data: bool = False) -> None:
    with psycopg.connect(pair.down.dsn, autocommit=True) as conn:
        conn.execute("SET pg_follower_py.launch_worker = off")
        conn.execute("SELECT start_follow(%s, 'default', %s)", [conninfo or pair.up.dsn, copy_data])
    assert pair.worker_pid() is None


def scrape(port: int) -> dict[Key, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


Key = tuple[str, tuple[tuple[str, str], ...]]


def key(name: str, **labels: str) -> Key:
    """A sample's key in ``scrape``'s result."""
    return name, tuple(sorted(labels.items()))


def sub(name: str, **labels: str) -> Key:
    return key(name, subscription="default", **labels)


def test_metrics_during_a_stream(pair: Pair) -> None:
    port = free_port()
    # upstream only: procedures are not replicated
    pair.up.execute(
        "CREATE PROCEDURE tick(half int, n int) LANGUAGE plpgsql AS $$ BEGIN"
        " FOR i IN 1..n LOOP INSERT INTO ticks (id) VALUES (half * n + i); COMMIT; END LOOP;"
        " END $$"
    )
    start_without_worker(pair)
    with hand_run_worker(pair, "--metrics-address", f"127.0.0.1:{port}"):
        wait_until(lambda: pair.status().get("state") == "streaming", 30, "streaming")
        pair.up.execute("CREATE TABLE ticks (id int PRIMARY KEY, at timestamptz DEFAULT now())")
        pair.caught_up()
        first = scrape(port)
        assert first[key("pg_follower_worker_up")] == 1
        assert first[key("pg_follower_worker_rss_bytes")] > 10 << 20
        assert first[sub("pg_follower_subscription_state", state="streaming")] == 1
        assert first[sub("pg_follower_subscription_state", state="error")] == 0
        assert first[sub("pg_follower_apply_errors_total")] == 0
        assert first[sub("pg_follower_spool_bytes")] == 0

        # applied LSN and the transaction counter move while each half is streamed
        samples = [first]
        for half in range(2):
            before = scrape(port)
            writer = threading.Thread(target=_call, args=[pair, "tick", half, TRANSACTIONS // 2])
            writer.start()

            def moved(before: dict[Key, float] = before) -> bool:
                samples.append(now := scrape(port))
                return all(
                    now[name] > before[name]
                    for name in (
                        sub("pg_follower_applied_lsn"),
                        sub("pg_follower_transactions_applied_total"),
                        sub("pg_follower_rows_applied_total", kind="insert"),
                    )
                )

            wait_until(moved, 120, lambda: f"applied LSN and transactions to move: {pair.status()}")
            # follow_status counts too, as of the worker's status writes
            counted = pair.status()["transactions_applied"]
            wait_until(
                lambda counted=counted: pair.status()["transactions_applied"] > counted,
                30,
                lambda counted=counted: f"follow_status.transactions_applied to pass {counted}",
            )
            writer.join()
        pair.caught_up(300)

        def lag_gone() -> dict[Key, float] | None:
            last = scrape(port)
            done = (
                last[sub("pg_follower_lag_bytes")] == 0
                and last[sub("pg_follower_lag_seconds")] == 0
                and last[sub("pg_follower_transactions_applied_total")] >= TRANSACTIONS // 2 * 2
            )
            return last if done else None

        last = wait_until(lag_gone, 60, lambda: f"lag to reach 0: {scrape(port)}")
        assert last[sub("pg_follower_applied_lsn")] >= samples[-1][sub("pg_follower_applied_lsn")]
        assert last[key("pg_follower_worker_uptime_seconds")] > 0
        assert last[sub("pg_follower_rows_applied_total", kind="insert")] == TRANSACTIONS // 2 * 2

        # each kind of row change has its counter
        pair.up.execute("UPDATE ticks SET at = now() WHERE id <= 10")
        pair.up.execute("DELETE FROM ticks WHERE id <= 5")
        pair.up.execute("TRUNCATE ticks")
        pair.down.execute("SELECT wait_for_catchup()")

        def rows(figures: dict[Key, float]) -> list[float]:
            return [
                figures[sub("pg_follower_rows_applied_total", kind=kind)]
                for kind in ("insert", "update", "delete", "truncate")
            ]

        def truncate_counted() -> dict[Key, float] | None:
            figures = scrape(port)
            return figures if rows(figures)[3] > rows(last)[3] else None

        final = wait_until(
            truncate_counted,
            30,
            lambda: f"the TRUNCATE to be counted: {scrape(port)}",
        )
        assert [a - b for a, b in zip(rows(final), rows(last), strict=True)] == [0, 10, 5, 1]
        assert final[sub("pg_follower_apply_retries_total")] == 0
        wait_until(
            lambda: pair.status()["rows_applied"] >= TRANSACTIONS // 2 * 2 + 15,
            30,
            lambda: f"follow_status.rows_applied to count every row: {pair.status()}",
        )
        assert pair.status()["transactions_applied"] >= TRANSACTIONS // 2 * 2 + 3
    assert pair.down.scalar("SELECT count(*) FROM ticks") == 0


def test_metrics_address_setting_and_copy_figures(pair: Pair) -> None:
    port = free_port()
    pair.up.execute("CREATE TABLE seeded AS SELECT g AS id FROM generate_series(1, 1000) g")
    pair.up.execute("ALTER TABLE seeded ADD PRIMARY KEY (id)")
    pair.down.execute(
        f"ALTER DATABASE {pair.down.dbname} SET pg_follower_py.metrics_address = '127.0.0.1:{port}'"
    )
    start_without_worker(pair, copy_data=True)
    with hand_run_worker(pair):
        wait_until(lambda: pair.status().get("state") == "streaming", 60, "streaming")
        figures = scrape(port)
        assert figures[sub("pg_follower_copy_tables_done")] == 1
        assert figures[sub("pg_follower_copy_tables_total")] == 1
        assert figures[sub("pg_follower_copy_rows_done")] == 1000

        # an apply error counts, and so does each retry; the fix clears it
        pair.down.execute("INSERT INTO seeded VALUES (1001)")
        pair.up.execute("INSERT INTO seeded VALUES (1001)")

        def retried() -> dict[Key, float] | None:
            figures = scrape(port)
            return figures if figures[sub("pg_follower_apply_retries_total")] >= 1 else None

        failing = wait_until(
            retried,
            60,
            lambda: f"a retry after the apply error: {pair.status()}",
        )
        assert failing[sub("pg_follower_apply_errors_total")] >= 1
        assert failing[sub("pg_follower_subscription_state", state="error")] == 1
        pair.down.execute("DELETE FROM seeded WHERE id = 1001")
        pair.down.execute("SELECT wait_for_catchup()")
        wait_until(
            lambda: scrape(port)[sub("pg_follower_subscription_state", state="streaming")] == 1,
            30,
            "streaming again",
        )


def test_status_screen_metrics_and_json_log_without_password(pair: Pair) -> None:
    up = pair.up.cluster
    pair.up.execute(f"CREATE ROLE ops_follower LOGIN SUPERUSER REPLICATION PASSWORD '{SECRET}'")
    up.prepend_hba("host all,replication ops_follower 127.0.0.1/32 scram-sha-256")
    conninfo = (
        f"host=127.0.0.1 port={up.port} dbname={pair.up.dbname} user=ops_follower password={SECRET}"
    )
    port = free_port()
    log = pair.down.cluster.datadir.parent / f"ops-{pair.down.dbname}.log"
    try:
        start_without_worker(pair, conninfo)
        with hand_run_worker(
            pair, "--metrics-address", f"127.0.0.1:{port}", "--log-format", "json", log=log
        ):
            wait_until(lambda: pair.status().get("state") == "streaming", 30, "streaming")
            pair.up.execute("CREATE TABLE screen_test (id int PRIMARY KEY)")
            pair.up.execute("INSERT INTO screen_test VALUES (1)")
            pair.caught_up()
            # the downstream DSN of the screen carries a password too (unused by trust)
            dsn = f"{pair.down.dsn} password={SECRET}"
            res = subprocess.run(
                [sys.executable, "-m", "pg_follower", "status", "--once", "--dsn", dsn],
                env=dict(os.environ, PYTHONPATH=str(PYTHON_DIR), COLUMNS="160"),
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            screen = res.stdout
            assert "default" in screen
            assert "streaming" in screen
            assert "pg_follower_py" in screen
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                metrics_text = r.read().decode()
        lines = log.read_text().splitlines()
        assert all(line.startswith("{") for line in lines), lines
        events = [json.loads(line) for line in lines]
        assert all({"time", "level", "logger", "message"} <= e.keys() for e in events)
        started = [e for e in events if e["message"].startswith("subscription default: streaming")]
        assert started and started[0]["subscription"] == "default" and started[0]["lsn"]
        for where, text in (
            ("status screen", screen + res.stderr),
            ("metrics", metrics_text),
            ("worker log", log.read_text()),
        ):
            assert SECRET not in text, f"password in the {where}"
    finally:
        pair.down.execute("DELETE FROM pgfollower.subscription")
        pair.up.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE database = current_database()"
        )
        pair.up.execute("DROP ROLE ops_follower")


def test_follows_as_the_packaged_non_superuser_role(pair: Pair) -> None:
    """The role packaging/docker/follower-role.sql makes is enough to copy and stream."""
    up = pair.up.cluster
    pair.up.execute("CREATE TABLE accounts (id int PRIMARY KEY, owner text)")
    pair.up.execute("INSERT INTO accounts SELECT g, 'o' || g FROM generate_series(1, 100) g")
    pair.up.execute("CREATE SEQUENCE tickets")
    pair.up.execute("SELECT nextval('tickets') FROM generate_series(1, 5)")
    role_sql = PYTHON_DIR.parent / "packaging" / "docker" / "follower-role.sql"
    psql = [str(bindir() / "psql"), "-X", "-q", "-v", f"follower_password={SECRET}"]
    subprocess.run(
        [*psql, "-f", str(role_sql), pair.up.dsn],
        check=True,
        capture_output=True,
        text=True,
    )
    up.prepend_hba("host all,replication follower 127.0.0.1/32 scram-sha-256")
    conninfo = (
        f"host=127.0.0.1 port={up.port} dbname={pair.up.dbname} user=follower password={SECRET}"
    )
    try:
        assert not pair.up.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'follower'")
        pair.down.execute("SELECT start_follow(%s)", [conninfo])
        wait_until(lambda: pair.status().get("state") == "streaming", 60, pair.status)
        pair.up.execute("UPDATE accounts SET owner = 'x' WHERE id <= 10")
        pair.up.execute("INSERT INTO accounts VALUES (101, 'new')")
        pair.caught_up()
        query = "SELECT id, owner FROM accounts ORDER BY id"
        assert pair.down.rows(query) == pair.up.rows(query)
        assert pair.down.scalar("SELECT last_value FROM tickets") == 5
    finally:
        pair.kill_worker()
        pair.down.execute("DELETE FROM pgfollower.subscription")
        pair.up.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE database = current_database()"
        )
        pair.up.execute("DROP OWNED BY follower")
        pair.up.execute("DROP ROLE follower")
