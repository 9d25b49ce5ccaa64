"""Where the audit store lives and how Worker-Sync connects to it: a PostgreSQL node, always."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

from actors.core.errors import ConfigError, SinkError
from actors.engines.postgresql.audit_store import AuditStore
from actors.engines.postgresql.connection import conninfo_for
from config.model import Node, PostgresNode
from config.secrets import node_password


def audit_store_node(nodes: Mapping[str, Node], name: str) -> PostgresNode:
    """The node `audit.node` names; ConfigError unless it is an enabled PostgreSQL node."""
    node = nodes.get(name)
    if not isinstance(node, PostgresNode):
        raise ConfigError("config", f"`audit.node` `{name}` must name an enabled postgresql node")
    return node


def connect_store(node: PostgresNode, schema: str) -> AuditStore:
    """An AuditStore over a new connection as the node's user (the service role)."""
    password = node_password("audit", node)
    try:
        conn = psycopg.connect(conninfo_for(node, password, application_name="worker-sync:audit"), autocommit=True)
    except psycopg.Error as exc:
        raise SinkError(f"audit store on {node.host}:{node.port}: cannot connect: {exc}") from exc
    return AuditStore(conn, schema)
