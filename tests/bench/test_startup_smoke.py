"""Keeps bench/startup.py from rotting: its --quick run (one `worker-sync run` with one shard, audit on), as a
subprocess. No timing assertions (one start-up on a shared 2-core machine is noise): the test checks the
shape of the result and that the figures were read from the run's own `started:` lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.quick import run_quick

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.mariadb, pytest.mark.timeout(300)]


def test_quick_run_reads_one_start_up(tmp_path: Path) -> None:
    code, out, err = run_quick("startup.py", tmp_path, 240, "--audit")
    assert code == 0, f"exit {code}; stderr:\n{err[-4000:]}"
    result = json.loads(out)
    assert result == json.loads((tmp_path / "startup.json").read_text())
    assert (tmp_path / "startup.png").stat().st_size > 0
    assert result["bench"] == "startup" and result["ok"] is True, result
    assert result["settings"]["shards"] == [1] and result["settings"]["audit"] is True and result["ray_start_s"] > 0
    (run,) = result["shards"]["1"]["runs"]
    assert 0 < run["log_ray_s"] < run["log_process_to_first_apply_s"], run
    assert run["own_startup_s"] == pytest.approx(run["log_process_to_first_apply_s"] - run["log_ray_s"], abs=0.002)
    summary = result["shards"]["1"]["summary"]
    assert summary["runs"] == 1 and summary["own_startup_s_median"] == run["own_startup_s"], summary
    # The whole first batch (the shard's part applied, the audit actor's stored) is done no earlier than the
    # first change applied: both come from the same supervisor loop, this one checked second.
    assert run["own_first_batch_s"] >= run["own_startup_s"], run
    assert summary["own_first_batch_s_median"] == run["own_first_batch_s"]
