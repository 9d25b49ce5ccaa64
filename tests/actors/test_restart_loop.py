"""Databases restart under load, again and again: MariaDB (the source) and PostgreSQL (the target) are each
restarted ten times while a writer keeps changing rows; afterwards the target equals the source. Errors a
driver raises after an outage that nobody classified must reconnect, never stop the stream."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from actors.harness import Endpoint
from actors.harness.mariadb import LocalMariaDB
from actors.harness.postgres import LocalPostgres
from tests.actors.test_pipeline import create_orders, wait_equal
from tests.pipeline_helpers import pg_to_mariadb_config, running
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")

RESTARTS = 10


class Writer(threading.Thread):
    """Inserts, updates and deletes on MariaDB, reconnecting whenever the server is away."""

    def __init__(self, db: Endpoint) -> None:
        super().__init__(name="restart-writer", daemon=True)
        self.db = db
        self.stop = threading.Event()
        self.done = 0
        self.rng = random.Random(11)

    def run(self) -> None:
        next_id = 1
        while not self.stop.is_set():
            try:
                with self.db.connect("admin") as conn, conn.cursor() as cur:
                    while not self.stop.is_set():
                        roll = self.rng.random()
                        if roll < 0.6 or next_id < 20:
                            cur.execute(
                                "INSERT INTO orders (id, customer, qty, price, placed_at) "
                                "VALUES (%s, 'c', 1, 1.00, NOW(6))",
                                (next_id,),
                            )
                            next_id += 1
                        elif roll < 0.9:
                            cur.execute(
                                "UPDATE orders SET qty = qty + 1 WHERE id = %s", (self.rng.randrange(1, next_id),)
                            )
                        else:
                            cur.execute("DELETE FROM orders WHERE id = %s", (self.rng.randrange(1, next_id),))
                        self.done += 1
                        time.sleep(0.002)
            except Exception:  # the server restarts: try again shortly (an insert may or may not have landed)
                next_id += 1
                time.sleep(0.2)


def test_ten_source_and_target_restarts_under_load_end_with_equal_tables(tmp_path):
    with LocalMariaDB(tmp_path / "maria") as maria_server, LocalPostgres(tmp_path / "pg") as pg_server:
        maria = maria_server.endpoint.create_database("looped")
        pg = pg_server.endpoint.create_database("looped")
        create_orders(pg, maria)
        config = pg_to_mariadb_config(pg, maria, tmp_path, [("looped.orders", "public.orders")], reverse=True)
        with running(config) as supervisor:
            wait_until(lambda: supervisor.ready(), timeout_s=120, what=lambda: f"ready: {supervisor.status()}")
            writer = Writer(maria)
            writer.start()
            try:
                for round_ in range(RESTARTS):
                    wait_until(lambda at=writer.done: writer.done > at + 50, timeout_s=60, what="the writer to write")
                    pg_server.shutdown(signal.SIGINT)  # the target: `pg_ctl stop -m fast`
                    pg_server.relaunch()
                    wait_until(lambda at=writer.done: writer.done > at + 50, timeout_s=60, what="the writer to write")
                    maria_server.shutdown(signal.SIGTERM)  # the source: a clean shutdown
                    maria_server.relaunch()
                    print(f"round {round_ + 1}: both restarted, {writer.done} writes so far")
            finally:
                writer.stop.set()
                writer.join(timeout=30)
            wait_equal(pg, "public.orders", maria, "looped.orders", timeout_s=180, supervisor=supervisor)
            status = supervisor.status()
            assert all(stream.error is None for stream in status.streams), status
