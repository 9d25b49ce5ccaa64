"""Bidirectional groups from links (actors/core/groups.py) and the routes they give."""

from __future__ import annotations

import pytest

from actors.core.errors import ConfigError
from actors.core.groups import build_groups
from actors.core.routing import build_routes
from config import parse_config

STAR = """
audit: {enabled: false}
nodes:
  - {name: hub, engine: mysql, host: h, database: shop, username: u, priority: 5}
  - {name: east, engine: postgresql, host: h, database: shop, username: u}
  - {name: west, engine: postgresql, host: h, database: shop, username: u, slot_name: w}
links:
  - name: east-hub
    source: east
    target: hub
    bidirectional: true
    conflict_policy: manual
    tables:
      - {source: public.orders, target: shop.orders, columns: {qty: quantity}}
  - name: hub-west
    source: hub
    target: west
    bidirectional: true
    conflict_policy: manual
    tables:
      - {source: shop.orders, target: public.orders, columns: {quantity: amount}}
"""


def test_a_star_of_bidirectional_links_is_one_group_with_renames_along_the_paths() -> None:
    (group,) = build_groups(parse_config(STAR))
    assert group.members == [("east", "public.orders"), ("hub", "shop.orders"), ("west", "public.orders")]
    assert group.policy == "manual"
    assert group.rename(("east", "public.orders"), ("west", "public.orders")) == {"qty": "amount"}
    assert group.rename(("west", "public.orders"), ("east", "public.orders")) == {"amount": "qty"}
    assert group.rename(("hub", "shop.orders"), ("east", "public.orders")) == {"quantity": "qty"}
    assert group.rename(("hub", "shop.orders"), ("hub", "shop.orders")) == {}


def test_group_routes_join_every_member_to_every_member_including_itself() -> None:
    routes = build_routes(parse_config(STAR))
    grouped = [r for r in routes if r.group]
    pairs = {(r.source_node, r.target_node) for r in grouped}
    assert pairs == {(a, b) for a in ("east", "hub", "west") for b in ("east", "hub", "west")}
    assert {r.priority for r in grouped if r.source_node == "hub"} == {5}
    assert all(r.policy == "manual" for r in grouped)


def test_one_table_takes_one_policy() -> None:
    config = parse_config(
        STAR.replace(
            "    conflict_policy: manual\n    tables:\n      - {source: shop", "    tables:\n      - {source: shop"
        )
    )
    with pytest.raises(ConfigError, match=r"conflict policy `manual`.*`last_writer_wins`"):
        build_groups(config)


def test_a_member_may_not_also_be_written_one_way() -> None:
    config = parse_config(
        STAR
        + """  - name: one-way
    source: east
    target: west
    tables: [{source: public.orders}]
"""
    )
    with pytest.raises(ConfigError, match=r"links\[2\]\.tables\[0\].*bidirectional"):
        build_groups(config)


def test_two_columns_onto_one_cannot_run_both_ways() -> None:
    config = parse_config(STAR.replace("{qty: quantity}", "{qty: quantity, n: quantity}"))
    with pytest.raises(ConfigError, match="same target column"):
        build_groups(config)


def test_a_mongodb_node_joins_a_group_with_the_key_mapped_to_id() -> None:
    config = parse_config(
        STAR.replace(
            "{name: west, engine: postgresql, host: h, database: shop, username: u, slot_name: w}",
            "{name: west, engine: mongodb, host: h, database: shop, username: u}",
        ).replace(
            "{source: shop.orders, target: public.orders, columns: {quantity: amount}}",
            "{source: shop.orders, target: shop.orders, columns: {quantity: amount, id: _id}}",
        )
    )
    (group,) = build_groups(config)
    assert group.members == [("east", "public.orders"), ("hub", "shop.orders"), ("west", "shop.orders")]
    assert group.rename(("east", "public.orders"), ("west", "shop.orders")) == {"qty": "amount", "id": "_id"}
    assert group.rename(("west", "shop.orders"), ("east", "public.orders")) == {"amount": "qty", "_id": "id"}
    from_west = [r for r in build_routes(config) if r.source_node == "west" and r.target_node == "east"]
    assert [r.columns for r in from_west] == [{"amount": "qty", "_id": "id"}]
