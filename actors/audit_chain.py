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

import msgspec
import ray

from actors.core.audit.checkpoint import Checkpoint, export, load_key_bytes, load_signing_key
from actors.core.audit.entries import change_entry
from actors.core.audit.fieldcrypt import FieldCipher
from actors.core.audit.log import AuditLog
from actors.core.encoding import decode_batch
from config.model import Audit, PostgresNode

log = logging.getLogger(__name__)


class Appended(msgspec.Struct, frozen=True, kw_only=True):
    #: Entries stored by this call, and changes skipped because an earlier attempt stored them.
    entries: int
    skipped: int
    checkpoints: int
    #: Size of the log after this call.
    size: int
    pid: int


def connect_store(node: PostgresNode, schema: str):
    """An AuditStore over a new connection as the node's user (the service role)."""
    import psycopg

    from actors.core.errors import SinkError
    from actors.engines.postgresql.audit_store import AuditStore
    from actors.engines.postgresql.connection import conninfo_for
    from config.secrets import node_password

    password = node_password("audit", node)
    try:
        conn = psycopg.connect(conninfo_for(node, password, application_name="worker-sync:audit"), autocommit=True)
    except psycopg.Error as exc:
        raise SinkError(f"audit store on {node.host}:{node.port}: cannot connect: {exc}") from exc
    return AuditStore(conn, schema)


class AuditWriter:
    """Turns encoded batches into stored entries and checkpoints; state is rebuilt from the store
    whenever an append fails, so the in-memory frontier never runs ahead of what was committed."""

    def __init__(self, audit: Audit, node: PostgresNode, streams: list[str]) -> None:
        self._audit = audit
        self._node = node
        self._streams = set(streams)
        self._key = load_signing_key(file=audit.signing_key_file, env=audit.signing_key_env)
        self._cipher = None
        if audit.encrypted_fields:
            key = load_key_bytes(file=audit.encryption_key_file, what="audit field-encryption key")
            self._cipher = FieldCipher(key, audit.encrypted_fields)
        self._store = None
        self._log: AuditLog | None = None
        self._stored: dict[str, bytes] = {}

    def _open(self) -> AuditLog:
        """(Re)connect, resume the log after the stored tail, and recover each stream's stored position."""
        if self._store is not None:
            self._store.close()
        self._store = connect_store(self._node, self._audit.schema)
        frontier, last = self._store.resume()
        self._log = AuditLog(
            self._key,
            every_entries=self._audit.checkpoint_every_entries,
            every_ms=self._audit.checkpoint_every_ms,
            frontier=frontier,
            last_leaf=last,
        )
        self._stored = self._store.last_orders(self._streams) if self._streams else {}
        latest = self._store.latest_checkpoint()
        if frontier.size and (latest is None or latest.size < frontier.size):
            # Entries stored by a writer that died before its next checkpoint: cover them now.
            self._store_checkpoints([self._log.checkpoint()])
        log.info("audit log resumed at %d entries; streams at %s", frontier.size, self._stored)
        return self._log

    def _store_checkpoints(self, checkpoints: list[Checkpoint]) -> None:
        assert self._store is not None
        for cp in checkpoints:
            self._store.append_checkpoint(cp)
        self._export(checkpoints)

    def _export(self, checkpoints: list[Checkpoint]) -> None:
        if self._audit.checkpoint_export_dir and checkpoints:
            export(checkpoints[-1], self._audit.checkpoint_export_dir)

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
            self._store.append(entries, checkpoints)
        except BaseException:
            self._log = None  # the frontier advanced past what was committed: rebuild it on the next call
            raise
        self._stored = stored
        self._export(checkpoints)
        return Appended(
            entries=len(entries), skipped=skipped, checkpoints=len(checkpoints), size=audit_log.size, pid=os.getpid()
        )

    def tick(self) -> bool:
        """Sign a checkpoint if entries are waiting and `checkpoint_every_ms` has passed."""
        audit_log = self._log or self._open()
        checkpoint = audit_log.tick()
        if checkpoint is None:
            return False
        try:
            self._store_checkpoints([checkpoint])
        except BaseException:
            self._log = None
            raise
        return True

    def close(self) -> None:
        """A final checkpoint of everything stored, then the connection is closed."""
        if self._log is not None:
            checkpoint = self._log.flush()
            if checkpoint is not None:
                self._store_checkpoints([checkpoint])
        if self._store is not None:
            self._store.close()
        self._store, self._log = None, None


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class AuditChain:
    def __init__(self, audit: Audit, node: PostgresNode, streams: list[str]) -> None:
        self._writer = AuditWriter(audit, node, streams)
        self._writer.append([])  # connect and resume now, so a broken store shows at start

    def append(self, parts: list[bytes]) -> Appended:
        """Store every change of ``parts`` (encoded batches, in stream order) not stored before."""
        return self._writer.append(parts)

    def tick(self) -> bool:
        return self._writer.tick()

    def close(self) -> None:
        self._writer.close()

    def pid(self) -> int:
        return os.getpid()
