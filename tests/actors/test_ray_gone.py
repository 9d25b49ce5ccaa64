"""When Ray itself goes away under `worker-sync run` (its node killed), /healthz stops answering 200 and `run`
ends with one JSON error line and exit code 3 (what the chart's restart policy acts on)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import msgspec

from actors.harness import Endpoint
from actors.harness.ports import free_port
from tests.actors.test_pipeline import create_orders, wait_equal
from tests.actors.test_ray_job import ROOT, VENV_BIN, ray_cluster, ray_env, stop_cluster
from tests.actors.test_source_restart import insert_rows
from tests.pipeline_helpers import pg_to_mariadb_config
from tests.waiting import wait_until


def get(port: int, path: str) -> int:
    """The HTTP status of ``path``; 0 when nothing answers (the process is gone)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_run_reports_a_lost_ray_and_exits_3(fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path):
    create_orders(fresh_pg_db, fresh_mariadb_db)
    target = f"{fresh_mariadb_db.database}.orders"
    with ray_cluster(workers=0) as (gcs, _dashboard, temp_dir):
        config = pg_to_mariadb_config(fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.orders", target)])
        config = msgspec.structs.replace(config, supervisor=msgspec.structs.replace(config.supervisor, ray_address=gcs))
        path = tmp_path / "config.yaml"
        path.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
        port = free_port()
        log_path = tmp_path / "run.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [str(VENV_BIN / "worker-sync"), "run", "--config", str(path), "--http-port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=ray_env(),
            )
            try:
                wait_until(
                    lambda: get(port, "/readyz") == 200, timeout_s=120, what=lambda: log_path.read_text()[-3000:]
                )
                insert_rows(fresh_pg_db, range(1, 51))
                wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, target, timeout_s=60)

                stop_cluster(temp_dir, signals=(signal.SIGKILL,))  # the node dies: GCS, raylet, workers
                killed = time.monotonic()
                wait_until(lambda: get(port, "/healthz") != 200, timeout_s=60, what="/healthz to stop saying ok")
                unhealthy_s = time.monotonic() - killed
                code = process.wait(timeout=180)
                exited_s = time.monotonic() - killed
            finally:
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGKILL)
    lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
    last = json.loads(lines[-1])
    print(f"Ray node killed: /healthz not 200 after {unhealthy_s:.1f}s, run exited {code} after {exited_s:.1f}s")
    assert code == 3, log_path.read_text()[-3000:]
    assert last["level"] == "error" and "Ray" in last["message"], last
    assert "Traceback" not in log_path.read_text()
