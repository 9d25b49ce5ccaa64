"""What the audit writer keeps outside the database (``audit.checkpoint_export_dir``), and reading it back.

- ``leaves.bin``: every entry's leaf hash, 32 bytes each, in seq order, appended after each stored batch.
  A verifier that finds a signed root no longer matching the entries compares leaf by leaf and names the
  first changed entry, even when an attacker recomputed the stored leaf hashes and the chain.
- ``checkpoint-<size>.note`` (every ``checkpoint_every_entries`` entries or ``checkpoint_every_ms``) and
  ``latest.note``: signed checkpoints in the C2SP ``tlog-checkpoint`` note format (actors.core.audit.note).
  A store shorter than, or different from, any of them fails `audit verify`, naming the size.

The files are the evidence a database superuser cannot reach; keep the directory on other storage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec
from nacl.signing import VerifyKey

from actors.core.audit.checkpoint import Checkpoint, key_ring, verify_signature
from actors.core.audit.merkle import Frontier
from actors.core.audit.note import NoteCheckpoint, NoteError, open_note

LEAVES = "leaves.bin"
LATEST = "latest.note"
LEAF_BYTES = 32


class ExportDir:
    """The writer's side: append leaf hashes, publish signed checkpoint notes."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._leaves = self.directory / LEAVES

    def leaf_count(self) -> int:
        """Leaves exported so far; a torn last record (a crash mid-write) is cut off first."""
        try:
            length = self._leaves.stat().st_size
        except FileNotFoundError:
            return 0
        if length % LEAF_BYTES:
            with open(self._leaves, "r+b") as handle:
                handle.truncate(length - length % LEAF_BYTES)
        return length // LEAF_BYTES

    def append_leaves(self, leaves: list[bytes]) -> None:
        if leaves:
            with open(self._leaves, "ab") as handle:
                handle.write(b"".join(leaves))

    def publish(self, note: str, size: int) -> None:
        """``checkpoint-<size>.note`` and ``latest.note`` (replaced atomically), after the leaves reach disk."""
        if self._leaves.exists():
            with open(self._leaves, "rb") as handle:
                os.fsync(handle.fileno())
        data = note.encode()
        _write_durably(self.directory / f"checkpoint-{size:012d}.note", data)
        staging = self.directory / f".{LATEST}.tmp"
        _write_durably(staging, data)
        os.replace(staging, self.directory / LATEST)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class Exported:
    """What a verifier found in an export directory, signatures checked."""

    #: Exported checkpoints (notes and legacy JSON files), by size.
    checkpoints: dict[int, NoteCheckpoint]
    #: The exported leaf hashes that the exported checkpoints vouch for (a prefix of leaves.bin).
    leaves: list[bytes]
    #: What is wrong with the directory itself (a note that does not verify, leaves that contradict a note).
    problem: str | None = None


def read_exports(directory: str | os.PathLike[str], keys: list[VerifyKey]) -> Exported:
    """Every signed checkpoint in ``directory`` (notes, and JSON files of earlier versions) and the leaf hashes
    they authenticate."""
    folder = Path(directory)
    if not folder.is_dir():
        return Exported({}, [], f"checkpoint export directory {folder} does not exist")
    checkpoints: dict[int, NoteCheckpoint] = {}
    for path in sorted(folder.glob("*.note")) + sorted(folder.glob("*.json")):
        try:
            cp = read_checkpoint_file(path, keys)
        except (NoteError, OSError, UnicodeDecodeError) as exc:
            return Exported(checkpoints, [], f"{path.name}: {exc}")
        known = checkpoints.setdefault(cp.size, cp)
        if known.root != cp.root:
            return Exported(checkpoints, [], f"{path.name}: two exported checkpoints of size {cp.size} differ")
    raw = (folder / LEAVES).read_bytes() if (folder / LEAVES).exists() else b""
    leaves = [raw[i : i + LEAF_BYTES] for i in range(0, len(raw) - len(raw) % LEAF_BYTES, LEAF_BYTES)]
    frontier, vouched = Frontier(), 0
    for index, leaf in enumerate(leaves, 1):
        frontier.append(leaf)
        stated = checkpoints.get(index)
        if stated is not None:
            if frontier.root() != stated.root:
                problem = f"{LEAVES} contradicts the exported checkpoint of size {index} (the export was altered)"
                return Exported(checkpoints, leaves[:vouched], problem)
            vouched = index
    return Exported(checkpoints, leaves[:vouched])


def read_checkpoint_file(path: Path, keys: list[VerifyKey]) -> NoteCheckpoint:
    """One exported checkpoint (a note, or a JSON file of earlier versions), its signature checked."""
    text = path.read_text()
    if path.suffix == ".note":
        return open_note(text, keys)
    try:
        cp = Checkpoint.from_json(text)
    except (ValueError, KeyError, msgspec.DecodeError) as exc:
        raise NoteError(f"not a checkpoint file: {exc}") from None
    bad = verify_signature(cp, key_ring(keys))
    if bad:
        raise NoteError(f"checkpoint of size {cp.size}: {bad}")
    return NoteCheckpoint("", cp.size, cp.root)
