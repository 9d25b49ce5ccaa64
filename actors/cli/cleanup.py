"""`worker-sync cleanup --config FILE --retention-days N [--dry-run] [--json]`: audit retention that keeps the
log verifiable.

Entries older than N days lose their content (``data`` and the row ``key``) but keep their leaf hash, chain
link, position, table and time, so every signed checkpoint still verifies over them. The service role has no
UPDATE privilege: the change goes through the schema's ``prune()`` function (SECURITY DEFINER, owned by the
schema owner), which only blanks a prefix of entries that are all older than the cutoff (the database's clock)
and covered by a signed checkpoint, and records the range in ``prunes``. The prune is then also recorded as a
``retention`` admin entry in the signed log itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys

from actors.cli._audit_db import audit_node, connect, load
from actors.cli.failures import CliError, guarded
from actors.core.errors import ConfigError, DatabaseUnreachable, PrivilegeMissing, WorkerSyncError
from actors.engines.postgresql.audit_store import AuditStore
from actors.engines.registry import driver_errors
from config.exit_codes import Exit
from config.model import Config, PostgresNode

#: Attempts to append the `retention` admin entry while the audit actor may be appending too.
RECORD_ATTEMPTS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the YAML config file")
    parser.add_argument(
        "--retention-days", required=True, type=int, help="keep the content of entries younger than this (>= 1)"
    )
    parser.add_argument("--dry-run", action="store_true", help="say which entries would be pruned; change nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--admin-user", help="connect as this role instead of the audit node's username")
    parser.add_argument(
        "--admin-password-env",
        help="environment variable holding the --admin-user password (never on the command line)",
    )


def run(args: argparse.Namespace) -> int:
    return guarded("cleanup", lambda: _cleanup(args), {DatabaseUnreachable: "database error: {message}"})


def _cleanup(args: argparse.Namespace) -> int:
    if args.retention_days < 1:
        raise CliError(f"`--retention-days` must be at least 1, not {args.retention_days}", Exit.USAGE)
    config = load(args.config)
    node = audit_node(config)
    with connect(node, user=args.admin_user, password_env=args.admin_password_env) as conn:
        lo, hi, cutoff_us, last = _prune(AuditStore(conn, config.audit.schema), args.retention_days, args.dry_run)
    recorded = None
    if last is not None and not args.dry_run:
        # The newest prune, also when an earlier run pruned but failed to record it (idempotent).
        recorded = _record(config, node, *last, args.retention_days)
    cutoff = dt.datetime.fromtimestamp(cutoff_us / 1e6, dt.UTC).isoformat()
    result = {
        "dry_run": args.dry_run,
        "retention_days": args.retention_days,
        "cutoff": cutoff,
        "from_seq": lo,
        "to_seq": hi,
        "pruned": hi - lo,
        "recorded_at_seq": recorded,
    }
    if args.json:
        print(json.dumps(result))
    elif hi == lo:
        print(f"nothing to prune: no signed entry older than {cutoff} keeps its content")
    else:
        verb = "would prune" if args.dry_run else "pruned"
        print(
            f"{verb} entries {lo}..{hi - 1} ({hi - lo} entries older than {cutoff}): content removed, "
            "hashes and signed checkpoints kept - `worker-sync audit verify` still checks the whole log"
            + (f"; recorded as entry {recorded}" if recorded is not None and hi > lo else "")
        )
    return Exit.OK


def _prune(store: AuditStore, days: int, dry_run: bool) -> tuple[int, int, int, tuple[int, int, int] | None]:
    """(from_seq, to_seq, cutoff_us) of this run, and the newest recorded prune."""
    schema = store.schema
    if not store.exists():
        raise ConfigError("config", f"the audit schema `{schema}` does not exist - create it with `worker-sync init`")
    if "audit-retention" in store.pending_steps():
        raise ConfigError("config", f"the audit schema `{schema}` predates retention - run `worker-sync migrate`")
    try:
        with driver_errors():
            lo, hi, cutoff_us = store.prune(days, dry_run=dry_run)
            return lo, hi, cutoff_us, store.last_prune()
    except PrivilegeMissing as exc:
        raise CliError(
            f"this role may not prune `{schema}` ({exc}) - run `worker-sync migrate` so the "
            "service role is granted EXECUTE on `prune()`, or pass `--admin-user`",
            Exit.FINDINGS,
        ) from None


def _record(config: Config, node: PostgresNode, lo: int, hi: int, cutoff_us: int, days: int) -> int | None:
    """Append the `retention` admin entry (idempotent by range); None when no signing key is configured."""
    from actors.audit_chain import AuditWriter

    if not (config.audit.signing_key_file or config.audit.signing_key_env):
        print("worker-sync cleanup: no signing key configured: the prune is recorded in `prunes` only", file=sys.stderr)
        return None
    detail: dict[str, object] = {"from_seq": lo, "to_seq": hi, "cutoff_us": cutoff_us, "retention_days": days}
    writer = AuditWriter(config.audit, node, [], exports=False)
    try:
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                appended = writer.record_admin(
                    "retention", detail, request_id=f"prune:{lo}-{hi}", actor=f"cli:{getpass.getuser()}"
                )
                return appended.size - 1 if appended.entries else None
            except WorkerSyncError as exc:  # e.g. the audit actor took the same seq: re-read the log, try again
                if attempt == RECORD_ATTEMPTS:
                    raise CliError(
                        f"pruned entries {lo}..{hi - 1} (recorded in `prunes`), but appending the `retention` entry "
                        f"to the signed log failed: {str(exc).strip()} - run cleanup again to record it",
                        Exit.FINDINGS,
                    ) from None
        return None
    finally:
        writer.close()
