"""The append-only audit store in PostgreSQL: its own schema, INSERT/SELECT only for the service role.

Privileges are the first wall (the service role is granted INSERT and SELECT, nothing else); triggers
are the second: a BEFORE UPDATE OR DELETE row trigger and a BEFORE TRUNCATE statement trigger raise, so
even the table owner is refused until it drops or disables them. Neither wall stops a superuser, which
is why the log is hash-chained and checkpoints are signed and exported: tampering is then detected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import psycopg
from psycopg import sql

from actors.core.audit.checkpoint import Checkpoint
from actors.core.audit.entries import GENESIS
from actors.core.audit.log import StoredEntry
from actors.core.audit.merkle import Frontier
from actors.core.errors import AuditMismatch, SinkError

_ENTRY_COLUMNS = ("seq", "data", "leaf", "prev", "kind", "namespace", "key", "commit_time_us")

_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.entries (
    seq bigint PRIMARY KEY,
    data bytea NOT NULL,
    leaf bytea NOT NULL,
    prev bytea NOT NULL,
    kind text NOT NULL,
    namespace text NOT NULL,
    key text NOT NULL,
    commit_time_us bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_namespace_key ON {schema}.entries (namespace, key);
CREATE INDEX IF NOT EXISTS entries_commit_time ON {schema}.entries (commit_time_us);
CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
    size bigint PRIMARY KEY,
    root bytea NOT NULL,
    time_us bigint NOT NULL,
    key_id bytea NOT NULL,
    signature bytea NOT NULL
);
CREATE OR REPLACE FUNCTION {schema}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
"""

_TRIGGERS = """
DROP TRIGGER IF EXISTS append_only ON {table};
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_change();
DROP TRIGGER IF EXISTS no_truncate ON {table};
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change();
REVOKE ALL ON {table} FROM PUBLIC;
REVOKE ALL ON {table} FROM {role};
GRANT SELECT, INSERT ON {table} TO {role};
"""


def create_schema(admin_conn: psycopg.Connection, schema: str, service_role: str) -> None:
    """Create (or re-assert) the audit schema, its triggers and grants. Idempotent; one transaction."""
    ident, role = sql.Identifier(schema), sql.Identifier(service_role)
    with admin_conn.transaction(), admin_conn.cursor() as cur:
        cur.execute(sql.SQL(_DDL).format(schema=ident))
        cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(ident))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, role))
        for table in ("entries", "checkpoints"):
            qualified = sql.Identifier(schema, table)
            cur.execute(sql.SQL(_TRIGGERS).format(table=qualified, schema=ident, role=role))
            # Default privileges may have granted other roles more than SELECT: take back every write.
            cur.execute(
                "SELECT DISTINCT grantee FROM information_schema.role_table_grants WHERE table_schema = %s "
                "AND table_name = %s AND privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE') "
                "AND grantee <> current_user",
                (schema, table),
            )
            for (grantee,) in cur.fetchall():
                cur.execute(
                    sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(qualified, sql.Identifier(grantee))
                )


class AuditStore:
    """Appends and reads one audit schema over one connection (the service role's)."""

    def __init__(self, conn: psycopg.Connection, schema: str) -> None:
        self._conn = conn
        self._schema = schema
        self._entries = sql.Identifier(schema, "entries")
        self._checkpoints = sql.Identifier(schema, "checkpoints")

    def close(self) -> None:
        self._conn.close()

    def append(self, entries: Sequence[StoredEntry], checkpoints: Sequence[Checkpoint] = ()) -> None:
        """Store entries (binary COPY) and then the checkpoints that cover them, in one transaction."""
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
        except psycopg.Error as exc:
            raise SinkError(f"audit store `{self._schema}`: append failed: {exc}") from exc

    def append_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._conn.transaction(), self._conn.cursor() as cur:
            self._insert_checkpoint(cur, checkpoint)

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

        Streams the leaf column once (32 bytes per entry); refuses a log whose seqs have a gap.
        """
        frontier, last = Frontier(), GENESIS
        query = sql.SQL("SELECT seq, leaf FROM {} ORDER BY seq").format(self._entries)
        with self._conn.transaction(), self._conn.cursor(name="audit_resume") as cur:
            cur.itersize = 50_000
            cur.execute(query)
            for seq, leaf in cur:
                if seq != frontier.size:
                    raise AuditMismatch(f"audit store `{self._schema}`: entry {frontier.size} is missing")
                last = bytes(leaf)
                frontier.append(last)
        return frontier, last

    def last_orders(self, nodes: set[str], *, batch: int = 10_000) -> dict[str, bytes]:
        """The highest stored change position (``order``) per source node in ``nodes``.

        Each stream's changes are appended in order, so its newest entry holds its highest position:
        the log is read backwards until every node is found (or the start is reached). The audit actor
        uses this to skip changes already stored when a call is re-sent after a lost reply or a crash.
        """
        from actors.core.audit.entries import EntryKind, decode_entry

        found: dict[str, bytes] = {}
        query = sql.SQL("SELECT data FROM {} WHERE kind = %s ORDER BY seq DESC").format(self._entries)
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

    def leaves(self, to_seq: int) -> list[bytes]:
        """Leaf hashes of entries 0..to_seq-1 (for inclusion proofs)."""
        with self._conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT leaf FROM {} WHERE seq < %s ORDER BY seq").format(self._entries), (to_seq,))
            return [bytes(row[0]) for row in cur.fetchall()]

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
        self, *, namespace: str | None = None, key: str | None = None, since_us: int | None = None, limit: int = 1000
    ) -> list[StoredEntry]:
        """Entries matching the `audit logs` filters, oldest first."""
        where: list[sql.Composable] = []
        params: list[object] = []
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


def _checkpoint(row: Iterable[object]) -> Checkpoint:
    size, root, time_us, kid, signature = row
    return Checkpoint(
        size=int(size),  # type: ignore[call-overload]
        root=bytes(root),  # type: ignore[call-overload]
        time_us=int(time_us),  # type: ignore[call-overload]
        key_id=bytes(kid),  # type: ignore[call-overload]
        signature=bytes(signature),  # type: ignore[call-overload]
    )
