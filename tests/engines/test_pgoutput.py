"""The pgoutput decoder against a real server: the same events as wal2json, NaN and ±Infinity exact in any
column, the publication made or named, a slot's plugin checked, echo origins told apart."""

from __future__ import annotations

import contextlib
import decimal
import math
import threading

import msgspec
import psycopg
import pytest
from psycopg import sql

from actors.core.errors import SourceMisconfigured
from actors.core.events import ChangeEvent, Op, Position
from actors.engines.postgresql import PostgresSource
from actors.engines.pump import BatchPump
from actors.harness import Endpoint
from tests.engines.pg_helpers import Drain, capture_conninfo, pg_source, publish_all_tables


def _source(db: Endpoint, slot: str, tables: list[str], decoder: str) -> PostgresSource:
    return PostgresSource(
        stream=f"{decoder}-{db.database}",
        node="pg",
        conninfo=capture_conninfo(db),
        slot=slot,
        tables=tables,
        decoder=decoder,
        publication="ws_all",
    )


def _ordered(event: ChangeEvent) -> ChangeEvent:
    return msgspec.structs.replace(event, position=Position(event.position.order))


def _drain_after_snapshot(pump: BatchPump) -> Drain:
    drain = Drain(pump)
    drain.until(lambda _: drain.upto is not None, timeout_s=30, what="the snapshot to finish")
    drain.events.clear()
    return drain


def test_pgoutput_gives_the_same_events_as_wal2json(fresh_pg_db: Endpoint) -> None:
    db = fresh_pg_db
    with db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.acct (id int PRIMARY KEY, owner text, balance numeric(12,2), at timestamptz)")
        conn.execute("CREATE TABLE public.full_id (id int PRIMARY KEY, v text, blob text)")
        conn.execute("ALTER TABLE public.full_id REPLICA IDENTITY FULL")
        conn.execute("CREATE TABLE public.docs (id int PRIMARY KEY, body text, n int)")
        conn.execute("CREATE TABLE public.ignored (id int PRIMARY KEY)")
    publish_all_tables(db, "ws_all")
    tables = ["public.acct", "public.full_id", "public.docs"]
    pumps = {
        decoder: BatchPump(_source(db, f"ws_{decoder}", tables, decoder), resume_after=None)
        for decoder in ("wal2json", "pgoutput")
    }
    try:
        drains = {decoder: _drain_after_snapshot(pump) for decoder, pump in pumps.items()}
        big = "x" * 300_000  # TOASTed: an update that leaves it alone does not send it
        with db.connect("admin") as conn:
            conn.execute("INSERT INTO public.acct VALUES (1, 'ann', 10.50, '2024-01-02 03:04:05.678+02')")
            conn.execute("INSERT INTO public.ignored VALUES (1)")
            with conn.transaction():
                conn.execute("INSERT INTO public.acct VALUES (2, 'bob', NULL, NULL)")
                conn.execute("UPDATE public.acct SET balance = balance + 1 WHERE id = 1")
                conn.execute("UPDATE public.acct SET id = 3 WHERE id = 2")  # a key change: the old key travels
            conn.execute("INSERT INTO public.full_id VALUES (1, 'a', 'b'), (2, 'c', NULL)")
            conn.execute("UPDATE public.full_id SET v = 'z' WHERE id = 1")
            conn.execute("DELETE FROM public.full_id WHERE id = 2")
            conn.execute("INSERT INTO public.docs VALUES (1, %s, 1)", (big,))
            conn.execute("UPDATE public.docs SET n = 2 WHERE id = 1")
            conn.execute("DELETE FROM public.acct WHERE id = 3")
        expected = 11
        events = {decoder: drain.count(expected) for decoder, drain in drains.items()}
    finally:
        for pump in pumps.values():
            pump.close()
    assert len(events["pgoutput"]) == expected
    # Equal but for where a restart would resume: wal2json also ends transactions that touched no captured table.
    assert [_ordered(event) for event in events["pgoutput"]] == [_ordered(event) for event in events["wal2json"]]
    ops = [(event.namespace, event.op) for event in events["pgoutput"]]
    assert ("public.ignored", Op.INSERT) not in ops
    key_change = events["pgoutput"][3]
    assert key_change.before == {"id": 2} and key_change.after is not None and key_change.after["id"] == 3
    delete_full = events["pgoutput"][7]
    assert delete_full.op is Op.DELETE and delete_full.before == {"id": 2, "v": "c", "blob": None}


def _is(value: object, expected: str) -> bool:
    if expected == "NULL":
        return value is None
    if isinstance(value, float):
        return math.isnan(value) if expected == "NaN" else value == float(expected)
    assert isinstance(value, decimal.Decimal), value
    return value.is_nan() if expected == "NaN" else value == decimal.Decimal(expected)


