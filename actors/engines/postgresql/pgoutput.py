"""pgoutput (PostgreSQL's built-in logical replication protocol, version 1) -> normalized change events.

Why a second decoder beside wal2json: pgoutput ships with every PostgreSQL (no extension to install, so
it also works on managed servers that allow no plugins), and it sends each value as its type's text
output, exactly what the snapshot reads. NaN and ±Infinity therefore arrive as the text ``NaN`` and
``Infinity`` whatever the column's nullability, where wal2json before 2.6 writes them as JSON null.

Messages (PostgreSQL docs, "Logical Replication Message Formats"): Begin, Commit, Origin, Relation, Type,
Insert, Update, Delete, Truncate, Message. A Relation message describes a table before its first change in
each session and again after its shape changes; changes refer to it by OID. Positions are the same as the
wal2json decoder's (commit LSN and the change's index; a restart resumes at the commit's end LSN), so a
stream can be read by either decoder from the same slot position.

Table-wide events are the wal2json decoder's (actors.core.events): a Truncate message becomes one
``Op.TRUNCATE`` event per captured table; a Relation message whose columns differ from those seen is checked
by actors.core.schema_changes (it lists every column, as the table was at that point of the WAL): each added
column goes out as an ``Op.SCHEMA`` event before the changes that carry it, a dropped or renamed column raises
TableChanged, and values of columns dropped since (a replay) are left out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.core.batches import TxnEnd
from actors.core.events import UNCHANGED, ChangeEvent, Op, Row
from actors.engines.postgresql.catalog import TableInfo
from actors.engines.postgresql.decoding import Catalog, TransactionState

#: The output plugin's name in CREATE_REPLICATION_SLOT.
PLUGIN = "pgoutput"

# Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
_PG_EPOCH_US = 946_684_800_000_000
_BEGIN = struct.Struct("!QqI")
_COMMIT = struct.Struct("!BQQq")
_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")
_RELATION_HEAD = struct.Struct("!I")
_COLUMN_TAIL = struct.Struct("!Ii")

_OPS = {ord("I"): Op.INSERT, ord("U"): Op.UPDATE, ord("D"): Op.DELETE}


def plugin_options(publication: str) -> dict[str, str]:
    """START_REPLICATION options: protocol 1 (PostgreSQL 10+), this stream's publication, text values."""
    return {"proto_version": "1", "publication_names": publication}


@dataclass(frozen=True)
class _Relation:
    """A Relation message joined with what the capture knows of the table (None: not a captured table)."""

    table: TableInfo | None
    names: tuple[str, ...]
    #: Per column in message order: the converter of its text output (None keeps the text).
    converters: tuple[Callable[[Any], Any] | None, ...]
    #: Per column: part of the replica identity (the only columns a key-only old tuple carries).
    identity: tuple[bool, ...]
    #: Per column: dropped from the table since this point of the WAL (a replay): its value is left out.
    gone: tuple[bool, ...] = ()


def _cstring(buf: bytes, offset: int) -> tuple[str, int]:
    end = buf.index(b"\0", offset)
    return buf[offset:end].decode(), end + 1


