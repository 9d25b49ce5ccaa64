"""Commands that are specified but not built yet: they say so and fail, never pretend."""

from __future__ import annotations

import argparse
import sys

from actors.cli.exit_codes import Exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    print(
        f"worker-sync {args.command}: not built yet in this version; see the README's roadmap",
        file=sys.stderr,
    )
    return Exit.FINDINGS
