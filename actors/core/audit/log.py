"""AuditLog: numbers and chains entries, keeps the Merkle frontier, and signs a checkpoint of every batch.

Pure and synchronous. Every :meth:`AuditLog.add` returns, with the entries, a signed checkpoint of the new
head (one Ed25519 signature per batch), which the caller stores in the same transaction: the stored log
never ends in entries no signature covers, so entries found beyond the last checkpoint were written by
someone else (foreign), and no later process signs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import msgspec
from nacl.signing import SigningKey

from actors.core.audit.checkpoint import Checkpoint, key_id, sign
from actors.core.audit.entries import GENESIS, AuditEntry, encode_entry, leaf_hash
from actors.core.audit.merkle import Frontier


class StoredEntry(msgspec.Struct, frozen=True, array_like=True):
    """What the store writes per entry: the bytes, their leaf hash, and columns for `audit logs` filters."""

    seq: int
    data: bytes
    leaf: bytes
    prev: bytes
    kind: str
    namespace: str
    key: str
    commit_time_us: int


class AuditLog:
    """Appends entries to an in-memory view of the log (frontier only) and decides when to checkpoint."""

    def __init__(
        self,
        signing_key: SigningKey,
        *,
        every_entries: int = 10_000,
        frontier: Frontier | None = None,
        last_leaf: bytes = GENESIS,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self._key = signing_key
        self._every_entries = every_entries
        self._frontier = frontier or Frontier()
        self._last_leaf = last_leaf
        self._clock_us = clock_us
        self._last_cp_size = self._frontier.size
        #: The frontier at each checkpoint signed since the last :meth:`take_frontiers`, stored beside it
        #: so a restart reads O(log n) hashes plus the leaves after the checkpoint, not every leaf.
        self._frontiers: list[Frontier] = []

    @property
    def size(self) -> int:
        return self._frontier.size

    def root(self) -> bytes:
        """The Merkle root of the log as it stands."""
        return self._frontier.root()

    @property
    def key_id(self) -> bytes:
        return key_id(bytes(self._key.verify_key))

    @property
    def last_leaf(self) -> bytes:
        return self._last_leaf

    def take_frontiers(self) -> list[Frontier]:
        """The frontiers of the checkpoints signed since the last call (store them with those checkpoints)."""
        frontiers, self._frontiers = self._frontiers, []
        return frontiers

    def use_key(self, signing_key: SigningKey) -> None:
        """Sign every later checkpoint with ``signing_key`` (after a rotation entry was sealed)."""
        self._key = signing_key

    def add(self, drafts: Iterable[AuditEntry]) -> tuple[list[StoredEntry], list[Checkpoint]]:
        """Number and chain ``drafts`` (their seq/prev are overwritten); return the rows and the checkpoints
        that cover them: one every ``every_entries`` entries of a large batch, and always one of the new head
        (none when there are no drafts)."""
        stored: list[StoredEntry] = []
        checkpoints: list[Checkpoint] = []
        frontier, replace = self._frontier, msgspec.structs.replace
        for draft in drafts:
            entry = replace(draft, seq=frontier.size, prev=self._last_leaf)
            data = encode_entry(entry)
            leaf = leaf_hash(data)
            stored.append(
                StoredEntry(
                    entry.seq, data, leaf, entry.prev, entry.kind, entry.namespace, entry.key, entry.commit_time_us
                )
            )
            frontier.append(leaf)
            self._last_leaf = leaf
            if frontier.size - self._last_cp_size >= self._every_entries:
                checkpoints.append(self.checkpoint())
        if frontier.size > self._last_cp_size:
            checkpoints.append(self.checkpoint())
        return stored, checkpoints

    def checkpoint(self) -> Checkpoint:
        """Sign the current head now."""
        now = self._clock_us()
        self._last_cp_size = self.size
        self._frontiers.append(self._frontier.copy())
        return sign(self._key, self.size, self._frontier.root(), now)
