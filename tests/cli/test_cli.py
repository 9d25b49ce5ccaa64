"""The installed `worker-sync` console script: help, exit codes, check-config."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = shutil.which("worker-sync", path=str(Path(sys.executable).parent)) or "worker-sync"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_help_lists_every_command_of_the_spec() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for name in (
        "run",
        "status",
        "sync",
        "audit",
        "init",
        "migrate",
        "backup",
        "restore",
        "cleanup",
        "check-config",
        "demo",
    ):
        assert f"    {name}" in result.stdout, name
    assert "exit codes" in result.stdout


def test_no_command_is_a_usage_error() -> None:
    result = cli()
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


def test_check_config_accepts_the_example() -> None:
    result = cli("check-config", "config/example.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_json_summary() -> None:
    result = cli("check-config", "--json", "config/example.yaml")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {
        "ok": True,
        "file": "config/example.yaml",
        "nodes": {"postgresql": "postgresql", "mysql": "mysql"},
        "links": ["orders"],
        "bidirectional_groups": {},
        "audit": True,
    }


def test_check_config_names_an_unknown_key_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config/example.yaml").read_text().replace("slot_name:", "slot_nmae:"))
    result = cli("check-config", str(bad))
    assert result.returncode == 2
    assert "unknown field `slot_nmae`" in result.stderr
    assert "$.databases.postgresql" in result.stderr
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_on_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = cli("check-config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "cannot read the file" in result.stderr


def test_check_config_reports_bidirectional_groups_and_their_policy_clashes(tmp_path: Path) -> None:
    text = """
audit: {enabled: false}
nodes:
  - {name: a, engine: postgresql, host: h, database: d, username: u}
  - {name: b, engine: mysql, host: h, database: d, username: u}
links:
  - {name: ab, source: a, target: b, bidirectional: true, tables: [{source: public.t, target: d.t}]}
"""
    path = tmp_path / "both.yaml"
    path.write_text(text)
    result = cli("check-config", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bidirectional_groups"] == {"a:public.t": ["a:public.t", "b:d.t"]}
    path.write_text(
        text + "  - {name: ba, source: b, target: a, bidirectional: true, conflict_policy: manual,"
        " tables: [{source: d.t, target: public.t}]}\n"
    )
    result = cli("check-config", str(path))
    assert result.returncode == 2
    assert "one table takes one policy" in result.stderr and "$.links[1].tables[0]" in result.stderr
