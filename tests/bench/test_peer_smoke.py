"""Keeps bench/peer_chameleon.py from rotting.

The full smoke run (its --quick mode, as a subprocess: servers, Ray, pg_chameleon installed from PyPI into a
throwaway venv, ~30 s) is opt-in: set WORKER_SYNC_BENCH_PEER=1. It is skipped, with pg_chameleon's own
error, when pg_chameleon cannot be installed or run here. Always on and cheap: the way a pg_chameleon step
that fails is recorded (the command and its error, which the bench puts in its result). No timing asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chameleon_tool import Chameleon, ChameleonError
from tests.bench.quick import run_quick

OPT_IN = "WORKER_SYNC_BENCH_PEER"


def test_a_failing_step_is_recorded_with_its_command_and_error(tmp_path: Path) -> None:
    chameleon = Chameleon(tmp_path / "chameleon")
    missing = str(tmp_path / "no-such-python")
    with pytest.raises(ChameleonError) as failure:
        chameleon.install(python=missing)
    step = failure.value.step
    assert step["command"] == "python -m venv VENV"
    assert "no-such-python" in step["error"]
    assert chameleon.log[-1] is step


def test_running_replica_that_exits_is_reported(tmp_path: Path) -> None:
    chameleon = Chameleon(tmp_path / "chameleon")
    chameleon.base.mkdir(parents=True)
    (chameleon.base / "replica.log").write_text("FATAL, replica catalogue version mismatch\n")
    chameleon._replica = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    chameleon._replica.wait(timeout=30)
    with pytest.raises(ChameleonError, match="exited \\(4\\)") as failure:
        chameleon.check_running()
    assert "catalogue version mismatch" in failure.value.step["output_tail"]


@pytest.mark.slow
@pytest.mark.postgresql
@pytest.mark.mariadb
@pytest.mark.timeout(400)
@pytest.mark.skipif(os.environ.get(OPT_IN) != "1", reason=f"opt-in: set {OPT_IN}=1 (pip-installs pg_chameleon, ~30 s)")
def test_quick_run_compares_both_tools_and_both_targets_equal_the_source(tmp_path: Path) -> None:
    code, out, err = run_quick("peer_chameleon.py", tmp_path, timeout_s=300)
    result = json.loads((tmp_path / "peer_chameleon.json").read_text()) if code in (0, 1) else None
    assert result is not None, f"exit {code}; stderr:\n{err[-4000:]}"
    assert json.loads(out) == result
    error = result["chameleon"].get("error")
    if error is not None:
        pytest.skip(f"pg_chameleon cannot run here: {error['command']}: {error['why'][:300]}")
    assert code == 0, err[-4000:]
    assert (tmp_path / "peer_chameleon.png").stat().st_size > 0
    assert result["chameleon"]["version"] == "2.0.21"
    assert result["machine"]["cores"] >= 1 and "--quick" in result["command"]
    backlog = result["backlog"]
    assert backlog["changes"] == 2_000
    for key in ("worker_sync_steady_per_s_median", "chameleon_steady_per_s_median", "ratio_steady"):
        assert backlog[key] > 0, (key, backlog)
    paced = result["fixed_rate"]
    assert paced["changes"] > 0
    for tool in ("worker_sync", "chameleon"):
        assert paced[tool]["seconds_to_equal_after_last_commit"] >= 0
        assert result[f"{tool}_target_equals_source"] is True, result[f"{tool}_differences"]
