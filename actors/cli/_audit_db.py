"""Shared by `audit` and `init`: the audit node's connection from a config file, with CLI-friendly errors."""

from __future__ import annotations

import msgspec
import psycopg

from actors.core.errors import ConfigError
from config import load_config, nodes_by_name
from config.model import Config, PostgresNode
from config.secrets import read_secret


class CliError(Exception):
    """A message for stderr and the exit code to return."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.message = message
        self.code = code


def audit_node(config: Config) -> PostgresNode:
    node = nodes_by_name(config).get(config.audit.node)
    if not isinstance(node, PostgresNode):
        raise ConfigError("config", f"`audit.node` `{config.audit.node}` must name an enabled postgresql node")
    return node


def connect(node: PostgresNode, *, user: str | None = None, password_env: str | None = None) -> psycopg.Connection:
    """Connect as the node's user (password from its config) or as ``user`` (password from ``password_env``)."""
    from actors.engines.postgresql.connection import conninfo_for

    if user is not None:
        node = msgspec.structs.replace(node, username=user)
        password = read_secret(env=password_env, file=None, what=f"password of `{user}`")
    else:
        password = read_secret(env=node.password_env, file=node.password_file, what=f"node `{node.host}` password")
    try:
        return psycopg.connect(conninfo_for(node, password, application_name="worker-sync audit"), autocommit=True)
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"cannot connect to the audit database on {node.host}:{node.port}: {message}", 3) from None


def load(path: str) -> Config:
    return load_config(path)
