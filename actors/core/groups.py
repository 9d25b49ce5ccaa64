"""Bidirectional groups: the tables that bidirectional links keep equal on several nodes.

Each table of a bidirectional link joins its two ends, (node, table) and (node, table), into one
*group*; links that share an end merge their groups, so a star (one hub, several spokes), a chain or a
ring of bidirectional links is one group. Worker-Sync then sends every change made at a member
straight to every other member (column names translated along the links between them) and offers it
to its own node too (see actors/core/conflicts.py): a change is never relayed from node to node, so a
ring delivers it once, not twice, and never back.

Pure: no drivers, no Ray.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import msgspec

from actors.core.errors import ConfigError
from config.loader import nodes_by_name
from config.model import Config, ConflictPolicy, LossPolicy, TruncatePolicy

Member = tuple[str, str]  # (node, namespace)


class Group(msgspec.Struct, frozen=True, kw_only=True):
    """One logical table kept equal on every member."""

    #: "node:namespace" of the first member in sorted order: stable across runs.
    name: str
    policy: ConflictPolicy
    #: "warn" when every link of the group lets lossy type mappings through, else "refuse".
    lossy_types: LossPolicy
    members: list[Member]
    #: member -> (other member -> source column -> target column), for every ordered pair.
    renames: dict[str, dict[str, dict[str, str]]]
    #: A TRUNCATE at a member: "ignore" when every link of the group says so, else "stop" (never "apply").
    truncate: TruncatePolicy = "stop"

    def rename(self, source: Member, target: Member) -> dict[str, str]:
        return self.renames[_label(source)][_label(target)]

    @property
    def canonical(self) -> Member:
        return self.members[0]


def _label(member: Member) -> str:
    return f"{member[0]}:{member[1]}"


def _inverse(columns: dict[str, str], where: str) -> dict[str, str]:
    inverse = {target: source for source, target in columns.items()}
    if len(inverse) != len(columns):
        raise ConfigError("config", f"{where}: two columns map to the same target column, so it cannot run both ways")
    return inverse


def _compose(first: dict[str, str], second: dict[str, str]) -> dict[str, str]:
    """Renames of ``first`` then ``second``, as one source -> target map (identity entries left out)."""
    names = set(first) | {second_source for second_source in second if second_source not in first.values()}
    composed = {}
    for name in names:
        middle = first.get(name, name)
        final = second.get(middle, middle)
        if final != name:
            composed[name] = final
    return composed


def build_groups(config: Config) -> list[Group]:
    """Every group the config's bidirectional links make, with a ConfigError naming the path of a problem."""
    nodes = nodes_by_name(config)
    edges: dict[Member, dict[Member, dict[str, str]]] = {}
    policies: dict[Member, tuple[ConflictPolicy, str]] = {}
    strict: set[Member] = set()
    stopping: set[Member] = set()
    for i, link in enumerate(config.links):
        if not link.bidirectional or link.source not in nodes or link.target not in nodes:
            continue
        for j, table in enumerate(link.tables):
            where = f"`$.links[{i}].tables[{j}]`"
            a = (link.source, table.source)
            b = (link.target, table.target or table.source)
            columns = dict(table.columns)
            edges.setdefault(a, {})[b] = columns
            edges.setdefault(b, {})[a] = _inverse(columns, where)
            if link.lossy_types == "refuse":
                strict.update((a, b))
            if link.truncate_of(table) != "ignore":
                stopping.update((a, b))
            policy = table.conflict_policy or link.conflict_policy
            for end in (a, b):
                earlier = policies.setdefault(end, (policy, where))
                if earlier[0] != policy:
                    raise ConfigError(
                        "config",
                        f"table `{end[1]}` on node `{end[0]}` has conflict policy `{earlier[0]}` at {earlier[1]} "
                        f"and `{policy}` at {where}: one table takes one policy",
                    )
    groups: list[Group] = []
    seen: set[Member] = set()
    for start in sorted(edges):
        if start in seen:
            continue
        members = sorted(_component(start, edges))
        seen.update(members)
        renames = {_label(m): {_label(o): r for o, r in _paths_from(m, edges).items()} for m in members}
        groups.append(
            Group(
                name=_label(members[0]),
                policy=policies[members[0]][0],
                lossy_types="refuse" if strict & set(members) else "warn",
                members=members,
                renames=renames,
                truncate="stop" if stopping & set(members) else "ignore",
            )
        )
    _check_no_one_way_target(config, groups)
    return groups


def _component(start: Member, edges: dict[Member, dict[Member, dict[str, str]]]) -> set[Member]:
    found = {start}
    todo = [start]
    while todo:
        for other in edges[todo.pop()]:
            if other not in found:
                found.add(other)
                todo.append(other)
    return found


def _paths_from(start: Member, edges: dict[Member, dict[Member, dict[str, str]]]) -> dict[Member, dict[str, str]]:
    """Column renames from ``start`` to every member (itself included: no renames), along shortest paths."""
    renames: dict[Member, dict[str, str]] = {start: {}}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for other, columns in sorted(edges[here].items()):
            if other not in renames:
                renames[other] = _compose(renames[here], columns)
                queue.append(other)
    return renames


def _check_no_one_way_target(config: Config, groups: Iterable[Group]) -> None:
    """A group member must not also receive the same table from a one-way link: those writes would bypass
    the group's versions, and the nodes could no longer agree on a winner."""
    members = {member for group in groups for member in group.members}
    for i, link in enumerate(config.links):
        if link.bidirectional:
            continue
        for j, table in enumerate(link.tables):
            target = (link.target, table.target or table.source)
            if target in members:
                raise ConfigError(
                    "config",
                    f"`$.links[{i}].tables[{j}]` writes one way into `{target[1]}` on node `{target[0]}`, which a "
                    "bidirectional link also syncs; make that link bidirectional too, or sync another table",
                )


def group_index(groups: Iterable[Group]) -> dict[Member, Group]:
    return {member: group for group in groups for member in group.members}


def namespaces_by_node(groups: Iterable[Group]) -> dict[str, list[str]]:
    """Each member node's synced tables (or collections), over all groups: what `init` prepares on it."""
    found: dict[str, list[str]] = {}
    for group in groups:
        for node, namespace in group.members:
            found.setdefault(node, []).append(namespace)
    return found
