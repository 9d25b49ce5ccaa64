"""Shared by the audit store's commands: the audit node and a connection to it, with CLI-friendly errors."""

from __future__ import annotations

from typing import Any

from actors.cli.failures import CliError
from actors.core.errors import NodeUnreachable
from actors.engines.postgresql.audit_connection import audit_store_node
from actors.engines.registry import engine_for
from config import load_config, nodes_by_name
from config.exit_codes import Exit
from config.model import Config, PostgresNode
from config.secrets import read_secret


def audit_node(config: Config) -> PostgresNode:
    return audit_store_node(nodes_by_name(config), config.audit.node)


def connect(node: PostgresNode, *, user: str | None = None, password_env: str | None = None) -> Any:
    """Connect as the node's user (password from its config) or as ``user`` (password from ``password_env``)."""
    if user is not None:
        password = read_secret(env=password_env, file=None, what=f"password of `{user}`")
    else:
        password = read_secret(env=node.password_env, file=node.password_file, what=f"node `{node.host}` password")
    try:
        return engine_for(node).connect("audit", node, password, user=user, app="worker-sync audit")
    except NodeUnreachable as exc:
        raise CliError(
            f"cannot connect to the audit database on {node.host}:{node.port}: {exc.reason}", Exit.UNAVAILABLE
        ) from None


def load(path: str) -> Config:
    return load_config(path)
