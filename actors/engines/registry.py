"""Builds the ChangeSource for a stream from its node's engine: the one place that knows them all."""

from __future__ import annotations

from actors.core.streams import StreamSpec
from actors.engines.base import ChangeSource
from config.model import MySqlNode, PostgresNode
from config.secrets import read_secret


def build_source(spec: StreamSpec) -> ChangeSource:
    node = spec.node
    password = read_secret(env=node.password_env, file=node.password_file, what=f"node `{spec.node_name}` password")
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
        )
    if isinstance(node, MySqlNode):
        from actors.engines.mariadb import source_for_node

        return source_for_node(spec, password)
    raise NotImplementedError(f"capture from `{type(node).__name__}` nodes is not built yet")
