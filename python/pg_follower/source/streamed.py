"""What the reader hands the applier of the streamed transaction applied while open."""

from __future__ import annotations

from dataclasses import dataclass

from pg_follower.source.decode import Message


@dataclass(slots=True)
class StreamedChange:
    """A change of the streamed transaction being applied in parallel."""

    xid: int  # the top-level transaction
    subxid: int  # the (sub)transaction that made it
    message: Message


@dataclass(slots=True)
class StreamedAbort:
    """The streamed transaction, or one of its subtransactions, aborted."""

    xid: int
    subxid: int
