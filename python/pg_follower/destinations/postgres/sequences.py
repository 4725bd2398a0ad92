"""Sequences follow the upstream: logical decoding in PostgreSQL 15 carries no
sequence changes, so the worker reads the upstream's sequences over a normal
connection and moves the downstream's forward with ``setval``.

Both sides are read with one statement each, whatever the number of
sequences: ``pg_sequence_last_value()`` for a sequence that was called, and
the sequence relation itself (through ``table_to_xml``, the one built-in way
to read a relation named at run time inside a query) for one that was not,
whose exact ``last_value`` and ``is_called`` matter too (after ``setval(s, n,
false)``). Identity and serial columns' sequences are sequences like any
other, matched by schema and name.

Only forward: a downstream sequence ahead of its upstream twin (set by hand,
or read while the stream still had to apply a RESTART) is left alone; the DDL
stream replays ``ALTER SEQUENCE ... RESTART``, ``TRUNCATE ... RESTART
IDENTITY`` resets both sides, and a value read ahead of the applied rows is
harmless (a sequence may have gaps).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from pg_follower import INTERNAL_SCHEMA
from pg_follower.errors import FollowerError, first_line

logger = logging.getLogger("pg_follower.sequences")

# After the upstream wrote WAL, its sequences are read again at most this often
# while the stream is idle, and while it is busy (between downstream commits)...
SYNC_IDLE_INTERVAL = 1.0
SYNC_BUSY_INTERVAL = 5.0
# ... and at least this often whatever it wrote: nextval() writes WAL only every
# 32 values, and a downstream sequence moved back by hand is seen again.
SYNC_ANYWAY_INTERVAL = 10.0
# A sequence locked by a DDL in an open transaction (either side) must not
# stall the apply thread: the sync gives up and comes back later.
LOCK_TIMEOUT = "1s"
STATEMENT_TIMEOUT = "30s"

# An extension's sequences are its own (CREATE EXTENSION makes them).
_NOT_AN_EXTENSION_MEMBER = (
    " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
    "                  WHERE d.classid = 'pg_catalog.pg_class'::regclass"
    "                    AND d.objid = c.oid AND d.deptype = 'e')"
)

# Every user sequence: (schema, name, last_value, is_called); the values are
# NULL for a sequence this role may not read.
UPSTREAM_SEQUENCES = (
    "SELECT n.nspname::text, c.relname::text,"
    "       coalesce(l.called, substring(x.xml FROM '<last_value>(-?[0-9]+)</last_value>')"
    "                          ::bigint),"
    "       CASE WHEN l.called IS NOT NULL THEN true"
    "            ELSE substring(x.xml FROM '<is_called>(true|false)</is_called>')::boolean END"
    "  FROM pg_catalog.pg_class c"
    "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " CROSS JOIN LATERAL (SELECT pg_catalog.has_sequence_privilege(c.oid, 'SELECT') AS ok) p"
    " CROSS JOIN LATERAL (SELECT CASE WHEN p.ok THEN pg_catalog.pg_sequence_last_value(c.oid)"
    "                            END AS called) l"
    " CROSS JOIN LATERAL (SELECT CASE WHEN p.ok AND l.called IS NULL"
    "                            THEN pg_catalog.table_to_xml(c.oid::regclass, false, true, '')"
    "                                 ::text END AS xml) x"
    " WHERE c.relkind = 'S' AND c.relpersistence <> 't'"
    "   AND n.nspname <> %s AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    + _NOT_AN_EXTENSION_MEMBER
    + " ORDER BY 1, 2"
)

# Given the upstream's values (arrays), set every downstream sequence that is
# behind to its upstream twin's value; report those set, missing or not
# writable. A sequence's "next value" is last_value (+ increment once called);
# behind means a next value before the upstream's, in the increment's direction.
DOWNSTREAM_ADVANCE = """
WITH up AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::boolean[])
        AS u(nspname, relname, last_value, is_called)
), here AS (
    SELECT up.*, c.oid AS seq, s.seqincrement AS inc,
           pg_catalog.has_sequence_privilege(c.oid, 'SELECT')
           AND pg_catalog.has_sequence_privilege(c.oid, 'UPDATE') AS writable
      FROM up
      LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = up.nspname
      LEFT JOIN pg_catalog.pg_class c
             ON c.relnamespace = n.oid AND c.relname = up.relname AND c.relkind = 'S'
      LEFT JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
), now_here AS (
    SELECT here.*, l.called,
           CASE WHEN here.writable AND l.called IS NULL
                THEN pg_catalog.table_to_xml(here.seq::regclass, false, true, '')::text END AS xml
      FROM here
      LEFT JOIN LATERAL (SELECT CASE WHEN here.writable
                                     THEN pg_catalog.pg_sequence_last_value(here.seq) END
                                     AS called) l ON true
), compared AS (
    SELECT nspname, relname, seq, writable, last_value, is_called,
           pg_catalog.sign(inc) * (
               CASE WHEN is_called THEN last_value::numeric + inc ELSE last_value END
             - CASE WHEN called IS NOT NULL THEN called::numeric + inc
                    WHEN substring(xml FROM '<is_called>(true|false)</is_called>')::boolean
                    THEN substring(xml FROM '<last_value>(-?[0-9]+)</last_value>')::numeric + inc
                    ELSE substring(xml FROM '<last_value>(-?[0-9]+)</last_value>')::numeric END
           ) > 0 AS behind
      FROM now_here
)
SELECT nspname, relname,
       CASE WHEN seq IS NULL THEN 'missing'
            WHEN NOT writable THEN 'denied'
            ELSE pg_catalog.setval(seq, last_value, is_called)::text END
  FROM compared
 WHERE seq IS NULL OR NOT writable OR behind
