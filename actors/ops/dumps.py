"""Logical dumps of the configured databases with the engines' own tools (`pg_dump`, `mariadb-dump` /
`mysqldump`), for `backup --databases`.

Passwords go to the tools through their environment variables (PGPASSWORD, MYSQL_PWD), never on a
command line that `ps` would show.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from actors.core.errors import WorkerSyncError
from config.model import MySqlNode, Node, PostgresNode
from config.secrets import node_password


class DumpError(WorkerSyncError):
    """A dump tool is missing or failed."""


def dump_tool(node: Node) -> tuple[str, str]:
    """(program path, what to install) for the node's engine; DumpError when none is on PATH."""
    names: tuple[str, ...]
    if isinstance(node, PostgresNode):
        names, package = ("pg_dump",), "the PostgreSQL client (Debian: postgresql-client)"
    elif isinstance(node, MySqlNode):
        names, package = ("mariadb-dump", "mysqldump"), "the MariaDB/MySQL client (Debian: mariadb-client)"
    else:
        raise DumpError(f"dumping {type(node).__name__} nodes is not built yet")
    for name in names:
        found = shutil.which(name)
        if found:
            return found, package
    raise DumpError(f"`{' or '.join(names)}` is not on PATH: install {package}, or back up without `--databases`")


def dump_node(name: str, node: Node, out: Path, *, timeout_s: float = 3600) -> None:
    program, _ = dump_tool(node)
    password = node_password(name, node)
    env = dict(os.environ)
    if isinstance(node, PostgresNode):
        args = [program, "--no-password", "--host", node.host, "--port", str(node.port)]
        args += ["--username", node.username, "--dbname", node.database, "--format", "plain", "--file", str(out)]
        env["PGSSLMODE"] = node.tls.mode
        if password is not None:
            env["PGPASSWORD"] = password
    else:
        assert isinstance(node, MySqlNode)
        args = [program, f"--host={node.host}", f"--port={node.port}", f"--user={node.username}"]
        args += ["--single-transaction", "--skip-lock-tables", f"--result-file={out}", "--databases", node.database]
        if node.tls.mode == "disable":
            args.append("--skip-ssl")
        if password is not None:
            env["MYSQL_PWD"] = password
    try:
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise DumpError(f"node `{name}`: `{Path(program).name}` did not finish within {timeout_s:g} s") from None
    if result.returncode != 0:
        detail = " ".join(result.stderr.strip().splitlines()[:3]) or f"exit status {result.returncode}"
        raise DumpError(f"node `{name}`: `{Path(program).name}` failed: {detail}")
