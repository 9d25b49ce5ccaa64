"""`ray job submit` exactly as the README shows it, on a real two-node Ray cluster (`ray start` head and one
worker, on loopback, in a temp dir of their own): rows arrive, the actors are spread over both nodes (the
state API says so), and `ray job stop` ends the job cleanly. The cluster is stopped by PID: `ray stop` would
also stop the test session's own Ray."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from actors.harness import Endpoint
from actors.harness.ray_cluster import RAY, VENV_BIN, local_ray_cluster, node_ports, processes_of, ray_env, stop_cluster
from tests.actors.test_pipeline import create_orders, wait_equal
from tests.actors.test_source_restart import insert_rows
from tests.pipeline_helpers import pg_to_mariadb_config_text
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: Re-exported for the other multi-node tests (they import them from here).
__all__ = ["RAY", "ROOT", "VENV_BIN", "node_ports", "processes_of", "ray_cluster", "ray_env", "stop_cluster"]


def ray(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(RAY), *args], env=ray_env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout_s
    )
    assert result.returncode == 0, f"ray {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def alive_nodes(dashboard: str) -> list[dict]:
    listed = json.loads(ray("list", "nodes", "--address", dashboard, "--format", "json").stdout)
    return [node for node in listed if node["state"] == "ALIVE"]


@contextmanager
def ray_cluster(workers: int = 1, **options: Any) -> Iterator[tuple[str, str, Path]]:
    """A head and ``workers`` worker nodes on loopback (actors.harness.ray_cluster: ``head_cpus``,
    ``worker_cpus``, ``env``); yields (GCS address, dashboard URL, temp dir)."""
    with local_ray_cluster(workers, **options) as cluster:
        yield cluster.gcs, cluster.dashboard, cluster.temp_dir


def test_ray_job_submit_as_the_readme_shows_on_two_nodes(fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path):
    create_orders(fresh_pg_db, fresh_mariadb_db)
    target = f"{fresh_mariadb_db.database}.orders"
    config = tmp_path / "config.yaml"
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.orders", target)])
    config.write_text(text.replace("supervisor:\n", "supervisor:\n  ray_address: auto\n", 1))
    insert_rows(fresh_pg_db, range(1, 101))
    with ray_cluster(workers=1) as (_gcs, dashboard, _temp_dir):
        started = time.monotonic()
        submitted = ray(
            "job", "submit", "--address", dashboard, "--working-dir", ".", "--no-wait", "--",
            "python", "supervisor.py", "--config", str(config),
        )  # fmt: skip
        job = re.findall(r"raysubmit_[A-Za-z0-9]+", submitted.stdout)[0]
        wait_until(
            lambda: len(wait_rows(fresh_mariadb_db, target)) > 0,
            timeout_s=180,
            what=lambda: f"the first row: {ray('job', 'logs', job, '--address', dashboard).stdout[-3000:]}",
        )
        first_row_s = time.monotonic() - started
        insert_rows(fresh_pg_db, range(101, 201))
        wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, target, timeout_s=120)

        listed = json.loads(ray("list", "actors", "--address", dashboard, "--format", "json", "--limit", "1000").stdout)
        ours = [
            a for a in listed if a["state"] == "ALIVE" and a.get("name", "").split(":")[0] in ("capture", "applier")
        ]
        nodes = {a["node_id"] for a in ours}
        assert len(ours) >= 3 and len(nodes) >= 2, (
            [(a["name"], a["node_id"][:8], a.get("num_restarts"), a.get("death_cause")) for a in listed],
            [(n["node_id"][:8], n.get("is_head_node")) for n in alive_nodes(dashboard)],
        )

        ray("job", "stop", job, "--address", dashboard)  # SIGTERM: what is in flight is applied and committed
        status = ray("job", "status", job, "--address", dashboard).stdout
        logs = ray("job", "logs", job, "--address", dashboard).stdout
    print(f"ray job submit -> first row on the target: {first_row_s:.1f}s; actors on {len(nodes)} nodes")
    assert "stopped" in status.lower(), status
    assert "SIGTERM received, finishing what is in flight" in logs, logs[-3000:]


def wait_rows(db: Endpoint, namespace: str) -> list:
    from actors.harness.compare import table_rows

    return list(table_rows(db, namespace))
