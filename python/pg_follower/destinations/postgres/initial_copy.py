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
ordering problems between foreign keys), then sequence values. Both pg_dump
runs start at once; the post-data one finishes while the rows are copied.

Rows go through ``copy_pump`` (libpq level, no per-row Python beyond one
call), in binary format where both servers read it alike (same major version
and encoding, built-in types only), into tables this transaction created, so
with FREEZE: no hint-bit writes or freezing vacuum of the copied rows later.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pg_follower import INTERNAL_SCHEMA, PUBLICATION
from pg_follower.destinations.postgres import copy_pump
from pg_follower.destinations.postgres.sequences import (
    SequenceValue,
    read_sequences,
    unreadable_error,
)
from pg_follower.errors import ApplyError, FollowerError, UpstreamError, first_line
from pg_follower.server.ddl import split_statements
from pg_follower.source import conninfo as conninfo_mod
from pg_follower.source.stream import _literal, worker_conninfo

logger = logging.getLogger("pg_follower.initial_copy")

PG_DUMP_TIMEOUT = 3600.0
# Index and constraint builds after the rows sort every row: at least this
# much memory for them (and for their parallel workers), for this transaction.
POST_DATA_MAINTENANCE_WORK_MEM_MB = 256
SLOW_STATEMENT_SECONDS = 0.5  # schema statements that take longer are logged
FIRST_NORMAL_OID = 16384  # below: built-in objects, the same OIDs on every server
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
# function would then run as the worker). So are privileges (GRANT, REVOKE,
# ALTER DEFAULT PRIVILEGES), comments, policies and security labels: the
# downstream stands in for the upstream. Both need the upstream's roles.
DUMP_OPTIONS = (
    "--schema-only",
    "--no-tablespaces",
    "--no-publications",
    "--no-subscriptions",
    f"--exclude-schema={INTERNAL_SCHEMA}",
)
# The way out when the downstream cannot have the upstream's roles (read by
# the worker from its downstream session: ALTER DATABASE/ROLE ... SET).
COPY_PRIVILEGES_SETTING = "pg_follower_py.copy_privileges"
WITHOUT_PRIVILEGES = ("--no-owner", "--no-privileges", "--no-security-labels")
_MISSING_ROLE = re.compile(r'^role "(.+)" does not exist$')


@dataclass(frozen=True, slots=True)
class TableToCopy:
    schema: str
    name: str
    columns: tuple[str, ...]
    estimated_rows: int
    builtin_types: bool = False  # every column's type has a binary form both sides share
    plain: bool = True  # an ordinary table (COPY FREEZE does not take partitioned ones)

    @property
    def label(self) -> str:
        return f'"{self.schema}"."{self.name}"'


