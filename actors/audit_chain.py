"""The audit-chain actor: the one writer of the signed, append-only audit log.

A singleton (there is one Merkle log, so one writer numbers and chains its entries). Thin Ray shell
around :class:`AuditWriter`, which is plain Python over the pure core (actors.core.audit) and the
PostgreSQL store. The supervisor feeds it like an applier shard: one call at a time, re-sent as it
was when it failed. A re-sent call must not store a change twice (the first attempt may have
committed before its reply was lost), so the writer keeps, per source stream, the highest position
already stored - recovered from the store when it starts - and skips every change at or below it.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

import msgspec
import ray
from nacl.signing import SigningKey, VerifyKey

from actors.core.audit.checkpoint import key_id, load_key_bytes, load_signing_key, verify_signature
from actors.core.audit.entries import (
    AdminKind,
    AuditEntry,
    EntryKind,
    admin_detail,
    admin_entry,
    change_entry,
    decode_entry,
    other_entry,
)
from actors.core.audit.exports import ExportDir
from actors.core.audit.fieldcrypt import FieldCipher
from actors.core.audit.log import AuditLog, StoredEntry
from actors.core.audit.note import NoteCheckpoint, sign_note
from actors.core.encoding import decode_batch
from actors.core.errors import AuditMismatch, ConfigError, ForeignEntries
from config.model import Audit, PostgresNode

if TYPE_CHECKING:
    from actors.engines.postgresql.audit_store import AuditStore

log = logging.getLogger(__name__)


def _now_us() -> int:
    return time.time_ns() // 1000


class Appended(msgspec.Struct, frozen=True, kw_only=True):
    #: Entries stored by this call, and changes skipped because an earlier attempt stored them.
    entries: int
    skipped: int
    checkpoints: int
    #: Size of the log after this call.
    size: int
    pid: int


def log_origin(audit: Audit, node: PostgresNode) -> str:
    """The log's name in its exported checkpoint notes (C2SP origin): unique per audit store."""
    return audit.origin or f"worker-sync/{node.host}:{node.port}/{node.database}/{audit.schema}"


