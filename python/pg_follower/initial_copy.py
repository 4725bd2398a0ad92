"""The initial copy: the upstream's schema and rows, as of the slot's snapshot.

The slot is created with an exported snapshot; everything here reads the
upstream through that one snapshot, so the copy plus the changes streamed
from the slot's consistent point are the upstream exactly, whatever writers
do meanwhile.

The whole copy is one downstream transaction, committed together with the
replication origin's first position. A copy interrupted by anything (a kill,
a lost connection, a conflict downstream) leaves nothing behind: the next
attempt drops the slot and starts over from a new snapshot.

Order: the schema's pre-data section (pg_dump: schemas, types, sequences,
tables), then every published table's rows with COPY, then the post-data
section (constraints, indexes, triggers; faster after the rows and free of
ordering problems between foreign keys), then sequence values. A reader
thread pulls rows from the upstream while this thread writes them
downstream, so both servers work at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from . import PUBLICATION
from . import conninfo as conninfo_mod
from .apply import INTERNAL_SCHEMA
from .ddl import split_statements
from .errors import ApplyError, FollowerError, UpstreamError, first_line
from .stream import _literal, worker_conninfo

logger = logging.getLogger("pg_follower.initial_copy")

CHUNK_BYTES = 1 << 20  # rows travel from the reader to the writer in ~1 MB chunks
QUEUE_CHUNKS = 16  # at most this many chunks in flight: memory stays bounded
PG_DUMP_TIMEOUT = 3600.0
# An extension's relations are made (and its tables filled) by CREATE EXTENSION.
_NOT_AN_EXTENSION_MEMBER = (
    "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
    "                    WHERE d.classid = 'pg_catalog.pg_class'::regclass"
    "                      AND d.objid = c.oid AND d.deptype = 'e')"
)
_ALREADY_EXISTS = frozenset(
    {"42P07", "42710", "42P06", "42723"}
)  # relation, object, schema, function
# Owners are kept (ALTER ... OWNER TO): an object an ordinary role made
# upstream must not become the worker's downstream (a SECURITY DEFINER
# function would then run as the worker).
DUMP_OPTIONS = (
    "--schema-only",
    "--no-privileges",
    "--no-tablespaces",
    "--no-publications",
    "--no-subscriptions",
    "--no-security-labels",
    f"--exclude-schema={INTERNAL_SCHEMA}",
)


@dataclass(frozen=True, slots=True)
class TableToCopy:
    schema: str
    name: str
    columns: tuple[str, ...]
    estimated_rows: int

    @property
    def label(self) -> str:
        return f'"{self.schema}"."{self.name}"'


@dataclass(frozen=True, slots=True)
class SequenceValue:
    schema: str
    name: str
    last_value: int
    is_called: bool


@dataclass(slots=True)
class CopyProgress:
    """Shared with the status writer: plain counters, written by one thread."""

    tables_total: int = 0
    tables_copied: int = 0
    rows_total: int = 0
    rows_copied: int = 0


def read_sequence_values(up: psycopg.Connection[Any]) -> list[SequenceValue]:
    """Every user sequence of the upstream database and its current value."""
    names = up.execute(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c"
        "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'S' AND n.nspname <> %s"
        "   AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        "   AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast%%'"
        + _NOT_AN_EXTENSION_MEMBER,
        [INTERNAL_SCHEMA],
    ).fetchall()
    values = []
    for schema, name in names:
        row = up.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
        ).fetchone()
        assert row is not None
        values.append(SequenceValue(schema, name, int(row[0]), bool(row[1])))
    return values


def find_pg_dump() -> str:
    """The newest pg_dump on this machine: $PG_DUMP, Debian's versioned dirs, PATH."""
    explicit = os.environ.get("PG_DUMP")
    if explicit:
        return explicit
    versioned = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_dump"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    if versioned:
        return str(versioned[0])
    found = shutil.which("pg_dump")
    if found is None:
        raise FollowerError(
            "pg_dump is needed for the initial copy and was not found:"
            " install postgresql-client, set PG_DUMP, or follow with copy_data => false"
        )
    return found


