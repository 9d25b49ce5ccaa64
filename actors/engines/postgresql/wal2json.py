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
from collections.abc import Callable
from typing import Any

import msgspec

from actors.core.batches import TxnEnd
from actors.core.events import UNCHANGED, UNSENT_NUMBER, ChangeEvent, Op
from actors.engines.postgresql.catalog import TableInfo
from actors.engines.postgresql.decoding import Catalog, TransactionState
from actors.engines.postgresql.lsn import parse_lsn

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


def timestamp_us(text: str) -> int:
    return (dt.datetime.fromisoformat(text) - _EPOCH) // dt.timedelta(microseconds=1)


class Wal2JsonDecoder(TransactionState):
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
        catalog: Catalog | None = None,
    ) -> None:
        """``echo_origin`` maps a replication origin id to the Worker-Sync writer it marks (None for the
        node's own users' changes and other tools' origins): those changes become echoes (``origin`` set).
        ``catalog``: see TransactionState."""
        super().__init__(stream=stream, node=node, tables=tables, start_lsn=start_lsn, catalog=catalog)
        self.echo_origin = echo_origin
        #: False with wal2json before 2.6 (no ``numeric-data-types-as-string``): NaN and ±Infinity arrive
        #: as null, told apart from NULL only in NOT NULL columns (see TableInfo.special_numbers).
        self.numbers_as_text = numbers_as_text

    def decode(self, payload: bytes) -> ChangeEvent | TxnEnd | None:
        message = _decoder.decode(payload)
        action = message.action
        if action == "B":
            # PLUGIN_OPTIONS asks for them: include-lsn, include-timestamp.
            assert message.lsn is not None and message.timestamp is not None
            origin = self.echo_origin(message.origin) if message.origin else None
            self._begin(parse_lsn(message.lsn), str(message.xid), timestamp_us(message.timestamp), origin)
            return None
        if action == "C":
            assert message.nextlsn is not None  # include-lsn
            return TxnEnd(self._commit(parse_lsn(message.nextlsn)), self._txid, self._commit_us)
        if action in ("I", "U", "D"):
            return self._change(message)
        if action == "T":
            return self._table_event(f"{message.schema}.{message.table}", Op.TRUNCATE)
        return None  # "M" (logical messages)

    def _change(self, message: Message) -> ChangeEvent:
        namespace = f"{message.schema}.{message.table}"
        if message.action != "D":
            names = [c.name for c in message.columns]
            complete = message.action == "I"
            if not self.watch.knows(namespace, names, complete=complete):
                gone = self._columns_changed(namespace, names, complete=complete)
                if gone:  # dropped since this change was made (a replay): nowhere to write them
                    message.columns = [c for c in message.columns if c.name not in gone]
        table = self.tables[namespace]
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
            position=self._next_position(),
            origin=self._origin,
        )