@dataclass(slots=True)
class CopyProgress:
    """Shared with the status writer: plain counters, written by one thread."""

    tables_total: int = 0
    tables_copied: int = 0
    rows_total: int = 0
    rows_copied: int = 0


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
        self.dump_options: tuple[str, ...] = DUMP_OPTIONS
        self.missing_roles: list[str] = []  # found before the schema is replayed
        self.upstream_role: str | None = None  # the role the snapshot connection reads as

    def run(self) -> None:
        """Copy everything; the caller commits ``down`` (or rolls it back)."""
        started = time.monotonic()
        self.dump_options = DUMP_OPTIONS + (() if self._copy_privileges() else WITHOUT_PRIVILEGES)
        dumps = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pg_dump")
        try:
            pre_data = dumps.submit(self._dump, "pre-data")
            post_data = dumps.submit(self._dump, "post-data")
            with self._snapshot_connection() as up:
                tables = self._published_tables(up)
                sequences = read_sequences(up)
                unreadable = unreadable_error(sequences)
                if unreadable:
                    raise UpstreamError(f"initial copy: {unreadable}")
                binary = self._binary_possible(up)
                matviews = _populated_matviews(up)
                if self.dump_options == DUMP_OPTIONS:
                    self.missing_roles = self._missing_roles(up)
                self.progress.tables_total = len(tables)
                self.progress.rows_total = sum(t.estimated_rows for t in tables)
                self._run_script("pre-data", _result(pre_data))
                schema_done = time.monotonic()
                self._copy_rows(up, tables, binary)
            rows_done = time.monotonic()
            self._run_post_data(_result(post_data))
            self._refresh_matviews(matviews)
            self._set_sequences(sequences)
        finally:
            dumps.shutdown(wait=False, cancel_futures=True)
        logger.info(
            "initial copy: %d tables, %d rows, %d sequences in %.1f s"
            " (schema %.1f s, rows %.1f s, indexes and constraints %.1f s)",
            self.progress.tables_copied,
            self.progress.rows_copied,
            len(sequences),
            time.monotonic() - started,
            schema_done - started,
            rows_done - schema_done,
            time.monotonic() - rows_done,
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
            "            ELSE pg_catalog.pg_relation_size(c.oid) / 64 END,"
            f"      ({_BUILTIN_TYPES_ONLY}),"
            "       c.relkind = 'r'"
            "  FROM pg_catalog.pg_publication_tables pt"
            "  JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname"
            "  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename"
            " WHERE pt.pubname = %s AND pt.schemaname <> %s"
            + _NOT_AN_EXTENSION_MEMBER
            + " ORDER BY c.relpages DESC, 1, 2",
            [PUBLICATION, INTERNAL_SCHEMA],
        ).fetchall()
        return [
            TableToCopy(r[0], r[1], tuple(r[2]), int(r[3]), bool(r[4]), bool(r[5])) for r in rows
        ]

    def _binary_possible(self, up: psycopg.Connection[Any]) -> bool:
        """Binary COPY needs both servers to read and write built-in types alike:
        the same major version and the same server encoding (text travels
        unconverted in binary)."""
        query = (
            "SELECT current_setting('server_version_num')::int / 10000,"
            " current_setting('server_encoding')"
        )
        ours, theirs = self.down.execute(query).fetchone(), up.execute(query).fetchone()
        if ours != theirs:
            logger.info("initial copy in text format: upstream %s, downstream %s", theirs, ours)
        return ours == theirs

    def _dump(self, section: str) -> str:
        """One section of the upstream's schema, from pg_dump in the snapshot."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        env.update(conninfo_mod.to_environment(worker_conninfo(self.upstream_conninfo)))
        argv = [
            find_pg_dump(),
            *self.dump_options,
            f"--section={section}",
            "--snapshot",
            self.snapshot,
        ]
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
                if _is_extension_comment(statement):
                    continue
                if _grant_on_own_schema(statement):
                    # pg_dump writes the privileges of extension members that
                    # changed since CREATE EXTENSION (pg_init_privs), even in an
                    # excluded schema: the upstream node's own plumbing (README's
                    # grants to the replication role), not the application's
                    logger.info(
                        "initial copy: not replayed, a privilege on the extension's schema: %s",
                        " ".join(statement.split())[:200],
                    )
                    continue
                if self._grant_to_absent_follower(statement):
                    logger.info(
                        "initial copy: not replayed, the upstream role %s is not downstream: %s",
                        self.upstream_role,
                        " ".join(statement.split())[:200],
                    )
                    continue
                statement = _transaction_local(statement)
                started = time.monotonic()
                try:
                    cur.execute(statement.encode())
                    took = time.monotonic() - started
                    if took >= SLOW_STATEMENT_SECONDS:
                        logger.info(
                            "initial copy: %.1f s for %s", took, " ".join(statement.split())[:120]
                        )
                except psycopg.Error as exc:
                    message = f"initial copy ({section}): {first_line(exc)}"
                    message += f" (SQLSTATE {exc.sqlstate or '?'})"
                    if exc.sqlstate in _ALREADY_EXISTS:
                        message += (
                            "; the downstream must not have the upstream's objects before"
                            " the copy: drop them, or follow with copy_data => false"
                        )
                    elif exc.sqlstate == "42704" and _MISSING_ROLE.match(
                        exc.diag.message_primary or ""
                    ):
                        message += "; " + self._missing_roles_hint()
                    raise ApplyError(message, statement=statement) from exc

    def _copy_privileges(self) -> bool:
        """Whether to copy owners, privileges and security labels (the default)."""
        row = self.down.execute(
            "SELECT current_setting(%s, true)", [COPY_PRIVILEGES_SETTING]
        ).fetchone()
        value = (row[0] if row and row[0] else "on").strip().lower()
        if value in ("on", "true", "yes", "1"):
            return True
        if value in ("off", "false", "no", "0"):
            logger.warning(
                "initial copy without owners, privileges and security labels (%s = off):"
                " the copied objects belong to the worker's role",
                COPY_PRIVILEGES_SETTING,
            )
            return False
        raise FollowerError(
            f"invalid value for {COPY_PRIVILEGES_SETTING}: {value!r}; use on (the default) or off"
        )

    def _missing_roles(self, up: psycopg.Connection[Any]) -> list[str]:
        """The roles the copied objects need (owners, grantees, policy roles:
        pg_shdepend, less extensions and their members) that the downstream lacks."""
        row = up.execute("SELECT current_user::text").fetchone()
        self.upstream_role = str(row[0]) if row else None
        needed = [
            str(r[0])
            for r in up.execute(
                "SELECT DISTINCT a.rolname::text FROM pg_catalog.pg_shdepend d"
                " JOIN pg_catalog.pg_roles a ON a.oid = d.refobjid"
                " WHERE d.dbid = (SELECT oid FROM pg_catalog.pg_database"
                "                  WHERE datname = current_database())"
                "   AND d.refclassid = 'pg_catalog.pg_authid'::regclass"
                "   AND d.deptype IN ('o', 'a', 'r')"
                "   AND d.classid <> 'pg_catalog.pg_extension'::regclass"
                "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e"
                "                    WHERE e.classid = d.classid AND e.objid = d.objid"
                "                      AND e.deptype = 'e')"
                " ORDER BY 1"
            ).fetchall()
        ]
        present = {
            str(r[0])
            for r in self.down.execute(
                "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY(%s)", [needed]
            ).fetchall()
        }
        return [name for name in needed if name not in present]

    def _grant_to_absent_follower(self, statement: str) -> bool:
        """A privilege of the role the worker reads the upstream as (what the
        README has operators grant it), when the downstream lacks that role:
        replication plumbing, not the application's; skipped."""
        role = self.upstream_role
        if role is None or role not in self.missing_roles:
            return False
        words = statement.split()
        if not words or words[0].upper() not in ("GRANT", "REVOKE", "ALTER"):
            return False
        if (
            words[0].upper() == "ALTER"
            and " ".join(words[:3]).upper() != "ALTER DEFAULT PRIVILEGES"
        ):
            return False
        text = " ".join(words).rstrip(";")
        names = {sql.Identifier(role).as_string(None)}
        if re.fullmatch(r"[a-z_][a-z0-9_$]*", role):
            names.add(role)  # pg_dump quotes only where needed
        return any(
            text.endswith((f" TO {n}", f" TO {n} WITH GRANT OPTION", f" FROM {n}")) for n in names
        )

    def _missing_roles_hint(self) -> str:
        roles = ", ".join(f'"{n}"' for n in self.missing_roles)
        return (
            f"the downstream lacks the upstream's roles {roles}"
            if roles
            else "the upstream's roles must exist downstream"
        ) + (
            ": create them (SELECT copy_roles() copies them from the upstream, without"
            " passwords), or copy without owners and privileges: ALTER DATABASE ..."
            f" SET {COPY_PRIVILEGES_SETTING} = off; the worker retries"
        )

    def _run_post_data(self, script: str) -> None:
        row = self.down.execute(
            "SELECT pg_catalog.pg_size_bytes(current_setting('maintenance_work_mem'))"
        ).fetchone()
        if row is None or int(row[0]) < POST_DATA_MAINTENANCE_WORK_MEM_MB << 20:
            self.down.execute(
                f"SET LOCAL maintenance_work_mem = '{POST_DATA_MAINTENANCE_WORK_MEM_MB}MB'"
            )
        self._run_script("post-data", script)

    def _copy_rows(
        self, up: psycopg.Connection[Any], tables: list[TableToCopy], binary: bool
    ) -> None:
        for table in tables:
            self._copy_table(up, table, binary and table.builtin_types)
            self.progress.tables_copied += 1

    def _copy_table(self, up: psycopg.Connection[Any], table: TableToCopy, binary: bool) -> None:
        options = ["FORMAT binary"] if binary else []
        copy_out = _copy_sql("COPY {} {} TO STDOUT", table, options)
        # FREEZE: the table is this transaction's own (pre-data created it)
        copy_in = _copy_sql(
            "COPY {} {} FROM STDIN", table, options + (["FREEZE"] if table.plain else [])
        )
        logger.info(
            "initial copy: %s (about %d rows, %s)",
            table.label,
            table.estimated_rows,
            "binary" if binary else "text",
        )
        progress = self.progress
        before = progress.rows_copied

        def on_rows(n: int) -> None:
            progress.rows_copied += n

        try:
            # triggers and CHECK expressions run as the table's owner, as in the stream
            owner = self._owner(table)
            if owner:
                self._set_role(owner)
            result = copy_pump.pump(
                [(up.pgconn, copy_out.as_bytes(up))],
                self.down.pgconn,
                copy_in.as_bytes(self.down),
                binary,
                self.stopping,
                on_rows,
            )
            if owner:
                self._set_role(None)
        except UpstreamError as exc:
            raise UpstreamError(f"initial copy of {table.label}: {exc}") from exc
        except ApplyError as exc:
            raise ApplyError(
                f"initial copy of {table.label}: {exc}", statement=copy_in.as_string(self.down)
            ) from exc
        progress.rows_copied = before + result.rows

    def _refresh_matviews(self, matviews: list[tuple[str, str]]) -> None:
        """Fill the materialized views populated upstream (a schema-only dump
        makes them empty), from the copied rows, each after those it reads,
        as its owner (REFRESH needs ownership). One that cannot be computed
        here is left empty with a WARNING, rather than stopping the copy."""
        for schema, name in matviews:
            label = f'"{schema}"."{name}"'
            owner = self._owner(TableToCopy(schema, name, (), 0))
            if owner:
                self._set_role(owner)
            statement = sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(schema, name))
            try:
                with self.down.transaction():  # a savepoint: the copy goes on without it
                    self.down.execute(statement)
            except psycopg.Error as exc:
                # e.g. it reads a foreign table whose server is out of reach here
                logger.warning(
                    "initial copy: materialized view %s left empty, REFRESH it by hand: %s",
                    label,
                    first_line(exc),
                )
            if owner:
                self._set_role(None)

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


