"""The PostgreSQL destination: applies decoded upstream transactions downstream.

Each upstream transaction becomes one downstream transaction, run with
``session_replication_role = replica``; its commit records the upstream
position in a replication origin, so progress and data commit atomically and
a restarted worker resumes exactly after the last applied transaction.

Nobody gains rights through the applier: DDL is replayed only from rows of
``pgfollower.ddl_queue`` (which only the extension's capture can write), as
the role that ran it upstream; a table's row changes run as its owner when
that owner is neither a superuser nor the worker's role, so REPLICA/ALWAYS
triggers, defaults and expressions run with the owner's rights.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from pg_follower import INTERNAL_SCHEMA, MESSAGE_PREFIX
from pg_follower.destinations.postgres.apply_runs import (
    SET_MAX_BYTES,
    SET_MAX_ROWS,
    RowRuns,
    RunShape,
    Statement,
    set_statement,
)
from pg_follower.errors import ApplyError, ProtocolError, first_line
from pg_follower.server.ddl import FORMAT_VERSION as DDL_FORMAT_VERSION
from pg_follower.server.ddl import (
    LITERAL_SETTINGS,
    MATVIEW_DIGEST_KIND,
    matview_digest_query,
    redacted,
    way_out,
)
from pg_follower.source.decode import (
    UNCHANGED_TOAST,
    Begin,
    BinaryValue,
    Commit,
    Delete,
    Insert,
    InsertRun,
    LogicalMessage,
    Message,
    Origin,
    Relation,
    Row,
    RowRun,
    Truncate,
    Type,
    Update,
    copy_line,
    lsn_to_str,
    pg_timestamp_to_datetime,
    str_to_lsn,
)

logger = logging.getLogger("pg_follower.apply")

DDL_QUEUE = "ddl_queue"  # in INTERNAL_SCHEMA: its Inserts are the DDL to replay
COPY_BATCH_ROWS = 5000
COPY_BATCH_BYTES = 8 << 20  # wide rows: flush by size too, so memory stays bounded
# A run of upstream transactions already queued is applied as one downstream
# transaction, within these bounds (so lag stays low and locks short).
GROUP_MAX_COMMITS = 1000
GROUP_MAX_CHANGES = 100_000
GROUP_MAX_SECONDS = 0.2
# While the upstream commits faster than one transaction per GROUP_BUSY_GAP_US
# (by its commit times), a group waits up to GROUP_WAIT seconds for one more:
# larger groups, fewer downstream commits. A transaction after a pause is
# committed at once, without that wait (no added lag under light traffic).
GROUP_WAIT = 0.005
GROUP_BUSY_GAP_US = 1000
# Plain UPDATEs of one table wait (coalesced by key) for a flush point, up to
# this many rows or bytes of values (then they go, and coalescing starts over).
DEFER_MAX_ROWS = SET_MAX_ROWS
DEFER_MAX_BYTES = SET_MAX_BYTES
_SET_ROLE = "SELECT pg_catalog.set_config('role', %s, true)"
_ORIGIN_XACT = "SELECT pg_catalog.pg_replication_origin_xact_setup(%s, %s)"

Value = bytes | BinaryValue | object | None

# Built-in types whose default equality holds only for identical values (same
# text output): matching an old row on it is exact. Others (float8 0 = -0,
# numeric 1.0 = 1.00, interval '1 day' = '24 hours', jsonb, arrays, ...) are
# also compared by their text form.
_EXACT_EQUALITY: frozenset[int] = frozenset(
    {
        16,  # bool
        17,  # bytea
        18,  # "char"
        20,  # int8
        21,  # int2
        23,  # int4
        26,  # oid
        650,  # cidr
        790,  # money
        829,  # macaddr
        869,  # inet
        1082,  # date
        1083,  # time
        1114,  # timestamp
        1184,  # timestamptz
        1560,  # bit
        1562,  # varbit
        2950,  # uuid
        3220,  # pg_lsn
    }
)
# name, text, varchar: exact under a deterministic collation.
_EXACT_IF_DETERMINISTIC: frozenset[int] = frozenset({19, 25, 1043})
_OPERATOR_CHARS = frozenset("+-*/<>=~!@#%^&|`?")
_ANYARRAY = 2277
_RECORD = 2249

# The default equality of a (base) type, as lookup_type_cache finds it: the
# default btree opclass's, else the default hash opclass's; an opclass on a
# pseudo-type (anyarray, record, ...) or binary-coercible type counts.
_EQUALITY_SQL = """
SELECT c.opcintype, n.nspname, o.oprname
  FROM pg_catalog.pg_opclass c
  JOIN pg_catalog.pg_am am ON am.oid = c.opcmethod
  JOIN pg_catalog.pg_amop ao ON ao.amopfamily = c.opcfamily
   AND ao.amoplefttype = c.opcintype AND ao.amoprighttype = c.opcintype
   AND ao.amopstrategy = CASE am.amname WHEN 'btree' THEN 3 ELSE 1 END
  JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr
  JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
  JOIN pg_catalog.pg_type t ON t.oid = %(type)s
 WHERE c.opcdefault AND am.amname IN ('btree', 'hash')
   AND (c.opcintype = t.oid
        OR (c.opcintype = 'pg_catalog.anyarray'::pg_catalog.regtype
            AND t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc)
        OR (c.opcintype = 'pg_catalog.anyenum'::pg_catalog.regtype AND t.typtype = 'e')
        OR (c.opcintype = 'pg_catalog.anyrange'::pg_catalog.regtype AND t.typtype = 'r')
        OR (c.opcintype = 'pg_catalog.anymultirange'::pg_catalog.regtype AND t.typtype = 'm')
        OR (c.opcintype = 'pg_catalog.record'::pg_catalog.regtype AND t.typtype = 'c')
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k
                    WHERE k.castsource = t.oid AND k.casttarget = c.opcintype
                      AND k.castmethod = 'b' AND k.castcontext = 'i'))
 ORDER BY am.amname = 'btree' DESC, c.opcintype = t.oid DESC
 LIMIT 1
"""

_TABLE_SQL = """
SELECT c.relkind, a.attname, a.atttypid, a.attidentity, a.attgenerated,
       coalesce(co.collisdeterministic, true)
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_attribute a
    ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
 WHERE n.nspname = %s AND c.relname = %s
 ORDER BY a.attnum
"""


@dataclass(frozen=True, slots=True)
class TypeMatch:
    """How values of one type are compared: its name, its default equality."""

    name: sql.Composable
    equality: sql.Composable | None  # OPERATOR(schema.=); None: the type has none usable
    exact: bool  # the equality holds only for identical values
    exact_if_deterministic: bool  # ... when the column's collation is deterministic


@dataclass(frozen=True, slots=True)
class ColumnMatch:
    """How one downstream column is compared with an old value sent as text."""

    type_name: sql.Composable | None  # to cast a parameter to; None: column not found
    equality: sql.Composable | None
    exact: bool
    identity_always: bool  # GENERATED ALWAYS AS IDENTITY: an UPDATE cannot set it
    generated: bool  # GENERATED ALWAYS AS (...) STORED: computed, never written


# A column the downstream table lacks: the statement fails and says so.
_UNKNOWN_COLUMN = ColumnMatch(None, None, False, False, False)


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What the downstream catalog says about one target table."""

    partitioned: bool
    columns: dict[str, ColumnMatch]

    def column(self, name: str) -> ColumnMatch:
        return self.columns.get(name, _UNKNOWN_COLUMN)


