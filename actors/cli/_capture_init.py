"""`worker-sync init`, capture part: what a source needs made by an administrator before its stream starts
(a `pgoutput` node's publication of every table it is read from, the probe table included), through
``Engine.prepare_capture``."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from actors.cli._admins import admin_login
from actors.cli.failures import CliError
from actors.core.errors import DatabaseError, NodeUnreachable, SourceMisconfigured, SourceUnavailable
from actors.core.routing import build_routes
from actors.engines.registry import engine_for
from actors.ops.probe_table import nodes_with_probe_table
from config.exit_codes import Exit
from config.loader import nodes_by_name
from config.model import Config


def init_capture_sources(config: Config, args: argparse.Namespace) -> None:
    """Prepare every source node for capture. A node that cannot be reached is exit 3."""
    nodes = nodes_by_name(config)
    tables: dict[str, list[str]] = defaultdict(list)
    for route in build_routes(config, probe_nodes=nodes_with_probe_table(config)):
        if route.source_namespace not in tables[route.source_node]:
            tables[route.source_node].append(route.source_namespace)
    for name, namespaces in sorted(tables.items()):
        node = nodes[name]
        engine = engine_for(node)
        user, password = admin_login(args, engine)
        try:
            warnings = engine.prepare_capture(name, node, namespaces, user=user, password=password)
        except NodeUnreachable as exc:
            raise CliError(f"preparing capture: {exc}", Exit.UNAVAILABLE) from None
        except SourceMisconfigured as exc:  # the stream would stop at start with the same words
            warnings = [f"{exc} (the stream stops at start until then)"]
        except (DatabaseError, SourceUnavailable) as exc:  # says what and what to do
            raise CliError(str(exc), exc.exit_code) from None
        for warning in warnings:
            print(f"worker-sync init: warning: {warning}", file=sys.stderr)
