"""`worker-sync init --config FILE`: create the append-only audit schema in the audit node's database.

It connects as an administrator given explicitly (`--admin-user`, password in the environment variable
named by `--admin-password-env`), or as the node's configured user when none is given, and grants the
service role (default: the node's configured user) INSERT and SELECT only.
"""

from __future__ import annotations

import argparse
import sys

import psycopg

from actors.cli._audit_db import CliError, audit_node, connect, load
from actors.cli.exit_codes import Exit
from actors.core.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the YAML config file")
    parser.add_argument("--service-role", help="role Worker-Sync runs as (default: the audit node's username)")
    parser.add_argument("--admin-user", help="role that owns the audit schema (default: the audit node's username)")
    parser.add_argument(
        "--admin-password-env",
        help="environment variable holding the --admin-user password (never on the command line)",
    )


def run(args: argparse.Namespace) -> int:
    from actors.engines.postgresql.audit_store import create_schema

    try:
        config = load(args.config)
        node = audit_node(config)
        role = args.service_role or node.username
        with connect(node, user=args.admin_user, password_env=args.admin_password_env) as conn:
            create_schema(conn, config.audit.schema, role)
    except ConfigError as exc:
        print(f"worker-sync init: {exc}", file=sys.stderr)
        return Exit.USAGE
    except CliError as exc:
        print(f"worker-sync init: {exc.message}", file=sys.stderr)
        return exc.code
    except psycopg.Error as exc:
        print(f"worker-sync init: creating schema `{config.audit.schema}` failed: {exc}", file=sys.stderr)
        return Exit.FINDINGS
    print(
        f"audit schema `{config.audit.schema}` ready on {node.host}:{node.port}/{node.database}; "
        f"`{role}` may INSERT and SELECT only"
    )
    return Exit.OK
