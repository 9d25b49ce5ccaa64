"""The probe table at each node: created (with grants) by `worker-sync init`, looked up when routes
are built, so a link carries it only where it exists at both ends.

The configured user of a node is the one that writes probe markers there (at a source) and the one
the writer applies them with (at a target): it gets SELECT, INSERT, UPDATE, DELETE on this one table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from actors.core.errors import ConfigError, SourceUnavailable
from actors.core.probe import MYSQL_DDL, PG_DDL, PROBE_TABLE, probe_link_nodes, probe_namespace
from actors.ops.nodes import connect_node
from config.loader import nodes_by_name
from config.model import Config, MySqlNode, Node, PostgresNode

if TYPE_CHECKING:
    import psycopg
    import pymysql

log = logging.getLogger(__name__)

PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def table_present(conn: psycopg.Connection[Any] | pymysql.Connection[Any], node: Node) -> bool:
    namespace = probe_namespace(node)
    if namespace is None:
        return False
    schema, table = namespace.split(".", 1)
    with conn.cursor() as cur:
        if isinstance(node, PostgresNode):
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"."{table}"',))
        else:
            cur.execute(
                "SELECT COUNT(*) > 0 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                (schema, table),
            )
        row = cur.fetchone()
    return bool(row and row[0])


def nodes_with_probe_table(config: Config) -> set[str]:
    """Link nodes whose probe table exists. A node that cannot be asked counts as without it: the
    start-up checks that follow report an unreachable node on their own."""
    import psycopg
    import pymysql

    nodes = nodes_by_name(config)
    present: set[str] = set()
    for name in sorted(probe_link_nodes(config)):
        node = nodes[name]
        if probe_namespace(node) is None:
            continue
        try:
            conn = connect_node(name, node)
        except (ConfigError, SourceUnavailable) as exc:
            log.debug("probe table: not looked up at node %s: %s", name, exc)
            continue
        try:
            if table_present(conn, node):
                present.add(name)
        except (psycopg.Error, pymysql.err.MySQLError) as exc:
            log.warning("probe table: lookup at node %s failed: %s", name, str(exc).strip())
        finally:
            conn.close()
    return present


def create_statements(node: Node, grantees: list[str]) -> list[str]:
    """The DDL and grants for one node (also printed for an administrator to run by hand)."""
    if isinstance(node, PostgresNode):
        stmts = [PG_DDL]
        stmts += [f'GRANT {PRIVILEGES} ON {probe_namespace(node)} TO "{who}"' for who in grantees]
        return stmts
    if isinstance(node, MySqlNode):
        stmts = [MYSQL_DDL.format(database=node.database)]
        stmts += [f"GRANT {PRIVILEGES} ON `{node.database}`.`{PROBE_TABLE}` TO {who}" for who in grantees]
        return stmts
    return []


def create_probe_table(name: str, node: Node, admin: tuple[str, str | None] | None = None) -> str:
    """Create the table on one node (as ``admin`` (user, password), or as the node's user) and grant
    the node's user the four privileges. Returns what was done; raises the driver's error."""
    user, password = admin if admin else (None, None)
    conn = connect_node(name, node, user=user, password=password)
    try:
        with conn.cursor() as cur:
            grantees: list[str] = []
            if admin and admin[0] != node.username:
                if isinstance(node, MySqlNode):
                    cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (node.username,))
                    hosts = [row[0] for row in cur.fetchall()] or ["%"]
                    grantees = [f"'{node.username}'@'{host}'" for host in hosts]
                else:
                    grantees = [node.username]
            for stmt in create_statements(node, grantees):
                cur.execute(stmt)
        if hasattr(conn, "commit"):
            conn.commit()
    finally:
        conn.close()
    return f"probe table `{probe_namespace(node)}` ready on node `{name}`"


def create_probe_tables(config: Config, admins: Mapping[str, tuple[str, str | None]]) -> list[tuple[str, str]]:
    """Create the probe table on every link node; ``admins`` maps an engine ("postgresql", "mysql")
    to the (user, password) to create it as. Returns (node, problem) for nodes where it failed on
    privileges, so `init` can warn and show the SQL; an unreachable node raises NodeUnreachable."""
    import psycopg
    import pymysql

    nodes = nodes_by_name(config)
    problems: list[tuple[str, str]] = []
    for name in sorted(probe_link_nodes(config)):
        node = nodes[name]
        if probe_namespace(node) is None:
            continue
        engine = "postgresql" if isinstance(node, PostgresNode) else "mysql"
        try:
            log.info("%s", create_probe_table(name, node, admins.get(engine)))
        except (psycopg.Error, pymysql.err.MySQLError) as exc:
            problems.append((name, str(exc).strip().splitlines()[0]))
    return problems
