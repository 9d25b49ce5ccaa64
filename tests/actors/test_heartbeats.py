"""Issue 21, heartbeats, on real servers (MariaDB source -> PostgreSQL, the real pipeline on Ray): with no
other writes at all, a rotated binlog keeps the stream's committed position in the old file without
heartbeats, and heartbeats (`heartbeat_interval_s`) move it into the new file; the heartbeat table is never
applied to the target, and its grants are the node user's SELECT, INSERT, UPDATE on it alone."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from actors.cli._heartbeat_init import heartbeat_nodes, init_heartbeat_tables
from actors.engines.mariadb.positions import split_order
from actors.harness import Endpoint
from config import parse_config
from tests.pipeline_helpers import pg_to_mariadb_config_text, running
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")

INTERVAL_S = 0.3
#: How long a stream without heartbeats is watched after a rotation: many heartbeat intervals.
QUIET_WINDOW_S = 4.0


def committed_file(supervisor) -> int:
    (state,) = supervisor.streams.values()
    assert state.progress.committed is not None, "nothing committed yet"
    return split_order(state.progress.committed.order)[0]


def rotate(mariadb: Endpoint) -> int:
    """FLUSH BINARY LOGS; the sequence number of the new (current) file."""
    with mariadb.connect("admin") as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        return int(cur.fetchone()[0].rsplit(".", 1)[1])


def test_heartbeats_move_an_idle_sources_position_past_a_rotated_binlog(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id bigint PRIMARY KEY, body longtext)")
        cur.execute("INSERT INTO items VALUES (1, 'one')")
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, body text)")
    tables = [(f"{fresh_mariadb_db.database}.items", "public.items")]
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, tables, reverse=True)
    off = parse_config(text, source="test config")
    on_text = text.replace(
        "    tls: {mode: disable}\nlinks:",
        f"    tls: {{mode: disable}}\n    heartbeat_interval_s: {INTERVAL_S}\nlinks:",
    )
    on = parse_config(on_text, source="test config")
    assert heartbeat_nodes(off) == [] and heartbeat_nodes(on) == ["mysql"]

    # `init`'s step, as the MariaDB administrator: the table, and the capture user's three privileges on it.
    monkeypatch.setenv("WS_TEST_MYSQL_ADMIN_PW", fresh_mariadb_db.admin.password)
    admin = argparse.Namespace(
        mysql_admin_user=fresh_mariadb_db.admin.user, mysql_admin_password_env="WS_TEST_MYSQL_ADMIN_PW"
    )
    assert init_heartbeat_tables(on, admin) == ["mysql"]
    with fresh_mariadb_db.connect("capture") as conn, conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cur.fetchall())
    assert "GRANT SELECT, INSERT, UPDATE ON `" in grants and "`worker_sync_heartbeat`" in grants, grants

    # Without heartbeats: the position stays in the rotated file however long nothing is written.
    with running(off) as supervisor:
        wait_until(supervisor.ready, timeout_s=60, what="the pipeline ready")
        before = committed_file(supervisor)
        newest = rotate(fresh_mariadb_db)
        assert newest > before
        quiet_until = time.monotonic() + QUIET_WINDOW_S
        wait_until(
            lambda: committed_file(supervisor) >= newest or time.monotonic() > quiet_until,
            timeout_s=QUIET_WINDOW_S + 10,
            what="the quiet window",
        )
        stuck = committed_file(supervisor)
        assert supervisor.heartbeats.written == {}
    assert stuck == before, f"the position left file {before} for {stuck} with no write at all"

    # With heartbeats: the next rotation is left behind within a few intervals.
    with running(on) as supervisor:
        wait_until(supervisor.ready, timeout_s=60, what="the pipeline ready")
        newest = rotate(fresh_mariadb_db)
        started = time.monotonic()
        wait_until(lambda: committed_file(supervisor) >= newest, timeout_s=30, what="the position in the new file")
        moved_after_s = time.monotonic() - started
        assert supervisor.heartbeats.written["mysql"] >= 1
        assert supervisor.ready(), supervisor.not_ready_because()
    with fresh_pg_db.connect("admin") as conn:  # never applied: the target has no such table, and no error
        assert conn.execute("SELECT to_regclass('public.worker_sync_heartbeat')").fetchone()[0] is None
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {fresh_mariadb_db.database}.worker_sync_heartbeat")
        assert cur.fetchone()[0] == 1
    print(
        f"\nposition left rotated file {stuck} -> {newest} {moved_after_s:.2f}s after the rotation "
        f"(heartbeat every {INTERVAL_S}s)"
    )


def test_a_missing_heartbeat_table_is_one_warning_per_beat_naming_the_fix(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before `init` made the table (or where the grant is missing): the beat fails, says why and what to run,
    and the writer goes on."""
    from actors.control.heartbeats import HeartbeatWriter
    from actors.core.streams import StreamSpec
    from config.loader import nodes_by_name

    tables = [(f"{fresh_mariadb_db.database}.items", "public.items")]
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, tables, reverse=True)
    text = text.replace(
        "    tls: {mode: disable}\nlinks:", "    tls: {mode: disable}\n    heartbeat_interval_s: 5\nlinks:"
    )
    node = nodes_by_name(parse_config(text, source="test config"))["mysql"]
    spec = StreamSpec(stream="mysql", node_name="mysql", node=node, tables=[])
    writer = HeartbeatWriter([spec])
    assert writer.beat(spec) is False and writer.written == {"mysql": 0}
    [record] = [r for r in caplog.records if "heartbeat into" in r.getMessage()]
    assert f"`{fresh_mariadb_db.database}.worker_sync_heartbeat`" in record.getMessage()
    assert "worker-sync init" in record.getMessage() and record.exc_info is None
