"""PostgresWriter: applies slices of RowChanges to a PostgreSQL target (see actors.engines.sink).

Statements per table: ``DELETE ... WHERE (pk) IN (...)`` and ``INSERT ... VALUES (...), (...) ON CONFLICT
(pk) DO UPDATE SET col = EXCLUDED.col`` for the columns each group of rows carries. Every parameter is cast
to its column's type *without* modifiers (``varchar``, not ``varchar(64)``): an explicit cast to
``varchar(64)`` would silently truncate, whereas the assignment to the column raises on a value too long.
The session runs in UTC; values are made UTC in Python anyway (naive datetimes into timestamptz are taken
as UTC).

Row statements are written with PostgreSQL's own ``$n`` placeholders and run through a ``RawCursor``:
psycopg caches its ``%s`` -> ``$n`` rewrite only for statements of at most 50 parameters, so a 1,000-row
upsert was re-parsed by psycopg's Python tokenizer every time (over half of an applier shard's CPU in the
MariaDB -> PostgreSQL drain, issue 19). The rendered text per (casts, rows) is cached instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Json, Jsonb

from actors.core import convert
from actors.core.changes import TableChanges
from actors.core.errors import ObjectMissing, PrivilegeMissing, SinkError, SourceUnavailable, WorkerSyncError
from actors.core.table_events import TableOp
from actors.core.typemap import ColumnType, TableSchema
from actors.engines.postgresql import ddl, versions
from actors.engines.postgresql.catalog import TableInfo, row_from_text
from actors.engines.postgresql.catalog import load_table as load_captured_table
from actors.engines.postgresql.connection import conninfo_for
from actors.engines.postgresql.errors import translate
from actors.engines.postgresql.schema import PgTable, load_table, split_namespace
from actors.engines.sink import (
    BatchWriter,
    Converter,
    Execute,
    Statement,
    check_columns,
    check_keys,
    chunked,
    converted,
)
from config.model import PostgresNode

#: A refused login: invalid_authorization_specification (no pg_hba.conf entry, unknown role) and
#: invalid_password. A human must fix the node's user, password or pg_hba.conf; retrying will not help.
AUTH_SQLSTATES = frozenset({"28000", "28P01"})
#: libpq raises a refused login at connect time without a SQLSTATE: these are the server's and libpq's words.
_AUTH_WORDS = ("authentication failed", "no pg_hba.conf entry", "no password supplied")


def authentication_failed(exc: psycopg.Error) -> bool:
    """Whether ``exc`` is the server (or libpq) refusing to log the user in."""
    if exc.sqlstate is not None:
        return exc.sqlstate in AUTH_SQLSTATES
    return isinstance(exc, psycopg.OperationalError) and any(words in str(exc) for words in _AUTH_WORDS)


def quote(identifier: str) -> str:
    """A double-quoted identifier, with % doubled for psycopg's placeholder syntax."""
    return '"' + identifier.replace('"', '""').replace("%", "%%") + '"'


def quote_native(identifier: str) -> str:
    """A double-quoted identifier for a statement with ``$n`` placeholders (% is not special there)."""
    return '"' + identifier.replace('"', '""') + '"'


class NativeSql(str):
    """A statement with ``$n`` placeholders: run by a RawCursor, which passes it to PostgreSQL as it is."""

    __slots__ = ()


@functools.lru_cache(maxsize=256)
def native_rows(casts: tuple[str, ...], rows: int) -> str:
    """``($1::c1, $2::c2), ($3::c1, $4::c2), ...`` for ``rows`` rows of parameters cast to ``casts``."""
    width = len(casts)
    return ", ".join(
        "(" + ", ".join(f"${row * width + i}::{cast}" for i, cast in enumerate(casts, 1)) + ")" for row in range(rows)
    )


def _json(value: Any) -> Json:
    return Json(value, dumps=convert.json_text)


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=convert.json_text)


def _timestamp(value: Any) -> Any:
    return convert.utc_naive(value) if isinstance(value, dt.datetime) else value


def _timestamptz(value: Any) -> Any:
    return convert.utc_aware(value) if isinstance(value, dt.datetime) else value


def _interval(value: Any) -> Any:
    return convert.duration(value) if isinstance(value, dt.time) else value


def _time(value: Any) -> Any:
    return convert.time_of_day(value) if isinstance(value, dt.timedelta) else value


_BY_FAMILY: dict[str, Converter] = {
    "integer": convert.integer,
    "decimal": convert.integer,  # bool -> int: PostgreSQL has no boolean -> numeric cast
    "float": convert.integer,
    "boolean": convert.boolean,
    "text": convert.text,
    "bytes": convert.binary,
    "uuid": convert.uuid_value,
    "time": _time,
    "interval": _interval,
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
}


