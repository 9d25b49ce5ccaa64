"""Keeps bench/pgbench_audit.py from rotting: its --quick run (scale 1, one client, 2 s per variant), end to end.

No timing assertions: the test checks that each variant produced a TPS figure, that the trigger variant wrote
its audit table and Worker-Sync its audit log, that the floor variant's pg_recvlogical streamed Worker-Sync's
plugin and left no slot behind, and that MariaDB's copy of the pgbench tables equals the source.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.quick import run_quick

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.mariadb, pytest.mark.timeout(300)]


def test_quick_run_measures_four_variants_and_the_copy_equals_the_source(tmp_path: Path) -> None:
    code, out, err = run_quick("pgbench_audit.py", tmp_path, timeout_s=240)
    assert code == 0, f"exit {code}; stderr:\n{err[-4000:]}"
    result = json.loads((tmp_path / "pgbench_audit.json").read_text())
    assert json.loads(out) == result
    assert (tmp_path / "pgbench_audit.png").stat().st_size > 0
    assert result["ok"] is True and "error" not in result
    assert "pgbench" in result["pgbench_version"]
    variants = {"alone", "worker_sync", "trigger_audit", "logical_floor"}
    assert [run["variant"] for run in result["runs"]] == ["alone", "worker_sync", "trigger_audit", "logical_floor"]
    assert set(result["tps_median"]) == variants
    for variant, tps in result["tps_median"].items():
        assert tps > 0, (variant, result["runs"])
    for variant in variants - {"alone"}:
        assert result[f"ratio_{variant}_to_alone"] > 0, variant
    assert result["ratio_worker_sync_to_logical_floor"] > 0
    (floor,) = [run for run in result["runs"] if run["variant"] == "logical_floor"]
    assert floor["catch_up_before_s"] >= 0 and floor["catch_up_after_s"] >= 0 and floor["walsender_cpus"]
    floor_settings = result["settings"]["logical_floor"]
    assert floor_settings["plugin"] == result["settings"]["worker_sync"]["decoder"]
    assert "pg_recvlogical" in floor_settings["command"] and "-f /dev/null" in floor_settings["command"]
    assert "(the floor)" in result["answer"]
    assert result["replication_slots_after_runs"] == ["ws_pgbench"]  # the floor's own slot dropped after its run
    assert result["audit_trail_rows"] > 0  # the trigger variant wrote its table
    assert result["worker_sync_audit_entries"] > 0  # and Worker-Sync its signed log
    assert result["target_equals_source"] is True, result["differences"]
    # Where the source's CPU went: the streaming variants' walsenders did work for each transaction.
    for variant in ("worker_sync", "logical_floor"):
        (run,) = [run for run in result["runs"] if run["variant"] == variant]
        assert run["walsender_us_per_transaction"] > 0 and run["walsender_wakeups_per_s"] > 0, run
        assert 0 <= run["source_cpu_idle_share"] <= 1.05, run
    assert set(result["source_cpu_median"]["logical_floor"]) >= {"walsender_us_per_transaction"}
    assert "walsender_cpu_share" not in result["source_cpu_median"]["alone"]
