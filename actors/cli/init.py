"""`worker-sync init --config FILE`: create the append-only audit schema in the audit node's database.

It runs every migration step (the list `worker-sync migrate` uses), so a fresh store is at this version.

It connects as an administrator given explicitly (`--admin-user`, password in the environment variable
named by `--admin-password-env`), or as the node's configured user when none is given, and grants the
service role (default: the node's configured user) INSERT and SELECT only.
"""

from __future__ import annotations

import argparse

from actors.cli._audit_db import audit_node, connect, load
from actors.cli._capture_init import init_capture_sources
from actors.cli._groups_init import init_group_nodes
from actors.cli._heartbeat_init import init_heartbeat_tables
from actors.cli.failures import Wording, guarded, report
from actors.core.errors import ConfigError, DatabaseError, DatabaseUnreachable
from config.exit_codes import Exit
from config.model import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the YAML config file")
    parser.add_argument("--service-role", help="role Worker-Sync runs as (default: the audit node's username)")
    parser.add_argument("--admin-user", help="role that owns the audit schema (default: the audit node's username)")
    parser.add_argument(
        "--admin-password-env",
        help="environment variable holding the --admin-user password (never on the command line)",
    )
    parser.add_argument(
        "--mysql-admin-user", help="MariaDB/MySQL account that creates Worker-Sync's tables (default: the node's user)"
    )
    parser.add_argument(
        "--mysql-admin-password-env", help="environment variable holding the --mysql-admin-user password"
    )
    parser.add_argument(
        "--mongo-admin-user",
        help="MongoDB account that prepares bidirectional group members: creates Worker-Sync's collections and "
        "turns on pre-images (needs readWrite and dbAdmin; default: the node's user)",
    )
    parser.add_argument(
        "--mongo-admin-password-env", help="environment variable holding the --mongo-admin-user password"
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = load(args.config)
    except ConfigError as exc:
        return report("init", exc)
    wording: Wording = {
        DatabaseUnreachable: "database error: {message}",
        DatabaseError: f"creating schema `{config.audit.schema}` failed: {{message}}",
    }
    return guarded("init", lambda: _init(args, config), wording)


def _init(args: argparse.Namespace, config: Config) -> int:
    from actors.cli.migrate import schema_targets
    from actors.cli.probe import init_probe_tables
    from actors.engines.postgresql.audit_schema import AUDIT
    from actors.engines.postgresql.schema_steps import Target, migrate

    node = audit_node(config)
    role = args.service_role or node.username
    # The same steps as `worker-sync migrate` (the audit store even when `audit.enabled` is false).
    targets = schema_targets(config, role) or [(AUDIT, Target(config.audit.schema, role))]
    with connect(node, user=args.admin_user, password_env=args.admin_password_env) as conn:
        for spec, target in targets:
            migrate(conn, spec, target)
    init_probe_tables(config, args)  # the probe table on every link node
    init_capture_sources(config, args)  # pgoutput publications (after the probe table: they publish it)
    prepared = init_group_nodes(config, args)  # version tables on bidirectional nodes
    beating = init_heartbeat_tables(config, args)  # heartbeat tables on sources with `heartbeat_interval_s`
    print(
        f"audit schema `{config.audit.schema}` ready on {node.host}:{node.port}/{node.database}; "
        f"`{role}` may INSERT and SELECT only"
    )
    if prepared:
        print(f"bidirectional sync ready on node(s) {', '.join(prepared)}: version tables and echo markers")
    if beating:
        print(f"heartbeat table ready on node(s) {', '.join(beating)}")
    return Exit.OK
