"""The binlog fast path (actors/engines/mariadb/fast_events.py) hands out exactly what mysql-replication's event
objects give: three sources read the same mixed workload, through the library alone (``lean_rows=False``, the
reference), with lean rows but the library's events (``fast_events=False``), and with the fast path; every
change and transaction end (positions, resume points, GTIDs, txids, commit times, rows) must be equal, and the
fast path must have been taken."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from pymysqlreplication.constants import BINLOG
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from actors.core.batches import TxnEnd
from actors.core.events import ChangeEvent, Op
from actors.engines.mariadb import MariaDbSource, fast_events
from actors.engines.mariadb.fast_events import _DROPPED, FastReader, MariadbGtid, RowsSlice, Xid
from actors.engines.mariadb.rows_decoder import LeanRows
from actors.harness import Endpoint
from tests.engines.test_mariadb_source import Tap, capture_params, run

_VARIANTS = {"library": {"lean_rows": False}, "lean": {"fast_events": False}, "fast": {}}


def _workload(admin: Any) -> int:
    """Writes the mixed workload; returns how many transactions (TxnEnds) it makes."""
    txns = 0
    with admin.cursor() as cur:

        def commit() -> None:
            nonlocal txns
            admin.commit()
            txns += 1

        admin.autocommit(False)
        key = 0
        for size in (1, 10, 100):  # one statement per row
            for _ in range(3):
                for _ in range(size):
                    key += 1
                    cur.execute(
                        "INSERT INTO t (id, v, n, d, at) VALUES (%s, %s, %s, %s, '2026-01-02 03:04:05.123456')",
                        (key, f"v{key}" * (key % 5), key % 7, key / 100),
                    )
                commit()
        cur.execute("INSERT INTO t (id, v, n, d) SELECT 1000 + seq, md5(seq), seq, seq / 7 FROM seq_1_to_3000")
        commit()  # one statement, several rows events
        cur.execute("UPDATE t SET n = n + 1, v = NULL WHERE id % 3 = 0")
        cur.execute("INSERT INTO other VALUES (1)")  # a table nobody captures, in the same transaction
        cur.execute("DELETE FROM t WHERE id % 10 = 0")
        commit()
        cur.execute("INSERT INTO other VALUES (2)")
        commit()  # only the uncaptured table: a TxnEnd, no event
        cur.execute("INSERT INTO geo VALUES (1, POINT(1, 2)), (2, POINT(3, 4))")  # a type the library decodes
        cur.execute("UPDATE t SET d = -d WHERE id BETWEEN 1000 AND 1200")
        cur.execute("UPDATE geo SET p = POINT(5, 6) WHERE id = 2")
        commit()
        cur.execute("FLUSH BINARY LOGS")  # a rotation: the library forgets its table ids
        for _ in range(5):
            key += 1
            cur.execute("INSERT INTO t (id, v) VALUES (%s, 'after rotation')", (key,))
            cur.execute("UPDATE t SET n = -1 WHERE id = %s", (key - 1,))
            commit()
        cur.execute("ALTER TABLE t ADD COLUMN extra VARCHAR(8) DEFAULT 'x'")  # DDL: its own transaction
        txns += 1
        cur.execute("UPDATE t SET extra = 'y' WHERE id < 20")
        cur.execute("DELETE FROM geo WHERE id = 1")
        commit()
        cur.execute("TRUNCATE TABLE geo")
        txns += 1
        cur.execute("INSERT INTO geo VALUES (3, POINT(7, 8))")
        cur.execute("INSERT INTO t (id) VALUES (999999)")
        commit()
    admin.autocommit(True)
    return txns


def _after(tap: Tap, start: TxnEnd) -> list[ChangeEvent | TxnEnd]:
    """What the tap received after the snapshot's end (``start``)."""
    items = list(tap.items)
    return items[items.index(start) + 1 :]


@pytest.mark.parametrize("checksum", ["CRC32", "NONE"])  # MariaDB's default; without, no 4-byte CRC32 ends events
def test_the_fast_path_equals_the_librarys_events(
    fresh_mariadb_db: Endpoint, monkeypatch: pytest.MonkeyPatch, checksum: str
) -> None:
    db = fresh_mariadb_db
    readers: list[FastReader] = []
    construct = FastReader.__init__

    def recorded(self: FastReader, *args: Any, **kwargs: Any) -> None:
        construct(self, *args, **kwargs)
        readers.append(self)

    monkeypatch.setattr(FastReader, "__init__", recorded)
    sliced = 0  # rows events the lean decoder took from a RowsSlice
    images = LeanRows.images

    def counted(self: LeanRows, event: Any, *, update: bool) -> list[Any]:
        nonlocal sliced
        sliced += type(event) is RowsSlice
        return images(self, event, update=update)

    monkeypatch.setattr(LeanRows, "images", counted)

    admin = db.connect("admin")
    with admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.binlog_checksum")
        saved = cur.fetchone()[0]
    try:
        run(admin, f"SET GLOBAL binlog_checksum = '{checksum}'")  # rotates the binlog
        _compare(db, admin, readers, lambda: sliced)
        assert readers[0]._BinLogStreamReader__use_checksum is (checksum == "CRC32")
    finally:
        run(admin, f"SET GLOBAL binlog_checksum = '{saved}'")
        admin.close()