def value_converter(kind: ColumnType) -> Converter | None:
    """How a captured value becomes a parameter for a column of type ``kind``; None: as it is."""
    if kind.family == "array":
        element = value_converter(kind.element) if kind.element is not None else None

        def array(value: Any) -> Any:
            if not isinstance(value, list | tuple | set | frozenset):
                return value
            items = sorted(value) if isinstance(value, set | frozenset) else value
            return [v if v is None or element is None else element(v) for v in items]

        return array
    if kind.family == "bit":
        return lambda value: convert.bit_string(value, kind.length, kind.fixed)
    if kind.family == "json":
        return _jsonb if kind.name == "jsonb" else _json
    return _BY_FAMILY.get(kind.family)


class _Target:
    """A target table with its converters and the SQL fragments its statements are built from."""

    def __init__(self, table: PgTable) -> None:
        self.schema: TableSchema = table.schema
        self.table = table
        schema, name = split_namespace(table.schema.namespace)
        self.qualified = f"{quote(schema)}.{quote(name)}"
        self.order = {c.name: i for i, c in enumerate(table.schema.columns)}
        self.converters = {c.name: value_converter(c.type) for c in table.schema.columns}
        self.placeholder = {name: f"%s::{cast.replace('%', '%%')}" for name, cast in table.casts.items()}
        self.casts = table.casts
        self.native = f"{quote_native(schema)}.{quote_native(name)}"


