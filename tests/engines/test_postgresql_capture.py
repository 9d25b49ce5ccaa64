"""PostgreSQL capture against a real server: every change once, in order, with the right values."""

from __future__ import annotations

import datetime as dt
import decimal
import random
import threading
import uuid
from collections import Counter

import msgspec
import psycopg
import pytest

from actors.core.errors import OffsetLost, SourceMisconfigured
from actors.core.events import UNCHANGED, Op
from actors.engines.postgresql.lsn import parse_lsn
from actors.engines.pump import BatchPump
from actors.harness import Endpoint
from tests.engines import pg_helpers
from tests.engines.pg_helpers import Drain, pg_source

ALL_TYPES = """
CREATE TABLE public.kinds (
    id bigint PRIMARY KEY,
    small smallint, num numeric(30, 10), big_num numeric, real_v real, dbl double precision,
    flag boolean, label text, code varchar(12), raw bytea,
    at timestamp, at_tz timestamptz, day date, clock time,
    doc jsonb, plain_json json, ident uuid, tags text[], scores integer[], span interval
)
"""

ROW = {
    "id": 1,
    "small": -7,
    "num": decimal.Decimal("12345678901234567890.0123456789"),
    "big_num": decimal.Decimal("3.14159265358979323846264338327950288419"),
    "real_v": 1.5,
    "dbl": 0.1,
    "flag": True,
    "label": 'naïve ☃ text, with "quotes"',
    "code": "ABC",
    "raw": b"\x00\x01\xff",
    "at": dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
    "at_tz": dt.datetime(2024, 2, 29, 22, 0, 0, 654321, tzinfo=dt.UTC),
    "day": dt.date(1999, 12, 31),
    "clock": dt.time(13, 14, 15, 500000),
    "doc": {"a": decimal.Decimal("1.10"), "nested": [1, "two", None, True]},
    "plain_json": {"k": "v"},
    "ident": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "tags": ["a", "b c", 'q"x', None],
    "scores": [1, 2, 3],
    "span": "1 day 02:03:04",
}


