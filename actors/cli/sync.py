"""`worker-sync sync --manual --stream NAME`: re-read a stream's tables from a fresh snapshot (the seed's
`sync:manual`), through the running instance's HTTP port.

A stream is one source node and every table its links carry. The supervisor stops polling it, lets what
it already sent be applied and committed, and starts a new capture actor that re-reads every table from a
fresh consistent snapshot, positioned right after the committed position, then streams on from that
position, so changes made meanwhile (deletes included) are replayed after the snapshot rows and none is
lost. It is also the remedy for a stream stopped because its position was lost (a purged binlog, a
dropped slot): that one starts over from a snapshot. Rows that exist only at the target are left alone.
"""

from __future__ import annotations

import argparse
import json
import sys

from actors.cli._http_client import HttpFailure, add_endpoint_arguments, call, endpoint
from actors.core.errors import ConfigError
from config.exit_codes import Exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manual", action="store_true", required=True, help="a manual re-sync (the only kind)")
    parser.add_argument("--stream", required=True, help="the stream (source node) to re-read; see `status`")
    add_endpoint_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        base, token = endpoint(args)
        if token is None:
            raise HttpFailure(Exit.USAGE, "a re-sync needs the bearer token: --token-file, or a config with one")
        answer = call(f"{base}/sync/manual", {"stream": args.stream}, token)
    except ConfigError as exc:
        print(f"worker-sync sync: {exc}", file=sys.stderr)
        return Exit.USAGE
    except HttpFailure as exc:
        print(f"worker-sync sync: {exc}", file=sys.stderr)
        return exc.code
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(f"stream {answer['stream']}: re-sync {answer['state']} ({', '.join(answer['tables'])})")
    return Exit.OK
