"""`worker-sync probe --config FILE [--link NAME] [--timeout S] [--json]`: prove each link carries
changes end to end (the chart's `helm test` sync-functionality pod runs it).

A marker row goes into the dedicated `worker_sync_probe` table at the link's source and must appear
at its target: no user table is touched. Exit 0 with the round-trip times, 1 when a marker does not
arrive in time (naming the link), 2 on a bad config or link name, 3 when a database cannot be reached.
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from actors.core.errors import ConfigError, DatabaseError, NodeUnreachable
from config import load_config, nodes_by_name
from config.exit_codes import Exit
from config.model import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the YAML config file")
    parser.add_argument("--link", help="probe only this link (default: every link)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per link (default 30)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")


def _pairs(config: Config, only: str | None) -> list[tuple[str, str, str]]:
    links = [link for link in config.links if only is None or link.name == only]
    if only is not None and not links:
        names = ", ".join(f"`{link.name}`" for link in config.links) or "none"
        raise ConfigError("--link", f"no link named `{only}` in the config (links: {names})")
    if not links:
        raise ConfigError("config", "the config has no links to probe")
    # A bidirectional link is probed in its declared direction (source -> target), the one its probe route carries.
    return [(link.name, link.source, link.target) for link in links]


def run(args: argparse.Namespace) -> int:
    from actors.cli.failures import report
    from actors.engines.registry import driver_errors
    from actors.ops.probe_run import ProbeResult, probe_link

    if args.timeout <= 0:
        print("worker-sync probe: --timeout must be positive", file=sys.stderr)
        return Exit.USAGE
    try:
        config = load_config(args.config)
        pairs = _pairs(config, args.link)
        nodes = nodes_by_name(config)
        for _, source, target in pairs:
            for end in (source, target):
                if end not in nodes:
                    raise ConfigError("config", f"link names node `{end}`, which is not an enabled node")
    except ConfigError as exc:
        return report("probe", exc)
    results: list[ProbeResult] = []
    code = Exit.OK
    for link, source, target in pairs:
        try:
            with driver_errors():
                result = probe_link(link, (source, nodes[source]), (target, nodes[target]), args.timeout)
        except NodeUnreachable as exc:
            result = ProbeResult(link=link, source=source, target=target, ok=False, probe_id="", problem=str(exc))
            code = Exit.UNAVAILABLE
        except ConfigError as exc:  # a password env variable or file is missing
            return report("probe", exc)
        except DatabaseError as exc:
            problem = f"database error: {str(exc).strip().splitlines()[0]}"
            result = ProbeResult(link=link, source=source, target=target, ok=False, probe_id="", problem=problem)
        results.append(result)
        if result.ok:
            if not args.json:
                print(f"link `{link}` ({source} -> {target}): marker arrived in {result.round_trip_ms:.1f} ms")
            continue
        print(f"worker-sync probe: link `{link}` ({source} -> {target}) FAILED: {result.problem}", file=sys.stderr)
        if code == Exit.OK:
            code = Exit.FINDINGS
    if args.json:
        print(msgspec.json.encode({"ok": code == Exit.OK, "links": results}).decode())
    return code


def init_probe_tables(config: Config, args: argparse.Namespace) -> None:
    """Called by `worker-sync init`: create the probe table on every link node. A node where the user
    may not create it gets a warning with the SQL an administrator can run; init itself goes on."""
    from actors.cli._admins import admin_login
    from actors.cli.failures import CliError
    from actors.engines.registry import engine_for
    from actors.ops.probe_table import create_probe_tables, create_statements

    nodes = nodes_by_name(config)
    admins: dict[str, tuple[str, str | None]] = {}
    for node in nodes.values():
        engine = engine_for(node)
        user, password = admin_login(args, engine)
        if user:
            admins[engine.name] = (user, password)
    try:
        problems = create_probe_tables(config, admins)
    except NodeUnreachable as exc:
        raise CliError(f"creating the probe table: {exc}", Exit.UNAVAILABLE) from None
    for name, problem in problems:
        node = nodes[name]
        sql = "; ".join(create_statements(node, [node.username]))
        print(
            f"worker-sync init: warning: probe table not created on node `{name}` ({problem}); `worker-sync probe` "
            f"cannot test links through it until an administrator runs: {sql}",
            file=sys.stderr,
        )
