"""Keeps bench/control_plane.py from rotting: a 10,000-change backlog, one run, as a subprocess, end to end.

No timing assertions (figures on a shared 2-core machine are noise at this size): the test checks the shape
of the result and that its figures are sane (positive where something ran, shares within 0..1), that the
actors were found through the state API, and that the target equals the source (the bench compares them
itself and exits 1 when they differ).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.quick import run_quick

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.mariadb, pytest.mark.timeout(300)]


def test_quick_run_reports_sane_cpu_figures_and_an_equal_target(tmp_path: Path) -> None:
    code, out, err = run_quick("control_plane.py", tmp_path, timeout_s=240)
    assert code == 0, f"exit {code}; stderr:\n{err[-4000:]}"
    printed = json.loads(out)  # stdout is the JSON document and nothing else
    result = json.loads((tmp_path / "control_plane.json").read_text())
    assert printed == result
    assert (tmp_path / "control_plane.png").stat().st_size > 0

    assert result["bench"] == "control_plane"
    assert "--quick" in result["command"]
    assert result["ok"] is True and "error" not in result, result.get("error")
    assert result["target_equals_source"] is True, result["differences"]
    assert result["settings"]["backlog_changes"] == 10_000
    (run,) = result["runs"]
    assert run["written"]["changes"] == 10_000
    drain = run["drain"]
    assert drain["rows_per_s"] > 0 and drain["start_to_drained_rows_per_s"] > 0, drain
    assert 0 <= drain["rows"] <= 10_000 and drain["seconds"] >= 0, drain
    # The actors were found through the state API: the capture actor and the two applier shards, with pids.
    classes = sorted(a["class"] for a in run["actors"])
    assert classes == ["ApplierShard", "ApplierShard", "CaptureActor"], run["actors"]
    assert all(a["pid"] > 0 for a in run["actors"])
    # Over the whole run (start-up included) every group used some CPU: figures are read, not left at 0.
    whole = run["whole_run"]
    assert whole["supervisor_cpu_s"] > 0, whole
    assert whole["actors_cpu_s"].get("CaptureActor", 0) > 0 and whole["actors_cpu_s"].get("ApplierShard", 0) > 0, whole
    assert whole["worker_sync_cpu_s"] >= whole["supervisor_cpu_s"] + sum(whole["actors_cpu_s"].values()) - 0.011
    assert whole["ray_system_cpu_s"] > 0 and {"gcs_server", "raylet"} <= set(whole["ray_system_by_process_cpu_s"])
    assert 0 < whole["supervisor_share"] < 1, whole
    window = run["drain_window"]  # a fraction of a second here: ticks of 10 ms, so zeros are possible
    assert window["supervisor_share"] is None or 0 <= window["supervisor_share"] <= 1, window
    assert all(v >= 0 for v in (window["supervisor_cpu_s"], window["worker_sync_cpu_s"], window["ray_system_cpu_s"]))
    median = result["median"]
    assert median["drain_rows_per_s"] == drain["rows_per_s"]
    assert 0 <= run["machine_cpu_busy"] <= 1  # over the drain window: a drain of a few polls can read no tick
    assert "control plane" in err  # the answer line
