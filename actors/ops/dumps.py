"""Logical dumps of the configured databases with the engines' own tools (`pg_dump`, `mariadb-dump` /
`mysqldump`: ``Engine.dump_command``), for `backup --databases`.

Passwords go to the tools through their environment variables (PGPASSWORD, MYSQL_PWD), never on a
command line that `ps` would show.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from actors.core.errors import WorkerSyncError
from actors.engines.base import DumpCommand
from actors.engines.registry import engine_for
from config.model import Node
from config.secrets import node_password


class DumpError(WorkerSyncError):
    """A dump tool is missing or failed."""


def _command(node: Node, out: Path) -> DumpCommand:
    command = engine_for(node).dump_command(node, out)
    if command is None:
        raise DumpError(f"dumping {type(node).__name__} nodes is not built yet")
    return command


def dump_tool(node: Node) -> str:
    """The path of the node's dump program; DumpError when none is on PATH."""
    command = _command(node, Path(os.devnull))
    for program in command.programs:
        found = shutil.which(program)
        if found:
            return found
    raise DumpError(
        f"`{' or '.join(command.programs)}` is not on PATH: install {command.package}, or back up without `--databases`"
    )


def dump_node(name: str, node: Node, out: Path, *, timeout_s: float = 3600) -> None:
    program = dump_tool(node)
    command = _command(node, out)
    password = node_password(name, node)
    env = {**os.environ, **command.env}
    if password is not None:
        env[command.password_env] = password
    try:
        result = subprocess.run(
            [program, *command.args], env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise DumpError(f"node `{name}`: `{Path(program).name}` did not finish within {timeout_s:g} s") from None
    if result.returncode != 0:
        detail = " ".join(result.stderr.strip().splitlines()[:3]) or f"exit status {result.returncode}"
        raise DumpError(f"node `{name}`: `{Path(program).name}` failed: {detail}")