"""


@dataclass(frozen=True, slots=True)
class SequenceValue:
    schema: str
    name: str
    last_value: int | None  # None: the reading role may not read it
    is_called: bool | None


def read_sequences(conn: psycopg.Connection[Any]) -> list[SequenceValue]:
    """Every user sequence of the database and its state, in one statement."""
    rows = conn.execute(UPSTREAM_SEQUENCES, [INTERNAL_SCHEMA]).fetchall()
    return [
        SequenceValue(
            str(r[0]),
            str(r[1]),
            None if r[2] is None else int(r[2]),
            None if r[3] is None else bool(r[3]),
        )
        for r in rows
    ]


def advance(
    conn: psycopg.Connection[Any], values: list[SequenceValue]
) -> list[tuple[str, str, str]]:
    """Move every downstream sequence behind its upstream value forward, in one
    statement in the current transaction; (schema, name, what happened) for
    each sequence set ('set'), not there ('missing') or not writable ('denied')."""
    readable = [v for v in values if v.last_value is not None]
    if not readable:
        return []
    rows = conn.execute(
        DOWNSTREAM_ADVANCE,
        [
            [v.schema for v in readable],
            [v.name for v in readable],
            [v.last_value for v in readable],
            [v.is_called for v in readable],
        ],
    ).fetchall()
    return [(str(r[0]), str(r[1]), r[2] if r[2] in ("missing", "denied") else "set") for r in rows]


class SequenceFollower:
    """Keeps one subscription's downstream sequences level with the upstream's.

    Runs in the pipeline's thread, between downstream transactions, on the
    applier's connection; reads the upstream on one connection kept for the
    session (reopened after a failure). Its failures are logged, never
    raised: the row stream goes on without it.
    """

    def __init__(
        self,
        connect_upstream: Callable[[], psycopg.Connection[Any]],
        down: psycopg.Connection[Any],
        upstream_position: Callable[[], int],
        name: str,
        upstream: psycopg.Connection[Any] | None = None,
    ):
        self.connect_upstream = connect_upstream
        self.down = down
        self.upstream_position = upstream_position
        self.name = name
        self.up = upstream
        self.last_sync = 0.0  # monotonic time of the last attempt
        self.synced_at: int | None = None  # upstream position seen at the last sync
        self.syncs = 0
        self._sent: dict[tuple[str, str], tuple[int | None, bool | None]] = {}
        self._full_at = 0.0  # monotonic time of the last sync that sent every sequence
        self._reported: set[tuple[str, str, str]] = set()
        self._prepared: psycopg.Connection[Any] | None = None  # ``up`` has our timeouts

    def due(self, busy: bool) -> bool:
        """Whether a sync is due: the upstream wrote since the last one and the
        interval for the stream's state passed, or the long interval did."""
        elapsed = time.monotonic() - self.last_sync
        if elapsed >= SYNC_ANYWAY_INTERVAL:
            return True
        moved = self.synced_at is None or self.upstream_position() != self.synced_at
        return moved and elapsed >= (SYNC_BUSY_INTERVAL if busy else SYNC_IDLE_INTERVAL)

    def maybe_sync(self, busy: bool) -> None:
        if self.due(busy):
            self.sync()

    def sync(self) -> int:
        """Read the upstream's sequences and advance the downstream's; how many moved.

        Only between downstream transactions: it commits on ``down``.
        """
        self.last_sync = time.monotonic()
        position = self.upstream_position()
        values = self._read_upstream()
        if values is None:
            return 0
        full = self.last_sync - self._full_at >= SYNC_ANYWAY_INTERVAL
        changed = [
            v
            for v in values
            if full or self._sent.get((v.schema, v.name)) != (v.last_value, v.is_called)
        ]
        try:
            self.down.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            outcome = advance(self.down, changed)
            self.down.commit()
        except psycopg.Error as exc:
            if self.down.closed or self.down.broken:
                raise
            self.down.rollback()
            self._failed(exc, "cannot advance the downstream sequences")
            return 0
        self.synced_at = position
        self.syncs += 1
        if full:
            self._full_at = self.last_sync
            self._sent.clear()
        for v in changed:
            self._sent[(v.schema, v.name)] = (v.last_value, v.is_called)
        for v in values:
            if v.last_value is None:
                self._report("unreadable", f'"{v.schema}"."{v.name}"', "")
        moved = 0
        for schema, name, what in outcome:
            label = f'"{schema}"."{name}"'
            if what == "set":
                moved += 1
                continue
            self._sent.pop((schema, name), None)  # tried again next time
            self._report(what, label, "")
        if moved:
            logger.debug("subscription %s: %d sequences advanced", self.name, moved)
        return moved

    def close(self) -> None:
        if self.up is not None:
            self.up.close()
            self.up = None

    def _read_upstream(self) -> list[SequenceValue] | None:
        try:
            if self.up is None or self.up.closed or self.up.broken:
                self.up = self.connect_upstream()
            if self._prepared is not self.up:
                self.up.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
                self.up.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
                self._prepared = self.up
            return read_sequences(self.up)
        except (psycopg.Error, FollowerError) as exc:
            if not isinstance(exc, psycopg.errors.LockNotAvailable):
                self.close()  # reopened next time
            self._failed(exc, "cannot read the upstream's sequences")
            return None

    def _failed(self, exc: Exception, what: str) -> None:
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            # a DDL holds a sequence in an open transaction: next time
            logger.debug("subscription %s: %s: %s", self.name, what, first_line(exc))
            return
        self._report("error", "", f"{what}: {first_line(exc)}")

    def _report(self, what: str, label: str, message: str) -> None:
        """A warning the first time a problem shows, not at every sync."""
        key = (what, label, message)
        if key in self._reported:
            return
        self._reported.add(key)
        if what == "missing":
            # usual while the stream has yet to apply its CREATE
            logger.debug("subscription %s: sequence %s is not on the downstream", self.name, label)
            return
        if what == "denied":
            message = (
                f"the worker may not read and update sequence {label} downstream; it is not"
                " followed: GRANT SELECT, UPDATE on it, or its owner, to the worker's role"
            )
        elif what == "unreadable":
            message = (
                f"the upstream role may not read sequence {label}; it is not followed:"
                " GRANT SELECT on it to the role of the subscription's conninfo"
            )
        logger.warning("subscription %s: %s", self.name, message)


def unreadable_error(values: list[SequenceValue]) -> str | None:
    """The error text for sequences the upstream role may not read, if any."""
    names = [f'"{v.schema}"."{v.name}"' for v in values if v.last_value is None]
    if not names:
        return None
    return (
        f"the upstream role may not read sequence {', '.join(names[:5])}"
        + (f" (and {len(names) - 5} more)" if len(names) > 5 else "")
        + ": GRANT SELECT ON ALL SEQUENCES IN SCHEMA ... (or pg_read_all_data) to the role"
        " of the subscription's conninfo"
    )
