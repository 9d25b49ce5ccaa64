"""Audit test helpers: change events, a signed log, and a populated store in a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from nacl.signing import SigningKey

from actors.core.audit.checkpoint import Checkpoint
from actors.core.audit.entries import change_entry
from actors.core.audit.exports import ExportDir
from actors.core.audit.log import AuditLog, StoredEntry
from actors.core.audit.note import NoteCheckpoint, sign_note
from actors.core.events import ChangeEvent, Op, Position
from actors.engines.postgresql.audit_store import AuditStore, create_schema
from actors.harness import Endpoint

SCHEMA = "worker_sync_audit"
SEED = bytes(range(32))
ORIGIN = "worker-sync.test/audit"


def event(i: int, *, namespace: str = "public.orders", email: str = "a@example.com") -> ChangeEvent:
    return ChangeEvent(
        node="pg1",
        engine="postgresql",
        namespace=namespace,
        op=Op.INSERT if i % 3 else Op.UPDATE,
        key={"id": i},
        before=None,
        after={"id": i, "email": email, "total": i * 10},
        commit_time_us=1_700_000_000_000_000 + i * 1_000_000,
        txid=str(1000 + i // 5),
        position=Position(order=i.to_bytes(8, "big"), resume=f"0/{i:X}"),
    )


def build_log(n: int, *, every_entries: int = 10) -> tuple[list[StoredEntry], list[Checkpoint]]:
    clock = iter(range(1, 10**9))
    log = AuditLog(SigningKey(SEED), every_entries=every_entries, clock_us=lambda: next(clock))
    return log.add(change_entry(event(i)) for i in range(n))


@dataclass
class Populated:
    db: Endpoint
    admin: psycopg.Connection
    service: psycopg.Connection
    store: AuditStore
    entries: list[StoredEntry]
    checkpoints: list[Checkpoint]
    #: The last checkpoint as a JSON file (the export format of earlier versions).
    exported: Path
    #: The export directory the audit writer keeps: every leaf hash and a signed note per checkpoint.
    export_dir: Path


def export_all(directory: Path, entries: list[StoredEntry], checkpoints: list[Checkpoint]) -> None:
    """What the audit writer exports for this log: its leaf hashes and a C2SP note of each checkpoint."""
    exports = ExportDir(directory)
    exports.append_leaves([entry.leaf for entry in entries])
    for cp in checkpoints:
        exports.publish(sign_note(NoteCheckpoint(ORIGIN, cp.size, cp.root), SigningKey(SEED)), cp.size)


@pytest.fixture
def populated(fresh_pg_db: Endpoint, tmp_path: Path) -> Iterator[Populated]:
    """50 entries, checkpoints every 10, stored by the service role; exported as the writer exports them."""
    admin = fresh_pg_db.connect("admin")
    create_schema(admin, SCHEMA, fresh_pg_db.apply.user)
    service = fresh_pg_db.connect("apply")
    store = AuditStore(service, SCHEMA)
    entries, checkpoints = build_log(50)
    store.append(entries[:25], [cp for cp in checkpoints if cp.size <= 25])
    store.append(entries[25:], [cp for cp in checkpoints if cp.size > 25])
    exported = tmp_path / "checkpoint.json"
    exported.write_bytes(checkpoints[-1].to_json())
    export_all(tmp_path / "export", entries, checkpoints)
    yield Populated(fresh_pg_db, admin, service, store, entries, checkpoints, exported, tmp_path / "export")
    service.close()
    admin.close()
