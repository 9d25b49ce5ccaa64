"""The shaped tables of a config, checked: one shape per captured table, none on a bidirectional member.

A table is shaped once, where it is captured, for every link that reads it, so that shards and the audit log
never receive a clear value: two links reading one table must ask for the same shape (one table shaped two
ways for two links is not built).
"""

from __future__ import annotations

from actors.core.errors import ConfigError
from actors.core.groups import Group
from actors.core.shaping.shape import TableShape
from config.model import Config, TableMap


def shape_of(table: TableMap, config: Config) -> TableShape | None:
    """The shape a table entry asks for; None when it takes the table as it is."""
    if not table.shaped:
        return None
    masks = {name: table.mask_kind(name) or "null" for name in table.mask}
    hashes = "hash" in masks.values()
    return TableShape(
        include=None if table.columns_include is None else tuple(table.columns_include),
        exclude=tuple(table.columns_exclude),
        masks=masks,
        where={name: tuple(values) for name, values in table.where.items()},
        key_env=config.masking.key_env if hashes else None,
        key_file=config.masking.key_file if hashes else None,
    )


def table_shapes(config: Config, groups: list[Group]) -> dict[tuple[str, str], TableShape]:
    """(source node, source table) -> its shape, for every shaped table; ConfigError naming both entries
    when two links shape one table differently, or when a shaped table is a bidirectional group's member."""
    members = {member for group in groups for member in group.members}
    seen: dict[tuple[str, str], tuple[TableShape | None, str]] = {}
    for i, link in enumerate(config.links):
        if link.bidirectional:
            continue
        for j, table in enumerate(link.tables):
            where = f"`$.links[{i}].tables[{j}]`"
            source = (link.source, table.source)
            shape = shape_of(table, config)
            if shape is not None and source in members:
                raise ConfigError(
                    "config",
                    f"{where} shapes `{table.source}` on node `{link.source}`, which a bidirectional link also "
                    "syncs: shaping happens where a table is captured, and a bidirectional table must travel whole",
                )
            earlier = seen.setdefault(source, (shape, where))
            if earlier[0] != shape:
                raise ConfigError(
                    "config",
                    f"{where} and {earlier[1]} both read `{table.source}` from node `{link.source}` but shape it "
                    "differently (columns_include/columns_exclude/mask/where): a table is shaped once, where it is "
                    "captured - give both entries the same shape",
                )
    return {source: shape for source, (shape, _) in seen.items() if shape is not None}
