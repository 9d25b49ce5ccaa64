"""`worker-sync conflicts list|show|resolve`: the parked conflicts of `manual` bidirectional groups.

They live with the running supervisor (its state directory); this command talks to its HTTP port, like
`status`. Resolving needs the instance's bearer token (`http.token_file` / `http.token_env` of the config,
or `--token-file`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from actors.cli.exit_codes import Exit
from actors.core.errors import ConfigError
from config import load_config
from config.secrets import read_secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--url", help="base URL of the instance (default: from --config, else http://127.0.0.1:8080)")
    where.add_argument("--config", help="the instance's config file (its `http` block gives address and token)")
    common.add_argument("--token-file", help="file holding the bearer token (default: the config's)")
    common.add_argument("--json", action="store_true", help="print JSON")
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


class _Failure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def run(args: argparse.Namespace) -> int:
    try:
        base, token = _endpoint(args)
        if args.action == "list":
            items = _call(base + "/conflicts")
            _print_list(items, args.json)
        elif args.action == "show":
            item = _call(f"{base}/conflicts/{args.id}")
            print(json.dumps(item, indent=2) if args.json else _describe(item))
        else:
            if token is None:
                raise _Failure(Exit.USAGE, "resolving needs the bearer token: give --token-file or a config with one")
            item = _call(f"{base}/conflicts/{args.id}/resolve", {"take": args.take}, token)
            print(json.dumps(item, indent=2) if args.json else f"conflict {item['id']}: {item['state']}")
    except ConfigError as exc:
        print(f"worker-sync conflicts: {exc}", file=sys.stderr)
        return Exit.USAGE
    except _Failure as exc:
        print(f"worker-sync conflicts: {exc}", file=sys.stderr)
        return exc.code
    return Exit.OK


def _endpoint(args: argparse.Namespace) -> tuple[str, str | None]:
    token = read_secret(env=None, file=args.token_file, what="http token") if args.token_file else None
    if args.url:
        return args.url.rstrip("/"), token
    if args.config:
        http = load_config(args.config).http
        host = "127.0.0.1" if http.host in ("0.0.0.0", "::") else http.host
        if token is None:
            token = read_secret(env=None, file=http.token_file, what="http token")
        if token is None and http.token_env:
            token = os.environ.get(http.token_env)
        return f"http://{host}:{http.port}", token
    return "http://127.0.0.1:8080", token


def _call(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace").strip()
        code = Exit.FINDINGS if exc.code == 404 else Exit.USAGE
        raise _Failure(code, f"{url}: {exc.code} {text}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _Failure(Exit.UNAVAILABLE, f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


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
