"""Which tables `verify` compares, and how their columns line up: from the link's tables and column map.

Every source column is compared with the target column the link maps it to (``columns:``, else the same
name); a target column no source column maps to is not compared (the link does not write it). The key is
the source's primary key in its order, which must be the target's primary key under the map.
"""

from __future__ import annotations

from actors.core.errors import ConfigError
from actors.engines.rows import RowReader, TableView
from actors.ops.verify_scan import TablePair
from config.model import Config, Link, TableMap


def find_link(config: Config, name: str) -> Link:
    for link in config.links:
        if link.name == name:
            return link
    names = ", ".join(f"`{link.name}`" for link in config.links) or "none"
    raise ConfigError("--link", f"no link named `{name}` in the config (links: {names})")


def chosen_tables(link: Link, table: str | None) -> list[TableMap]:
    """The link's tables, or the one whose source or target namespace is ``table``."""
    if table is None:
        return list(link.tables)
    found = [t for t in link.tables if table in (t.source, t.target or t.source)]
    if not found:
        names = ", ".join(f"`{t.source}`" for t in link.tables)
        raise ConfigError("--table", f"link `{link.name}` has no table `{table}` (its tables: {names})")
    return found


def table_pair(link: Link, table: TableMap, source: RowReader, target: RowReader) -> TablePair:
    """The two views of one table; ConfigError when a mapped column or the key does not line up."""
    target_ns = table.target or table.source
    source_schema, target_schema = source.schema(table.source), target.schema(target_ns)
    source_columns, target_columns = [], []
    for column in source_schema.columns:
        name = table.columns.get(column.name, column.name)
        other = target_schema.column(name)
        if other is None:
            raise ConfigError(
                f"link `{link.name}`",
                f"target table `{target_ns}` has no column `{name}` for source column `{column.name}`",
            )
        source_columns.append(column)
        target_columns.append(other)
    target_key = tuple(table.columns.get(k, k) for k in source_schema.primary_key)
    if set(target_key) != set(target_schema.primary_key):
        raise ConfigError(
            f"link `{link.name}`",
            f"the primary key of `{target_ns}` is {list(target_schema.primary_key)}, the source's maps to "
            f"{list(target_key)}: rows cannot be matched",
        )
    source_view = TableView(table.source, tuple(source_columns), source_schema.primary_key)
    target_view = TableView(target_ns, tuple(target_columns), target_key)
    in_database = source.supports(source_view) and target.supports(target_view)
    return TablePair(
        link=link.name,
        source_node=link.source,
        target_node=link.target,
        source=TableView(source_view.namespace, source_view.columns, source_view.key, in_database),
        target=TableView(target_view.namespace, target_view.columns, target_view.key, in_database),
    )