# Whether every copied column's type is built in (the same OID everywhere)
# and has a binary form that means the same on another server: not the reg*
# types (their binary form is an OID, their text a name) and not arrays of them.
_BUILTIN_TYPES_ONLY = (
    "SELECT coalesce(bool_and("
    f"         t.oid < {FIRST_NORMAL_OID} AND t.typsend <> 0 AND t.typreceive <> 0"
    "          AND t.typname NOT LIKE 'reg%%'"
    f"         AND (t.typelem = 0 OR (e.oid < {FIRST_NORMAL_OID}"
    "                                 AND e.typname NOT LIKE 'reg%%'))), false)"
    "  FROM pg_catalog.pg_attribute a"
    "  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
    "  LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem"
    " WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
    "   AND a.attgenerated = ''"
)


_MATVIEWS = f"""
    SELECT c.oid, n.nspname::text, c.relname::text,
           ARRAY(SELECT DISTINCT d.refobjid FROM pg_catalog.pg_rewrite r
                   JOIN pg_catalog.pg_depend d
                     ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                    AND d.objid = r.oid
                    AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  WHERE r.ev_class = c.oid AND d.refobjid <> c.oid)
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'm' AND c.relispopulated AND n.nspname <> '{INTERNAL_SCHEMA}'
     ORDER BY c.oid"""


