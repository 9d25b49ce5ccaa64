"""The MariaDB/MySQL engine object: what code outside actors/engines/ asks of a MariaDB/MySQL node."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pymysql

from actors.core.errors import DatabaseError, WorkerSyncError
from actors.core.events import AddedColumn, Position
from actors.core.retention import Retention
from actors.core.streams import StreamSpec
from actors.core.typemap import TableSchema
from actors.engines.base import ChangeSource, DumpCommand, Engine, first_line, unreachable
from actors.engines.mariadb import errors, heartbeat, probe, versions
from actors.engines.mariadb.connection import ConnectParams, connect_kwargs
from actors.engines.rows import RowReader
from actors.engines.sink import BatchWriter
from config.model import MySqlNode
from config.secrets import node_password


class MariaDbEngine(Engine[MySqlNode]):
    name = "mysql"
    admin_flags = "mysql_"
    verifiable = True
    needs_echo_marker = True  # a row in worker_sync_echo opens each transaction Worker-Sync applies

    def build_source(self, spec: StreamSpec) -> ChangeSource:
        from actors.engines.mariadb.source import source_for_node

        return source_for_node(spec, node_password(spec.node_name, spec.node))

    def build_writer(self, node_name: str, node: MySqlNode, *, echo_writer: str | None = None) -> BatchWriter[Any, Any]:
        from actors.engines.mariadb.writer import MariaDbWriter

        return MariaDbWriter.for_node(node_name, node, node_password(node_name, node), echo_writer=echo_writer)

    def connect(
        self, name: str, node: MySqlNode, password: str | None, *, user: str | None = None, app: str
    ) -> pymysql.Connection[Any]:
        params = ConnectParams.for_node(node, password)
        if user is not None:
            params = dataclasses.replace(params, user=user)
        try:
            return pymysql.connect(**connect_kwargs(params))
        except (pymysql.err.MySQLError, OSError) as exc:
            raise unreachable(name, node, exc) from None

    def row_reader(self, name: str, node: MySqlNode) -> RowReader:
        from actors.engines.mariadb.rows import MariaDbRowReader

        conn = self.connect(name, node, node_password(name, node), app="worker-sync verify")
        return MariaDbRowReader(name, conn, flavor=node.flavor)

    def retention(self, name: str, node: MySqlNode, position: Position | None) -> Retention | None:
        from actors.engines.mariadb.retention import binlog_retention

        if position is None:  # nothing committed: the snapshot has not chosen its binlog point yet
            return None
        password = node_password(name, node)
        conn = self.connect(name, node, password, app="worker-sync:retention")
        try:
            return binlog_retention(conn, ConnectParams.for_node(node, password), position.order)
        finally:
            conn.close()

    def heartbeat_namespace(self, node: MySqlNode) -> str | None:
        return heartbeat.namespace(node.database)

    def heartbeat_statements(self, node: MySqlNode, grantees: list[str]) -> list[str]:
        return heartbeat.statements(node.database, grantees)

    def heartbeat(self, name: str, node: MySqlNode) -> None:
        conn = self.connect(name, node, node_password(name, node), app="worker-sync:heartbeat")
        try:
            heartbeat.beat(conn, node.database)
        finally:
            conn.close()

    def source_columns(self, name: str, node: MySqlNode, namespace: str) -> dict[str, AddedColumn]:
        from actors.engines.mariadb.connection import connect
        from actors.engines.mariadb.ddl import describe_columns

        conn = connect(ConnectParams.for_node(node, node_password(name, node)), f"mariadb node `{name}`")
        try:
            return describe_columns(conn, namespace)
        finally:
            conn.close()

    def source_schema(self, name: str, node: MySqlNode, namespace: str) -> TableSchema:
        from actors.engines.mariadb.connection import connect
        from actors.engines.mariadb.table_schema import table_schema

        conn = connect(ConnectParams.for_node(node, node_password(name, node)), f"mariadb node `{name}`")
        try:
            return table_schema(conn, namespace)
        finally:
            conn.close()

    def before_image_missing(self, name: str, node: MySqlNode, namespace: str) -> str | None:
        return None  # the capture refuses to start unless `binlog_row_image=FULL` (actors/engines/mariadb/checks.py)

    def config_problems(
        self, name: str, node: MySqlNode, *, sources: Sequence[str], targets: Sequence[str]
    ) -> list[str]:
        if sources and node.flavor == "mysql" and node.snapshot:
            return [
                f"mysql node `{name}` is a source, and an initial snapshot of a MySQL server is not supported (MySQL "
                "has no lock-free binlog_snapshot_* position): set `snapshot: false` on the node and load the "
                "target another way"
            ]
        return []

    def group_missing(self, name: str, node: MySqlNode, namespaces: list[str]) -> list[str]:
        conn = self.connect(name, node, node_password(name, node), app="worker-sync ops")
        try:
            return versions.missing(conn, node.database)
        finally:
            conn.close()

    def prepare_group(
        self, name: str, node: MySqlNode, namespaces: list[str], *, user: str | None, password: str | None
    ) -> list[str]:
        if user is None:
            password = node_password(name, node)
        conn = self.connect(name, node, password, user=user, app="worker-sync ops")
        try:
            try:
                versions.create(conn, node.database)
            except pymysql.MySQLError as exc:
                raise DatabaseError(
                    f"node `{name}`: preparing bidirectional sync failed: {first_line(exc)}; run init as an "
                    "administrator (--admin-user / --mysql-admin-user)"
                ) from None
            grants = versions.grant_statements(node.database, node.username)
            try:
                with conn.cursor() as cur:
                    for statement in grants:
                        cur.execute(statement)
            except pymysql.MySQLError as exc:
                return [
                    f"node `{name}`: could not grant the version tables to `{node.username}` "
                    f"({exc.args[-1] if exc.args else exc}); if its account lacks them, an administrator runs: "
                    + "; ".join(grants)
                ]
            return []
        finally:
            conn.close()

    def probe_namespace(self, node: MySqlNode) -> str | None:
        return probe.namespace(node.database)

    def probe_table_present(self, conn: Any, node: MySqlNode) -> bool:
        return probe.present(conn, node.database)

    def probe_statements(self, node: MySqlNode, grantees: list[str]) -> list[str]:
        return probe.statements(node.database, grantees)

    def probe_grantees(self, conn: Any, node: MySqlNode) -> list[str]:
        return probe.accounts(conn, node.username)

    def quote_namespace(self, namespace: str) -> str:
        database, table = namespace.split(".", 1)
        return f"`{database}`.`{table}`"

    def dump_command(self, node: MySqlNode, out: Path) -> DumpCommand:
        args = [f"--host={node.host}", f"--port={node.port}", f"--user={node.username}", "--single-transaction"]
        args += ["--skip-lock-tables", f"--result-file={out}", "--databases", node.database]
        if node.tls.mode == "disable":
            args.append("--skip-ssl")
        package = "the MariaDB/MySQL client (Debian: mariadb-client)"
        return DumpCommand(("mariadb-dump", "mysqldump"), package, args, {}, "MYSQL_PWD")

    def translate(self, exc: BaseException) -> WorkerSyncError | None:
        return errors.translate(exc)


ENGINE = MariaDbEngine()
