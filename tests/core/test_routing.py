"""Routes from links, key-change splitting, stable shards, and the low-water mark."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from actors.core.events import ChangeEvent, Op, Position
from actors.core.progress import StreamProgress
from actors.core.routing import build_routes, routes_by_source, shard_of, split_key_change
from config import parse_config

CONFIG = """
databases:
  postgresql: {host: h, database: shop, username: u}
  mysql: {host: h, database: shop, username: u}
links:
  - name: orders
    source: postgresql
    target: mysql
    tables:
      - {source: public.orders, target: shop.orders, columns: {qty: quantity}}
      - {source: public.items}
"""


def event(op: Op, key: dict, before: dict | None = None, after: dict | None = None) -> ChangeEvent:
    return ChangeEvent(
        node="postgresql",
        engine="postgresql",
        namespace="public.orders",
        op=op,
        key=key,
        before=before,
        after=after,
        commit_time_us=1,
        txid="1",
        position=Position(b"\x01"),
    )


def test_routes_follow_the_links_with_defaults_and_column_maps() -> None:
    routes = build_routes(parse_config(CONFIG))
    by_source = routes_by_source(routes)
    (orders,) = by_source[("postgresql", "public.orders")]
    assert orders.target_node == "mysql" and orders.target_namespace == "shop.orders"
    assert orders.target_column("qty") == "quantity" and orders.target_column("id") == "id"
    (items,) = by_source[("postgresql", "public.items")]
    assert items.target_namespace == "public.items"


def test_a_key_change_becomes_delete_then_upsert() -> None:
    change = event(Op.UPDATE, {"id": 10}, before={"id": 3, "v": 1}, after={"id": 10, "v": 1})
    delete, upsert = split_key_change(change)
    assert (delete.op, delete.key, delete.after) == (Op.DELETE, {"id": 3}, None)
    assert (upsert.op, upsert.key, upsert.after) == (Op.INSERT, {"id": 10}, {"id": 10, "v": 1})
    same_key = event(Op.UPDATE, {"id": 3}, before={"id": 3}, after={"id": 3, "v": 2})
    assert split_key_change(same_key) == [same_key]


@given(
    st.text(max_size=8),
    st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), min_size=1),
    st.integers(1, 64),
)
def test_shards_are_in_range_and_ignore_key_order(namespace: str, key: dict, shards: int) -> None:
    shard = shard_of(namespace, key, shards)
    assert 0 <= shard < shards
    assert shard_of(namespace, dict(reversed(list(key.items()))), shards) == shard


def test_shards_are_the_same_in_another_process() -> None:
    here = [shard_of("public.orders", {"id": i}, 8) for i in range(50)]
    code = (
        "from actors.core.routing import shard_of; print([shard_of('public.orders', {'id': i}, 8) for i in range(50)])"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert str(here) == there.strip()
    assert len(set(here)) == 8  # spread over every shard


def test_low_water_mark_waits_for_every_earlier_batch() -> None:
    progress = StreamProgress()
    progress.received(1, Position(b"\x01"), parts=2, events=10, oldest_commit_time_us=100)
    progress.received(2, Position(b"\x02"), parts=1, events=5, oldest_commit_time_us=200)
    progress.received(3, None, parts=0, events=0, oldest_commit_time_us=0)
    progress.part_done(2)
    assert progress.committable() is None  # batch 1 is still half applied
    assert progress.oldest_pending_commit_time_us() == 100
    progress.part_done(1)
    assert progress.committable() is None
    progress.part_done(1)
    assert progress.committable() == Position(b"\x02")
    assert progress.in_flight == 0 and progress.applied_events == 15
    assert progress.committable() is None
