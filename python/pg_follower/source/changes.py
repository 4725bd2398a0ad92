"""The changes a source produces, as plain values any destination can use.

Values are PostgreSQL's text form (``str``), ``None`` for NULL, or
``UNCHANGED_TOAST`` for a TOASTed column an UPDATE did not change (the server
does not send it). A destination converts them by ``ColumnInfo``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from pg_follower.source.decode import UNCHANGED_TOAST, UnchangedToast

__all__ = [
    "UNCHANGED_TOAST",
    "Change",
    "ColumnInfo",
    "Ddl",
    "Delete",
    "Insert",
    "Row",
    "TableInfo",
    "Transaction",
    "Truncate",
    "Update",
    "Value",
]

Value: TypeAlias = str | UnchangedToast | None
Row: TypeAlias = tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One column, with what a destination needs to map its type."""

    name: str
    type_name: (
        str  # format_type() of the declared type: 'numeric(10,2)', 'integer[]', 'public.mood'
    )
    type_oid: int  # the declared type
    base_oid: int  # the type under any domains (the declared type when none)
    type_modifier: int  # of the declared type (-1 when none)
    element_oid: int  # for an array (of the base type): its element type; else 0
    category: str  # pg_type.typcategory of the base type: 'N' numeric, 'S' string, 'A' array ...
    key: bool  # part of the replica identity (the primary key by default)


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A published table as the stream last described it."""

    relation_id: int  # the upstream table's OID
    schema: str
    name: str
    replica_identity: str  # 'd' default (primary key), 'i' index, 'f' full, 'n' nothing
    columns: tuple[ColumnInfo, ...]

    @property
    def key_columns(self) -> tuple[ColumnInfo, ...]:
        return tuple(c for c in self.columns if c.key)

    @property
    def qualified_name(self) -> str:
        """``schema.table``, unquoted (for messages and as a label)."""
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True, slots=True)
class Transaction:
    """An upstream transaction: ``end_lsn`` is 0 until its commit arrives."""

    xid: int
    commit_lsn: int
    commit_time: datetime
    end_lsn: int = 0


@dataclass(frozen=True, slots=True)
class Insert:
    table: TableInfo
    new: Row


@dataclass(frozen=True, slots=True)
class Update:
    """``old`` holds the key columns when the key changed, the whole row under
    REPLICA IDENTITY FULL, and is None otherwise (the key is in ``new``)."""

    table: TableInfo
    old: Row | None
    new: Row


@dataclass(frozen=True, slots=True)
class Delete:
    """``old`` holds the key columns (other columns None), or the whole row
    under REPLICA IDENTITY FULL."""

    table: TableInfo
    old: Row


@dataclass(frozen=True, slots=True)
class Truncate:
    tables: tuple[TableInfo, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class Ddl:
    """A DDL statement the upstream's pg_follower_py extension captured: a row
    of its ``pgfollower.ddl_queue`` (``kind``, ``tag``, ``identity``,
    ``search_path``, ``statement``, ``settings``, ``role_name``, as text) and
    the role that ran it."""

    record: dict[str, Value]
    role: str | None


Change: TypeAlias = Insert | Update | Delete | Truncate | Ddl
