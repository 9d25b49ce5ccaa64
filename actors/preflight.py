"""Start-up checks of `worker-sync run`: every route's source and target tables exist and the
target can hold every source value, before any actor starts (SPEC §2: a lossy mapping is refused
or warned about at start-up, per the link's `lossy_types`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actors.core.mapping import check_mapping
from actors.core.routing import Route
from actors.core.typemap import TableSchema
from config.loader import nodes_by_name
from config.model import Config, MongoNode, MySqlNode, Node, PostgresNode
from config.secrets import node_password

if TYPE_CHECKING:
    import psycopg
    import pymysql

    from actors.engines.sink import BatchWriter

log = logging.getLogger(__name__)


def source_schema(name: str, node: Node, namespace: str) -> TableSchema:
    password = node_password(name, node)
    if isinstance(node, PostgresNode):
        import psycopg

        from actors.core.errors import SourceMisconfigured, SourceUnavailable
        from actors.engines.postgresql.connection import conninfo_for
        from actors.engines.postgresql.schema import table_schema
        from actors.engines.postgresql.writer import authentication_failed

        try:
            with psycopg.connect(conninfo_for(node, password, application_name="worker-sync:preflight")) as conn:
                return table_schema(conn, namespace)
        except psycopg.OperationalError as exc:
            if authentication_failed(exc):  # a wrong user or password: exit 2, not "unreachable"
                raise SourceMisconfigured(f"postgresql node `{name}`: authentication failed: {exc}") from None
            raise SourceUnavailable(f"postgresql node `{name}`: cannot connect: {exc}") from None
    if isinstance(node, MySqlNode):
        from actors.engines.mariadb.connection import ConnectParams, connect
        from actors.engines.mariadb.table_schema import table_schema as mysql_table_schema

        mysql_conn = connect(ConnectParams.for_node(node, password), f"mariadb node `{name}`")
        try:
            return mysql_table_schema(mysql_conn, namespace)
        finally:
            mysql_conn.close()
    if isinstance(node, MongoNode):
        from actors.engines.mongodb.schema import collection_schema

        return collection_schema(name, node.collections, namespace)  # declared fields: no server round trip
    raise NotImplementedError(f"reading table schemas of `{type(node).__name__}` nodes is not built yet")


def check_routes(config: Config, routes: Sequence[Route]) -> list[str]:
    """Warnings to log. Logs in to every route's source and target (the target as its writer does) and reads
    their tables; raises ConfigError (bad mapping), SourceMisconfigured or SinkError (a refused login, a
    missing or unusable table: exit 2) or SourceUnavailable (a node cannot be reached: exit 3)."""
    from actors.engines.registry import build_writer

    nodes = nodes_by_name(config)
    writers: dict[str, BatchWriter[Any, Any]] = {}
    warnings: list[str] = []
    try:
        for route in routes:
            writer = writers.get(route.target_node)
            if writer is None:
                writer = writers[route.target_node] = build_writer(route.target_node, nodes[route.target_node])
            source = source_schema(route.source_node, nodes[route.source_node], route.source_namespace)
            target = writer.schema(route.target_namespace)
            warnings.extend(check_mapping(source, target, route.columns, route.lossy_types))
    finally:
        for writer in writers.values():
            writer.close()
    for warning in warnings:
        log.warning("lossy type mapping accepted (`lossy_types: warn`): %s", warning)
    return warnings


def check_audit(config: Config) -> None:
    """With `audit.enabled`, the signing key loads and the audit schema exists, or the run stops at start
    (ConfigError: exit 2) instead of every batch failing in the audit actor."""
    if not config.audit.enabled:
        return
    from actors.core.audit.checkpoint import load_key_bytes, load_signing_key
    from actors.core.errors import ConfigError, SinkError, SourceUnavailable

    audit = config.audit
    load_signing_key(file=audit.signing_key_file, env=audit.signing_key_env)
    if audit.encrypted_fields:
        load_key_bytes(file=audit.encryption_key_file, what="audit field-encryption key")
    node = nodes_by_name(config).get(audit.node)
    if not isinstance(node, PostgresNode):
        raise ConfigError("config", f"`audit.node` `{audit.node}` must name an enabled postgresql node")
    from actors.audit_chain import connect_store

    try:
        store = connect_store(node, audit.schema)
    except SinkError as exc:
        raise SourceUnavailable(str(exc)) from None
    import psycopg

    try:
        exists = store.exists()
    except psycopg.Error as exc:  # e.g. no USAGE on the schema: the service role was not the one granted
        raise ConfigError("config", f"cannot read the audit schema `{audit.schema}`: {str(exc).strip()}") from None
    finally:
        store.close()
    if not exists:
        raise ConfigError(
            "config",
            f"the audit schema `{audit.schema}` does not exist on node `{audit.node}` (or its user may not read it): "
            "run `worker-sync init --config FILE`",
        )


def check_groups(config: Config) -> None:
    """Every node of a bidirectional group has what its writer needs (the version table; on MariaDB/MySQL and
    MongoDB the echo marker table; on PostgreSQL the right to mark its sessions), or the run stops at start
    with "run `worker-sync init`" (ConfigError: exit 2) instead of every offer failing in the applier shards."""
    from actors.core.errors import ConfigError
    from actors.core.groups import build_groups, namespaces_by_node
    from actors.ops.nodes import connect_node

    nodes = nodes_by_name(config)
    namespaces = namespaces_by_node(build_groups(config))
    for name in sorted(namespaces):
        node = nodes[name]
        if isinstance(node, MongoNode):
            missing = _missing_for_mongo_group(name, node, namespaces[name])
        else:
            conn = connect_node(name, node)  # NodeUnreachable (SourceUnavailable): exit 3
            try:
                missing = _missing_for_groups(conn, node)
            finally:
                conn.close()
        if missing:
            raise ConfigError(
                "config",
                f"node `{name}` is in a bidirectional group but {'; '.join(missing)}: run `worker-sync init --config "
                "FILE` (as an administrator, see its --admin-user options)",
            )


def _missing_for_mongo_group(name: str, node: MongoNode, namespaces: list[str]) -> list[str]:
    """The marker and version collections a MongoDB member lacks; ConfigError when it has no transactions."""
    from pymongo import errors

    from actors.core.errors import ConfigError
    from actors.engines.mongodb import versions
    from actors.engines.mongodb.connection import connect, is_replica_set, translate

    client = connect(node, node_password(name, node), name=name, app="worker-sync:preflight")
    try:
        if not is_replica_set(client):
            raise ConfigError(
                "config",
                f"mongodb node `{name}` is in a bidirectional group, but it is neither a replica set member nor a "
                "mongos: bidirectional sync needs multi-document transactions (a single node can be a replica set: "
                "`mongod --replSet rs0`, then `rs.initiate()`)",
            )
        return versions.missing(client, namespaces)
    except errors.PyMongoError as exc:
        raise translate(exc, f"mongodb node `{name}`", "checking bidirectional sync") from None
    finally:
        client.close()


def _missing_for_groups(conn: psycopg.Connection[Any] | pymysql.Connection[Any], node: Node) -> list[str]:
    """``conn``: connect_node's connection to ``node`` (psycopg for PostgreSQL, PyMySQL for MariaDB/MySQL)."""
    if isinstance(node, PostgresNode):
        import psycopg

        from actors.engines.postgresql import versions as pg_versions

        assert isinstance(conn, psycopg.Connection)
        try:
            row = conn.execute(
                "SELECT has_table_privilege(to_regclass(%s), 'SELECT, INSERT, UPDATE'), "
                "has_function_privilege('pg_replication_origin_session_setup(text)', 'EXECUTE'), "
                "has_function_privilege('pg_replication_origin_create(text)', 'EXECUTE')",
                [pg_versions.TABLE],
            ).fetchone()
        except psycopg.Error:  # e.g. no USAGE on its schema
            row = (False, True, True)
        assert row is not None  # a SELECT without FROM returns one row
        missing = []
        if not row[0]:
            missing.append(f"its user may not read and write `{pg_versions.TABLE}` (or it does not exist)")
        if not (row[1] and row[2]):
            missing.append("its user may not mark its writes with a replication origin")
        return missing
    if isinstance(node, MySqlNode):
        import pymysql

        from actors.engines.mariadb import versions as mariadb_versions

        assert isinstance(conn, pymysql.Connection)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name IN (%s, %s)",
                (node.database, mariadb_versions.VERSIONS, mariadb_versions.ECHO),
            )
            found = {str(row[0]) for row in cur.fetchall()}
        tables = (mariadb_versions.VERSIONS, mariadb_versions.ECHO)
        return [f"`{node.database}.{t}` is missing" for t in tables if t not in found]
    return []
