"""MariaDbSource against the real MariaDB from the harness: each test has its own database and sources."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import random
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.core.batches import Batch, TxnEnd
from actors.core.encoding import decode_event, encode_event
from actors.core.errors import OffsetLost, SourceMisconfigured
from actors.core.events import ChangeEvent, Op, Position
from actors.engines.mariadb import ConnectParams, MariaDbSource
from actors.engines.mariadb.positions import BinlogPoint, order_prefix, split_order
from actors.engines.pump import BatchPump
from actors.harness import Endpoint
from config.model import Tls
from tests.waiting import wait_until

# Each binlog reader announces a replica id; the server drops an older reader with the same id.
_server_ids = itertools.count(random.randrange(10_000, 1_000_000_000))


class Tap:
    """Iterates ``source.changes()`` in a thread (as the pump does) but keeps every item, TxnEnds too."""

    def __init__(self, source: MariaDbSource, resume_after: Position | None = None) -> None:
        self.source = source
        self.items: list[ChangeEvent | TxnEnd] = []
        self.idle_signals = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(resume_after,), daemon=True)
        self._thread.start()

    def _run(self, resume_after: Position | None) -> None:
        try:
            for item in self.source.changes(resume_after, self.stop):
                if item is None:  # "nothing more for now"
                    self.idle_signals += 1
                else:
                    self.items.append(item)
        except BaseException as exc:  # the test thread re-raises it
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, check: Callable[[], bool], *, timeout_s: float = 20.0, what: str) -> None:
        def ready() -> bool:
            if self.error is not None:
                raise self.error
            return check()

        wait_until(ready, timeout_s=timeout_s, what=what)

    def events(self) -> list[ChangeEvent]:
        return [i for i in self.items if isinstance(i, ChangeEvent)]

    def ends(self) -> list[TxnEnd]:
        return [i for i in self.items if isinstance(i, TxnEnd)]

    def wait_streaming(self) -> TxnEnd:
        """Until the snapshot's TxnEnd (the first resumable one) arrived."""
        self.wait(lambda: any(e.position.resume for e in self.ends()), what="the end of the snapshot")
        return next(e for e in self.ends() if e.position.resume)

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)
        self.source.close()


@pytest.fixture
def db(fresh_mariadb_db: Endpoint) -> Endpoint:
    return fresh_mariadb_db


@pytest.fixture
def admin(db: Endpoint) -> Iterator[Any]:
    conn = db.connect("admin")
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
    yield conn
    conn.close()


@pytest.fixture
def sources(db: Endpoint) -> Iterator[Callable[..., MariaDbSource]]:
    """Makes sources on the test's database (as the capture user); closes them all afterwards."""
    made: list[MariaDbSource] = []

    def make(tables: list[str], *, params: ConnectParams | None = None, **options: Any) -> MariaDbSource:
        source = MariaDbSource(
            "maria",
            params or capture_params(db),
            [f"{db.database}.{t}" for t in tables],
            server_id=next(_server_ids),
            **options,
        )
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


@pytest.fixture
def taps() -> Iterator[Callable[..., Tap]]:
    made: list[Tap] = []

    def make(source: MariaDbSource, resume_after: Position | None = None) -> Tap:
        tap = Tap(source, resume_after)
        made.append(tap)
        return tap

    yield make
    for tap in made:
        tap.close()


def capture_params(db: Endpoint, **overrides: Any) -> ConnectParams:
    return ConnectParams(db.host, db.port, db.capture.user, db.capture.password, **overrides)


def run(conn: Any, *statements: str | tuple[str, Any]) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            if isinstance(statement, tuple):
                cur.execute(*statement)
            else:
                cur.execute(statement)


def master_point(conn: Any) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    return int(file.rpartition(".")[2]), int(pos)


def summary(event: ChangeEvent) -> tuple[Any, ...]:
    return event.op, event.key, event.before, event.after


def assert_strictly_increasing(items: list[Any]) -> None:
    orders = [i.position.order for i in items]
    assert all(a < b for a, b in itertools.pairwise(orders)), "positions are not strictly increasing"


# --- streaming ----------------------------------------------------------------------------------------------


