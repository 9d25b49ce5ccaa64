"""The `worker-sync` command line (SPEC §5): argparse subcommands, each imported only when run."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from config.exit_codes import Exit

# name -> (module under actors.cli that implements it, one-line help). A module exposes
# `add_arguments(parser)` (optional) and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run the sync pipeline in the foreground (what `ray job submit` runs)"),
    "status": ("status", "show a running instance's streams, lag, queues and shards"),
    "sync": ("sync", "re-read a stream's tables from a fresh snapshot (`sync --manual --stream NAME`)"),
    "audit": ("audit", "audit trail: `audit logs`, `audit verify`, `audit prove`"),
    "conflicts": ("conflicts", "parked conflicts of `manual` bidirectional groups: list, show, resolve"),
    "dead-letters": ("dead_letters", "changes a target refused for good, set aside: list, show, retry, discard"),
    "init": ("init", "create audit schemas, slots and publications; check server settings"),
    "migrate": ("migrate", "upgrade Worker-Sync's own schemas to this version"),
    "backup": ("backup", "back up the audit store and committed positions"),
    "restore": ("restore", "restore a backup made by `backup`"),
    "cleanup": ("cleanup", "apply retention without breaking verifiability"),
    "verify": ("verify", "compare a live link's source and target tables by key ranges; --repair fixes differences"),
    "probe": ("probe", "write a marker at a source and wait for it at its target"),
    "check-config": ("check_config", "validate a config file (no Ray, no database needed)"),
    "demo": ("demo", "start throwaway local servers and show Worker-Sync at work on them"),
}

EPILOG = """\
exit codes: 0 ok, 1 failure or findings, 2 bad usage or bad config, 3 a database or Ray cannot be reached.
Run `worker-sync COMMAND --help` for a command's options."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser, or (``command``) only that one's options: `worker-sync run` then imports
    the run module alone, not all sixteen (a third of a second off its start-up)."""
    parser = argparse.ArgumentParser(
        prog="worker-sync",
        description="Capture changes in PostgreSQL, MariaDB/MySQL and MongoDB, keep databases in sync "
        "both ways, and keep a signed, tamper-evident audit trail.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (module_name, summary) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        if command is not None and name != command:
            continue
        module = _module(module_name)
        add_arguments = getattr(module, "add_arguments", None)
        if add_arguments is not None:
            add_arguments(sub)
    return parser


def _module(module_name: str):
    return importlib.import_module(f"actors.cli.{module_name}")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    first = next((word for word in words if not word.startswith("-")), None)
    # A known command: build its options only. Otherwise all of them (argparse names the bad choice).
    parser = build_parser(first if first in COMMANDS else None)
    args = parser.parse_args(words)
    if args.command is None:
        parser.print_help(sys.stderr)
        return Exit.USAGE
    module = _module(COMMANDS[args.command][0])
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        print("worker-sync: interrupted", file=sys.stderr)
        return 130