@dataclass(frozen=True, slots=True)
class Where:
    """The shape of a WHERE clause that finds a row: its columns, which are NULL."""

    columns: tuple[tuple[str, bool], ...]  # (name, old value is NULL)
    full: bool  # the whole old row (REPLICA IDENTITY FULL), not a key


@dataclass(slots=True)
class Target:
    """Where one upstream relation's changes go, and the SQL to put them there."""

    relation: Relation
    table: sql.Composable
    skip: bool
    copy_sql: str = ""
    statements: dict[tuple[Any, ...], str] | None = None
    info: TableInfo | None = None  # looked up at the first UPDATE, DELETE or TRUNCATE
    ddl_queue: bool = False  # pgfollower.ddl_queue: its Inserts are DDL to replay
    # The role to apply this table's changes as (its owner), None for the
    # worker's own; looked up at the first change, until DDL.
    owner: str | None = None
    owner_known: bool = False
    # Set-based shapes by statement key (None: stays row by row), and the
    # ones that the common changes (found by key, nothing TOASTed left out)
    # take, found without working out the statement again.
    runs: dict[tuple[Any, ...], RunShape | None] = field(default_factory=dict)
    plain_update: RunShape | None = None
    plain_delete: RunShape | None = None
    # Whether plain UPDATEs may wait and be coalesced (``DeferredUpdates``):
    # a plain table, nothing run per row that could see the order; None:
    # not looked up yet (until DDL).
    quiet: bool | None = None
    key_columns: tuple[int, ...] = ()  # of the replica identity, in the tuple


@dataclass(slots=True)
class DeferredUpdates:
    """Plain UPDATEs of one table (key unchanged, so no old tuple) not sent yet:
    the latest tuple of each row, by key, in the order rows were first changed.

    Several updates of one row become one, its last: a value left out as
    unchanged TOAST is the one an earlier update of the group set, if any.
    """

    target: Target
    rows: dict[object, Row] = field(default_factory=dict)
    nbytes: int = 0
    lsn: int | None = None  # commit LSN of the last transaction held back here


@dataclass(slots=True)
class AppliedCounts:
    """What a subscription committed downstream since its worker started.

    Plain ints, shared by the subscription's appliers and read by the
    supervisor (status writes) and the metrics; the applier adds a
    transaction's figures only when its downstream commit succeeded.
    """

    transactions: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    truncated: int = 0  # tables truncated

    @property
    def rows(self) -> int:
        """Rows inserted, updated or deleted (a TRUNCATE counts tables, not rows)."""
        return self.inserted + self.updated + self.deleted


