"""The supervisor as the Helm chart starts it — `ray job submit -- worker-sync run --config FILE --detached`,
the RayJob's entrypoint — on a real multi-process Ray cluster (`ray start` head offering the
`worker-sync-supervisor` resource, as the chart's head does, plus one worker node, on loopback, in a temp dir
of its own, stopped by PID), comes back without anyone's help:

- kill -9 of the supervisor's process mid-workload: Ray starts it again, the pipeline resumes from the
  committed positions, and the target ends equal to the source;
- the target database down at start-up: the job still succeeds, the supervisor waits (/readyz 503 saying
  why, retries with backoff) and syncs once the database is up.

The times are printed (`pytest -s`) for the record.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from actors.harness import Endpoint
from actors.harness.mariadb import LocalMariaDB
from actors.harness.ports import free_port
from actors.harness.ray_cluster import RAY, LocalRayCluster, local_ray_cluster
from actors.supervisor_actor import SUPERVISOR_NAME, SUPERVISOR_RESOURCE
from tests.actors.test_pipeline import Load, create_orders, wait_equal
from tests.actors.test_source_restart import insert_rows
from tests.pipeline_helpers import pg_to_mariadb_config_text
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: The chart's RayJob entrypoint (tests/helm/test_chart_supervisor.py checks the chart renders exactly this).
ENTRYPOINT = ["worker-sync", "run", "--config", "{config}", "--detached", "--log-level", "info"]


@contextmanager
def chart_like_cluster() -> Iterator[LocalRayCluster]:
    """A head that offers no CPU and the supervisor's resource (the chart's head), and one worker node."""
    with local_ray_cluster(workers=1, head_cpus=0, head_resources={SUPERVISOR_RESOURCE: 1}) as cluster:
        yield cluster


def write_config(pg: Endpoint, mariadb: Endpoint, tmp_path: Path, gcs: str, target: str) -> tuple[Path, str]:
    """A PostgreSQL -> MariaDB config joining the cluster; returns its path and the supervisor's base URL."""
    port = free_port()
    text = pg_to_mariadb_config_text(pg, mariadb, tmp_path, [("public.orders", target)], ray_address=gcs)
    text = text.replace("http:\n  token_env: null\n", f"http:\n  token_env: null\n  port: {port}\n")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path, f"http://127.0.0.1:{port}"


