"""`worker-sync run` as users start it: a process of its own, HTTP endpoints, kill -9 and a restart."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgspec
import pytest
import ray

from actors.harness import Endpoint
from actors.harness.compare import table_rows
from tests.actors.test_pipeline import Load, create_orders, wait_equal
from tests.pipeline_helpers import pg_to_mariadb_config, unreachable_config

pytestmark = pytest.mark.usefixtures("ray_session")
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = shutil.which("worker-sync", path=str(Path(sys.executable).parent)) or "worker-sync"


class RunProcess:
    """`worker-sync run --config FILE --http-port 0`, its HTTP port read from its JSON log."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "a")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [SCRIPT, "run", "--config", str(config_path), "--http-port", "0"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.port = self._port()

    def _port(self) -> int:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for line in Path(self.log_path).read_text().splitlines():
                if '"http: serving' in line:
                    message = json.loads(line)["message"]
                    return int(message.rsplit(":", 1)[1])
            if self.process.poll() is not None:
                pytest.fail(f"`worker-sync run` exited with {self.process.returncode}: {self.log_path.read_text()}")
            time.sleep(0.1)
        pytest.fail(f"`worker-sync run` did not start its HTTP server: {self.log_path.read_text()[-3000:]}")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status(self) -> dict:
        return json.loads(self.get("/status")[1])

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while self.get("/readyz")[0] != 200:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"not ready: {self.status()}"
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        finally:
            self.log.close()


def write_config(config, path: Path) -> Path:
    path.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
    return path


def test_run_serves_http_and_survives_kill_9_of_the_supervisor(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    target = f"{fresh_mariadb_db.database}.orders"
    config = pg_to_mariadb_config(
        fresh_pg_db,
        fresh_mariadb_db,
        tmp_path,
        [("public.orders", target)],
        ray_address=ray.get_runtime_context().gcs_address,
    )
    config_path = write_config(config, tmp_path / "config.yaml")
    first = RunProcess(config_path, tmp_path / "run-1.log")
    try:
        first.wait_ready()
        assert first.get("/healthz") == (200, b"ok\n")
        load = Load(fresh_pg_db, 100_000, txn=100).start()
        deadline = time.monotonic() + 120
        while first.status()["streams"][0]["applied_events"] < 30_000:
            assert time.monotonic() < deadline, first.status()
            assert load.error is None, load.error
            time.sleep(0.2)
        metrics = first.get("/metrics")[1].decode()
        for name in ("sync_lag_ms", "queue_depth", "error_ratio", "worker_sync_events_applied_total"):
            assert f"\n{name}{{" in metrics or metrics.startswith(f"{name}{{"), name
        assert first.get("/sync/manual")[0] == 404  # GET is not a route; POST needs a token
        status_cli = subprocess.run(
            [SCRIPT, "status", "--url", f"http://127.0.0.1:{first.port}", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert status_cli.returncode == 0, status_cli.stderr
        assert json.loads(status_cli.stdout)["streams"][0]["stream"] == "postgresql"
    finally:
        first.process.kill()  # kill -9 of the supervisor, in the middle of the workload
        first.log.close()
    assert first.process.wait(30) == -signal.SIGKILL
    committed = (tmp_path / "state" / "postgresql.offset").exists()
    assert committed, "no position was committed before the kill"
    second = RunProcess(config_path, tmp_path / "run-2.log")
    try:
        load.wait(300)
        wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, target, timeout_s=180)
        assert len(table_rows(fresh_mariadb_db, target)) > 1_000
    finally:
        code = second.stop(signal.SIGTERM)
    assert code == 0, (
        f"`worker-sync run` did not stop cleanly on SIGTERM: {(tmp_path / 'run-2.log').read_text()[-3000:]}"
    )


def test_run_refuses_a_bad_config_and_an_unreachable_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("links: [{name: x}]\n")
    result = subprocess.run([SCRIPT, "run", "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "missing required field" in result.stderr
    down = unreachable_config(tmp_path, "never-print-me-4711")
    result = subprocess.run([SCRIPT, "run", "--config", str(down)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "127.0.0.1" in result.stderr
    assert "never-print-me-4711" not in result.stderr + result.stdout
