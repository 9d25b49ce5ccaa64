"""The normalized change event: what every capture stream produces and every applier consumes.

Events are msgspec Structs so they cross Ray calls and the audit log cheaply. Their binary
form (see :mod:`actors.core.encoding`) is deterministic: the same event gives the same bytes
on every machine, which the audit chain relies on when it hashes events.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar, Final, Self, cast

import msgspec

from actors.core.typemap import ColumnType


class Op(enum.StrEnum):
    """What happened to a row or document."""

    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    #: A row read by an initial snapshot or a re-snapshot, applied like an upsert.
    READ = "read"
    #: Every row of the table was removed (TRUNCATE): ``key`` is ``{}``, ``before`` and ``after`` None.
    TRUNCATE = "truncate"
    #: A column was added to the table: ``key`` is ``{}``, ``before`` None, ``after`` the column
    #: (``{"add_column": {...}}``, see :func:`added_column_row`; read it as ``event.added_column``).
    SCHEMA = "schema"


class _Marker:
    """A value that stands for something a column does not hold; one instance per class, kept as itself
    through pickling (``__reduce__`` names the module constant)."""

    _instances: ClassVar[dict[type, _Marker]] = {}
    _constant: ClassVar[str] = ""

    def __new__(cls) -> Self:
        instance = _Marker._instances.get(cls)
        if instance is None:
            instance = _Marker._instances[cls] = super().__new__(cls)
        return cast(Self, instance)  # stored under its own class

    def __repr__(self) -> str:
        return self._constant

    def __reduce__(self) -> str:
        return self._constant


class Unchanged(_Marker):
    """Marks a column whose value the source did not send because it did not change.

    PostgreSQL omits unchanged TOASTed columns from its change stream; writing ``None`` there
    would destroy data, so the applier must leave such columns as they are.
    """

    _constant = "UNCHANGED"


UNCHANGED: Final = Unchanged()


class UnsentNumber(_Marker):
    """A numeric or floating-point value the source could not send: wal2json before 2.6 writes NaN and
    ±Infinity as null, and in a NOT NULL column that null can only be one of them. The exact value is
    unknown, so no target is given a guess: writers refuse it (a dead letter naming the cause)."""

    _constant = "UNSENT_NUMBER"


UNSENT_NUMBER: Final = UnsentNumber()

#: Column name -> value. Values are None, bool, int, float, str, bytes, Decimal, datetime,
#: date, time, timedelta, UUID, lists/dicts of those (JSON), or UNCHANGED.
Row = dict[str, Any]


class Position(msgspec.Struct, frozen=True, order=True, array_like=True):
    """Where an event sits in its stream.

    ``order`` compares bytewise in stream order (so positions of one stream sort with ``<``);
    ``resume`` is what the engine needs to restart from here (an LSN, a GTID set and a binlog
    file/offset, a MongoDB resume token). Only the engine's own module interprets either.
    """

    order: bytes
    resume: str = ""

    def __str__(self) -> str:
        return self.resume or self.order.hex()


class AddedColumn(msgspec.Struct, frozen=True, kw_only=True):
    """A column added to a captured table, as the source's catalog describes it: what a target needs to add
    the mapped column (see actors.core.schema_changes). The only schema change that travels: a dropped or
    renamed column stops the stream where it is captured (never guessed at)."""

    name: str
    #: The type in the engine-neutral vocabulary the start-up type check compares (actors.core.typemap).
    type: ColumnType
    #: The declared type as the source's catalog spells it ("character varying(64)", "decimal(12,2)").
    type_text: str
    nullable: bool = True
    #: The column's default as a constant SQL literal (``42``, ``'n/a'``); None: no default (or NULL).
    default: str | None = None
    #: A default that is an expression (``now()``, ``nextval(...)``), as the catalog spells it: the values it gave
    #: existing rows cannot be rebuilt, so such a column is never added (the stream stops where it is captured).
    expression_default: str | None = None


class ChangeEvent(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One change to one row or document, as captured from a source.

    Wire rule: fields are never reordered or removed; new fields go last, with a default.
    """

    #: Name of the database node the change was captured on.
    node: str
    #: "postgresql", "mariadb", "mysql" or "mongodb".
    engine: str
    #: "schema.table" (PostgreSQL), "database.table" (MariaDB/MySQL), "database.collection" (MongoDB).
    namespace: str
    op: Op
    #: Primary key (or ``_id``) of the row, by column name.
    key: Row
    #: The row before the change: all columns with REPLICA IDENTITY FULL / a FULL binlog row
    #: image, only the key otherwise; None for inserts and snapshot reads.
    before: Row | None
    #: The row after the change; None for deletes.
    after: Row | None
    #: Source commit time in microseconds since the Unix epoch, UTC.
    commit_time_us: int
    #: Source transaction id (PostgreSQL xid, MariaDB/MySQL GTID, MongoDB lsid+txnNumber).
    txid: str
    position: Position
    #: The node a change was first made on, when Worker-Sync itself wrote it (echo suppression).
    origin: str | None = None

    @property
    def added_column(self) -> AddedColumn | None:
        """Op.SCHEMA: the column added to ``namespace`` (the only schema change that travels), which the event
        carries as ``after == {"add_column": {...}}`` (see :func:`added_column_row`); None otherwise."""
        if self.op is not Op.SCHEMA or self.after is None or ADD_COLUMN not in self.after:
            return None
        return msgspec.convert(self.after[ADD_COLUMN], AddedColumn)


#: The ``after`` key an Op.SCHEMA event carries its AddedColumn under.
ADD_COLUMN: Final = "add_column"


def added_column_row(added: AddedColumn) -> Row:
    """The ``after`` of an Op.SCHEMA event adding ``added``. Carried in ``after`` (plain values), not in a field
    of its own, so that the encoding of every other event stays byte for byte what it was (audit hashes)."""
    return {ADD_COLUMN: msgspec.msgpack.decode(msgspec.msgpack.encode(added))}  # lists, not tuples: as decoded
