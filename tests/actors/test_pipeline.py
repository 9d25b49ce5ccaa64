"""The sync pipeline end to end: capture actors, applier shards and the supervisor on real servers."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import ray

from actors.harness import Endpoint
from actors.harness.compare import table_rows
from tests.pipeline_helpers import pg_to_mariadb_config, running

pytestmark = pytest.mark.usefixtures("ray_session")

PG_ORDERS = """
CREATE TABLE public.orders (
    id bigint PRIMARY KEY, customer text NOT NULL, qty integer NOT NULL, price numeric(12,2) NOT NULL,
    paid boolean NOT NULL DEFAULT false, placed_at timestamptz NOT NULL DEFAULT now(), note text
)
"""
MARIADB_ORDERS = """
CREATE TABLE orders (
    id bigint PRIMARY KEY, customer varchar(255) NOT NULL, qty int NOT NULL, price decimal(12,2) NOT NULL,
    paid boolean NOT NULL DEFAULT false, placed_at datetime(6) NOT NULL, note text
)
"""


def create_orders(pg: Endpoint, mariadb: Endpoint) -> None:
    with pg.connect("admin") as conn:
        conn.execute(PG_ORDERS)
    with mariadb.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute(MARIADB_ORDERS)


def wait_equal(
    pg: Endpoint, pg_ns: str, mariadb: Endpoint, maria_ns: str, *, timeout_s: float, supervisor=None
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        source, target = table_rows(pg, pg_ns), table_rows(mariadb, maria_ns)
        if source == target:
            return
        if time.monotonic() > deadline:
            missing = source.keys() - target.keys()
            extra = target.keys() - source.keys()
            differ = [k for k in source.keys() & target.keys() if source[k] != target[k]][:3]
            pytest.fail(
                f"target differs from source after {timeout_s}s: {len(missing)} missing, {len(extra)} extra, "
                f"e.g. missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]}, "
                f"differing {[(k, source[k], target[k]) for k in differ]}; "
                f"pipeline: {supervisor.status() if supervisor else 'n/a'}"
            )
        time.sleep(0.2)


def wait_ready(supervisor, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not supervisor.ready():
        assert time.monotonic() < deadline, f"the pipeline was not ready after {timeout_s}s: {supervisor.status()}"
        time.sleep(0.05)


class Load:
    """A mixed write load on PostgreSQL in a thread: inserts, updates, deletes, key changes."""

    def __init__(self, pg: Endpoint, changes: int, *, txn: int = 50, seed: int = 3) -> None:
        self.pg, self.target, self.txn = pg, changes, txn
        self.rng = random.Random(seed)
        self.done = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            live: list[int] = []
            next_id = 1
            with self.pg.connect("admin", autocommit=False) as conn:
                while self.done < self.target:
                    for _ in range(self.txn):
                        roll = self.rng.random()
                        if roll < 0.55 or len(live) < 20:
                            conn.execute(
                                "INSERT INTO public.orders (id, customer, qty, price, note) "
                                "VALUES (%s, %s, %s, %s, %s)",
                                (
                                    next_id,
                                    f"c{next_id % 97}",
                                    next_id % 9,
                                    f"{next_id % 1000}.{next_id % 100:02d}",
                                    None if next_id % 3 else "x" * (next_id % 50),
                                ),
                            )
                            live.append(next_id)
                            next_id += 1
                        elif roll < 0.85:
                            conn.execute(
                                "UPDATE public.orders SET qty = qty + 1, paid = NOT paid WHERE id = %s",
                                (self.rng.choice(live),),
                            )
                        elif roll < 0.97:
                            conn.execute(
                                "DELETE FROM public.orders WHERE id = %s", (live.pop(self.rng.randrange(len(live))),)
                            )
                        else:
                            old = live.pop(self.rng.randrange(len(live)))
                            conn.execute("UPDATE public.orders SET id = %s WHERE id = %s", (next_id, old))
                            live.append(next_id)
                            next_id += 1
                    conn.commit()
                    self.done += self.txn
        except BaseException as exc:
            self.error = exc

    def start(self) -> Load:
        self.thread.start()
        return self

    def wait(self, timeout_s: float) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the write load did not finish"
        assert self.error is None, f"the write load failed: {self.error}"


def test_postgresql_to_mariadb_changes_arrive_and_tables_match(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    with fresh_pg_db.connect("admin") as conn:  # rows before the start travel through the snapshot
        conn.execute(
            "INSERT INTO public.orders (id, customer, qty, price) SELECT g, 'snap', 1, 1.5 "
            "FROM generate_series(100000, 100499) g"
        )
    config = pg_to_mariadb_config(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.orders", f"{fresh_mariadb_db.database}.orders")]
    )
    with running(config) as supervisor:
        wait_ready(supervisor)  # so that the load streams change by change, after the snapshot
        Load(fresh_pg_db, 3_000).start().wait(120)
        wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, f"{fresh_mariadb_db.database}.orders", timeout_s=60)
        deadline = time.monotonic() + 10
        while supervisor.status().streams[0].batches_in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        status = supervisor.status()
    (stream,) = status.streams
    assert stream.error is None, stream.error
    assert stream.captured_events == stream.applied_events == 3_500, stream
    assert status.ready


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["applier", "capture"])
def test_kill_9_during_a_100k_change_workload_loses_and_duplicates_nothing(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, victim: str
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    config = pg_to_mariadb_config(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.orders", f"{fresh_mariadb_db.database}.orders")]
    )
    with running(config) as supervisor:
        wait_ready(supervisor)
        load = Load(fresh_pg_db, 100_000, txn=100).start()
        deadline = time.monotonic() + 120
        while supervisor.status() is None or supervisor.status().streams[0].applied_events < 30_000:
            assert time.monotonic() < deadline, "the pipeline did not reach 30,000 applied changes"
            assert load.error is None, load.error
            time.sleep(0.1)
        actor = supervisor.shards[1].actor if victim == "applier" else next(iter(supervisor.streams.values())).actor
        pid = ray.get(actor.pid.remote()) if victim == "applier" else ray.get(actor.stats.remote()).pid
        os.kill(pid, signal.SIGKILL)
        load.wait(300)
        wait_equal(
            fresh_pg_db,
            "public.orders",
            fresh_mariadb_db,
            f"{fresh_mariadb_db.database}.orders",
            timeout_s=180,
            supervisor=supervisor,
        )
        after = ray.get(actor.pid.remote()) if victim == "applier" else ray.get(actor.stats.remote()).pid
    assert after != pid, f"the {victim} actor was not restarted"
