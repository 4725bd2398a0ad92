"""A PostgreSQL upstream as a source of changes for any destination.

Needs only ``wal_level = logical`` and a publication upstream, not our
extension. When the upstream has pg_follower_py, its captured DDL comes too
(the rows its writers put in ``pgfollower.ddl_queue``, published by
``pg_follower_py_ddl``).

A source holds two connections: a ``replication=database`` one for the slot
and the stream, and a plain one for the catalog (type names) and the
snapshot's rows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pg_follower import INTERNAL_SCHEMA, PUBLICATION
from pg_follower.errors import ConfigError, UpstreamError, first_line
from pg_follower.source.changes import ColumnInfo, Ddl, Row, TableInfo
from pg_follower.source.copy_text import parse_copy_lines
from pg_follower.source.decode import Relation, lsn_to_str, str_to_lsn
from pg_follower.source.stream import CreatedSlot, ReplicationConnection, worker_conninfo

logger = logging.getLogger("pg_follower.source")

DDL_PUBLICATION = "pg_follower_py_ddl"  # the extension's queue of captured DDL
COPY_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class SlotStart:
    """Where the stream of a session starts, and the snapshot to back-fill from."""

    lsn: int
    created: CreatedSlot | None  # the slot was made by this session (snapshot in it)


class PostgresSource:
    """The change stream of one upstream database, through one slot."""

    def __init__(self, conninfo: str, slot: str, publication: str | None = None):
        self.conninfo = conninfo
        self.slot = slot
        self.publication = publication
        self.replication: ReplicationConnection | None = None
        self.catalog: psycopg.Connection[Any] | None = None
        self.publications: list[str] = []
        self.has_extension = False
        self._types: dict[tuple[int, int], tuple[str, int, int, str]] = {}

    # -- session ------------------------------------------------------------

    def connect(self) -> None:
        try:
            self.catalog = psycopg.connect(worker_conninfo(self.conninfo), autocommit=True)
        except psycopg.OperationalError as exc:
            raise UpstreamError(f"cannot connect to the upstream: {first_line(exc)}") from exc
        self.replication = ReplicationConnection(self.conninfo)
        level = self._scalar("SELECT current_setting('wal_level')")
        if level != "logical":
            raise ConfigError(
                f"the upstream has wal_level = {level}: set wal_level = logical"
                " in its postgresql.conf and restart it"
            )
        self.has_extension = bool(
            self._scalar("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_follower_py'")
        )
        self.publications = [self._publication()]
        if self.has_extension:
            self._register_consumer()
        # the extension's DDL queue, unless the publication has every table
        if (
            self.has_extension
            and self.publications != [PUBLICATION]
            and self._publication_exists(DDL_PUBLICATION)
        ):
            self.publications.append(DDL_PUBLICATION)

    def _register_consumer(self) -> None:
        """Have the extension capture DDL while our slot exists, whatever its
        name, and publish its DDL queue (``pg_follower_py_ddl``)."""
        if not self._scalar("SELECT to_regprocedure('pgfollower.ensure_consumer(name)')"):
            return  # an extension older than 0.2.0: DDL only for pgf_ slots
        try:
            self._scalar("SELECT pgfollower.ensure_consumer(%s)", [self.slot])
        except psycopg.errors.InsufficientPrivilege:
            logger.warning(
                "no DDL lines: this role may not run pgfollower.ensure_consumer(name) upstream;"
                " GRANT EXECUTE ON FUNCTION pgfollower.ensure_consumer(name) TO it"
            )

    def close(self) -> None:
        for conn in (self.replication, self.catalog):
            if conn is not None:
                with contextlib.suppress(Exception):  # closing after a failure
                    conn.close()
        self.replication = self.catalog = None

    def _publication(self) -> str:
        if self.publication is not None:
            if not self._publication_exists(self.publication):
                raise ConfigError(
                    f"the upstream has no publication {self.publication!r}: create it there"
                    f" (CREATE PUBLICATION {self.publication} FOR TABLE ...) or name another"
                )
            return self.publication
        if self._publication_exists(PUBLICATION):
            return PUBLICATION
        raise ConfigError(
            "no publication named: give one (--publication NAME) that the upstream has;"
            " create it there with CREATE PUBLICATION name FOR TABLE t1, t2"
        )

    def _publication_exists(self, name: str) -> bool:
        return bool(
            self._scalar("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s", [name])
        )

    def _scalar(self, query: str, params: list[Any] | None = None) -> Any:
        assert self.catalog is not None
        row = self.catalog.execute(query, params).fetchone()
        return row[0] if row else None

    # -- the slot -----------------------------------------------------------

    def open_slot(self, position: int | None, snapshot: bool) -> SlotStart:
        """Make the slot if it is missing (exporting a snapshot if asked) and say
        where the stream starts: after ``position``, or at the slot's own."""
        assert self.replication is not None
        if not self.replication.slot_exists(self.slot):
            created = self.replication.create_slot(self.slot, export_snapshot=snapshot)
            logger.info("created slot %s at %s", self.slot, lsn_to_str(created.consistent_point))
            start = position if position is not None else created.consistent_point
            return SlotStart(max(start, created.consistent_point), created)
        row = self.catalog_row(
            "SELECT plugin, database = current_database(), confirmed_flush_lsn::text"
            " FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
            [self.slot],
        )
        if row is None:
            raise UpstreamError(f"slot {self.slot!r} went away: start again")
        plugin, here, confirmed = row
        if plugin != "pgoutput" or not here:
            raise ConfigError(
                f"slot {self.slot!r} is not a pgoutput slot of this database: name another slot"
            )
        slot_lsn = str_to_lsn(confirmed) if confirmed else 0
        if position is not None and position < slot_lsn:
            logger.warning(
                "slot %s is at %s, past the position asked for (%s): transactions"
                " between, if any, were confirmed by an earlier session and are not"
                " sent again (a destination restored from an older copy misses them)",
                self.slot,
                confirmed,
                lsn_to_str(position),
            )
        return SlotStart(max(position or 0, slot_lsn), None)

    def wal_end(self) -> int:
        """The upstream's WAL position now (what ``until_caught_up`` waits for)."""
        return str_to_lsn(str(self._scalar("SELECT pg_catalog.pg_current_wal_lsn()::text")))

    def drop_slot(self) -> None:
        assert self.replication is not None
        self.replication.drop_slot(self.slot)

    def catalog_row(self, query: str, params: list[Any]) -> tuple[Any, ...] | None:
        assert self.catalog is not None
        return self.catalog.execute(query, params).fetchone()

    # -- the snapshot -------------------------------------------------------

    def snapshot_tables(self, snapshot: str) -> Iterator[SnapshotTable]:
        """Each published table, read in the slot's exported snapshot. Call
        before ``start``: the snapshot lives until the replication connection
        runs its next command."""
        assert self.catalog is not None
        conn = psycopg.connect(worker_conninfo(self.conninfo))
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            tables = conn.execute(
                "SELECT DISTINCT c.oid, p.schemaname, p.tablename, p.attnames, p.rowfilter"
                " FROM pg_catalog.pg_publication_tables p"
                " JOIN pg_catalog.pg_namespace n ON n.nspname = p.schemaname"
                " JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename"
                " WHERE p.pubname = ANY(%s) AND n.nspname <> %s ORDER BY 2, 3",
                [self.publications, INTERNAL_SCHEMA],
            ).fetchall()
            for oid, schema, name, attnames, rowfilter in tables:
                table = self._catalog_table(conn, oid, schema, name, attnames)
                yield SnapshotTable(conn, table, rowfilter)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _catalog_table(
        self,
        conn: psycopg.Connection[Any],
        oid: int,
        schema: str,
        name: str,
        attnames: list[str] | None,
    ) -> TableInfo:
        rows = conn.execute(
            "SELECT a.attname, a.atttypid, a.atttypmod,"
            " coalesce(a.attnum = ANY(i.indkey), false), c.relreplident"
            " FROM pg_catalog.pg_attribute a"
            " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
            " LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND"
            "   CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident"
            "   ELSE false END"
            " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped"
            "   AND a.attgenerated = '' ORDER BY a.attnum",
            [oid],
        ).fetchall()
        if attnames is not None:
            rows = [r for r in rows if r[0] in attnames]
        identity = rows[0][4] if rows else "d"
        full = identity == "f"
        columns = [(n, t, m, full or bool(k)) for n, t, m, k, _ in rows]
        return self._table(oid, schema, name, identity, columns)

    # -- relations ----------------------------------------------------------

    def table_of(self, relation: Relation) -> TableInfo:
        """What a Relation message describes, with its types named."""
        columns = [(c.name, c.type_oid, c.type_modifier, c.is_key) for c in relation.columns]
        return self._table(
            relation.relation_id,
            relation.namespace or "pg_catalog",
            relation.name,
            relation.replica_identity,
            columns,
        )

    def _table(
        self,
        oid: int,
        schema: str,
        name: str,
        identity: str,
        columns: list[tuple[str, int, int, bool]],
    ) -> TableInfo:
        self._name_types([(t, m) for _, t, m, _ in columns])
        infos = []
        for column_name, type_oid, modifier, key in columns:
            type_name, base_oid, element_oid, category = self._types[(type_oid, modifier)]
            infos.append(
                ColumnInfo(
                    name=column_name,
                    type_name=type_name,
                    type_oid=type_oid,
                    base_oid=base_oid,
                    type_modifier=modifier,
                    element_oid=element_oid,
                    category=category,
                    key=key,
                )
            )
        return TableInfo(oid, schema, name, identity, tuple(infos))

    def _name_types(self, types: list[tuple[int, int]]) -> None:
        missing = sorted({t for t in types if t not in self._types})
        if not missing:
            return
        assert self.catalog is not None
        # the base type under domains (nested ones too), and its element type
        rows = self.catalog.execute(
            "WITH RECURSIVE d(oid, mod, base) AS ("
            "  SELECT u.oid, u.mod, u.oid FROM unnest(%s::oid[], %s::int[]) AS u(oid, mod)"
            "  UNION ALL SELECT d.oid, d.mod, t.typbasetype FROM d"
            "  JOIN pg_catalog.pg_type t ON t.oid = d.base AND t.typtype = 'd')"
            " SELECT d.oid, d.mod, pg_catalog.format_type(d.oid, nullif(d.mod, -1)),"
            "  d.base, CASE WHEN b.typcategory = 'A' THEN b.typelem ELSE 0 END, b.typcategory"
            " FROM d JOIN pg_catalog.pg_type b ON b.oid = d.base WHERE b.typtype <> 'd'",
            [[t for t, _ in missing], [m for _, m in missing]],
        ).fetchall()
        for type_oid, modifier, type_name, base, element, category in rows:
            self._types[(int(type_oid), int(modifier))] = (
                str(type_name),
                int(base),
                int(element),
                str(category),
            )
        for key in missing:  # a type dropped since: named by its OID
            self._types.setdefault(key, (str(key[0]), key[0], 0, "U"))

    # -- the stream ---------------------------------------------------------

    def start(self, lsn: int) -> None:
        """Enter the stream at ``lsn`` (pgoutput v1: the server spills big
        transactions itself and sends each one whole at its commit)."""
        assert self.replication is not None
        self.replication.start(self.slot, lsn, ",".join(self.publications), streaming=False)

    @staticmethod
    def ddl_of(new: Row, table: TableInfo) -> Ddl:
        """The DDL a row inserted into the extension's ``ddl_queue`` stands for."""
        values = dict(zip((c.name for c in table.columns), new, strict=False))
        values.pop("id", None)
        role = values.get("role_name")
        return Ddl(record=values, role=role if isinstance(role, str) else None)


class SnapshotTable:
    """A ``TableSnapshot`` read through the exporting session's snapshot."""

    def __init__(self, conn: psycopg.Connection[Any], table: TableInfo, rowfilter: str | None):
        self.conn = conn
        self.table = table
        self.rowfilter = rowfilter

    def _query(self, format: str) -> sql.Composed:
        columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in self.table.columns)
        source = sql.SQL("SELECT {} FROM ONLY {}").format(
            columns, sql.Identifier(self.table.schema, self.table.name)
        )
        if self.rowfilter:
            source = sql.SQL("{} WHERE {}").format(source, sql.SQL(self.rowfilter))
        options = sql.SQL("FORMAT csv") if format == "csv" else sql.SQL("FORMAT text")
        return sql.SQL("COPY ({}) TO STDOUT ({})").format(source, options)

    def copy_chunks(self, format: str = "text") -> Iterator[bytes]:
        if format not in ("text", "csv"):
            raise ValueError(f"COPY format {format!r}: use 'text' or 'csv'")
        with self.conn.cursor().copy(self._query(format)) as copy:
            for chunk in copy:
                yield bytes(chunk)

    def rows(self) -> Iterator[Row]:
        yield from parse_copy_lines(self.copy_chunks("text"))
