"""`run` refuses a relative `supervisor.state_dir` inside a Ray job's working directory (the job's package,
which Ray unpacks again as the driver joins and removes when the job ends), with one line and exit 2, before
it connects to anything; an absolute one passes that check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = shutil.which("worker-sync", path=str(Path(sys.executable).parent)) or "worker-sync"

#: Nodes that cannot be reached (a name that does not resolve): past the state_dir check, `run` stops there.
CONFIG = """
databases:
  postgresql: {host: ws-no-such-host.invalid, database: shop, username: ws}
  mysql: {host: ws-no-such-host.invalid, database: shop, username: ws}
links:
  - name: orders
    source: postgresql
    target: mysql
    tables: [{source: public.orders}]
"""


def run_in(cwd: Path, config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(config)
    return subprocess.run([SCRIPT, "run", "--config", str(path)], cwd=cwd, capture_output=True, text=True, timeout=60)


def job_package(tmp_path: Path) -> Path:
    """A directory named as Ray names an unpacked `--working-dir` package."""
    package = tmp_path / "session_x" / "runtime_resources" / "working_dir_files" / "_ray_pkg_0123456789abcdef"
    package.mkdir(parents=True)
    return package


def test_a_relative_state_dir_in_a_ray_job_package_is_refused(tmp_path: Path) -> None:
    result = run_in(job_package(tmp_path), CONFIG, tmp_path)
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "supervisor.state_dir" in lines[0] and "`worker-sync-state` is relative" in lines[0], lines[0]
    assert "absolute path" in lines[0]


def test_an_absolute_state_dir_passes_the_check(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = CONFIG + f"supervisor:\n  state_dir: {state}\n"
    result = run_in(job_package(tmp_path), config, tmp_path)
    assert result.returncode == 3, (result.returncode, result.stderr)  # the unreachable nodes, checked next
    assert "state_dir" not in result.stderr, result.stderr


def test_a_relative_state_dir_elsewhere_passes_the_check(tmp_path: Path) -> None:
    result = run_in(tmp_path, CONFIG, tmp_path)
    assert result.returncode == 3, (result.returncode, result.stderr)
    assert "state_dir" not in result.stderr, result.stderr
