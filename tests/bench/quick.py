"""Running a bench's `--quick` smoke version as a subprocess, the way a user would."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_quick(script: str, results: Path, timeout_s: float, *options: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``bench/<script> --quick --results-dir <results> [options]``; past ``timeout_s``
    the bench gets Ctrl-C (so it stops its servers, its Ray node and its children), SIGKILL only if that
    hangs too, and the test fails with the bench's stderr."""
    command = [sys.executable, str(ROOT / "bench" / script), "--quick", "--results-dir", str(results), *options]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"bench/{script} --quick did not finish in {timeout_s:.0f}s; stderr:\n{err[-4000:]}")
    return proc.returncode, out, err