def test_inserts_updates_deletes_arrive_once_in_order_with_boundaries(
    db: Endpoint, admin: Any, sources: Any, taps: Any
) -> None:
    run(admin, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), n INT)", "CREATE TABLE other (id INT PRIMARY KEY)")
    tap = taps(sources(["t"]))
    snapshot_end = tap.wait_streaming()
    started_s = time.time()
    # 1: a multi-row insert (autocommit).
    run(admin, "INSERT INTO t VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30)")
    # 2: a multi-statement transaction: insert, update, key change, delete (and a table nobody captures).
    run(
        admin,
        "BEGIN",
        "INSERT INTO t VALUES (4, 'd', 40)",
        "UPDATE t SET n = n + 1 WHERE id <= 2",
        "INSERT INTO other VALUES (1)",
        "UPDATE t SET id = 30 WHERE id = 3",
        "DELETE FROM t WHERE id = 1",
        "COMMIT",
    )
    # 3: only the uncaptured table: a TxnEnd and no event.  4: a DDL, then rows with the new column.
    run(
        admin,
        "INSERT INTO other VALUES (2)",
        "ALTER TABLE t ADD COLUMN extra VARCHAR(5) DEFAULT 'x'",
        "UPDATE t SET extra = 'y' WHERE id = 4",
    )
    tap.wait(lambda: len(tap.ends()) >= 6, what="six transaction ends")

    events = tap.events()
    assert [summary(e) for e in events] == [
        (Op.INSERT, {"id": 1}, None, {"id": 1, "v": "a", "n": 10}),
        (Op.INSERT, {"id": 2}, None, {"id": 2, "v": "b", "n": 20}),
        (Op.INSERT, {"id": 3}, None, {"id": 3, "v": "c", "n": 30}),
        (Op.INSERT, {"id": 4}, None, {"id": 4, "v": "d", "n": 40}),
        (Op.UPDATE, {"id": 1}, {"id": 1, "v": "a", "n": 10}, {"id": 1, "v": "a", "n": 11}),
        (Op.UPDATE, {"id": 2}, {"id": 2, "v": "b", "n": 20}, {"id": 2, "v": "b", "n": 21}),
        (Op.UPDATE, {"id": 30}, {"id": 3, "v": "c", "n": 30}, {"id": 30, "v": "c", "n": 30}),
        (Op.DELETE, {"id": 1}, {"id": 1, "v": "a", "n": 11}, None),
        (Op.SCHEMA, {}, None, events[8].after),  # the added column, before the first row that has it
        (Op.UPDATE, {"id": 4}, {"id": 4, "v": "d", "n": 40, "extra": "x"}, {"id": 4, "v": "d", "n": 40, "extra": "y"}),
    ]
    added = events[8].added_column
    assert added is not None
    assert (added.name, added.type_text, added.type.family, added.default) == ("extra", "varchar(5)", "text", "'x'")
    assert all(e.node == "maria" and e.engine == "mariadb" and e.namespace == f"{db.database}.t" for e in events)

    # Boundaries: snapshot end, then one TxnEnd per transaction (also the uncaptured one and the DDL).
    items = tap.items[tap.items.index(snapshot_end) + 1 :]
    shape = ["E" if isinstance(i, ChangeEvent) else "T" for i in items]
    assert "".join(shape) == "EEET" + "EEEEE" + "T" + "T" + "T" + "EET"
    assert_strictly_increasing(tap.items)
    # Every event of a transaction has its TxnEnd's txid (the GTID) and commit time; resume points are the
    # previous transaction's end.
    previous_end = snapshot_end
    open_events: list[ChangeEvent] = []
    for item in items:
        if isinstance(item, ChangeEvent):
            open_events.append(item)
            continue
        assert item.txid.count("-") == 2 and all(p.isdigit() for p in item.txid.split("-"))  # d-s-n
        assert abs(item.commit_time_us / 1e6 - started_s) < 30
        point = BinlogPoint.decode(item.position.resume)
        assert split_order(item.position.order)[1] == point.pos
        assert item.txid in point.gtid.split(",")  # the GTID position includes this transaction
        for event in open_events:
            assert (event.txid, event.commit_time_us) == (item.txid, item.commit_time_us)
            assert event.position.resume == previous_end.position.resume
        open_events, previous_end = [], item
    for event in events:
        assert decode_event(encode_event(event)) == event