class PgOutputDecoder(TransactionState):
    """Stateful: tracks relations by OID and the current transaction to number its changes."""

    def __init__(
        self,
        *,
        stream: str,
        node: str,
        tables: dict[str, TableInfo],
        start_lsn: int,
        echo_origin: Callable[[str], str | None] = lambda _name: None,
        catalog: Catalog | None = None,
    ) -> None:
        """``echo_origin`` maps a replication origin's name to the Worker-Sync writer it marks (None for the
        node's own users' changes and other tools' origins): those changes become echoes (``origin`` set).
        ``catalog``: see TransactionState."""
        super().__init__(stream=stream, node=node, tables=tables, start_lsn=start_lsn, catalog=catalog)
        self.echo_origin = echo_origin
        self._relations: dict[int, _Relation] = {}

    def decode(self, payload: bytes) -> ChangeEvent | TxnEnd | None:
        kind = payload[0]
        if kind in _OPS:
            return self._change(_OPS[kind], payload)
        if kind == ord("B"):
            commit_lsn, commit_ts, xid = _BEGIN.unpack_from(payload, 1)
            self._begin(commit_lsn, str(xid), commit_ts + _PG_EPOCH_US, None)  # an Origin message may follow
            return None
        if kind == ord("C"):
            _, _, end_lsn, _ = _COMMIT.unpack_from(payload, 1)
            return TxnEnd(self._commit(end_lsn), self._txid, self._commit_us)
        if kind == ord("O"):
            name, _ = _cstring(payload, 9)  # after the origin's own commit LSN
            self._origin = self.echo_origin(name)
            return None
        if kind == ord("R"):
            self._relation(payload)
            return None
        if kind == ord("T"):
            self._truncate(payload)
            return None
        return None  # "Y" (type), "M" (logical message)

    def _truncate(self, buf: bytes) -> None:
        (count,) = _U32.unpack_from(buf, 1)
        offset = 6  # after the relation count and the options byte (CASCADE, RESTART IDENTITY)
        for _ in range(count):
            (oid,) = _U32.unpack_from(buf, offset)
            offset += 4
            table = self._relations[oid].table
            if table is not None:  # a table of the publication this stream captures
                self.pending.append(self._table_event(table.namespace, Op.TRUNCATE))

    def _relation(self, buf: bytes) -> None:
        (oid,) = _RELATION_HEAD.unpack_from(buf, 1)
        schema, offset = _cstring(buf, 5)
        name, offset = _cstring(buf, offset)
        offset += 1  # replica identity setting
        (count,) = _U16.unpack_from(buf, offset)
        offset += 2
        names: list[str] = []
        identity: list[bool] = []
        for _ in range(count):
            flags = buf[offset]
            column, offset = _cstring(buf, offset + 1)
            offset += _COLUMN_TAIL.size  # type OID and typmod: the catalog gave the types
            names.append(column)
            identity.append(bool(flags & 1))
        namespace = f"{schema}.{name}"
        gone: frozenset[str] = frozenset()
        if namespace in self.tables and not self.watch.knows(namespace, names, complete=True):
            gone = self._columns_changed(namespace, names, complete=True)
        table = self.tables.get(namespace)
        converters: list[Callable[[Any], Any] | None] = []
        if table is not None:
            converters = [table.converters.get(column) for column in names]
        dropped = tuple(column in gone for column in names)
        self._relations[oid] = _Relation(table, tuple(names), tuple(converters), tuple(identity), dropped)

    def _tuple(self, buf: bytes, offset: int, relation: _Relation, *, identity_only: bool) -> tuple[Row, int]:
        (count,) = _U16.unpack_from(buf, offset)
        offset += 2
        row: Row = {}
        names, converters = relation.names, relation.converters
        for i in range(count):
            kind = buf[offset]
            offset += 1
            if kind == 0x74:  # "t": the value's text output
                (length,) = _U32.unpack_from(buf, offset)
                offset += 4
                value: Any = buf[offset : offset + length].decode()
                offset += length
                convert = converters[i]
                if convert is not None:
                    value = convert(value)
            elif kind == 0x6E:  # "n": NULL
                value = None
            elif kind == 0x75:  # "u": an unchanged TOASTed value, not sent
                value = UNCHANGED
            else:
                raise ValueError(f"pgoutput: unexpected tuple column kind {kind!r} (binary mode is not asked for)")
            if (not identity_only or relation.identity[i]) and not (relation.gone and relation.gone[i]):
                row[names[i]] = value
        return row, offset

    def _change(self, op: Op, buf: bytes) -> ChangeEvent | None:
        (oid,) = _U32.unpack_from(buf, 1)
        relation = self._relations[oid]
        table = relation.table
        if table is None:
            return None  # a table of the publication that this stream does not capture
        offset = 5
        before: Row | None = None
        after: Row | None = None
        marker = buf[offset]
        if marker in (0x4B, 0x4F):  # "K": the old key, "O": the whole old row (REPLICA IDENTITY FULL)
            before, offset = self._tuple(buf, offset + 1, relation, identity_only=marker == 0x4B)
            marker = buf[offset] if offset < len(buf) else 0
        if marker == 0x4E:  # "N": the new row
            after, offset = self._tuple(buf, offset + 1, relation, identity_only=False)
        if op is Op.UPDATE and before is None:
            assert after is not None  # an update carries its new row
            before = {name: after[name] for name in table.key}  # the key did not change: no old tuple sent
        source_row = after if after is not None else before
        assert source_row is not None, "a captured table has a primary key: a delete carries its identity"
        return ChangeEvent(
            node=self.node,
            engine="postgresql",
            namespace=table.namespace,
            op=op,
            key={name: source_row[name] for name in table.key},
            before=before,
            after=after,
            commit_time_us=self._commit_us,
            txid=self._txid,
            position=self._next_position(),
            origin=self._origin,
        )
