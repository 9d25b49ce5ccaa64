"""`worker-sync audit keygen|rotate-key|verify|prove|verify-proof|logs`: the signed, tamper-evident audit trail.

`verify` and `verify-proof` need only the public key; no secret ever reaches stdout or stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from nacl.signing import SigningKey, VerifyKey

from actors.cli._audit_db import audit_node, connect, load
from actors.cli.failures import CliError, Wording, guarded
from actors.core.audit import merkle
from actors.core.audit.checkpoint import (
    Checkpoint,
    KeyRing,
    key_id,
    key_ring,
    load_key_ring_file,
    load_public_key,
    load_signing_key,
    verify_signature,
)
from actors.core.audit.entries import EntryKind, admin_detail, decode_entry, leaf_hash
from actors.core.audit.exports import Exported, read_checkpoint_file, read_exports
from actors.core.audit.note import NoteError
from actors.core.audit.verify import verify_log
from actors.core.errors import ConfigError, DatabaseUnreachable, ObjectMissing
from config.exit_codes import Exit
from config.model import Config

if TYPE_CHECKING:
    from actors.engines.postgresql.audit_store import AuditStore


WORDING: Wording = {
    ObjectMissing: "the audit store does not exist ({first_line}) - create it with `worker-sync init`",
    DatabaseUnreachable: "database error: {message}",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", title="subcommands")
    p = sub.add_parser("keygen", help="write a new Ed25519 signing key (mode 0600); print its public key and id")
    p.add_argument(
        "--out", required=True, help="signing key file to create (64 hex characters); FILE.pub gets the public key"
    )
    p = sub.add_parser(
        "rotate-key", help="hand signing over to a new key, recorded in the log and signed by the old one"
    )
    p.add_argument("--config", required=True, help="the YAML config file (names the current signing key)")
    p.add_argument(
        "--new-key",
        required=True,
        help="the new signing key file: read if it exists, else created (0600) with FILE.pub",
    )
    p.add_argument("--key-ring", help="public key ring file to add the old and new public keys to (created if absent)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = sub.add_parser("verify", help="check the whole log; exit 1 naming the first bad entry")
    p.add_argument("--config", required=True, help="the YAML config file")
    p.add_argument(
        "--public-key",
        action="append",
        default=[],
        help="public key file; repeat for the keys of several rotations (default: the configured signing key's)",
    )
    p.add_argument(
        "--key-ring", action="append", default=[], help="file of public keys, one hex key per line (`#` comments)"
    )
    p.add_argument(
        "--export-dir",
        help="the checkpoint export directory to check against (default: the configured `checkpoint_export_dir`)",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="one more exported checkpoint (a C2SP note, or a JSON file of earlier versions); repeatable",
    )
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
    p.add_argument("--limit", type=int, default=1000, help="at most this many entries (per poll with --follow)")
    p.add_argument("--json", action="store_true", help="one JSON document per line")
    p.add_argument("--follow", action="store_true", help="keep printing entries as they are appended (Ctrl-C stops)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls with --follow (default 1)")
    parser.set_defaults(audit_parser=parser)


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "audit_command", None)
    if command is None:
        args.audit_parser.print_help(sys.stderr)
        return Exit.USAGE
    return guarded(f"audit {command}", lambda: _COMMANDS[command](args), WORDING)


def _keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        raise CliError(f"cannot create `{out}`: it exists (an existing key is never overwritten)", Exit.USAGE)
    public = bytes(_create_key(out).verify_key)
    print(f"public key: {public.hex()}\nkey id: {key_id(public).hex()}\nwritten: {out} (secret, 0600), {out}.pub")
    return Exit.OK


def _rotate_key(args: argparse.Namespace) -> int:
    from actors.audit_chain import AuditWriter

    config = load(args.config)
    node = audit_node(config)
    path = Path(args.new_key)
    created = not path.exists()
    new_key = _create_key(path) if created else load_signing_key(file=str(path))
    new_id = key_id(bytes(new_key.verify_key))
    writer = AuditWriter(config.audit, node, [], exports=False)
    old_public = writer.public_key
    try:
        appended = writer.rotate_key(new_key, request_id=f"rotate-to:{new_id.hex()}", actor=f"cli:{getpass.getuser()}")
    finally:
        writer.close()
    if args.key_ring:
        _add_to_ring(Path(args.key_ring), [old_public, new_key.verify_key])
    result = {
        "old_key_id": key_id(bytes(old_public)).hex(),
        "new_key_id": new_id.hex(),
        "new_key_created": created,
        "rotation_entry": appended.size - 1 if appended.entries else None,
        "already_rotated": appended.skipped > 0,
        "size": appended.size,
    }
    if args.json:
        print(json.dumps(result))
    elif appended.skipped:
        print(f"key {new_id.hex()} was already rotated to; nothing appended (log size {appended.size})")
    else:
        print(
            f"rotated: entry {appended.size - 1} hands signing from key {result['old_key_id']} to key {new_id.hex()}, "
            f"signed over by the old key (checkpoint at size {appended.size}).\n"
            f"next: point `audit.signing_key_file`/`_env` at the new key ({path}) and restart Worker-Sync; "
            "verify with both public keys (`--public-key` twice, or `--key-ring`)."
        )
    return Exit.OK


def _create_key(path: Path) -> SigningKey:
    """A new key in ``path`` (0600, never overwriting) and its public key in ``path``.pub."""
    key = SigningKey.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise CliError(f"cannot create `{path}`: {exc.strerror}", Exit.USAGE) from None
    with os.fdopen(fd, "w") as f:
        f.write(bytes(key).hex() + "\n")
    Path(f"{path}.pub").write_text(bytes(key.verify_key).hex() + "\n")
    return key


def _add_to_ring(ring: Path, keys: list[VerifyKey]) -> None:
    have = {key_id(bytes(k)) for k in load_key_ring_file(str(ring))} if ring.exists() else set()
    lines = [f"{bytes(k).hex()}  # key id {key_id(bytes(k)).hex()}\n" for k in keys if key_id(bytes(k)) not in have]
    with ring.open("a") as f:
        f.writelines(dict.fromkeys(lines))


def _store(args: argparse.Namespace) -> tuple[Config, Any, AuditStore]:
    from actors.engines.postgresql.audit_store import AuditStore

    config = load(args.config)
    conn = connect(audit_node(config))
    return config, conn, AuditStore(conn, config.audit.schema)


def _key_ring(args: argparse.Namespace, config: Config) -> KeyRing:
    """The public keys to verify with: every `--public-key` and `--key-ring` given, else the configured key's."""
    keys = [load_public_key(file) for file in args.public_key]
    for file in args.key_ring:
        keys.extend(load_key_ring_file(file))
    if keys:
        return key_ring(keys)
    audit = config.audit
    if not (audit.signing_key_file or audit.signing_key_env):
        raise ConfigError(args.config, "give `--public-key FILE`, or set `audit.signing_key_file`/`_env`")
    return key_ring([load_signing_key(file=audit.signing_key_file, env=audit.signing_key_env).verify_key])


