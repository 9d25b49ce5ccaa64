"""Keeps bench/binlog_drain.py from rotting: its --quick run as a subprocess (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.quick import run_quick


def test_quick_run_drains_both_workloads_in_every_mode(tmp_path: Path) -> None:
    code, _, err = run_quick("binlog_drain.py", tmp_path, timeout_s=300)
    assert code == 0, err[-4000:]
    result = json.loads((tmp_path / "binlog_drain.json").read_text())
    for workload in ("one_txn", "mixed"):
        assert result[workload]["changes"] == 2_000
        rates = result[workload]["events_per_s_median"]
        assert set(rates) == {"fast", "library-events", "library"} and all(rate > 0 for rate in rates.values())
