"""The probe table at each node: created (with grants) by `worker-sync init`, looked up when routes
are built, so a link carries it only where it exists at both ends. What the table is at a node is its
engine's to say (``Engine.probe_*``).

The configured user of a node is the one that writes probe markers there (at a source) and the one
the writer applies them with (at a target): it gets SELECT, INSERT, UPDATE, DELETE on this one table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from actors.core.errors import ConfigError, DatabaseError, SourceUnavailable
from actors.core.probe import probe_link_nodes
from actors.engines.registry import driver_errors, engine_for
from actors.ops.nodes import connect_node
from config.loader import nodes_by_name
from config.model import Config, Node

log = logging.getLogger(__name__)


def table_present(conn: Any, node: Node) -> bool:
    """Whether ``conn`` (connect_node's, to ``node``) sees the probe table; DatabaseError if it cannot ask."""
    with driver_errors():
        return engine_for(node).probe_table_present(conn, node)


def nodes_with_probe_table(config: Config) -> dict[str, str]:
    """Link node -> namespace of its probe table, for the nodes that have it. A node that cannot be asked
    counts as without it: the start-up checks that follow report an unreachable node on their own."""
    nodes = nodes_by_name(config)
    present: dict[str, str] = {}
    for name in sorted(probe_link_nodes(config)):
        node = nodes[name]
        namespace = engine_for(node).probe_namespace(node)
        if namespace is None:
            continue
        try:
            conn = connect_node(name, node)
        except (ConfigError, SourceUnavailable) as exc:
            log.debug("probe table: not looked up at node %s: %s", name, exc)
            continue
        try:
            if table_present(conn, node):
                present[name] = namespace
        except DatabaseError as exc:
            log.warning("probe table: lookup at node %s failed: %s", name, exc)
        finally:
            conn.close()
    return present


def create_statements(node: Node, grantees: list[str]) -> list[str]:
    """The DDL and grants for one node (also printed for an administrator to run by hand)."""
    return engine_for(node).probe_statements(node, grantees)


def create_probe_table(name: str, node: Node, admin: tuple[str, str | None] | None = None) -> str:
    """Create the table on one node (as ``admin`` (user, password), or as the node's user) and grant
    the node's user the four privileges. Returns what was done; DatabaseError when the node refuses."""
    engine = engine_for(node)
    user, password = admin if admin else (None, None)
    conn = connect_node(name, node, user=user, password=password)
    try:
        with driver_errors(), conn.cursor() as cur:
            grantees = engine.probe_grantees(conn, node) if admin and admin[0] != node.username else []
            for stmt in create_statements(node, grantees):
                cur.execute(stmt)
            if hasattr(conn, "commit"):
                conn.commit()
    finally:
        conn.close()
    return f"probe table `{engine.probe_namespace(node)}` ready on node `{name}`"


def create_probe_tables(config: Config, admins: Mapping[str, tuple[str, str | None]]) -> list[tuple[str, str]]:
    """Create the probe table on every link node; ``admins`` maps an engine's name (``Engine.name``) to
    the (user, password) to create it as. Returns (node, problem) for nodes where it failed on
    privileges, so `init` can warn and show the SQL; an unreachable node raises NodeUnreachable."""
    nodes = nodes_by_name(config)
    problems: list[tuple[str, str]] = []
    for name in sorted(probe_link_nodes(config)):
        node = nodes[name]
        engine = engine_for(node)
        if engine.probe_namespace(node) is None:
            continue
        try:
            log.info("%s", create_probe_table(name, node, admins.get(engine.name)))
        except DatabaseError as exc:
            problems.append((name, str(exc).strip().splitlines()[0]))
    return problems
