"""Builds the ChangeSource for a stream from its node's engine: the one place that knows them all."""

from __future__ import annotations

from actors.core.streams import StreamSpec
from actors.engines.base import ChangeSource
from actors.engines.sink import BatchWriter
from config.model import MongoNode, MySqlNode, Node, PostgresNode
from config.secrets import node_password


def build_source(spec: StreamSpec) -> ChangeSource:
    node = spec.node
    password = node_password(spec.node_name, node)
    if isinstance(node, PostgresNode):
        from actors.engines.postgresql import PostgresSource
        from actors.engines.postgresql.connection import conninfo_for

        return PostgresSource(
            stream=spec.stream,
            node=spec.node_name,
            conninfo=conninfo_for(node, password, application_name=f"worker-sync:{spec.stream}"),
            slot=node.slot_name,
            tables=spec.tables,
            snapshot_chunk_rows=spec.snapshot_chunk_rows,
            resnapshot=spec.resnapshot,
        )
    if isinstance(node, MySqlNode):
        from actors.engines.mariadb import source_for_node

        return source_for_node(spec, password)
    if isinstance(node, MongoNode):
        from actors.engines.mongodb import source_for_node as mongo_source

        return mongo_source(spec, password)
    raise NotImplementedError(f"capture from `{type(node).__name__}` nodes is not built yet")


def build_writer(node_name: str, node: Node, *, echo_writer: str | None = None) -> BatchWriter:
    """The writer of a target node; one per shard per node (writers are not thread-safe).

    ``echo_writer`` (nodes in a bidirectional group): a name unique to this writer under which its
    writes are marked, so the node's capture can tell them from its users' changes."""
    password = node_password(node_name, node)
    if isinstance(node, PostgresNode):
        from actors.engines.postgresql.writer import PostgresWriter

        return PostgresWriter.for_node(node_name, node, password, echo_writer=echo_writer)
    if isinstance(node, MySqlNode):
        from actors.engines.mariadb.writer import MariaDbWriter

        return MariaDbWriter.for_node(node_name, node, password, echo_writer=echo_writer)
    if isinstance(node, MongoNode):
        from actors.engines.mongodb.writer import MongoWriter

        return MongoWriter.for_node(node_name, node, password, echo_writer=echo_writer)
    raise NotImplementedError(f"writing to `{type(node).__name__}` nodes is not built yet")
