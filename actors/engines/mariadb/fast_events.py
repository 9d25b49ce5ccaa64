"""The binlog's common events read straight from their packets, without mysql-replication's per-event work.

Why: draining a backlog, the capture thread spent about half its time inside mysql-replication building
event objects (``BinLogPacketWrapper``: a struct unpack of the header, an event class with a dozen
keyword arguments, ``RowsEvent``'s table-map lookups) for events of which we need a handful of fields.
``FastReader`` is a ``BinLogStreamReader`` whose ``fetchone`` reads each packet from the library's stream
connection itself and, for the events of every transaction, hands back small objects instead:

- WRITE/UPDATE/DELETE_ROWS (v1, as MariaDB writes them, and v2 without extra row info) of a table id the
  library knows (its ``table_map``) and that ``fast_tables`` lists (the owner's rows plan for it is ours:
  not captured, the echo marker, or decoded by ``rows_decoder.LeanRows``): ``RowsSlice``, the rows' bytes
  as offsets into the packet;
- XID: ``Xid``; MariaDB GTID: ``MariadbGtid``;
- TABLE_MAP of a table id the library already knows (as the library does with ``freeze_schema``), or of a
  table its ``only_schemas``/``only_tables`` filter out: skipped.

A rows event of a table id the library does not know is skipped, as the library skips it (its table map
was filtered out by ``only_schemas``/``only_tables``, or forgotten at a rotation). Every other event, and
any of the above the fast path is unsure of (an unexpected post-header length or size, checksums to
verify, v2 extra row info), goes through the library unchanged: it is handed the packet already read
(``_library``), so rotations, format descriptions, heartbeats, queries, GTID lists and the library's
table-map bookkeeping stay the library's. ``fast_events``/``library_events`` count both ways.

Layout (MySQL internals, "Binlog event header" and "Rows events"): a packet is an OK byte, the 19-byte
event header (timestamp, type, server id, event size, next position, flags), the post-header, the body,
and with ``binlog_checksum=CRC32`` (MariaDB's default) a 4-byte CRC32 that is not part of the body.
"""

from __future__ import annotations

import struct
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import BINLOG
from pymysqlreplication.event import MariadbGtidEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

#: OK byte, then the event header: timestamp, type, server id, event size, next position, flags.
_HEADER = struct.Struct("<xIBIIIH")
_HEADER_SIZE = _HEADER.size  # 20
_GTID = struct.Struct("<QIB")  # MariaDB GTID body: sequence number, domain id, flags
_XID = struct.Struct("<Q")
_CHECKSUM_SIZE = BINLOG.BINLOG_CHECKSUM_LEN
_LOST = (2013, 2006)  # the library's "reconnect" codes (it then calls our refusing connection factory)

#: Rows event type -> (the library's class, post-header length, v2).
_ROWS: dict[int, tuple[type, int, bool]] = {
    BINLOG.WRITE_ROWS_EVENT_V1: (WriteRowsEvent, 8, False),
    BINLOG.UPDATE_ROWS_EVENT_V1: (UpdateRowsEvent, 8, False),
    BINLOG.DELETE_ROWS_EVENT_V1: (DeleteRowsEvent, 8, False),
    BINLOG.WRITE_ROWS_EVENT_V2: (WriteRowsEvent, 10, True),
    BINLOG.UPDATE_ROWS_EVENT_V2: (UpdateRowsEvent, 10, True),
    BINLOG.DELETE_ROWS_EVENT_V2: (DeleteRowsEvent, 10, True),
}
_POST_HEADERS = {**{kind: size for kind, (_, size, _) in _ROWS.items()}, BINLOG.TABLE_MAP_EVENT: 8}
_TABLE_MAP = BINLOG.TABLE_MAP_EVENT
_XID_EVENT = BINLOG.XID_EVENT
_MARIADB_GTID = BINLOG.MARIADB_GTID_EVENT


class _Dropped(Exception):
    """The library read a packet handed to it without returning an event, and asked for the next one."""


_DROPPED = object()


