"""What both writers share: batched statements, one transaction per slice, errors translated at the edge.

A writer turns a slice of RowChanges into statements (all deletes, then multi-row upserts per column set),
runs them in one target transaction and commits. When the database refuses a row, the whole transaction
is rolled back and the writer finds *which* row by replaying the failing statement one row at a time in a
transaction it then rolls back (multi-row statements do not say which row failed); the SinkError names
the table, the key and the database's reason. Connection trouble becomes SourceUnavailable (retryable)
and the next ``apply`` connects afresh.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from actors.core.changes import RowChange, TableChanges, by_table
from actors.core.conflicts import (
    NO_ROW,
    UNKNOWN,
    WRITTEN,
    Decision,
    Offer,
    RowKey,
    Stored,
    decide_all,
    decode_stored,
    encode_stored,
    row_bytes,
)
from actors.core.encoding import encode_row
from actors.core.errors import (
    ColumnMissing,
    ConfigError,
    RowRefused,
    SinkError,
    SourceUnavailable,
    WorkerSyncError,
)
from actors.core.events import UNSENT_NUMBER
from actors.core.table_events import TableOp
from actors.core.typemap import TableSchema, loss

log = logging.getLogger(__name__)

#: Per statement: at most this many rows, bound parameters and (roughly) bytes of values.
MAX_ROWS = 1_000
MAX_PARAMS = 30_000
MAX_BYTES = 4 << 20

Conn = TypeVar("Conn")
Table = TypeVar("Table")
Converter = Callable[[Any], Any]
#: Runs one statement in the open transaction; returns its rows (empty for statements without a result).
Execute = Callable[[str, list[Any]], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Statement:
    """One multi-row statement: ``render(n)`` is its SQL for n rows, ``rows`` the parameters of each row."""

    namespace: str
    render: Callable[[int], str]
    rows: list[list[Any]]
    keys: list[dict[str, Any]]

    @property
    def sql(self) -> str:
        return self.render(len(self.rows))

    @property
    def params(self) -> list[Any]:
        return [value for row in self.rows for value in row]

    def single(self, index: int) -> Statement:
        return Statement(self.namespace, self.render, [self.rows[index]], [self.keys[index]])


def row_size(row: Sequence[Any]) -> int:
    """Roughly how many bytes a row's parameters take in a statement: a string's or bytes' length, 16 for any
    other value. (A plain loop: it runs for every row a shard writes.)"""
    size = 0
    for value in row:
        kind = type(value)
        size += len(value) if kind is str or kind is bytes else 16
    return size


def chunked(
    namespace: str, render: Callable[[int], str], rows: list[list[Any]], keys: list[dict[str, Any]]
) -> Iterator[Statement]:
    """Split rows into statements within MAX_ROWS / MAX_PARAMS / MAX_BYTES (at least one row each)."""
    start, params, size = 0, 0, 0
    for index, row in enumerate(rows):
        this_size = row_size(row)
        full = index - start >= MAX_ROWS or params + len(row) > MAX_PARAMS or size + this_size > MAX_BYTES
        if index > start and full:
            yield Statement(namespace, render, rows[start:index], keys[start:index])
            start, params, size = index, 0, 0
        params += len(row)
        size += this_size
    if start < len(rows):
        yield Statement(namespace, render, rows[start:], keys[start:])


def describe_key(key: dict[str, Any]) -> str:
    text = ", ".join(f"{name}={value!r}" for name, value in key.items())
    return f"({text[:200]}...)" if len(text) > 200 else f"({text})"


def converted(
    subject: str,
    table: str,
    key: dict[str, Any],
    values: dict[str, Any],
    converters: dict[str, Converter | None],
    names: Sequence[str],
) -> list[Any]:
    """The parameters of one row in ``names`` order; a value the column cannot take is a SinkError."""
    out = []
    for name in names:
        value = values[name]
        if value is UNSENT_NUMBER:
            raise RowRefused(
                f"{subject}: table `{table}`, key {describe_key(key)}, column `{name}`: the source sent NaN or "
                "±Infinity as null (wal2json before 2.6 cannot write them), so the exact value is unknown; "
                "install wal2json 2.6 or later on the source, then re-sync the table",
                table,
                key,
            )
        convert = converters[name]
        if value is not None and convert is not None:
            try:
                value = convert(value)
            except (ValueError, TypeError, OverflowError) as exc:
                raise RowRefused(
                    f"{subject}: table `{table}`, key {describe_key(key)}, column `{name}`: {exc}",
                    table,
                    key,
                ) from None
        out.append(value)
    return out


def check_columns(subject: str, schema: TableSchema, columns: Iterable[str]) -> None:
    """SinkError when a change names a column the table lacks or cannot be written (generated)."""
    for name in columns:
        column = schema.column(name)
        if column is None:
            raise ColumnMissing(f"{subject}: table `{schema.namespace}` has no column `{name}`", schema.namespace, name)
        if column.generated:
            raise SinkError(
                f"{subject}: table `{schema.namespace}`: column `{name}` is generated and cannot be written"
            )


def check_keys(subject: str, schema: TableSchema, keys: Iterable[dict[str, Any]]) -> None:
    """SinkError when a change's key is not exactly the table's primary key."""
    wanted = set(schema.primary_key)
    for key in keys:
        if set(key) != wanted:
            raise SinkError(
                f"{subject}: table `{schema.namespace}`: change keyed by {sorted(key)}, but the "
                f"primary key is {list(schema.primary_key)}"
            )


class BatchWriter(abc.ABC, Generic[Conn, Table]):
    """Applies slices of RowChanges to one target node, idempotently, in one transaction per slice.

    Idempotence: a delete removes the row with that key if there is one; an upsert inserts the row or, on
    a key conflict, overwrites exactly the columns it carries with the values it carries. Neither reads
    the row's current values, so applying a change twice leaves what applying it once did, and replaying
    any suffix of the stream in order ends where the first pass ended. UNCHANGED columns are written by
    neither (they keep whatever the target holds). A slice is collapsed first (net change per key, see
    actors.core.changes.collapse), so statements never touch one key twice.
    """

    engine: ClassVar[str]

    def __init__(self, *, node: str) -> None:
        self.node = node
        self._conn: Conn | None = None
        self._tables: dict[str, Table] = {}

    @property
    def subject(self) -> str:
        """How messages name this writer: ``postgresql node `pg```."""
        return f"{self.engine} node `{self.node}`"

    def __enter__(self) -> BatchWriter[Conn, Table]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- engine specifics -----------------------------------------------------------------------------------

    @abc.abstractmethod
    def _connect(self) -> Conn: ...

    @abc.abstractmethod
    def _close(self, conn: Conn) -> None: ...

    @abc.abstractmethod
    def _load(self, conn: Conn, namespace: str) -> Table: ...

    @abc.abstractmethod
    def _schema(self, table: Table) -> TableSchema: ...

    @abc.abstractmethod
    def _statements(self, table: Table, changes: TableChanges) -> tuple[list[Statement], list[Statement]]:
        """(deletes, upserts) for one table."""

    @abc.abstractmethod
    def _transaction(self, conn: Conn, *, commit: bool) -> contextlib.AbstractContextManager[Execute]:
        """A transaction yielding ``execute(sql, params)``; committed on exit when ``commit``, else rolled back."""

    @abc.abstractmethod
    def _driver_error(self, exc: BaseException) -> tuple[bool, str] | None:
        """(retryable, reason) for a driver error: True for connection trouble (SourceUnavailable), False
        for a refused write (SinkError); None when ``exc`` is not a driver error (a bug: let it rise)."""

    def _blames_no_row(self, exc: BaseException) -> bool:
        """A write error about the table (missing, or a privilege the writer lacks), not about a row's values: no
        row is to be set aside for it (a DBA dropping or revoking while a slice is written). Engines whose errors
        module tells these apart say so."""
        return False

    @abc.abstractmethod
    def _secrets(self) -> Sequence[str]:
        """Strings that must never appear in a message (the password)."""

    # Bidirectional groups (apply_offers): the node's version table and echo marking.

    @abc.abstractmethod
    def _lock_versions_sql(self, rows: int) -> str:
        """SELECT row_key, stored of ``rows`` row keys of one namespace, locked (FOR UPDATE); parameters:
        namespace, then the row keys."""

    def _claim_versions_sql(self, rows: int) -> str:
        """Insert ``rows`` (namespace, row_key, empty stored) rows unless they exist. Run before the locking
        read, it makes a second transaction offering a row no version exists for yet wait for the first,
        instead of both deciding against "no version"."""
        raise NotImplementedError(f"{self.subject}: bidirectional sync is not built for this engine")

    @abc.abstractmethod
    def _store_versions_sql(self, rows: int) -> str:
        """Insert-or-replace ``rows`` (namespace, row_key, stored) rows of the version table."""

    def _echo_statements(self) -> list[Statement]:
        """Statements that open every offer transaction so the node's capture knows Worker-Sync wrote it
        (none where the session itself is marked, as PostgreSQL's replication origin is)."""
        return []

    # --- the shared part ------------------------------------------------------------------------------------

    def apply(self, changes: Sequence[RowChange]) -> None:
        """Apply a slice in one target transaction: all of it, or nothing and an error.

        Raises SourceUnavailable (retry the same slice later; the connection is re-opened) or SinkError
        (the target refused a row or a table is unusable: a human must look; retrying will not help).
        """
        tables = by_table(changes)
        if not tables:
            return
        try:
            conn = self._connection()
            deletes: list[Statement] = []
            upserts: list[Statement] = []
            for table_changes in tables:
                table = self._table(conn, table_changes.namespace)
                d, u = self._statements(table, table_changes)
                deletes.extend(d)
                upserts.extend(u)
            self._run(conn, deletes + upserts)
        except SourceUnavailable:
            self._disconnect()
            raise
        except SinkError:
            for table_changes in tables:  # the table may have changed under us: read it again next time
                self._tables.pop(table_changes.namespace, None)
            raise

    def apply_offers(self, offers: Sequence[Offer]) -> list[Decision]:
        """Offer changes of a bidirectional group to this node, in one transaction with their row writes.

        Reads (and locks) the stored versions and the rows offered, decides each offer in order
        (actors.core.conflicts: never over a row its users wrote since), writes the winners' rows and
        repairs, reads the written rows back (what they hold now is the next decision's ``held``), stores
        the new records, commits. A replayed slice meets its own versions and changes nothing. Errors as in
        :meth:`apply`.
        """
        if not offers:
            return []
        decisions: list[Decision] = []
        stores: dict[RowKey, Stored] = {}

        def prepare(conn: Conn, execute: Execute) -> list[Statement]:
            keyed = [(self._row_key(conn, offer), offer) for offer in offers]
            stored = self._locked_versions(execute, {row_key for row_key, _ in keyed})
            now = self._rows_now(conn, execute, offers_by_key)
            decided, writes, decided_stores = decide_all(stored, keyed, now)
            decisions.extend(decided)
            stores.update(decided_stores)
            rows = [winner_write(offers_by_key[row_key], state) for row_key, state in writes.items()]
            statements = self._echo_statements()
            for table_changes in by_table(rows):
                deletes, upserts = self._statements(self._table(conn, table_changes.namespace), table_changes)
                statements += deletes + upserts
            return statements

        def finish(conn: Conn, execute: Execute) -> list[Statement]:
            return self._version_statements(self._read_back(conn, execute, stores, offers_by_key))

        offers_by_key: dict[RowKey, Offer] = {}
        try:
            conn = self._connection()
            for offer in offers:
                offers_by_key.setdefault(self._row_key(conn, offer), offer)
            self._run(
                conn,
                [],
                prepare=lambda execute: prepare(conn, execute),
                finish=lambda execute: finish(conn, execute),
            )
        except SourceUnavailable:
            self._disconnect()
            raise
        except SinkError:
            self._tables.clear()
            raise
        return decisions

    def _row_key(self, conn: Conn, offer: Offer) -> RowKey:
        """(namespace, digest of the key as this table's parameters): equal for one row whichever node's
        change names it (a UUID key from PostgreSQL and its text from MariaDB land on the same digest)."""
        check_keys(self.subject, self._schema(self._table(conn, offer.namespace)), [offer.key])
        return offer.namespace, self._digest(conn, offer.namespace, offer.key)

    def _digest(self, conn: Conn, namespace: str, key: dict[str, Any]) -> bytes:
        table = self._table(conn, namespace)
        primary_key = self._schema(table).primary_key
        params = converted(self.subject, namespace, key, key, self._converters(table), primary_key)
        return hashlib.sha256(encode_row(dict(zip(primary_key, params, strict=True)))).digest()

    def _current_rows(
        self, conn: Conn, reader: Any, namespace: str, keys: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """The rows with these keys as they are now, typed as this node's capture types its changes (so a
        row equals the after-image of the change that wrote it); None when the engine cannot tell.
        ``reader`` reads inside the open transaction: an Execute on SQL engines, a session on MongoDB."""
        return None

    def _rows_now(self, conn: Conn, reader: Any, offers: dict[RowKey, Offer]) -> dict[RowKey, bytes]:
        """What each offered row holds now (``row_bytes``; NO_ROW when absent), read in the open transaction
        (and locked, on SQL engines); empty (UNKNOWN) for a namespace the engine cannot read back."""
        by_namespace: dict[str, list[RowKey]] = {}
        for row_key in offers:
            by_namespace.setdefault(row_key[0], []).append(row_key)
        now: dict[RowKey, bytes] = {}
        for namespace, row_keys in by_namespace.items():
            schema = self._schema(self._table(conn, namespace))
            for start in range(0, len(row_keys), MAX_ROWS):
                chunk = row_keys[start : start + MAX_ROWS]
                rows = self._current_rows(conn, reader, namespace, [offers[row_key].key for row_key in chunk])
                if rows is None:
                    continue
                found = {
                    self._digest(conn, namespace, {k: row[k] for k in schema.primary_key}): row_bytes(row)
                    for row in rows
                }
                for row_key in chunk:
                    now[row_key] = found.get(row_key[1], NO_ROW)
        return now

    def _read_back(
        self, conn: Conn, reader: Any, stores: dict[RowKey, Stored], offers: dict[RowKey, Offer]
    ) -> dict[RowKey, Stored]:
        """``stores`` with each written row's ``held`` read back (after the writes, in the same transaction)."""
        written = {row_key: offers[row_key] for row_key, state in stores.items() if state.held == WRITTEN}
        now = self._rows_now(conn, reader, written) if written else {}
        return {
            row_key: msgspec.structs.replace(state, held=now.get(row_key, UNKNOWN)) if row_key in written else state
            for row_key, state in stores.items()
        }

    def _converters(self, table: Table) -> dict[str, Converter | None]:
        return table.converters  # type: ignore[attr-defined]  # both engines' targets carry them

    def _locked_versions(self, execute: Execute, row_keys: set[RowKey]) -> dict[RowKey, Stored | None]:
        by_namespace: dict[str, list[bytes]] = {}
        for namespace, digest in sorted(row_keys):
            by_namespace.setdefault(namespace, []).append(digest)
        stored: dict[RowKey, Stored | None] = {}
        for namespace, digests in by_namespace.items():
            for start in range(0, len(digests), MAX_ROWS):
                chunk = digests[start : start + MAX_ROWS]
                execute(self._claim_versions_sql(len(chunk)), [v for d in chunk for v in (namespace, d, b"")])
                for digest, data in execute(self._lock_versions_sql(len(chunk)), [namespace, *chunk]):
                    if data:  # empty: claimed, no version yet
                        stored[(namespace, bytes(digest))] = decode_stored(bytes(data))
        return stored

    def _version_statements(self, stores: dict[RowKey, Stored]) -> list[Statement]:
        rows = [[namespace, digest, encode_stored(state)] for (namespace, digest), state in stores.items()]
        keys = [{"namespace": namespace} for namespace, _ in stores]
        return list(chunked("worker_sync_versions", self._store_versions_sql, rows, keys))

    def _truncate_sql(self, namespace: str) -> str:
        raise SinkError(f"{self.subject}: TRUNCATE is not supported on this engine (table `{namespace}`)")

    def _add_column_sql(self, op: TableOp) -> str:
        raise SinkError(f"{self.subject}: adding columns is not supported on this engine (table `{op.namespace}`)")

    def _missing_rights(self, conn: Conn, namespace: str, *, truncate: bool, alter: bool) -> list[str]:
        """What the user lacks for `truncate: apply` / `schema_changes: apply` (engines that support them say)."""
        return [f"`truncate: apply` and `schema_changes: apply` are not supported on {self.engine} targets"]

    def check_table_rights(self, namespace: str, *, truncate: bool, alter: bool) -> None:
        """SinkError (at start-up) naming the grants `truncate: apply` / `schema_changes: apply` need and the
        user lacks, instead of a shard retrying a refused TRUNCATE or ALTER for ever."""
        try:
            conn = self._connection()
            self._table(conn, namespace)
            try:
                missing = self._missing_rights(conn, namespace, truncate=truncate, alter=alter)
            except WorkerSyncError:
                raise
            except Exception as exc:
                raise self._translate(exc, f"reading the rights on `{namespace}`") from None
        except SourceUnavailable:
            self._disconnect()
            raise
        if missing:
            raise SinkError(f"{self.subject}: table `{namespace}`: " + "; ".join(missing))

    def apply_table_op(self, op: TableOp) -> None:
        """A TRUNCATE or an added column (actors.core.table_events), alone in a transaction of its own, between
        the row changes before and after it. Idempotent, as replays need: a TRUNCATE empties the table again
        (and the changes after it follow it again); a column the table has already is not added twice. The
        cached table (and whatever is derived from it) is forgotten, so the next slice sees the new column.

        An added column is checked like the start-up mapping check (actors.core.typemap.loss): under the link's
        ``lossy_types: refuse`` a target column that cannot hold every source value is a SinkError."""
        try:
            conn = self._connection()
            self.forget(op.namespace)
            added = op.added
            if added is None:
                self._table(conn, op.namespace)  # a missing table: a SinkError naming it
                sql, doing = self._truncate_sql(op.namespace), "truncating"
            elif self._schema(self._table(conn, op.namespace)).column(op.column) is None:
                sql, doing = self._add_column_sql(op), f"adding column `{op.column}`"
            else:
                sql, doing = "", ""
            if sql:
                try:
                    with self._transaction(conn, commit=True) as execute:
                        execute(sql, [])
                except WorkerSyncError:
                    raise
                except Exception as exc:
                    error = self._translate(exc, f"{doing} `{op.namespace}`")
                    self.forget(op.namespace)
                    # Every shard adds the column: another may have added it between our look and our ALTER.
                    if added is None or self._schema(self._table(conn, op.namespace)).column(op.column) is None:
                        raise error from None
                else:
                    log.info("%s: %s `%s` (link `%s`)", self.subject, doing, op.namespace, op.link)
                self.forget(op.namespace)
            if added is not None:
                self._check_added(conn, op)
        except SourceUnavailable:
            self._disconnect()
            raise

    def _check_added(self, conn: Conn, op: TableOp) -> None:
        assert op.added is not None
        column = self._schema(self._table(conn, op.namespace)).column(op.column)
        if column is None:
            raise SinkError(f"{self.subject}: table `{op.namespace}`: column `{op.column}` was added but is not there")
        problem = loss(op.added.type, column.type)
        if problem is None:
            return
        text = f"{self.subject}: table `{op.namespace}`: added column `{op.column}`: {problem}"
        if op.lossy_types == "refuse":
            raise SinkError(
                f"{text} - change the column's type at the target, or set `lossy_types: warn` on link `{op.link}`"
            )
        log.warning("lossy type mapping accepted (`lossy_types: warn`): %s", text)

    def schema(self, namespace: str) -> TableSchema:
        """The target table's schema as the writer uses it (cached), e.g. for the start-up mapping check.

        Raises SinkError when the table is missing or has no primary key, SourceUnavailable when the
        node cannot be reached.
        """
        try:
            return self._schema(self._table(self._connection(), namespace))
        except SourceUnavailable:
            self._disconnect()
            raise

    def prepare(self, namespaces: Sequence[str]) -> None:
        """Connect and read the tables' schemas ahead of the first apply (start-up, off its critical path).
        Raises what apply would (SourceUnavailable, SinkError); apply then simply tries again."""
        try:
            conn = self._connection()
            for namespace in namespaces:
                self._table(conn, namespace)
        except SourceUnavailable:
            self._disconnect()
            raise

    def forget(self, namespace: str | None = None) -> None:
        """Drop cached table schemas (all, or one) so the next apply reads them again (after DDL)."""
        if namespace is None:
            self._tables.clear()
        else:
            self._tables.pop(namespace, None)

    def close(self) -> None:
        self._disconnect()

    def _connection(self) -> Conn:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                self._close(conn)

    def _table(self, conn: Conn, namespace: str) -> Table:
        table = self._tables.get(namespace)
        if table is None:
            try:
                table = self._load(conn, namespace)
            except ConfigError as exc:
                raise SinkError(f"{self.subject}: {exc.message}") from None
            except Exception as exc:
                raise self._translate(exc, f"reading table `{namespace}`") from None
            self._tables[namespace] = table
        return table

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, "***")
        return text

    def _reason(self, exc: Exception) -> tuple[bool, str]:
        """(retryable, reason without secrets); re-raises what is not a driver error."""
        found = self._driver_error(exc)
        if found is None:
            raise exc
        return found[0], self._scrub(found[1])

    def _translate(self, exc: Exception, doing: str) -> WorkerSyncError:
        retryable, reason = self._reason(exc)
        kind = SourceUnavailable if retryable else SinkError
        return kind(f"{self.subject}: {doing}: {reason}")

    def _run(
        self,
        conn: Conn,
        statements: list[Statement],
        prepare: Callable[[Execute], list[Statement]] | None = None,
        finish: Callable[[Execute], list[Statement]] | None = None,
    ) -> None:
        """Run statements in one transaction: ``prepare`` (reads, then the statements to run) goes first,
        ``finish`` (reads after the writes, then more statements) last."""
        done = 0
        step = "reading row versions and rows"
        try:
            with self._transaction(conn, commit=True) as execute:
                if prepare is not None:
                    statements = prepare(execute) + statements
                step = ""
                for done, statement in enumerate(statements):  # noqa: B007 (read after the loop on failure)
                    execute(statement.sql, statement.params)
                if finish is not None:
                    step = "reading written rows back"
                    tail = finish(execute)
                    step = "storing row versions"
                    for statement in tail:
                        execute(statement.sql, statement.params)
        except WorkerSyncError:
            raise
        except Exception as exc:
            retryable, reason = self._reason(exc)
            if step:  # ``prepare`` or ``finish`` failed: a passing error, or the version table is unusable
                if retryable:
                    raise SourceUnavailable(
                        f"{self.subject}: {step}: {reason}; nothing of the slice was committed, retry it"
                    ) from None
                raise SinkError(
                    f"{self.subject}: {step}: {reason} (if the version table is missing, run `worker-sync init` "
                    "to create the tables bidirectional sync needs)"
                ) from None
            namespace = statements[done].namespace
            if retryable:
                raise SourceUnavailable(
                    f"{self.subject}: writing to `{namespace}`: {reason}; nothing of the slice was committed, retry it"
                ) from None
            raise self._culprit(conn, statements, done, reason) from None

    def _culprit(self, conn: Conn, statements: list[Statement], failed: int, reason: str) -> SinkError:
        """The SinkError naming the row that made statement ``failed`` fail (found by replaying it row by
        row after its predecessors, in a transaction that is rolled back)."""
        statement = statements[failed]
        subject = f"{self.subject}: table `{statement.namespace}`"
        try:
            with self._transaction(conn, commit=False) as execute:
                for earlier in statements[:failed]:
                    execute(earlier.sql, earlier.params)
                for index in range(len(statement.rows)):
                    single = statement.single(index)
                    try:
                        execute(single.sql, single.params)
                    except Exception as exc:
                        retryable, row_reason = self._reason(exc)
                        if retryable:
                            raise
                        if self._blames_no_row(exc):  # the table is gone or not ours to write: retry the slice
                            break
                        return RowRefused(
                            f"{subject}, key {describe_key(single.keys[0])}: {row_reason}",
                            statement.namespace,
                            single.keys[0],
                        )
        except Exception as exc:
            self._disconnect()
            log.warning(
                "%s node %s: could not replay a failed write row by row: %s",
                self.engine,
                self.node,
                self._scrub(str(exc)),
            )
        keys = ", ".join(describe_key(k) for k in statement.keys[:5])
        more = f" and {len(statement.keys) - 5} more" if len(statement.keys) > 5 else ""
        return SinkError(f"{subject}, one of the keys {keys}{more}: {reason}; nothing of the slice was applied")


def winner_write(offer: Offer, state: Stored) -> RowChange:
    """The write that puts ``state`` (a winner, or a stored winner to repair) into the offered row."""
    if state.row is None:
        return RowChange(offer.namespace, "delete", offer.key, None)
    return RowChange(offer.namespace, "upsert", offer.key, state.row)
