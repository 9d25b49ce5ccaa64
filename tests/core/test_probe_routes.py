"""The implicit probe route per link: only where both ends have the probe table, one direction, no duplicates."""

from __future__ import annotations

import pytest

from actors.core.probe import probe_routes
from actors.core.routing import Route
from actors.engines.registry import engine_for
from config import nodes_by_name, parse_config

CONFIG = """
databases:
  postgresql: {host: h, database: shop, username: u}
  mysql: {host: h, database: store, username: u}
nodes:
  - {name: pg2, engine: postgresql, host: h, database: other, username: u}
links:
  - {name: orders, source: postgresql, target: mysql, tables: [{source: public.orders, target: store.orders}]}
  - {name: items, source: postgresql, target: mysql, tables: [{source: public.items, target: store.items}]}
  - {name: back, source: mysql, target: pg2, tables: [{source: store.orders, target: public.orders}]}
"""


def _tables(config, names: set[str]) -> dict[str, str]:
    """What nodes_with_probe_table finds when ``names`` have the table: node -> its namespace."""
    nodes = nodes_by_name(config)
    return {name: str(engine_for(nodes[name]).probe_namespace(nodes[name])) for name in names}


def test_probe_routes_need_the_table_at_both_ends() -> None:
    config = parse_config(CONFIG)
    nodes = nodes_by_name(config)
    assert engine_for(nodes["mysql"]).probe_namespace(nodes["mysql"]) == "store.worker_sync_probe"
    assert probe_routes(config, _tables(config, {"postgresql"}), Route) == []
    routes = probe_routes(config, _tables(config, {"postgresql", "mysql", "pg2"}), Route)
    assert [(r.link, r.source_node, r.source_namespace, r.target_node, r.target_namespace) for r in routes] == [
        ("orders", "postgresql", "public.worker_sync_probe", "mysql", "store.worker_sync_probe"),
        ("back", "mysql", "store.worker_sync_probe", "pg2", "public.worker_sync_probe"),
    ]  # the second postgresql -> mysql link shares the first one's probe route
    assert probe_routes(config, _tables(config, {"mysql", "pg2"}), Route)[0].link == "back"


def test_probe_routes_need_the_namespaces_not_bare_names() -> None:
    config = parse_config(CONFIG)
    assert probe_routes(config, (), Route) == []  # build_routes' default: no probe table anywhere
    with pytest.raises(TypeError):
        probe_routes(config, {"postgresql", "mysql"}, Route)


def test_without_a_reachable_database_no_probe_route_is_added() -> None:
    from actors.core.routing import build_routes
    from actors.ops.probe_table import nodes_with_probe_table

    config = parse_config(CONFIG)
    present = nodes_with_probe_table(config)  # host `h` does not resolve: looked up, found nowhere
    assert present == {}
    assert all("worker_sync_probe" not in route.source_namespace for route in build_routes(config, present))