class InitialCopy:
    """Copies the upstream into the downstream's open transaction."""

    def __init__(
        self,
        upstream_conninfo: str,
        snapshot: str,
        down: psycopg.Connection[Any],
        progress: CopyProgress,
        stopping: Callable[[], bool],
    ):
        self.upstream_conninfo = upstream_conninfo
        self.snapshot = snapshot
        self.down = down
        self.progress = progress
        self.stopping = stopping

    def run(self) -> None:
        """Copy everything; the caller commits ``down`` (or rolls it back)."""
        with self._snapshot_connection() as up:
            tables = self._published_tables(up)
            sequences = read_sequence_values(up)
            self.progress.tables_total = len(tables)
            self.progress.rows_total = sum(t.estimated_rows for t in tables)
            self._run_script("pre-data", self._dump("pre-data"))
            self._copy_rows(up, tables)
            self._run_script("post-data", self._dump("post-data"))
            self._set_sequences(sequences)
        logger.info(
            "initial copy: %d tables, %d rows, %d sequences",
            self.progress.tables_copied,
            self.progress.rows_copied,
            len(sequences),
        )

    # -- the upstream, as of the snapshot ------------------------------------------
    def _snapshot_connection(self) -> psycopg.Connection[Any]:
        try:
            up = psycopg.connect(worker_conninfo(self.upstream_conninfo))
        except psycopg.OperationalError as exc:
            raise UpstreamError(f"cannot connect to the upstream: {first_line(exc)}") from exc
        up.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        up.execute(f"SET TRANSACTION SNAPSHOT {_literal(self.snapshot)}")
        return up

    def _published_tables(self, up: psycopg.Connection[Any]) -> list[TableToCopy]:
        rows = up.execute(
            "SELECT pt.schemaname, pt.tablename,"
            "       array(SELECT a.attname::text FROM pg_catalog.pg_attribute a"
            "              WHERE a.attrelid = c.oid AND a.attnum > 0"
            "                AND NOT a.attisdropped AND a.attgenerated = ''"
            "              ORDER BY a.attnum),"
            # never analyzed (-1): guess from the size, ~64 bytes a row on disk
            "       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint"
            "            ELSE pg_catalog.pg_relation_size(c.oid) / 64 END"
            "  FROM pg_catalog.pg_publication_tables pt"
            "  JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname"
            "  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename"
            " WHERE pt.pubname = %s AND pt.schemaname <> %s"
            + _NOT_AN_EXTENSION_MEMBER
            + " ORDER BY c.relpages DESC, 1, 2",
            [PUBLICATION, INTERNAL_SCHEMA],
        ).fetchall()
        return [TableToCopy(r[0], r[1], tuple(r[2]), int(r[3])) for r in rows]

    def _dump(self, section: str) -> str:
        """One section of the upstream's schema, from pg_dump in the snapshot."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        env.update(conninfo_mod.to_environment(worker_conninfo(self.upstream_conninfo)))
        argv = [find_pg_dump(), *DUMP_OPTIONS, f"--section={section}", "--snapshot", self.snapshot]
        try:
            res = subprocess.run(
                argv,
                env=env,
                capture_output=True,
                text=True,
                timeout=PG_DUMP_TIMEOUT,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FollowerError(f"pg_dump --section={section} failed: {exc}") from exc
        if res.returncode != 0:
            lines = res.stderr.strip().splitlines() or ["no message"]
            raise UpstreamError(f"pg_dump --section={section} failed: {lines[-1]}")
        return res.stdout

    # -- the downstream ------------------------------------------------------------
    def _run_script(self, section: str, script: str) -> None:
        """Replay a pg_dump section statement by statement, for precise errors."""
        with self.down.cursor() as cur:
            for statement in split_statements(_without_meta_commands(script)):
                statement = _transaction_local(statement)
                try:
                    cur.execute(statement.encode())
                except psycopg.Error as exc:
                    message = f"initial copy ({section}): {first_line(exc)}"
                    message += f" (SQLSTATE {exc.sqlstate or '?'})"
                    if exc.sqlstate in _ALREADY_EXISTS:
                        message += (
                            "; the downstream must not have the upstream's objects before"
                            " the copy: drop them, or follow with copy_data => false"
                        )
                    elif exc.sqlstate == "42704" and " OWNER TO " in statement:
                        message += (
                            "; the upstream's roles must exist downstream: create them"
                            " (CREATE ROLE ...), then the worker retries"
                        )
                    raise ApplyError(message, statement=statement) from exc

    def _copy_rows(self, up: psycopg.Connection[Any], tables: list[TableToCopy]) -> None:
        chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
        done = threading.Event()
        reader = threading.Thread(
            target=self._read_tables, args=(up, tables, chunks, done), name="copy-reader"
        )
        reader.start()
        try:
            for table in tables:
                self._write_table(table, chunks)
                self.progress.tables_copied += 1
        finally:
            done.set()
            while reader.is_alive():  # unblock a reader waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    chunks.get(timeout=0.1)
            reader.join()

    def _read_tables(
        self,
        up: psycopg.Connection[Any],
        tables: list[TableToCopy],
        chunks: queue.Queue[bytes | BaseException | None],
        done: threading.Event,
    ) -> None:
        try:
            for table in tables:
                query = _copy_sql("COPY {} ({}) TO STDOUT", table)
                with up.cursor() as cur, cur.copy(query) as copy:
                    buf = bytearray()
                    for data in copy:
                        buf += data
                        if len(buf) >= CHUNK_BYTES:
                            if not _put(chunks, bytes(buf), done):
                                return
                            buf.clear()
                    if buf and not _put(chunks, bytes(buf), done):
                        return
                if not _put(chunks, None, done):  # end of this table
                    return
        except BaseException as exc:  # handed to the writer, which raises it
            _put(chunks, exc, done)

    def _write_table(
        self, table: TableToCopy, chunks: queue.Queue[bytes | BaseException | None]
    ) -> None:
        query = _copy_sql("COPY {} ({}) FROM STDIN", table)
        logger.info("initial copy: %s (about %d rows)", table.label, table.estimated_rows)
        try:
            # triggers and CHECK expressions run as the table's owner, as in the stream
            owner = self._owner(table)
            if owner:
                self._set_role(owner)
            with self.down.cursor() as cur, cur.copy(query) as copy:
                while True:
                    if self.stopping():
                        raise FollowerError("stopped during the initial copy")
                    try:
                        item = chunks.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        if isinstance(item, psycopg.Error):
                            raise UpstreamError(
                                f"initial copy of {table.label}: reading the upstream failed:"
                                f" {first_line(item)}"
                            ) from item
                        raise item
                    copy.write(item)
                    self.progress.rows_copied += item.count(b"\n")
            if owner:
                self._set_role(None)
        except psycopg.Error as exc:
            raise ApplyError(
                f"initial copy of {table.label}: {first_line(exc)}"
                f" (SQLSTATE {exc.sqlstate or '?'})",
                statement=query.as_string(self.down),
            ) from exc

    def _owner(self, table: TableToCopy) -> str | None:
        """The downstream table's owner, unless it is a superuser or the worker."""
        row = self.down.execute(
            "SELECT r.rolname::text FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_catalog.pg_roles r ON r.oid = c.relowner"
            " WHERE n.nspname = %s AND c.relname = %s"
            " AND NOT r.rolsuper AND r.rolname <> current_user",
            [table.schema, table.name],
        ).fetchone()
        return str(row[0]) if row else None

    def _set_role(self, role: str | None) -> None:
        self.down.execute("SELECT pg_catalog.set_config('role', %s, true)", [role or "none"])

    def _set_sequences(self, sequences: list[SequenceValue]) -> None:
        with self.down.cursor() as cur:
            for seq in sequences:
                cur.execute(
                    "SELECT pg_catalog.setval(%s::regclass, %s, %s)",
                    [
                        sql.Identifier(seq.schema, seq.name).as_string(self.down),
                        seq.last_value,
                        seq.is_called,
                    ],
                )


