"""UPDATEs and DELETEs without a round trip per row.

Row changes go to the downstream through one psycopg pipeline
(``StatementPipeline``): statements are sent as they come and their results
are checked in batches, each statement still having to touch exactly its
rows. Consecutive changes of one shape on one table (``RowRuns``: same
statement, found by key) are gathered and sent as one set-based statement
over arrays of their values::

    UPDATE ONLY t AS t SET c = r.v0::type
      FROM ROWS FROM (unnest($1::text[]), unnest($2::text[])) AS r(v0, k0)
     WHERE t.k OPERATOR(pg_catalog.=) r.k0::type

Arrays rather than a temporary table filled by COPY: the same speed
downstream, but no catalog writes, nothing to clean up after a rollback or
DDL, and no COPY, which would end the pipeline: the server runs one batch
while the worker decodes the next.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pg_follower.errors import ApplyError
from pg_follower.source.decode import lsn_to_str

SET_MIN_ROWS = 32  # a shorter run goes row by row: cheaper than planning a join
SET_MAX_ROWS = 10_000  # rows per set-based statement
SET_MAX_BYTES = 4 << 20  # ... and about this many bytes of values: memory stays bounded
PIPELINE_MAX = 2_000  # statements in flight before their results are awaited

Params = Sequence[str | None]
_TEXT_TYPES = frozenset({bytes, type(None)})

# The commit LSN of a transaction whose set-based statement failed, per
# origin: its retry goes row by row, so the error names the row at fault (or
# goes away: equal keys spelled differently, a unique index that the
# upstream's row order satisfies). Outlives the applier, which each retry
# makes anew.
_row_by_row: dict[str, int] = {}
# A transaction applied while still open upstream has no commit LSN yet;
# its fallback, the spool, applies it again with the real one.
_UNKNOWN_LSN = 0xFFFF_FFFF_FFFF_FFFF


def _mark_row_by_row(origin: str, lsn: int | None) -> None:
    if lsn is not None and lsn != _UNKNOWN_LSN:
        _row_by_row[origin] = lsn


# SQLSTATE classes of errors that the rows themselves cause: data exceptions,
# integrity violations, syntax or access errors, triggers.
_ROW_CLASSES = frozenset({"22", "23", "27", "2F", "38", "39", "42", "P0", "XX"})


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement sent, and what its result must be."""

    query: str
    verb: str  # UPDATE or DELETE, for messages
    table: str  # "schema"."name", for messages
    lsn: int | None  # commit LSN of the upstream transaction it applies
    rows: int | None  # rows it must touch; None: not checked
    key_names: tuple[str, ...] = ()  # for the message when a row is not found
    key_values: Params = ()
    set_based: bool = False


# A set-based statement must find its rows with an index, one after the
# other in the upstream's order (a hash join would scan the whole table per
# batch, and change rows in another order): only a nested loop does that.
_NESTED_LOOP = Statement(
    "SELECT pg_catalog.set_config(n, 'off', true)"
    " FROM pg_catalog.unnest(ARRAY['enable_hashjoin', 'enable_mergejoin']) n",
    "SET",
    "",
    None,
    None,
)
_JOINS_AS_BEFORE = Statement(
    "SELECT pg_catalog.set_config(name, reset_val, true) FROM pg_catalog.pg_settings"
    " WHERE name IN ('enable_hashjoin', 'enable_mergejoin')",
    "SET",
    "",
    None,
    None,
)


class RowCountMismatch(ApplyError):
    """A statement touched more or fewer rows than the upstream changed."""


def _lsn_text(lsn: int | None) -> str | None:
    return None if lsn is None else lsn_to_str(lsn)


def _mismatch(st: Statement, found: int) -> RowCountMismatch:
    if st.set_based:
        message = (
            f"{st.verb} found {found:,} of the {st.rows:,} rows it changes in {st.table}:"
            " the downstream is not the same as the upstream"
            " (the retry applies this transaction row by row, to name the row)"
        )
    else:
        where = ""
        if st.key_names and len(st.key_names) == len(st.key_values):
            where = f" where ({', '.join(st.key_names)}) = ({', '.join(map(str, st.key_values))})"
        what = "no row" if found == 0 else f"{found} rows"
        message = (
            f"{st.verb} found {what} in {st.table} to change{where}:"
            " the downstream is not the same as the upstream"
        )
    return RowCountMismatch(message, lsn=_lsn_text(st.lsn), statement=st.query)


