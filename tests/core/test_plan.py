"""The routing plan a capture actor splits its batches by (actors/core/plan.py): pure, no Ray."""

from __future__ import annotations

import decimal
import uuid

import pytest

from actors.core.batches import Batch
from actors.core.encoding import decode_batch, encode_batch, encode_batch_of, encode_events
from actors.core.events import ChangeEvent, Op, Position
from actors.core.groups import build_groups
from actors.core.plan import RoutingPlan
from actors.core.routing import build_routes
from config import parse_config
from tests.core.test_groups import STAR

ONE_WAY = """
audit: {enabled: false}
nodes:
  - {name: pg, engine: postgresql, host: h, database: shop, username: u}
  - {name: my, engine: mysql, host: h, database: shop, username: u}
links:
  - {name: pg-my, source: pg, target: my, tables: [{source: public.orders, target: shop.orders}]}
"""


def change(node: str, namespace: str, key: dict, *, seq: int, op: Op = Op.UPDATE, **fields: object) -> ChangeEvent:
    after = {**key, "v": seq} if op is not Op.DELETE else None
    return ChangeEvent(
        node=node,
        engine="postgresql" if node != "hub" else "mysql",
        namespace=namespace,
        op=op,
        key=key,
        before=fields.pop("before", None),  # type: ignore[arg-type]
        after=after,
        commit_time_us=1_000 + seq,
        txid=str(seq),
        position=Position(seq.to_bytes(8, "big"), ""),
        origin=fields.pop("origin", None),  # type: ignore[arg-type]
    )


def plan_of(text: str, shards: int) -> RoutingPlan:
    config = parse_config(text)
    return RoutingPlan(shards, build_routes(config), build_groups(config))


@pytest.mark.parametrize("shards", [1, 2, 5])
def test_each_change_goes_to_one_shard_and_each_key_keeps_its_order(shards: int) -> None:
    plan = plan_of(ONE_WAY, shards)
    events = [change("pg", "public.orders", {"id": seq % 17}, seq=seq) for seq in range(400)]
    split = plan.split(events)
    assert sorted(e.position for piece in split.slices.values() for e in piece) == [e.position for e in events]
    assert set(split.slices) <= set(range(shards))
    if shards > 1:
        assert len(split.slices) > 1, "17 keys over several shards all landed on one"
    for piece in split.slices.values():
        assert [e.position for e in piece] == sorted(e.position for e in piece)
    homes = {(e.key["id"], index) for index, piece in split.slices.items() for e in piece}
    assert len(homes) == 17, "a key was split across shards"
    assert split.own == events and split.echoes == {}


def test_a_key_change_is_a_delete_of_the_old_key_and_an_upsert_of_the_new_one() -> None:
    plan = plan_of(ONE_WAY, 7)
    moved = change("pg", "public.orders", {"id": 2}, seq=1, before={"id": 1, "v": 0})
    split = plan.split([moved])
    parts = {(index, e.op, e.key["id"]) for index, piece in split.slices.items() for e in piece}
    assert parts == {(plan.shard(e), e.op, e.key["id"]) for piece in split.slices.values() for e in piece}
    assert {(op, key) for _, op, key in parts} == {(Op.DELETE, 1), (Op.INSERT, 2)}
    assert split.own == [moved], "the audit log records the change as it was made, unsplit"


def test_echoes_are_dropped_and_counted_and_one_row_of_a_group_has_one_shard_on_every_member() -> None:
    plan = plan_of(STAR, 8)
    (group,) = build_groups(parse_config(STAR))
    # The same logical row, as each member names its key (the group renames only non-key columns here).
    members = {"east": "public.orders", "hub": "shop.orders", "west": "public.orders"}
    for key in range(50):
        homes = {plan.shard(change(node, ns, {"id": key}, seq=1)) for node, ns in members.items()}
        assert len(homes) == 1, f"key {key} lands on shards {homes}"
    echo = change("hub", "shop.orders", {"id": 1}, seq=2, origin="east")
    mine = change("hub", "shop.orders", {"id": 1}, seq=3)
    split = plan.split([echo, mine])
    assert split.echoes == {group.name: 1}
    assert split.own == [mine]
    assert [e for piece in split.slices.values() for e in piece] == [mine]


def test_a_batch_assembled_from_encoded_events_is_the_batch_encoded_whole() -> None:
    events = [
        change("pg", "public.orders", {"id": 1}, seq=1),
        change("pg", "public.orders", {"id": uuid.UUID(int=5)}, seq=2, op=Op.DELETE),
        change("pg", "public.orders", {"id": decimal.Decimal("1.50")}, seq=3),
    ]
    batch = Batch("pg", 9, events, Position(b"\x00" * 8, "x"), True, 77, 88)
    assembled = encode_batch_of(batch, encode_events(events))
    assert assembled == encode_batch(batch)
    assert decode_batch(assembled) == batch


def test_a_plan_needs_a_shard() -> None:
    with pytest.raises(ValueError, match="at least one shard"):
        RoutingPlan(0, [], [])
