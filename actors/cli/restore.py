"""`worker-sync restore --config FILE ARCHIVE [--dry-run] [--public-key FILE] [--json]`: load a backup
made by `backup` into an empty audit store and restore the committed positions.

Every file is checked against the manifest's SHA-256 first, and the archived audit log is verified
(hash chain, Merkle roots, checkpoint signatures: the checks of `audit verify`) before anything is
written; the store must be empty (a restore never merges two logs), and the loaded log is verified
again from the database. Database dumps in the archive are not loaded: the message says how.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import msgspec

from actors.cli._audit_db import audit_node, connect
from actors.cli.failures import CliError, Wording, guarded
from actors.core.errors import ConfigError, DatabaseUnreachable, WorkerSyncError
from actors.ops.archive import ArchiveError
from config import load_config
from config.exit_codes import Exit
from config.model import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the YAML config file of the deployment to restore into")
    parser.add_argument("archive", help="a `backup_YYYYMMDD_HHMMSS.tar.gz` made by `worker-sync backup`")
    parser.add_argument("--dry-run", action="store_true", help="check the archive and the target; write nothing")
    parser.add_argument("--public-key", help="public key file (default: derived from the configured signing key)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def _say(message: str) -> None:
    print(f"worker-sync restore: {message}", file=sys.stderr, flush=True)


#: How restore words what stops it; errors with a complete message of their own are printed as they are.
WORDING: Wording = {
    WorkerSyncError: "FAILED: {message}",
    OSError: "FAILED: {message}",
    ConfigError: "{message}",
    CliError: "{message}",
    ArchiveError: "REFUSED: {message}",
    DatabaseUnreachable: "audit database error: {message}",
}


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="worker-sync-restore-"))
    try:
        return guarded("restore", lambda: _run(args, workdir), WORDING)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, workdir: Path) -> int:
    config = load_config(args.config)
    if not Path(args.archive).is_file():
        raise ConfigError(args.archive, "no such archive file")
    summary = _restore(args, config, workdir)
    if args.json:
        print(msgspec.json.encode(summary).decode())
    return Exit.OK


def _public_key(args: argparse.Namespace, config: Config):
    from actors.core.audit.checkpoint import load_public_key, load_signing_key

    if args.public_key:
        return load_public_key(args.public_key)
    audit = config.audit
    if not (audit.signing_key_file or audit.signing_key_env):
        raise ConfigError(args.config, "give `--public-key FILE`, or set `audit.signing_key_file`/`_env`")
    return load_signing_key(file=audit.signing_key_file, env=audit.signing_key_env).verify_key


def _restore(args: argparse.Namespace, config: Config, workdir: Path) -> dict:
    import hashlib

    from actors.core.audit.verify import verify_log
    from actors.ops.archive import extract_checked
    from actors.ops.audit_export import read_checkpoints, read_entries, read_prunes
    from actors.ops.positions import check_positions, restore_positions

    archive = Path(args.archive)
    manifest = extract_checked(archive, workdir)
    _say(f"`{archive.name}`: {len(manifest.files)} files match the manifest (made {manifest.created_at})")
    if hashlib.sha256(Path(args.config).read_bytes()).hexdigest() != manifest.config_sha256:
        _say("note: the config differs from the one the backup was made with (its copy is `config.yaml`)")
    state_dir = Path(config.supervisor.state_dir)
    problems = check_positions(workdir, manifest.positions, state_dir)
    if problems:
        raise ArchiveError(f"positions not restored: {'; '.join(problems)} - move them away first")
    summary: dict = {"archive": str(archive), "dry_run": args.dry_run, "audit_entries": 0, "audit_checkpoints": 0}
    key = None
    if manifest.audit is not None:
        if not config.audit.enabled:
            raise ConfigError(args.config, "the archive holds an audit log but `audit.enabled` is false")
        key = _public_key(args, config)
        pruned = read_prunes(workdir)
        report = verify_log(read_entries(workdir), read_checkpoints(workdir), key, pruned=pruned)
        if report.finding:
            bad = report.finding
            raise ArchiveError(f"the archived audit log does not verify: first bad entry {bad.seq}: {bad.problem}")
        if (report.entries, report.checkpoints) != (manifest.audit.entries, manifest.audit.checkpoints):
            raise ArchiveError(
                f"the archive holds {report.entries} entries and {report.checkpoints} checkpoints, "
                f"its manifest says {manifest.audit.entries} and {manifest.audit.checkpoints}"
            )
        _say(f"archived audit log verifies: {report.entries} entries, {report.checkpoints} signed checkpoints")
        if pruned:
            raise ArchiveError(
                "not built: the archived log has entries pruned by retention, and loading those into a new store "
                "(with their prune records) is not supported yet; the archive itself verifies"
            )
        _load_audit(args, config, workdir, key, summary)
    if args.dry_run:
        _say(f"dry run: would restore {len(manifest.positions)} position file(s) into `{state_dir}`")
    else:
        for path in restore_positions(workdir, manifest.positions, state_dir):
            _say(f"restored position `{path}`")
    summary["positions"] = len(manifest.positions)
    summary["databases"] = sorted(manifest.databases)
    for node, rel in sorted(manifest.databases.items()):
        _say(f"node `{node}`: its dump `{rel}` is in the archive; load it by hand (`tar -xzf {archive.name} {rel}`)")
    return summary


def _load_audit(args: argparse.Namespace, config: Config, workdir: Path, key, summary: dict) -> None:
    from actors.core.audit.verify import verify_log
    from actors.engines.postgresql.audit_store import AuditStore
    from actors.ops.audit_export import load_audit

    schema = config.audit.schema
    conn = connect(audit_node(config))
    with conn:
        store = AuditStore(conn, schema)
        if not store.exists():
            raise ConfigError(
                "config", f"the audit schema `{schema}` does not exist: run `worker-sync init --config FILE` first"
            )
        if list(store.read(0, 1)) or store.latest_checkpoint() is not None:
            raise CliError(
                f"REFUSED: the audit store `{schema}` is not empty; a restore never merges two logs - restore into "
                "a fresh database (or a new `audit.schema`) created with `worker-sync init`",
                Exit.FINDINGS,
            )
        if args.dry_run:
            _say(f"dry run: the audit store `{schema}` is empty; would load the archived log")
            return
        entries, loaded_checkpoints = load_audit(store, workdir)
        _say(f"loaded {entries} entries and {loaded_checkpoints} checkpoints into `{schema}`")
        report = verify_log(store.read(), store.checkpoints(), key, pruned=store.prunes())
    if report.finding:
        raise CliError(
            f"the restored log does not verify: first bad entry {report.finding.seq}: {report.finding.problem}",
            Exit.FINDINGS,
        )
    _say(f"restored audit log verifies: {report.entries} entries, {report.checkpoints} signed checkpoints")
    summary["audit_entries"], summary["audit_checkpoints"] = report.entries, report.checkpoints