@pytest.fixture(params=pg_helpers.DECODERS)
def each_decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once per output plugin: both must give the same events."""
    monkeypatch.setattr(pg_helpers, "default_decoder", request.param)
    return str(request.param)


def admin(db: Endpoint) -> psycopg.Connection:
    return db.connect("admin")


_json = msgspec.json.Encoder(decimal_format="number")


def insert_row(conn: psycopg.Connection, row: dict) -> None:
    conn.execute(
        f"INSERT INTO public.kinds ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
        [
            psycopg.types.json.Jsonb(v, dumps=lambda o: _json.encode(o).decode()) if k in ("doc", "plain_json") else v
            for k, v in row.items()
        ],
    )


@pytest.fixture
def kinds_db(fresh_pg_db: Endpoint) -> Endpoint:
    with admin(fresh_pg_db) as conn:
        conn.execute(ALL_TYPES)
    return fresh_pg_db


def open_pump(db: Endpoint, tables: list[str], **kwargs) -> BatchPump:
    return BatchPump(pg_source(db, tables, **kwargs), resume_after=kwargs.pop("resume_after", None))


@pytest.mark.usefixtures("each_decoder")
def test_every_type_streams_with_exact_values(kinds_db: Endpoint) -> None:
    pump = open_pump(kinds_db, ["public.kinds"])
    try:
        drain = Drain(pump)
        drain.until(lambda _: drain.upto is not None, timeout_s=30, what="the (empty) snapshot to finish")
        with admin(kinds_db) as conn:
            conn.execute("SET TimeZone = 'Asia/Kolkata'")  # the client's zone must not matter
            insert_row(conn, ROW)
        (event,) = drain.count(1)
        assert event.op is Op.INSERT and event.before is None
        assert event.key == {"id": 1}
        assert event.after == ROW
        assert event.after["span"] == "1 day 02:03:04"  # intervals travel as PostgreSQL text
        for name in ("num", "big_num"):
            assert str(event.after[name]) == str(ROW[name])  # exact digits, scale kept
        assert event.after["at_tz"].utcoffset() == dt.timedelta(0)
    finally:
        pump.close()


@pytest.mark.usefixtures("each_decoder")
def test_snapshot_and_stream_give_equal_values_for_every_type(kinds_db: Endpoint) -> None:
    with admin(kinds_db) as conn:
        conn.execute("ALTER TABLE public.kinds REPLICA IDENTITY FULL")
        insert_row(conn, ROW)
    pump = open_pump(kinds_db, ["public.kinds"])
    try:
        drain = Drain(pump)
        (snap,) = drain.count(1)
        assert snap.op is Op.READ and snap.after == ROW
        with admin(kinds_db) as conn:
            conn.execute("UPDATE public.kinds SET small = 8 WHERE id = 1")
        update = drain.count(2)[1]
        assert update.before == snap.after  # FULL identity: the whole before-image, same values
        assert update.after == dict(ROW, small=8)
    finally:
        pump.close()


@pytest.mark.usefixtures("each_decoder")
def test_changes_arrive_once_in_commit_order_with_transactions(fresh_pg_db: Endpoint) -> None:
    with admin(fresh_pg_db) as conn:
        conn.execute("CREATE TABLE public.acct (id int PRIMARY KEY, owner text, balance numeric(12,2))")
        conn.execute("CREATE TABLE public.other (id int PRIMARY KEY, v text)")
    pump = open_pump(fresh_pg_db, ["public.acct"])
    items: list[object] = []
    try:
        drain = Drain(pump)
        drain.until(lambda _: drain.upto is not None, timeout_s=30, what="the snapshot")
        with admin(fresh_pg_db) as conn:
            conn.execute("INSERT INTO public.acct VALUES (1, 'ann', 10), (2, 'bob', 20), (3, 'cy', 30)")
            with conn.transaction():
                conn.execute("UPDATE public.acct SET balance = balance - 5 WHERE id = 1")
                conn.execute("UPDATE public.acct SET balance = balance + 5 WHERE id = 2")
                conn.execute("INSERT INTO public.other VALUES (1, 'not captured')")
            conn.execute("UPDATE public.acct SET id = 10 WHERE id = 3")  # key change
            conn.execute("DELETE FROM public.acct WHERE id = 2")
        events = drain.count(7)
        items = [i for b in drain.batches for i in b.events]
    finally:
        pump.close()
    assert [(e.op, e.key) for e in events] == [
        (Op.INSERT, {"id": 1}),
        (Op.INSERT, {"id": 2}),
        (Op.INSERT, {"id": 3}),
        (Op.UPDATE, {"id": 1}),
        (Op.UPDATE, {"id": 2}),
        (Op.UPDATE, {"id": 10}),
        (Op.DELETE, {"id": 2}),
    ]
    assert all(e.namespace == "public.acct" for e in events)
    # Default replica identity: key-only before-images.
    assert events[3].before == {"id": 1}
    assert events[3].after == {"id": 1, "owner": "ann", "balance": decimal.Decimal("5.00")}
    assert events[5].before == {"id": 3} and events[5].after["id"] == 10
    assert events[6].before == {"id": 2} and events[6].after is None
    # One transaction id per transaction; commit times and positions ascend.
    txids = [e.txid for e in events]
    assert txids[0] == txids[1] == txids[2] and txids[3] == txids[4]
    assert len(set(txids)) == 4
    assert [e.position for e in events] == sorted(e.position for e in events)
    assert len({e.position for e in events}) == len(events)
    assert all(e.commit_time_us > 0 for e in events)
    assert events[0].commit_time_us <= events[3].commit_time_us <= events[6].commit_time_us
    assert len(items) == 7


@pytest.mark.usefixtures("each_decoder")
def test_unchanged_toast_is_marked_never_null(fresh_pg_db: Endpoint) -> None:
    with admin(fresh_pg_db) as conn:
        conn.execute("CREATE TABLE public.docs (id int PRIMARY KEY, body text, n int)")
        conn.execute("ALTER TABLE public.docs ALTER COLUMN body SET STORAGE EXTERNAL")
    pump = open_pump(fresh_pg_db, ["public.docs"])
    body = "".join(random.choice("abcdefghij") for _ in range(20_000))
    try:
        drain = Drain(pump)
        drain.until(lambda _: drain.upto is not None, timeout_s=30, what="the snapshot")
        with admin(fresh_pg_db) as conn:
            conn.execute("INSERT INTO public.docs VALUES (1, %s, 1)", (body,))
            conn.execute("UPDATE public.docs SET n = 2 WHERE id = 1")
            conn.execute("UPDATE public.docs SET body = 'short', n = 3 WHERE id = 1")
        insert, untouched, rewritten = drain.count(3)
    finally:
        pump.close()
    assert insert.after["body"] == body
    assert untouched.after == {"id": 1, "body": UNCHANGED, "n": 2}
    assert rewritten.after == {"id": 1, "body": "short", "n": 3}


@pytest.mark.usefixtures("each_decoder")
def test_resume_mid_transaction_delivers_the_rest_exactly_once(fresh_pg_db: Endpoint) -> None:
    with admin(fresh_pg_db) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY, v int)")
    source = pg_source(fresh_pg_db, ["public.items"])
    pump = BatchPump(source, resume_after=None)
    try:
        drain = Drain(pump, ack=False)
        drain.until(lambda _: drain.upto is not None, timeout_s=30, what="the snapshot")
        with admin(fresh_pg_db) as conn, conn.transaction():
            conn.execute("INSERT INTO public.items SELECT g, g FROM generate_series(1, 1000) g")
        first = drain.count(1000)
    finally:
        pump.close()
    committed = first[399].position  # downstream applied 400 of the 1,000 rows of one transaction
    resumed = BatchPump(pg_source(fresh_pg_db, ["public.items"]), resume_after=committed)
    try:
        with admin(fresh_pg_db) as conn:
            conn.execute("INSERT INTO public.items VALUES (5000, 5000)")
        rest = Drain(resumed).count(601)
    finally:
        resumed.close()
    assert [e.key["id"] for e in rest] == [*range(401, 1001), 5000]
    assert not {e.position for e in rest} & {e.position for e in first[:400]}


@pytest.mark.usefixtures("each_decoder")
def test_acknowledged_position_advances_the_slot(fresh_pg_db: Endpoint) -> None:
    with admin(fresh_pg_db) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY)")
    source = pg_source(fresh_pg_db, ["public.items"])
    pump = BatchPump(source, resume_after=None)
    try:
        drain = Drain(pump)
        drain.until(lambda _: drain.upto is not None, timeout_s=30, what="the snapshot")
        with admin(fresh_pg_db) as conn:
            conn.execute("INSERT INTO public.items VALUES (1)")
        drain.until(lambda _: isinstance(drain.upto, object) and len(drain.events) == 1, timeout_s=30, what="one event")
        drain.until(lambda _: drain.upto.order[8:] == b"\xff" * 8, timeout_s=30, what="the transaction's end")
        target = drain.upto.resume

        def confirmed() -> int:
            with admin(fresh_pg_db) as conn:
                row = conn.execute(
                    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (source.slot,)
                ).fetchone()
            return parse_lsn(row[0])

        # At or past it: once nothing is pending, the source may confirm up to the server's sent position, which
        # WAL of other databases on the same server (other tests) moves on.
        drain.until(lambda _: confirmed() >= parse_lsn(target), timeout_s=30, what=f"the slot to confirm {target}")
    finally:
        pump.close()


@pytest.mark.usefixtures("each_decoder")
def test_dropped_slot_is_offset_lost_with_the_remedy(fresh_pg_db: Endpoint) -> None:
    with admin(fresh_pg_db) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY)")
    source = pg_source(fresh_pg_db, ["public.items"])
    pump = BatchPump(source, resume_after=None)
    drain = Drain(pump)
    drain.until(lambda _: drain.upto is not None, timeout_s=30, what="the snapshot")
    committed = drain.upto
    pump.close()
    with admin(fresh_pg_db) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (source.slot,))
    resumed = BatchPump(pg_source(fresh_pg_db, ["public.items"]), resume_after=committed)
    try:
        with pytest.raises(OffsetLost, match=r"does not exist.*re-snapshot"):
            Drain(resumed).count(1, timeout_s=10)
    finally:
        resumed.close()


@pytest.mark.usefixtures("each_decoder")
def test_refuses_a_table_without_primary_key_and_a_role_without_replication(fresh_pg_db: Endpoint) -> None:
    with admin(fresh_pg_db) as conn:
        conn.execute("CREATE TABLE public.loose (v int)")
    pump = open_pump(fresh_pg_db, ["public.loose"])
    try:
        with pytest.raises(SourceMisconfigured, match=r"`public\.loose` has no primary key"):
            Drain(pump).count(1, timeout_s=10)
    finally:
        pump.close()
    with admin(fresh_pg_db) as conn:
        conn.execute(f'ALTER ROLE "{fresh_pg_db.capture.user}" NOREPLICATION')
    try:
        pump = open_pump(fresh_pg_db, ["public.loose"])
        with pytest.raises(SourceMisconfigured, match=r"ALTER ROLE .* REPLICATION"):
            Drain(pump).count(1, timeout_s=10)
        pump.close()
    finally:
        with admin(fresh_pg_db) as conn:
            conn.execute(f'ALTER ROLE "{fresh_pg_db.capture.user}" REPLICATION')


@pytest.mark.parametrize("rows", [200_000])
def test_snapshot_under_concurrent_writes_has_no_gap_and_no_duplicate(fresh_pg_db: Endpoint, rows: int) -> None:
    snapshot_under_writes(fresh_pg_db, rows)


def snapshot_under_writes(db: Endpoint, rows: int) -> None:
    """Snapshot a table while a writer changes it; replaying the events must rebuild the table."""
    with admin(db) as conn:
        conn.execute("CREATE TABLE public.big (id int PRIMARY KEY, v int, note text)")
        conn.execute("INSERT INTO public.big SELECT g, g, md5(g::text) FROM generate_series(1, %s) g", (rows,))
    stop_writing = threading.Event()
    writes = Counter()

    def writer() -> None:
        rng = random.Random(7)
        with admin(db) as conn:
            while not stop_writing.is_set():
                with conn.transaction():
                    for _ in range(20):
                        k = rng.randint(1, rows + rows // 10)
                        kind = rng.random()
                        if kind < 0.4:
                            conn.execute(
                                "INSERT INTO public.big VALUES (%s, 0, 'new') ON CONFLICT (id) DO UPDATE SET v = -1",
                                (k,),
                            )
                        elif kind < 0.8:
                            conn.execute("UPDATE public.big SET v = v + 1 WHERE id = %s", (k,))
                        else:
                            conn.execute("DELETE FROM public.big WHERE id = %s", (k,))
                        writes[kind < 0.4] += 1

    pump = BatchPump(pg_source(db, ["public.big"], snapshot_chunk_rows=2_000), resume_after=None)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        drain = Drain(pump)
        drain.until(
            lambda events: any(e.op is not Op.READ for e in events), timeout_s=120, what="streaming after the snapshot"
        )
        stop_writing.set()
        thread.join()
        with admin(db) as conn:
            final_lsn = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
            expected = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, v, note FROM public.big").fetchall()}
            conn.execute("INSERT INTO public.big VALUES (-1, 0, 'sentinel')")
        drain.until(lambda events: events[-1].key == {"id": -1}, timeout_s=120, what=f"the sentinel after {final_lsn}")
    finally:
        stop_writing.set()
        thread.join()
        pump.close()
    events = drain.events[:-1]
    assert sum(writes.values()) > 0
    positions = [e.position for e in events]
    assert len(set(positions)) == len(positions), "a position was delivered twice"
    assert positions == sorted(positions), "events out of stream order"
    table: dict[int, tuple[int, str]] = {}
    for event in events:
        if event.op is Op.DELETE:
            table.pop(event.key["id"], None)
        else:
            table[event.after["id"]] = (event.after["v"], event.after["note"])
    assert table == expected
    assert sum(1 for e in events if e.op is Op.READ) >= rows * 0.8
