"""/readyz tells the truth: it fails when a target stays unusable or a source stays down, and comes back when
they do; the metrics the alerts read (error_ratio, sync_lag_ms) show the failing stream meanwhile."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request

import pytest

from actors.control.status import FAILING_AFTER_S
from actors.harness import Endpoint
from actors.harness.postgres import LocalPostgres
from actors.metrics import REGISTRY
from tests.actors.test_pipeline import MARIADB_ORDERS, create_orders, wait_equal
from tests.actors.test_source_restart import insert_rows
from tests.pipeline_helpers import pg_to_mariadb_config, running, serving
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")


def readyz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def gauge(name: str, stream: str) -> float:
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == name and sample.labels.get("stream") == stream:
                return sample.value
    return 0.0


def seconds_until(check, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    wait_until(check, timeout_s=timeout_s, what=what)
    return time.monotonic() - started


def test_readyz_fails_while_a_target_table_is_gone_or_the_source_is_down_and_recovers(
    fresh_mariadb_db: Endpoint, tmp_path, capsys
):
    with LocalPostgres(tmp_path / "pg") as server:
        pg = server.endpoint.create_database("health")
        create_orders(pg, fresh_mariadb_db)
        target = f"{fresh_mariadb_db.database}.orders"
        config = pg_to_mariadb_config(pg, fresh_mariadb_db, tmp_path, [("public.orders", target)])
        with running(config) as supervisor, serving(supervisor, "token") as url:
            wait_until(lambda: readyz(url) == 200, timeout_s=120, what=lambda: f"ready: {supervisor.status()}")

            # Fault 1: the target table is dropped (a slice that cannot be applied by anyone's retry).
            with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cur:
                cur.execute("DROP TABLE orders")
            insert_rows(pg, range(1, 11))
            target_red = seconds_until(lambda: readyz(url) == 503, 60, "/readyz to fail with the target table gone")
            wait_until(  # /status says why (it is published every loop turn: a moment after /readyz)
                lambda: any("applier shard" in reason for reason in supervisor.status().not_ready),
                timeout_s=10,
                what=lambda: f"the shard named in /status: {supervisor.status().not_ready}",
            )
            with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cur:
                cur.execute(MARIADB_ORDERS)
            target_green = seconds_until(lambda: readyz(url) == 200, 60, "/readyz to recover")
            wait_equal(pg, "public.orders", fresh_mariadb_db, target, timeout_s=60, supervisor=supervisor)

            # Fault 2: the source goes down (and stays down).
            server.shutdown(signal.SIGINT)
            source_red = seconds_until(lambda: readyz(url) == 503, 60, "/readyz to fail with the source down")
            wait_until(
                lambda: any("stream" in reason for reason in supervisor.status().not_ready),
                timeout_s=10,
                what=lambda: f"the stream named in /status: {supervisor.status().not_ready}",
            )
            wait_until(
                lambda: gauge("error_ratio", "postgresql") > 0 and gauge("sync_lag_ms", "postgresql") > 1000,
                timeout_s=30,
                what="the failing stream in error_ratio and sync_lag_ms",
            )
            server.relaunch()
            source_green = seconds_until(lambda: readyz(url) == 200, 90, "/readyz to recover after the restart")
            insert_rows(pg, range(11, 21))
            wait_equal(pg, "public.orders", fresh_mariadb_db, target, timeout_s=60, supervisor=supervisor)
    with capsys.disabled():
        print(
            f"\n/readyz: target table gone -> 503 in {target_red:.1f}s (threshold {FAILING_AFTER_S:.0f}s), back in "
            f"{target_green:.1f}s; source down -> 503 in {source_red:.1f}s, back in {source_green:.1f}s"
        )
    assert target_red < FAILING_AFTER_S + 10 and source_red < FAILING_AFTER_S + 10
