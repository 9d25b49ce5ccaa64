"""`worker-sync backup --config FILE --output-dir DIR [--retention-days N] [--databases] [--s3-bucket B
--s3-region R [--s3-prefix P] [--s3-endpoint URL]] [--json]`: the chart's Backup CronJob.

Writes one dated archive (`backup_YYYYMMDD_HHMMSS.tar.gz`, see actors.ops.archive) with the audit
store's entries and signed checkpoints, the committed positions, the config and, with `--databases`,
dumps of the configured databases; uploads it to S3 when a bucket is given; then removes archives
older than the retention, locally and in S3. Progress goes to stderr, the `--json` summary to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import msgspec

from actors.cli._audit_db import audit_node, connect
from actors.cli.failures import CliError, Wording, guarded
from actors.core.errors import ConfigError, DatabaseUnreachable, WorkerSyncError
from actors.ops.s3 import S3Unreachable
from config import load_config, nodes_by_name
from config.exit_codes import Exit
from config.model import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the YAML config file")
    parser.add_argument("--output-dir", required=True, help="directory for the archives (created if missing)")
    parser.add_argument(
        "--retention-days", type=int, default=0, help="remove archives older than N days (default 0: keep all)"
    )
    parser.add_argument(
        "--databases", action="store_true", help="also dump every configured database (pg_dump / mariadb-dump)"
    )
    parser.add_argument("--s3-bucket", help="also upload the archive to this S3 bucket")
    parser.add_argument("--s3-region", help="the bucket's region (default: $AWS_REGION)")
    parser.add_argument("--s3-prefix", default="", help="key prefix in the bucket, e.g. `worker-sync/`")
    parser.add_argument("--s3-endpoint", help="S3-compatible endpoint URL (MinIO, Ceph); default: AWS")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def _progress(message: str) -> None:
    print(f"worker-sync backup: {message}", file=sys.stderr, flush=True)


def _s3_client(args: argparse.Namespace):
    import os

    from actors.ops.s3 import S3Client

    region = args.s3_region or os.environ.get("AWS_REGION")
    if not region:
        raise ConfigError("--s3-region", "give the bucket's region (`--s3-region` or `AWS_REGION`)")
    if args.s3_endpoint and not args.s3_endpoint.startswith(("http://", "https://")):
        raise ConfigError("--s3-endpoint", f"`{args.s3_endpoint}` is not an http(s) URL")
    return S3Client(args.s3_bucket, region, endpoint=args.s3_endpoint)


#: How backup words what stops it; errors with a complete message of their own are printed as they are.
WORDING: Wording = {
    WorkerSyncError: "FAILED: {message}",
    OSError: "FAILED: {message}",
    ConfigError: "{message}",
    CliError: "{message}",
    S3Unreachable: "{message}",
    DatabaseUnreachable: "audit database error: {message}",
}


def run(args: argparse.Namespace) -> int:
    return guarded("backup", lambda: _run(args), WORDING)


def _run(args: argparse.Namespace) -> int:
    if args.retention_days < 0:
        raise ConfigError("--retention-days", "must be 0 (keep all) or more")
    config = load_config(args.config)
    s3 = _s3_client(args) if args.s3_bucket else None
    summary = _backup(args, config, s3)
    if args.json:
        print(msgspec.json.encode(summary).decode())
    return Exit.OK


def _backup(args: argparse.Namespace, config: Config, s3) -> dict:
    from actors.ops.archive import Manifest, archive_name, describe, write_archive
    from actors.ops.positions import save_positions

    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / archive_name(now)
    config_bytes = Path(args.config).read_bytes()
    staging = Path(tempfile.mkdtemp(prefix=".backup-staging-", dir=output_dir))
    try:
        (staging / "config.yaml").write_bytes(config_bytes)
        positions = save_positions(Path(config.supervisor.state_dir), staging)
        _progress(f"{len(positions)} committed position(s) from `{config.supervisor.state_dir}`")
        audit = _export_audit(config, staging) if config.audit.enabled else None
        databases = _dump_databases(config, staging) if args.databases else {}
        manifest = Manifest(
            worker_sync_version=_version(),
            created_at=now.isoformat(),
            config_sha256=hashlib.sha256(config_bytes).hexdigest(),
            audit=audit,
            positions=positions,
            databases=databases,
            files=describe(staging),
        )
        write_archive(staging, manifest, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = output.stat().st_size
    _progress(f"wrote `{output}` ({size} bytes)")
    uploaded = None
    if s3 is not None:
        from actors.ops.archive import sha256_file

        key = args.s3_prefix + output.name
        s3.put_file(key, output, sha256_file(output))
        uploaded = f"s3://{s3.bucket}/{key}"
        _progress(f"uploaded to {uploaded}")
    removed = _apply_retention(args, output_dir, s3, now)
    return {
        "archive": str(output),
        "bytes": size,
        "s3": uploaded,
        "audit_entries": audit.entries if audit else None,
        "audit_checkpoints": audit.checkpoints if audit else None,
        "positions": len(positions),
        "databases": sorted(databases),
        "removed": removed,
        "seconds": round(time.monotonic() - started, 3),
    }


def _version() -> str:
    try:
        return metadata.version("worker-sync")
    except metadata.PackageNotFoundError:
        return "unknown"


def _export_audit(config: Config, staging: Path):
    from actors.engines.postgresql.audit_store import AuditStore
    from actors.ops.audit_export import export_audit

    conn = connect(audit_node(config))
    with conn:
        store = AuditStore(conn, config.audit.schema)
        if not store.exists():
            raise ConfigError(
                "config", f"the audit schema `{config.audit.schema}` does not exist: run `worker-sync init`"
            )
        summary = export_audit(store, config.audit.schema, staging)
    _progress(f"audit store `{summary.schema}`: {summary.entries} entries, {summary.checkpoints} signed checkpoints")
    return summary


def _dump_databases(config: Config, staging: Path) -> dict[str, str]:
    from actors.ops.dumps import dump_node, dump_tool

    nodes = nodes_by_name(config)
    for node in nodes.values():  # every tool first: fail before a long dump, not after it
        dump_tool(node)
    (staging / "databases").mkdir()
    dumps = {}
    for name, node in sorted(nodes.items()):
        rel = f"databases/{name}.sql"
        dump_node(name, node, staging / rel)
        dumps[name] = rel
        _progress(f"dumped node `{name}` ({node.host}:{node.port}/{node.database})")
    return dumps


def _apply_retention(args: argparse.Namespace, output_dir: Path, s3, now: dt.datetime) -> list[str]:
    from actors.ops.archive import expired

    removed = []
    for name in expired((p.name for p in output_dir.iterdir()), now, args.retention_days):
        (output_dir / name).unlink(missing_ok=True)
        removed.append(str(output_dir / name))
    if s3 is not None:
        prefix = args.s3_prefix
        keys = {key[len(prefix) :]: key for key in s3.list(prefix) if "/" not in key[len(prefix) :]}
        for name in expired(keys, now, args.retention_days):
            s3.delete(keys[name])
            removed.append(f"s3://{s3.bucket}/{keys[name]}")
    for item in removed:
        _progress(f"removed {item} (older than {args.retention_days} days)")
    return removed
