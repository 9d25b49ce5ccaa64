"""`worker-sync conflicts list|show|resolve`: the parked conflicts of `manual` bidirectional groups.

They live with the running supervisor (its state directory); this command talks to its HTTP port, like
`status`. Every action needs the instance's bearer token (conflicts hold rows): `http.token_file` /
`http.token_env` of the config, or `--token-file`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from actors.cli._http_client import HttpFailure, add_endpoint_arguments, call, endpoint
from actors.core.errors import ConfigError
from config.exit_codes import Exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    add_endpoint_arguments(common)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="every parked conflict (state parked, resolving or resolved)")
    show = actions.add_parser("show", parents=[common], help="one conflict: both versions of the row")
    show.add_argument("id")
    resolve = actions.add_parser("resolve", parents=[common], help="settle a conflict on every node of its group")
    resolve.add_argument("id")
    resolve.add_argument(
        "--take",
        choices=["source", "target"],
        required=True,
        help="source: the parked (losing) change wins everywhere; target: keep the winner every node holds",
    )


def run(args: argparse.Namespace) -> int:
    try:
        base, token = endpoint(args)
        if token is None:  # conflicts hold rows: every action is behind the token
            raise HttpFailure(
                Exit.USAGE, f"`{args.action}` needs the bearer token: give --token-file or a config with one"
            )
        if args.action == "list":
            items = call(base + "/conflicts", None, token)
            _print_list(items, args.json)
        elif args.action == "show":
            item = call(f"{base}/conflicts/{args.id}", None, token)
            print(json.dumps(item, indent=2) if args.json else _describe(item))
        else:
            item = call(f"{base}/conflicts/{args.id}/resolve", {"take": args.take}, token)
            print(json.dumps(item, indent=2) if args.json else f"conflict {item['id']}: {item['state']}")
    except ConfigError as exc:
        print(f"worker-sync conflicts: {exc}", file=sys.stderr)
        return Exit.USAGE
    except HttpFailure as exc:
        print(f"worker-sync conflicts: {exc}", file=sys.stderr)
        return exc.code
    return Exit.OK


def _print_list(items: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(items, indent=2))
        return
    if not items:
        print("no parked conflicts")
    for item in items:
        print(
            f"{item['id']}  {item['state']:<9}  {item['namespace']} key {json.dumps(item['key'])}: "
            f"{item['source']['node']}'s change lost to {item['target']['node']}'s"
        )


def _describe(item: dict[str, Any]) -> str:
    lines = [f"conflict {item['id']} ({item['state']}) in group {item['group']}, policy {item['policy']}"]
    lines.append(f"  row {item['namespace']} key {json.dumps(item['key'])} on node {item['node']}")
    for side, label in (("source", "lost (source)"), ("target", "kept (target)")):
        version = item[side]
        lines.append(
            f"  {label}: node {version['node']}, commit time {version['commit_time_us']} us, "
            f"row {json.dumps(version['row'])}"
        )
    return "\n".join(lines)
