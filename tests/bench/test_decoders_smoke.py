"""Keeps bench/decoders.py from rotting: its --quick run as a subprocess (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.quick import run_quick


def test_quick_run_decodes_the_same_events_with_both_plugins(tmp_path: Path) -> None:
    code, out, err = run_quick("decoders.py", tmp_path, timeout_s=300)
    assert code == 0, err[-4000:]
    result = json.loads((tmp_path / "decoders.json").read_text())
    assert result["ok"] is True and result["same_events"] is True
    assert set(result["changes_per_s_median"]) == {"wal2json", "pgoutput"}
    assert all(rate > 0 for rate in result["changes_per_s_median"].values())
    assert all(seconds > 0 for seconds in result["server_peek_s_median"].values())
    assert (tmp_path / "decoders.png").stat().st_size > 0
    assert "same events: True" in err and out