class StatementPipeline:
    """Sends statements without waiting; checks what each touched, in batches.

    Open from the first statement to ``close()``, which every flush point
    calls (nothing else may use the connection meanwhile, and COPY cannot
    run in a pipeline). A failure is reported with the statement that failed
    through ``self.failed``.
    """

    def __init__(self, conn: psycopg.Connection[Any], origin: str):
        self.conn = conn
        self.origin = origin
        self.failed: Statement | None = None  # the statement behind the last error
        self._stack: contextlib.ExitStack | None = None
        self._pipeline: psycopg.Pipeline | None = None
        self._sent: list[tuple[psycopg.Cursor[Any], Statement]] = []

    @property
    def open(self) -> bool:
        return self._stack is not None

    def take_failed(self) -> Statement | None:
        """The statement behind the error being reported, if it was one of ours."""
        failed, self.failed = self.failed, None
        return failed

    def send(self, st: Statement, params: Params | None = None) -> None:
        if self._pipeline is None:
            self._stack = contextlib.ExitStack()
            self._pipeline = self._stack.enter_context(self.conn.pipeline())
        try:
            cursor = self.conn.execute(st.query, params)
        except psycopg.Error as exc:
            self._blame(exc, st)
            raise
        self._sent.append((cursor, st))
        if len(self._sent) >= PIPELINE_MAX:
            self.sync()

    def sync(self) -> None:
        """Wait for every statement sent; check the rows each touched."""
        if self._pipeline is None or not self._sent:
            return
        try:
            self._pipeline.sync()
        except psycopg.Error as exc:
            self._blame(exc, None)
            raise
        self._check()

    def _check(self) -> None:
        """Each statement sent touched the rows it must (all have their results)."""
        sent, self._sent = self._sent, []
        for cursor, st in sent:
            if st.rows is not None and cursor.rowcount != st.rows:
                self.failed = st
                if st.set_based:
                    _mark_row_by_row(self.origin, st.lsn)
                raise _mismatch(st, cursor.rowcount)

    def close(self) -> None:
        """Leave pipeline mode, with every result in and checked: the connection
        is free for anything. One round trip: leaving syncs."""
        stack, self._stack, self._pipeline = self._stack, None, None
        if stack is None:
            return
        try:
            stack.close()
        except psycopg.Error as exc:
            self._blame(exc, None)
            raise
        self._check()

    def discard(self) -> None:
        """Leave pipeline mode after a failure, whatever the connection's state."""
        stack, self._stack, self._pipeline = self._stack, None, None
        self._sent.clear()
        self.failed = None
        if stack is not None:
            with contextlib.suppress(psycopg.Error):
                stack.__exit__(psycopg.Error, psycopg.Error("discarded"), None)

    def _blame(self, exc: psycopg.Error, sending: Statement | None) -> None:
        """Find the statement that failed: the first without a result."""
        self.failed = None
        for cursor, st in self._sent:
            if cursor.pgresult is None:
                self.failed = st
                break
        else:
            if sending is not None:
                self.failed = sending
        failed = self.failed
        sqlstate = getattr(exc, "sqlstate", None) or ""
        # What the rows caused, not a lost connection, a shutdown or a deadlock.
        if failed and failed.set_based and sqlstate[:2] in _ROW_CLASSES:
            _mark_row_by_row(self.origin, failed.lsn)


