"""Offline verification of a stored log with only the public key.

Walks the entries in seq order, recomputing each leaf hash, the previous-entry chain and the Merkle
frontier, and compares the root at every stored checkpoint (whose signature it checks with the key its
id names, following key-rotation entries) and at every exported one (actors.core.audit.exports: what lives
outside the database). Each recomputed leaf is compared with the leaf hash exported when the entry was
stored, so an entry changed with its leaf and the chain recomputed is still named. Entries no stored
checkpoint covers are foreign: Worker-Sync stores a checkpoint with every batch. Entries pruned by
retention keep their leaf hash and chain link, so roots are still checked over them. Stops at the first
problem and names the entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
from nacl.signing import VerifyKey

from actors.core.audit.checkpoint import Checkpoint, KeyRing, key_ring, verify_signature
from actors.core.audit.entries import (
    GENESIS,
    AdminKind,
    AuditEntry,
    EntryKind,
    admin_detail,
    decode_entry,
    leaf_hash,
)
from actors.core.audit.exports import Exported
from actors.core.audit.log import StoredEntry
from actors.core.audit.merkle import Frontier


class Finding(msgspec.Struct, frozen=True):
    """The first problem: the entry seq (or checkpoint size) it concerns, and what is wrong."""

    seq: int
    problem: str


class Report(msgspec.Struct, frozen=True):
    entries: int
    checkpoints: int
    #: Entries after the last valid checkpoint: chained, but not yet covered by a signature.
    unsigned_tail: int
    finding: Finding | None = None

    @property
    def ok(self) -> bool:
        return self.finding is None


class _Keys:
    """Which key may sign the next checkpoint: the first checkpoint's key, until a rotation entry names the next.

    A rotation entry is sealed by a checkpoint of the OLD key (at size seq + 1); later checkpoints must carry
    the new key's id. A key that changes without a rotation entry is a finding, even if it is in the ring.
    """

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.in_force: bytes | None = None
        #: seq of a rotation entry not yet sealed, and the key it hands over to.
        self.pending: tuple[int, bytes] | None = None

    def check(self, cp: Checkpoint, frontier: Frontier, what: str, since: int) -> Finding | None:
        bad = verify_signature(cp, self.ring)
        if bad:
            return Finding(cp.size - 1, f"{what} at size {cp.size}: {bad}")
        if cp.root != frontier.root():
            return Finding(
                since,
                f"{what} at size {cp.size}: Merkle root does not match the entries "
                f"(an entry in seq {since}..{cp.size - 1} was altered, inserted or removed)",
            )
        if self.in_force is not None and cp.key_id != self.in_force and what == "checkpoint":
            return Finding(
                cp.size - 1,
                f"{what} at size {cp.size}: signed by key {cp.key_id.hex()}, but key {self.in_force.hex()} is in "
                "force there (a key changes only through a key-rotation entry)",
            )
        if self.in_force is None:
            self.in_force = cp.key_id
        return None

    def rotation(self, seq: int, entry: AuditEntry) -> Finding | None:
        detail = admin_detail(entry)
        old, new = detail.get("old_key_id"), detail.get("new_key_id")
        if not (isinstance(old, str) and isinstance(new, str)):
            return Finding(seq, f"entry {seq}: a key-rotation entry without `old_key_id`/`new_key_id`")
        if self.in_force is not None and old != self.in_force.hex():
            return Finding(seq, f"entry {seq}: rotates away from key {old}, but key {self.in_force.hex()} is in force")
        self.pending = (seq, bytes.fromhex(new))
        return None

    def sealed(self, size: int, cp: Checkpoint | None) -> Finding | None:
        """After the checkpoint (if any) at ``size``: hand over to the new key once its rotation is sealed."""
        if self.pending is None or self.pending[0] != size - 1:
            return None
        seq, new = self.pending
        self.pending = None
        if cp is None:
            return Finding(seq, f"entry {seq}: key rotation not signed over by a checkpoint of the old key")
        self.in_force = new
        return None


def _is_pruned(row: StoredEntry) -> bool:
    return not row.data


def verify_log(
    rows: Iterable[StoredEntry],
    checkpoints: Iterable[Checkpoint],
    public_key: VerifyKey | KeyRing,
    exported: Exported | None = None,
    *,
    pruned: Sequence[tuple[int, int]] = (),
) -> Report:
    """Verify entries (in seq order) against stored checkpoints and what was exported outside the database
    (signatures already checked by read_exports).

    ``public_key`` is one key or a ring (key id -> key): each checkpoint is checked with the key its id names.
    ``pruned`` are the recorded retention ranges [from, to): an entry there may have lost its content (its
    leaf hash and chain link stay, so every root is still checked); a content-less entry outside them is
    a finding.
    """
    keys = _Keys(public_key if isinstance(public_key, dict) else key_ring([public_key]))
    outside = exported or Exported({}, [])
    if outside.problem:
        return Report(0, 0, 0, Finding(0, f"export directory: {outside.problem}"))
    exported_leaves = outside.leaves
    by_size: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        by_size.setdefault(checkpoint.size, checkpoint)
    max_cp = max(by_size, default=0)
    frontier = Frontier()
    prev, last_cp, n_cp = GENESIS, 0, 0

    def report(finding: Finding | None) -> Report:
        return Report(frontier.size, n_cp, frontier.size - last_cp, finding)

    for row in rows:
        expected = frontier.size
        if row.seq != expected:
            if row.seq > expected:
                return report(Finding(expected, f"entry {expected} is missing (next stored entry is {row.seq})"))
            return report(Finding(row.seq, f"entry {row.seq} appears twice or out of order"))
        if _is_pruned(row):
            if not any(lo <= row.seq < hi for lo, hi in pruned):
                problem = f"entry {row.seq} has lost its content, but no recorded prune covers it"
                return report(Finding(row.seq, problem))
            if row.prev != prev:
                return report(Finding(row.seq, f"entry {row.seq} (pruned) does not chain to entry {row.seq - 1}"))
            leaf = bytes(row.leaf)
        else:
            leaf = leaf_hash(row.data)
            entry = _check_entry(row, leaf, prev)
            if isinstance(entry, Finding):
                return report(entry)
            if entry.kind == EntryKind.ADMIN and entry.op == AdminKind.KEY_ROTATION:
                finding = keys.rotation(row.seq, entry)
                if finding:
                    return report(finding)
        if row.seq < len(exported_leaves) and leaf != exported_leaves[row.seq]:
            problem = f"entry {row.seq} was changed: its leaf hash differs from the one exported when it was stored"
            return report(Finding(row.seq, problem))
        frontier.append(leaf)
        prev = leaf
        cp = by_size.get(frontier.size)
        if cp is not None:
            finding = keys.check(cp, frontier, "checkpoint", last_cp)
            if finding:
                return report(finding)
            last_cp, n_cp = frontier.size, n_cp + 1
        if frontier.size <= max_cp:  # a rotation past the last stored checkpoint may be sealed by the next one
            finding = keys.sealed(frontier.size, cp)
            if finding:
                return report(finding)
        stated = outside.checkpoints.get(frontier.size)
        if stated is not None and stated.root != frontier.root():
            problem = f"exported checkpoint at size {stated.size}: the stored entries no longer give its root"
            return report(Finding(last_cp, problem))
    beyond = [size for size in by_size if size > frontier.size]
    if beyond:
        size = min(beyond)
        bad = verify_signature(by_size[size], keys.ring)
        if bad:
            return report(Finding(frontier.size, f"checkpoint at size {size}: {bad}"))
        return report(
            Finding(
                frontier.size,
                f"log truncated: the stored checkpoint at size {size} covers entries "
                f"{frontier.size}..{size - 1}, which are missing",
            )
        )
    longest = max(outside.checkpoints, default=0)
    if longest > frontier.size:
        return report(
            Finding(
                frontier.size,
                f"log truncated: it has {frontier.size} entries but the exported checkpoint signs "
                f"{longest}; entries {frontier.size}..{longest - 1} are missing",
            )
        )
    if frontier.size > last_cp:
        return report(
            Finding(
                last_cp,
                f"entries {last_cp}..{frontier.size - 1} are covered by no signed checkpoint: foreign (written "
                "outside Worker-Sync, which stores a checkpoint with every batch)",
            )
        )
    return report(None)


def _check_entry(row: StoredEntry, leaf: bytes, prev: bytes) -> AuditEntry | Finding:
    """An entry with content: its bytes, its own seq, its chain link and its indexed columns; the decoded
    entry if all hold."""
    if leaf != row.leaf:
        return Finding(row.seq, f"entry {row.seq} was changed: its bytes no longer match its leaf hash")
    try:
        entry = decode_entry(row.data)
    except msgspec.DecodeError as exc:
        return Finding(row.seq, f"entry {row.seq} cannot be decoded: {exc}")
    if entry.seq > row.seq:
        return Finding(row.seq, f"entry stored at seq {row.seq} is entry {entry.seq} (moved or swapped)")
    if entry.seq < row.seq:
        return Finding(
            entry.seq,
            f"entry {entry.seq} was inserted or moved: the original entry {entry.seq} is now stored at seq {row.seq}",
        )
    if entry.prev != prev and entry.prev == row.prev and row.seq > 0:
        # The entry still chains to an earlier version of its predecessor: the predecessor was rewritten.
        return Finding(row.seq - 1, f"entry {row.seq - 1} was replaced: entry {row.seq} chains to a different version")
    if entry.prev != prev or row.prev != prev:
        return Finding(row.seq, f"entry {row.seq} does not chain to entry {row.seq - 1}")
    columns = (entry.kind, entry.namespace, entry.key, entry.commit_time_us)
    if columns != (row.kind, row.namespace, row.key, row.commit_time_us):
        return Finding(row.seq, f"entry {row.seq}: an indexed column differs from the signed entry")
    return entry
