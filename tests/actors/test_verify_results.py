"""The supervisor's store of verify results (actors/verify_results.py): what it refuses, what it keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.metrics import REGISTRY
from actors.verify_results import FILE_NAME, VerifyResults


def value(metric: str, link: str) -> float | None:
    return REGISTRY.get_sample_value(metric, {"link": link})


def test_refuses_junk_and_unknown_links(tmp_path: Path) -> None:
    results = VerifyResults(tmp_path, ["store-a"])
    with pytest.raises(ValueError, match="not a verify result"):
        results.record({"link": "store-a"})
    with pytest.raises(ValueError, match="must be >= 0"):
        results.record({"link": "store-a", "mismatches": -1, "finished_at": 1.0})
    with pytest.raises(ValueError, match="not a verify result"):
        results.record(None)
    with pytest.raises(KeyError):
        results.record({"link": "elsewhere", "mismatches": 1, "finished_at": 1.0})
    assert results.views() == [] and not (tmp_path / FILE_NAME).exists()


def test_keeps_the_last_result_and_forgets_removed_links(tmp_path: Path) -> None:
    results = VerifyResults(tmp_path, ["store-b", "store-c"])
    results.record({"link": "store-b", "mismatches": 3, "finished_at": 100.0, "future_field": "ignored"})
    results.record({"link": "store-b", "mismatches": 0, "finished_at": 200.0})
    results.record({"link": "store-c", "mismatches": 5, "finished_at": 150.0})
    assert value("worker_sync_verify_mismatches", "store-b") == 0
    assert value("worker_sync_verify_last_run_timestamp_seconds", "store-b") == 200.0
    again = VerifyResults(tmp_path, ["store-b"])  # store-c left the config
    assert [(r["link"], r["mismatches"]) for r in again.views()] == [("store-b", 0)]


def test_a_torn_file_is_forgotten_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / FILE_NAME).write_text('[{"link": "store-d", "mism')
    assert VerifyResults(tmp_path, ["store-d"]).views() == []
    assert "cannot be read" in caplog.text