@dataclass(frozen=True, slots=True, eq=False)
class RunShape:
    """One shape of change on one table that can go set-based (compared by identity)."""

    row: Statement  # the one-row statement (no LSN), for runs too short to go set-based
    set_query: str
    key_from: int  # where the key's values start in a change's parameters
    # The columns whose values are the parameters, for changes that take them
    # straight from the tuple (``RowRuns.add_plain``).
    value_columns: tuple[int, ...] = ()
    pick: Callable[[Sequence[object]], tuple[object, ...]] = field(init=False)

    def __post_init__(self) -> None:
        columns = self.value_columns
        if len(columns) == 1:  # itemgetter of one index gives the value, not a tuple
            (i,) = columns
            object.__setattr__(self, "pick", lambda values: (values[i],))
        else:
            object.__setattr__(self, "pick", operator.itemgetter(*columns))


@dataclass(slots=True)
class _Run:
    """Consecutive changes of one shape on one table, not sent yet."""

    shape: RunShape
    lsn: int | None
    rows: list[tuple[bytes | None, ...]]  # the parameters, text as sent (decoded once)
    keys: set[Any]
    size: int = 0


class RowRuns:
    """Gathers runs of same-shaped changes; sends them set-based, or row by row."""

    def __init__(self, conn: psycopg.Connection[Any], origin: str):
        self.origin = origin
        self.pipeline = StatementPipeline(conn, origin)
        self._run: _Run | None = None

    @property
    def pending(self) -> bool:
        return self._run is not None or self.pipeline.open

    def row_by_row(self, lsn: int | None) -> bool:
        """Whether the transaction committed at ``lsn`` is to be applied row by row."""
        return lsn is not None and lsn != _UNKNOWN_LSN and _row_by_row.get(self.origin) == lsn

    def one(self, st: Statement, params: Params) -> None:
        """A statement for one row, after whatever came before it."""
        self._end_run()
        self.pipeline.send(st, params)

    def add(self, shape: RunShape, lsn: int | None, params: Params) -> None:
        """A change that can go in a set-based run of its ``shape``."""
        raw = tuple(None if v is None else v.encode() for v in params)
        self._add(shape, lsn, raw, sum(map(len, filter(None, raw))))

    def add_plain(self, shape: RunShape, lsn: int | None, values: Sequence[object]) -> bool:
        """``add`` for a change whose parameters are its tuple's ``value_columns``,
        text as sent; False (nothing done) when one is not text, or a key is NULL."""
        raw = shape.pick(values)
        try:
            size = len(b"".join(raw))  # type: ignore[arg-type]  # fails unless all are bytes
        except TypeError:
            if not _TEXT_TYPES.issuperset(map(type, raw)) or None in raw[shape.key_from :]:
                return False
            size = sum(map(len, filter(None, raw)))  # type: ignore[arg-type]
        self._add(shape, lsn, raw, size)  # type: ignore[arg-type]  # checked just above
        return True

    def add_plain_rows(
        self, shape: RunShape, lsn: int | None, rows: Sequence[Sequence[object]], i: int
    ) -> int:
        """``add_plain`` each of ``rows[i:]`` in turn while it can; the index of
        the first it cannot (or ``len(rows)``). The same rules as ``_add``, with
        the run's state read once per run rather than once per row."""
        n = len(rows)
        pick, key_from = shape.pick, shape.key_from
        one_key = len(shape.value_columns) == key_from + 1
        while i < n:
            run = self._run
            if run is not None and (run.shape is not shape or run.lsn != lsn):
                self._end_run()
                run = None
            if run is None:
                run = self._run = _Run(shape, lsn, [], set())
            append, keys, add_key = run.rows.append, run.keys, run.keys.add
            room = SET_MAX_ROWS - len(run.rows)
            size_room = SET_MAX_BYTES - run.size
            size = 0
            while i < n and room > 0 and size < size_room:
                raw = pick(rows[i])
                try:
                    nbytes = len(b"".join(raw))  # type: ignore[arg-type]  # fails unless all are bytes
                except TypeError:
                    break  # add_plain's careful way, for this row
                key = raw[key_from] if one_key else raw[key_from:]
                if key in keys:
                    break  # the run ends here: each row is changed once, in order
                append(raw)  # type: ignore[arg-type]  # all bytes, as checked
                add_key(key)
                size += nbytes
                room -= 1
                i += 1
            run.size += size
            if room <= 0 or size >= size_room:
                self._end_run()
                continue
            if i < n:
                if not self.add_plain(shape, lsn, rows[i]):
                    return i
                i += 1
        return i

    def _add(
        self, shape: RunShape, lsn: int | None, raw: tuple[bytes | None, ...], size: int
    ) -> None:
        key_from = shape.key_from
        key = raw[key_from] if len(raw) == key_from + 1 else raw[key_from:]
        run = self._run
        if run is not None and (run.shape is not shape or run.lsn != lsn or key in run.keys):
            # A new shape, or a row the run already touches: the run ends
            # here, so each row is changed once, in order.
            self._end_run()
            run = None
        if run is None:
            run = self._run = _Run(shape, lsn, [], set())
        run.rows.append(raw)
        run.keys.add(key)
        run.size += size
        if len(run.rows) >= SET_MAX_ROWS or run.size >= SET_MAX_BYTES:
            self._end_run()

    def flush(self) -> None:
        """Send everything, wait for it, check it: a flush point."""
        self._end_run()
        self.pipeline.close()

    def send_run(self) -> None:
        """Send the run gathered so far, without waiting: what comes next
        (another role, the commit) goes after it in the same pipeline."""
        self._end_run()

    def discard(self) -> None:
        self._run = None
        self.pipeline.discard()

    def _end_run(self) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        t, key_from = run.shape.row, run.shape.key_from
        if len(run.rows) < SET_MIN_ROWS:
            for raw in run.rows:
                params = [None if v is None else v.decode() for v in raw]
                self.pipeline.send(
                    Statement(t.query, t.verb, t.table, run.lsn, 1, t.key_names, params[key_from:]),
                    params,
                )
            return
        # One batch in flight at a time: its values stay in memory until done.
        self.pipeline.sync()
        arrays = [_text_array(column) for column in zip(*run.rows, strict=True)]
        st = Statement(run.shape.set_query, t.verb, t.table, run.lsn, len(run.rows), set_based=True)
        self.pipeline.send(_NESTED_LOOP)
        self.pipeline.send(st, arrays)
        self.pipeline.send(_JOINS_AS_BEFORE)