def test_twenty_thousand_row_transaction_arrives_once_in_order_by_file_and_by_gtid(
    db: Endpoint, admin: Any, sources: Any, taps: Any
) -> None:
    """FACTS.md: non-blocking reads with MariaDB GTIDs loop forever after >= 5,000 rows. We read blocking."""
    rows = 20_000
    run(admin, "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT)")
    by_file = taps(sources(["big"]))
    snapshot_end = by_file.wait_streaming()
    run(admin, "BEGIN")
    with admin.cursor() as cur:
        for start in range(0, rows, 5_000):
            cur.executemany(
                "INSERT INTO big VALUES (%s, %s, %s)", [(i, f"row {i}", i * 7) for i in range(start, start + 5_000)]
            )
    run(admin, "COMMIT")
    by_gtid = taps(sources(["big"], resume_via="gtid"), snapshot_end.position)
    for tap, route in ((by_file, "file:pos"), (by_gtid, "GTID")):
        tap.wait(
            lambda tap=tap: len(tap.ends()) >= (2 if tap is by_file else 1),
            timeout_s=30,
            what=f"the 20,000-row transaction by {route}",
        )
        events = tap.events()
        assert len(events) == rows
        assert [e.key["id"] for e in events] == list(range(rows))
        assert all(
            e.op is Op.INSERT and e.after == {"id": e.key["id"], "v": f"row {e.key['id']}", "n": e.key["id"] * 7}
            for e in events
        )
        assert len({e.txid for e in events}) == 1
        assert_strictly_increasing(tap.items)
        assert isinstance(tap.items[-1], TxnEnd) and tap.items[-1].txid == events[0].txid


def test_resume_from_a_committed_position_inside_a_transaction(db: Endpoint, admin: Any, sources: Any) -> None:
    """Through the pump, as capture runs: a restart re-reads the open transaction; nothing twice, nothing lost."""
    run(admin, "CREATE TABLE r (id INT PRIMARY KEY, v INT)")
    pump = BatchPump(sources(["r"]), resume_after=None)
    delivered: list[ChangeEvent] = []
    committed: Position | None = None
    try:
        wait_until(
            lambda: (b := pump.read(100, 0.1)) is not None and bool(b.upto and b.upto.resume),
            timeout_s=20,
            what="the end of the snapshot",
        )
        run(admin, "BEGIN", "INSERT INTO r VALUES (0, 0), (1, 1)", "UPDATE r SET v = 10 WHERE id = 1", "COMMIT")
        with admin.cursor() as cur:
            cur.execute("BEGIN")
            cur.executemany("INSERT INTO r VALUES (%s, %s)", [(i, i) for i in range(100, 1_100)])
            cur.execute("COMMIT")

        def read_into_second_transaction() -> bool:
            nonlocal committed
            batch: Batch | None = pump.read(100, 0.1)
            if batch is not None:
                delivered.extend(batch.events)
                committed = batch.upto
            return any(e.key["id"] >= 100 for e in delivered)

        wait_until(read_into_second_transaction, timeout_s=20, what="events of the 1,000-row transaction")
    finally:
        pump.close()
    assert committed is not None and committed == delivered[-1].position  # an event, mid-transaction
    assert delivered[-1].key["id"] < 1_099
    first_txn_end = BinlogPoint.decode(committed.resume)  # the restart point: end of the first transaction

    run(admin, "UPDATE r SET v = -1 WHERE id IN (0, 1)")
    pump = BatchPump(sources(["r"]), resume_after=committed)
    resumed: list[ChangeEvent] = []
    try:

        def read_rest() -> bool:
            batch = pump.read(500, 0.1)
            if batch is not None:
                resumed.extend(batch.events)
            return len(resumed) >= 1_099 - delivered[-1].key["id"] + 2

        wait_until(read_rest, timeout_s=20, what="the rest of the stream after the restart")
        assert pump.read(500, 0.6) is None  # and nothing more
    finally:
        pump.close()
    assert [e.key["id"] for e in delivered + resumed] == [0, 1, 1, *range(100, 1_100), 0, 1]
    assert_strictly_increasing(delivered + resumed)
    assert all(e.position.resume == committed.resume for e in resumed[:-2])
    assert first_txn_end.pos < split_order(resumed[0].position.order)[1]


def test_stop_and_close_end_the_stream_promptly(db: Endpoint, admin: Any, sources: Any, taps: Any) -> None:
    run(admin, "CREATE TABLE q (id INT PRIMARY KEY)")
    stopped = taps(sources(["q"]))
    stopped.wait_streaming()
    closed = taps(sources(["q"]))
    closed.wait_streaming()
    began = time.monotonic()
    stopped.stop.set()  # seen on the next heartbeat (0.5 s)
    threading.Thread(target=closed.source.close).start()  # from another thread, as an actor shutting down
    wait_until(lambda: not stopped.running and not closed.running, timeout_s=5, what="both streams to end")
    assert time.monotonic() - began < 3
    assert stopped.error is None and closed.error is None
    assert stopped.idle_signals > 0  # heartbeats: "nothing more for now", so a consumer can check its stop flag


