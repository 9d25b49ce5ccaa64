"""The MongoDB engine object: what code outside actors/engines/ asks of a MongoDB node.

Not covered yet: the probe table, dumps, and plain connections for the operations commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from pymongo import errors

from actors.core.errors import (
    ConfigError,
    DatabaseError,
    DatabaseUnreachable,
    PrivilegeMissing,
    SourceUnavailable,
    WorkerSyncError,
)
from actors.core.events import Position
from actors.core.retention import Retention
from actors.core.streams import StreamSpec
from actors.core.typemap import TableSchema
from actors.engines.base import ChangeSource, Engine
from actors.engines.mongodb import versions
from actors.engines.mongodb.connection import connect, is_replica_set, reason, translate
from actors.engines.sink import BatchWriter
from config.model import MongoNode
from config.secrets import node_password

#: Server error code of a missing privilege.
_UNAUTHORIZED = 13


class MongoEngine(Engine[MongoNode]):
    name = "mongodb"
    admin_flags = "mongo_"
    needs_echo_marker = True  # a document in worker_sync_echo opens each transaction Worker-Sync applies

    def build_source(self, spec: StreamSpec) -> ChangeSource:
        from actors.engines.mongodb.source import source_for_node

        return source_for_node(spec, node_password(spec.node_name, spec.node))

    def build_writer(self, node_name: str, node: MongoNode, *, echo_writer: str | None = None) -> BatchWriter[Any, Any]:
        from actors.engines.mongodb.writer import MongoWriter

        return MongoWriter.for_node(node_name, node, node_password(node_name, node), echo_writer=echo_writer)

    def retention(self, name: str, node: MongoNode, position: Position | None) -> Retention | None:
        """The oplog window against the stream's resume point (actors/engines/mongodb/retention.py)."""
        from actors.engines.mongodb.retention import oplog_retention

        if position is None:
            return None
        password = node_password(name, node)
        client = connect(node, password, name=name, app="worker-sync:retention")
        try:
            return oplog_retention(client, position.order)
        except errors.OperationFailure as exc:
            if exc.code == _UNAUTHORIZED:
                raise PrivilegeMissing(
                    f"mongodb node `{name}`: reading the oplog window needs `find` and `collStats` on "
                    f"`local.oplog.rs` for `{node.username}`: {reason(exc, (password or '',))}"
                ) from None
            raise translate(exc, f"mongodb node `{name}`", "reading the oplog window", (password or "",)) from None
        except errors.PyMongoError as exc:
            raise translate(exc, f"mongodb node `{name}`", "reading the oplog window", (password or "",)) from None
        finally:
            client.close()

    def source_schema(self, name: str, node: MongoNode, namespace: str) -> TableSchema:
        from actors.engines.mongodb.schema import collection_schema

        return collection_schema(name, node.collections, namespace)  # declared fields: no server round trip

    def config_problems(
        self, name: str, node: MongoNode, *, sources: Sequence[str], targets: Sequence[str]
    ) -> list[str]:
        """Every collection read or written must be declared (its fields are the columns `run` checks types by)."""
        from actors.engines.mongodb.schema import collection_schema

        problems = []
        for namespace in dict.fromkeys([*sources, *targets]):
            try:
                collection_schema(name, node.collections, namespace)
            except ConfigError as exc:
                problems.append(exc.message)
        return problems

    def group_missing(self, name: str, node: MongoNode, namespaces: list[str]) -> list[str]:
        """Also ConfigError when the node has no multi-document transactions (neither replica set nor mongos)."""
        client = connect(node, node_password(name, node), name=name, app="worker-sync:preflight")
        try:
            if not is_replica_set(client):
                raise ConfigError(
                    "config",
                    f"mongodb node `{name}` is in a bidirectional group, but it is neither a replica set member nor a "
                    "mongos: bidirectional sync needs multi-document transactions (a single node can be a replica "
                    "set: `mongod --replSet rs0`, then `rs.initiate()`)",
                )
            return versions.missing(client, namespaces)
        except errors.PyMongoError as exc:
            raise translate(exc, f"mongodb node `{name}`", "checking bidirectional sync") from None
        finally:
            client.close()

    def prepare_group(
        self, name: str, node: MongoNode, namespaces: list[str], *, user: str | None, password: str | None
    ) -> list[str]:
        """The marker and version collections and pre-images on the synced collections (versions.prepare);
        ``collMod`` needs dbAdmin, hence the administrator option."""
        if user is None:
            password = node_password(name, node)
        else:
            node = msgspec.structs.replace(node, username=user)
        client = connect(node, password, name=name, app="worker-sync:init")
        try:
            versions.prepare(client, namespaces)
        except errors.PyMongoError as exc:
            error = translate(exc, f"mongodb node `{name}`", "preparing bidirectional sync", (password or "",))
            advice = "run init as an account with readWrite and dbAdmin on those databases (--mongo-admin-user)"
            text = f"{error}; {advice}"
            raise (SourceUnavailable(text) if isinstance(error, SourceUnavailable) else DatabaseError(text)) from None
        finally:
            client.close()
        return []

    def translate(self, exc: BaseException) -> WorkerSyncError | None:
        if not isinstance(exc, errors.PyMongoError):
            return None
        text = reason(exc)
        if isinstance(exc, errors.ConnectionFailure):
            return DatabaseUnreachable(text)
        if isinstance(exc, errors.OperationFailure) and exc.code == _UNAUTHORIZED:
            return PrivilegeMissing(text)
        return DatabaseError(text)


ENGINE = MongoEngine()
