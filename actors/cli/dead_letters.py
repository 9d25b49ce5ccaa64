"""`worker-sync dead-letters list|show|retry|discard`: changes a target refused for good.

When a target database refuses a row permanently (too large for it, a NUL byte into a PostgreSQL text
column, a value out of range, a constraint), the running supervisor sets the change aside as a dead letter,
with every later change of the same key held behind it, and the rest of the stream flows on. They live
with the running supervisor; this command talks to its HTTP port, like `conflicts`. Every action needs
the instance's bearer token (dead letters hold rows): `http.token_file` / `http.token_env` of the config,
or `--token-file`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from actors.cli._http_client import HttpFailure, add_endpoint_arguments, call, endpoint
from actors.core.errors import ConfigError
from config.exit_codes import Exit

#: How often `retry --wait` asks for the outcome.
POLL_S = 0.5
#: The longest reason `list` prints.
REASON_CHARS = 100

EXPLAINED = """\
A dead letter is a change a target database refused for good: a row too large for the target, a NUL byte
into a PostgreSQL text column, a value out of range, a constraint it breaks. Errors that pass (a lost
connection, a deadlock, a server down) are retried with backoff instead. The refused change is set aside,
every later change of the same key waits behind it (so that key's changes still land in order), and the
rest of the stream flows on. Nothing is lost: the change is recorded (and audited) while the stream's
position moves on.

To repair one: read it (`show ID`: the row and the target's reason), fix the cause (widen the column,
clean the source row, drop or relax the constraint), then `retry ID`: every open dead letter of that row
is applied again, oldest first, and the command waits for the outcome (exit 0 resolved, 1 refused again,
with the reason). `discard ID` drops one for good; the row's changes flow again once none of its dead
letters is open.

examples:
  worker-sync dead-letters list --config sync.yaml
  worker-sync dead-letters show 3f2a9c0b1d4e --config sync.yaml
  worker-sync dead-letters retry 3f2a9c0b1d4e --config sync.yaml
  worker-sync dead-letters discard 3f2a9c0b1d4e --url http://127.0.0.1:8080 --token-file token"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXPLAINED
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    add_endpoint_arguments(common)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="every dead letter (state dead, retrying, resolved or discarded)")
    show = actions.add_parser("show", parents=[common], help="one dead letter: its row, the reason, when, how often")
    show.add_argument("id")
    retry = actions.add_parser(
        "retry", parents=[common], help="apply its row's dead letters again (after fixing the cause) and wait"
    )
    retry.add_argument("id")
    retry.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="wait this long for the outcome (default 30; 0: only ask). Exit 0 resolved, 1 refused again",
    )
    discard = actions.add_parser("discard", parents=[common], help="drop this change for good (never applied)")
    discard.add_argument("id")


def run(args: argparse.Namespace) -> int:
    try:
        base, token = endpoint(args)
        if token is None:  # dead letters hold rows: every action is behind the token
            raise HttpFailure(
                Exit.USAGE, f"`{args.action}` needs the bearer token: give --token-file or a config with one"
            )
        if args.action == "list":
            _print_list(call(base + "/dead-letters", None, token), args.json)
            return Exit.OK
        if args.action == "show":
            item = call(f"{base}/dead-letters/{args.id}", None, token)
            print(json.dumps(item, indent=2) if args.json else _describe(item))
            return Exit.OK
        item = call(f"{base}/dead-letters/{args.id}/{args.action}", {}, token)
        if args.action == "discard":
            print(json.dumps(item, indent=2) if args.json else f"dead letter {item['id']}: {item['state']}")
            return Exit.OK
        return _retry(base, token, item, args.wait, args.json)
    except ConfigError as exc:
        print(f"worker-sync dead-letters: {exc}", file=sys.stderr)
        return Exit.USAGE
    except HttpFailure as exc:
        print(f"worker-sync dead-letters: {exc}", file=sys.stderr)
        return exc.code


def _retry(base: str, token: str, item: dict[str, Any], wait_s: float, as_json: bool) -> int:
    """Print the state the retry was accepted in, then poll until it is settled (or ``wait_s`` passes)."""
    if not as_json:
        print(f"dead letter {item['id']}: {item['state']}", flush=True)
    deadline = time.monotonic() + wait_s
    while item["state"] == "retrying" and time.monotonic() < deadline:
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        item = call(f"{base}/dead-letters/{item['id']}", None, token)
    if as_json:
        print(json.dumps(item, indent=2))
    state = item["state"]
    if state == "resolved":
        if not as_json:
            print(f"dead letter {item['id']}: resolved (applied at {item['target_node']})")
        return Exit.OK
    if state == "retrying":
        if wait_s <= 0:
            return Exit.OK  # only asked: the outcome is for `show` to tell
        print(
            f"worker-sync dead-letters: {item['id']} is still retrying after {wait_s:g} s; "
            f"see `worker-sync dead-letters show {item['id']}`",
            file=sys.stderr,
        )
        return Exit.FINDINGS
    if not as_json:
        print(f"dead letter {item['id']}: {state}: {item['reason']}")
    return Exit.FINDINGS


def _shorten(text: str, limit: int = REASON_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _print_list(items: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(items, indent=2))
        return
    if not items:
        print("no dead letters")
    for item in items:
        held = f" [held behind {item['held_behind']}]" if item.get("held_behind") else ""
        print(
            f"{item['id']}  {item['state']:<9}  {item['link']}  {item['namespace']} "
            f"key {json.dumps(item['key'])}: {_shorten(item['reason'])}{held}"
        )


def _describe(item: dict[str, Any]) -> str:
    lines = [
        f"dead letter {item['id']} ({item['state']})",
        f"  link:        {item['link']} ({item['source_node']} -> {item['target_node']})",
        f"  table:       {item['namespace']}",
        f"  key:         {json.dumps(item['key'])}",
        f"  op:          {item['op']}",
        f"  row:         {json.dumps(item['row'])}",
        f"  reason:      {item['reason']}",
        f"  first at:    {item['first_at']}",
        f"  last at:     {item['last_at']}",
        f"  attempts:    {item['attempts']}",
        f"  held behind: {item['held_behind'] or '-'}",
    ]
    return "\n".join(lines)
