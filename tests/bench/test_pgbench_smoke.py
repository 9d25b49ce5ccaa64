"""Keeps bench/pgbench_audit.py from rotting: its --quick run (scale 1, one client, 2 s per variant), end to end.

No timing assertions: the test checks that each variant produced a TPS figure, that the trigger variant wrote
its audit table and Worker-Sync its audit log, and that MariaDB's copy of the pgbench tables equals the source.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.mariadb, pytest.mark.timeout(300)]


def test_quick_run_measures_three_variants_and_the_copy_equals_the_source(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "bench" / "pgbench_audit.py"), "--quick", "--results-dir", str(tmp_path)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # the bench stops its servers and its Ray
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"bench/pgbench_audit.py --quick did not finish in 240 s; stderr:\n{err[-4000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}; stderr:\n{err[-4000:]}"
    result = json.loads((tmp_path / "pgbench_audit.json").read_text())
    assert json.loads(out) == result
    assert (tmp_path / "pgbench_audit.png").stat().st_size > 0
    assert result["ok"] is True and "error" not in result
    assert "pgbench" in result["pgbench_version"]
    assert {run["variant"] for run in result["runs"]} == {"alone", "worker_sync", "trigger_audit"}
    for variant, tps in result["tps_median"].items():
        assert tps > 0, (variant, result["runs"])
    assert result["ratio_worker_sync_to_alone"] > 0 and result["ratio_trigger_audit_to_alone"] > 0
    assert result["audit_trail_rows"] > 0  # the trigger variant wrote its table
    assert result["worker_sync_audit_entries"] > 0  # and Worker-Sync its signed log
    assert result["target_equals_source"] is True, result["differences"]
