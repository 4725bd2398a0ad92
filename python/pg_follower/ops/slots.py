"""Helpers that stop_follow, sync_sequences, wait_for_catchup and copy_roles
run in a process of their own: dropping a subscription's upstream slot,
reading the upstream's sequences, WAL position and roles."""

from __future__ import annotations

import json
import sys
import time

import psycopg

from pg_follower import PUBLICATION
from pg_follower.errors import UpstreamError, first_line
from pg_follower.source.stream import ReplicationConnection, _literal

DROP_DEADLINE = 30.0
TERMINATE_AFTER = 5.0


def drop_slot(conninfo: str, slot: str) -> int:
    """Drop ``slot``, waiting for its walsender to go; exit status 0 on success.

    The worker lets go within a second of stop_follow; a walsender still
    holding the slot after a few seconds is terminated. The publication goes
    with the last pg_follower_py slot of the upstream database.
    """
    try:
        repl = ReplicationConnection(conninfo)
    except UpstreamError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        started = time.monotonic()
        where = "slot_name = " + _literal(slot)
        while True:
            rows = repl.query(f"SELECT active_pid FROM pg_replication_slots WHERE {where}")
            if not rows:
                break
            active_pid = rows[0][0]
            waited = time.monotonic() - started
            if active_pid is None:
                try:
                    repl.drop_slot(slot)
                    break
                except psycopg.errors.ObjectInUse:
                    pass
            elif waited > TERMINATE_AFTER:
                repl.query(f"SELECT pg_terminate_backend({int(str(active_pid))})")
            if waited > DROP_DEADLINE:
                print(f"slot {slot} is still in use by process {active_pid}", file=sys.stderr)
                return 1
            time.sleep(0.2)
        others = repl.query(
            "SELECT 1 FROM pg_replication_slots WHERE database = current_database()"
            " AND plugin = 'pgoutput' AND slot_name LIKE 'pgf\\_%'"
        )
        if not others:
            # through the extension's SECURITY DEFINER function where it is
            # installed: the helper's role need not own the publication
            if repl.query("SELECT to_regprocedure('pgfollower.drop_publication()')")[0][0]:
                repl.query("SELECT pgfollower.drop_publication()")
            else:
                repl.query(f'DROP PUBLICATION IF EXISTS "{PUBLICATION}"')
        return 0
    except psycopg.Error as exc:
        print(str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc), file=sys.stderr)
        return 1
    finally:
        repl.close()


def print_sequences(conninfo: str) -> int:
    """Print the upstream's sequences and values as JSON; exit status 0 on success."""
    from pg_follower.destinations.postgres.sequences import read_sequences, unreadable_error
    from pg_follower.source.stream import worker_conninfo

    try:
        with psycopg.connect(worker_conninfo(conninfo), autocommit=True) as up:
            values = read_sequences(up)
    except psycopg.Error as exc:
        print(first_line(exc), file=sys.stderr)
        return 1
    unreadable = unreadable_error(values)
    if unreadable:
        print(unreadable, file=sys.stderr)
        return 1
    json.dump([[v.schema, v.name, v.last_value, v.is_called] for v in values], sys.stdout)
    return 0


def print_wal_lsn(conninfo: str) -> int:
    """Print the upstream's current WAL write position; exit status 0 on success."""
    from pg_follower.source.stream import worker_conninfo

    try:
        with psycopg.connect(worker_conninfo(conninfo), autocommit=True) as up:
            row = up.execute("SELECT pg_catalog.pg_current_wal_lsn()::text").fetchone()
    except psycopg.Error as exc:
        print(first_line(exc), file=sys.stderr)
        return 1
    print(row[0] if row else "")
    return 0 if row else 1


def print_roles(conninfo: str, with_passwords: bool) -> int:
    """Print the upstream's roles and memberships as JSON; exit status 0 on success."""
    from pg_follower.server import roles
    from pg_follower.source.stream import worker_conninfo

    try:
        with psycopg.connect(worker_conninfo(conninfo), autocommit=True) as up:
            found = [
                roles.Role(*row) for row in up.execute(roles.roles_query(with_passwords)).fetchall()
            ]
            memberships = [
                roles.Membership(*row) for row in up.execute(roles.MEMBERSHIPS_QUERY).fetchall()
            ]
    except psycopg.errors.InsufficientPrivilege as exc:
        print(
            f"{first_line(exc)}: reading passwords needs a superuser upstream",
            file=sys.stderr,
        )
        return 1
    except psycopg.Error as exc:
        print(first_line(exc), file=sys.stderr)
        return 1
    sys.stdout.write(roles.to_json(found, memberships))
    return 0
