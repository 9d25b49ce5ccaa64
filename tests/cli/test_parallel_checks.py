"""`run`'s start-up checks in a forked child (actors/cli/_parallel_checks.py): what the child finds, or
why it failed, reaches the parent as the checks' own answer, with the same error class and exit code."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from actors import preflight
from actors.cli._parallel_checks import ParallelChecks
from actors.cli.failures import CliError
from actors.core.errors import SourceUnavailable, WorkerSyncError
from config import load_config
from config.exit_codes import Exit
from tests.pipeline_helpers import unreachable_config

PASSWORD = "never-print-me-3391"


def test_an_unreachable_node_is_the_same_error_in_the_child_as_inline(tmp_path: Path) -> None:
    config = load_config(unreachable_config(tmp_path, PASSWORD))
    with pytest.raises(WorkerSyncError) as inline:
        ParallelChecks(config, aside=False).result()
    with pytest.raises(WorkerSyncError) as aside:
        ParallelChecks(config).result()
    assert isinstance(aside.value, SourceUnavailable), repr(aside.value)
    assert type(aside.value) is type(inline.value)
    assert str(aside.value) == str(inline.value)
    assert aside.value.exit_code == Exit.UNAVAILABLE
    assert PASSWORD not in str(aside.value)


def test_the_checks_run_in_another_process_and_their_answer_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(unreachable_config(tmp_path, PASSWORD))
    monkeypatch.setattr(preflight, "startup_checks", lambda _config: {"ran_in": str(os.getpid())})
    assert ParallelChecks(config).result() != {"ran_in": str(os.getpid())}
    assert ParallelChecks(config, aside=False).result() == {"ran_in": str(os.getpid())}


def test_a_child_that_dies_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(unreachable_config(tmp_path, PASSWORD))
    monkeypatch.setattr(preflight, "startup_checks", lambda _config: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(CliError, match=r"stopped without an answer \(signal 9\)") as caught:
        ParallelChecks(config).result()
    assert caught.value.exit_code == Exit.FINDINGS


def test_a_bug_in_the_checks_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_config: object) -> dict[str, str]:
        raise ValueError("boom\nsecond line")

    config = load_config(unreachable_config(tmp_path, PASSWORD))
    monkeypatch.setattr(preflight, "startup_checks", broken)
    with pytest.raises(CliError) as caught:
        ParallelChecks(config).result()
    assert str(caught.value) == "the start-up checks failed on an unexpected error: ValueError: boom"


def test_an_error_that_cannot_be_pickled_keeps_its_text_and_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class LocalError(WorkerSyncError):  # defined in a function: pickle cannot find it by name
        exit_code = Exit.USAGE

    def refuse(_config: object) -> dict[str, str]:
        raise LocalError("table t is missing")

    config = load_config(unreachable_config(tmp_path, PASSWORD))
    monkeypatch.setattr(preflight, "startup_checks", refuse)
    with pytest.raises(CliError, match="table t is missing") as caught:
        ParallelChecks(config).result()
    assert caught.value.exit_code == Exit.USAGE
