"""The log-retention measurements on real servers (issue 21): what a stream's source keeps for it.

PostgreSQL: a slot nobody reads while writes go on retains ever more WAL, and with
`max_slot_wal_keep_size` set, its headroom shrinks by as much. MariaDB: the binlog a committed position
points into has the whole expiry ahead while it is being written; once the server moves to a new file, its
headroom counts down from when it was closed; a position in a purged file reads as lost.
"""

from __future__ import annotations

import time

import pytest

from actors.core.events import Position
from actors.core.retention import LOST, OK
from actors.engines.mariadb.positions import file_sequence, order
from actors.engines.registry import engine_for
from actors.harness import Endpoint
from config.model import MySqlNode, PostgresNode, Tls

PASSWORD_ENV = "WORKER_SYNC_TEST_RETENTION_PASSWORD"


def pg_node(db: Endpoint, slot: str) -> PostgresNode:
    return PostgresNode(
        host=db.host,
        port=db.port,
        database=db.database,
        username=db.capture.user,
        password_env=PASSWORD_ENV,
        tls=Tls(mode="disable"),
        slot_name=slot,
    )


def write_wal(db: Endpoint, rows: int) -> None:
    with db.connect("admin") as conn:
        conn.execute("INSERT INTO public.filler SELECT g, repeat('x', 500) FROM generate_series(1, %s) g", (rows,))
        conn.execute("DELETE FROM public.filler")


@pytest.mark.postgresql
def test_a_slot_nobody_reads_retains_growing_wal(fresh_pg_db: Endpoint, monkeypatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, fresh_pg_db.capture.password)
    slot = f"ws_{fresh_pg_db.database}"
    node = pg_node(fresh_pg_db, slot)
    engine = engine_for(node)
    committed = Position(b"\x00" * 8, "0/0")
    # No slot and nothing committed: nothing to say yet; with a position committed, a missing slot is lost.
    assert engine.retention("pg", node, None) is None
    assert engine.retention("pg", node, committed).state == LOST
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
        conn.execute("CREATE TABLE public.filler (id int PRIMARY KEY, body text)")
    first = engine.retention("pg", node, committed)
    write_wal(fresh_pg_db, 20_000)  # ~ 10 MB of row data, more WAL: the stream is stopped, the slot holds it
    second = engine.retention("pg", node, committed)
    assert first is not None and second is not None
    assert second.state == first.state == OK
    assert second.retained_bytes > first.retained_bytes + 5_000_000, (first, second)
    assert second.written_bytes - first.written_bytes >= second.retained_bytes - first.retained_bytes
    assert second.headroom_bytes is None  # max_slot_wal_keep_size = -1: kept for ever (the disk is the limit)
    assert "wal_status reserved" in second.detail

    with fresh_pg_db.connect("admin") as conn:
        conn.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        time.sleep(0.5)
        limited = engine.retention("pg", node, committed)
        write_wal(fresh_pg_db, 20_000)
        later = engine.retention("pg", node, committed)
        assert limited.headroom_bytes is not None and later.headroom_bytes is not None
        grown = later.retained_bytes - limited.retained_bytes
        assert grown > 5_000_000
        # What the slot retains more comes off its headroom (to a WAL segment's rounding).
        assert abs((limited.headroom_bytes - later.headroom_bytes) - grown) <= 16 << 20
    finally:
        with fresh_pg_db.connect("admin") as conn:
            conn.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            conn.execute("SELECT pg_reload_conf()")


def maria_node(db: Endpoint) -> MySqlNode:
    return MySqlNode(
        host=db.host,
        port=db.port,
        database=db.database,
        username=db.capture.user,
        password_env=PASSWORD_ENV,
        tls=Tls(mode="disable"),
    )


@pytest.mark.mariadb
def test_a_needed_binlog_counts_down_to_its_expiry(fresh_mariadb_db: Endpoint, monkeypatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, fresh_mariadb_db.capture.password)
    node = maria_node(fresh_mariadb_db)
    engine = engine_for(node)
    admin = fresh_mariadb_db.connect("admin")
    with admin.cursor() as cur:
        cur.execute("SELECT @@binlog_expire_logs_seconds")
        saved = cur.fetchone()[0]
        cur.execute("SET GLOBAL binlog_expire_logs_seconds = 3600")
        cur.execute("CREATE TABLE filler (id int PRIMARY KEY, body text)")
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    try:
        committed = Position(order(file_sequence(file), pos, 0), f"file={file};pos={pos}")
        assert engine.retention("maria", node, None) is None
        open_file = engine.retention("maria", node, committed)
        # The file being written cannot expire before it is closed: the whole expiry is ahead.
        assert open_file.state == OK and open_file.headroom_seconds == 3600, open_file
        assert "being written" in open_file.detail
        with admin.cursor() as cur:
            cur.execute("FLUSH BINARY LOGS")  # the server moves on to a new file; ours is closed now
            for i in range(200):
                cur.execute("INSERT INTO filler VALUES (%s, REPEAT('y', 1000))", (i,))
        time.sleep(2.2)
        closed = engine.retention("maria", node, committed)
        assert closed.state == OK
        assert closed.retained_bytes > open_file.retained_bytes + 200_000, (open_file, closed)
        assert 3500 < closed.headroom_seconds <= 3600 - 2, closed
        assert "closed" in closed.detail and "expiry 3600 s" in closed.detail
        # A position in a file the server no longer has: lost, no headroom.
        purged = engine.retention("maria", node, Position(order(0, 4, 0), "file=x.000000;pos=4"))
        assert purged.state == LOST and purged.headroom_seconds == 0
    finally:
        with admin.cursor() as cur:
            cur.execute(f"SET GLOBAL binlog_expire_logs_seconds = {int(saved)}")
        admin.close()
