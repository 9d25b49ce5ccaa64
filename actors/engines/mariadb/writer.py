"""MariaDbWriter: applies slices of RowChanges to a MariaDB/MySQL target (see actors.engines.sink).

Statements per table: ``DELETE ... WHERE (pk) IN (...)`` and ``INSERT ... VALUES (...), (...) ON DUPLICATE
KEY UPDATE col = VALUES(col)`` for the columns each group of rows carries. The session runs with
``time_zone = '+00:00'`` (TIMESTAMP values are written as UTC) and strict mode for every table
(``STRICT_ALL_TABLES``: a value too long or out of range is an error, never truncated with a warning).

pymysql interpolates parameters on the client, so values are made into what MariaDB parses exactly:
Decimals as fixed-point text (``1E+3`` would be read as a float), TIME as ``[-]HH:MM:SS.ffffff`` (pymysql
writes negative durations wrongly), NaN/Infinity refused (MariaDB has no such numbers).

ON DUPLICATE KEY UPDATE fires on any unique key, not only the primary key: a target table with another
unique key that a change collides with gets that row updated. Sync targets should have only their
primary key unique (or the same unique keys as the source, whose data already satisfies them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pymysql
from pymysql.constants import SERVER_STATUS

from actors.core import convert
from actors.core.changes import TableChanges
from actors.core.errors import ObjectMissing, PrivilegeMissing, RowRefused
from actors.core.table_events import TableOp
from actors.core.typemap import ColumnType, TableSchema
from actors.engines.mariadb import ddl, versions
from actors.engines.mariadb.connection import ConnectParams, connect_kwargs
from actors.engines.mariadb.errors import translate
from actors.engines.mariadb.literals import Literal, Sql, column_literal, escape, row_literal
from actors.engines.mariadb.schema import load_tables, split_namespace
from actors.engines.mariadb.table_schema import table_schema
from actors.engines.mariadb.values import SnapshotQuery, snapshot_query
from actors.engines.sink import (
    BatchWriter,
    Converter,
    Execute,
    Statement,
    check_columns,
    check_keys,
    chunked,
    converted,
    describe_key,
    row_size,
)
from config.model import MySqlNode

# READ COMMITTED: shards write disjoint keys, so under REPEATABLE READ their only conflicts were
# InnoDB gap locks from one shard's DELETE ... IN / upserts blocking another's (deadlocks seen in the
# lag bench); READ COMMITTED takes no gap locks for these statements.
_SESSION = "SET time_zone = '+00:00', sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')"
_ISOLATION = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
#: How much of max_allowed_packet one row may take: the rest is the statement's text and the escaping of
#: its values (a quote or backslash in a string doubles).
PACKET_SHARE = 0.5

#: Server and client error codes where retrying later may succeed.
_RETRYABLE = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1205,  # lock wait timeout
        1213,  # deadlock
        1317,  # query interrupted
        1927,  # connection killed
        4031,  # disconnected for inactivity
        2002,
        2003,
        2006,
        2013,
        2055,  # cannot connect / server gone / lost connection
    }
)

#: Access denied for the user (a wrong user or password): a human must fix the node's login, not retryable.
AUTH_FAILED = 1045


def quote(identifier: str) -> str:
    """A backticked identifier, with % doubled for pymysql's placeholder syntax."""
    return "`" + identifier.replace("`", "``").replace("%", "%%") + "`"


def _exact(value: Any) -> Any:
    """Values pymysql would write inexactly: Decimal (exponent form) and NaN/Infinity floats."""
    if isinstance(value, decimal.Decimal):
        return convert.decimal_text(value)
    if isinstance(value, float):
        return convert.finite(value)
    return value


def _number(value: Any) -> Any:
    return _exact(convert.integer(value))


def _datetime(value: Any) -> Any:
    return convert.utc_naive(value) if isinstance(value, dt.datetime) else value


def _time(value: Any) -> Any:
    if isinstance(value, dt.timedelta):
        return convert.duration_text(value)
    if isinstance(value, dt.time):
        return convert.duration_text(convert.duration(value))
    return value


