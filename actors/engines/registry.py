"""The one place that knows every engine: the engine object of a node, and what is built from it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from actors.core.errors import WorkerSyncError
from actors.core.streams import StreamSpec
from actors.engines.base import ChangeSource, Engine
from actors.engines.sink import BatchWriter
from config.model import MongoNode, MySqlNode, Node, PostgresNode


def engine_for(node: Node) -> Engine[Any]:
    """The engine object of ``node``'s database (its package is imported on first use)."""
    if isinstance(node, PostgresNode):
        from actors.engines.postgresql.engine import ENGINE as postgresql

        return postgresql
    if isinstance(node, MySqlNode):
        from actors.engines.mariadb.engine import ENGINE as mariadb

        return mariadb
    if isinstance(node, MongoNode):
        from actors.engines.mongodb.engine import ENGINE as mongodb

        return mongodb
    raise NotImplementedError(f"`{type(node).__name__}` nodes have no engine yet")


def build_source(spec: StreamSpec) -> ChangeSource:
    return engine_for(spec.node).build_source(spec)


def build_writer(node_name: str, node: Node, *, echo_writer: str | None = None) -> BatchWriter[Any, Any]:
    """The writer of a target node; one per shard per node (writers are not thread-safe).

    ``echo_writer`` (nodes in a bidirectional group): a name unique to this writer under which its
    writes are marked, so the node's capture can tell them from its users' changes."""
    return engine_for(node).build_writer(node_name, node, echo_writer=echo_writer)


def translate(exc: BaseException) -> WorkerSyncError | None:
    """A driver's error as the engine that owns the driver translates it; None for anything else."""
    from actors.engines.mariadb.engine import ENGINE as mariadb
    from actors.engines.mongodb.engine import ENGINE as mongodb
    from actors.engines.postgresql.engine import ENGINE as postgresql

    engines: tuple[Engine[Any], ...] = (postgresql, mariadb, mongodb)
    return next((error for engine in engines if (error := engine.translate(exc)) is not None), None)


@contextmanager
def driver_errors() -> Iterator[None]:
    """Inside, a driver's error comes out as the Worker-Sync error its engine makes of it (the driver's
    as its cause), so engine-neutral callers handle DatabaseError and kin, never a driver class."""
    try:
        yield
    except WorkerSyncError:
        raise
    except Exception as exc:
        error = translate(exc)
        if error is None:
            raise
        raise error from exc
