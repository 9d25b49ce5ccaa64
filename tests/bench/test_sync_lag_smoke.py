"""Keeps bench/sync_lag.py from rotting: its --quick run, as a subprocess, end to end.

No timing assertions (figures on a shared 2-core machine are noise at this size): the test checks the
shape of the result, that every probe marker arrived, and that every target equals its source (the
bench compares them itself and exits 1 when one differs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.quick import run_quick

LINKS = ("pg-to-mariadb", "mariadb-to-pg")

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.mariadb, pytest.mark.timeout(300)]


def test_quick_run_reports_every_field_and_equal_targets(tmp_path: Path) -> None:
    code, out, err = run_quick("sync_lag.py", tmp_path, timeout_s=180)
    assert code == 0, f"exit {code}; stderr:\n{err[-4000:]}"
    printed = json.loads(out)  # stdout is the JSON document and nothing else
    result = json.loads((tmp_path / "sync_lag.json").read_text())
    assert printed == result
    assert (tmp_path / "sync_lag.png").stat().st_size > 0

    assert result["bench"] == "sync_lag"
    assert "--quick" in result["command"]
    assert result["machine"]["cores"] >= 1
    assert result["ok"] is True
    assert set(result["links"]) == set(LINKS)
    for link in LINKS:
        data = result["links"][link]
        assert "error" not in data, data.get("error")
        (step,) = data["steps"]
        assert step["offered_per_s"] == 300
        for key in ("achieved_write_per_s", "applied_per_s"):
            assert step[key] > 0, (link, key, step)
        for key in ("p50", "p95", "p99", "max"):
            assert step["lag_ms"][key] is not None and step["lag_ms"][key] >= 0, (link, step["lag_ms"])
        assert step["lag_ms"]["missing"] == 0
        assert {"p50", "p99"} <= set(step["supervisor_lag_ms"])
        assert "highest_rate_held_p99_under_500ms" in data
        assert data["markers"]["written"] > 0
        assert data["markers"]["all_arrived"] is True, data["markers"]
        assert data["markers"]["probe_errors"] == []
        backlog = data["backlog"]
        assert backlog["changes"] == 2_000
        for key in ("plain_loop_steady_per_s_median", "worker_sync_steady_per_s_median", "ratio_steady"):
            assert backlog[key] > 0, (link, key, backlog)
        assert data["target_equals_source"] is True, data["differences"]
        assert data["plain_loop_target_equals_source"] is True, data["plain_loop_differences"]
        for key in [k for k in data if k.endswith("_target_equals_source")]:  # every plain loop variant too
            assert data[key] is True, (link, key, data[key.replace("target_equals_source", "differences")])
        assert link in result["answer"][link]