def submit_as_the_chart_does(cluster: LocalRayCluster, config: Path) -> tuple[str, float]:
    """`ray job submit` of the RayJob's entrypoint; waits for the job to succeed. Returns its logs, seconds."""
    started = time.monotonic()
    result = subprocess.run(
        [str(RAY), "job", "submit", "--address", cluster.dashboard, "--",
         *(part.replace("{config}", str(config)) for part in ENTRYPOINT)],
        env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, f"the ensure job failed: {result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    assert re.search(r"Job 'raysubmit_\w+' succeeded", result.stdout + result.stderr), result.stdout[-3000:]
    return result.stdout, time.monotonic() - started


def supervisor_actors(cluster: LocalRayCluster) -> list[dict]:
    return [a for a in cluster.actors() if a.get("name") == SUPERVISOR_NAME]


def alive_supervisor(cluster: LocalRayCluster) -> dict | None:
    alive = [a for a in supervisor_actors(cluster) if a["state"] == "ALIVE" and a.get("pid")]
    return alive[0] if alive else None


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:  # not listening (yet, or any more)
        return 0, str(exc)


def ready(base: str) -> bool:
    return http_get(f"{base}/readyz")[0] == 200


def not_ready(base: str) -> list[str]:
    code, body = http_get(f"{base}/status")
    return json.loads(body).get("not_ready", []) if code == 200 else [f"/status: {code} {body[:200]}"]


def test_kill_9_of_the_detached_supervisor_resumes_by_itself(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    target = f"{fresh_mariadb_db.database}.orders"
    with chart_like_cluster() as cluster:
        config, base = write_config(fresh_pg_db, fresh_mariadb_db, tmp_path, cluster.gcs, target)
        _, submit_s = submit_as_the_chart_does(cluster, config)
        started = time.monotonic()
        wait_until(lambda: ready(base), timeout_s=180, what=lambda: f"/readyz 200: {not_ready(base)}")
        ready_s = time.monotonic() - started
        first = alive_supervisor(cluster)
        assert first is not None and first["node_id"] == head_node(cluster), (first, head_node(cluster))

        load = Load(fresh_pg_db, 20_000, txn=20).start()
        wait_until(lambda: load.done >= 5_000, timeout_s=120, what="a quarter of the workload")
        killed_at = time.monotonic()
        os.kill(first["pid"], signal.SIGKILL)  # the supervisor's process, as an OOM kill would
        wait_until(
            lambda: (a := alive_supervisor(cluster)) is not None and a["pid"] != first["pid"],
            timeout_s=120,
            what=lambda: f"Ray to start the supervisor again: {supervisor_actors(cluster)}",
        )
        back_s = time.monotonic() - killed_at
        wait_until(lambda: ready(base), timeout_s=180, what=lambda: f"/readyz 200 again: {not_ready(base)}")
        ready_again_s = time.monotonic() - killed_at
        load.wait(timeout_s=300)
        wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, target, timeout_s=180)
        equal_s = time.monotonic() - killed_at
        second = alive_supervisor(cluster)
        assert second is not None and second["node_id"] == first["node_id"], "the restart left the head"
        assert second.get("num_restarts", 1) >= 1, second
        jobs = json.loads(
            subprocess.run(
                [str(RAY), "list", "jobs", "--address", cluster.dashboard, "--format", "json"],
                env=cluster.env, capture_output=True, text=True, timeout=120, check=True,
            ).stdout
        )  # fmt: skip
    assert len(jobs) == 1, f"nobody may submit again: {jobs}"
    print(
        f"\ndetached supervisor: ensure job {submit_s:.1f}s, ready {ready_s:.1f}s after; kill -9 -> Ray restarted "
        f"it in {back_s:.1f}s, /readyz 200 after {ready_again_s:.1f}s, 20,000-change workload equal at the target "
        f"{equal_s:.1f}s after the kill"
    )


def head_node(cluster: LocalRayCluster) -> str:
    return next(node["node_id"] for node in cluster.alive_nodes() if node.get("is_head_node"))


def test_start_with_the_target_down_waits_then_syncs(fresh_pg_db: Endpoint, tmp_path: Path) -> None:
    with LocalMariaDB(tmp_path / "maria") as maria_server:
        maria = maria_server.endpoint.create_database("late")
        create_orders(fresh_pg_db, maria)
        insert_rows(fresh_pg_db, range(1, 201))
        maria_server.shutdown(signal.SIGTERM)
        with chart_like_cluster() as cluster:
            config, base = write_config(fresh_pg_db, maria, tmp_path, cluster.gcs, "late.orders")
            output, submit_s = submit_as_the_chart_does(cluster, config)
            assert '"supervisor": "waiting"' in output or '"supervisor": "running"' in output, output[-2000:]
            # It waits: alive, not ready, saying why, and trying again (attempt 2 or later) instead of exiting.
            wait_until(
                lambda: any(re.search(r"attempt ([2-9]|\d\d+),", reason) for reason in not_ready(base)),
                timeout_s=120,
                what=lambda: f"a second start-up attempt: {not_ready(base)}",
            )
            reasons = not_ready(base)
            assert http_get(f"{base}/healthz")[0] == 200 and not ready(base), reasons
            assert any("mysql" in reason for reason in reasons), reasons
            waiting = alive_supervisor(cluster)
            assert waiting is not None and waiting.get("num_restarts", 0) == 0, waiting

            up_at = time.monotonic()
            maria_server.relaunch()
            insert_rows(fresh_pg_db, range(201, 301))
            wait_equal(fresh_pg_db, "public.orders", maria, "late.orders", timeout_s=180)
            equal_s = time.monotonic() - up_at
            wait_until(lambda: ready(base), timeout_s=60, what=lambda: f"/readyz 200: {not_ready(base)}")
    print(
        f"\ntarget down at start-up: ensure job {submit_s:.1f}s and it succeeded; waiting reported: {reasons[0]!r}; "
        f"target equal {equal_s:.1f}s after the database came up"
    )
