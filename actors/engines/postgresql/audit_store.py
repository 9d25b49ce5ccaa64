"""The append-only audit store in PostgreSQL: its own schema, INSERT/SELECT only for the service role.

Privileges are the first wall (the service role is granted INSERT and SELECT, nothing else); triggers
are the second: a BEFORE UPDATE OR DELETE row trigger and a BEFORE TRUNCATE statement trigger raise, so
even the table owner is refused until it drops or disables them. Neither wall stops a superuser, which
is why the log is hash-chained and checkpoints are signed and exported: tampering is then detected.
The schema itself is defined as migration steps in ``audit_schema``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import sql

from actors.core.audit.checkpoint import Checkpoint
from actors.core.audit.entries import ADMIN_NAMESPACE, GENESIS, EntryKind, decode_entry
from actors.core.audit.log import StoredEntry
from actors.core.audit.merkle import Frontier
from actors.core.errors import AuditMismatch, SinkError
from actors.engines.postgresql.audit_schema import AUDIT
from actors.engines.postgresql.schema_steps import Target, applied_steps, migrate

log = logging.getLogger(__name__)
_ENTRY_COLUMNS = ("seq", "data", "leaf", "prev", "kind", "namespace", "key", "commit_time_us")


def create_schema(admin_conn: psycopg.Connection, schema: str, service_role: str) -> None:
    """Create (or bring up to date) the audit schema, its triggers and grants: every migration step, in one
    transaction. Idempotent; the same steps `worker-sync migrate` runs."""
    migrate(admin_conn, AUDIT, Target(schema, service_role))


class AuditStore:
    """Appends and reads one audit schema over one connection (the service role's)."""

    def __init__(self, conn: psycopg.Connection, schema: str) -> None:
        self._conn = conn
        self._schema = schema
        self._entries = sql.Identifier(schema, "entries")
        self._checkpoints = sql.Identifier(schema, "checkpoints")

    @property
    def schema(self) -> str:
        return self._schema

    def close(self) -> None:
        self._conn.close()

    def transaction(self) -> AbstractContextManager[psycopg.Transaction]:
        """One transaction around several calls (``append`` nests in it as savepoints): all or nothing."""
        return self._conn.transaction()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one snapshot (REPEATABLE READ), so a checkpoint or a prune committed meanwhile is
        either wholly seen or not at all."""
        self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with self._conn.transaction():
            yield

    def append(
        self,
        entries: Sequence[StoredEntry],
        checkpoints: Sequence[Checkpoint] = (),
        frontiers: Sequence[Frontier] = (),
    ) -> None:
        """Store entries (binary COPY), then the checkpoints that cover them and the Merkle frontiers at those
        checkpoints (for a fast restart), in one transaction."""
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            self._entries, sql.SQL(", ").join(map(sql.Identifier, _ENTRY_COLUMNS))
        )
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                if entries:
                    with cur.copy(copy_sql) as copy:
                        copy.set_types(["int8", "bytea", "bytea", "bytea", "text", "text", "text", "int8"])
                        for entry in entries:
                            copy.write_row(_row(entry))
                for cp in checkpoints:
                    self._insert_checkpoint(cur, cp)
                for frontier in frontiers:
                    self._insert_frontier(cur, frontier)
        except psycopg.Error as exc:
            raise SinkError(f"audit store `{self._schema}`: append failed: {exc}") from exc

    def append_checkpoint(self, checkpoint: Checkpoint, frontier: Frontier | None = None) -> None:
        with self._conn.transaction(), self._conn.cursor() as cur:
            self._insert_checkpoint(cur, checkpoint)
            if frontier is not None:
                self._insert_frontier(cur, frontier)

    def _insert_frontier(self, cur: psycopg.Cursor, frontier: Frontier) -> None:
        cur.execute(
            sql.SQL("INSERT INTO {} (size, hashes) VALUES (%s, %s) ON CONFLICT (size) DO NOTHING").format(
                sql.Identifier(self._schema, "frontiers")
            ),
            (frontier.size, b"".join(frontier.hashes)),
        )

    def _insert_checkpoint(self, cur: psycopg.Cursor, cp: Checkpoint) -> None:
        cur.execute(
            sql.SQL("INSERT INTO {} (size, root, time_us, key_id, signature) VALUES (%s, %s, %s, %s, %s)").format(
                self._checkpoints
            ),
            (cp.size, cp.root, cp.time_us, cp.key_id, cp.signature),
        )

    def read(self, from_seq: int = 0, to_seq: int | None = None, *, batch: int = 10_000) -> Iterator[StoredEntry]:
        """Entries with from_seq <= seq < to_seq in seq order, streamed with a server-side cursor."""
        query = sql.SQL("SELECT {} FROM {} WHERE seq >= %s AND (%s::bigint IS NULL OR seq < %s) ORDER BY seq").format(
            sql.SQL(", ").join(map(sql.Identifier, _ENTRY_COLUMNS)), self._entries
        )
        with self._conn.transaction(), self._conn.cursor(name="audit_read") as cur:
            cur.itersize = batch
            cur.execute(query, (from_seq, to_seq, to_seq))
            for row in cur:
                yield StoredEntry(*row)

    def resume(self) -> tuple[Frontier, bytes]:
        """The Merkle frontier and the last leaf hash of the stored log, to restart an AuditLog after it.

        Starts from the frontier stored with the latest checkpoint (O(log n) hashes, checked against that
        checkpoint's root) and streams only the leaves after it; without one, streams every leaf. Refuses
        a log whose seqs have a gap. `audit verify` still recomputes everything from the entries.
        """
        frontier, last = self._stored_frontier(), GENESIS
        if frontier.size:
            with self._conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT leaf FROM {} WHERE seq = %s").format(self._entries), (frontier.size - 1,))
                row = cur.fetchone()
            if row is None:
                raise AuditMismatch(f"audit store `{self._schema}`: entry {frontier.size - 1} is missing")
            last = bytes(row[0])
        query = sql.SQL("SELECT seq, leaf FROM {} WHERE seq >= %s ORDER BY seq").format(self._entries)
        with self._conn.transaction(), self._conn.cursor(name="audit_resume") as cur:
            cur.itersize = 50_000
            cur.execute(query, (frontier.size,))
            for seq, leaf in cur:
                if seq != frontier.size:
                    raise AuditMismatch(f"audit store `{self._schema}`: entry {frontier.size} is missing")
                last = bytes(leaf)
                frontier.append(last)
        return frontier, last

    def _stored_frontier(self) -> Frontier:
        """The frontier at the latest checkpoint that has one and whose root it reproduces; else empty."""
        query = sql.SQL(
            "SELECT f.size, f.hashes, c.root FROM {} f JOIN {} c ON c.size = f.size ORDER BY f.size DESC LIMIT 1"
        ).format(sql.Identifier(self._schema, "frontiers"), self._checkpoints)
        with self._conn.cursor() as cur:
            cur.execute(query)
            row = cur.fetchone()
        if row is None:
            return Frontier()
        size, hashes, root = int(row[0]), bytes(row[1]), bytes(row[2])
        try:
            frontier = Frontier(size, [hashes[i : i + 32] for i in range(0, len(hashes), 32)])
        except ValueError:
            log.warning(
                "audit store `%s`: the frontier at size %d is malformed; reading every leaf", self._schema, size
            )
            return Frontier()
        if frontier.root() != root:
            log.warning(
                "audit store `%s`: the frontier at size %d does not give its checkpoint's root; reading every leaf",
                self._schema,
                size,
            )
            return Frontier()
        return frontier

    def last_orders(self, nodes: set[str], *, batch: int = 10_000) -> dict[str, bytes]:
        """The highest stored change position (``order``) per source node in ``nodes``.

        Each stream's changes are appended in order, so its newest entry holds its highest position:
        the log is read backwards until every node is found (or the start is reached). The audit actor
        uses this to skip changes already stored when a call is re-sent after a lost reply or a crash.
        """
        found: dict[str, bytes] = {}
        # Pruned entries (empty data) have no position left to read.
        query = sql.SQL("SELECT data FROM {} WHERE kind = %s AND data <> ''::bytea ORDER BY seq DESC").format(
            self._entries
        )
        with self._conn.transaction(), self._conn.cursor(name="audit_last_orders") as cur:
            cur.itersize = batch
            cur.execute(query, (str(EntryKind.CHANGE),))
            for (data,) in cur:
                entry = decode_entry(bytes(data))
                if entry.node in nodes and entry.node not in found:
                    found[entry.node] = bytes.fromhex(entry.order_hex)
                    if len(found) == len(nodes):
                        break
        return found

    def exists(self) -> bool:
        """Whether the schema's tables exist and this role may read them (`worker-sync init` was run)."""
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                (f'"{self._schema}".entries', f'"{self._schema}".checkpoints'),
            )
            row = cur.fetchone()
        return bool(row and row[0])

    def pending_steps(self) -> list[str]:
        """Migration steps this store lacks (empty when it is up to date; `worker-sync migrate` runs them)."""
        done = applied_steps(self._conn, self._schema) or []
        return [step.name for step in AUDIT.steps[len(done) :]]

    def find_admin(self, kind: str, request_id: str) -> int | None:
        """The seq of the admin entry (kind, request_id), if stored: what makes recording it idempotent."""
        with self._conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT seq FROM {} WHERE namespace = %s AND key = %s AND kind = %s LIMIT 1").format(
                    self._entries
                ),
                (ADMIN_NAMESPACE + kind, request_id, str(EntryKind.ADMIN)),
            )
            row = cur.fetchone()
        return int(row[0]) if row else None

    def last_admin(self, kind: str) -> StoredEntry | None:
        """The newest admin entry of ``kind`` that still has its content."""
        query = sql.SQL(
            "SELECT {} FROM {} WHERE namespace = %s AND kind = %s AND data <> ''::bytea ORDER BY seq DESC LIMIT 1"
        ).format(sql.SQL(", ").join(map(sql.Identifier, _ENTRY_COLUMNS)), self._entries)
        with self._conn.cursor() as cur:
            cur.execute(query, (ADMIN_NAMESPACE + kind, str(EntryKind.ADMIN)))
            row = cur.fetchone()
        return StoredEntry(*row) if row else None

    def prunes(self) -> list[tuple[int, int]]:
        """The recorded retention ranges [from_seq, to_seq) whose entries lost their content."""
        if "audit-retention" in self.pending_steps():
            return []
        with self._conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT from_seq, to_seq FROM {} ORDER BY from_seq").format(
                    sql.Identifier(self._schema, "prunes")
                )
            )
            return [(int(lo), int(hi)) for lo, hi in cur.fetchall()]

    def last_prune(self) -> tuple[int, int, int] | None:
        """The newest recorded prune: (from_seq, to_seq, cutoff_us)."""
        with self._conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT from_seq, to_seq, cutoff_us FROM {} ORDER BY from_seq DESC LIMIT 1").format(
                    sql.Identifier(self._schema, "prunes")
                )
            )
            row = cur.fetchone()
        return (int(row[0]), int(row[1]), int(row[2])) if row else None

    def prune(self, retention_days: int, *, dry_run: bool = False) -> tuple[int, int, int]:
        """Blank the content of the signed prefix of entries older than ``retention_days`` (the database's
        clock decides) through the schema's `prune()` function; return (from_seq, to_seq, cutoff_us)."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT out_from, out_to, out_cutoff_us FROM {}.prune(%s, %s)").format(
                    sql.Identifier(self._schema)
                ),
                (retention_days, dry_run),
            )
            row = cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def leaves(self, to_seq: int, *, from_seq: int = 0) -> list[bytes]:
        """Leaf hashes of entries from_seq..to_seq-1 (inclusion proofs, the export directory)."""
        query = sql.SQL("SELECT leaf FROM {} WHERE seq >= %s AND seq < %s ORDER BY seq").format(self._entries)
        with self._conn.cursor() as cur:
            cur.execute(query, (from_seq, to_seq))
            return [bytes(row[0]) for row in cur.fetchall()]

    def sealed_and_stored(self) -> tuple[int, int]:
        """(entries the latest checkpoint signs, entries stored): equal unless someone wrote to the store."""
        query = sql.SQL("SELECT (SELECT coalesce(max(size), 0) FROM {}), (SELECT coalesce(max(seq) + 1, 0) FROM {})")
        with self._conn.cursor() as cur:
            cur.execute(query.format(self._checkpoints, self._entries))
            row = cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def checkpoints(self) -> list[Checkpoint]:
        with self._conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT size, root, time_us, key_id, signature FROM {} ORDER BY size").format(self._checkpoints)
            )
            return [_checkpoint(row) for row in cur.fetchall()]

    def latest_checkpoint(self) -> Checkpoint | None:
        with self._conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT size, root, time_us, key_id, signature FROM {} ORDER BY size DESC LIMIT 1").format(
                    self._checkpoints
                )
            )
            row = cur.fetchone()
        return _checkpoint(row) if row else None

    def search(
        self,
        *,
        namespace: str | None = None,
        key: str | None = None,
        since_us: int | None = None,
        limit: int = 1000,
        after_seq: int | None = None,
    ) -> list[StoredEntry]:
        """Entries matching the `audit logs` filters, oldest first (``after_seq``: only later ones, to follow)."""
        where: list[sql.Composable] = []
        params: list[object] = []
        if after_seq is not None:
            where.append(sql.SQL("seq > %s"))
            params.append(after_seq)
        for column, value in (("namespace", namespace), ("key", key)):
            if value is not None:
                where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        if since_us is not None:
            where.append(sql.SQL("commit_time_us >= %s"))
            params.append(since_us)
        query = sql.SQL("SELECT {} FROM {} {} ORDER BY seq LIMIT %s").format(
            sql.SQL(", ").join(map(sql.Identifier, _ENTRY_COLUMNS)),
            self._entries,
            sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        )
        with self._conn.cursor() as cur:
            cur.execute(query, [*params, limit])
            return [StoredEntry(*row) for row in cur.fetchall()]


def _row(entry: StoredEntry) -> tuple[object, ...]:
    return (
        entry.seq,
        entry.data,
        entry.leaf,
        entry.prev,
        entry.kind,
        entry.namespace,
        entry.key,
        entry.commit_time_us,
    )


def _checkpoint(row: tuple[Any, ...]) -> Checkpoint:
    size, root, time_us, kid, signature = row
    return Checkpoint(
        size=int(size),
        root=bytes(root),
        time_us=int(time_us),
        key_id=bytes(kid),
        signature=bytes(signature),
    )
