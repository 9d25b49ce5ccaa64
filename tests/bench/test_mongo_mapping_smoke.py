"""Keeps bench/mongo_mapping.py from rotting: a small run as a subprocess, end to end (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = [sys.executable, str(ROOT / "bench" / "mongo_mapping.py")]


def test_small_run_maps_every_event_and_reports_every_stage(tmp_path: Path) -> None:
    command = [*BENCH, "--events", "300", "--repeat", "1", "--results-dir", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "mongo_mapping.json").read_text())
    assert json.loads(proc.stdout) == result
    assert result["ok"] is True and result["events"] == 300
    assert result["mapped_ops"] == {"insert": 100, "update": 100, "delete": 100}
    assert set(result["per_second"]) == {"decode", "map", "map+encode", "to_bulk"}
    assert all(value > 0 for value in result["per_second"].values())
    assert (tmp_path / "mongo_mapping.png").stat().st_size > 0
    assert "capture maps" in proc.stderr


def test_bad_arguments_are_refused_with_usage(tmp_path: Path) -> None:
    command = [*BENCH, "--events", "1", "--results-dir", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--events must be at least 3" in proc.stderr
    assert not (tmp_path / "mongo_mapping.json").exists()
