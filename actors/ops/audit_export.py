"""The audit store as two JSON-lines files in a backup: `audit/checkpoints.jsonl` and
`audit/entries.jsonl` (one StoredEntry per line, bytes in base64), readable by `restore` and checkable
offline by the same verifier as `audit verify`.

Checkpoints are read before entries, as `audit verify` does: entries are committed before the
checkpoints that cover them, so every exported checkpoint covers only exported entries even while
the pipeline keeps appending.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from actors.core.audit.checkpoint import Checkpoint
from actors.core.audit.log import StoredEntry
from actors.ops.archive import ArchiveError, AuditSummary

if TYPE_CHECKING:
    from actors.engines.postgresql.audit_store import AuditStore

ENTRIES = "audit/entries.jsonl"
CHECKPOINTS = "audit/checkpoints.jsonl"
#: Retention ranges [from, to) whose entries lost their content (`worker-sync cleanup`).
PRUNES = "audit/prunes.json"
LOAD_BATCH = 5_000


class _CheckpointLine(msgspec.Struct, frozen=True, array_like=True):
    size: int
    root: bytes
    time_us: int
    key_id: bytes
    signature: bytes


def export_audit(store: AuditStore, schema: str, staging: Path) -> AuditSummary:
    """Write the store's checkpoints, then its entries, under ``staging``."""
    (staging / "audit").mkdir(parents=True, exist_ok=True)
    checkpoints = store.checkpoints()
    prunes = store.prunes() if hasattr(store, "prunes") else []
    (staging / PRUNES).write_bytes(msgspec.json.encode(prunes))
    encoder = msgspec.json.Encoder()
    with open(staging / CHECKPOINTS, "wb") as out:
        for cp in checkpoints:
            line = _CheckpointLine(cp.size, cp.root, cp.time_us, cp.key_id, cp.signature)
            out.write(encoder.encode(line) + b"\n")
    count = 0
    with open(staging / ENTRIES, "wb") as out:
        for entry in store.read():
            out.write(encoder.encode(entry) + b"\n")
            count += 1
    last = max((cp.size for cp in checkpoints), default=0)
    return AuditSummary(schema=schema, entries=count, checkpoints=len(checkpoints), last_checkpoint_size=last)


def read_checkpoints(root: Path) -> list[Checkpoint]:
    decoder = msgspec.json.Decoder(_CheckpointLine)
    result = []
    for number, line in enumerate((root / CHECKPOINTS).read_bytes().splitlines(), 1):
        try:
            cp = decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise ArchiveError(f"`{CHECKPOINTS}` line {number}: {exc}") from None
        result.append(
            Checkpoint(size=cp.size, root=cp.root, time_us=cp.time_us, key_id=cp.key_id, signature=cp.signature)
        )
    return result


def read_prunes(root: Path) -> list[tuple[int, int]]:
    path = root / PRUNES
    if not path.exists():
        return []
    try:
        return msgspec.json.decode(path.read_bytes(), type=list[tuple[int, int]])
    except msgspec.DecodeError as exc:
        raise ArchiveError(f"`{PRUNES}`: {exc}") from None


def read_entries(root: Path) -> Iterator[StoredEntry]:
    """Entries in file order, streamed (the file can be large)."""
    decoder = msgspec.json.Decoder(StoredEntry)
    with open(root / ENTRIES, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                yield decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise ArchiveError(f"`{ENTRIES}` line {number}: {exc}") from None


def load_audit(store: AuditStore, root: Path) -> tuple[int, int]:
    """Append the archive's entries and checkpoints to an empty store in ONE transaction, so a failed
    restore leaves the store empty. Returns (entries, checkpoints) loaded."""
    checkpoints = read_checkpoints(root)
    count = 0
    with store.transaction():  # AuditStore.append nests as savepoints
        batch: list[StoredEntry] = []
        for entry in read_entries(root):
            batch.append(entry)
            if len(batch) >= LOAD_BATCH:
                store.append(batch)
                count += len(batch)
                batch = []
        store.append(batch, checkpoints)
        count += len(batch)
    return count, len(checkpoints)
