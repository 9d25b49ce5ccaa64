"""wal2json format-version 2 messages -> normalized change events.

Format 2 sends one JSON object per change, with Begin/Commit objects around each transaction,
so a large transaction never has to fit in memory (format 1 sends a transaction as one object).

Table-wide events, as every decoder emits them (actors.core.events): a ``T`` object becomes one
``Op.TRUNCATE`` event per table (``key={}``, no rows); a change naming a column the stream has not seen is
preceded by one ``Op.SCHEMA`` event per added column (``after=added_column_row(...)``, described from the
catalog: actors.core.schema_changes), and a dropped or renamed column raises TableChanged. Each takes the
next index in its transaction, so it sorts between the changes around it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec

from actors.core.batches import TxnEnd
from actors.core.events import UNCHANGED, UNSENT_NUMBER, AddedColumn, ChangeEvent, Op, Position, added_column_row
from actors.core.schema_changes import ColumnWatch
from actors.engines.postgresql.catalog import TableInfo
from actors.engines.postgresql.lsn import format_lsn, parse_lsn

#: Options for START_REPLICATION (or the SQL functions) that this decoder expects.
#: Numbers as their text output, as the snapshot reads them: JSON has no NaN or ±Infinity, which wal2json
#: otherwise writes as null. wal2json 2.6 added it; older ones refuse the option (see NUMBERS_AS_TEXT).
NUMBERS_AS_TEXT = "numeric-data-types-as-string"

PLUGIN_OPTIONS = {
    "format-version": "2",
    "include-xids": "1",
    "include-timestamp": "1",
    "include-lsn": "1",
    "include-transaction": "1",
    "include-types": "1",
    "include-typmod": "0",
    "include-origin": "1",
    # TRUNCATE as {"action": "T", "schema", "table"}, one per table (format 2's default; named so it stays on).
    "actions": "insert,update,delete,truncate",
}

_ORDER = struct.Struct("!QQ")
_TXN_END_INDEX = 2**64 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Column(msgspec.Struct):
    name: str
    type: str = ""
    value: Any = None


class Message(msgspec.Struct):
    action: str
    xid: int | None = None
    timestamp: str | None = None
    lsn: str | None = None
    nextlsn: str | None = None
    origin: int | None = None
    schema: str | None = None
    table: str | None = None
    columns: list[Column] = []
    identity: list[Column] = []


_decoder = msgspec.json.Decoder(Message, float_hook=decimal.Decimal)


def order_of(lsn: int, index: int) -> bytes:
    """Position order: commit LSN, then the change's index within its transaction."""
    return _ORDER.pack(lsn, index)


def timestamp_us(text: str) -> int:
    return (dt.datetime.fromisoformat(text) - _EPOCH) // dt.timedelta(microseconds=1)