class AuditWriter:
    """Turns encoded batches into stored entries and checkpoints; state is rebuilt from the store
    whenever an append fails, so the in-memory frontier never runs ahead of what was committed."""

    def __init__(self, audit: Audit, node: PostgresNode, streams: list[str], *, exports: bool = True) -> None:
        """``exports``: keep the export directory (the audit actor); a command run elsewhere (`cleanup`,
        `rotate-key`) leaves it to the actor, which catches up from the store when it next starts."""
        self._audit = audit
        self._node = node
        self._streams = set(streams)
        self._key = load_signing_key(file=audit.signing_key_file, env=audit.signing_key_env)
        self._cipher: FieldCipher | None = None
        if audit.encrypted_fields:
            key = load_key_bytes(file=audit.encryption_key_file, what="audit field-encryption key")
            self._cipher = FieldCipher(key, audit.encrypted_fields)
        self._store: AuditStore | None = None
        self._log: AuditLog | None = None
        self._stored: dict[str, bytes] = {}
        self._exports = ExportDir(audit.checkpoint_export_dir) if exports and audit.checkpoint_export_dir else None
        self.origin = log_origin(audit, node)
        #: Size and time (µs) of the checkpoint last exported as a note.
        self._exported_size, self._exported_at_us = -1, 0

    def _open(self) -> AuditLog:
        """(Re)connect, resume the log after the stored tail, and recover each stream's stored position."""
        # Imported here: the supervisor imports this module to create the actor and never opens the store, and
        # importing psycopg and the PostgreSQL engine (~60 ms of CPU) there would slow the actors' start-up.
        from actors.engines.postgresql.audit_connection import connect_store

        if self._store is not None:
            self._store.close()
        self._store = connect_store(self._node, self._audit.schema)
        pending = self._store.pending_steps()
        if pending:
            raise ConfigError(
                f"audit schema `{self._audit.schema}`",
                f"lacks migration steps {', '.join(pending)} - run `worker-sync migrate --config FILE`",
            )
        self._check_key_in_force()
        frontier, last = self._store.resume()
        self._check_sealed(frontier.size, frontier.root())
        self._log = AuditLog(
            self._key, every_entries=self._audit.checkpoint_every_entries, frontier=frontier, last_leaf=last
        )
        self._stored = self._store.last_orders(self._streams) if self._streams else {}
        self._catch_up_exports(frontier.size)
        log.info("audit log resumed at %d entries; streams at %s", frontier.size, self._stored)
        return self._log

    def _check_sealed(self, size: int, root: bytes) -> None:
        """Every stored entry is covered by a checkpoint this key signed (each batch is stored with one): entries
        beyond the latest are foreign, and are never adopted (see README, "Foreign entries")."""
        assert self._store is not None
        latest = self._store.latest_checkpoint()
        covered = 0 if latest is None else latest.size
        where = f"audit store `{self._audit.schema}`"
        if size > covered:
            raise ForeignEntries(
                f"{where}: entries {covered}..{size - 1} are covered by no signed checkpoint - they were written "
                f"outside Worker-Sync (first foreign entry {covered}); nothing will sign them. Run `worker-sync "
                "audit verify --config FILE`; README, `Foreign entries`, says what to do",
                covered,
            )
        # Signed by this key, or (right after a key rotation, checked by _check_key_in_force) by the previous one.
        mine = latest is not None and latest.key_id == key_id(bytes(self._key.verify_key))
        if latest is not None and ((mine and verify_signature(latest, self._key.verify_key)) or latest.root != root):
            raise AuditMismatch(
                f"{where}: the latest checkpoint (size {latest.size}) does not sign the stored entries - "
                "run `worker-sync audit verify --config FILE` to find the changed entry"
            )

    def _catch_up_exports(self, size: int) -> None:
        """The export directory has every stored entry's leaf hash: more means the store lost entries."""
        if self._exports is None:
            return
        assert self._store is not None
        exported = self._exports.leaf_count()
        if exported > size:
            raise AuditMismatch(
                f"audit store `{self._audit.schema}` has {size} entries, but {exported} leaf hashes were exported to "
                f"{self._exports.directory}: entries {size}..{exported - 1} were removed from the store"
            )
        self._exports.append_leaves(self._store.leaves(size, from_seq=exported))

    @property
    def public_key(self) -> VerifyKey:
        return self._key.verify_key

    def _check_key_in_force(self) -> None:
        """Refuse to sign with a key the log has not handed over to: the key of the latest checkpoint, or the
        new key of a key rotation that checkpoint sealed. A key file swapped without `audit rotate-key`, or
        the old key configured after a rotation, would otherwise sign checkpoints `audit verify` rejects."""
        assert self._store is not None
        latest = self._store.latest_checkpoint()
        if latest is None:
            return
        in_force = latest.key_id
        rotation = self._store.last_admin(AdminKind.KEY_ROTATION)
        if rotation is not None and rotation.seq + 1 == latest.size:
            in_force = bytes.fromhex(str(admin_detail(decode_entry(rotation.data))["new_key_id"]))
        mine = key_id(bytes(self._key.verify_key))
        if mine != in_force:
            raise ConfigError(
                f"audit schema `{self._audit.schema}`",
                f"the configured signing key (id {mine.hex()}) is not the key in force (id {in_force.hex()}) - "
                "configure that key, or change keys only with `worker-sync audit rotate-key`",
            )

    def _exported(self, entries: list[StoredEntry], *, force: bool = False) -> None:
        """After a batch is stored: its leaf hashes go to the export directory, and a signed note of the head
        every `checkpoint_every_entries` entries or `checkpoint_every_ms` (``force``: now)."""
        if self._exports is None or self._log is None:
            return
        self._exports.append_leaves([entry.leaf for entry in entries])
        size, now = self._log.size, _now_us()
        due = (
            size - self._exported_size >= self._audit.checkpoint_every_entries
            or now - self._exported_at_us >= self._audit.checkpoint_every_ms * 1000
        )
        if size > self._exported_size and size and (due or force):
            note = NoteCheckpoint(self.origin, size, self._log.root())
            self._exports.publish(sign_note(note, self._key), size)
            self._exported_size, self._exported_at_us = size, now

    def append(self, parts: list[bytes]) -> Appended:
        audit_log = self._log or self._open()
        drafts = []
        skipped = 0
        stored = dict(self._stored)
        for data in parts:
            for event in decode_batch(data).events:
                order = event.position.order
                done = stored.get(event.node)
                if done is not None and order <= done:
                    skipped += 1
                    continue
                stored[event.node] = order
                if self._cipher is not None:
                    event = self._cipher.encrypt_event(event)
                drafts.append(change_entry(event))
        try:
            entries, checkpoints = audit_log.add(drafts)
            assert self._store is not None
            self._store.append(entries, checkpoints, audit_log.take_frontiers())
        except BaseException:
            self._log = None  # the frontier advanced past what was committed: rebuild it on the next call
            raise
        self._stored = stored
        self._exported(entries)
        return Appended(
            entries=len(entries), skipped=skipped, checkpoints=len(checkpoints), size=audit_log.size, pid=os.getpid()
        )

    def record_admin(self, kind: str, detail: dict[str, object], *, request_id: str, actor: str) -> Appended:
        """Append one admin entry (see :meth:`AuditChain.record_admin`); a ``request_id`` already stored is
        skipped, so a re-sent call stores it once."""
        admin_kind = AdminKind(kind)
        audit_log = self._log or self._open()
        assert self._store is not None
        if self._store.find_admin(admin_kind, request_id) is not None:
            return Appended(entries=0, skipped=1, checkpoints=0, size=audit_log.size, pid=os.getpid())
        draft = admin_entry(admin_kind, request_id=request_id, actor=actor, time_us=_now_us(), detail=detail)
        return self._append_sealed(audit_log, [draft])

    def record_conflicts(self, conflicts: list[dict[str, object]]) -> Appended:
        """One CONFLICT entry per decision (see :meth:`AuditChain.record_conflicts`)."""
        audit_log = self._log or self._open()
        now = _now_us()
        drafts = [
            other_entry(
                EntryKind.CONFLICT,
                node=str(c["node"]),
                namespace=str(c["namespace"]),
                key=str(c["key"]),
                op=str(c["outcome"]),
                time_us=now,
                detail=c,
            )
            for c in conflicts
        ]
        return self._append_sealed(audit_log, drafts)

    def rotate_key(self, new_key: SigningKey, *, request_id: str, actor: str) -> Appended:
        """Hand signing over to ``new_key``: a key-rotation entry naming both key ids, sealed by a checkpoint
        of the OLD key in the same transaction; every later checkpoint is signed with the new key."""
        audit_log = self._log or self._open()
        assert self._store is not None
        old_id, new_id = audit_log.key_id, key_id(bytes(new_key.verify_key))
        if self._store.find_admin(AdminKind.KEY_ROTATION, request_id) is not None:
            audit_log.use_key(new_key)  # stored by an earlier attempt whose reply was lost
            self._key = new_key
            return Appended(entries=0, skipped=1, checkpoints=0, size=audit_log.size, pid=os.getpid())
        if old_id == new_id:
            raise ConfigError("audit rotate-key", f"the new key is the key in use (id {old_id.hex()})")
        detail: dict[str, object] = {"old_key_id": old_id.hex(), "new_key_id": new_id.hex()}
        draft = admin_entry(
            AdminKind.KEY_ROTATION, request_id=request_id, actor=actor, time_us=_now_us(), detail=detail
        )
        appended = self._append_sealed(audit_log, [draft])
        audit_log.use_key(new_key)
        self._key = new_key
        return appended

    def _append_sealed(self, audit_log: AuditLog, drafts: list[AuditEntry]) -> Appended:
        """Store ``drafts`` and the checkpoint that signs them in one transaction."""
        try:
            entries, checkpoints = audit_log.add(drafts)
            assert self._store is not None
            self._store.append(entries, checkpoints, audit_log.take_frontiers())
        except BaseException:
            self._log = None
            raise
        self._exported(entries)
        return Appended(
            entries=len(entries), skipped=0, checkpoints=len(checkpoints), size=audit_log.size, pid=os.getpid()
        )

    def tick(self) -> bool:
        """Export a note of the head if `checkpoint_every_ms` has passed since the last (every stored entry is
        signed in the store already; this keeps the copy outside it fresh when traffic stops)."""
        before = self._exported_size
        self._log or self._open()
        self._exported([])
        return self._exported_size != before

    def close(self) -> None:
        """Export a note of the head, then close the connection."""
        if self._log is not None:
            self._exported([], force=True)
        if self._store is not None:
            self._store.close()
        self._store, self._log = None, None


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class AuditChain:
    def __init__(self, audit: Audit, node: PostgresNode, streams: list[str]) -> None:
        self._writer = AuditWriter(audit, node, streams)

    def append(self, *parts: bytes) -> Appended:
        """Store every change of ``parts`` (encoded batches, in stream order) not stored before. The
        supervisor passes references to what the capture actors put in the object store."""
        return self._writer.append(list(parts))

    def record_admin(
        self, kind: str, detail: dict[str, object], request_id: str, actor: str = "supervisor"
    ) -> Appended:
        """Record an admin action in the log, in order with the changes, exactly once.

        - ``kind``: an ``AdminKind`` value: ``config-loaded`` (detail: ``{"path", "sha256"}`` of the config
          file, see ``entries.config_detail``), ``manual-sync`` (e.g. ``{"namespace", "requested_by"}``),
          ``key-rotation`` (use :meth:`rotate_key`, which also switches keys), ``retention``. Another value
          raises ValueError.
        - ``detail``: str keys; values msgpack can encode (str, int, float, bool, None, bytes, lists, dicts).
          It is hashed and kept until retention prunes it: never put a secret in it.
        - ``request_id``: the caller's id for this action (e.g. ``f"config:{run_id}:{sha256}"``). The same
          (kind, request_id) is stored once, so a call re-sent after a lost reply or a restart is harmless
          (the reply then says ``entries=0, skipped=1``).
        - Ordering: Ray runs this actor's calls one at a time; the entry gets the next seq after everything
          stored before the call, through the same append path (and transaction rules) as changes.
        - Signed by the next checkpoint (N entries or T ms, as configured), not at once.
        - Raises what ``append`` raises when the store fails; send the same call again.
        """
        return self._writer.record_admin(kind, detail, request_id=request_id, actor=actor)

    def record_conflicts(self, conflicts: list[dict[str, object]]) -> Appended:
        """Record conflict decisions of bidirectional groups, in order with the changes.

        Each document (built by the supervisor from a ConflictRecord) holds the node that decided, the
        table, the key (canonical JSON text), the outcome and policy, and both versions (node, commit time,
        priority, and the row as typed msgpack bytes). Not idempotent: a call re-sent after a lost reply
        may store a decision twice (each entry says when it was recorded)."""
        return self._writer.record_conflicts(conflicts)

    def rotate_key(
        self, request_id: str, key_file: str | None = None, key_env: str | None = None, actor: str = "supervisor"
    ) -> Appended:
        """Switch to the signing key in ``key_file``/``key_env`` (read here, never sent over Ray): a
        key-rotation entry sealed by the old key, then the new key signs. Idempotent by ``request_id``."""
        new_key = load_signing_key(file=key_file, env=key_env)
        return self._writer.rotate_key(new_key, request_id=request_id, actor=actor)

    def tick(self) -> bool:
        return self._writer.tick()

    def close(self) -> None:
        self._writer.close()

    def pid(self) -> int:
        return os.getpid()