def _uuid(value: Any) -> Any:
    value = convert.uuid_value(value)
    return str(value) if isinstance(value, uuid.UUID) else value


_BY_FAMILY: dict[str, Converter] = {
    "integer": _number,
    "boolean": _number,
    "decimal": _number,
    "float": _number,
    "text": convert.text,
    "bytes": convert.binary,
    "json": convert.json_text,
    "timestamp": _datetime,
    "timestamptz": _datetime,  # naive UTC under the session's time_zone '+00:00'
    "interval": _time,  # MariaDB TIME is a duration
    "time": _time,
    "set": convert.set_text,
    "bit": convert.bit_integer,
    "uuid": _uuid,
}


def value_converter(kind: ColumnType) -> Converter | None:
    """How a captured value becomes a parameter for a column of type ``kind``; None: as it is."""
    return _BY_FAMILY.get(kind.family)


class _Target:
    def __init__(self, schema: TableSchema) -> None:
        self.schema = schema
        database, table = split_namespace(schema.namespace)
        self.qualified = f"{quote(database)}.{quote(table)}"
        self.order = {c.name: i for i, c in enumerate(schema.columns)}
        self.converters = {c.name: value_converter(c.type) for c in schema.columns}
        self.literals = {c.name: column_literal(c.type, self.converters[c.name]) for c in schema.columns}
        #: Column list -> each column's literal function (a slice's upserts come in a few column sets).
        self._plans: dict[tuple[str, ...], tuple[tuple[str, Literal], ...]] = {}

    def plan(self, columns: Sequence[str]) -> tuple[tuple[str, Literal], ...]:
        names = tuple(columns)
        plan = self._plans.get(names)
        if plan is None:
            plan = self._plans[names] = tuple((name, self.literals[name]) for name in names)
        return plan