class Wal2JsonDecoder:
    """Stateful: tracks the current transaction to number its changes and find its restart point."""

    def __init__(
        self,
        *,
        stream: str,
        node: str,
        tables: dict[str, TableInfo],
        start_lsn: int,
        echo_origin: Callable[[int], str | None] = lambda _ident: None,
        numbers_as_text: bool = True,
        catalog: Callable[[str], tuple[TableInfo, Mapping[str, AddedColumn]]] | None = None,
    ) -> None:
        """``echo_origin`` maps a replication origin id to the Worker-Sync writer it marks (None for the
        node's own users' changes and other tools' origins): those changes become echoes (``origin`` set).

        ``catalog`` reads a table's definition now (its TableInfo, and each column as an AddedColumn): called
        when a change's columns differ from what the stream has seen (actors.core.schema_changes). Without it,
        a change naming an unknown column is an error."""
        self.catalog = catalog
        self.watch = ColumnWatch(f"postgresql stream `{stream}`", {ns: t.columns for ns, t in tables.items()})
        #: Events to hand out before the change just decoded (columns added): see :meth:`take`.
        self.pending: list[ChangeEvent] = []
        self.stream = stream
        self.echo_origin = echo_origin
        #: False with wal2json before 2.6 (no ``numeric-data-types-as-string``): NaN and ±Infinity arrive
        #: as null, told apart from NULL only in NOT NULL columns (see TableInfo.special_numbers).
        self.numbers_as_text = numbers_as_text
        self.node = node
        self.tables = tables
        #: End LSN of the last complete transaction: where a restart must begin.
        self.restart_lsn = start_lsn
        self._commit_lsn = 0
        self._index = 0
        self._txid = ""
        self._commit_us = 0
        self._origin: str | None = None

    def decode(self, payload: bytes) -> ChangeEvent | TxnEnd | None:
        message = _decoder.decode(payload)
        action = message.action
        if action == "B":
            # PLUGIN_OPTIONS asks for them: include-lsn, include-timestamp.
            assert message.lsn is not None and message.timestamp is not None
            self._commit_lsn = parse_lsn(message.lsn)
            self._index = 0
            self._txid = str(message.xid)
            self._commit_us = timestamp_us(message.timestamp)
            self._origin = self.echo_origin(message.origin) if message.origin else None
            return None
        if action == "C":
            assert message.nextlsn is not None  # include-lsn
            self.restart_lsn = parse_lsn(message.nextlsn)
            position = Position(order_of(self._commit_lsn, _TXN_END_INDEX), format_lsn(self.restart_lsn))
            return TxnEnd(position, self._txid, self._commit_us)
        if action in ("I", "U", "D"):
            return self._change(message)
        if action == "T":
            return self._table_event(f"{message.schema}.{message.table}", Op.TRUNCATE)
        return None  # "M" (logical messages)

    def take(self) -> Iterator[ChangeEvent]:
        """The events decoded along with the last change that go before it (columns added), once."""
        pending, self.pending = self.pending, []
        return iter(pending)

    def _table_event(self, namespace: str, op: Op, added: AddedColumn | None = None) -> ChangeEvent:
        """A TRUNCATE or an added column (actors.core.events.Op), at its own place in the transaction."""
        self._index += 1
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
            position=Position(order_of(self._commit_lsn, self._index), format_lsn(self.restart_lsn)),
            origin=self._origin,
        )

    def _columns_changed(self, message: Message, namespace: str) -> None:
        """A change whose columns are not the ones seen so far (actors.core.schema_changes): columns added go out
        as events first (in ``pending``), the table is read again, values of columns gone since are left out."""
        if self.catalog is None:
            return
        catalog = self.catalog
        fresh: list[TableInfo] = []

        def current() -> Mapping[str, AddedColumn]:
            info, columns = catalog(namespace)
            fresh.append(info)
            return columns

        names = [c.name for c in message.columns]
        seen = self.watch.check(
            namespace,
            names,
            complete=message.action == "I",
            catalog=current,
            resync_hint=f"`worker-sync sync --manual --stream {self.stream}`",
        )
        if fresh:
            self.tables[namespace] = fresh[0]
        for added in seen.added:
            self.pending.append(self._table_event(namespace, Op.SCHEMA, added))
        if seen.gone:
            message.columns = [c for c in message.columns if c.name not in seen.gone]

    def _change(self, message: Message) -> ChangeEvent:
        namespace = f"{message.schema}.{message.table}"
        if message.action != "D" and not self.watch.knows(
            namespace, [c.name for c in message.columns], complete=message.action == "I"
        ):
            self._columns_changed(message, namespace)
        table = self.tables[namespace]
        self._index += 1
        after = None
        before = None
        if message.action != "D":
            after = table.row(message.columns)
            if not self.numbers_as_text and table.special_numbers:
                for name in table.special_numbers:
                    if name in after and after[name] is None:
                        after[name] = UNSENT_NUMBER
            if message.action == "U" and len(after) < len(table.columns):
                # wal2json leaves out TOASTed values that did not change.
                for name in table.columns:
                    after.setdefault(name, UNCHANGED)
        if message.identity:
            before = table.row(message.identity)
        source_row = after if after is not None else before
        assert source_row is not None, "a captured table has a primary key: a delete carries its identity"
        key = {name: source_row[name] for name in table.key}
        op = {"I": Op.INSERT, "U": Op.UPDATE, "D": Op.DELETE}[message.action]
        return ChangeEvent(
            node=self.node,
            engine="postgresql",
            namespace=namespace,
            op=op,
            key=key,
            before=before,
            after=after,
            commit_time_us=self._commit_us,
            txid=self._txid,
            position=Position(order_of(self._commit_lsn, self._index), format_lsn(self.restart_lsn)),
            origin=self._origin,
        )


def row_from_text(table: TableInfo, values: tuple[Any, ...]) -> dict[str, Any]:
    """A snapshot row (every column selected as text) converted like a streamed one."""
    return {name: table.convert(name, value) for name, value in zip(table.columns, values, strict=True)}
