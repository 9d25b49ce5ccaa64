"""What both PostgreSQL decoders (wal2json, pgoutput) keep between messages: the open transaction's place, the
captured tables as the stream has seen them, and the table-wide events (actors.core.events) they emit alike.

Positions: (commit LSN, the change's index in its transaction); a restart resumes at the end LSN of the last
complete transaction. Table-wide events take the next index, so they sort between the changes around them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Iterator, Mapping

from actors.core.errors import TableChanged
from actors.core.events import AddedColumn, ChangeEvent, Op, Position, added_column_row
from actors.core.schema_changes import ColumnWatch
from actors.engines.postgresql.catalog import TableInfo
from actors.engines.postgresql.lsn import format_lsn

#: Reads a table's definition now: its TableInfo, and each column as an AddedColumn.
Catalog = Callable[[str], tuple[TableInfo, Mapping[str, AddedColumn]]]

_ORDER = struct.Struct("!QQ")
#: The index of a transaction's end: after every change of it.
TXN_END_INDEX = 2**64 - 1


def order_of(lsn: int, index: int) -> bytes:
    """Position order: commit LSN, then the change's index within its transaction."""
    return _ORDER.pack(lsn, index)


class TransactionState:
    """The state a decoder subclass updates as Begin, changes and Commit go by."""

    def __init__(
        self, *, stream: str, node: str, tables: dict[str, TableInfo], start_lsn: int, catalog: Catalog | None
    ) -> None:
        """``catalog`` is called when a change or a table description shows columns other than those seen so far
        (actors.core.schema_changes); without it, such a change is TableChanged."""
        self.stream = stream
        self.node = node
        self.tables = tables
        self.catalog = catalog
        self.watch = ColumnWatch(f"postgresql stream `{stream}`", {ns: t.columns for ns, t in tables.items()})
        #: Table-wide events to hand out before the change just decoded: see :meth:`take`.
        self.pending: list[ChangeEvent] = []
        #: End LSN of the last complete transaction: where a restart must begin.
        self.restart_lsn = start_lsn
        self._resume = format_lsn(start_lsn)  # the restart point as text, made once per transaction
        self._commit_lsn = 0
        self._index = 0
        self._txid = ""
        self._commit_us = 0
        self._origin: str | None = None

    def _begin(self, commit_lsn: int, txid: str, commit_us: int, origin: str | None) -> None:
        self._commit_lsn, self._index, self._txid = commit_lsn, 0, txid
        self._commit_us, self._origin = commit_us, origin

    def _commit(self, end_lsn: int) -> Position:
        """The transaction's end; later changes resume after it."""
        self.restart_lsn = end_lsn
        self._resume = format_lsn(end_lsn)
        return Position(order_of(self._commit_lsn, TXN_END_INDEX), self._resume)

    def _next_position(self) -> Position:
        self._index += 1
        return Position(order_of(self._commit_lsn, self._index), self._resume)

    def take(self) -> Iterator[ChangeEvent]:
        """The table-wide events the last message made (TRUNCATEs, columns added), once, in order."""
        pending, self.pending = self.pending, []
        return iter(pending)

    def _table_event(self, namespace: str, op: Op, added: AddedColumn | None = None) -> ChangeEvent:
        """A TRUNCATE or an added column, at its own place in the transaction."""
        return ChangeEvent(
            node=self.node,
            engine="postgresql",
            namespace=namespace,
            op=op,
            key={},
            before=None,
            after=None if added is None else added_column_row(added),
            commit_time_us=self._commit_us,
            txid=self._txid,
            position=self._next_position(),
            origin=self._origin,
        )

    def _columns_changed(self, namespace: str, names: Collection[str], *, complete: bool) -> frozenset[str]:
        """Columns other than those seen so far (``complete``: ``names`` are all of the table's): the table is
        read again, each added column goes out as an event (in ``pending``); returns the columns dropped since
        (a replay), whose values are left out. A dropped or renamed column is TableChanged."""
        catalog = self.catalog
        if catalog is None:
            raise TableChanged(f"postgresql stream `{self.stream}`: table `{namespace}` changed its columns")
        fresh: list[TableInfo] = []

        def current() -> Mapping[str, AddedColumn]:
            info, columns = catalog(namespace)
            fresh.append(info)
            return columns

        seen = self.watch.check(
            namespace,
            names,
            complete=complete,
            catalog=current,
            resync_hint=f"`worker-sync sync --manual --stream {self.stream}`",
        )
        if fresh:
            self.tables[namespace] = fresh[0]
        for added in seen.added:
            self.pending.append(self._table_event(namespace, Op.SCHEMA, added))
        return seen.gone
