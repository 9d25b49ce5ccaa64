"""`worker-sync migrate --config FILE [--dry-run] [--json]`: bring Worker-Sync's own schemas to this version.

Each schema carries a version table listing the steps applied; migrate runs the missing ones, in order, in
one transaction per schema, and re-asserts the grants. `worker-sync init` runs the same steps, so a fresh
store equals an old one after `migrate`. Safe to run again (and concurrently: an advisory lock orders runs).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from actors.cli._audit_db import audit_node, connect, load
from actors.cli.failures import Wording, guarded
from actors.core.errors import DatabaseError, DatabaseUnreachable
from actors.engines.postgresql.schema_steps import Migration, SchemaSpec, Target, migrate
from config.exit_codes import Exit
from config.model import Config

WORDING: Wording = {
    DatabaseUnreachable: "database error: {message}",
    DatabaseError: "a migration step failed, nothing was changed: {message}",
}


def schema_targets(config: Config, service_role: str) -> list[tuple[SchemaSpec, Target]]:
    """Every Worker-Sync schema this config uses, with where it lives. Add a new store's spec here."""
    from actors.engines.postgresql.audit_schema import AUDIT

    targets: list[tuple[SchemaSpec, Target]] = []
    if config.audit.enabled:
        targets.append((AUDIT, Target(config.audit.schema, service_role)))
    return targets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the YAML config file")
    parser.add_argument("--dry-run", action="store_true", help="list the steps that would run; change nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--service-role", help="role Worker-Sync runs as (default: the audit node's username)")
    parser.add_argument("--admin-user", help="role that owns the schemas (default: the audit node's username)")
    parser.add_argument(
        "--admin-password-env",
        help="environment variable holding the --admin-user password (never on the command line)",
    )


def run(args: argparse.Namespace) -> int:
    return guarded("migrate", lambda: _report(args, _migrate(args)), WORDING)


def _report(args: argparse.Namespace, results: list[Migration]) -> int:
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "schemas": [asdict(r) for r in results]}))
    else:
        for result in results:
            print(_describe(result))
        if not results:
            print("no Worker-Sync schema in this config (`audit.enabled` is false): nothing to migrate")
    return Exit.OK


def _migrate(args: argparse.Namespace) -> list[Migration]:
    config = load(args.config)
    node = audit_node(config)
    targets = schema_targets(config, args.service_role or node.username)
    if not targets:
        return []
    with connect(node, user=args.admin_user, password_env=args.admin_password_env) as conn:
        return [migrate(conn, spec, target, dry_run=args.dry_run) for spec, target in targets]


def _describe(result: Migration) -> str:
    where = f"{result.kind} schema `{result.schema}`"
    if result.dry_run:
        if not result.pending:
            return f"{where}: up to date (step {result.from_version} of {result.to_version})"
        return f"{where}: at step {result.from_version} of {result.to_version}; would apply {', '.join(result.pending)}"
    if not result.applied:
        return f"{where}: up to date (step {result.to_version}); grants re-asserted"
    return (
        f"{where}: step {result.from_version} -> {result.to_version}; applied {', '.join(result.applied)}; "
        "grants re-asserted"
    )