def test_nan_and_infinity_are_exact_in_nullable_columns_from_snapshot_and_stream(fresh_pg_db: Endpoint) -> None:
    db = fresh_pg_db
    with db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.nums (id int PRIMARY KEY, n numeric, r real, d double precision)")
        conn.execute("INSERT INTO public.nums VALUES (1, 'NaN', 'Infinity', '-Infinity'), (2, NULL, NULL, NULL)")
    pump = BatchPump(pg_source(db, ["public.nums"], decoder="pgoutput"), resume_after=None)
    try:
        drain = Drain(pump)
        snapshot = drain.count(2)
        with db.connect("admin") as conn:
            conn.execute("INSERT INTO public.nums VALUES (3, 'Infinity', 'NaN', 'NaN'), (4, NULL, NULL, NULL)")
            conn.execute("UPDATE public.nums SET n = '-Infinity' WHERE id = 2")
        streamed = drain.count(5)[2:]
    finally:
        pump.close()
    rows = {(event.op, event.key["id"]): event.after for event in snapshot + streamed}
    expected = {
        (Op.READ, 1): ("NaN", "Infinity", "-Infinity"),
        (Op.READ, 2): ("NULL", "NULL", "NULL"),
        (Op.INSERT, 3): ("Infinity", "NaN", "NaN"),
        (Op.INSERT, 4): ("NULL", "NULL", "NULL"),
        (Op.UPDATE, 2): ("-Infinity", "NULL", "NULL"),
    }
    assert set(rows) == set(expected)
    for where, values in expected.items():
        after = rows[where]
        assert after is not None
        for column, value in zip(("n", "r", "d"), values, strict=True):
            assert _is(after[column], value), (where, column, after[column], value)


def test_the_publication_is_made_when_allowed_and_named_when_not(fresh_pg_db: Endpoint) -> None:
    db = fresh_pg_db
    capture = db.credentials("capture").user
    with db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.a (id int PRIMARY KEY)")
        conn.execute("CREATE TABLE public.b (id int PRIMARY KEY)")
    source = _source(db, "ws_pub", ["public.a", "public.b"], "pgoutput")
    stop = threading.Event()
    with pytest.raises(SourceMisconfigured) as refused:
        next(source.changes(None, stop))
    message = str(refused.value)
    assert "publication `ws_all` does not exist" in message
    assert 'CREATE PUBLICATION "ws_all" FOR TABLE "public"."a", "public"."b"' in message
    with db.connect("admin") as conn:  # the owner publishes one table; the capture user owns the other
        conn.execute('CREATE PUBLICATION "ws_all" FOR TABLE public.a')
        conn.execute(sql.SQL("ALTER TABLE public.b OWNER TO {}").format(sql.Identifier(capture)))
        conn.execute(sql.SQL("ALTER PUBLICATION ws_all OWNER TO {}").format(sql.Identifier(capture)))
    pump = BatchPump(_source(db, "ws_pub", ["public.a", "public.b"], "pgoutput"), resume_after=None)
    try:
        drain = Drain(pump)
        drain.until(lambda _: drain.upto is not None, timeout_s=30, what="the snapshot to finish")
        with db.connect("admin") as conn:
            published = conn.execute(
                "SELECT tablename FROM pg_publication_tables WHERE pubname = 'ws_all' ORDER BY 1"
            ).fetchall()
            conn.execute("INSERT INTO public.b VALUES (7)")
        assert published == [("a",), ("b",)]
        (event,) = drain.count(1)
        assert event.namespace == "public.b" and event.key == {"id": 7}
    finally:
        pump.close()


def test_a_slot_made_for_another_plugin_is_named(fresh_pg_db: Endpoint) -> None:
    db = fresh_pg_db
    with db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY)")
    source = pg_source(db, ["public.items"], decoder="wal2json")
    pump = BatchPump(source, resume_after=None)
    try:
        drain = Drain(pump)
        drain.until(lambda _: drain.upto is not None, timeout_s=30, what="the snapshot to finish")
        committed = drain.upto
    finally:
        pump.close()
    moved = pg_source(db, ["public.items"], decoder="pgoutput")
    with pytest.raises(SourceMisconfigured) as refused:
        next(moved.changes(committed, threading.Event()))
    assert "decodes with `wal2json` but the node's `decoder` is `pgoutput`" in str(refused.value)


def test_writes_under_a_worker_sync_origin_are_echoes_and_others_are_not(fresh_pg_db: Endpoint) -> None:
    db = fresh_pg_db
    with db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY)")
    # Origins are the server's, not the database's: names of this test's own.
    ours, theirs = f"worker_sync_{db.database}"[:60], f"other_{db.database}"[:60]
    pump = BatchPump(pg_source(db, ["public.items"], decoder="pgoutput"), resume_after=None)
    try:
        drain = _drain_after_snapshot(pump)
        for ident, origin in ((1, ours), (2, theirs), (3, None)):
            with db.connect("admin") as conn:
                if origin is not None:
                    conn.execute("SELECT pg_replication_origin_create(%s)", (origin,))
                    conn.execute("SELECT pg_replication_origin_session_setup(%s)", (origin,))
                conn.execute("INSERT INTO public.items VALUES (%s)", (ident,))
        events: list[ChangeEvent] = drain.count(3)
    finally:
        pump.close()
        with db.connect("admin") as conn:
            for origin in (ours, theirs):
                with contextlib.suppress(psycopg.Error):  # not created when the test failed early
                    conn.execute("SELECT pg_replication_origin_drop(%s)", (origin,))
    assert [(event.key["id"], event.origin) for event in events] == [(1, ours), (2, None), (3, None)]