def test_a_lone_change_is_handed_on_at_once_not_at_the_next_heartbeat(admin: Any, sources: Any) -> None:
    """The source says "nothing more for now" when it has caught up, so the pump does not sit on a
    partial chunk until the next heartbeat (0.5 s: the whole lag budget)."""
    run(admin, "CREATE TABLE lag (id INT PRIMARY KEY)")
    pump = BatchPump(sources(["lag"]), resume_after=None)
    try:
        wait_until(
            lambda: (b := pump.read(100, 0.1)) is not None and bool(b.upto and b.upto.resume),
            timeout_s=20,
            what="the end of the snapshot",
        )
        lags_s = []
        for i in range(5):
            run(admin, ("INSERT INTO lag VALUES (%s)", (i,)))
            committed = time.monotonic()
            batch = pump.read(100, 2.0)
            lags_s.append(time.monotonic() - committed)
            assert batch is not None and [e.key for e in batch.events] == [{"id": i}]
    finally:
        pump.close()
    assert sorted(lags_s)[2] < 0.2, lags_s


# --- values ---------------------------------------------------------------------------------------------------


def f32(value: float) -> float:
    """What a FLOAT column stores: the nearest binary32, widened exactly."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


UTC = dt.UTC
LONG_TEXT = "long text é " * 6_000
LONG_BLOB = bytes(i % 256 for i in range(70_000))
JSON_DOC = {"k": [1, 2.5, "x", None, True], "n": {"z": 1}, "u": "é"}

# column, SQL type, then per row (value to insert, expected Python value); row 3 is all NULL.
TYPED_COLUMNS: list[tuple[str, str, list[tuple[Any, Any]]]] = [
    ("ti", "TINYINT", [(127, 127), (-128, -128), (0, 0)]),
    ("tu", "TINYINT UNSIGNED", [(255, 255), (0, 0), (1, 1)]),
    ("si", "SMALLINT", [(32767, 32767), (-32768, -32768), (0, 0)]),
    ("su", "SMALLINT UNSIGNED", [(65535, 65535), (0, 0), (1, 1)]),
    ("mi", "MEDIUMINT", [(8388607, 8388607), (-8388608, -8388608), (0, 0)]),
    ("mu", "MEDIUMINT UNSIGNED", [(16777215, 16777215), (0, 0), (1, 1)]),
    ("i", "INT", [(2147483647, 2147483647), (-2147483648, -2147483648), (0, 0)]),
    ("iu", "INT UNSIGNED", [(4294967295, 4294967295), (0, 0), (1, 1)]),
    ("bi", "BIGINT", [(2**63 - 1, 2**63 - 1), (-(2**63), -(2**63)), (0, 0)]),
    ("bu", "BIGINT UNSIGNED", [(2**64 - 1, 2**64 - 1), (0, 0), (1, 1)]),
    (
        "d",
        "DECIMAL(30,10)",
        [
            (decimal.Decimal("12345678901234567890.0123456789"),) * 2,
            (decimal.Decimal("-0.0000000001"),) * 2,
            ("0", decimal.Decimal("0E-10")),
        ],
    ),
    (
        "d0",
        "DECIMAL(10,0)",
        [(decimal.Decimal("9999999999"),) * 2, (decimal.Decimal("-9999999999"),) * 2, (decimal.Decimal("0"),) * 2],
    ),
    ("f", "FLOAT", [(1.1, f32(1.1)), (-3.4028234e38, f32(-3.4028234e38)), (0.1, f32(0.1))]),
    ("db", "DOUBLE", [(0.1 + 0.2, 0.1 + 0.2), (-1.7976931348623157e308, -1.7976931348623157e308), (1 / 3, 1 / 3)]),
    (
        "dt",
        "DATETIME(6)",
        [
            ("9999-12-31 23:59:59.999999", dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
            ("1000-01-01 00:00:00.000001", dt.datetime(1000, 1, 1, 0, 0, 0, 1)),
            ("2024-02-29 12:00:00.5", dt.datetime(2024, 2, 29, 12, 0, 0, 500000)),
        ],
    ),
    (
        "dt0",
        "DATETIME",
        [
            ("2024-02-29 12:34:56", dt.datetime(2024, 2, 29, 12, 34, 56)),
            ("1000-01-01 00:00:00", dt.datetime(1000, 1, 1)),
            ("2000-01-01", dt.datetime(2000, 1, 1)),
        ],
    ),
    (
        "ts",
        "TIMESTAMP(6) NULL",
        [
            ("2038-01-19 03:14:07.999999", dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC)),
            ("1970-01-01 00:00:01", dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
            ("2024-06-30 23:59:59.000001", dt.datetime(2024, 6, 30, 23, 59, 59, 1, tzinfo=UTC)),
        ],
    ),
    (
        "ts3",
        "TIMESTAMP(3) NULL",
        [
            ("1970-01-01 00:00:01.123", dt.datetime(1970, 1, 1, 0, 0, 1, 123000, tzinfo=UTC)),
            ("2000-01-01 00:00:00", dt.datetime(2000, 1, 1, tzinfo=UTC)),
            ("2024-01-01 00:00:00.5", dt.datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ],
    ),
    (
        "da",
        "DATE",
        [
            ("2024-02-29", dt.date(2024, 2, 29)),
            ("1000-01-01", dt.date(1000, 1, 1)),
            ("9999-12-31", dt.date(9999, 12, 31)),
        ],
    ),
    (
        "tm",
        "TIME(6)",
        [
            ("838:59:59", dt.timedelta(hours=838, minutes=59, seconds=59)),
            ("-838:59:59", -dt.timedelta(hours=838, minutes=59, seconds=59)),
            ("-00:00:00.5", -dt.timedelta(microseconds=500000)),
            # mysql-replication alone gets these wrong (see values._negative_time2)
            ("-12:34:56.789", -dt.timedelta(hours=12, minutes=34, seconds=56, microseconds=789000)),
            ("-00:00:01.25", -dt.timedelta(seconds=1, microseconds=250000)),
        ],
    ),
    (
        "tm0",
        "TIME",
        [
            ("-12:30:00", -dt.timedelta(hours=12, minutes=30)),
            ("00:00:00", dt.timedelta(0)),
            ("23:59:59", dt.timedelta(hours=23, minutes=59, seconds=59)),
        ],
    ),
    ("y", "YEAR", [(2155, 2155), (1901, 1901), (0, 0)]),
    ("c", "CHAR(10)", [("abc", "abc"), ("", ""), ("é😀", "é😀")]),
    ("vc", "VARCHAR(300)", [("héllo wörld 😀", "héllo wörld 😀"), ("", ""), ("trailing  ", "trailing  ")]),
    ("tx", "TEXT", [("x" * 1000, "x" * 1000), ("", ""), ("line\nbreak", "line\nbreak")]),
    ("lt", "LONGTEXT", [(LONG_TEXT, LONG_TEXT), ("", ""), ("z", "z")]),
    ("l1", "VARCHAR(10) CHARACTER SET latin1", [("café", "café"), ("", ""), ("ÿ", "ÿ")]),
    (
        "bn",
        "BINARY(4)",
        [(b"\x00\x01\x00\x00", b"\x00\x01\x00\x00"), (b"\x00" * 4, b"\x00" * 4), (b"ab", b"ab\x00\x00")],
    ),
    ("vb", "VARBINARY(10)", [(b"\x00\xff\x00", b"\x00\xff\x00"), (b"", b""), (b"a\x00", b"a\x00")]),
    ("bl", "BLOB", [(bytes(range(256)), bytes(range(256))), (b"", b""), (b"\xde\xad", b"\xde\xad")]),
    ("lb", "LONGBLOB", [(LONG_BLOB, LONG_BLOB), (b"", b""), (b"\x00", b"\x00")]),
    ("j", "JSON", [(json.dumps(JSON_DOC), JSON_DOC), ("[]", []), ('"text"', "text")]),
    ("e", "ENUM('a','b','c')", [("c", "c"), ("a", "a"), ("b", "b")]),
    ("s", "SET('x','y','z')", [("z,x", ["x", "z"]), ("", []), ("x,y,z", ["x", "y", "z"])]),
    ("b", "BIT(12)", [(0b101010101010, 0b101010101010), (0, 0), (1, 1)]),
    ("b1", "BIT(1)", [(1, 1), (0, 0), (1, 1)]),
    ("b64", "BIT(64)", [(2**64 - 1, 2**64 - 1), (0, 0), (2**63, 2**63)]),
]
ROW_IDS = (1, 2, 4)  # row 3 is all NULL


def expected_rows(touch: int) -> dict[int, dict[str, Any]]:
    rows = {
        rid: {"id": rid, "touch": touch} | {name: values[n][1] for name, _, values in TYPED_COLUMNS}
        for n, rid in enumerate(ROW_IDS)
    }
    rows[3] = {"id": 3, "touch": touch} | {name: None for name, _, _ in TYPED_COLUMNS}
    return rows


def insert_typed_rows(conn: Any) -> None:
    names = [name for name, _, _ in TYPED_COLUMNS]
    sql = f"INSERT INTO typed (id, {', '.join(names)}) VALUES (%s{', %s' * len(names)})"
    with conn.cursor() as cur:
        for n, rid in enumerate(ROW_IDS):
            cur.execute(sql, (rid, *[values[n][0] for _, _, values in TYPED_COLUMNS]))
        cur.execute("INSERT INTO typed (id) VALUES (3)")


def assert_same_values(actual: dict[str, Any] | None, expected: dict[str, Any], what: str) -> None:
    assert actual is not None, what
    for name, value in expected.items():
        got = actual[name]
        assert got == value and type(got) is type(value), f"{what}: column {name}: {got!r} != {value!r}"
        if isinstance(value, dt.datetime):
            assert got.tzinfo == value.tzinfo, f"{what}: column {name}: time zone {got.tzinfo} != {value.tzinfo}"
    assert set(actual) == set(expected), what


def test_every_column_type_alike_from_snapshot_and_binlog(db: Endpoint, admin: Any, sources: Any, taps: Any) -> None:
    columns = ", ".join(f"{name} {sql_type}" for name, sql_type, _ in TYPED_COLUMNS)
    run(admin, f"CREATE TABLE typed (id INT PRIMARY KEY, touch INT NOT NULL DEFAULT 0, {columns})")
    insert_typed_rows(admin)
    tap = taps(sources(["typed"], chunk_rows=2))  # two chunks: the keyset pagination too
    tap.wait_streaming()
    run(admin, "UPDATE typed SET touch = 1", "DELETE FROM typed")
    insert_typed_rows(admin)
    tap.wait(lambda: len(tap.events()) == 4 * 4, what="snapshot, update, delete and insert of 4 rows")

    events = tap.events()
    reads, updates, deletes, inserts = (events[k : k + 4] for k in range(0, 16, 4))
    assert [e.op for e in events] == [Op.READ] * 4 + [Op.UPDATE] * 4 + [Op.DELETE] * 4 + [Op.INSERT] * 4
    before, after = expected_rows(0), expected_rows(1)
    inserted = {e.key["id"]: e for e in inserts}
    for read, update, delete in zip(reads, updates, deletes, strict=True):
        rid = read.key["id"]
        insert = inserted[rid]
        assert update.key == delete.key == read.key
        assert_same_values(read.after, before[rid], f"snapshot row {rid}")
        assert_same_values(update.before, before[rid], f"binlog before-image of row {rid}")
        assert_same_values(update.after, after[rid], f"binlog after-image of row {rid}")
        assert_same_values(delete.before, after[rid], f"binlog delete of row {rid}")
        assert_same_values(insert.after, before[rid], f"binlog insert of row {rid}")
        # Same values, same canonical bytes (what the audit chain hashes).
        snapshot_bytes = encode_event(ChangeEvent(**{**_fields(read), "after": read.after}))
        binlog_bytes = encode_event(ChangeEvent(**{**_fields(read), "after": insert.after}))
        assert snapshot_bytes == binlog_bytes
        for event in (read, update, delete, insert):
            assert decode_event(encode_event(event)) == event


def _fields(event: ChangeEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__struct_fields__}


# --- start-up checks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "bad", "fix"),
    [
        ("binlog_format", "MIXED", "binlog_format is MIXED; set `binlog_format=ROW` in the server config"),
        ("binlog_row_image", "MINIMAL", "binlog_row_image is MINIMAL; set `binlog_row_image=FULL`"),
        (
            "binlog_row_metadata",
            "MINIMAL",
            "binlog_row_metadata is MINIMAL; set `binlog_row_metadata=FULL` in the server config (or "
            "`SET GLOBAL binlog_row_metadata=FULL`) so column names reach the binlog",
        ),
    ],
)
def test_refuses_a_server_without_row_binlog_settings(
    db: Endpoint, admin: Any, sources: Any, variable: str, bad: str, fix: str
) -> None:
    run(admin, "CREATE TABLE t (id INT PRIMARY KEY)")
    with admin.cursor() as cur:
        cur.execute(f"SELECT @@GLOBAL.{variable}")
        good = cur.fetchone()[0]
    try:
        run(admin, f"SET GLOBAL {variable} = '{bad}'")
        source = sources(["t"])
        with pytest.raises(SourceMisconfigured) as refused:
            next(source.changes(None, threading.Event()))
        assert str(refused.value).startswith("mariadb node `maria`: ")
        assert fix in str(refused.value)
    finally:
        run(admin, f"SET GLOBAL {variable} = '{good}'")


def test_refuses_missing_grants_tables_and_keys(db: Endpoint, admin: Any, sources: Any) -> None:
    run(admin, "CREATE TABLE keyed (id INT PRIMARY KEY)", "CREATE TABLE unkeyed (id INT)")
    user, password = f"ws_t{random.randrange(10**8)}", "pw-" + str(random.randrange(10**12))
    try:
        run(
            admin,
            "SET SESSION sql_log_bin = 0",
            f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'",
            f"GRANT SELECT ON `{db.database}`.`keyed` TO '{user}'@'%'",
        )
        params = ConnectParams(db.host, db.port, user, password)
        with pytest.raises(SourceMisconfigured) as refused:
            sources(["keyed", "unkeyed"], params=params).check()
        message = str(refused.value)
        assert (
            f"user `{user}` lacks REPLICATION SLAVE and BINLOG MONITOR; run `GRANT REPLICATION SLAVE, "
            f"BINLOG MONITOR ON *.* TO '{user}'@'<host>'`"
        ) in message
        assert f"table `{db.database}.unkeyed` does not exist or user `{user}` cannot see it" in message
        assert f"`{db.database}.keyed`" not in message

        run(
            admin,
            f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'%'",
            f"GRANT SELECT ON `{db.database}`.* TO '{user}'@'%'",
        )
        with pytest.raises(SourceMisconfigured) as refused:
            sources(["keyed", "unkeyed"], params=params).check()
        assert str(refused.value) == (
            f"mariadb node `maria`: table `{db.database}.unkeyed` has no primary key; add one (`ALTER TABLE "
            f"{db.database}.unkeyed ADD PRIMARY KEY (...)`): changes are matched to target rows by key"
        )
        sources(["keyed"], params=params).check()  # and now it is content
    finally:
        run(admin, f"DROP USER IF EXISTS '{user}'@'%'", "SET SESSION sql_log_bin = 1")


def test_tls_modes(db: Endpoint, admin: Any, sources: Any) -> None:
    run(admin, "CREATE TABLE t (id INT PRIMARY KEY)")
    sources(["t"], params=capture_params(db, tls=Tls(mode="disable"))).check()
    sources(["t"], params=capture_params(db, tls=Tls(mode="prefer"))).check()
    with admin.cursor() as cur:
        cur.execute("SELECT @@have_ssl")
        have_ssl = cur.fetchone()[0]
    if have_ssl == "YES":
        pytest.skip("this server offers TLS: `require` would succeed")
    with pytest.raises(SourceMisconfigured, match="SSL is required but the server doesn't support it"):
        sources(["t"], params=capture_params(db, tls=Tls(mode="require"))).check()


# --- lost positions ------------------------------------------------------------------------------------------


def purge_all_but_newest(conn: Any) -> str:
    """FLUSH, then PURGE up to the new file; retried while a closing reader still holds a file."""
    run(conn, "FLUSH BINARY LOGS")
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        newest = cur.fetchone()[0]

    def purged() -> bool:
        run(conn, ("PURGE BINARY LOGS TO %s", (newest,)))
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            return [row[0] for row in cur.fetchall()] == [newest]

    wait_until(purged, timeout_s=10, what="older binlogs to be purged")
    return newest


def test_a_purged_binlog_is_offset_lost_with_the_remedy(db: Endpoint, admin: Any, sources: Any, taps: Any) -> None:
    run(admin, "CREATE TABLE p (id INT PRIMARY KEY)")
    first = taps(sources(["p"]))
    first.wait_streaming()
    run(admin, "INSERT INTO p VALUES (1)")
    first.wait(lambda: len(first.ends()) == 2, what="the insert's transaction end")
    committed = first.ends()[-1].position
    first.close()
    run(admin, "INSERT INTO p VALUES (2)")  # never read: lost once its binlog is purged
    purge_all_but_newest(admin)
    lost_file = BinlogPoint.decode(committed.resume).file

    for via in ("auto", "file", "gtid"):
        with pytest.raises(OffsetLost) as lost:
            list(sources(["p"], resume_via=via).changes(committed, threading.Event()))
        message = str(lost.value)
        assert lost_file in message, via
        assert "re-snapshot (`worker-sync sync --manual --stream NAME`, or forget the stream's offset)" in message, via
        if via == "file":
            assert f"binlog file `{lost_file}` no longer exists on the server (purged" in message


def test_a_purged_file_with_nothing_lost_resumes_by_gtid(db: Endpoint, admin: Any, sources: Any, taps: Any) -> None:
    run(admin, "CREATE TABLE p (id INT PRIMARY KEY)")
    first = taps(sources(["p"]))
    first.wait_streaming()
    run(admin, "INSERT INTO p VALUES (1)")
    first.wait(lambda: len(first.ends()) == 2, what="the insert's transaction end")
    committed = first.ends()[-1].position
    first.close()
    purge_all_but_newest(admin)  # the file is gone, but no transaction after `committed` went with it
    resumed = taps(sources(["p"]), committed)
    run(admin, "INSERT INTO p VALUES (2)")
    resumed.wait(lambda: len(resumed.events()) == 1, what="the insert after the purge")
    assert resumed.events()[0].key == {"id": 2}


# --- snapshot with concurrent writes ---------------------------------------------------------------------------


class Writer(threading.Thread):
    """Random inserts, updates (also of the key) and deletes in small transactions until stopped."""

    def __init__(self, db: Endpoint, first_new_id: int) -> None:
        super().__init__(daemon=True)
        self.conn = db.connect("admin")
        self.next_id = first_new_id
        self.commits: list[float] = []
        self.halt = threading.Event()
        self.error: BaseException | None = None
        self.rng = random.Random(7)

    def run(self) -> None:
        try:
            with self.conn.cursor() as cur:
                while not self.halt.is_set():
                    cur.execute("BEGIN")
                    for _ in range(self.rng.randint(1, 4)):
                        self._one(cur)
                    cur.execute("COMMIT")
                    self.commits.append(time.monotonic())
        except BaseException as exc:
            self.error = exc
        finally:
            self.conn.close()

    def _one(self, cur: Any) -> None:
        choice = self.rng.random()
        target = self.rng.randrange(self.next_id)
        if choice < 0.4:
            cur.execute("INSERT INTO s VALUES (%s, %s, %s)", (self.next_id, 0, f"new {self.next_id}"))
            self.next_id += 1
        elif choice < 0.75:
            cur.execute("UPDATE s SET v = v + 1, t = CONCAT('upd ', id) WHERE id = %s", (target,))
        elif choice < 0.85:
            cur.execute("UPDATE IGNORE s SET id = %s WHERE id = %s", (self.next_id, target))
            self.next_id += 1
        else:
            cur.execute("DELETE FROM s WHERE id = %s", (target,))


@pytest.mark.parametrize("rows", [20_000])
def test_snapshot_during_writes_has_no_gap_and_no_duplicate(db: Endpoint, admin: Any, sources: Any, rows: int) -> None:
    run(admin, "CREATE TABLE s (id INT PRIMARY KEY, v INT NOT NULL, t VARCHAR(40))")
    with admin.cursor() as cur:
        for start in range(0, rows, 5_000):
            cur.executemany(
                "INSERT INTO s VALUES (%s, %s, %s)",
                [(i, i, f"row {i}") for i in range(start, min(start + 5_000, rows))],
            )
    writer = Writer(db, rows)
    writer.start()
    wait_until(lambda: len(writer.commits) >= 20, timeout_s=10, what="the writer to get going")
    events: list[ChangeEvent] = []
    snapshot_span: list[float] = [time.monotonic()]
    last_upto: list[Position] = []
    pump = BatchPump(sources(["s"], chunk_rows=500), resume_after=None)
    try:

        def read() -> None:
            batch = pump.read(2_000, 0.1)
            if batch is not None:
                events.extend(batch.events)
                if batch.upto is not None:
                    last_upto.append(batch.upto)
                if len(snapshot_span) == 1 and batch.upto is not None and batch.upto.resume:
                    snapshot_span.append(time.monotonic())

        wait_until(lambda: (read(), len(snapshot_span) == 2)[1], timeout_s=30, what="the end of the snapshot")
        during = sum(snapshot_span[0] <= t <= snapshot_span[1] for t in writer.commits)
        settle = len(writer.commits) + 50
        wait_until(lambda: (read(), len(writer.commits) >= settle)[1], timeout_s=10, what="writes after it")
        writer.halt.set()
        writer.join(timeout=10)
        assert writer.error is None
        seq, pos = master_point(admin)
        wait_until(
            lambda: (read(), bool(last_upto) and last_upto[-1].order[:16] >= order_prefix(seq, pos))[1],
            timeout_s=30,
            what="the stream to catch up with the writer",
        )
    finally:
        pump.close()
    assert during > 0, "no write happened during the snapshot: the seam was not tested"

    table: dict[int, dict[str, Any]] = {}
    for event in events:
        rid = event.key["id"]
        if event.op in (Op.READ, Op.INSERT):
            assert rid not in table, f"{event.op} of a row already there (duplicate at the seam?): {rid}"
            table[rid] = event.after
        elif event.op is Op.UPDATE:
            assert event.before is not None and event.before["id"] in table, f"update of a missing row {rid}"
            assert table.pop(event.before["id"]) == event.before
            table[rid] = event.after
        else:
            assert table.pop(rid) == event.before, f"delete of a missing or different row {rid}"
    with admin.cursor() as cur:
        cur.execute("SELECT id, v, t FROM s")
        final = {rid: {"id": rid, "v": v, "t": t} for rid, v, t in cur.fetchall()}
    assert table == final
    assert sum(e.op is Op.READ for e in events) >= rows * 0.9
    assert len({e.position.order for e in events}) == len(events)
    assert_strictly_increasing(events)
