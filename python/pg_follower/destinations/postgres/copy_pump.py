"""Rows from an upstream ``COPY ... TO STDOUT`` into a downstream ``COPY ... FROM STDIN``.

One thread drives both connections at the libpq level: the upstream sends one
CopyData message per row, which costs one libpq call here and nothing else;
the downstream gets them back in large CopyData messages (the server does not
care where messages split rows). Reading goes on while the downstream digests
what it was sent, up to ``READ_AHEAD`` bytes, so both servers work at once; a
second Python thread would only fight this one for the GIL.

Several upstream connections may feed one downstream COPY (a table read in
ranges, each by its own connection in the same snapshot): rows are whole
messages, so they interleave freely. In binary format each upstream stream
starts with a header and ends with a trailer; the downstream gets one of each.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import pq

from pg_follower.errors import ApplyError, FollowerError, UpstreamError

READ_AHEAD = 4 << 20  # bytes read from the upstream, not yet handed to the downstream
WAIT_SLICE = 0.5  # seconds between looks at ``stopping`` while a server is silent
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no extension
BINARY_TRAILER = b"\xff\xff"


@dataclass(slots=True)
class PumpResult:
    rows: int  # as the downstream's COPY counted them


class _Source:
    """One upstream connection in COPY OUT."""

    def __init__(self, pgconn: pq.abc.PGconn, binary: bool):
        self.pgconn = pgconn
        self.binary = binary
        self.first = True
        self.done = False
        self.rows = 0  # from the COPY's command tag, once it ended


def pump(
    sources: Sequence[tuple[pq.abc.PGconn, bytes]],
    down: pq.abc.PGconn,
    copy_in: bytes,
    binary: bool,
    stopping: Callable[[], bool],
    on_rows: Callable[[int], None],
) -> PumpResult:
    """Run each ``(pgconn, COPY TO query)`` of ``sources`` and ``copy_in`` on ``down``,
    moving every row across; ``on_rows(n)`` reports progress.

    The upstream connections must be idle in a transaction; ``down`` must be
    idle in its transaction. On failure the downstream COPY is abandoned (its
    transaction then is aborted) and the error raised.
    """
    _start(down, copy_in, pq.ExecStatus.COPY_IN, downstream=True)
    try:
        live = []
        for pgconn, query in sources:
            _start(pgconn, query, pq.ExecStatus.COPY_OUT, downstream=False)
            live.append(_Source(pgconn, binary))
        _move(live, down, binary, stopping, on_rows)
    except BaseException as exc:
        _abandon(down, f"initial copy interrupted: {exc}")
        raise
    try:
        down.put_copy_end(None)
    except psycopg.Error:
        raise _error(down, downstream=True) from None
    _flush(down, stopping, downstream=True)
    rows = _finish(down, downstream=True)
    sent = sum(src.rows for src in live)
    if rows != sent:  # a safety net: the two command tags must agree
        raise ApplyError(f"the downstream COPY took {rows} rows, the upstream sent {sent}")
    return PumpResult(rows)


def _move(
    sources: list[_Source],
    down: pq.abc.PGconn,
    binary: bool,
    stopping: Callable[[], bool],
    on_rows: Callable[[int], None],
) -> None:
    pending = bytearray(BINARY_HEADER if binary else b"")
    sending = False  # libpq holds data for ``down`` it could not send yet
    while True:
        starved = []  # sources with nothing to read right now
        for src in sources:
            if src.done or len(pending) >= READ_AHEAD:
                continue
            rows, finished = _read_available(src, pending, READ_AHEAD)
            if rows:
                on_rows(rows)
            if finished:
                src.done = True
                src.rows = _finish(src.pgconn, downstream=False)
            elif len(pending) < READ_AHEAD:
                starved.append(src)
        all_read = all(src.done for src in sources)
        if all_read and binary:
            pending += BINARY_TRAILER
            binary = False  # the trailer goes once
        if sending:
            sending = _flush_some(down, downstream=True)
        if pending and not sending:
            _put(down, pending)
            pending = bytearray()
            sending = _flush_some(down, downstream=True)
        if all_read and not pending:
            return
        if stopping():
            raise FollowerError("stopped during the initial copy")
        if not starved and not sending:
            continue  # rows are waiting in libpq's buffer, and room for them
        # (libpq reads a downstream error only once the COPY is ended: until
        # then the server just discards what it is sent)
        readable, _, _ = select.select(
            [src.pgconn.socket for src in starved],
            [down.socket] if sending else [],
            [],
            WAIT_SLICE,
        )
        for src in starved:
            if src.pgconn.socket in readable:
                _consume(src.pgconn, downstream=False)


def _read_available(src: _Source, out: bytearray, limit: int) -> tuple[int, bool]:
    """Append the rows libpq already holds to ``out`` (up to about ``limit``
    bytes); how many, and whether the COPY ended. This loop is the per-row
    cost of the copy: one libpq call and one append."""
    get = src.pgconn.get_copy_data
    rows = 0
    if src.first and src.binary:  # the header comes with the first row (or the trailer)
        nbytes, data = get(1)
        if nbytes <= 0:
            return 0, _ended(src, nbytes)
        if bytes(data[: len(BINARY_HEADER)]) != BINARY_HEADER:
            raise UpstreamError("the upstream's binary COPY has an unknown header")
        src.first = False
        if bytes(data[len(BINARY_HEADER) :]) == BINARY_TRAILER:
            return 0, False  # an empty table
        out += data[len(BINARY_HEADER) :]
        rows = 1
    while len(out) < limit:
        nbytes, data = get(1)
        if nbytes > 2:
            out += data
            rows += 1
        elif nbytes <= 0:
            return rows, _ended(src, nbytes)
        elif not (src.binary and bytes(data) == BINARY_TRAILER):
            out += data  # a short row (a table of no columns, say)
            rows += 1
        # the trailer: the downstream gets one, after every source
    return rows, False


def _ended(src: _Source, nbytes: int) -> bool:
    """What ``get_copy_data`` returning ``nbytes`` <= 0 means: 0, nothing yet;
    -1, the COPY ended; -2, an error (raised)."""
    if nbytes < -1:
        raise _error(src.pgconn, downstream=False)
    return nbytes == -1


def _start(pgconn: pq.abc.PGconn, query: bytes, expect: pq.ExecStatus, downstream: bool) -> None:
    try:
        pgconn.send_query(query)
    except psycopg.Error:
        raise _error_from(None, pgconn, downstream) from None
    _flush(pgconn, lambda: False, downstream)
    while pgconn.is_busy():
        _wait_readable(pgconn)
        _consume(pgconn, downstream)
    res = pgconn.get_result()
    if res is None or res.status != expect:
        raise _error_from(res, pgconn, downstream)


def _put(down: pq.abc.PGconn, data: bytearray) -> None:
    try:
        down.put_copy_data(data)  # never 0: libpq grows its buffer instead
    except psycopg.Error:
        raise _error(down, downstream=True) from None


def _flush(pgconn: pq.abc.PGconn, stopping: Callable[[], bool], downstream: bool) -> None:
    while _flush_some(pgconn, downstream):
        if stopping():
            raise FollowerError("stopped during the initial copy")
        select.select([pgconn.socket], [pgconn.socket], [], WAIT_SLICE)
        _consume(pgconn, downstream)


def _flush_some(pgconn: pq.abc.PGconn, downstream: bool) -> bool:
    """Send what libpq holds; whether some is left."""
    try:
        return pgconn.flush() == 1
    except psycopg.Error:
        raise _error_from(None, pgconn, downstream) from None


def _consume(pgconn: pq.abc.PGconn, downstream: bool) -> None:
    try:
        pgconn.consume_input()
    except psycopg.Error:
        raise _error_from(None, pgconn, downstream) from None


def _wait_readable(pgconn: pq.abc.PGconn) -> None:
    select.select([pgconn.socket], [], [], WAIT_SLICE)


def _finish(pgconn: pq.abc.PGconn, downstream: bool) -> int:
    """The COPY's row count from its command tag, once the server has ended it;
    without that tag the COPY did not complete, whatever libpq says."""
    rows: int | None = None
    error: FollowerError | None = None
    while True:
        while pgconn.is_busy():
            _wait_readable(pgconn)
            _consume(pgconn, downstream)
        res = pgconn.get_result()
        if res is None:
            break
        if res.status == pq.ExecStatus.COMMAND_OK:
            rows = res.command_tuples or 0
        elif error is None:
            error = _error_from(res, pgconn, downstream)
    if error is None and rows is None:
        error = _error_from(None, pgconn, downstream)
    if error is not None:
        raise error
    assert rows is not None
    return rows


def _abandon(down: pq.abc.PGconn, why: str) -> None:
    """End the downstream COPY with CopyFail, if it is still open; best effort."""
    try:
        if (
            down.status == pq.ConnStatus.OK
            and down.transaction_status == pq.TransactionStatus.ACTIVE
        ):
            down.put_copy_end(why.encode()[:500])
            _flush(down, lambda: False, downstream=True)
            _finish(down, downstream=True)
    except Exception:  # the original error is the one to report
        return


def _error(pgconn: pq.abc.PGconn, downstream: bool) -> FollowerError:
    """The error behind a failed libpq call, from the result if the server sent one."""
    res = None
    try:
        while pgconn.is_busy() == 0:
            res = pgconn.get_result()
            if res is None or res.status == pq.ExecStatus.FATAL_ERROR:
                break
    except Exception:
        res = None
    return _error_from(res, pgconn, downstream)


def _error_from(
    res: pq.abc.PGresult | None, pgconn: pq.abc.PGconn, downstream: bool
) -> FollowerError:
    raw = res.error_message if res is not None and res.error_message else pgconn.error_message
    message = raw.decode(errors="replace").strip().splitlines()
    text = message[0] if message else "the COPY ended without completing"
    if text.startswith(("ERROR:  ", "FATAL:  ")):
        text = text[8:]
    sqlstate = None
    if res is not None:
        state = res.error_field(pq.DiagnosticField.SQLSTATE)
        sqlstate = state.decode() if state else None
    if downstream:
        return ApplyError(f"{text} (SQLSTATE {sqlstate or '?'})")
    return UpstreamError(f"reading the upstream failed: {text}")