def _compare(db: Endpoint, admin: Any, readers: list[FastReader], sliced: Callable[[], int]) -> None:
    run(
        admin,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(200), n INT, d DECIMAL(12,4), at DATETIME(6))",
        "CREATE TABLE geo (id INT PRIMARY KEY, p POINT)",
        "CREATE TABLE other (id INT PRIMARY KEY)",
    )
    taps = {
        name: Tap(
            MariaDbSource(
                "maria", capture_params(db), [f"{db.database}.t", f"{db.database}.geo"], server_id=9200 + i, **options
            )
        )
        for i, (name, options) in enumerate(_VARIANTS.items())
    }
    try:
        starts = {name: tap.wait_streaming() for name, tap in taps.items()}
        txns = _workload(admin)
        streamed = {name: lambda name=name: _after(taps[name], starts[name]) for name in taps}
        for name, tap in taps.items():
            tap.wait(
                lambda name=name: sum(isinstance(i, TxnEnd) for i in streamed[name]()) >= txns,
                what=f"{txns} transaction ends",
                timeout_s=60,
            )
    finally:
        for tap in taps.values():
            tap.close()

    reference = streamed["library"]()
    changes = [i for i in reference if isinstance(i, ChangeEvent)]
    ends = [i for i in reference if isinstance(i, TxnEnd)]
    assert len(ends) == txns
    ops = {op: sum(e.op is op for e in changes) for op in Op}
    assert ops[Op.INSERT] == 333 + 3000 + 2 + 5 + 2 and ops[Op.TRUNCATE] == 1 and ops[Op.SCHEMA] == 1
    assert ops[Op.UPDATE] > 1000 and ops[Op.DELETE] > 300
    for name in ("lean", "fast"):
        items = streamed[name]()
        assert len(items) == len(reference), name
        for ours, theirs in zip(items, reference, strict=True):
            assert ours == theirs, (name, ours, theirs)
    # The fast path was taken (only by the fast source), for most events, and rows came through it.
    assert len(readers) == 1
    reader = readers[0]
    assert reader.fast_events > 3 * reader.library_events, (reader.fast_events, reader.library_events)
    assert sliced() > 50


def test_the_library_keeps_events_the_fast_path_is_unsure_of() -> None:
    """Post-header lengths other than the ones the fast path reads send every event to the library."""
    reader = FastReader.__new__(FastReader)
    reader._BinLogStreamReader__post_header_lengths = [0] * 40
    reader._check_post_headers()
    assert not reader._phl_ok
    lengths = [0] * 40
    for kind, size in fast_events._POST_HEADERS.items():
        lengths[kind - 1] = size
    reader._BinLogStreamReader__post_header_lengths = lengths
    reader._check_post_headers()
    assert reader._phl_ok
    reader._BinLogStreamReader__post_header_lengths = None  # before a format description: the defaults
    reader._check_post_headers()
    assert reader._phl_ok


class _Packet:
    def __init__(self, data: bytes) -> None:
        self._data = data


def _packet(event_type: int, body: bytes, *, checksum: bool, server_id: int = 7, log_pos: int = 4242) -> _Packet:
    """An OK byte, the 19-byte header, ``body`` and (with ``checksum``) 4 CRC32 bytes (not checked)."""
    size = 19 + len(body) + (4 if checksum else 0)
    header = struct.pack("<xIBIIIH", 1_700_000_000, event_type, server_id, size, log_pos, 0)
    return _Packet(header + body + (b"\xde\xad\xbe\xef" if checksum else b""))


def _reader(checksum: bool) -> tuple[FastReader, list[Any]]:
    reader = FastReader.__new__(FastReader)
    reader.table_map = {5: object(), 6: object()}
    reader.fast_tables = {5}
    reader.fast_events = reader.library_events = 0
    reader.log_pos = 0
    reader._phl_seen = reader._BinLogStreamReader__post_header_lengths = None
    reader._phl_ok = True
    reader._BinLogStreamReader__use_checksum = checksum
    reader._BinLogStreamReader__only_schemas = ["app"]
    reader._BinLogStreamReader__only_tables = ["t"]
    handed: list[Any] = []
    reader._library = lambda packet: handed.append(packet) or "library"  # type: ignore[method-assign]
    return reader, handed