def _exports(args: argparse.Namespace, config: Config, ring: KeyRing) -> Exported:
    """What lives outside the database: the export directory and every `--checkpoint`, signatures checked."""
    directory = args.export_dir or config.audit.checkpoint_export_dir
    if directory:
        exported = read_exports(directory, list(ring.values()))
    else:
        print(
            "audit verify: no checkpoint export directory configured or given: a store cut short together with "
            "its checkpoints cannot be told from a shorter log",
            file=sys.stderr,
        )
        exported = Exported({}, [])
    for file in args.checkpoint:
        try:
            extra = read_checkpoint_file(Path(file), list(ring.values()))
        except (NoteError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(file, f"not a usable checkpoint: {exc}") from None
        known = exported.checkpoints.setdefault(extra.size, extra)
        if known.root != extra.root:
            return Exported(exported.checkpoints, [], f"{file}: contradicts the exported checkpoint of its size")
    return exported


def _verify(args: argparse.Namespace) -> int:
    config, conn, store = _store(args)
    ring = _key_ring(args, config)
    exported = _exports(args, config, ring)
    with conn, store.snapshot():
        # One snapshot for checkpoints, prune records and entries, so a checkpoint or a prune committed while
        # the log is read is either wholly seen or not at all.
        checkpoints = store.checkpoints()
        pruned = store.prunes()
        report = verify_log(store.read(), checkpoints, ring, exported, pruned=pruned)
    n_pruned = sum(hi - lo for lo, hi in pruned)
    if args.json:
        print(
            msgspec.json.encode(
                {
                    "ok": report.ok,
                    "key_ids": sorted(k.hex() for k in ring),
                    "pruned": n_pruned,
                    "entries": report.entries,
                    "checkpoints": report.checkpoints,
                    "unsigned_tail": report.unsigned_tail,
                    "exported_checkpoints": len(exported.checkpoints),
                    "exported_leaves": len(exported.leaves),
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
            f"audit log intact: {report.entries} entries, {report.checkpoints} signed checkpoints; "
            f"{len(exported.checkpoints)} exported checkpoints and {len(exported.leaves)} exported leaf hashes agree"
            + (f"; {n_pruned} entries pruned by retention (content removed, hashes checked)" if n_pruned else "")
        )
    return Exit.OK


def _prove(args: argparse.Namespace) -> int:
    _, conn, store = _store(args)
    with conn:
        cp = store.latest_checkpoint()
        if cp is None or not 0 <= args.seq < cp.size:
            size = cp.size if cp else 0
            raise CliError(f"entry {args.seq} is not covered by a checkpoint (latest signs {size} entries)")
        leaves = store.leaves(cp.size)
        (entry,) = list(store.read(args.seq, args.seq + 1))
    if not entry.data:
        raise CliError(f"entry {args.seq} was pruned by retention: its content is gone, only its hash remains")
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
    if args.limit < 1 or args.interval <= 0:
        raise ConfigError("audit logs", "`--limit` must be at least 1 and `--interval` positive")
    _, conn, store = _store(args)
    with conn:
        rows = store.search(namespace=args.table, key=exact_key, since_us=since, limit=args.limit)
        _print_rows(args, rows)
        if args.follow:
            _follow(args, store, rows[-1].seq if rows else None, exact_key, since)
    return Exit.OK


def _follow(args: argparse.Namespace, store: AuditStore, last: int | None, exact_key: str | None, since: int | None):
    """Poll by seq for entries after the last one printed until Ctrl-C or SIGTERM (both end with exit 0)."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            rows = store.search(namespace=args.table, key=exact_key, since_us=since, limit=args.limit, after_seq=last)
            _print_rows(args, rows)
            if rows:
                last = rows[-1].seq
            if len(rows) < args.limit:
                stop.wait(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_rows(args: argparse.Namespace, rows: list) -> None:
    for row in rows:
        if args.key and not args.key.startswith("{"):
            # A pruned entry has lost its key: it cannot match a key filter.
            values = list(json.loads(row.key).values()) if row.key.startswith("{") else []
            if [str(v) for v in values] != [args.key]:
                continue
        print(_format_row(row, as_json=args.json), flush=True)


def _format_row(row, *, as_json: bool) -> str:
    when = dt.datetime.fromtimestamp(row.commit_time_us / 1e6, dt.UTC).isoformat()
    if not row.data:  # pruned by retention: position, time, table and hashes remain
        doc = {"seq": row.seq, "kind": row.kind, "time": when, "namespace": row.namespace, "pruned": True}
        doc["leaf"] = row.leaf.hex()
        if as_json:
            return json.dumps(doc)
        return f"{row.seq:>8} {when} {row.kind:<8} {row.namespace} [pruned by retention: content removed]"
    entry = decode_entry(row.data)
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
        "pruned": False,
    }
    if entry.kind == EntryKind.ADMIN:
        doc["detail"] = admin_detail(entry)
    if as_json:
        return json.dumps(doc, default=lambda v: v.hex() if isinstance(v, bytes) else str(v))
    line = (
        f"{entry.seq:>8} {when} {entry.kind:<8} {entry.node} {entry.namespace} {entry.key} {entry.op} "
        f"txid={entry.txid} at {doc['position']}"
    )
    if "detail" in doc:
        line += " " + json.dumps(doc["detail"], sort_keys=True, default=str)
    return line


_COMMANDS = {
    "keygen": _keygen,
    "rotate-key": _rotate_key,
    "verify": _verify,
    "prove": _prove,
    "verify-proof": _verify_proof,
    "logs": _logs,
}
