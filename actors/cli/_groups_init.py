"""`worker-sync init`, bidirectional part: the version table (and the echo marker table of MariaDB and
MongoDB) on every node of a bidirectional group, with what the node's account needs
(actors/engines/*/versions.py, through ``Engine.prepare_group``)."""

from __future__ import annotations

import argparse
import sys

from actors.cli._admins import admin_login
from actors.cli.failures import CliError
from actors.core.errors import DatabaseError, NodeUnreachable, SourceUnavailable
from actors.core.groups import build_groups, namespaces_by_node
from actors.engines.registry import engine_for
from config.exit_codes import Exit
from config.loader import nodes_by_name
from config.model import Config


def init_group_nodes(config: Config, args: argparse.Namespace) -> list[str]:
    """Prepare every group member; returns the names prepared. A node that cannot be reached is exit 3."""
    nodes = nodes_by_name(config)
    namespaces = namespaces_by_node(build_groups(config))
    members = sorted(namespaces)
    for name in members:
        node = nodes[name]
        engine = engine_for(node)
        user, password = admin_login(args, engine)
        try:
            warnings = engine.prepare_group(name, node, namespaces[name], user=user, password=password)
        except NodeUnreachable as exc:
            raise CliError(f"preparing bidirectional sync: {exc}", Exit.UNAVAILABLE) from None
        except (DatabaseError, SourceUnavailable) as exc:  # the engine's message says what and what to do
            raise CliError(str(exc), exc.exit_code) from None
        for warning in warnings:
            print(f"worker-sync init: warning: {warning}", file=sys.stderr)
    return members