class PostgresWriter(BatchWriter[psycopg.Connection[Any], _Target]):
    """Writes RowChanges to one PostgreSQL database (a libpq conninfo; TLS settings included).

    Build it with ``PostgresWriter.for_node(name, node, password)`` from the config (conninfo_for applies
    the node's TLS mode and files), or with a conninfo directly. See BatchWriter for idempotence.
    """

    engine = "postgresql"

    def __init__(self, conninfo: str, *, node: str, echo_writer: str | None = None) -> None:
        super().__init__(node=node)
        self._conninfo = conninfo
        self._password = str(conninfo_to_dict(conninfo).get("password") or "")
        #: Set for nodes in a bidirectional group: the session runs under replication origin
        #: ``worker_sync_<echo_writer>``, so the node's capture recognises these writes as echoes.
        self._origin = None if echo_writer is None else versions.ORIGIN_PREFIX + echo_writer
        #: Tables as the capture reads them (for _current_rows).
        self._captured: dict[str, TableInfo] = {}

    @classmethod
    def for_node(
        cls, name: str, node: PostgresNode, password: str | None, *, echo_writer: str | None = None
    ) -> PostgresWriter:
        conninfo = conninfo_for(node, password, application_name=f"worker-sync-apply:{name}")
        return cls(conninfo, node=name, echo_writer=echo_writer)

    def _secrets(self) -> Sequence[str]:
        return (self._password,)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
            conn.execute("SET TIME ZONE 'UTC'")
        except psycopg.Error as exc:
            raise self._translate(exc, "connecting") from None
        if self._origin is not None:
            try:
                versions.mark_session(conn, self._origin)
            except psycopg.errors.ObjectInUse as exc:  # a crashed predecessor's session has not ended yet
                conn.close()
                raise SourceUnavailable(f"{self.subject}: replication origin busy: {exc}; retrying") from None
            except psycopg.Error as exc:
                conn.close()
                retryable, reason = self._reason(exc)
                kind = SourceUnavailable if retryable else SinkError
                raise kind(
                    f"{self.subject}: cannot mark writes with replication origin `{self._origin}`: {reason}; "
                    "run `worker-sync init` (it grants the writer EXECUTE on the replication origin functions)"
                ) from None
        return conn

    def _close(self, conn: psycopg.Connection[Any]) -> None:
        conn.close()

    def _load(self, conn: psycopg.Connection[Any], namespace: str) -> _Target:
        return _Target(load_table(conn, namespace))

    def _schema(self, table: _Target) -> TableSchema:
        return table.schema

    def _truncate_sql(self, namespace: str) -> str:
        return ddl.truncate_sql(namespace)

    def _missing_rights(
        self, conn: psycopg.Connection[Any], namespace: str, *, truncate: bool, alter: bool
    ) -> list[str]:
        return ddl.missing_rights(conn, namespace, truncate=truncate, alter=alter)

    def _add_column_sql(self, op: TableOp) -> str:
        assert op.added is not None
        return ddl.add_column_sql(op.namespace, op.column, op.added, op.source_engine)

    def forget(self, namespace: str | None = None) -> None:
        super().forget(namespace)
        if namespace is None:
            self._captured.clear()
        else:
            self._captured.pop(namespace, None)

    def _blames_no_row(self, exc: BaseException) -> bool:
        return isinstance(translate(exc), ObjectMissing | PrivilegeMissing)

    def _driver_error(self, exc: BaseException) -> tuple[bool, str] | None:
        if isinstance(exc, psycopg.Error) and authentication_failed(exc):  # a wrong password: not retryable
            return False, f"authentication failed: {str(exc).strip()}"
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            # 08 connection, 40 serialization/deadlock, 53 resources, 57 shutdown/cancel, 58 system: retry.
            return True, str(exc).strip()
        if isinstance(exc, psycopg.Error):
            # Only the primary message: the detail may quote row values, which do not belong in logs.
            diag = exc.diag
            return False, f"{(diag.message_primary or str(exc)).strip()} (SQLSTATE {exc.sqlstate})"
        return None

    @contextlib.contextmanager
    def _transaction(self, conn: psycopg.Connection[Any], *, commit: bool) -> Iterator[Execute]:
        with conn.transaction(force_rollback=not commit), conn.cursor() as cur, psycopg.RawCursor(conn) as raw:

            def execute(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
                run = raw if type(sql) is NativeSql else cur
                run.execute(sql, params, prepare=False)
                return run.fetchall() if run.description is not None else []

            yield execute

    def _current_rows(
        self, conn: psycopg.Connection[Any], execute: Execute, namespace: str, keys: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """Read (and locked) as the capture's snapshot reads (every column as text, then typed like a
        streamed change)."""
        info = self._captured.get(namespace)
        if info is None:
            try:
                info = self._captured[namespace] = load_captured_table(conn, namespace, stream=f"writer {self.node}")
            except WorkerSyncError:
                return None
        table = self._table(conn, namespace)
        key = table.schema.primary_key
        select_list = ", ".join(f"{quote(c)}::text" for c in info.columns)
        row_sql = "(" + ", ".join(table.placeholder[k] for k in key) + ")"
        sql = (
            f"SELECT {select_list} FROM {table.qualified} WHERE ({', '.join(quote(k) for k in key)}) "
            f"IN ({', '.join([row_sql] * len(keys))}) FOR UPDATE"
        )
        params = [p for k in keys for p in converted(self.subject, namespace, k, k, table.converters, key)]
        return [row_from_text(info, values) for values in execute(sql, params)]

    def _lock_versions_sql(self, rows: int) -> str:
        return versions.lock_sql(rows)

    def _claim_versions_sql(self, rows: int) -> str:
        return versions.claim_sql(rows)

    def _store_versions_sql(self, rows: int) -> str:
        return versions.store_sql(rows)

    def _statements(self, table: _Target, changes: TableChanges) -> tuple[list[Statement], list[Statement]]:
        ns, key = table.schema.namespace, table.schema.primary_key
        deletes: list[Statement] = []
        if changes.deletes:
            casts = tuple(table.casts[k] for k in key)
            prefix = f"DELETE FROM {table.native} WHERE ({', '.join(quote_native(k) for k in key)}) IN ("

            def render_delete(n: int) -> str:
                return NativeSql(prefix + native_rows(casts, n) + ")")

            check_keys(self.subject, table.schema, changes.deletes)
            rows = [converted(self.subject, ns, k, k, table.converters, key) for k in changes.deletes]
            deletes.extend(chunked(ns, render_delete, rows, changes.deletes))
        upserts: list[Statement] = []
        for names, group in changes.upserts.items():
            check_columns(self.subject, table.schema, names)
            check_keys(self.subject, table.schema, (k for k, _ in group))
            columns = sorted(names, key=table.order.__getitem__)
            upserts.extend(
                chunked(
                    ns,
                    _upsert_sql(table, columns),
                    [converted(self.subject, ns, k, row, table.converters, columns) for k, row in group],
                    [k for k, _ in group],
                )
            )
        return deletes, upserts


def _upsert_sql(table: _Target, columns: list[str]) -> Any:
    key = table.schema.primary_key
    names = ", ".join(quote_native(c) for c in columns)
    casts = tuple(table.casts[c] for c in columns)
    overriding = " OVERRIDING SYSTEM VALUE" if table.table.identity_always & set(columns) else ""
    updates = [f"{quote_native(c)} = EXCLUDED.{quote_native(c)}" for c in columns if c not in key]
    action = "DO UPDATE SET " + ", ".join(updates) if updates else "DO NOTHING"
    prefix = f"INSERT INTO {table.native} ({names}){overriding} VALUES "
    suffix = f" ON CONFLICT ({', '.join(quote_native(k) for k in key)}) {action}"

    def render(n: int) -> str:
        return NativeSql(prefix + native_rows(casts, n) + suffix)

    return render