def _text_array(values: Sequence[bytes | None]) -> str:
    """A text[] literal of the values: each quoted, NULL as NULL.

    Joined on NUL, which no text value holds, so that quoting is a few
    whole-string operations rather than one per value.
    """
    if None in values:
        elements = ("NULL" if v is None else _text_array((v,))[1:-1] for v in values)
        return "{" + ",".join(elements) + "}"
    joined = b"\x00".join(values)  # type: ignore[arg-type]  # no None, as checked
    if b"\\" in joined or b'"' in joined:
        joined = joined.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return (b'{"' + joined.replace(b"\x00", b'","') + b'"}').decode()


def set_statement(
    verb: str,
    table: sql.Composable,
    sets: Sequence[tuple[sql.Composable, sql.Composable]],
    keys: Sequence[tuple[sql.Composable, sql.Composable, sql.Composable]],
) -> sql.Composable:
    """The set-based UPDATE (``sets``: column, type) or DELETE of rows found by
    ``keys`` (column, equality, type); parameters: one text[] per set column,
    then one per key column, as the row-by-row statement's."""
    names = [sql.SQL(f"v{i}") for i in range(len(sets))] + [
        sql.SQL(f"k{i}") for i in range(len(keys))
    ]
    source = sql.SQL("ROWS FROM ({}) AS r({})").format(
        sql.SQL(", ").join(sql.SQL("pg_catalog.unnest(%s::pg_catalog.text[])") for _ in names),
        sql.SQL(", ").join(names),
    )
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{} {} r.k{}::{}").format(column, equality, sql.SQL(str(i)), type_name)
        for i, (column, equality, type_name) in enumerate(keys)
    )
    if verb == "DELETE":
        return sql.SQL("DELETE FROM {} AS t USING {} WHERE {}").format(table, source, match)
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = r.v{}::{}").format(column, sql.SQL(str(i)), type_name)
        for i, (column, type_name) in enumerate(sets)
    )
    return sql.SQL("UPDATE {} AS t SET {} FROM {} WHERE {}").format(
        table, assignments, source, match
    )
