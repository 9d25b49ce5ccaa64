"""`worker-sync init`'s heartbeat tables: at each source node that sets `heartbeat_interval_s`, the one-row
table its heartbeats update (actors/engines/mariadb/heartbeat.py), with SELECT, INSERT and UPDATE on it, and
nothing more, for the node's user. Created as the engine's administrator when given (the node's user usually
may not create tables at a source), else as the node's user; a node that refuses gets a warning with the SQL."""

from __future__ import annotations

import argparse
import sys

from actors.cli._admins import admin_login
from actors.core.errors import DatabaseError
from actors.engines.registry import driver_errors, engine_for
from actors.ops.nodes import connect_node
from config.loader import nodes_by_name
from config.model import Config


def heartbeat_nodes(config: Config) -> list[str]:
    """The source nodes (of any link, both ends of a bidirectional one) that ask for heartbeats."""
    nodes = nodes_by_name(config)
    sources = {link.source for link in config.links} | {link.target for link in config.links if link.bidirectional}
    return sorted(
        name
        for name in sources
        if name in nodes
        and getattr(nodes[name], "heartbeat_interval_s", None)
        and engine_for(nodes[name]).heartbeat_namespace(nodes[name]) is not None
    )


def init_heartbeat_tables(config: Config, args: argparse.Namespace) -> list[str]:
    """Create the heartbeat table at every node of :func:`heartbeat_nodes`; returns the ones ready."""
    nodes = nodes_by_name(config)
    ready = []
    for name in heartbeat_nodes(config):
        node = nodes[name]
        engine = engine_for(node)
        user, password = admin_login(args, engine)
        conn = connect_node(name, node, user=user, password=password)
        try:
            grantees = engine.probe_grantees(conn, node) if user and user != node.username else []
            statements = engine.heartbeat_statements(node, grantees)
            with driver_errors(), conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        except DatabaseError as exc:
            sql = "; ".join(engine.heartbeat_statements(node, [f"'{node.username}'@'%'"]))
            print(
                f"worker-sync init: warning: heartbeat table not created on node `{name}` "
                f"({str(exc).strip().splitlines()[0]}); its heartbeats fail until an administrator runs: {sql}",
                file=sys.stderr,
            )
            continue
        finally:
            conn.close()
        ready.append(name)
    return ready
