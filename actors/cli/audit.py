"""`worker-sync audit keygen|verify|prove|verify-proof|logs`: the signed, tamper-evident audit trail.

`verify` and `verify-proof` need only the public key; no secret ever reaches stdout or stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import msgspec
import psycopg
from nacl.signing import SigningKey, VerifyKey

from actors.cli._audit_db import CliError, audit_node, connect, load
from actors.cli.exit_codes import Exit
from actors.core.audit import merkle
from actors.core.audit.checkpoint import Checkpoint, key_id, load_public_key, load_signing_key, verify_signature
from actors.core.audit.entries import decode_entry, leaf_hash
from actors.core.audit.verify import verify_log
from actors.core.errors import ConfigError, WorkerSyncError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", title="subcommands")
    p = sub.add_parser("keygen", help="write a new Ed25519 signing key (mode 0600); print its public key and id")
    p.add_argument(
        "--out", required=True, help="signing key file to create (64 hex characters); FILE.pub gets the public key"
    )
    p = sub.add_parser("verify", help="check the whole log; exit 1 naming the first bad entry")
    p.add_argument("--config", required=True, help="the YAML config file")
    p.add_argument("--public-key", help="public key file (default: derived from the configured signing key)")
    p.add_argument("--checkpoint", help="an exported checkpoint JSON file (detects truncation)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = sub.add_parser("prove", help="print an inclusion proof (JSON) of one entry in the latest checkpoint")
    p.add_argument("--config", required=True, help="the YAML config file")
    p.add_argument("seq", type=int, help="the entry's sequence number")
    p = sub.add_parser("verify-proof", help="check a proof from `audit prove` (no database needed)")
    p.add_argument("proof", help="the proof JSON file")
    p.add_argument("--public-key", required=True, help="public key file")
    p = sub.add_parser("logs", help="list audit entries")
    p.add_argument("--config", required=True, help="the YAML config file")
    p.add_argument("--table", help="namespace (schema.table / database.collection)")
    p.add_argument("--key", help="row key: canonical JSON ('{\"id\":1}') or the value of a one-column key")
    p.add_argument("--since", help="ISO 8601 time (UTC if no offset)")
    p.add_argument("--limit", type=int, default=1000, help="at most this many entries (default 1000)")
    p.add_argument("--json", action="store_true", help="one JSON document per line")
    parser.set_defaults(audit_parser=parser)


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "audit_command", None)
    if command is None:
        args.audit_parser.print_help(sys.stderr)
        return Exit.USAGE
    try:
        return _COMMANDS[command](args)
    except ConfigError as exc:
        print(f"worker-sync audit {command}: {exc}", file=sys.stderr)
        return Exit.USAGE
    except CliError as exc:
        print(f"worker-sync audit {command}: {exc.message}", file=sys.stderr)
        return exc.code
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
        print(
            f"worker-sync audit {command}: the audit store does not exist ({str(exc).strip().splitlines()[0]}) - "
            "create it with `worker-sync init`",
            file=sys.stderr,
        )
        return Exit.USAGE
    except psycopg.OperationalError as exc:
        print(f"worker-sync audit {command}: database error: {str(exc).strip()}", file=sys.stderr)
        return Exit.UNAVAILABLE
    except (psycopg.Error, WorkerSyncError) as exc:
        print(f"worker-sync audit {command}: {str(exc).strip()}", file=sys.stderr)
        return Exit.FINDINGS


def _keygen(args: argparse.Namespace) -> int:
    key = SigningKey.generate()
    out = Path(args.out)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise CliError(f"cannot create `{out}`: {exc.strerror} (an existing key is never overwritten)", 2) from None
    with os.fdopen(fd, "w") as f:
        f.write(bytes(key).hex() + "\n")
    public = bytes(key.verify_key)
    Path(f"{out}.pub").write_text(public.hex() + "\n")
    print(f"public key: {public.hex()}\nkey id: {key_id(public).hex()}\nwritten: {out} (secret, 0600), {out}.pub")
    return Exit.OK


def _store(args: argparse.Namespace):
    from actors.engines.postgresql.audit_store import AuditStore

    config = load(args.config)
    conn = connect(audit_node(config))
    return config, conn, AuditStore(conn, config.audit.schema)


def _public_key(args: argparse.Namespace, config: object) -> VerifyKey:
    if args.public_key:
        return load_public_key(args.public_key)
    audit = config.audit  # type: ignore[attr-defined]
    if not (audit.signing_key_file or audit.signing_key_env):
        raise ConfigError(args.config, "give `--public-key FILE`, or set `audit.signing_key_file`/`_env`")
    return load_signing_key(file=audit.signing_key_file, env=audit.signing_key_env).verify_key


def _verify(args: argparse.Namespace) -> int:
    external = None
    if args.checkpoint:
        try:
            external = Checkpoint.from_json(Path(args.checkpoint).read_bytes())
        except (OSError, ValueError, KeyError, msgspec.DecodeError) as exc:
            raise ConfigError(args.checkpoint, f"not a checkpoint file: {exc}") from None
    config, conn, store = _store(args)
    key = _public_key(args, config)
    with conn:
        # Checkpoints first: entries are committed before the checkpoints that cover them, so every
        # checkpoint read here covers only entries the scan below will see, even while the log grows.
        checkpoints = store.checkpoints()
        report = verify_log(store.read(), checkpoints, key, external)
    if args.json:
        print(
            msgspec.json.encode(
                {
                    "ok": report.ok,
                    "entries": report.entries,
                    "checkpoints": report.checkpoints,
                    "unsigned_tail": report.unsigned_tail,
                    "first_bad_entry": report.finding.seq if report.finding else None,
                    "problem": report.finding.problem if report.finding else None,
                }
            ).decode()
        )
    if report.finding:
        print(f"audit log TAMPERED: first bad entry {report.finding.seq}: {report.finding.problem}", file=sys.stderr)
        return Exit.FINDINGS
    if not args.json:
        print(
            f"audit log intact: {report.entries} entries, {report.checkpoints} signed checkpoints, "
            f"{report.unsigned_tail} entries after the last checkpoint"
        )
    return Exit.OK


def _prove(args: argparse.Namespace) -> int:
    _, conn, store = _store(args)
    with conn:
        cp = store.latest_checkpoint()
        if cp is None or not 0 <= args.seq < cp.size:
            size = cp.size if cp else 0
            raise CliError(f"entry {args.seq} is not covered by a checkpoint (latest signs {size} entries)", 1)
        leaves = store.leaves(cp.size)
        (entry,) = list(store.read(args.seq, args.seq + 1))
    proof = merkle.inclusion_proof(leaves, args.seq)
    print(
        json.dumps(
            {
                "seq": args.seq,
                "entry": entry.data.hex(),
                "proof": [h.hex() for h in proof],
                "checkpoint": json.loads(cp.to_json()),
            },
            indent=2,
        )
    )
    return Exit.OK


def check_proof(document: dict, key: VerifyKey) -> str | None:
    """None if the proof holds; otherwise what is wrong."""
    cp = Checkpoint.from_json(json.dumps(document["checkpoint"]))
    bad = verify_signature(cp, key)
    if bad:
        return f"checkpoint: {bad}"
    data = bytes.fromhex(document["entry"])
    if decode_entry(data).seq != document["seq"]:
        return "the entry's own seq differs from the proof's seq"
    proof = [bytes.fromhex(h) for h in document["proof"]]
    if not merkle.verify_inclusion(document["seq"], cp.size, leaf_hash(data), proof, cp.root):
        return f"entry {document['seq']} is not in the signed tree of size {cp.size}"
    return None


def _verify_proof(args: argparse.Namespace) -> int:
    key = load_public_key(args.public_key)
    try:
        document = json.loads(Path(args.proof).read_text())
        problem = check_proof(document, key)
    except OSError as exc:
        raise ConfigError(args.proof, f"cannot read: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
        print(f"worker-sync audit verify-proof: malformed proof: {exc}", file=sys.stderr)
        return Exit.FINDINGS
    if problem:
        print(f"proof INVALID: {problem}", file=sys.stderr)
        return Exit.FINDINGS
    print(f"proof valid: entry {document['seq']} is in the signed log of size {document['checkpoint']['size']}")
    return Exit.OK


def _since_us(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError("--since", f"`{text}` is not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1_000_000)


def _logs(args: argparse.Namespace) -> int:
    since = _since_us(args.since)
    exact_key = args.key if args.key and args.key.startswith("{") else None
    _, conn, store = _store(args)
    with conn:
        rows = store.search(namespace=args.table, key=exact_key, since_us=since, limit=args.limit)
    for row in rows:
        if args.key and exact_key is None:
            values = list(json.loads(row.key).values()) if row.key.startswith("{") else []
            if [str(v) for v in values] != [args.key]:
                continue
        entry = decode_entry(row.data)
        when = dt.datetime.fromtimestamp(entry.commit_time_us / 1e6, dt.UTC).isoformat()
        doc = {
            "seq": entry.seq,
            "kind": str(entry.kind),
            "time": when,
            "node": entry.node,
            "namespace": entry.namespace,
            "key": entry.key,
            "op": entry.op,
            "txid": entry.txid,
            "position": entry.resume or entry.order_hex,
            "leaf": row.leaf.hex(),
        }
        if args.json:
            print(json.dumps(doc))
        else:
            print(
                f"{entry.seq:>8} {when} {entry.kind:<8} {entry.node} {entry.namespace} {entry.key} {entry.op} "
                f"txid={entry.txid} at {doc['position']}"
            )
    return Exit.OK


_COMMANDS = {"keygen": _keygen, "verify": _verify, "prove": _prove, "verify-proof": _verify_proof, "logs": _logs}