class MariaDbWriter(BatchWriter[pymysql.Connection, _Target]):
    """Writes RowChanges to one MariaDB/MySQL server.

    Takes the capture side's ``ConnectParams`` (host, port, user, password, TLS): build it with
    ``MariaDbWriter.for_node(name, node, password)`` from a MySqlNode, whose ``tls.mode`` maps to pymysql's
    ssl arguments as in actors.engines.mariadb.connection. See BatchWriter for idempotence.
    """

    engine = "mariadb"

    def __init__(
        self,
        params: ConnectParams,
        *,
        node: str,
        database: str = "",
        echo_writer: str | None = None,
        flavor: str = "mariadb",
    ) -> None:
        super().__init__(node=node)
        self._params = params
        #: The node's database, home of the version and echo marker tables (bidirectional groups).
        self._database = database
        self._echo_writer = echo_writer
        self._flavor = flavor
        #: How the capture's snapshot reads each table (for _current_rows).
        self._captured: dict[str, SnapshotQuery] = {}
        #: The server's max_allowed_packet (read at connect; MariaDB's default until then).
        self._max_packet = 16 << 20
        #: Rows are rendered as SQL literals here (actors.engines.mariadb.literals) unless the session has
        #: NO_BACKSLASH_ESCAPES, where pymysql's own binding (which quotes differently then) is kept.
        self._literal_rows = True

    @classmethod
    def for_node(
        cls, name: str, node: MySqlNode, password: str | None, *, echo_writer: str | None = None
    ) -> MariaDbWriter:
        params = ConnectParams.for_node(node, password)
        return cls(params, node=name, database=node.database, echo_writer=echo_writer, flavor=node.flavor)

    def _secrets(self) -> Sequence[str]:
        return (self._params.password,)

    def _connect(self) -> pymysql.Connection:
        kwargs = connect_kwargs(self._params)
        # The server's max_allowed_packet is the limit (checked per row); pymysql's own 16 MiB is not.
        kwargs.update(init_command=_SESSION, autocommit=True, max_allowed_packet=1 << 30)
        try:
            conn = pymysql.connect(**kwargs)
            with conn.cursor() as cursor:
                cursor.execute(_ISOLATION)
                cursor.execute("SELECT @@max_allowed_packet")
                (self._max_packet,) = cursor.fetchone() or (self._max_packet,)
            status: int = conn.server_status  # type: ignore[attr-defined]  # missing from types-PyMySQL
            self._literal_rows = not status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
            return conn
        except (pymysql.MySQLError, OSError) as exc:
            raise self._translate(exc, f"connecting to {self._params.host}:{self._params.port}") from None

    def _close(self, conn: pymysql.Connection) -> None:
        conn.close()

    def _load(self, conn: pymysql.Connection, namespace: str) -> _Target:
        return _Target(table_schema(conn, namespace))

    def _schema(self, table: _Target) -> TableSchema:
        return table.schema

    def _truncate_sql(self, namespace: str) -> str:
        return ddl.truncate_sql(namespace)

    def _missing_rights(self, conn: pymysql.Connection, namespace: str, *, truncate: bool, alter: bool) -> list[str]:
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
        if isinstance(exc, pymysql.err.InterfaceError | OSError):
            return True, str(exc) or type(exc).__name__
        if isinstance(exc, pymysql.MySQLError):
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
            if code == AUTH_FAILED:
                return False, f"authentication failed: {message} (error {code})"
            return code in _RETRYABLE, f"{message} (error {code})"
        return None

    @contextlib.contextmanager
    def _transaction(self, conn: pymysql.Connection, *, commit: bool) -> Iterator[Execute]:
        conn.begin()
        try:
            with conn.cursor() as cur:

                def execute(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
                    if params and type(params[0]) is Sql:  # rows rendered already: splice them in
                        cur.execute(sql % tuple(params))
                    else:
                        cur.execute(sql, params)
                    return list(cur.fetchall()) if cur.description is not None else []

                yield execute
        except BaseException:
            with contextlib.suppress(pymysql.MySQLError, OSError):  # the original error says more
                conn.rollback()
            raise
        if commit:
            conn.commit()
        else:
            conn.rollback()

    def _current_rows(
        self, conn: pymysql.Connection, execute: Execute, namespace: str, keys: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """Read (and locked) as the capture's snapshot reads (values typed like the binlog's)."""
        query = self._captured.get(namespace)
        if query is None:
            info = load_tables(conn, [namespace], flavor=self._flavor).get(namespace)
            if info is None:
                return None
            query = self._captured[namespace] = snapshot_query(info)
        table = self._table(conn, namespace)
        key = table.schema.primary_key
        sql = (
            f"SELECT {query.select_list} FROM {table.qualified} WHERE ({', '.join(quote(k) for k in key)}) "
            f"IN ({_rows(len(keys), len(key))}) FOR UPDATE"
        )
        params = [p for k in keys for p in converted(self.subject, namespace, k, k, table.converters, key)]
        names = query.column_names
        return [query.plan.apply(dict(zip(names, raw, strict=True))) for raw in execute(sql, params)]

    def _lock_versions_sql(self, rows: int) -> str:
        return versions.lock_sql(self._database, rows)

    def _claim_versions_sql(self, rows: int) -> str:
        return versions.claim_sql(self._database, rows)

    def _store_versions_sql(self, rows: int) -> str:
        return versions.store_sql(self._database, rows)

    def _echo_statements(self) -> list[Statement]:
        if self._echo_writer is None:
            return []
        return [Statement(versions.ECHO, lambda _n: versions.echo_sql(self._database), [[self._echo_writer]], [{}])]

    def _statements(self, table: _Target, changes: TableChanges) -> tuple[list[Statement], list[Statement]]:
        ns, key = table.schema.namespace, table.schema.primary_key
        literal = self._literal_rows
        deletes: list[Statement] = []
        rows: list[list[Any]]
        if changes.deletes:
            check_keys(self.subject, table.schema, changes.deletes)
            if literal:
                plan = table.plan(key)
                rows = [[self._row(table, plan, k, k)] for k in changes.deletes]
            else:
                rows = [converted(self.subject, ns, k, k, table.converters, key) for k in changes.deletes]
            deletes.extend(chunked(ns, _delete_sql(table, literal), rows, changes.deletes))
        upserts: list[Statement] = []
        for names, group in changes.upserts.items():
            check_columns(self.subject, table.schema, names)
            check_keys(self.subject, table.schema, (k for k, _ in group))
            columns = sorted(names, key=table.order.__getitem__)
            if literal:
                plan = table.plan(columns)
                rows = [[self._row(table, plan, k, row)] for k, row in group]
                # A literal is never shorter than row_size's estimate minus 16 per column: check the rare
                # long row exactly, on its parameters.
                limit = self._max_packet * PACKET_SHARE - 16 * len(columns)
                for (k, values), (text,) in zip(group, rows, strict=True):
                    if len(text) > limit:
                        self._check_packet(ns, k, converted(self.subject, ns, k, values, table.converters, columns))
            else:
                rows = [converted(self.subject, ns, k, values, table.converters, columns) for k, values in group]
                for (k, _), params in zip(group, rows, strict=True):
                    self._check_packet(ns, k, params)
            upserts.extend(chunked(ns, _upsert_sql(table, columns, literal), rows, [k for k, _ in group]))
        return deletes, upserts

    def _row(
        self, table: _Target, plan: tuple[tuple[str, Literal], ...], key: dict[str, Any], values: dict[str, Any]
    ) -> Sql:
        """One row's ``(...)`` literal; a value the fast path cannot render goes through ``converted``, which
        raises the RowRefused (naming the column) that the row would have met before."""
        try:
            return row_literal(plan, values)
        except Exception:  # whatever it was, the reference path below raises it, or renders the row its way
            params = converted(
                self.subject, table.schema.namespace, key, values, table.converters, [n for n, _ in plan]
            )
            return Sql("(" + ",".join([escape(p) for p in params]) + ")")

    def _check_packet(self, namespace: str, key: dict[str, Any], row: list[Any]) -> None:
        """A row the server would refuse as a whole packet: the server only says "gone away" (2006) and drops
        the connection, which reads as a passing fault; name the real cause instead, for this row alone."""
        size = row_size(row)
        if size > self._max_packet * PACKET_SHARE:
            raise RowRefused(
                f"{self.subject}: table `{namespace}`, key {describe_key(key)}: row of {size / 2**20:.1f} MiB "
                f"exceeds the target's max_allowed_packet ({self._max_packet / 2**20:.1f} MiB)",
                namespace,
                key,
            )


def _rows(n: int, width: int) -> str:
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * n)


def _values_sql(width: int, literal: bool) -> Callable[[int], str]:
    """The VALUES list for n rows: rendered rows (one ``%s`` each) or ``width`` parameters per row."""
    if literal:
        return lambda n: ", ".join(["%s"] * n)
    return lambda n: _rows(n, width)


def _delete_sql(table: _Target, literal: bool = False) -> Callable[[int], str]:
    key = table.schema.primary_key
    rows = _values_sql(len(key), literal)
    prefix = f"DELETE FROM {table.qualified} WHERE ({', '.join(quote(k) for k in key)}) IN ("
    return lambda n: prefix + rows(n) + ")"


def _upsert_sql(table: _Target, columns: list[str], literal: bool = False) -> Callable[[int], str]:
    key = table.schema.primary_key
    updates = [f"{quote(c)} = VALUES({quote(c)})" for c in columns if c not in key]
    if not updates:  # only key columns: nothing to update, but the statement must not fail on a duplicate
        updates = [f"{quote(key[0])} = {quote(key[0])}"]
    rows = _values_sql(len(columns), literal)
    prefix = f"INSERT INTO {table.qualified} ({', '.join(quote(c) for c in columns)}) VALUES "
    suffix = " ON DUPLICATE KEY UPDATE " + ", ".join(updates)
    return lambda n: prefix + rows(n) + suffix
