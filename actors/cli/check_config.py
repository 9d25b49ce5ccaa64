"""`worker-sync check-config FILE [--deep]`: validate a config file without Ray or a database (`--deep`:
actors/deep_check.py)."""

from __future__ import annotations

import argparse
import sys

import msgspec

from actors.core.errors import ConfigError
from actors.core.groups import build_groups
from config import load_config, nodes_by_name
from config.exit_codes import Exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the YAML config file to check")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")
    parser.add_argument(
        "--deep",
        action="store_true",
        help="also every rule `run` enforces at start-up that needs no connection (declared MongoDB collections, "
        "a MySQL source's `snapshot: false`, the audit node and key, the routing plan)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
        groups = build_groups(config)  # topology and conflict-policy errors show here too, not at `run`
    except ConfigError as exc:
        if args.json:
            print(msgspec.json.encode({"ok": False, "error": str(exc)}).decode())
        print(f"worker-sync check-config: {exc}", file=sys.stderr)
        return Exit.USAGE
    if args.deep:
        from actors.deep_check import deep_problems

        problems = deep_problems(config)
        if problems:
            if args.json:
                print(msgspec.json.encode({"ok": False, "problems": problems}).decode())
            for problem in problems:
                print(f"worker-sync check-config: {args.file}: {problem}", file=sys.stderr)
            return Exit.USAGE
    nodes = nodes_by_name(config)
    summary = {
        "ok": True,
        "file": args.file,
        "nodes": {name: node.__struct_config__.tag for name, node in nodes.items()},
        "links": [link.name for link in config.links],
        "bidirectional_groups": {group.name: [f"{node}:{ns}" for node, ns in group.members] for group in groups},
        "audit": config.audit.enabled,
    }
    if args.deep:
        summary["deep"] = True
    if args.json:
        print(msgspec.json.encode(summary).decode())
    else:
        node_list = ", ".join(f"{name} ({engine})" for name, engine in summary["nodes"].items()) or "none"
        checked = " (deep: every start-up rule that needs no connection)" if args.deep else ""
        print(f"{args.file}: OK{checked} - nodes: {node_list}; links: {', '.join(summary['links']) or 'none'}")
    return Exit.OK
