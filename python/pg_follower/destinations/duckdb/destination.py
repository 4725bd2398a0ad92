"""``DuckDBDestination``: an embedded DuckDB file kept a copy of the published tables.

Exactly once: the data and ``_pg_follower.state`` (the end LSN of the last
upstream transaction held) change in the same DuckDB transaction, so after a
crash the file holds whole upstream transactions up to that LSN and nothing
after it. Many upstream transactions go into one DuckDB transaction (bounded
by ``batch_rows`` and ``batch_seconds``).

Batched, never a statement per row: the back-fill loads each table's COPY
output (CSV) through a file with one ``INSERT ... SELECT FROM read_csv``; the
change stream is buffered per table, coalesced by key, and applied as Arrow
tables with set-based statements (``DELETE ... USING`` the batch's keys, then
one ``INSERT`` of the rows' latest versions). Tables without a key are
applied by whole row, as multisets: each DELETE removes one matching row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from typing import IO, Any

import duckdb
import pyarrow as pa

from pg_follower.destinations.base import (
    UNCHANGED_TOAST,
    Change,
    ColumnInfo,
    Ddl,
    Delete,
    Insert,
    Row,
    TableInfo,
    TableSnapshot,
    Transaction,
    Truncate,
    Update,
)
from pg_follower.destinations.duckdb import types
from pg_follower.errors import ConfigError, FollowerError

logger = logging.getLogger("pg_follower.duckdb")

STATE_SCHEMA = "_pg_follower"
BATCH_ROWS = 200_000  # buffered row events before they are applied
BATCH_SECONDS = 2.0  # a DuckDB transaction commits at the first upstream commit after this
PART_BYTES = 64 << 20  # the back-fill loads COPY output in files of this size


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(table: TableInfo) -> str:
    return f"{quote(table.schema)}.{quote(table.name)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _info_json(table: TableInfo) -> str:
    return json.dumps(
        {
            "relation_id": table.relation_id,
            "schema": table.schema,
            "name": table.name,
            "replica_identity": table.replica_identity,
            "columns": [
                [
                    c.name,
                    c.type_name,
                    c.type_oid,
                    c.base_oid,
                    c.type_modifier,
                    c.element_oid,
                    c.category,
                    c.key,
                ]
                for c in table.columns
            ],
        }
    )


def _info_of(text: str) -> TableInfo:
    d = json.loads(text)
    columns = tuple(ColumnInfo(*c) for c in d["columns"])
    return TableInfo(d["relation_id"], d["schema"], d["name"], d["replica_identity"], columns)


def keyed(table: TableInfo) -> bool:
    """Changes found by key: a primary key or replica identity index (under
    REPLICA IDENTITY FULL every column is "key", and rows may repeat)."""
    return table.replica_identity in ("d", "i") and bool(table.key_columns)


@dataclass(slots=True)
class _Pending:
    """One table's buffered changes, coalesced."""

    table: TableInfo
    key_index: list[int]
    key_of: Any = None  # row -> its key tuple
    latest: dict[tuple[Any, ...], Row | None] = field(default_factory=dict)  # keyed: None = gone
    origin: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)  # toast source
    inserts: Counter[Row] = field(default_factory=Counter)  # keyless
    deletes: Counter[Row] = field(default_factory=Counter)  # keyless
    events: int = 0


