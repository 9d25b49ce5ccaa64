"""A DBA restarts the source: PostgreSQL's fast shutdown completes while Worker-Sync is attached, idle and
under load, and the pipeline picks up after the restart with nothing lost."""

from __future__ import annotations

import signal
import threading

import pytest

from actors.harness import Endpoint
from actors.harness.postgres import LocalPostgres
from tests.actors.test_pipeline import create_orders, wait_equal, wait_ready
from tests.pipeline_helpers import pg_to_mariadb_config, running
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")

#: What the issue asks of a fast shutdown with a client attached (the walsender waits for it to confirm).
FAST_SHUTDOWN_S = 10.0


class Inserter(threading.Thread):
    """Inserts rows one per transaction until told to stop or the server goes away; counts the commits."""

    def __init__(self, pg: Endpoint, first_id: int) -> None:
        super().__init__(name="inserter", daemon=True)
        self.pg, self.next_id = pg, first_id
        self.committed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with self.pg.connect("admin") as conn:
                while not self.stop.is_set():
                    conn.execute(
                        "INSERT INTO public.orders (id, customer, qty, price) VALUES (%s, 'load', 1, 1.00)",
                        (self.next_id,),
                    )
                    self.next_id += 1
                    self.committed += 1
        except Exception:  # the server is shutting down: what committed before is what counts
            return


def slot_confirmed(pg: Endpoint) -> str:
    with pg.connect("admin") as conn:
        row = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots").fetchone()
    return row[0] if row else ""


def insert_rows(pg: Endpoint, ids: range) -> None:
    with pg.connect("admin") as conn:
        for i in ids:
            conn.execute("INSERT INTO public.orders (id, customer, qty, price) VALUES (%s, 'c', 1, 1.00)", (i,))


def test_fast_shutdown_of_the_source_completes_idle_and_under_load_and_nothing_is_lost(
    fresh_mariadb_db: Endpoint, tmp_path
):
    with LocalPostgres(tmp_path / "pg") as server:
        pg = server.endpoint.create_database("restarted")
        create_orders(pg, fresh_mariadb_db)
        namespaces = ("public.orders", f"{fresh_mariadb_db.database}.orders")
        config = pg_to_mariadb_config(pg, fresh_mariadb_db, tmp_path, [namespaces])
        with running(config) as supervisor:
            wait_ready(supervisor)
            insert_rows(pg, range(1, 101))
            wait_equal(pg, namespaces[0], fresh_mariadb_db, namespaces[1], timeout_s=60, supervisor=supervisor)

            other = server.endpoint.create_database("other")
            with other.connect("admin") as conn:  # WAL the stream has no change for: another database's
                conn.execute("CREATE TABLE public.unsynced AS SELECT g AS id FROM generate_series(1, 1000) g")
            confirmed = slot_confirmed(pg)
            wait_until(  # attached as in production: confirming positions to the walsender
                lambda: slot_confirmed(pg) != confirmed, timeout_s=30, what="the capture to confirm a position"
            )
            idle_s = server.shutdown(signal.SIGINT, timeout_s=60)  # what `pg_ctl stop -m fast` sends
            server.relaunch()
            insert_rows(pg, range(101, 201))
            wait_equal(pg, namespaces[0], fresh_mariadb_db, namespaces[1], timeout_s=90, supervisor=supervisor)

            load = Inserter(pg, first_id=1_000)
            load.start()
            confirmed = slot_confirmed(pg)
            wait_until(
                lambda: load.committed >= 300 and slot_confirmed(pg) != confirmed,
                timeout_s=60,
                what="the load to be under way and confirmed",
            )
            loaded_s = server.shutdown(signal.SIGINT, timeout_s=60)
            load.stop.set()
            load.join(timeout=30)
            server.relaunch()
            insert_rows(pg, range(201, 301))
            wait_equal(pg, namespaces[0], fresh_mariadb_db, namespaces[1], timeout_s=90, supervisor=supervisor)
        print(f"fast shutdown with Worker-Sync attached: idle {idle_s:.2f}s, under load {loaded_s:.2f}s")
        assert idle_s < FAST_SHUTDOWN_S, f"fast shutdown took {idle_s:.1f}s while idle"
        assert loaded_s < FAST_SHUTDOWN_S, f"fast shutdown took {loaded_s:.1f}s under load"
