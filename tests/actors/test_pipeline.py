"""The sync pipeline end to end: capture actors, applier shards and the supervisor on real servers."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import ray

from actors.harness import Endpoint
from actors.harness.compare import diff_tables, table_rows
from tests.pipeline_helpers import pg_to_mariadb_config, running

pytestmark = pytest.mark.usefixtures("ray_session")

PG_ORDERS = """
CREATE TABLE public.orders (
    id bigint PRIMARY KEY, customer varchar(255) NOT NULL, qty integer NOT NULL, price numeric(12,2) NOT NULL,
    paid boolean NOT NULL DEFAULT false, placed_at timestamptz NOT NULL DEFAULT now(), note text
)
"""
MARIADB_ORDERS = """
CREATE TABLE orders (
    id bigint PRIMARY KEY, customer varchar(255) NOT NULL, qty int NOT NULL, price decimal(12,2) NOT NULL,
    paid boolean NOT NULL DEFAULT false, placed_at datetime(6) NOT NULL, note longtext
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

    def __init__(
        self,
        pg: Endpoint,
        changes: int,
        *,
        txn: int = 50,
        seed: int = 3,
        first_id: int = 1,
        per_second: float | None = None,
    ) -> None:
        """``per_second``: a steady rate (paced per transaction); None writes as fast as the server takes it."""
        self.pg, self.target, self.txn, self.first_id = pg, changes, txn, first_id
        self.per_second = per_second
        self.rng = random.Random(seed)
        self.done = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            live: list[int] = []
            next_id = self.first_id
            started = time.monotonic()
            with self.pg.connect("admin", autocommit=False) as conn:
                while self.done < self.target:
                    if self.per_second:
                        ahead = started + self.done / self.per_second - time.monotonic()
                        if ahead > 0:
                            time.sleep(ahead)
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


MARIADB_KINDS = """
CREATE TABLE kinds (
    id bigint PRIMARY KEY, amount decimal(20,6), ratio double, happened datetime(6), stamped timestamp(6) NULL,
    doc json, raw blob, size enum('s','m','l'), tags set('red','green','blue'), flags bit(8), span time(6),
    born year, ident char(36), active tinyint(1), label varchar(40)
)
"""
PG_KINDS = """
CREATE TABLE public.kinds (
    id bigint PRIMARY KEY, amount numeric(20,6), ratio double precision, happened timestamp(6),
    stamped timestamptz(6), doc jsonb, raw bytea, size text, tags text[], flags bit(8), span interval,
    born smallint, ident varchar(36), active boolean, label varchar(40)
)
"""


def test_mariadb_to_postgresql_every_mapped_type_arrives(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute(MARIADB_KINDS)
        cursor.execute("INSERT INTO kinds (id, amount, label) VALUES (1, 1.5, 'from the snapshot')")
    with fresh_pg_db.connect("admin") as conn:
        conn.execute(PG_KINDS)
    source = f"{fresh_mariadb_db.database}.kinds"
    config = pg_to_mariadb_config(fresh_pg_db, fresh_mariadb_db, tmp_path, [(source, "public.kinds")], reverse=True)
    with running(config) as supervisor:
        wait_ready(supervisor)
        with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO kinds VALUES (2, 12345678901234.123456, 0.1, '2024-02-29 23:59:58.123456', "
                "'2024-03-01 12:00:00.5', '{\"a\": [1, 2.50, null], \"b\": \"x\"}', x'00ff10', 'm', 'red,blue', "
                "b'10100101', '-12:34:56.789', 1999, '12345678-1234-5678-1234-567812345678', 1, 'naïve ☃')"
            )
            cursor.execute("INSERT INTO kinds (id, label) VALUES (3, 'nulls everywhere')")
            cursor.execute("UPDATE kinds SET amount = amount + 1, tags = '', active = 0 WHERE id = 2")
            cursor.execute("UPDATE kinds SET id = 4 WHERE id = 3")
            cursor.execute("DELETE FROM kinds WHERE id = 1")
        deadline = time.monotonic() + 60
        while True:
            problems = diff_tables(fresh_mariadb_db, source, fresh_pg_db, "public.kinds")
            if not problems:
                break
            assert time.monotonic() < deadline, problems
            time.sleep(0.2)
    with fresh_pg_db.connect("admin") as conn:
        row = conn.execute("SELECT amount, tags, span, ident::text, doc FROM public.kinds WHERE id = 2").fetchone()
    assert str(row[0]) == "12345678901235.123456"
    assert row[1] == []
    assert str(row[2]) == "-1 day, 11:25:03.211000"
    assert row[3] == "12345678-1234-5678-1234-567812345678"
    assert row[4] == {"a": [1, 2.5, None], "b": "x"}


PG_TYPES = """
CREATE TABLE public.types (
    id bigint PRIMARY KEY, small smallint, amount numeric(20,6), ratio double precision, real_v real,
    flag boolean, label varchar(40), body text, raw bytea, day date, clock time(6), happened timestamp(6),
    stamped timestamptz(6), doc jsonb, ident uuid, tags text[]
)
"""
MARIADB_TYPES = """
CREATE TABLE types (
    id bigint PRIMARY KEY, small smallint, amount decimal(20,6), ratio double, real_v float,
    flag tinyint(1), label varchar(40), body longtext, raw longblob, day date, clock time(6),
    happened datetime(6), stamped datetime(6), doc json, ident char(36), tags json
)
"""


def test_postgresql_to_mariadb_every_mapped_type_arrives(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    with fresh_pg_db.connect("admin") as conn:
        conn.execute(PG_TYPES)
        conn.execute("ALTER TABLE public.types REPLICA IDENTITY FULL")
        conn.execute("INSERT INTO public.types (id, label) VALUES (1, 'from the snapshot')")
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute(MARIADB_TYPES)
    target = f"{fresh_mariadb_db.database}.types"
    config = pg_to_mariadb_config(fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.types", target)])
    with running(config) as supervisor:
        wait_ready(supervisor)
        with fresh_pg_db.connect("admin") as conn:
            conn.execute(
                "INSERT INTO public.types VALUES (2, -7, 12345678901234.123456, 0.1, 1.5, true, 'naïve ☃', "
                "repeat('long ', 5000), '\\x00ff10', '1999-12-31', '13:14:15.5', '2024-02-29 23:59:58.123456', "
                '\'2024-03-01 12:00:00.5+05:30\', \'{"a": [1, 2.50, null], "b": {"c": "x"}}\', '
                "'12345678-1234-5678-1234-567812345678', '{red,\"with space\",NULL}')"
            )
            conn.execute("INSERT INTO public.types (id, label) VALUES (3, 'nulls everywhere')")
            conn.execute("UPDATE public.types SET amount = amount + 1, flag = false WHERE id = 2")  # TOAST unchanged
            conn.execute("UPDATE public.types SET id = 4 WHERE id = 3")
            conn.execute("DELETE FROM public.types WHERE id = 1")
        deadline = time.monotonic() + 60
        while problems := diff_tables(fresh_pg_db, "public.types", fresh_mariadb_db, target):
            assert time.monotonic() < deadline, problems
            time.sleep(0.2)
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT amount, body, stamped, tags FROM {target} WHERE id = 2")
        amount, body, stamped, tags = cursor.fetchone()
    assert str(amount) == "12345678901235.123456"
    assert body == "long " * 5000  # the unchanged TOASTed value survived the update
    assert str(stamped) == "2024-03-01 06:30:00.500000"  # UTC
    assert json.loads(tags) == ["red", "with space", None]
