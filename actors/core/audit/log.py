"""AuditLog: numbers and chains entries, keeps the Merkle frontier, and signs checkpoints on schedule.

Pure and synchronous: the caller (the audit actor) stores what :meth:`AuditLog.add` returns, entries
first and then checkpoints, in that order, so a stored checkpoint never covers an unstored entry.
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
        every_ms: int = 1_000,
        frontier: Frontier | None = None,
        last_leaf: bytes = GENESIS,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self._key = signing_key
        self._every_entries = every_entries
        self._every_us = every_ms * 1000
        self._frontier = frontier or Frontier()
        self._last_leaf = last_leaf
        self._clock_us = clock_us
        self._last_cp_size = self._frontier.size
        self._last_cp_time_us = clock_us()
        #: The frontier at each checkpoint signed since the last :meth:`take_frontiers`, stored beside it
        #: so a restart reads O(log n) hashes plus the leaves after the checkpoint, not every leaf.
        self._frontiers: list[Frontier] = []

    @property
    def size(self) -> int:
        return self._frontier.size

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

    def seal(self, drafts: Iterable[AuditEntry]) -> tuple[list[StoredEntry], list[Checkpoint]]:
        """Like :meth:`add`, but the last checkpoint returned always covers the new head (admin actions that
        must be signed at once, e.g. a key rotation signed over by the old key)."""
        stored, checkpoints = self.add(drafts)
        if not checkpoints or checkpoints[-1].size != self.size:
            checkpoints.append(self.checkpoint())
        return stored, checkpoints

    def use_key(self, signing_key: SigningKey) -> None:
        """Sign every later checkpoint with ``signing_key`` (after a rotation entry was sealed)."""
        self._key = signing_key

    def add(self, drafts: Iterable[AuditEntry]) -> tuple[list[StoredEntry], list[Checkpoint]]:
        """Number and chain ``drafts`` (their seq/prev are overwritten); return rows and due checkpoints."""
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
        if self._clock_us() - self._last_cp_time_us >= self._every_us and frontier.size > self._last_cp_size:
            checkpoints.append(self.checkpoint())
        return stored, checkpoints

    def tick(self) -> Checkpoint | None:
        """A checkpoint if entries are waiting and T ms have passed (call it from a timer)."""
        if self._clock_us() - self._last_cp_time_us >= self._every_us and self.size > self._last_cp_size:
            return self.checkpoint()
        return None

    def flush(self) -> Checkpoint | None:
        """A checkpoint of the current head if some entries are not covered yet (e.g. on shutdown)."""
        return self.checkpoint() if self.size > self._last_cp_size else None

    def checkpoint(self) -> Checkpoint:
        """Sign the current head now."""
        now = self._clock_us()
        self._last_cp_size, self._last_cp_time_us = self.size, now
        self._frontiers.append(self._frontier.copy())
        return sign(self._key, self.size, self._frontier.root(), now)