class DuckDBDestination:
    """A ``Destination`` writing into the DuckDB file ``path``."""

    def __init__(
        self,
        path: str,
        *,
        slot: str | None = None,
        batch_rows: int = BATCH_ROWS,
        batch_seconds: float = BATCH_SECONDS,
    ):
        self.path = path
        self.slot = slot
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self.con: duckdb.DuckDBPyConnection | None = None
        self.known: dict[int, TableInfo] = {}  # what the DuckDB tables are, by upstream OID
        self.pending: dict[int, _Pending] = {}
        self.pending_events = 0
        self.in_transaction = False  # a DuckDB transaction is open
        self.upstream_open = False  # between an upstream transaction's begin and commit
        self.transaction_started = 0.0
        self.last_lsn: int | None = None  # end LSN of the last upstream commit taken
        self.committed_lsn: int | None = None  # ... of the last one committed into DuckDB
        self.warned_nan: set[str] = set()
        self.rows_loaded = 0  # by the back-fill
        self.events_applied = 0

    # -- the file and its state ---------------------------------------------

    def _create_file(self) -> None:
        """A new file is made under another name and renamed into place, so a
        kill while DuckDB writes its first blocks leaves no half-made file."""
        making = self.path + ".creating"
        for leftover in (making, making + ".wal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        con = duckdb.connect(making)
        try:
            self._state_tables(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(making + ".wal")
        os.replace(making, self.path)

    @staticmethod
    def _state_tables(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.state (slot VARCHAR, end_lsn UBIGINT,"
            " updated_at TIMESTAMPTZ)"
        )
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.tables (relation_id UBIGINT,"
            " schema_name VARCHAR, table_name VARCHAR, info JSON)"
        )

    def open(self) -> int | None:
        try:
            if not os.path.exists(self.path):
                self._create_file()
            self.con = duckdb.connect(self.path)
        except duckdb.Error as exc:
            raise ConfigError(
                f"cannot open DuckDB file {self.path!r}: {str(exc).splitlines()[0]}"
                " (is another process using it? one writer at a time)"
            ) from exc
        con = self.con
        con.create_function(
            types.ARRAY_FUNCTION, types.parse_array, ["VARCHAR"], "VARCHAR[]", side_effects=False
        )
        self._state_tables(con)
        for (info,) in con.execute(f"SELECT info FROM {STATE_SCHEMA}.tables").fetchall():
            table = _info_of(str(info))
            self.known[table.relation_id] = table
        row = con.execute(f"SELECT slot, end_lsn FROM {STATE_SCHEMA}.state").fetchone()
        if row is None:
            return None
        slot, end_lsn = row
        if self.slot is not None and slot and slot != self.slot:
            raise ConfigError(
                f"DuckDB file {self.path!r} follows slot {slot!r}, not {self.slot!r}:"
                f" pass --slot {slot}, or use another file"
            )
        self.last_lsn = self.committed_lsn = int(end_lsn)
        return self.committed_lsn

    def close(self) -> None:
        if self.con is not None:
            with contextlib.suppress(duckdb.Error):
                if self.in_transaction:
                    self.con.execute("ROLLBACK")
            self.con.close()
            self.con = None

    def _sql(self, statement: str, params: list[Any] | None = None) -> Any:
        assert self.con is not None
        return self.con.execute(statement, params)

    def _begin(self) -> None:
        if not self.in_transaction:
            self._sql("BEGIN TRANSACTION")
            self.in_transaction = True
            self.transaction_started = time.monotonic()

    def _commit(self) -> None:
        """Apply what is buffered and commit it with the state row."""
        if not self.in_transaction:
            return
        self._apply_all()
        if self.last_lsn is not None:
            self._sql(f"DELETE FROM {STATE_SCHEMA}.state")
            self._sql(
                f"INSERT INTO {STATE_SCHEMA}.state VALUES (?, ?, now())",
                [self.slot or "", self.last_lsn],
            )
        self._sql("COMMIT")
        self.in_transaction = False
        self.committed_lsn = self.last_lsn

    def durable_lsn(self) -> int | None:
        return self.committed_lsn

    def skip_to(self, lsn: int) -> None:
        """The stream was idle up to ``lsn``: commit it as the state's end LSN,
        so a restart resumes where the slot is (at most one small DuckDB
        commit per feedback while the upstream writes only other tables)."""
        if self.upstream_open or self.in_transaction or (self.committed_lsn or 0) >= lsn:
            return
        self._commit_at(lsn)

    def _commit_at(self, lsn: int) -> None:
        """Commit the state row at ``lsn`` with what is buffered (no upstream
        transaction open)."""
        self._begin()
        self.last_lsn = lsn
        self._commit()

    def flush(self) -> None:
        # The pipeline may flush (idle, or stopped) inside an upstream
        # transaction: only whole ones are committed, the rest waits for its commit.
        if not self.upstream_open:
            self._commit()

    # -- back-fill ------------------------------------------------------------

    def write_snapshot(self, snapshot: TableSnapshot) -> None:
        """The table's COPY CSV output in files of about PART_BYTES: DuckDB loads
        one (in a thread: it releases the GIL) while the next is read."""
        self._begin()
        table = snapshot.table
        self._evolve(table)
        directory = os.path.dirname(os.path.abspath(self.path))
        count = 0
        with ThreadPoolExecutor(1, thread_name_prefix="duckdb-load") as loader:
            loading: Future[int] | None = None
            part: IO[bytes] | None = None
            try:
                chunks = snapshot.copy_chunks("csv")  # a row per chunk
                while True:
                    descriptor, name = tempfile.mkstemp(".csv", ".pgf-backfill-", directory)
                    part = os.fdopen(descriptor, "wb", buffering=1 << 20)
                    write, size = part.write, 0
                    for chunk in chunks:
                        write(chunk)
                        size += len(chunk)
                        if size >= PART_BYTES:
                            break
                    part.close()
                    part = None
                    if loading is not None:
                        count += loading.result()
                        loading = None
                    if size == 0:
                        os.unlink(name)
                        break
                    loading = loader.submit(self._load_part, table, name)
                    if size < PART_BYTES:
                        break
                if loading is not None:
                    count += loading.result()
            finally:
                if part is not None:
                    part.close()
                    os.unlink(part.name)
        self.rows_loaded += count
        logger.info("back-filled %s: %d rows", table.qualified_name, count)

    def _load_part(self, table: TableInfo, path: str) -> int:
        try:
            columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(table.columns)))
            source = (
                f"read_csv({_literal(path)}, columns={{{columns}}}, header=false,"
                " delim=',', quote='\"', escape='\"', nullstr='', allow_quoted_nulls=false,"
                " auto_detect=false)"
            )
            started = time.monotonic()
            self._warn_nan(table, source)
            loaded = self._sql(self._insert_sql(table, source, table.columns)).fetchone()
            count = int(loaded[0]) if loaded else 0
            logger.debug(
                "%s: %d rows loaded in %.2f s",
                table.qualified_name,
                count,
                time.monotonic() - started,
            )
            return count
        finally:
            os.unlink(path)

    def snapshot_done(self, lsn: int) -> None:
        self._commit_at(lsn)

    def _insert_sql(self, table: TableInfo, source: str, columns: tuple[ColumnInfo, ...]) -> str:
        names = ", ".join(quote(c.name) for c in columns)
        casts = ", ".join(types.cast_sql(c, f"s.c{table.columns.index(c)}") for c in columns)
        return f"INSERT INTO {qualified(table)} ({names}) SELECT {casts} FROM {source} s"

    def _warn_nan(self, table: TableInfo, source: str) -> None:
        checked = [(i, c) for i, c in enumerate(table.columns) if types.nan_checked(c)]
        if not checked:
            return
        counts = ", ".join(f"count(*) FILTER (WHERE c{i} = 'NaN')" for i, _ in checked)
        row = self._sql(f"SELECT {counts} FROM {source}").fetchone()
        assert row is not None
        for (_, column), nans in zip(checked, row, strict=True):
            label = f"{table.qualified_name}.{column.name}"
            if nans and label not in self.warned_nan:
                self.warned_nan.add(label)
                logger.warning(
                    "%s is %s: DuckDB's DECIMAL has no NaN, so its NaN values are NULL"
                    " in the copy (%d in this load)",
                    label,
                    column.type_name,
                    nans,
                )

    # -- the change stream ------------------------------------------------------

    def begin(self, transaction: Transaction) -> None:
        self._begin()
        self.upstream_open = True

    def commit(self, transaction: Transaction) -> None:
        self.upstream_open = False
        self.last_lsn = transaction.end_lsn
        if (
            self.pending_events >= self.batch_rows
            or time.monotonic() - self.transaction_started >= self.batch_seconds
        ):
            self._commit()

    def change(self, change: Change) -> None:
        kind = type(change)
        if kind is Insert or kind is Update or kind is Delete:
            table = change.table  # type: ignore[union-attr]
            pending = self.pending.get(table.relation_id)
            if pending is None or pending.table is not table:
                pending = self._pending(table)
            if kind is Insert:
                self._insert(pending, change.new)  # type: ignore[union-attr]
            elif kind is Update:
                self._update(pending, change.old, change.new)  # type: ignore[union-attr]
            else:
                self._delete(pending, change.old)  # type: ignore[union-attr, arg-type]
            pending.events += 1
            self.pending_events += 1
            if self.pending_events >= self.batch_rows:
                self._apply_all()  # memory stays bounded; commit waits for the upstream's
        elif isinstance(change, Truncate):
            for table in change.tables:
                self._evolve(table)
                dropped = self.pending.pop(table.relation_id, None)
                if dropped is not None:
                    self.pending_events -= dropped.events
                self._sql(f"DELETE FROM {qualified(table)}")
        elif isinstance(change, Ddl):
            self._ddl(change)

    def _pending(self, table: TableInfo) -> _Pending:
        pending = self.pending.get(table.relation_id)
        if pending is not None and pending.table is table:
            return pending
        if pending is not None:
            if pending.table == table:  # described again, the same
                pending.table = table
                return pending
            # a new description of the table: what came before goes first
            self._apply(pending)
            del self.pending[table.relation_id]
            self.pending_events -= pending.events
        self._evolve(table)
        index = [i for i, c in enumerate(table.columns) if c.key] if keyed(table) else []
        pending = self.pending[table.relation_id] = _Pending(table, index)
        if index:  # a tuple even for one column
            pending.key_of = itemgetter(*index) if len(index) > 1 else lambda r, i=index[0]: (r[i],)
        return pending

    @staticmethod
    def _key(pending: _Pending, row: Row) -> tuple[Any, ...]:
        return pending.key_of(row)  # type: ignore[no-any-return]

    def _insert(self, p: _Pending, new: Row) -> None:
        if p.key_index:
            key = self._key(p, new)
            p.latest[key] = new
            if p.origin:
                p.origin.pop(key, None)
        else:
            p.inserts[new] += 1

    def _update(self, p: _Pending, old: Row | None, new: Row) -> None:
        if not p.key_index:
            if old is None:
                raise FollowerError(
                    f"UPDATE of {p.table.qualified_name} without its old row: give the"
                    " table a primary key or REPLICA IDENTITY FULL upstream"
                )
            if UNCHANGED_TOAST in new:
                new = tuple(o if n is UNCHANGED_TOAST else n for o, n in zip(old, new, strict=True))
            self._delete(p, old)
            p.inserts[new] += 1
            return
        key = self._key(p, new)
        before = self._key(p, old) if old is not None else key
        previous = p.latest.get(before)
        if UNCHANGED_TOAST in new:
            if previous is not None:
                new = tuple(
                    o if n is UNCHANGED_TOAST else n for o, n in zip(previous, new, strict=True)
                )
            else:  # the old values are in DuckDB: fetched when applied
                p.origin[key] = p.origin.get(before, before)
        if before != key:
            p.latest[before] = None
            p.origin.pop(before, None)
        if p.origin and UNCHANGED_TOAST not in new:
            p.origin.pop(key, None)
        p.latest[key] = new

    def _delete(self, p: _Pending, old: Row) -> None:
        if p.key_index:
            key = self._key(p, old)
            p.latest[key] = None
            if p.origin:
                p.origin.pop(key, None)
        elif p.inserts[old] > 0:  # a row inserted in this batch: the multiset is the same
            p.inserts[old] -= 1
            if not p.inserts[old]:
                del p.inserts[old]
        else:
            p.deletes[old] += 1

    # -- applying a batch -------------------------------------------------------

    def _apply_all(self) -> None:
        for pending in self.pending.values():
            self._apply(pending)
        self.pending.clear()
        self.pending_events = 0

    def _apply(self, p: _Pending) -> None:
        if p.key_index:
            self._apply_keyed(p)
        else:
            self._apply_keyless(p)
        self.events_applied += p.events

    def _register(self, name: str, table: pa.Table) -> None:
        assert self.con is not None
        self.con.register(name, table)

    def _unregister(self, *names: str) -> None:
        assert self.con is not None
        for name in names:
            self.con.unregister(name)

    @staticmethod
    def _arrow(rows: list[Row] | list[tuple[Any, ...]], width: int, prefix: str) -> pa.Table:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
        arrays = []
        names = []
        for i, values in enumerate(columns):
            arrays.append(
                pa.array([None if v is UNCHANGED_TOAST else v for v in values], pa.string())
                if any(v is UNCHANGED_TOAST for v in values)
                else pa.array(values, pa.string())
            )
            names.append(f"{prefix}{i}")
        return pa.Table.from_arrays(arrays, names=names)

    def _key_match(self, table: TableInfo, target: str, batch: str, prefix: str) -> str:
        return " AND ".join(
            f"{target}.{quote(c.name)} = {types.cast_sql(c, f'{batch}.{prefix}{n}')}"
            for n, c in enumerate(table.key_columns)
        )

    def _apply_keyed(self, p: _Pending) -> None:
        table = p.table
        if not p.latest:
            return
        target = qualified(table)
        rows = [r for r in p.latest.values() if r is not None]
        self._warn_nan_rows(table, rows)
        keys = pa.Table.from_arrays(
            [pa.array(list(k), pa.string()) for k in zip(*p.latest.keys(), strict=True)],
            names=[f"k{n}" for n in range(len(p.key_index))],
        )
        toasted = [r for r in rows if UNCHANGED_TOAST in r]
        plain = [r for r in rows if UNCHANGED_TOAST not in r] if toasted else rows
        self._register("pgf_keys", keys)
        try:
            if toasted:  # rows of latest versions, their unchanged values from DuckDB
                origins = [p.origin[self._key(p, r)] for r in toasted]
                self._stage_toasted(table, toasted, origins)
            self._sql(
                f"DELETE FROM {target} USING pgf_keys b"
                f" WHERE {self._key_match(table, target, 'b', 'k')}"
            )
            if plain:
                self._register("pgf_rows", self._arrow(plain, len(table.columns), "c"))
                try:
                    self._sql(self._insert_sql(table, "pgf_rows", table.columns))
                finally:
                    self._unregister("pgf_rows")
            if toasted:
                self._sql(f"INSERT INTO {target} BY NAME SELECT * FROM pgf_toasted")
                self._sql("DROP TABLE pgf_toasted")
        finally:
            self._unregister("pgf_keys")

    def _stage_toasted(self, table: TableInfo, rows: list[Row], origins: list[Any]) -> None:
        width = len(table.columns)
        flags = [tuple(v is UNCHANGED_TOAST for v in r) for r in rows]
        batch = self._arrow(rows, width, "c")
        for i in range(width):
            batch = batch.append_column(f"u{i}", pa.array([f[i] for f in flags], pa.bool_()))
        for n, values in enumerate(zip(*origins, strict=True)):
            batch = batch.append_column(f"o{n}", pa.array(list(values), pa.string()))
        self._register("pgf_rows", batch)
        try:
            exprs = ", ".join(
                f"CASE WHEN s.u{i} THEN t.{quote(c.name)} ELSE {types.cast_sql(c, f's.c{i}')}"
                f" END AS {quote(c.name)}"
                for i, c in enumerate(table.columns)
            )
            self._sql(
                f"CREATE TEMP TABLE pgf_toasted AS SELECT {exprs} FROM pgf_rows s"
                f" LEFT JOIN {qualified(table)} t ON {self._key_match(table, 't', 's', 'o')}"
            )
        finally:
            self._unregister("pgf_rows")

    def _apply_keyless(self, p: _Pending) -> None:
        table = p.table
        target = qualified(table)
        width = len(table.columns)
        if p.deletes:
            rows = list(p.deletes)
            batch = self._arrow(rows, width, "c").append_column(
                "n", pa.array([p.deletes[r] for r in rows], pa.int64())
            )
            same = " AND ".join(
                f"t.{quote(c.name)} IS NOT DISTINCT FROM {types.cast_sql(c, f'd.c{i}')}"
                for i, c in enumerate(table.columns)
            )
            self._register("pgf_rows", batch)
            try:  # one matching row per DELETE, whichever
                self._sql(
                    f"DELETE FROM {target} WHERE rowid IN (SELECT rid FROM"
                    f" (SELECT t.rowid AS rid, d.n, row_number() OVER (PARTITION BY d.g"
                    f" ORDER BY t.rowid) AS rn FROM {target} t JOIN"
                    f" (SELECT *, row_number() OVER () AS g FROM pgf_rows) d ON {same})"
                    " WHERE rn <= n)"
                )
            finally:
                self._unregister("pgf_rows")
        if p.inserts:
            rows = list(p.inserts.elements())
            self._warn_nan_rows(table, rows)
            self._register("pgf_rows", self._arrow(rows, width, "c"))
            try:
                self._sql(self._insert_sql(table, "pgf_rows", table.columns))
            finally:
                self._unregister("pgf_rows")

    def _warn_nan_rows(self, table: TableInfo, rows: list[Row]) -> None:
        for i, column in enumerate(table.columns):
            label = f"{table.qualified_name}.{column.name}"
            if (
                label not in self.warned_nan
                and types.nan_checked(column)
                and any(r[i] == "NaN" for r in rows)
            ):
                self.warned_nan.add(label)
                logger.warning(
                    "%s is %s: DuckDB's DECIMAL has no NaN, so its NaN values are NULL in the copy",
                    label,
                    column.type_name,
                )

    # -- schema -----------------------------------------------------------------

    def _evolve(self, table: TableInfo) -> None:
        """Make the DuckDB table what ``table`` describes (created on first sight)."""
        old = self.known.get(table.relation_id)
        if old == table:
            return
        pending = self.pending.pop(table.relation_id, None)
        if pending is not None:
            self._apply(pending)
            self.pending_events -= pending.events
        self._begin()
        if old is None:
            self._create(table)
        else:
            self._alter(old, table)
        self._sql(f"DELETE FROM {STATE_SCHEMA}.tables WHERE relation_id = ?", [table.relation_id])
        self._sql(
            f"INSERT INTO {STATE_SCHEMA}.tables VALUES (?, ?, ?, ?)",
            [table.relation_id, table.schema, table.name, _info_json(table)],
        )
        self.known[table.relation_id] = table

    def _create(self, table: TableInfo) -> None:
        columns = ", ".join(
            f"{quote(c.name)} {types.mapping(c).duckdb_type}" for c in table.columns
        )
        self._sql(f"CREATE SCHEMA IF NOT EXISTS {quote(table.schema)}")
        self._sql(f"CREATE TABLE IF NOT EXISTS {qualified(table)} ({columns})")
        logger.info("created %s", table.qualified_name)

    def _alter(self, old: TableInfo, new: TableInfo) -> None:
        if (old.schema, old.name) != (new.schema, new.name):
            if old.schema == new.schema:
                self._sql(f"ALTER TABLE {qualified(old)} RENAME TO {quote(new.name)}")
            else:  # DuckDB moves no table between schemas: copied over
                self._sql(f"CREATE SCHEMA IF NOT EXISTS {quote(new.schema)}")
                self._sql(f"CREATE TABLE {qualified(new)} AS SELECT * FROM {qualified(old)}")
                self._sql(f"DROP TABLE {qualified(old)}")
            logger.info("renamed %s to %s", old.qualified_name, new.qualified_name)
        target = qualified(new)
        old_names = [c.name for c in old.columns]
        new_names = [c.name for c in new.columns]
        columns = {c.name: c for c in old.columns}
        # a column renamed: same place, its old name gone and its new name new
        for before, after in zip(old.columns, new.columns, strict=False):
            if (
                before.name != after.name
                and before.name not in new_names
                and after.name not in old_names
            ):
                self._sql(
                    f"ALTER TABLE {target} RENAME COLUMN {quote(before.name)}"
                    f" TO {quote(after.name)}"
                )
                columns[after.name] = columns.pop(before.name)
        for name in list(columns):
            if name not in new_names:
                self._sql(f"ALTER TABLE {target} DROP COLUMN {quote(name)}")
                del columns[name]
        for column in new.columns:
            duck_type = types.mapping(column).duckdb_type
            if column.name not in columns:
                self._sql(f"ALTER TABLE {target} ADD COLUMN {quote(column.name)} {duck_type}")
            elif types.mapping(columns[column.name]).duckdb_type != duck_type:
                try:
                    self._sql(
                        f"ALTER TABLE {target} ALTER COLUMN {quote(column.name)}"
                        f" SET DATA TYPE {duck_type}"
                    )
                except duckdb.Error as exc:
                    raise FollowerError(
                        f"{new.qualified_name}.{column.name} became {column.type_name} upstream,"
                        f" and DuckDB cannot convert its values to {duck_type}"
                        f" ({str(exc).splitlines()[0]}): back-fill a new file"
                    ) from exc
        logger.info("altered %s to the upstream's columns", new.qualified_name)

    def _ddl(self, change: Ddl) -> None:
        """DROP TABLE replicated by the upstream's extension: the copy goes too."""
        record = change.record
        logger.debug("DDL from the upstream: %s", record)
        if record.get("tag") != "DROP TABLE":
            return
        identity = record.get("identity")
        for relation_id, table in list(self.known.items()):
            names = {
                f"{quote(table.schema)}.{quote(table.name)}",
                f"{table.schema}.{table.name}",
            }
            if isinstance(identity, str) and any(n in identity for n in names):
                pending = self.pending.pop(relation_id, None)
                if pending is not None:
                    self.pending_events -= pending.events
                self._sql(f"DROP TABLE IF EXISTS {qualified(table)}")
                self._sql(f"DELETE FROM {STATE_SCHEMA}.tables WHERE relation_id = ?", [relation_id])
                del self.known[relation_id]
                logger.info("dropped %s", table.qualified_name)
