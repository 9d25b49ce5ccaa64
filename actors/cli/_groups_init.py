"""`worker-sync init`, bidirectional part: the version table (and the echo marker table of MariaDB and
MongoDB) on every node of a bidirectional group, with what the node's account needs
(actors/engines/*/versions.py)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from actors.cli._audit_db import CliError
from actors.cli.exit_codes import Exit
from actors.core.groups import build_groups, namespaces_by_node
from config.loader import nodes_by_name
from config.model import Config, MongoNode, MySqlNode, PostgresNode

if TYPE_CHECKING:
    import pymysql


def init_group_nodes(config: Config, args: argparse.Namespace) -> list[str]:
    """Prepare every group member; returns the names prepared. A node that cannot be reached is exit 3."""
    from actors.ops.nodes import NodeUnreachable, connect_node

    nodes = nodes_by_name(config)
    namespaces = namespaces_by_node(build_groups(config))
    members = sorted(namespaces)
    for name in members:
        node = nodes[name]
        if isinstance(node, MongoNode):
            _prepare_mongo(name, node, namespaces[name], args)
            continue
        user, password = _admin(args, node)
        try:
            conn = connect_node(name, node, user=user, password=password)
        except NodeUnreachable as exc:
            raise CliError(f"preparing bidirectional sync: {exc}", Exit.UNAVAILABLE) from None
        try:
            if isinstance(node, PostgresNode):
                from actors.engines.postgresql import versions as pg_versions

                pg_versions.create(conn, node.username)
            elif isinstance(node, MySqlNode):
                _prepare_mysql(conn, name, node)
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            raise CliError(
                f"node `{name}`: preparing bidirectional sync failed: {str(exc).strip().splitlines()[0]}; run init "
                "as an administrator (--admin-user / --mysql-admin-user)",
                Exit.FINDINGS,
            ) from None
        finally:
            conn.close()
    return members


def _prepare_mongo(name: str, node: MongoNode, namespaces: list[str], args: argparse.Namespace) -> None:
    """The marker and version collections and pre-images on the synced collections (actors/engines/mongodb/
    versions.py), as --mongo-admin-user when given (``collMod`` needs dbAdmin), else as the node's account."""
    import msgspec
    from pymongo import errors

    from actors.core.errors import SourceUnavailable
    from actors.engines.mongodb import versions
    from actors.engines.mongodb.connection import connect, translate
    from config.secrets import node_password

    user, password = _admin(args, node)
    if user is None:
        password = node_password(name, node)
    else:
        node = msgspec.structs.replace(node, username=user)
    client = connect(node, password, name=name, app="worker-sync:init")
    try:
        versions.prepare(client, namespaces)
    except errors.PyMongoError as exc:
        error = translate(exc, f"mongodb node `{name}`", "preparing bidirectional sync", (password or "",))
        code = Exit.UNAVAILABLE if isinstance(error, SourceUnavailable) else Exit.FINDINGS
        advice = "run init as an account with readWrite and dbAdmin on those databases (--mongo-admin-user)"
        raise CliError(f"{error}; {advice}", code) from None
    finally:
        client.close()


def _is_driver_error(exc: BaseException) -> bool:
    import psycopg
    import pymysql

    return isinstance(exc, psycopg.Error | pymysql.MySQLError)


def _admin(args: argparse.Namespace, node: object) -> tuple[str | None, str | None]:
    """The administrator init was given for this engine (None: the node's own account)."""
    prefix = "" if isinstance(node, PostgresNode) else "mongo_" if isinstance(node, MongoNode) else "mysql_"
    user = getattr(args, f"{prefix}admin_user", None)
    env = getattr(args, f"{prefix}admin_password_env", None)
    return user, (os.environ.get(env) if user and env else None)


def _prepare_mysql(conn: pymysql.Connection, name: str, node: MySqlNode) -> None:
    import pymysql

    from actors.engines.mariadb import versions as mariadb_versions

    mariadb_versions.create(conn, node.database)
    grant = (
        f"GRANT SELECT, INSERT, UPDATE ON `{node.database}`.`{mariadb_versions.VERSIONS}` TO '{node.username}'@'%'; "
        f"GRANT SELECT, INSERT, UPDATE ON `{node.database}`.`{mariadb_versions.ECHO}` TO '{node.username}'@'%'"
    )
    try:
        with conn.cursor() as cur:
            for statement in grant.split("; "):
                cur.execute(statement)
    except pymysql.MySQLError as exc:
        print(
            f"worker-sync init: warning: node `{name}`: could not grant the version tables to `{node.username}` "
            f"({exc.args[-1] if exc.args else exc}); if its account lacks them, an administrator runs: {grant}",
            file=sys.stderr,
        )