class RowsSlice:
    """A rows event read by the fast path: the rows are ``data[at:end]``, not yet decoded."""

    __slots__ = ("at", "data", "end", "kind", "log_pos", "present", "present2", "table_id", "timestamp")

    def __init__(
        self,
        kind: type,
        table_id: int,
        timestamp: int,
        log_pos: int,
        data: bytes,
        at: int,
        end: int,
        present: bytes,
        present2: bytes,
    ) -> None:
        #: WriteRowsEvent, UpdateRowsEvent or DeleteRowsEvent: the library's class for the same event.
        self.kind = kind
        self.table_id = table_id
        self.timestamp = timestamp
        #: The position after the event (the library's ``event.packet.log_pos``).
        self.log_pos = log_pos
        self.data = data
        self.at = at
        self.end = end
        #: The columns-present bitmap(s) (the second: an update's after image; else the same).
        self.present = present
        self.present2 = present2


class Xid:
    """An XID event (InnoDB commit)."""

    __slots__ = ("log_pos", "timestamp", "xid")

    def __init__(self, timestamp: int, log_pos: int, xid: int) -> None:
        self.timestamp = timestamp
        self.log_pos = log_pos
        self.xid = xid


class MariadbGtid:
    """A MariaDB GTID event: ``gtid`` is "domain-server-sequence", as the library spells it."""

    __slots__ = ("flags", "gtid", "log_pos", "timestamp")

    def __init__(self, timestamp: int, log_pos: int, gtid: str, flags: int) -> None:
        self.timestamp = timestamp
        self.log_pos = log_pos
        self.gtid = gtid
        self.flags = flags


