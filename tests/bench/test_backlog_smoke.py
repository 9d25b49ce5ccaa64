"""Keeps bench/backlog.py from rotting: its --quick run (2,000 changes, one run per link), as a subprocess.

No timing assertions (figures on a shared 2-core machine are noise at this size): the test checks the shape
of the result, that every reader's copy equals the source (the bench compares them row by row and exits 1
when one differs), and that the start-up, memory and CPU figures were read (positive, actors and both servers
found).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.quick import run_quick

LINKS = ("pg-to-mariadb", "mariadb-to-pg")
READERS = ("plain_loop", "worker_sync", "worker_sync_audit")

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.mariadb, pytest.mark.timeout(420)]


def test_quick_run_reports_both_directions_with_equal_copies(tmp_path: Path) -> None:
    code, out, err = run_quick("backlog.py", tmp_path, timeout_s=360)
    assert code == 0, f"exit {code}; stderr:\n{err[-4000:]}"
    printed = json.loads(out)  # stdout is the JSON document and nothing else
    result = json.loads((tmp_path / "backlog.json").read_text())
    assert printed == result
    assert (tmp_path / "backlog.png").stat().st_size > 0

    assert result["bench"] == "backlog" and "--quick" in result["command"]
    assert result["ok"] is True, result
    assert result["ray_start_s"] > 0
    assert set(result["links"]) == set(LINKS)
    for link in LINKS:
        data = result["links"][link]
        assert "error" not in data, data.get("error")
        (run,) = data["runs"]
        assert run["written"]["changes"] == 2_000
        assert sorted(run["order"]) == sorted(READERS)
        for reader in READERS:
            assert data[f"{reader}_equals_source"] is True, (link, reader, data[f"{reader}_differences"])
            assert run[reader]["seconds"] > 0 and run[reader]["per_s"] > 0, (link, reader, run[reader])
            assert 0 < run[reader]["quiet_wait_s"] <= 20.5, (link, reader, run[reader])  # one window at least
        assert run["plain_loop"]["peak_rss_mib"] > 0
        # The plain loop spent CPU; both servers were found (at 2,000 changes either may stay under a clock tick).
        plain_cpu = run["plain_loop"]["cpu_s"]
        assert plain_cpu["plain loop"] > 0 and {"postgresql", "mariadb"} <= set(plain_cpu), plain_cpu
        for reader in ("worker_sync", "worker_sync_audit"):
            figures = run[reader]
            assert 0 < figures["startup_to_first_apply_s"] <= figures["seconds"], figures
            memory = figures["memory"]
            assert memory["supervisor_peak_mib"] > 0 and memory["ray_own_rss_mib"] > 0, memory
            assert {"CaptureActor", "ApplierShard"} <= set(memory["actors_peak_mib"]), memory
            assert {"gcs_server", "raylet"} <= set(memory["ray_own_by_process_rss_mib"]), memory
            cpu = figures["cpu_s"]  # each process starts up (imports, connections): never under a clock tick
            for group in ("supervisor", "CaptureActor", "ApplierShard"):
                assert cpu.get(group, 0) > 0, (link, reader, group, cpu)
            assert {"postgresql", "mariadb"} <= set(cpu) and cpu["postgresql"] + cpu["mariadb"] > 0, (link, reader, cpu)
        assert "AuditChain" in run["worker_sync_audit"]["memory"]["actors_peak_mib"]
        median = data["median"]
        assert median["ratio_worker_sync"] > 0 and median["ratio_worker_sync_audit"] > 0, median
        assert median["ratio_worker_sync_with_ray_start"] > 0, median
        assert link in err  # the answer lines
