"""The probe table every link carries implicitly, so `worker-sync probe` can prove a link works
without touching a user table.

Pure: the names, the DDL text per engine and the routes. Whether the table exists at a node is
looked up by the caller (actors.ops.probe_table) and passed in as a set of node names.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from config.loader import nodes_by_name
from config.model import Config, MySqlNode, Node, PostgresNode

PROBE_TABLE = "worker_sync_probe"
#: PostgreSQL schema that holds the probe table (the default schema of a fresh database).
PG_SCHEMA = "public"
#: Marker ids are 32 hex characters; a bounded varchar on both engines so the start-up mapping
#: check accepts PostgreSQL <-> MariaDB both ways (a TEXT primary key does not exist in MariaDB).
ID_LENGTH = 64

R = TypeVar("R")

PG_DDL = (
    f"CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.{PROBE_TABLE} "
    f"(probe_id varchar({ID_LENGTH}) PRIMARY KEY, written_at timestamp(6) NOT NULL)"
)
MYSQL_DDL = (
    f"CREATE TABLE IF NOT EXISTS `{{database}}`.`{PROBE_TABLE}` "
    f"(probe_id VARCHAR({ID_LENGTH}) NOT NULL PRIMARY KEY, written_at DATETIME(6) NOT NULL) "
    "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
)


def probe_namespace(node: Node) -> str | None:
    """Where the probe table lives on ``node`` ("schema.table" / "database.table"); None for engines
    the probe does not cover yet (MongoDB)."""
    if isinstance(node, PostgresNode):
        return f"{PG_SCHEMA}.{PROBE_TABLE}"
    if isinstance(node, MySqlNode):
        return f"{node.database}.{PROBE_TABLE}"
    return None


def probe_link_nodes(config: Config) -> set[str]:
    """Every enabled node at either end of a link: where `init` creates the probe table."""
    nodes = nodes_by_name(config)
    return {end for link in config.links for end in (link.source, link.target) if end in nodes}


def probe_routes(config: Config, present: Collection[str], make_route: Callable[..., R]) -> list[R]:
    """One probe route per (source node, target node) pair of the links, when both nodes have the
    table (``present``): a database where `init` never ran keeps exactly the routes its links name.

    ``make_route`` is the Route class (passed in, so this module need not import routing)."""
    nodes = nodes_by_name(config)
    routes: list[R] = []
    seen: set[tuple[str, str]] = set()
    for link in config.links:
        # One direction only, also for a bidirectional link: a route back would let the applied marker
        # travel home again, and the probe needs just one crossing to prove the path works.
        source, target = link.source, link.target
        if (source, target) in seen or source not in present or target not in present:
            continue
        source_ns = probe_namespace(nodes[source]) if source in nodes else None
        target_ns = probe_namespace(nodes[target]) if target in nodes else None
        if source_ns is None or target_ns is None:
            continue
        seen.add((source, target))
        routes.append(
            make_route(
                link=link.name,
                source_node=source,
                source_namespace=source_ns,
                target_node=target,
                target_namespace=target_ns,
            )
        )
    return routes
