"""Where each captured change goes: routes from the config's links, and the shard of a key.

Pure: no Ray, no drivers. The supervisor routes, the applier shards apply.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable
from typing import Final

import msgspec

from actors.core.changes import RowChange
from actors.core.conflicts import RESOLUTION_ENGINE, Offer, Version
from actors.core.encoding import encode_row
from actors.core.errors import ConfigError
from actors.core.events import UNCHANGED, ChangeEvent, Op
from actors.core.groups import build_groups
from actors.core.probe import probe_routes
from actors.core.shaping.build import table_shapes
from actors.core.shaping.shape import TableShape
from config.loader import nodes_by_name
from config.model import Config, ConflictPolicy, LossPolicy, SchemaChangePolicy, TruncatePolicy

#: How finely each engine's captured commit times resolve: binlog event timestamps are whole seconds;
#: MongoDB's ``wallTime`` (6.0+, which pre-images need anyway) milliseconds; PostgreSQL microseconds.
CLOCK_RESOLUTION_US: Final = {"postgresql": 1, "mysql": 1_000_000, "mongodb": 1_000}


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """One table of one link, in one direction."""

    link: str
    source_node: str
    source_namespace: str
    target_node: str
    target_namespace: str
    #: Source column -> target column; columns not named keep their name.
    columns: dict[str, str] = {}
    #: The bidirectional group this route belongs to ("" for a one-way link): its changes are offered
    #: (actors.core.conflicts), not written blindly, and a route from a node to itself exists.
    group: str = ""
    policy: ConflictPolicy = "last_writer_wins"
    #: The source node's ``priority`` (ranks its changes in conflicts).
    priority: int = 0
    #: The group's coarsest commit-clock tick in microseconds: commits within one tick are ranked by
    #: ``priority`` first (see actors.core.conflicts).
    resolution_us: int = 1
    #: The link's ``lossy_types`` (a group's: "warn" only when all its links say so).
    lossy_types: LossPolicy = "refuse"
    #: How the source table is shaped where it is captured (actors.core.shaping); None: sent whole.
    shape: TableShape | None = None
    #: A TRUNCATE of the source table (README, "TRUNCATE and schema changes"); groups never "apply".
    truncate: TruncatePolicy = "stop"
    #: A column added to the source table: add it at the target ("apply") or stop the stream.
    schema_changes: SchemaChangePolicy = "stop"

    def target_column(self, name: str) -> str:
        return self.columns.get(name, name)


def build_routes(config: Config, probe_nodes: Collection[str] = ()) -> list[Route]:
    """Every route the config's links describe: one per table of a one-way link, and for each
    bidirectional group (actors.core.groups) one per ordered pair of members, self-pairs included.

    ``probe_nodes``: the nodes where `worker-sync init` made the probe table (the caller looks them up,
    see actors.ops.probe_table); each link between two of them carries it one way, source to target."""
    nodes = nodes_by_name(config)
    routes: list[Route] = []
    groups = build_groups(config)
    shapes = table_shapes(config, groups)
    for group in groups:
        resolution_us = max(CLOCK_RESOLUTION_US[str(nodes[node].__struct_config__.tag)] for node, _ in group.members)
        for source in group.members:
            for target in group.members:
                routes.append(
                    Route(
                        link=group.name,
                        source_node=source[0],
                        source_namespace=source[1],
                        target_node=target[0],
                        target_namespace=target[1],
                        columns=group.rename(source, target),
                        group=group.name,
                        policy=group.policy,
                        priority=nodes[source[0]].priority,
                        resolution_us=resolution_us,
                        lossy_types=group.lossy_types,
                        truncate=group.truncate,
                    )
                )
    for link in config.links:
        if link.bidirectional:
            continue
        for table in link.tables:
            routes.append(
                Route(
                    link=link.name,
                    source_node=link.source,
                    source_namespace=table.source,
                    target_node=link.target,
                    target_namespace=table.target or table.source,
                    columns=dict(table.columns),
                    lossy_types=link.lossy_types,
                    shape=shapes.get((link.source, table.source)),
                    truncate=link.truncate_of(table),
                    schema_changes=link.schema_changes,
                )
            )
    routes.extend(probe_routes(config, probe_nodes, Route))
    for route in routes:
        for end in (route.source_node, route.target_node):
            if end not in nodes:
                raise ConfigError("config", f"route of link `{route.link}` names unknown node `{end}`")
    return routes


def routes_by_source(routes: Iterable[Route]) -> dict[tuple[str, str], list[Route]]:
    by_source: dict[tuple[str, str], list[Route]] = {}
    for route in routes:
        by_source.setdefault((route.source_node, route.source_namespace), []).append(route)
    return by_source


def split_key_change(event: ChangeEvent) -> list[ChangeEvent]:
    """An update that changes the primary key becomes a delete of the old key and an upsert of
    the new one, so each half can go to its own key's shard and keep that key's order."""
    if event.op is not Op.UPDATE or event.before is None:
        return [event]
    old_key = {name: event.before[name] for name in event.key if name in event.before}
    if len(old_key) != len(event.key) or old_key == event.key:
        return [event]
    delete = msgspec.structs.replace(event, op=Op.DELETE, key=old_key, after=None)
    after = event.after
    if after is not None and any(value is UNCHANGED for value in after.values()):
        # The new key's row does not exist at the target yet: take unchanged (TOASTed) values from
        # the before-image when the source sent one (REPLICA IDENTITY FULL).
        after = {name: event.before.get(name, value) if value is UNCHANGED else value for name, value in after.items()}
    upsert = msgspec.structs.replace(event, op=Op.INSERT, before=None, after=after)
    return [delete, upsert]


def shard_of(namespace: str, key: dict[str, object], shards: int) -> int:
    """A stable shard for (namespace, key): the same in every process and every run."""
    if shards == 1:
        return 0
    digest = zlib.crc32(encode_row(key), zlib.crc32(namespace.encode()))
    return digest % shards


def to_row_change(event: ChangeEvent, route: Route) -> RowChange:
    """The event as the target sees it: target table, target column names, upsert or delete."""
    rename = route.columns
    key = {rename.get(name, name): value for name, value in event.key.items()}
    if event.op is Op.DELETE:
        return RowChange(route.target_namespace, "delete", key, None)
    after = event.after or {}
    row = {rename.get(name, name): value for name, value in after.items()} if rename else dict(after)
    return RowChange(route.target_namespace, "upsert", key, row)


def to_offer(event: ChangeEvent, route: Route) -> Offer:
    """The event offered to a member of its bidirectional group (see actors.core.conflicts).

    Snapshot reads rank below every change (time 0): they only settle rows no change has touched.
    """
    change = to_row_change(event, route)
    time_us = 0 if event.op is Op.READ else event.commit_time_us
    return Offer(
        namespace=change.namespace,
        key=change.key,
        row=change.row,
        version=Version(time_us, route.priority, event.node, event.position.order),
        local=route.target_node == event.node,
        policy=route.policy,
        resolution_us=route.resolution_us,
        resolution=event.engine == RESOLUTION_ENGINE,
    )
