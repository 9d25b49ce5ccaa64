"""`worker-sync demo` end to end, short: servers, Ray, two-way sync, and the table comparison."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = shutil.which("worker-sync", path=str(Path(sys.executable).parent)) or "worker-sync"


@pytest.mark.slow
def test_demo_json_summary_says_every_target_equals_its_source(tmp_path: Path) -> None:
    result = subprocess.run(
        [SCRIPT, "demo", "--duration", "4", "--rate", "300", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["target_equals_source"] is True
    assert {link["link"] for link in summary["links"]} == {"demo-orders", "demo-inventory"}
    for link in summary["links"]:
        assert link["changes_written"] > 500
        assert link["changes_applied"] == link["changes_written"]
        assert link["differences"] == []
    assert "writing ~300 changes/s" in result.stderr  # live progress goes to stderr


@pytest.mark.slow
def test_demo_both_ways_converges_with_conflicts_and_echoes_counted(tmp_path: Path) -> None:
    result = subprocess.run(
        [SCRIPT, "demo", "--bidirectional", "--duration", "4", "--rate", "300", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (link,) = json.loads(result.stdout)["links"]
    assert link["both_ways"] is True and link["target_equals_source"] is True and link["differences"] == []
    assert link["changes_written"] > 1000 and link["changes_applied"] == link["changes_written"]
    # Each node's change is written at the other node and comes back from there as an echo (its own node's
    # re-offer finds the row as its user left it and writes nothing, mostly).
    assert 0 < link["echoes_suppressed"] < 2 * link["changes_written"]
    assert 0 <= link["conflicts"] < link["changes_written"]


def test_demo_rejects_bad_options() -> None:
    result = subprocess.run([SCRIPT, "demo", "--duration", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--duration" in result.stderr
