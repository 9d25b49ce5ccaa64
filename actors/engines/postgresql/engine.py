"""The PostgreSQL engine object: what code outside actors/engines/ asks of a PostgreSQL node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import psycopg

from actors.core.errors import DatabaseError, SourceMisconfigured, SourceUnavailable, WorkerSyncError
from actors.core.events import AddedColumn, Position
from actors.core.retention import Retention
from actors.core.streams import StreamSpec
from actors.core.typemap import TableSchema
from actors.engines.base import ChangeSource, DumpCommand, Engine, first_line, unreachable
from actors.engines.postgresql import errors, probe, versions
from actors.engines.postgresql.connection import conninfo_for
from actors.engines.rows import RowReader
from actors.engines.sink import BatchWriter
from config.model import PostgresNode
from config.secrets import node_password


class PostgresEngine(Engine[PostgresNode]):
    name = "postgresql"
    admin_flags = ""
    verifiable = True
    needs_echo_marker = False  # replication origins mark its echoes

    def build_source(self, spec: StreamSpec) -> ChangeSource:
        from actors.engines.postgresql.source import PostgresSource

        node = spec.node
        assert isinstance(node, PostgresNode)
        return PostgresSource(
            stream=spec.stream,
            node=spec.node_name,
            conninfo=conninfo_for(
                node, node_password(spec.node_name, node), application_name=f"worker-sync:{spec.stream}"
            ),
            slot=node.slot_name,
            tables=spec.tables,
            snapshot_chunk_rows=spec.snapshot_chunk_rows,
            resnapshot=spec.resnapshot,
            decoder=node.decoder,
            publication=node.publication,
        )

    def build_writer(
        self, node_name: str, node: PostgresNode, *, echo_writer: str | None = None
    ) -> BatchWriter[Any, Any]:
        from actors.engines.postgresql.writer import PostgresWriter

        return PostgresWriter.for_node(node_name, node, node_password(node_name, node), echo_writer=echo_writer)

    def connect(
        self, name: str, node: PostgresNode, password: str | None, *, user: str | None = None, app: str
    ) -> psycopg.Connection[Any]:
        if user is not None:
            node = msgspec.structs.replace(node, username=user)
        try:
            return psycopg.connect(conninfo_for(node, password, application_name=app), autocommit=True)
        except psycopg.Error as exc:
            raise unreachable(name, node, exc) from None

    def row_reader(self, name: str, node: PostgresNode) -> RowReader:
        from actors.engines.postgresql.rows import PgRowReader

        return PgRowReader(name, self.connect(name, node, node_password(name, node), app="worker-sync verify"))

    def retention(self, name: str, node: PostgresNode, position: Position | None) -> Retention | None:
        from actors.engines.postgresql.retention import slot_retention

        with self.connect(name, node, node_password(name, node), app="worker-sync:retention") as conn:
            return slot_retention(conn, node.slot_name, started=position is not None)

    def source_columns(self, name: str, node: PostgresNode, namespace: str) -> dict[str, AddedColumn]:
        from actors.engines.postgresql.ddl import describe_columns

        conninfo = conninfo_for(node, node_password(name, node), application_name="worker-sync:preflight")
        try:
            with psycopg.connect(conninfo) as conn:
                return describe_columns(conn, namespace)
        except psycopg.OperationalError as exc:
            raise SourceUnavailable(f"postgresql node `{name}`: cannot connect: {exc}") from None

    def source_schema(self, name: str, node: PostgresNode, namespace: str) -> TableSchema:
        from actors.engines.postgresql.schema import table_schema
        from actors.engines.postgresql.writer import authentication_failed

        conninfo = conninfo_for(node, node_password(name, node), application_name="worker-sync:preflight")
        try:
            with psycopg.connect(conninfo) as conn:
                return table_schema(conn, namespace)
        except psycopg.OperationalError as exc:
            if authentication_failed(exc):  # a wrong user or password: exit 2, not "unreachable"
                raise SourceMisconfigured(f"postgresql node `{name}`: authentication failed: {exc}") from None
            raise SourceUnavailable(f"postgresql node `{name}`: cannot connect: {exc}") from None

    def before_image_missing(self, name: str, node: PostgresNode, namespace: str) -> str | None:
        schema, _, table = namespace.partition(".")
        with self.connect(name, node, node_password(name, node), app="worker-sync:preflight") as conn:
            row = conn.execute(
                "SELECT relreplident FROM pg_class WHERE oid = %s::regclass", (f'"{schema}"."{table}"',)
            ).fetchone()
        if row is not None and row[0] == "f":
            return None
        return (
            f"table `{namespace}` logs only its key for updates and deletes: "
            f"run `ALTER TABLE {namespace} REPLICA IDENTITY FULL`"
        )

    def group_missing(self, name: str, node: PostgresNode, namespaces: list[str]) -> list[str]:
        with self.connect(name, node, node_password(name, node), app="worker-sync ops") as conn:
            return versions.missing(conn)

    def prepare_group(
        self, name: str, node: PostgresNode, namespaces: list[str], *, user: str | None, password: str | None
    ) -> list[str]:
        if user is None:
            password = node_password(name, node)
        with self.connect(name, node, password, user=user, app="worker-sync ops") as conn:
            try:
                versions.create(conn, node.username)
            except psycopg.Error as exc:
                raise DatabaseError(
                    f"node `{name}`: preparing bidirectional sync failed: {first_line(exc)}; run init as an "
                    "administrator (--admin-user / --mysql-admin-user)"
                ) from None
        return []

    def prepare_capture(
        self, name: str, node: PostgresNode, namespaces: list[str], *, user: str | None, password: str | None
    ) -> list[str]:
        if node.decoder != "pgoutput":
            return []  # a wal2json slot reads any table its user may SELECT
        from actors.engines.postgresql.publication import ensure_publication

        if user is None:
            password = node_password(name, node)
        with self.connect(name, node, password, user=user, app="worker-sync ops") as conn:
            ensure_publication(conn, node.publication or node.slot_name, namespaces, stream=name)
        return []

    def probe_namespace(self, node: PostgresNode) -> str | None:
        return probe.NAMESPACE

    def probe_table_present(self, conn: Any, node: PostgresNode) -> bool:
        return probe.present(conn)

    def probe_statements(self, node: PostgresNode, grantees: list[str]) -> list[str]:
        return probe.statements(grantees)

    def quote_namespace(self, namespace: str) -> str:
        schema, table = namespace.split(".", 1)
        return f'"{schema}"."{table}"'

    def dump_command(self, node: PostgresNode, out: Path) -> DumpCommand:
        args = ["--no-password", "--host", node.host, "--port", str(node.port), "--username", node.username]
        args += ["--dbname", node.database, "--format", "plain", "--file", str(out)]
        package = "the PostgreSQL client (Debian: postgresql-client)"
        return DumpCommand(("pg_dump",), package, args, {"PGSSLMODE": node.tls.mode}, "PGPASSWORD")

    def translate(self, exc: BaseException) -> WorkerSyncError | None:
        return errors.translate(exc)


ENGINE = PostgresEngine()
