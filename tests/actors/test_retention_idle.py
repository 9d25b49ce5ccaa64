"""Issue 21, heartbeats, the PostgreSQL half measured: a running stream whose tables are idle while another
table of the same database is busy still lets its slot's WAL go.

The capture confirms, once it has delivered everything, all the WAL the server has sent it
(actors/engines/postgresql/replication.py, `_caught_up`): WAL of tables no link captures moves the slot on
too. Writes go only to an uncaptured table for WORKER_SYNC_IDLE_WAL_S seconds (45 by default; README's
figure was taken with 600 and `--timeout 800`, past pytest's 600 s default); the slot must retain a small
part of the WAL written meanwhile. Prints both.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from actors.harness import Endpoint
from tests.pipeline_helpers import pg_to_mariadb_config, running
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")

DURATION_S = float(os.environ.get("WORKER_SYNC_IDLE_WAL_S", "45"))


def busy_elsewhere(pg: Endpoint, stop: threading.Event) -> None:
    """About 100 small transactions a second on a table no link captures."""
    with pg.connect("admin") as conn:
        n = 0
        while not stop.is_set():
            n += 1
            conn.execute("INSERT INTO public.elsewhere VALUES (%s, repeat('e', 200))", (n,))
            if n % 500 == 0:
                conn.execute("DELETE FROM public.elsewhere")
            time.sleep(0.01)


@pytest.mark.slow
def test_writes_only_to_an_uncaptured_table_do_not_pile_up_in_the_slot(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, body text)")
        conn.execute("CREATE TABLE public.elsewhere (id bigint PRIMARY KEY, body text)")
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id bigint PRIMARY KEY, body longtext)")
    config = pg_to_mariadb_config(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.items", f"{fresh_mariadb_db.database}.items")]
    )
    with running(config) as supervisor:
        wait_until(supervisor.ready, timeout_s=60, what="the pipeline ready")
        (state,) = supervisor.streams.values()
        start = supervisor.retention.check(state)
        stop = threading.Event()
        writer = threading.Thread(target=busy_elsewhere, args=(fresh_pg_db, stop), daemon=True)
        writer.start()
        samples = []
        deadline = time.monotonic() + DURATION_S
        while time.monotonic() < deadline:
            time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
            samples.append(supervisor.retention.check(state))
        stop.set()
        writer.join(10)
    end = samples[-1]
    written = end.written_bytes - start.written_bytes
    peak = max(s.retained_bytes for s in samples)
    print(
        f"\nslot WAL after {DURATION_S:.0f} s of writes only to an uncaptured table: WAL written {written:,} bytes, "
        f"retained at the end {end.retained_bytes:,} bytes, peak {peak:,} bytes (at start {start.retained_bytes:,})"
    )
    assert written > 1_000_000, "the writer wrote too little WAL to tell anything"
    assert end.retained_bytes < written / 2, (start, end)
