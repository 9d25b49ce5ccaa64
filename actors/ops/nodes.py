"""A plain DB-API connection to a configured node, for the operations commands (probe, init, backup).

Errors come out as NodeUnreachable (exit 3) with the node, host and port named and no secret.
"""

from __future__ import annotations

from typing import Any

from actors.core.errors import SourceUnavailable
from config.model import MySqlNode, Node, PostgresNode
from config.secrets import node_password


class NodeUnreachable(SourceUnavailable):
    """A node cannot be connected to (down, refused, bad password)."""


def connect_node(name: str, node: Node, *, user: str | None = None, password: str | None = None) -> Any:
    """An autocommit connection as the node's configured user, or as ``user`` with ``password``."""
    if user is None:
        password = node_password(name, node)
    if isinstance(node, PostgresNode):
        import msgspec
        import psycopg

        from actors.engines.postgresql.connection import conninfo_for

        if user is not None:
            node = msgspec.structs.replace(node, username=user)
        try:
            return psycopg.connect(conninfo_for(node, password, application_name="worker-sync ops"), autocommit=True)
        except psycopg.Error as exc:
            raise NodeUnreachable(_message(name, node, exc)) from None
    if isinstance(node, MySqlNode):
        import dataclasses

        import pymysql

        from actors.engines.mariadb.connection import ConnectParams, connect_kwargs

        params = ConnectParams.for_node(node, password)
        if user is not None:
            params = dataclasses.replace(params, user=user)
        try:
            return pymysql.connect(**connect_kwargs(params))
        except (pymysql.err.MySQLError, OSError) as exc:
            raise NodeUnreachable(_message(name, node, exc)) from None
    raise NodeUnreachable(f"node `{name}`: {type(node).__name__} nodes are not supported by this command yet")


def _message(name: str, node: Node, exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"node `{name}` ({node.host}:{node.port}/{node.database}): cannot connect: {text}"
