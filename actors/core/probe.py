"""The probe table every link carries implicitly, so `worker-sync probe` can prove a link works
without touching a user table.

Pure: the table's name and the routes. Where the table lives at a node (its DDL, its namespace) is the
node's engine's to say (``Engine.probe_namespace``); whether it exists there is looked up by the caller
(actors.ops.probe_table) and passed in as node -> namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from config.loader import nodes_by_name
from config.model import Config

PROBE_TABLE = "worker_sync_probe"
#: Marker ids are 32 hex characters; a bounded varchar on every engine so the start-up mapping
#: check accepts PostgreSQL <-> MariaDB both ways (a TEXT primary key does not exist in MariaDB).
ID_LENGTH = 64
#: What a node's configured user may do with its probe table (it writes markers, and applies them).
PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"

R = TypeVar("R")


def probe_link_nodes(config: Config) -> set[str]:
    """Every enabled node at either end of a link: where `init` creates the probe table."""
    nodes = nodes_by_name(config)
    return {end for link in config.links for end in (link.source, link.target) if end in nodes}


def probe_routes(config: Config, present: Collection[str], make_route: Callable[..., R]) -> list[R]:
    """One probe route per (source node, target node) pair of the links, when both nodes have the
    table: a database where `init` never ran keeps exactly the routes its links name.

    ``present``: node -> namespace of its probe table (actors.ops.probe_table.nodes_with_probe_table);
    build_routes hands it on as the collection of those nodes. ``make_route`` is the Route class
    (passed in, so this module need not import routing)."""
    if not isinstance(present, Mapping):
        if present:
            raise TypeError("probe_routes needs node -> probe table namespace, not bare node names")
        return []
    routes: list[R] = []
    seen: set[tuple[str, str]] = set()
    for link in config.links:
        # One direction only, also for a bidirectional link: a route back would let the applied marker
        # travel home again, and the probe needs just one crossing to prove the path works.
        source, target = link.source, link.target
        if (source, target) in seen or source not in present or target not in present:
            continue
        seen.add((source, target))
        routes.append(
            make_route(
                link=link.name,
                source_node=source,
                source_namespace=present[source],
                target_node=target,
                target_namespace=present[target],
            )
        )
    return routes