class FastReader(BinLogStreamReader):  # type: ignore[misc]  # the library is untyped
    """``BinLogStreamReader`` with the fast path above. Only with ``freeze_schema=True`` and without the
    options whose handling the fast path does not repeat (``end_log_pos``, ``skip_to_timestamp``, ``ignored_*``,
    ``verify_checksum``); otherwise every event is the library's."""

    #: The library's own state (name-mangled private attributes), read and kept as its fetchone does.
    _BinLogStreamReader__connected_stream: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Table ids whose rows events may be handed out as RowsSlice (the owner keeps it up to date).
        self.fast_tables: set[int] = set()
        self.fast_events = 0
        self.library_events = 0
        allowed = self._BinLogStreamReader__allowed_events
        # The fast path repeats the library's handling of these events only for the settings we use.
        self._fast = bool(
            kwargs.get("freeze_schema")
            and not kwargs.get("verify_checksum")
            and kwargs.get("end_log_pos") is None
            and kwargs.get("skip_to_timestamp") is None
            and kwargs.get("ignored_tables") is None
            and kwargs.get("ignored_schemas") is None
            and {WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, TableMapEvent, XidEvent, MariadbGtidEvent} <= allowed
        )
        self._pending: Any = None  # a packet read here, for the library to handle
        self._phl_seen: Any = None  # the post-header lengths _phl_ok was computed for
        self._phl_ok = True

    # --- the library's hooks -------------------------------------------------------------------------------

    def _library(self, packet: Any) -> Any:
        """The library's fetchone, handed ``packet`` (already read) as the next one: the event it makes of it,
        or _DROPPED when it drops it (the table map of a table it filters out, an event type we do not ask for)."""
        self.library_events += 1
        self._pending = packet
        connection = self._stream_connection
        connection._read_packet = self._pending_packet  # an instance attribute: shadows the method
        try:
            return super().fetchone()
        except _Dropped:  # it went on to read the next packet: that one is ours again
            return _DROPPED
        finally:
            self._pending = None
            connection.__dict__.pop("_read_packet", None)

    def _pending_packet(self, *args: Any, **kwargs: Any) -> Any:
        """The library's read: the packet handed to it; asked again, it is done with that one."""
        packet, self._pending = self._pending, None
        if packet is None:  # at the top of its loop, before anything of the next event: nothing to undo
            raise _Dropped
        return packet

    def _check_post_headers(self) -> None:
        """Whether the format description declares the post-header lengths the fast path reads (_phl_ok)."""
        lengths = self._phl_seen = self._BinLogStreamReader__post_header_lengths
        self._phl_ok = not lengths or all(
            not 0 <= kind - 1 < len(lengths) or lengths[kind - 1] == size for kind, size in _POST_HEADERS.items()
        )

    # --- reading -------------------------------------------------------------------------------------------

    def fetchone(self) -> Any:
        if not self._fast:
            self.library_events += 1
            return super().fetchone()
        while True:
            if not (self._BinLogStreamReader__connected_stream and self._BinLogStreamReader__connected_ctl):
                self.library_events += 1
                return super().fetchone()  # connects (or refuses to reconnect), then reads one event
            try:
                packet = self._stream_connection._read_packet()
            except pymysql.OperationalError as error:
                if error.args and error.args[0] in _LOST:  # as the library does: it then tries to reconnect
                    self._stream_connection.close()
                    self._BinLogStreamReader__connected_stream = False
                    continue
                raise
            event = self._event(packet)
            if event is not _DROPPED:
                return event

    def _event(self, packet: Any) -> Any:
        """The event of one packet, by the fast path or the library's; _DROPPED: none (read the next)."""
        data = packet._data
        if self._BinLogStreamReader__post_header_lengths is not self._phl_seen:
            self._check_post_headers()
        if data[0] or len(data) < _HEADER_SIZE or not self._phl_ok:
            return self._library(packet)  # EOF, an error, or post-headers we do not read
        timestamp, event_type, server_id, event_size, log_pos, _ = _HEADER.unpack_from(data)
        if event_size != len(data) - 1:
            return self._library(packet)
        if event_type == _TABLE_MAP:  # one per statement: as many as rows events
            # Dropped as the library drops it: a known table id (frozen schema), or a table it filters out.
            table_id = int.from_bytes(data[_HEADER_SIZE : _HEADER_SIZE + 6], "little")
            if table_id not in self.table_map and not self._filtered_out(data, len(data)):
                return self._library(packet)  # a table it keeps: the library reads the table map
            found = _DROPPED
        else:
            end = len(data) - _CHECKSUM_SIZE if self._BinLogStreamReader__use_checksum else len(data)
            kind = _ROWS.get(event_type)
            if kind is not None:
                # _DROPPED for a table the library filtered out: skipped, as the library does.
                found = self._rows(data, kind, timestamp, log_pos, end)
            elif event_type == _XID_EVENT and end - _HEADER_SIZE == _XID.size:
                found = Xid(timestamp, log_pos, _XID.unpack_from(data, _HEADER_SIZE)[0])
            elif event_type == _MARIADB_GTID and end - _HEADER_SIZE >= _GTID.size:
                sequence, domain, flags = _GTID.unpack_from(data, _HEADER_SIZE)
                found = MariadbGtid(timestamp, log_pos, f"{domain}-{server_id}-{sequence}", flags)
            else:
                found = None
            if found is None:
                return self._library(packet)
        # The library's bookkeeping for these events: the position of the next one.
        self.fast_events += 1
        if log_pos:
            self.log_pos = log_pos
        return found

    def _filtered_out(self, data: bytes, end: int) -> bool:
        """Whether the library drops this table map by ``only_schemas``/``only_tables`` (it reads the names
        after the post-header: a length byte, the schema, a NUL, a length byte, the table)."""
        at = _HEADER_SIZE + _POST_HEADERS[_TABLE_MAP]
        if at >= end:
            return False
        schema_end = at + 1 + data[at]
        if schema_end + 1 >= end:
            return False
        table_end = schema_end + 2 + data[schema_end + 1]
        if table_end > end:
            return False
        try:
            schema = data[at + 1 : schema_end].decode()
            table = data[schema_end + 2 : table_end].decode()
        except UnicodeDecodeError:  # the library would fail on it: let it
            return False
        only_tables, only_schemas = self._BinLogStreamReader__only_tables, self._BinLogStreamReader__only_schemas
        return (only_tables is not None and table not in only_tables) or (
            only_schemas is not None and schema not in only_schemas
        )

    def _rows(self, data: bytes, kind: tuple[type, int, bool], timestamp: int, log_pos: int, end: int) -> Any:
        """A RowsSlice; _DROPPED: a table the library does not know (skip it); None: leave it to the library."""
        at = _HEADER_SIZE
        table_id = int.from_bytes(data[at : at + 6], "little")
        if table_id not in self.table_map:
            return _DROPPED
        if table_id not in self.fast_tables:
            return None
        cls, post_header, v2 = kind
        if v2 and int.from_bytes(data[at + 8 : at + 10], "little") != 2:  # extra row info: the library's
            return None
        at += post_header
        if at >= end:
            return None
        count = data[at]
        at += 1
        if count >= 251:  # a length-coded column count of 251+: not a table we decode (never in practice)
            return None
        size = (count + 7) >> 3
        present = data[at : at + size]
        at += size
        present2 = present
        if cls is UpdateRowsEvent:
            present2 = data[at : at + size]
            at += size
        if at > end:
            return None
        return RowsSlice(cls, table_id, timestamp, log_pos, data, at, end, present, present2)
