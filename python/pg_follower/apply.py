"""The PostgreSQL destination: applies decoded upstream transactions downstream.

Each upstream transaction becomes one downstream transaction, run with
``session_replication_role = replica``; its commit records the upstream
position in a replication origin, so progress and data commit atomically and
a restarted worker resumes exactly after the last applied transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from . import MESSAGE_PREFIX
from .ddl import FORMAT_VERSION as DDL_FORMAT_VERSION
from .decode import (
    UNCHANGED_TOAST,
    Begin,
    BinaryValue,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    Origin,
    Relation,
    Truncate,
    Type,
    Update,
    lsn_to_str,
    pg_timestamp_to_datetime,
    str_to_lsn,
)
from .errors import ApplyError, ProtocolError, first_line

logger = logging.getLogger("pg_follower.apply")

# The extension's own tables are published like any other; never apply them.
INTERNAL_SCHEMA = "pgfollower"
COPY_BATCH_ROWS = 5000
COPY_BATCH_BYTES = 8 << 20  # wide rows: flush by size too, so memory stays bounded

Value = bytes | BinaryValue | object | None


@dataclass(slots=True)
class Target:
    """Where one upstream relation's changes go, and the SQL to put them there."""

    relation: Relation
    table: sql.Composable
    skip: bool
    copy_sql: str = ""
    statements: dict[tuple[Any, ...], str] | None = None