@pytest.mark.parametrize("checksum", [True, False])
def test_the_fast_path_reads_the_byte_layout_and_leaves_the_rest_to_the_library(checksum: bool) -> None:
    reader, handed = _reader(checksum)
    table = (5).to_bytes(6, "little")
    rows = b"\x00\x2a\x00\x00\x00" * 2  # two rows of one INT column: null bitmap, value
    write = reader._event(
        _packet(BINLOG.WRITE_ROWS_EVENT_V1, table + b"\x01\x00" + b"\x01\x01" + rows, checksum=checksum)
    )
    assert isinstance(write, RowsSlice) and write.kind is WriteRowsEvent
    assert (write.table_id, write.log_pos, write.timestamp, write.present, write.present2) == (
        5,
        4242,
        1_700_000_000,
        b"\x01",
        b"\x01",
    )
    assert write.data[write.at : write.end] == rows
    assert reader.log_pos == 4242
    update = reader._event(
        _packet(BINLOG.UPDATE_ROWS_EVENT_V2, table + b"\x01\x00\x02\x00" + b"\x02\x03\x01" + rows, checksum=checksum)
    )
    assert isinstance(update, RowsSlice) and update.kind is UpdateRowsEvent
    assert (update.present, update.present2, update.data[update.at : update.end]) == (b"\x03", b"\x01", rows)
    delete = reader._event(_packet(BINLOG.DELETE_ROWS_EVENT_V1, table + b"\x00\x00\x01\x01" + rows, checksum=checksum))
    assert isinstance(delete, RowsSlice) and delete.kind is DeleteRowsEvent
    xid = reader._event(_packet(BINLOG.XID_EVENT, struct.pack("<Q", 99), checksum=checksum))
    assert isinstance(xid, Xid) and (xid.xid, xid.log_pos) == (99, 4242)
    gtid = reader._event(
        _packet(BINLOG.MARIADB_GTID_EVENT, struct.pack("<QIB", 123, 0, 1) + b"\0" * 6, checksum=checksum, server_id=3)
    )
    assert isinstance(gtid, MariadbGtid) and (gtid.gtid, gtid.flags, gtid.timestamp) == ("0-3-123", 1, 1_700_000_000)
    # Skipped as the library skips them: table maps of table ids it knows (frozen schema) or of tables it filters
    # out, rows of table ids it does not know (their table maps were filtered out).
    assert reader._event(_packet(BINLOG.TABLE_MAP_EVENT, table + b"\x01\x00" + b"rest", checksum=checksum)) is _DROPPED
    unknown = (8).to_bytes(6, "little")
    for schema, name in ((b"app", b"other"), (b"else", b"t")):
        table_map = (
            unknown + b"\x01\x00" + bytes([len(schema)]) + schema + b"\0" + bytes([len(name)]) + name + b"\0\x01\x03"
        )
        assert reader._event(_packet(BINLOG.TABLE_MAP_EVENT, table_map, checksum=checksum)) is _DROPPED
    assert (
        reader._event(_packet(BINLOG.WRITE_ROWS_EVENT_V1, unknown + b"\x01\x00\x01\x01", checksum=checksum)) is _DROPPED
    )
    assert not handed and reader.fast_events == 9
    # The library's: a new table map, rows of a table it decodes, v2 extra row info, a size that does not add
    # up, any other event.
    library = [
        _packet(BINLOG.TABLE_MAP_EVENT, unknown + b"\x01\x00\x03app\0\x01t\0\x01\x03", checksum=checksum),
        _packet(BINLOG.TABLE_MAP_EVENT, unknown + b"\x01\x00" + b"rest", checksum=checksum),
        _packet(BINLOG.WRITE_ROWS_EVENT_V1, (6).to_bytes(6, "little") + b"\x01\x00\x01\x01" + rows, checksum=checksum),
        _packet(BINLOG.WRITE_ROWS_EVENT_V2, table + b"\x01\x00\x05\x00\x01\x02\x03\x01\x01" + rows, checksum=checksum),
        _Packet(_packet(BINLOG.XID_EVENT, struct.pack("<Q", 1), checksum=checksum)._data + b"\0"),
        _packet(BINLOG.QUERY_EVENT, b"\0" * 30, checksum=checksum),
    ]
    for packet in library:
        assert reader._event(packet) == "library"
    assert handed == library and reader.fast_events == 9
