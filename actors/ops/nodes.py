"""A plain DB-API connection to a configured node, for the operations commands (probe, init, backup).

Errors come out as NodeUnreachable (exit 3) with the node, host and port named and no secret.
"""

from __future__ import annotations

from typing import Any

from actors.engines.registry import engine_for
from config.model import Node
from config.secrets import node_password


def connect_node(name: str, node: Node, *, user: str | None = None, password: str | None = None) -> Any:
    """An autocommit connection as the node's configured user, or as ``user`` with ``password``."""
    if user is None:
        password = node_password(name, node)
    return engine_for(node).connect(name, node, password, user=user, app="worker-sync ops")
