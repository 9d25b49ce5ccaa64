"""A capture actor dies while slices it put in the object store still wait for their shards: the
supervisor rewinds the stream to its committed position, and nothing is lost or applied or audited twice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import ray

from actors.harness import Endpoint
from tests.actors.test_audit_pipeline import assert_exactly_once, audited_orders, verify, wait_stored
from tests.actors.test_pipeline import Load, wait_equal, wait_ready
from tests.pipeline_helpers import running
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")


def test_slices_lost_with_their_capture_actor_are_read_again_and_none_is_applied_or_audited_twice(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, config, target = audited_orders(fresh_pg_db, fresh_mariadb_db, tmp_path)
    with running(config) as supervisor:
        wait_ready(supervisor)
        (stream,) = supervisor.streams.values()
        with fresh_mariadb_db.connect("admin") as lock, lock.cursor() as cursor:
            # Hold the target: the shards' calls wait on the lock, so later slices queue up in the feeds.
            cursor.execute(f"LOCK TABLES {target} WRITE")
            Load(fresh_pg_db, 3_000, txn=20).start().wait(60)
            wait_until(
                lambda: sum(shard.queued_parts for shard in supervisor.status().shards) >= 4,
                timeout_s=30,
                what="slices queued behind the locked target",
            )
            epoch = stream.epoch
            os.kill(ray.get(stream.actor.stats.remote()).pid, signal.SIGKILL)
            time.sleep(2)  # until Ray has noticed the owner's death (right after it, its objects still read)
            cursor.execute("UNLOCK TABLES")
        wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, target, timeout_s=120, supervisor=supervisor)
        assert stream.epoch > epoch, "the lost slices did not rewind the stream"
        assert_exactly_once(wait_stored(fresh_pg_db, 3_000, timeout_s=60), 3_000)
        status = supervisor.status()
    assert status.streams[0].error is None
    verify(path, capsys)