def _text(value: Value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    raise ProtocolError(f"unexpected value {value!r} in a text-format tuple")


class PostgresApplier:
    """Applies one subscription's transactions on a downstream connection."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        origin: str,
        sub_id: int | None = None,
        counts: AppliedCounts | None = None,
    ):
        self.conn = conn
        self.origin = origin
        self.sub_id = sub_id
        self.counts = counts if counts is not None else AppliedCounts()
        # Of the downstream transaction open now: into ``counts`` at its commit.
        self._pending = AppliedCounts()
        self._savepoint_counts: dict[str, AppliedCounts] = {}
        # Commit LSN of the one failing transaction the operator asked to
        # skip (skip_transaction()); read at each session start.
        self.skip_lsn: int | None = None
        self._skip_requested = False
        self.targets: dict[int, Target] = {}
        self.position: int = 0  # end LSN of the last upstream transaction applied
        # Grouping: upstream transactions applied but not yet committed downstream.
        # whether more is queued, or comes within the given seconds
        self.more_waiting: Callable[[float], bool] = lambda wait: False
        self._last_commit_ts = 0  # the upstream commit time of the last transaction seen
        self.group_after = 0  # no grouping up to this commit LSN (the last failing one)
        self.committed_commits = 0  # upstream transactions in the last downstream commit
        self._group_commits = 0
        self._group_changes = 0
        self._group_started = 0.0
        self._group_last: Commit | None = None
        self._committed: Commit | None = None
        self._skipping = False
        self._in_transaction = False
        self._begin: Begin | None = None
        self._copy_rows: list[bytes] = []
        self._copy_bytes = 0
        self._copy_target: Target | None = None
        self._statement = ""
        self._rows = RowRuns(conn, origin)  # UPDATEs and DELETEs on their way
        # Plain UPDATEs held back until a flush point, by relation id. Off on
        # the connection that applies a big transaction while open: nothing
        # to coalesce there, and its rows go set-based anyway.
        self.defer_updates = True
        self._deferred: dict[int, DeferredUpdates] = {}
        self._deferred_lsn: int | None = None  # of the UPDATEs held back being sent
        self._types: dict[int, TypeMatch] = {}
        self._worker_role = ""  # current_user of the session, read by setup()
        self._role: str | None = None  # the SET LOCAL ROLE in force, None: the worker's
        self._handlers: dict[type, Callable[[Any], None]] = {
            Begin: self._on_begin,
            Commit: self._on_commit,
            Relation: self._on_relation,
            Insert: self._on_insert,
            InsertRun: self._on_insert_run,
            RowRun: self._on_row_run,
            Update: self._on_update,
            Delete: self._on_delete,
            Truncate: self._on_truncate,
            LogicalMessage: self._on_message,
            Origin: _ignore,
            Type: _ignore,
        }

    # -- session -------------------------------------------------------------
    def setup(self) -> int | None:
        """Prepare the session; return the origin's position (None: never applied)."""
        self.prepare_session()
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.pg_replication_origin_session_setup(%s)", [self.origin])
            # flushed (true): a position we start from counts as durable
            cur.execute("SELECT pg_catalog.pg_replication_origin_session_progress(true)::text")
            row = cur.fetchone()
        self.conn.commit()
        lsn = row[0] if row else None
        if lsn is None or lsn == "0/0":
            return None
        self.position = str_to_lsn(lsn)
        return self.position

    def prepare_session(self) -> None:
        """The session settings every apply connection runs with."""
        with self.conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")
            cur.execute("SET statement_timeout = 0")
            cur.execute("SET lock_timeout = 0")
            cur.execute("SET idle_in_transaction_session_timeout = 0")
            # As PostgreSQL's own apply worker: commits need not wait for
            # their WAL flush; the upstream hears only of what is flushed
            # (durable_position), so a crash here loses nothing upstream.
            cur.execute("SET synchronous_commit = off")
            # Set-based statements of many rows cost enough to be compiled,
            # for a single run: slower than interpreting them.
            cur.execute("SET jit = off")
            cur.execute("SELECT current_user::text")
            role = cur.fetchone()
            self._worker_role = str(role[0]) if role else ""
        self.conn.commit()

    def take_origin(self) -> None:
        """Make this session the one whose commits advance the origin.

        Not transactional: inside an open transaction (the one applied while
        it ran upstream) it stays open, to commit with the origin's position.
        """
        self._origin_call("SELECT pg_catalog.pg_replication_origin_session_setup(%s)")

    def release_origin(self) -> None:
        """Let another session advance the origin (only one may at a time)."""
        self._origin_call("SELECT pg_catalog.pg_replication_origin_session_reset()")

    def _origin_call(self, query: str) -> None:
        idle = self.conn.info.transaction_status == TransactionStatus.IDLE
        self.conn.execute(query, [self.origin] if "%s" in query else None)
        if idle:
            self.conn.commit()  # ends only the transaction this call began

    def set_lock_timeout(self, timeout: str) -> None:
        """Between transactions: how long a statement may wait for a lock."""
        self.conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(timeout)))
        self.conn.commit()

    def flush_pending(self) -> None:
        """Write what is buffered (a run of rows) now."""
        self._guarded(lambda _: self._flush_pending(), None)

    def savepoint(self, name: str) -> None:
        self.flush_pending()
        savepoint = sql.SQL("SAVEPOINT {}").format(sql.Identifier(name))
        self._guarded(lambda _: self.conn.execute(savepoint), None)
        self._savepoint_counts[name] = replace(self._pending)

    def rollback_to(self, name: str) -> None:
        """Undo what was applied since the savepoint (a subtransaction aborted)."""
        self.flush_pending()
        rollback = sql.SQL("ROLLBACK TO SAVEPOINT {}").format(sql.Identifier(name))
        self._guarded(lambda _: self.conn.execute(rollback), None)
        self._forget_catalog()
        counts = self._savepoint_counts.get(name)
        if counts is not None:  # what it applied is undone: not counted
            self._pending = replace(counts)

    @property
    def idle(self) -> bool:
        """No downstream transaction is open (nothing applied and uncommitted)."""
        return self._group_last is None and not self._in_transaction

    def load_skip_request(self) -> None:
        """Read skip_transaction()'s request, if any, for this subscription."""
        if self.sub_id is None:
            return
        row = self.conn.execute(
            "SELECT skip_lsn::text FROM pgfollower.subscription WHERE id = %s", [self.sub_id]
        ).fetchone()
        self.conn.commit()
        self.skip_lsn = str_to_lsn(row[0]) if row and row[0] else None

    def apply(self, message: Message) -> Commit | None:
        """Apply one message; return the Commit when a transaction was committed."""
        handler = self._handlers.get(type(message))
        if handler is None:
            raise ProtocolError(
                f"unexpected {type(message).__name__} message: streaming is not requested"
            )
        if self._skipping and not isinstance(message, Commit | Relation):
            return None
        self._group_changes += 1
        self._guarded(handler, message)
        committed, self._committed = self._committed, None
        return committed

    def _guarded(self, fn: Callable[[Any], object], arg: Any) -> None:
        """Run one step; on failure roll back and raise an ApplyError."""
        try:
            fn(arg)
        except (psycopg.Error, ApplyError) as exc:
            grouped = self._group_commits + self._in_transaction > 1
            error = exc if isinstance(exc, ApplyError) else self._apply_error(exc)
            error.retry_now = grouped
            self.rollback()
            if error is exc:
                raise
            raise error from exc

    def commit_pending(self) -> Commit | None:
        """Commit the open group of whole upstream transactions, if any (nothing
        more arrived); its last Commit."""
        if self._group_last is None or self._in_transaction:
            return None
        self._guarded(lambda _: self._commit_group(), None)
        committed, self._committed = self._committed, None
        return committed

    def durable_position(self) -> int | None:
        """The end LSN up to which applied transactions are flushed downstream.

        Flushes the WAL as far as the origin's last commit; only between
        downstream transactions.
        """
        if not self.idle:
            return None
        row = self.conn.execute(
            "SELECT pg_catalog.pg_replication_origin_session_progress(true)::text"
        ).fetchone()
        self.conn.commit()
        return str_to_lsn(row[0]) if row and row[0] else None

    def rollback(self) -> None:
        self._forget_catalog()
        self._copy_rows.clear()
        self._copy_bytes = 0
        self._copy_target = None
        self._rows.discard()
        self._deferred.clear()
        self._in_transaction = False
        self._skipping = False
        self._pending = AppliedCounts()
        self._savepoint_counts.clear()
        self._reset_group()
        self._role = None  # SET LOCAL ends with the transaction
        if not self.conn.closed:
            self.conn.rollback()

    def _reset_group(self) -> None:
        self._group_commits = 0
        self._group_changes = 0
        self._group_last = None

    def _forget_catalog(self) -> None:
        """Drop what was read from the downstream catalog: DDL or a rollback may change it."""
        self._types.clear()
        for target in self.targets.values():
            target.info = None
            target.statements = {}
            target.owner_known = False
            target.runs = {}
            target.plain_update = target.plain_delete = None
            target.quiet = None

    def _apply_error(self, exc: psycopg.Error) -> ApplyError:
        begin = self._begin
        lsn = lsn_to_str(begin.final_lsn) if begin else None
        statement = self._statement
        failed = self._rows.pipeline.take_failed()
        if failed is not None:  # sent earlier, failed now
            statement = failed.query
            lsn = lsn_to_str(failed.lsn) if failed.lsn is not None else lsn
        diag = getattr(exc, "diag", None)
        sqlstate = getattr(exc, "sqlstate", None) or "?"
        detail = getattr(diag, "message_detail", None) if diag else None
        message = f"{first_line(exc)} (SQLSTATE {sqlstate})"
        if detail:
            message += f"; {detail}"
        return ApplyError(message, lsn=lsn, statement=statement)

    # -- transactions ----------------------------------------------------------
    def _on_begin(self, m: Begin) -> None:
        self._begin = m
        self._in_transaction = True
        if self._group_last is None:
            self._group_started = time.monotonic()
        # Already applied before a restart: its commit is at or before our
        # recorded position (which is a commit's end LSN).
        self._skipping = m.final_lsn < self.position
        self._skip_requested = not self._skipping and m.final_lsn == self.skip_lsn
        if self._skip_requested:
            self._skipping = True
            logger.warning(
                "skipping the upstream transaction committed at %s, as skip_transaction()"
                " asked: its changes will be missing downstream",
                lsn_to_str(m.final_lsn),
            )

    def _on_commit(self, m: Commit) -> None:
        self._in_transaction = False
        busy = m.commit_ts - self._last_commit_ts < GROUP_BUSY_GAP_US
        self._last_commit_ts = m.commit_ts
        if not self._skipping:
            self._pending.transactions += 1
        if self._skipping:
            self._skipping = False
            if not self._skip_requested:
                # Applied before a restart: nothing to write, but it counts as applied.
                if self._group_last is None:
                    self.committed_commits, self._committed = 1, m
                else:
                    self._group_commits += 1
                return
            # Moving past a skipped transaction forgets the request in the
            # same downstream commit.
            self._skip_requested = False
            self._flush_pending()  # the pipeline idle, for a write of the worker's own
            self._reset_role()
            self.conn.execute(
                "UPDATE pgfollower.subscription SET skip_lsn = NULL WHERE id = %s", [self.sub_id]
            )
            self.skip_lsn = None
        # A run of inserts may go on into the next transaction of the group:
        # it is flushed before anything else, and before the commit.
        self._group_commits += 1
        self._group_last = m
        self.position = m.end_lsn
        if not self._group_goes_on(GROUP_WAIT if busy else 0.0):
            self._commit_group()

    def _group_goes_on(self, wait: float) -> bool:
        """Whether the next queued upstream transaction joins this downstream one.

        Only when more is waiting already or within ``wait`` seconds, within
        bounds, and not right after an apply error (that transaction's
        predecessors commit on their own, so it alone is left failing).
        """
        begin = self._begin
        return (
            self.more_waiting(wait)
            and begin is not None
            and begin.final_lsn > self.group_after
            and self._group_commits < GROUP_MAX_COMMITS
            and self._group_changes < GROUP_MAX_CHANGES
            and time.monotonic() - self._group_started < GROUP_MAX_SECONDS
        )

    def _commit_group(self) -> None:
        """Commit the downstream transaction with the last upstream commit's position."""
        last = self._group_last
        assert last is not None
        self._flush_copy()
        self._flush_deferred()
        self._rows.send_run()
        self._reset_role()  # the origin functions need the worker's rights
        self._statement = "SELECT pg_replication_origin_xact_setup(...); COMMIT"
        lsn = lsn_to_str(last.end_lsn)
        at = pg_timestamp_to_datetime(last.commit_ts).isoformat()
        pipeline = self._rows.pipeline
        if pipeline.open:
            # Behind the statements still in flight; COMMIT only once each is
            # known to have touched its rows.
            st = Statement(_ORIGIN_XACT, "COMMIT", "", self._run_lsn(), None)
            pipeline.send(st, [lsn, at])
            pipeline.close()
            self.conn.execute(b"COMMIT")
        else:
            # Origin position and COMMIT in one round trip (simple query protocol).
            self.conn.execute(
                f"SELECT pg_catalog.pg_replication_origin_xact_setup('{lsn}', '{at}');"
                " COMMIT".encode()
            )
        self._role = None
        self._statement = ""
        self.committed_commits = self._group_commits
        self._committed = last
        self._count_committed()
        self._reset_group()

    def _count_committed(self) -> None:
        p, c = self._pending, self.counts
        c.transactions += p.transactions
        c.inserted += p.inserted
        c.updated += p.updated
        c.deleted += p.deleted
        c.truncated += p.truncated
        self._pending = AppliedCounts()
        self._savepoint_counts.clear()

    # -- relations ---------------------------------------------------------------
    def _on_relation(self, m: Relation) -> None:
        namespace = m.namespace or "pg_catalog"
        self._flush_deferred(m.relation_id)  # held back in the shape it had
        self.targets[m.relation_id] = Target(
            relation=m,
            table=sql.Identifier(namespace, m.name),
            skip=namespace == INTERNAL_SCHEMA,
            statements={},
            ddl_queue=namespace == INTERNAL_SCHEMA and m.name == DDL_QUEUE,
            key_columns=tuple(i for i, c in enumerate(m.columns) if c.is_key),
        )

    def _target(self, relation_id: int) -> Target:
        target = self.targets.get(relation_id)
        if target is None:
            raise ProtocolError(f"change for relation {relation_id} before its Relation message")
        return target

    def _render(self, composable: sql.Composable) -> str:
        return composable.as_string(self.conn)

    # -- rows --------------------------------------------------------------------
    def _on_insert(self, m: Insert) -> None:
        target = self._target(m.relation_id)
        if target.ddl_queue:
            self._replay_ddl_row(target, m)
            return
        if target.skip:
            return
        self._pending.inserted += 1
        line = copy_line(m.new)
        self._buffer_rows(target, [line], len(line))

    def _flush_pending(self) -> None:
        """Apply every buffered change: before DDL, TRUNCATE, a message, COMMIT.

        A table's changes keep their order: an insert sends what is held back
        or in the pipeline first, and any other change sends the COPY run
        first (COPY itself waits for the pipeline); the UPDATEs held back
        (``_deferred``) are never on the COPY run's table.
        """
        self._flush_copy()
        self._flush_deferred()
        self._rows.flush()

    def _flush_deferred(self, relation_id: int | None = None) -> None:
        """Send the UPDATEs held back for one relation (None: for all) into the
        statement pipeline, before any other change to it."""
        if not self._deferred:
            return
        if relation_id is None:
            pending = list(self._deferred.values())
            self._deferred.clear()
        else:
            one = self._deferred.pop(relation_id, None)
            if one is None:
                return
            pending = [one]
        for deferred in pending:
            target = deferred.target
            rel_id = target.relation.relation_id
            self._run_as_owner(target)
            # Statements carry the last transaction held back: a failure of
            # them in a group has the transactions up to it retried one by one.
            self._deferred_lsn = lsn = deferred.lsn
            add = self._rows.add_plain
            try:
                for row in deferred.rows.values():
                    plain = target.plain_update
                    if plain is None or not add(plain, lsn, row):
                        self._apply_update(target, Update(None, rel_id, None, None, row))
            finally:
                self._deferred_lsn = None

    def _may_defer(self, target: Target) -> bool:
        """Whether ``target``'s plain UPDATEs may wait for a flush point (and be
        coalesced): nothing downstream sees the order of its changes against
        other tables' (no trigger or rule fires under session_replication_role
        = replica, foreign keys included, unless ENABLE ALWAYS or REPLICA), and
        the transaction is not being retried row by row."""
        if not self.defer_updates or self._rows.row_by_row(self._run_lsn()):
            return False
        quiet = target.quiet
        if quiet is None:
            quiet = target.quiet = self._is_quiet(target)
        return quiet

    def _is_quiet(self, target: Target) -> bool:
        if not target.key_columns:
            return False
        self._rows.flush()  # the pipeline must be idle to read the catalog
        rel = target.relation
        row = self.conn.execute(
            "SELECT c.relkind = 'r'"
            " AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid"
            "                  AND t.tgenabled IN ('A', 'R'))"
            " AND NOT EXISTS (SELECT FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid"
            "                  AND r.ev_enabled IN ('A', 'R'))"
            " FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            [rel.namespace or "pg_catalog", rel.name],
        ).fetchone()
        return bool(row and row[0])

    def _defer(self, target: Target, row: Row) -> bool:
        """Hold back a plain UPDATE of ``target`` (``_may_defer``), coalesced with
        the ones held back for the same row; False (nothing done) when its key
        is not all text values."""
        keys = target.key_columns
        key: object
        if len(keys) == 1:
            key = row[keys[0]]
            if type(key) is not bytes:
                return False
        else:
            parts = tuple(row[i] for i in keys)
            if not all(type(k) is bytes for k in parts):
                return False
            key = parts
        relation_id = target.relation.relation_id
        deferred = self._deferred.get(relation_id)
        if deferred is None:
            if self._copy_target is target:
                self._flush_copy()  # rows inserted before are there first
            deferred = self._deferred[relation_id] = DeferredUpdates(target)
        rows = deferred.rows
        before = rows.get(key)
        if before is not None and UNCHANGED_TOAST in row:
            # Not sent: unchanged by this update, so the earlier one's value.
            row = tuple(b if v is UNCHANGED_TOAST else v for v, b in zip(row, before, strict=True))
        rows[key] = row
        deferred.lsn = self._begin.final_lsn if self._begin else None
        deferred.nbytes += sum(len(v) for v in row if type(v) is bytes)
        if len(rows) >= DEFER_MAX_ROWS or deferred.nbytes >= DEFER_MAX_BYTES:
            self._flush_deferred(relation_id)
        return True

    def _on_insert_run(self, m: InsertRun) -> None:
        target = self._target(m.relation_id)
        if not target.skip:
            self._pending.inserted += len(m.lines)
            self._buffer_rows(target, m.lines, m.nbytes)

    def _buffer_rows(self, target: Target, lines: list[bytes], nbytes: int) -> None:
        """Inserted rows (COPY lines) into the run for ``target``, flushed when full."""
        if self._copy_target is not target:
            self._flush_copy()
            self._flush_deferred(target.relation.relation_id)
            self._rows.flush()
            self._copy_target = target
        self._copy_rows.extend(lines)
        self._copy_bytes += nbytes
        if len(self._copy_rows) >= COPY_BATCH_ROWS or self._copy_bytes >= COPY_BATCH_BYTES:
            self._flush_copy()

    def _flush_copy(self) -> None:
        target = self._copy_target
        rows = self._copy_rows
        if target is None or not rows:
            self._copy_target = None
            return
        self._rows.flush()  # COPY cannot run in a pipeline: what went before is done
        if not target.copy_sql:
            columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in target.relation.columns)
            target.copy_sql = self._render(
                sql.SQL("COPY {} ({}) FROM STDIN").format(target.table, columns)
            )
        self._run_as_owner(target)
        self._statement = target.copy_sql
        with self.conn.cursor() as cur, cur.copy(target.copy_sql) as copy:
            copy.write(b"".join(rows))
        rows.clear()
        self._copy_bytes = 0
        self._copy_target = None

    def _on_row_run(self, m: RowRun) -> None:
        """The reader's run of plain UPDATEs or DELETEs: each row as its own
        message would be, without making one (``_on_update``/``_on_delete``
        take the rows the set-based shape of the table cannot)."""
        target = self._target(m.relation_id)
        if target.skip:
            return
        rows, deleting, relation_id = m.rows, m.deleting, m.relation_id
        i, n = 0, len(rows)
        if not deleting and self._may_defer(target):
            defer = self._defer
            while i < n and defer(target, rows[i]):
                i += 1
            self._pending.updated += i
            if i == n:
                return
        self._flush_deferred(relation_id)
        while i < n:
            plain = target.plain_delete if deleting else target.plain_update
            if plain is not None:
                self._flush_copy()
                self._run_as_owner(target)
                start = i
                i = self._rows.add_plain_rows(plain, self._run_lsn(), rows, i)
                if deleting:
                    self._pending.deleted += i - start
                else:
                    self._pending.updated += i - start
                if i == n:
                    return
            row = rows[i]
            i += 1
            if deleting:
                self._on_delete(Delete(None, relation_id, "K", row))
            else:
                self._on_update(Update(None, relation_id, None, None, row))

    def _on_update(self, m: Update) -> None:
        target = self._target(m.relation_id)
        if target.skip:
            return
        self._pending.updated += 1
        if m.old_kind is None and self._may_defer(target) and self._defer(target, m.new):
            return
        self._flush_deferred(m.relation_id)
        self._apply_update(target, m)

    def _apply_update(self, target: Target, m: Update) -> None:
        self._flush_copy()
        self._run_as_owner(target)
        # The common shape (no old tuple; TOASTed values left out are not
        # text, so take the long way), found without working it out again.
        plain = target.plain_update
        if (
            plain is not None
            and m.old_kind is None
            and self._rows.add_plain(plain, self._run_lsn(), m.new)
        ):
            return
        info = self._table_info(target)
        columns = target.relation.columns
        where, where_vals = self._identity(target, info, m.old, m.old_kind, m.new)
        old = m.old if m.old_kind == "O" else None
        # Set what changed: not the unchanged TOASTed values (not sent), nor
        # what is known to be the same (the key when it did not change, the
        # equal columns of a full old row).
        changed = []
        for i, (column, value) in enumerate(zip(columns, m.new, strict=True)):
            if value is UNCHANGED_TOAST:
                continue
            if old is not None and old[i] == value:
                continue
            if old is None and column.is_key and (m.old is None or m.old[i] == value):
                continue
            if info.column(column.name).generated:
                continue
            changed.append(i)
        set_cols = [columns[i].name for i in changed]
        set_vals = [_text(m.new[i]) for i in changed]
        if not changed:
            # Nothing to write; still check the row is there.
            key: tuple[Any, ...] = ("F", where)
            query = self._statement_for(target, key, lambda: self._find_sql(target, info, where))
            self._execute_one(query, where_vals, target, "UPDATE", where, where_vals)
        elif any(info.column(c).identity_always for c in set_cols):
            # An UPDATE cannot set a GENERATED ALWAYS identity column: move the row.
            key = ("M", tuple(changed), where)
            query = self._statement_for(
                target, key, lambda: self._move_sql(target, info, set_cols, where)
            )
            new = dict(zip(set_cols, set_vals, strict=True))
            moved = [new[n] for n in _move_columns(info, set_cols) if n in new]
            self._execute_one(query, where_vals + moved, target, "UPDATE", where, where_vals)
        else:
            key = ("U", tuple(changed), where)
            query = self._statement_for(
                target, key, lambda: self._update_sql(target, info, set_cols, where)
            )
            shape = self._run_shape(target, info, key, query, set_cols, where)
            if shape is None or not self._add_to_run(shape, set_vals + where_vals):
                self._execute_one(query, set_vals + where_vals, target, "UPDATE", where, where_vals)
            elif m.old_kind is None and UNCHANGED_TOAST not in m.new:
                # Every such change of this table has this shape.
                target.plain_update = shape

    def _on_delete(self, m: Delete) -> None:
        target = self._target(m.relation_id)
        if target.skip:
            return
        self._pending.deleted += 1
        self._flush_deferred(m.relation_id)
        self._flush_copy()
        self._run_as_owner(target)
        plain = target.plain_delete
        if (
            plain is not None
            and m.old_kind == "K"
            and self._rows.add_plain(plain, self._run_lsn(), m.old)
        ):
            return
        if m.old is None:
            raise ProtocolError(f"DELETE on {target.relation.name} without an old tuple")
        info = self._table_info(target)
        where, where_vals = self._identity(target, info, m.old, m.old_kind, None)
        key = ("D", where)
        query = self._statement_for(target, key, lambda: self._delete_sql(target, info, where))
        shape = self._run_shape(target, info, key, query, None, where)
        if shape is None or not self._add_to_run(shape, where_vals):
            self._execute_one(query, where_vals, target, "DELETE", where, where_vals)
        elif m.old_kind == "K":
            target.plain_delete = shape

    def _identity(
        self,
        target: Target,
        info: TableInfo,
        old: Sequence[Value] | None,
        old_kind: str | None,
        new: Sequence[Value] | None,
    ) -> tuple[Where, list[str | None]]:
        """How to find the row (the key, or the whole old row), and the parameters."""
        columns = target.relation.columns
        full = old_kind == "O" and old is not None
        if full:
            assert old is not None
            source: Sequence[Value] | None = old
            picked = [i for i, v in enumerate(old) if v is not UNCHANGED_TOAST]
        else:
            source = old if old is not None else new
            picked = [i for i, c in enumerate(columns) if c.is_key]
        if source is None or not picked:
            raise ApplyError(
                f'cannot find the row to change in "{target.relation.namespace}".'
                f'"{target.relation.name}": the upstream sent no replica identity',
                statement=None,
            )
        conditions: list[tuple[str, bool]] = []
        params: list[str | None] = []
        for i in picked:
            name, value = columns[i].name, source[i]
            if value is None:
                conditions.append((name, True))
                continue
            conditions.append((name, False))
            text = _text(value)
            params.append(text)
            match = info.column(name)
            if full and match.equality is not None and not match.exact:
                params.append(text)  # compared by equality, then by text form
        return Where(tuple(conditions), full), params

    def _statement_for(self, target: Target, key: tuple[Any, ...], build: Callable[[], str]) -> str:
        assert target.statements is not None
        query = target.statements.get(key)
        if query is None:
            query = target.statements[key] = build()
        return query

    # -- the downstream catalog ------------------------------------------------------
    def _table_info(self, target: Target) -> TableInfo:
        """The downstream table's columns and how to compare them; cached until DDL."""
        if target.info is not None:
            return target.info
        self._rows.flush()  # the pipeline must be idle to read the catalog
        rel = target.relation
        self._statement = "SELECT ... FROM pg_catalog.pg_attribute (the target's columns)"
        rows = self.conn.execute(_TABLE_SQL, [rel.namespace or "pg_catalog", rel.name]).fetchall()
        columns: dict[str, ColumnMatch] = {}
        for _kind, name, type_oid, identity, generated, deterministic in rows:
            if name is None:
                continue
            tm = self._type_match(int(type_oid))
            columns[str(name)] = ColumnMatch(
                type_name=tm.name,
                equality=tm.equality,
                exact=tm.exact or (tm.exact_if_deterministic and bool(deterministic)),
                identity_always=identity == "a",
                generated=bool(generated),
            )
        target.info = TableInfo(partitioned=bool(rows) and rows[0][0] == "p", columns=columns)
        return target.info

    def _type_match(self, type_oid: int) -> TypeMatch:
        cached = self._types.get(type_oid)
        if cached is not None:
            return cached
        row = self.conn.execute(
            "SELECT n.nspname, t.typname FROM pg_catalog.pg_type t"
            " JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = %s",
            [type_oid],
        ).fetchone()
        if row is None:
            raise ApplyError(f"type {type_oid} vanished from the downstream catalog")
        base, typtype = self._base_type(type_oid)
        equality = self._equality(base, depth=0)
        match = TypeMatch(
            name=self._ident(str(row[0]), str(row[1])),
            equality=equality,
            exact=equality is not None and (base in _EXACT_EQUALITY or typtype == "e"),
            exact_if_deterministic=equality is not None and base in _EXACT_IF_DETERMINISTIC,
        )
        self._types[type_oid] = match
        return match

    def _base_type(self, type_oid: int) -> tuple[int, str]:
        """The type under any domains, and its typtype."""
        for _ in range(100):
            row = self.conn.execute(
                "SELECT typtype, typbasetype FROM pg_catalog.pg_type WHERE oid = %s", [type_oid]
            ).fetchone()
            if row is None:
                break
            if row[0] != "d":
                return type_oid, str(row[0])
            type_oid = int(row[1])
        raise ApplyError(f"type {type_oid} vanished from the downstream catalog")

    def _equality(self, type_oid: int, depth: int) -> sql.Composable | None:
        """The default equality operator of a base type, if every part of it has one.

        As in PostgreSQL: an array's needs its element type's, a composite's
        needs its every column type's.
        """
        if depth > 50:
            return None
        row = self.conn.execute(_EQUALITY_SQL, {"type": type_oid}).fetchone()
        if row is None:
            return None
        opcintype, schema, name = int(row[0]), str(row[1]), str(row[2])
        if not name or not set(name) <= _OPERATOR_CHARS:
            return None
        if opcintype == _ANYARRAY:
            elem = self.conn.execute(
                "SELECT typelem FROM pg_catalog.pg_type WHERE oid = %s", [type_oid]
            ).fetchone()
            if elem is None or not self._part_has_equality(int(elem[0]), depth):
                return None
        elif opcintype == _RECORD:
            parts = self.conn.execute(
                "SELECT a.atttypid FROM pg_catalog.pg_type t"
                " JOIN pg_catalog.pg_attribute a ON a.attrelid = t.typrelid"
                " WHERE t.oid = %s AND a.attnum > 0 AND NOT a.attisdropped",
                [type_oid],
            ).fetchall()
            if not all(self._part_has_equality(int(p[0]), depth) for p in parts):
                return None
        return sql.SQL("OPERATOR({}.{})").format(sql.SQL(self._ident_text(schema)), sql.SQL(name))

    def _part_has_equality(self, type_oid: int, depth: int) -> bool:
        base, _ = self._base_type(type_oid)
        return self._equality(base, depth + 1) is not None

    def _ident_text(self, *names: str) -> str:
        # Rendered for statements run with parameters: a literal % is written %%.
        return sql.Identifier(*names).as_string(self.conn).replace("%", "%%")

    def _ident(self, *names: str) -> sql.Composable:
        return sql.SQL(self._ident_text(*names))

    # -- statements ------------------------------------------------------------------
    def _table_sql(self, target: Target, info: TableInfo) -> sql.Composable:
        """The table for UPDATE and DELETE: ONLY it, not its inheritance children."""
        rel = target.relation
        name = self._ident(rel.namespace or "pg_catalog", rel.name)
        # A partitioned table's rows are all in its partitions.
        return name if info.partitioned else sql.SQL("ONLY {}").format(name)

    def _condition(self, info: TableInfo, name: str, null: bool, full: bool) -> sql.Composable:
        """One column of the WHERE clause that finds a row."""
        column = self._ident(name)
        if null:
            return sql.SQL("{} IS NULL").format(column)
        match = info.column(name)
        text_form = sql.SQL(
            '(pg_catalog.concat({}) COLLATE pg_catalog."C")'
            " OPERATOR(pg_catalog.=) {}::pg_catalog.text"
        ).format(column, sql.Placeholder())
        if match.equality is None or match.type_name is None:
            return text_form
        equal = sql.SQL("{} {} {}::{}").format(
            column, match.equality, sql.Placeholder(), match.type_name
        )
        # A key is unique under its equality; a full row may have equal twins.
        if match.exact or not full:
            return equal
        return sql.SQL("{} AND {}").format(equal, text_form)

    def _where_sql(self, target: Target, info: TableInfo, where: Where) -> sql.Composable:
        """The WHERE clause; with a full-row identity, duplicates exist: touch one."""
        conditions = sql.SQL(" AND ").join(
            self._condition(info, name, null, where.full) for name, null in where.columns
        )
        if not where.full:
            return conditions
        # Rows of different partitions can share a ctid.
        rowid = "(tableoid, ctid)" if info.partitioned else "ctid"
        return sql.SQL("{} = (SELECT {} FROM {} WHERE {} LIMIT 1)").format(
            sql.SQL(rowid), sql.SQL(rowid.strip("()")), self._table_sql(target, info), conditions
        )

    def _update_sql(
        self, target: Target, info: TableInfo, set_cols: Sequence[str], where: Where
    ) -> str:
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(self._ident(c), sql.Placeholder()) for c in set_cols
        )
        return self._render(
            sql.SQL("UPDATE {} SET {} WHERE {}").format(
                self._table_sql(target, info), assignments, self._where_sql(target, info, where)
            )
        )

    def _delete_sql(self, target: Target, info: TableInfo, where: Where) -> str:
        return self._render(
            sql.SQL("DELETE FROM {} WHERE {}").format(
                self._table_sql(target, info), self._where_sql(target, info, where)
            )
        )

    def _find_sql(self, target: Target, info: TableInfo, where: Where) -> str:
        return self._render(
            sql.SQL("SELECT 1 FROM {} WHERE {} LIMIT 1").format(
                self._table_sql(target, info), self._where_sql(target, info, where)
            )
        )

    def _move_sql(
        self, target: Target, info: TableInfo, set_cols: Sequence[str], where: Where
    ) -> str:
        """DELETE the row and INSERT it again with the new values, keeping the others.

        The parameters: the WHERE clause's, then the new values in the order
        of ``_move_columns``.
        """
        new = set(set_cols)
        names = _move_columns(info, set_cols)
        values: list[sql.Composable] = []
        for n in names:
            type_name = info.column(n).type_name
            if n not in new:
                values.append(sql.SQL("moved.{}").format(self._ident(n)))
            elif type_name is None:
                values.append(sql.Placeholder())
            else:
                values.append(sql.SQL("{}::{}").format(sql.Placeholder(), type_name))
        rel = target.relation
        return self._render(
            sql.SQL(
                "WITH moved AS (DELETE FROM {} WHERE {} RETURNING *)"
                " INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM moved"
            ).format(
                self._table_sql(target, info),
                self._where_sql(target, info, where),
                self._ident(rel.namespace or "pg_catalog", rel.name),
                sql.SQL(", ").join(self._ident(n) for n in names),
                sql.SQL(", ").join(values),
            )
        )

    def _row_statement(
        self,
        query: str,
        target: Target,
        verb: str,
        where: Where,
        where_vals: Sequence[str | None],
        lsn: int | None = None,
    ) -> Statement:
        """A statement that must touch one row; its key names the row in errors."""
        rel = target.relation
        names = () if where.full else tuple(n for n, null in where.columns if not null)
        return Statement(
            query,
            verb,
            f'"{rel.namespace}"."{rel.name}"',
            lsn,
            1,
            names,
            where_vals if names else (),
        )

    def _execute_one(
        self,
        query: str,
        params: Sequence[str | None],
        target: Target,
        verb: str,
        where: Where,
        where_vals: Sequence[str | None],
    ) -> None:
        """Send a one-row statement down the pipeline; its row count is checked later."""
        self._statement = query
        st = self._row_statement(query, target, verb, where, where_vals, self._run_lsn())
        self._rows.one(st, params)

    def _run_lsn(self) -> int | None:
        if self._deferred_lsn is not None:
            return self._deferred_lsn
        return self._begin.final_lsn if self._begin else None

    def _add_to_run(self, shape: RunShape, params: Sequence[str | None]) -> bool:
        """Put a change in the set-based run of its shape; False: it goes row by row."""
        lsn = self._run_lsn()
        if self._rows.row_by_row(lsn):
            return False
        self._statement = shape.set_query
        self._rows.add(shape, lsn, params)
        return True

    def _run_shape(
        self,
        target: Target,
        info: TableInfo,
        key: tuple[Any, ...],
        query: str,
        set_cols: Sequence[str] | None,
        where: Where,
    ) -> RunShape | None:
        """The set-based shape of an UPDATE (``set_cols``) or DELETE, cached."""
        if key in target.runs:
            return target.runs[key]
        shape = None
        set_query = self._set_sql(target, info, set_cols, where)
        if set_query:
            verb = "DELETE" if set_cols is None else "UPDATE"
            names = [c.name for c in target.relation.columns]
            where_names = [name for name, _null in where.columns]
            shape = RunShape(
                row=self._row_statement(query, target, verb, where, (), lsn=None),
                set_query=set_query,
                key_from=len(set_cols or ()),
                value_columns=tuple(names.index(n) for n in [*(set_cols or ()), *where_names]),
            )
        target.runs[key] = shape
        return shape

    def _set_sql(
        self, target: Target, info: TableInfo, set_cols: Sequence[str] | None, where: Where
    ) -> str:
        """The set-based UPDATE (``set_cols``) or DELETE for a run of one shape;
        "" for shapes that stay row by row: a full-row identity (duplicates,
        text-form matching), a NULL or a type without equality in the key, a
        key change."""
        key_names = [name for name, _null in where.columns]
        if where.full or any(null for _name, null in where.columns):
            return ""
        if set_cols is not None and set(set_cols) & set(key_names):
            return ""
        keys = []
        for name in key_names:
            match = info.column(name)
            if match.equality is None or match.type_name is None:
                return ""
            keys.append((self._ident(name), match.equality, match.type_name))
        sets = []
        for name in set_cols or ():
            type_name = info.column(name).type_name
            if type_name is None:
                return ""
            sets.append((self._ident(name), type_name))
        verb = "DELETE" if set_cols is None else "UPDATE"
        return self._render(set_statement(verb, self._table_sql(target, info), sets, keys))

    def _on_truncate(self, m: Truncate) -> None:
        self._flush_pending()
        targets = [t for t in (self._target(r) for r in m.relation_ids) if not t.skip]
        if not targets:
            return
        self._pending.truncated += len(targets)
        # Each table ONLY (in "TRUNCATE ONLY a, b" the ONLY is a's alone): the
        # upstream listed every table it truncated, inheritance children and
        # partitions included.
        tables = []
        for t in targets:
            partitioned = self._table_info(t).partitioned
            tables.append(t.table if partitioned else sql.SQL("ONLY {}").format(t.table))
        parts: list[sql.Composable] = [sql.SQL("TRUNCATE "), sql.SQL(", ").join(tables)]
        if m.restart_identity:
            parts.append(sql.SQL(" RESTART IDENTITY"))
        if m.cascade:
            parts.append(sql.SQL(" CASCADE"))
        self._statement = self._render(sql.Composed(parts))
        self._run_as_owners(targets)
        self.conn.execute(self._statement)

    # -- whose rights ---------------------------------------------------------------
    def _owner(self, target: Target) -> str | None:
        """The role to apply ``target``'s changes as: its owner, unless that is a
        superuser or the worker's own role (then None: no switch, no cost)."""
        if target.owner_known:
            return target.owner
        self._rows.flush()  # the pipeline must be idle to read the catalog
        rel = target.relation
        row = self.conn.execute(
            "SELECT r.rolname::text, r.rolsuper FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_catalog.pg_roles r ON r.oid = c.relowner"
            " WHERE n.nspname = %s AND c.relname = %s",
            [rel.namespace or "pg_catalog", rel.name],
        ).fetchone()
        owner = str(row[0]) if row else None
        trusted = row is None or bool(row[1]) or owner == self._worker_role
        target.owner = None if trusted else owner
        target.owner_known = True
        return target.owner

    def _set_role(self, role: str | None) -> None:
        """SET LOCAL ROLE to ``role`` (None: back to the worker's), if not in force."""
        if role == self._role:
            return
        self._rows.send_run()  # what is buffered runs as the role it was buffered under
        param = [role if role else "none"]
        if self._rows.pipeline.open:
            self._rows.pipeline.send(Statement(_SET_ROLE, "SET", "", self._run_lsn(), None), param)
        else:
            self.conn.execute(_SET_ROLE, param)
        self._role = role

    def _reset_role(self) -> None:
        self._set_role(None)

    def _run_as_owner(self, target: Target) -> None:
        """Before a statement on ``target``: its owner's rights (as PostgreSQL 16's
        apply worker), so user code it runs cannot use the worker's."""
        self._set_role(self._owner(target))

    def _run_as_owners(self, targets: Sequence[Target]) -> None:
        """Before one TRUNCATE of several tables: their one owner; with several
        owners it runs as the worker, which is refused when it would fire a
        trigger of theirs (ENABLE ALWAYS or REPLICA ... ON TRUNCATE)."""
        owners = {o for o in (self._owner(t) for t in targets) if o is not None}
        if len(owners) <= 1:
            self._set_role(owners.pop() if owners else None)
            return
        self._reset_role()
        names = [self._render(t.table) for t in targets]
        fired = self.conn.execute(
            "SELECT DISTINCT tgrelid::pg_catalog.regclass::text FROM pg_catalog.pg_trigger"
            " WHERE tgrelid = ANY (%s::pg_catalog.regclass[]) AND tgenabled IN ('A', 'R')"
            " AND (tgtype::integer & 32) <> 0",  # TRIGGER_TYPE_TRUNCATE
            [names],
        ).fetchall()
        if fired:
            raise ApplyError(
                f"TRUNCATE of tables owned by {', '.join(sorted(owners))} would fire the"
                f" ON TRUNCATE trigger of {', '.join(str(r[0]) for r in fired)} with the"
                " worker's rights: truncate these tables one owner at a time upstream, or"
                " skip this transaction with skip_transaction()",
                lsn=lsn_to_str(self._begin.final_lsn) if self._begin else None,
                statement=self._statement,
            )

    # -- DDL -----------------------------------------------------------------------
    def _replay_ddl_row(self, target: Target, m: Insert) -> None:
        """Replay one row of pgfollower.ddl_queue (written only by the upstream's
        capture), under the upstream's search_path and as the role that ran it."""
        self._flush_pending()
        self._reset_role()
        lsn = lsn_to_str(self._begin.final_lsn) if self._begin else None
        row = {c.name: _text(v) for c, v in zip(target.relation.columns, m.new, strict=True)}
        version = row.get("v")
        if version != str(DDL_FORMAT_VERSION):
            raise ApplyError(
                f"DDL record format {version!r} is not understood by this worker"
                f" (it reads {DDL_FORMAT_VERSION}): install the same pg_follower_py on both"
                " nodes",
                lsn=lsn,  # the transaction's commit LSN, as for any apply error
            )
        statement = row.get("statement") or ""
        role = row.get("role_name") or ""
        tag = row.get("tag")
        # what errors and logs show: never a user mapping's password
        shown = redacted(tag, statement)
        self._statement = shown
        if role != self._worker_role:
            self._check_role(role, tag, lsn, shown)
        if row.get("kind") == MATVIEW_DIGEST_KIND:
            self._check_matview(row.get("identity") or "", statement, role, tag, lsn)
            return
        # The upstream checked the bodies (or, as pg_dump's scripts, chose not
        # to): the catalog is the same either way, and a body may name an
        # object that a later statement creates.
        settings = {"search_path": row.get("search_path") or "", "check_function_bodies": "off"}
        settings.update(_literal_settings(row.get("settings")))
        names = list(settings)
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT pg_catalog.current_setting(n) FROM unnest(%s::text[]) WITH ORDINALITY"
                " AS u(n, i) ORDER BY i",
                [names],
            )
            saved = [r[0] for r in cur.fetchall()]
            if shown != statement:
                self._keep_out_of_server_log(cur)
            # The role first: the worker never runs a query under a search_path
            # another role chose (its own functions or operators could shadow).
            self._set_role(None if role == self._worker_role else role)
            setter = (
                "SELECT pg_catalog.set_config(n, v, true)"
                " FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS u(n, v, i) ORDER BY i"
            )
            cur.execute(setter, [names, list(settings.values())])
            try:
                cur.execute(statement.encode())
            except psycopg.Error as exc:
                raise self._ddl_error(exc) from exc
            cur.execute(setter, [names, saved])
            self._reset_role()
        self._forget_catalog()
        logger.info("applied %s %s as %s", tag, row.get("identity"), role)

    def _ddl_error(self, exc: psycopg.Error) -> ApplyError:
        """The apply error of a replayed statement, with the way out of it."""
        error = self._apply_error(exc)
        hint = way_out(getattr(exc, "sqlstate", None), first_line(exc))
        if hint:
            error = ApplyError(f"{error}: {hint}", lsn=error.lsn, statement=error.statement)
        return error

    def _keep_out_of_server_log(self, cur: psycopg.Cursor[Any]) -> None:
        """Where the worker may: no statement with a secret in the server's log."""
        cur.execute(
            "SELECT pg_catalog.set_config(p.name, p.value, true)"
            "  FROM (VALUES ('log_min_error_statement', 'panic'), ('log_statement', 'none'))"
            "       AS p(name, value)"
            " WHERE pg_catalog.has_parameter_privilege(p.name, 'SET')"
        )

    def _check_matview(
        self, identity: str, expected: str, role: str, tag: str | None, lsn: str | None
    ) -> None:
        """The rows a replayed CREATE MATERIALIZED VIEW or REFRESH gave must be the
        upstream's: its query may read what the downstream lacks at this point."""
        self._set_role(None if role == self._worker_role else role)
        row = self.conn.execute(matview_digest_query(identity).encode()).fetchone()
        self._reset_role()
        found = str(row[0]) if row else ""
        if found == expected:
            return
        raise ApplyError(
            f"{tag} gave {identity} other rows downstream than upstream: its query read"
            " rows the upstream had not seen yet (a write that committed while the upstream"
            " statement ran), an unlogged table or a volatile function; skip this transaction"
            " with skip_transaction() (its other changes go with it), then REFRESH the view"
            " upstream while nothing writes to its tables",
            lsn=lsn,
            statement=f"{tag} {identity}",
        )

    def _check_role(self, role: str, tag: str | None, lsn: str | None, statement: str) -> None:
        """The DDL's role must exist downstream: an apply error naming it otherwise."""
        if self.conn.execute(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", [role]
        ).fetchone():
            return
        quoted = sql.Identifier(role).as_string(self.conn)
        raise ApplyError(
            f"the upstream ran this {tag or 'DDL'} as role {quoted}, which does not exist"
            f" downstream: create it there (CREATE ROLE {quoted}, with the grants it has"
            " upstream); the worker retries",
            lsn=lsn,
            statement=statement,
        )

    def _on_message(self, m: LogicalMessage) -> None:
        """Never executed: any upstream role can emit a logical message."""
        self._flush_pending()
        prefix = m.prefix or ""
        if prefix != MESSAGE_PREFIX and not prefix.startswith(MESSAGE_PREFIX + "."):
            return
        # A warning, not an apply error: an error would let any LOGIN role
        # halt replication with one pg_logical_emit_message() call.
        where = (
            f"the upstream transaction committed at {lsn_to_str(self._begin.final_lsn)}"
            if m.transactional and self._begin
            else f"a non-transactional message at {lsn_to_str(m.lsn)}"
        )
        logger.warning(
            "ignored a logical message with prefix %r in %s: pg_follower_py replays DDL only"
            " from its capture trigger (pgfollower.ddl_queue), never from messages",
            prefix,
            where,
        )


def _literal_settings(raw: str | None) -> dict[str, str]:
    """The upstream settings a DDL record carries, only those the worker sets."""
    try:
        found = json.loads(raw or "{}")
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {n: found[n] for n in LITERAL_SETTINGS if isinstance(found.get(n), str) and found[n]}


def _move_columns(info: TableInfo, set_cols: Sequence[str]) -> list[str]:
    """The columns a moved row is inserted with: every stored one downstream."""
    names = [n for n, c in info.columns.items() if not c.generated]
    return names + [c for c in set_cols if c not in info.columns]


def _ignore(_message: object) -> None:
    return None