def _text(value: Value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    raise ProtocolError(f"unexpected value {value!r} in a text-format tuple")


_COPY_ESCAPES = ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"))


def _copy_field(value: Value) -> bytes:
    if value is None:
        return b"\\N"
    if not isinstance(value, bytes):
        raise ProtocolError(f"unexpected value {value!r} in an inserted row")
    for raw, escaped in _COPY_ESCAPES:
        if raw in value:
            value = value.replace(raw, escaped)
    return value


class PostgresApplier:
    """Applies one subscription's transactions on a downstream connection."""

    def __init__(self, conn: psycopg.Connection[Any], origin: str, sub_id: int | None = None):
        self.conn = conn
        self.origin = origin
        self.sub_id = sub_id
        # Commit LSN of the one failing transaction the operator asked to
        # skip (skip_transaction()); read at each session start.
        self.skip_lsn: int | None = None
        self._skip_requested = False
        self.targets: dict[int, Target] = {}
        self.position: int = 0  # end LSN of the last transaction applied downstream
        self._skipping = False
        self._in_transaction = False
        self._begin: Begin | None = None
        self._copy_rows: list[bytes] = []
        self._copy_bytes = 0
        self._copy_target: Target | None = None
        self._statement = ""
        self._handlers: dict[type, Callable[[Any], None]] = {
            Begin: self._on_begin,
            Commit: self._on_commit,
            Relation: self._on_relation,
            Insert: self._on_insert,
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
        with self.conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")
            cur.execute("SET statement_timeout = 0")
            cur.execute("SET lock_timeout = 0")
            cur.execute("SET idle_in_transaction_session_timeout = 0")
            cur.execute("SELECT pg_catalog.pg_replication_origin_session_setup(%s)", [self.origin])
            cur.execute("SELECT pg_catalog.pg_replication_origin_session_progress(false)::text")
            row = cur.fetchone()
        self.conn.commit()
        lsn = row[0] if row else None
        if lsn is None or lsn == "0/0":
            return None
        self.position = str_to_lsn(lsn)
        return self.position

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
        try:
            handler(message)
        except psycopg.Error as exc:
            self._fail(exc)
        return message if isinstance(message, Commit) else None

    def rollback(self) -> None:
        self._copy_rows.clear()
        self._copy_bytes = 0
        self._copy_target = None
        self._in_transaction = False
        self._skipping = False
        if not self.conn.closed:
            self.conn.rollback()

    def _fail(self, exc: psycopg.Error) -> None:
        begin = self._begin
        lsn = lsn_to_str(begin.final_lsn) if begin else None
        statement = self._statement
        diag = getattr(exc, "diag", None)
        sqlstate = getattr(exc, "sqlstate", None) or "?"
        detail = getattr(diag, "message_detail", None) if diag else None
        message = f"{first_line(exc)} (SQLSTATE {sqlstate})"
        if detail:
            message += f"; {detail}"
        self.rollback()
        raise ApplyError(message, lsn=lsn, statement=statement) from exc

    # -- transactions ----------------------------------------------------------
    def _on_begin(self, m: Begin) -> None:
        self._begin = m
        self._in_transaction = True
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
        if self._skipping:
            self._skipping = False
            self._in_transaction = False
            if self._skip_requested:
                self._commit_skip(m)
            return
        self._flush_copy()
        self._statement = "SELECT pg_replication_origin_xact_setup(...)"
        self.conn.execute(
            "SELECT pg_catalog.pg_replication_origin_xact_setup(%s, %s)",
            [lsn_to_str(m.end_lsn), pg_timestamp_to_datetime(m.commit_ts)],
        )
        self._statement = "COMMIT"
        self.conn.commit()
        self.position = m.end_lsn
        self._in_transaction = False
        self._statement = ""

    def _commit_skip(self, m: Commit) -> None:
        """Move past a skipped transaction and forget the request, atomically."""
        self._skip_requested = False
        self.conn.execute(
            "UPDATE pgfollower.subscription SET skip_lsn = NULL WHERE id = %s", [self.sub_id]
        )
        self.conn.execute(
            "SELECT pg_catalog.pg_replication_origin_xact_setup(%s, %s)",
            [lsn_to_str(m.end_lsn), pg_timestamp_to_datetime(m.commit_ts)],
        )
        self.conn.commit()
        self.position = m.end_lsn
        self.skip_lsn = None

    # -- relations ---------------------------------------------------------------
    def _on_relation(self, m: Relation) -> None:
        namespace = m.namespace or "pg_catalog"
        self.targets[m.relation_id] = Target(
            relation=m,
            table=sql.Identifier(namespace, m.name),
            skip=namespace == INTERNAL_SCHEMA,
            statements={},
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
        if target.skip:
            return
        if self._copy_target is not target:
            self._flush_copy()
            self._copy_target = target
        line = b"\t".join([_copy_field(v) for v in m.new]) + b"\n"
        self._copy_rows.append(line)
        self._copy_bytes += len(line)
        if len(self._copy_rows) >= COPY_BATCH_ROWS or self._copy_bytes >= COPY_BATCH_BYTES:
            self._flush_copy()

    def _flush_copy(self) -> None:
        target = self._copy_target
        rows = self._copy_rows
        if target is None or not rows:
            self._copy_target = None
            return
        if not target.copy_sql:
            columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in target.relation.columns)
            target.copy_sql = self._render(
                sql.SQL("COPY {} ({}) FROM STDIN").format(target.table, columns)
            )
        self._statement = target.copy_sql
        with self.conn.cursor() as cur, cur.copy(target.copy_sql) as copy:
            copy.write(b"".join(rows))
        rows.clear()
        self._copy_bytes = 0
        self._copy_target = None

    def _on_update(self, m: Update) -> None:
        target = self._target(m.relation_id)
        if target.skip:
            return
        self._flush_copy()
        columns = target.relation.columns
        changed = [i for i, v in enumerate(m.new) if v is not UNCHANGED_TOAST]
        where_cols, where_vals = self._identity(target, m.old, m.old_kind, m.new)
        full = m.old_kind == "O"
        key = ("U", tuple(changed), tuple(where_cols), full)
        query = self._statement_for(
            target,
            key,
            lambda: self._update_sql(target, [columns[i].name for i in changed], where_cols, full),
        )
        params = [_text(m.new[i]) for i in changed] + where_vals
        self._execute_one(query, params, target, "UPDATE")

    def _on_delete(self, m: Delete) -> None:
        target = self._target(m.relation_id)
        if target.skip:
            return
        self._flush_copy()
        if m.old is None:
            raise ProtocolError(f"DELETE on {target.relation.name} without an old tuple")
        where_cols, where_vals = self._identity(target, m.old, m.old_kind, None)
        full = m.old_kind == "O"
        key = ("D", tuple(where_cols), full)
        query = self._statement_for(target, key, lambda: self._delete_sql(target, where_cols, full))
        self._execute_one(query, where_vals, target, "DELETE")

    def _identity(
        self,
        target: Target,
        old: Sequence[Value] | None,
        old_kind: str | None,
        new: Sequence[Value] | None,
    ) -> tuple[list[str], list[str | None]]:
        """Columns and values that find the row: the key, or the whole old row."""
        columns = target.relation.columns
        if old_kind == "O" and old is not None:
            picked = [i for i, v in enumerate(old) if v is not UNCHANGED_TOAST]
            return [columns[i].name for i in picked], [_text(old[i]) for i in picked]
        source = old if old is not None else new
        keys = [i for i, c in enumerate(columns) if c.is_key]
        if source is None or not keys:
            raise ApplyError(
                f'cannot find the row to change in "{target.relation.namespace}".'
                f'"{target.relation.name}": the upstream sent no replica identity',
                statement=None,
            )
        return [columns[i].name for i in keys], [_text(source[i]) for i in keys]

    def _statement_for(self, target: Target, key: tuple[Any, ...], build: Callable[[], str]) -> str:
        assert target.statements is not None
        query = target.statements.get(key)
        if query is None:
            query = target.statements[key] = build()
        return query

    def _where(self, columns: Sequence[str], full: bool) -> sql.Composable:
        # A full-row identity may hold NULLs: match them with IS NOT DISTINCT FROM.
        op = sql.SQL(" IS NOT DISTINCT FROM ") if full else sql.SQL(" = ")
        return sql.SQL(" AND ").join(
            sql.Composed([sql.Identifier(c), op, sql.Placeholder()]) for c in columns
        )

    def _update_sql(
        self, target: Target, set_cols: Sequence[str], where_cols: Sequence[str], full: bool
    ) -> str:
        assignments = sql.SQL(", ").join(
            sql.Composed([sql.Identifier(c), sql.SQL(" = "), sql.Placeholder()]) for c in set_cols
        )
        where = self._one_row(target, where_cols, full)
        return self._render(
            sql.SQL("UPDATE {} SET {} WHERE {}").format(target.table, assignments, where)
        )

    def _delete_sql(self, target: Target, where_cols: Sequence[str], full: bool) -> str:
        where = self._one_row(target, where_cols, full)
        return self._render(sql.SQL("DELETE FROM {} WHERE {}").format(target.table, where))

    def _one_row(self, target: Target, where_cols: Sequence[str], full: bool) -> sql.Composable:
        """The WHERE clause; with a full-row identity, duplicates exist: touch one."""
        if not full:
            return self._where(where_cols, full)
        return sql.SQL("ctid = (SELECT ctid FROM {} WHERE {} LIMIT 1)").format(
            target.table, self._where(where_cols, full)
        )

    def _execute_one(
        self, query: str, params: Sequence[str | None], target: Target, verb: str
    ) -> None:
        self._statement = query
        cur = self.conn.execute(query, params)
        if cur.rowcount != 1:
            rel = target.relation
            raise ApplyError(
                f'{verb} found no row in "{rel.namespace}"."{rel.name}" to change:'
                " the downstream is not the same as the upstream",
                lsn=lsn_to_str(self._begin.final_lsn) if self._begin else None,
                statement=query,
            )

    def _on_truncate(self, m: Truncate) -> None:
        self._flush_copy()
        tables = [t.table for t in (self._target(r) for r in m.relation_ids) if not t.skip]
        if not tables:
            return
        parts: list[sql.Composable] = [
            sql.SQL("TRUNCATE ONLY "),
            sql.SQL(", ").join(tables),
        ]
        if m.restart_identity:
            parts.append(sql.SQL(" RESTART IDENTITY"))
        if m.cascade:
            parts.append(sql.SQL(" CASCADE"))
        self._statement = self._render(sql.Composed(parts))
        self.conn.execute(self._statement)

    # -- DDL -----------------------------------------------------------------------
    def _on_message(self, m: LogicalMessage) -> None:
        if m.prefix != MESSAGE_PREFIX or not m.transactional:
            return
        self._flush_copy()
        try:
            ddl = json.loads(m.content)
        except ValueError as exc:
            raise ProtocolError(f"undecodable DDL message at {lsn_to_str(m.lsn)}: {exc}") from exc
        version = ddl.get("v")
        if version != DDL_FORMAT_VERSION:
            raise ApplyError(
                f"DDL message format {version!r} is not understood by this worker"
                f" (it reads {DDL_FORMAT_VERSION}): upgrade pg_follower_py on the downstream",
                lsn=lsn_to_str(m.lsn),
            )
        statement = str(ddl["sql"])
        self._statement = statement
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.current_setting('search_path')")
            row = cur.fetchone()
            saved = row[0] if row else ""
            cur.execute(
                "SELECT pg_catalog.set_config('search_path', %s, true)",
                [str(ddl.get("search_path", ""))],
            )
            cur.execute(statement.encode())
            cur.execute("SELECT pg_catalog.set_config('search_path', %s, true)", [saved])
        logger.info("applied %s %s", ddl.get("tag"), ddl.get("identity"))


def _ignore(_message: object) -> None:
    return None