def _copy_sql(template: str, table: TableToCopy) -> sql.Composed:
    return sql.SQL(template).format(
        sql.Identifier(table.schema, table.name),
        sql.SQL(", ").join(sql.Identifier(c) for c in table.columns),
    )


def _put(
    chunks: queue.Queue[bytes | BaseException | None],
    item: bytes | BaseException | None,
    done: threading.Event,
) -> bool:
    """Queue ``item`` unless the writer gave up; False when it did."""
    while not done.is_set():
        try:
            chunks.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _without_meta_commands(script: str) -> str:
    """pg_dump (15.14 and later) brackets its output with psql's \\restrict and
    \\unrestrict; they are for psql, not the server."""
    return "".join(line for line in script.splitlines(keepends=True) if not line.startswith("\\"))


_SESSION_SEARCH_PATH = "SELECT pg_catalog.set_config('search_path', '', false)"


def _transaction_local(statement: str) -> str:
    """pg_dump's session settings (an empty search_path, check_function_bodies
    off...), made to end with the copy's transaction instead of staying on
    the applier's session."""
    stripped = statement.strip()
    if stripped.upper().startswith("SET ") and not stripped.upper().startswith(
        ("SET LOCAL ", "SET SESSION ")
    ):
        return "SET LOCAL " + stripped[4:]
    if stripped.startswith(_SESSION_SEARCH_PATH):
        return "SELECT pg_catalog.set_config('search_path', '', true)"
    return statement
