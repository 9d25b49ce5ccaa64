"""Keeps bench/writer_rate.py from rotting: its --quick run as a subprocess (no timing assertions: both ways
must apply every change and leave equal tables)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.quick import run_quick

pytestmark = [pytest.mark.slow, pytest.mark.mariadb, pytest.mark.timeout(240)]


def test_quick_run_applies_both_ways_to_equal_tables(tmp_path: Path) -> None:
    code, out, err = run_quick("writer_rate.py", tmp_path, timeout_s=180)
    assert code == 0, f"exit {code}; stderr:\n{err[-4000:]}"
    result = json.loads((tmp_path / "writer_rate.json").read_text())
    assert json.loads(out) == result
    assert result["ok"] is True and result["tables_equal"] is True
    (run,) = result["runs"]
    for way in ("pymysql_binding", "planned_literals"):
        assert run[way]["rows_per_s"] > 0 and run[way]["cpu_s_per_10k"] > 0, run
    assert result["speedup_rows_per_s"] > 0 and result["cpu_ratio"] > 0
    assert (tmp_path / "writer_rate.png").stat().st_size > 0
