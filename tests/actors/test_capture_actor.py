"""The capture actor under Ray: batches, commits, and a kill -9 in the middle of a workload."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import ray
from ray.exceptions import ObjectLostError, RayActorError

from actors.capture import CaptureActor
from actors.core.encoding import decode_batch
from actors.core.events import ChangeEvent, Op, Position
from actors.core.plan import RoutingPlan
from actors.core.streams import StreamSpec
from actors.harness import Endpoint
from actors.harness.secret_files import write_secret_file
from config.model import MySqlNode, PostgresNode, Tls

pytestmark = pytest.mark.usefixtures("ray_session")


def pg_spec(db: Endpoint, tmp_path: Path, tables: list[str]) -> StreamSpec:
    secret = write_secret_file(tmp_path, "pg-password", db.capture.password)
    node = PostgresNode(
        host=db.host,
        port=db.port,
        database=db.database,
        username=db.capture.user,
        password_file=secret,
        tls=Tls(mode="disable"),
        slot_name=f"ws_{db.database}"[:63],
    )
    return StreamSpec(stream=f"pg-{db.database}", node_name="pg", node=node, tables=tables)


def start_capture(spec: StreamSpec) -> ray.actor.ActorHandle:
    """A capture actor that puts each batch whole, as one slice (one shard, no audit)."""
    return CaptureActor.remote(spec, RoutingPlan(1, [], []), False)


class Consumer:
    """What the supervisor and a shard do with a capture actor, reduced to their core: poll, fetch the
    slice, keep, commit."""

    def __init__(self, actor: ray.actor.ActorHandle, *, commit_every: int = 1) -> None:
        self.actor = actor
        # Committing only every few batches leaves delivered-but-uncommitted batches in flight,
        # as in the real pipeline: a restarted actor reads them again and must not resend them.
        self.commit_every = commit_every
        self.batches = 0
        self.events: list[ChangeEvent] = []
        self.last: Position | None = None
        self.committed: Position | None = None  # what the supervisor would persist
        self.restarts_seen = 0

    def step(self, *, commit: bool = True) -> None:
        try:
            captured = ray.get(self.actor.poll.remote(1_000, 0.2, self.last, self.committed, self.batches + 1))
            if captured is None:
                return
            batch = decode_batch(ray.get(captured.slices[0].payload)) if captured.slices else None
        except (RayActorError, ObjectLostError):  # the slice died with its actor: nothing of it was kept
            self.restarts_seen += 1
            time.sleep(0.2)  # the actor is being restarted by Ray
            return
        if batch is None:  # only a position (a transaction on tables nobody captures)
            self.batches += 1
            self.last = captured.upto or self.last
            return
        self.events.extend(batch.events)
        self.batches += 1
        if batch.upto is not None:
            self.last = batch.upto
            if commit and self.batches % self.commit_every == 0:
                self.committed = batch.upto
                ray.get(self.actor.commit.remote(batch.upto))

    def until(self, n: int, timeout_s: float, failures: list[BaseException] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.events) < n:
            assert not failures, f"the workload failed: {failures}"
            assert time.monotonic() < deadline, f"timed out with {len(self.events)} of {n} events"
            self.step()


def test_batches_and_commits_through_ray(fresh_pg_db: Endpoint, tmp_path: Path) -> None:
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO public.items SELECT g, 'snap' FROM generate_series(1, 3000) g")
    actor = start_capture(pg_spec(fresh_pg_db, tmp_path, ["public.items"]))
    try:
        consumer = Consumer(actor)
        consumer.until(3000, timeout_s=60)
        with fresh_pg_db.connect("admin") as conn:
            conn.execute("UPDATE public.items SET v = 'live' WHERE id <= 10")
        consumer.until(3010, timeout_s=30)
        stats = ray.get(actor.stats.remote())
    finally:
        ray.get(actor.close.remote())
        ray.kill(actor)
    assert [e.op for e in consumer.events[:3000]] == [Op.READ] * 3000
    assert [e.key["id"] for e in consumer.events[3000:]] == list(range(1, 11))
    assert stats.events_delivered == 3010
    assert stats.committed is not None and stats.committed == stats.delivered


def mariadb_spec(db: Endpoint, tmp_path: Path, tables: list[str]) -> StreamSpec:
    secret = write_secret_file(tmp_path, "mariadb-password", db.capture.password)
    node = MySqlNode(
        host=db.host,
        port=db.port,
        database=db.database,
        username=db.capture.user,
        password_file=secret,
        tls=Tls(mode="disable"),
    )
    return StreamSpec(stream=f"mariadb-{db.database}", node_name="mysql", node=node, tables=tables)


def _pg_workload(db: Endpoint, tmp_path: Path, total: int):
    with db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, qty int)")

    def write() -> None:
        with db.connect("admin") as conn:
            for start in range(1, total + 1, 500):
                conn.execute(
                    "INSERT INTO public.orders SELECT g, g %% 7 FROM generate_series(%s::int, %s::int) g",
                    (start, min(start + 499, total)),
                )

    return pg_spec(db, tmp_path, ["public.orders"]), write


def _mariadb_workload(db: Endpoint, tmp_path: Path, total: int):
    with db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE orders (id int PRIMARY KEY, qty int)")

    def write() -> None:
        with db.connect("admin") as conn, conn.cursor() as cursor:
            for start in range(1, total + 1, 500):
                cursor.execute(f"INSERT INTO orders SELECT seq, seq % 7 FROM seq_{start}_to_{min(start + 499, total)}")

    return mariadb_spec(db, tmp_path, [f"{db.database}.orders"]), write


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_kill_9_mid_workload_loses_nothing_and_repeats_nothing(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    total = 50_000
    if engine == "postgresql":
        spec, _write = _pg_workload(request.getfixturevalue("fresh_pg_db"), tmp_path, total)
    else:
        spec, _write = _mariadb_workload(request.getfixturevalue("fresh_mariadb_db"), tmp_path, total)
    actor = start_capture(spec)
    consumer = Consumer(actor, commit_every=4)

    failures: list[BaseException] = []

    def write() -> None:
        try:
            _write()
        except BaseException as exc:
            failures.append(exc)
            raise

    writer = threading.Thread(target=write)
    try:
        # The snapshot of the empty table must be done before the workload, so every row streams.
        deadline = time.monotonic() + 60
        while consumer.last is None:
            assert time.monotonic() < deadline, "snapshot did not finish"
            consumer.step()
        writer.start()
        consumer.until(total // 3, timeout_s=120, failures=failures)
        pid = ray.get(actor.stats.remote()).pid
        os.kill(pid, signal.SIGKILL)
        consumer.until(total, timeout_s=180, failures=failures)
        writer.join()
        stats = ray.get(actor.stats.remote())
    finally:
        writer.join() if writer.is_alive() else None
        ray.kill(actor)
    assert stats.pid != pid, "the actor was not restarted"
    assert stats.committed is not None
    ids = [e.key["id"] for e in consumer.events]
    assert len(ids) == total
    assert ids == list(range(1, total + 1)), "events missing, repeated or out of order"
    positions = [e.position for e in consumer.events]
    assert len(set(positions)) == total
    assert positions == sorted(positions)