def _populated_matviews(up: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """The upstream's populated materialized views, each after the ones it reads."""
    rows = {oid: (schema, name, set(deps)) for oid, schema, name, deps in up.execute(_MATVIEWS)}
    ordered: list[tuple[str, str]] = []
    done: set[int] = set()

    def visit(oid: int, path: frozenset[int]) -> None:
        if oid in done or oid in path:
            return
        schema, name, deps = rows[oid]
        for dep in sorted(deps):
            if dep in rows:
                visit(dep, path | {oid})
        done.add(oid)
        ordered.append((schema, name))

    for oid in rows:
        visit(oid, frozenset())
    return ordered


def _copy_sql(template: str, table: TableToCopy, options: list[str]) -> sql.Composed:
    # A table of no columns (all dropped, or none yet) has rows all the same;
    # COPY takes no empty column list.
    columns = sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in table.columns))
    query = sql.SQL(template).format(
        sql.Identifier(table.schema, table.name), columns if table.columns else sql.SQL("")
    )
    if options:
        query += sql.SQL(" ({})").format(sql.SQL(", ").join(sql.SQL(o) for o in options))
    return query


def _result(future: Future[str]) -> str:
    return future.result(timeout=PG_DUMP_TIMEOUT)


def _without_meta_commands(script: str) -> str:
    """pg_dump (15.14 and later) brackets its output with psql's \\restrict and
    \\unrestrict; they are for psql, not the server."""
    return "".join(line for line in script.splitlines(keepends=True) if not line.startswith("\\"))


_OWN_SCHEMA_GRANT = re.compile(
    rf"(?is)^\s*(GRANT|REVOKE)\b.*\bON\s+(SCHEMA\s+{INTERNAL_SCHEMA}\b|\w+(\s+\w+)?\s+{INTERNAL_SCHEMA}\.)"
)


def _grant_on_own_schema(statement: str) -> bool:
    """A GRANT or REVOKE on the extension's schema or an object in it."""
    return _OWN_SCHEMA_GRANT.match(statement) is not None


def _is_extension_comment(statement: str) -> bool:
    """pg_dump's COMMENT ON EXTENSION: only the extension's owner (a superuser)
    may set it, so a worker that is not superuser could not replay it, and
    CREATE EXTENSION already gave the extension its control file's comment."""
    return " ".join(statement.split()[:3]).upper() == "COMMENT ON EXTENSION"


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
