"""Offline verification of a stored log with only the public key.

Walks the entries in seq order, recomputing each leaf hash, the previous-entry chain and the Merkle
frontier, and compares the root at every stored checkpoint (whose signature it checks) and at an
optional external checkpoint. Stops at the first problem and names the entry.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from nacl.signing import VerifyKey

from actors.core.audit.checkpoint import Checkpoint, verify_signature
from actors.core.audit.entries import GENESIS, decode_entry, leaf_hash
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


def _check_checkpoint(cp: Checkpoint, frontier: Frontier, key: VerifyKey, what: str, since: int) -> Finding | None:
    bad = verify_signature(cp, key)
    if bad:
        return Finding(cp.size - 1, f"{what} at size {cp.size}: {bad}")
    if cp.root != frontier.root():
        return Finding(
            since,
            f"{what} at size {cp.size}: Merkle root does not match the entries "
            f"(an entry in seq {since}..{cp.size - 1} was altered, inserted or removed)",
        )
    return None


def verify_log(
    rows: Iterable[StoredEntry],
    checkpoints: Iterable[Checkpoint],
    public_key: VerifyKey,
    external: Checkpoint | None = None,
) -> Report:
    """Verify entries (in seq order) against stored checkpoints and an optional external one."""
    by_size: dict[int, Checkpoint] = {}
    for cp in checkpoints:
        by_size.setdefault(cp.size, cp)
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
        leaf = leaf_hash(row.data)
        if leaf != row.leaf:
            return report(Finding(row.seq, f"entry {row.seq} was changed: its bytes no longer match its leaf hash"))
        try:
            entry = decode_entry(row.data)
        except msgspec.DecodeError as exc:
            return report(Finding(row.seq, f"entry {row.seq} cannot be decoded: {exc}"))
        if entry.seq > row.seq:
            return report(Finding(row.seq, f"entry stored at seq {row.seq} is entry {entry.seq} (moved or swapped)"))
        if entry.seq < row.seq:
            return report(
                Finding(
                    entry.seq,
                    f"entry {entry.seq} was inserted or moved: the original entry {entry.seq} is now stored at "
                    f"seq {row.seq}",
                )
            )
        if entry.prev != prev and entry.prev == row.prev and row.seq > 0:
            # The entry still chains to an earlier version of its predecessor: the predecessor was rewritten.
            return report(
                Finding(row.seq - 1, f"entry {row.seq - 1} was replaced: entry {row.seq} chains to a different version")
            )
        if entry.prev != prev or row.prev != prev:
            return report(Finding(row.seq, f"entry {row.seq} does not chain to entry {row.seq - 1}"))
        columns = (entry.kind, entry.namespace, entry.key, entry.commit_time_us)
        if columns != (row.kind, row.namespace, row.key, row.commit_time_us):
            return report(Finding(row.seq, f"entry {row.seq}: an indexed column differs from the signed entry"))
        frontier.append(leaf)
        prev = leaf
        cp = by_size.get(frontier.size)
        if cp is not None:
            finding = _check_checkpoint(cp, frontier, public_key, "checkpoint", last_cp)
            if finding:
                return report(finding)
            last_cp, n_cp = frontier.size, n_cp + 1
        if external is not None and external.size == frontier.size:
            finding = _check_checkpoint(external, frontier, public_key, "external checkpoint", 0)
            if finding:
                return report(finding)
    beyond = [size for size in by_size if size > frontier.size]
    if beyond:
        size = min(beyond)
        bad = verify_signature(by_size[size], public_key)
        if bad:
            return report(Finding(frontier.size, f"checkpoint at size {size}: {bad}"))
        return report(
            Finding(
                frontier.size,
                f"log truncated: the stored checkpoint at size {size} covers entries "
                f"{frontier.size}..{size - 1}, which are missing",
            )
        )
    if external is not None and external.size > frontier.size:
        return report(
            Finding(
                frontier.size,
                f"log truncated: it has {frontier.size} entries but the external checkpoint signs "
                f"{external.size}; entries {frontier.size}..{external.size - 1} are missing",
            )
        )
    return report(None)
