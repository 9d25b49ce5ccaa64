"""Shaping what flows (actors/core/shaping): column selection, masks and row filters, pure, no servers."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from actors.core.errors import ConfigError, SourceMisconfigured
from actors.core.events import UNCHANGED, ChangeEvent, Op, Position
from actors.core.groups import build_groups
from actors.core.plan import RoutingPlan
from actors.core.routing import build_routes, split_key_change
from actors.core.shaping.check import sent_schema, shape_problems
from actors.core.shaping.key import load_mask_key
from actors.core.shaping.masks import REDACTED
from actors.core.shaping.shape import Shaper, TableShape
from actors.core.typemap import Column, ColumnType, TableSchema
from config import parse_config

KEY = b"k" * 32


def event(op: Op, *, before: dict | None = None, after: dict | None = None, key: dict | None = None) -> ChangeEvent:
    row = after if after is not None else before
    assert row is not None
    return ChangeEvent(
        node="pg",
        engine="postgresql",
        namespace="public.customers",
        op=op,
        key=key if key is not None else {"id": row["id"]},
        before=before,
        after=after,
        commit_time_us=1,
        txid="1",
        position=Position(b"\x01", ""),
    )


def shaper(**shape: object) -> Shaper:
    return Shaper({("pg", "public.customers"): TableShape(**shape)}, KEY)  # type: ignore[arg-type]


def hashed(value: str) -> str:
    return hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()


ROW = {"id": 1, "email": "a@b.example", "ssn": "123", "name": "Ann", "region": "eu", "note": "x"}


# -- columns and masks ---------------------------------------------------------------------------------


def test_excluded_columns_leave_neither_image_and_the_key_always_travels() -> None:
    out = shaper(exclude=("note", "ssn")).shape(event(Op.UPDATE, before=ROW, after={**ROW, "name": "Bo"}))
    assert out is not None
    assert out.after == {"id": 1, "email": "a@b.example", "name": "Bo", "region": "eu"}
    assert out.before is not None and "ssn" not in out.before and "note" not in out.before
    only = shaper(include=("name",)).shape(event(Op.INSERT, after=ROW))
    assert only is not None and only.after == {"id": 1, "name": "Ann"} and only.key == {"id": 1}


def test_masks_hash_redact_and_null_every_image_and_keep_null_and_unchanged() -> None:
    masks = {"email": "hash", "ssn": "redact", "name": "null"}
    out = shaper(masks=masks).shape(event(Op.UPDATE, before=ROW, after={**ROW, "ssn": None, "note": UNCHANGED}))
    assert out is not None and out.after is not None and out.before is not None
    assert out.after["email"] == out.before["email"] == hashed("a@b.example")
    assert out.after["ssn"] is None and out.before["ssn"] == REDACTED
    assert out.after["name"] is None and out.before["name"] is None
    assert out.after["note"] is UNCHANGED
    assert "a@b.example" not in repr(out) and "123" not in repr(out)


def test_a_hash_is_keyed_and_the_same_for_the_same_text_whatever_the_type() -> None:
    by_int = shaper(masks={"id": "hash"}).shape(event(Op.INSERT, after={"id": 42}))
    by_text = shaper(masks={"id": "hash"}).shape(event(Op.INSERT, after={"id": "42"}))
    other_key = Shaper({("pg", "public.customers"): TableShape(masks={"id": "hash"})}, b"o" * 32)
    assert by_int is not None and by_text is not None
    assert by_int.key == by_text.key == {"id": hashed("42")}
    assert other_key.shape(event(Op.INSERT, after={"id": 42})).key != by_int.key  # type: ignore[union-attr]


def test_a_hashed_key_still_splits_a_key_change_into_delete_and_insert() -> None:
    change = event(Op.UPDATE, before={"id": 1, "v": 1}, after={"id": 2, "v": 1}, key={"id": 2})
    out = shaper(masks={"id": "hash"}).shape(change)
    assert out is not None
    delete, insert = split_key_change(out)
    assert delete.op is Op.DELETE and delete.key == {"id": hashed("1")}
    assert insert.op is Op.INSERT and insert.key == {"id": hashed("2")}


def test_without_the_key_loaded_a_hash_refuses_rather_than_pass_the_value() -> None:
    unkeyed = Shaper({("pg", "public.customers"): TableShape(masks={"email": "hash"})})
    with pytest.raises(ValueError, match="masking key"):
        unkeyed.shape(event(Op.INSERT, after=ROW))


# -- row filters -----------------------------------------------------------------------------------------

EU = {"region": ("eu", "ch")}


@pytest.mark.parametrize(("region", "passes"), [("eu", True), ("ch", True), ("us", False), (None, False)])
def test_inserts_and_snapshot_reads_pass_only_inside_the_filter(region: str | None, passes: bool) -> None:
    for op in (Op.INSERT, Op.READ):
        out = shaper(where=EU).shape(event(op, after={**ROW, "region": region}))
        assert (out is not None) is passes


def test_null_matches_only_a_listed_null() -> None:
    out = shaper(where={"region": ("eu", None)}).shape(event(Op.INSERT, after={**ROW, "region": None}))
    assert out is not None


def test_an_update_moving_a_row_in_becomes_an_insert_of_the_whole_row() -> None:
    before = {**ROW, "region": "us"}
    out = shaper(where=EU).shape(event(Op.UPDATE, before=before, after={**ROW, "note": UNCHANGED}))
    assert out is not None and out.op is Op.INSERT and out.before is None
    assert out.after == ROW  # the unchanged (TOASTed) value taken from the before-image


def test_an_update_moving_a_row_out_deletes_it_under_its_old_key() -> None:
    change = event(Op.UPDATE, before=ROW, after={**ROW, "id": 7, "region": "us"}, key={"id": 7})
    out = shaper(where=EU).shape(change)
    assert out is not None and out.op is Op.DELETE and out.key == {"id": 1} and out.after is None


def test_rows_outside_the_filter_before_and_after_send_nothing() -> None:
    outside = {**ROW, "region": "us"}
    assert shaper(where=EU).shape(event(Op.UPDATE, before=outside, after={**outside, "name": "Z"})) is None
    assert shaper(where=EU).shape(event(Op.DELETE, before=outside)) is None


def test_without_the_old_row_an_update_out_of_the_filter_is_a_delete_anyway() -> None:
    out = shaper(where=EU).shape(event(Op.UPDATE, before=None, after={**ROW, "region": "us"}))
    assert out is not None and out.op is Op.DELETE
    assert shaper(where=EU).shape(event(Op.DELETE, before={"id": 1})) is not None


def test_a_filter_column_neither_image_carries_stops_the_stream_with_the_remedy() -> None:
    with pytest.raises(SourceMisconfigured, match="REPLICA IDENTITY FULL"):
        shaper(where=EU).shape(event(Op.UPDATE, before=None, after={**ROW, "region": UNCHANGED}))


def test_filters_on_a_clear_value_and_masks_after() -> None:
    out = shaper(where={"email": ("a@b.example",)}, masks={"email": "hash"}).shape(event(Op.INSERT, after=ROW))
    assert out is not None and out.after is not None and out.after["email"] == hashed("a@b.example")


# -- the plan: slices and the audited part hold only shaped changes ----------------------------------------

SHAPED = """
audit: {enabled: false}
masking: {key_env: WS_TEST_MASK_KEY}
nodes:
  - {name: pg, engine: postgresql, host: h, database: shop, username: u}
  - {name: my, engine: mysql, host: h, database: shop, username: u}
links:
  - name: pg-my
    source: pg
    target: my
    tables:
      - {source: public.customers, target: shop.customers, columns_exclude: [note], mask: {email: hash},
         where: {region: [eu]}}
"""


def test_the_plan_shapes_before_splitting_so_no_clear_value_reaches_a_slice_or_the_audit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WS_TEST_MASK_KEY", KEY.hex())
    config = parse_config(SHAPED)
    plan = RoutingPlan(2, build_routes(config), build_groups(config)).keyed()
    events = [event(Op.INSERT, after={**ROW, "id": i, "region": "eu" if i % 2 else "us"}) for i in range(10)]
    split = plan.split(events)
    sent = [e for piece in split.slices.values() for e in piece]
    assert sorted(e.key["id"] for e in sent) == [1, 3, 5, 7, 9]
    assert [e.key["id"] for e in split.own] == [1, 3, 5, 7, 9]
    for e in sent + split.own:
        assert e.after is not None and e.after["email"] == hashed("a@b.example") and "note" not in e.after


# -- config and start-up checks ----------------------------------------------------------------------------

BASE = """
audit: {enabled: false}
nodes:
  - {name: pg, engine: postgresql, host: h, database: shop, username: u}
  - {name: my, engine: mysql, host: h, database: shop, username: u}
links:
"""


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        (
            "  - {name: l, source: pg, target: my, tables: [{source: public.c, columns_include: [a], "
            "columns_exclude: [b]}]}",
            "set `columns_include` or `columns_exclude`, not both",
        ),
        (
            "  - {name: l, source: pg, target: my, tables: [{source: public.c, columns_exclude: [a], "
            "mask: {a: null}}]}",
            "column `a` is masked but excluded",
        ),
        (
            "  - {name: l, source: pg, target: my, tables: [{source: public.c, mask: {a: hash}}]}",
            "no key is named: set `masking.key_env` or `masking.key_file` - at `$.links[0].tables[0].mask`",
        ),
        (
            "  - {name: l, source: pg, target: my, tables: [{source: public.c, where: {a: []}}]}",
            "`where` lists no value for column `a`",
        ),
        (
            "  - {name: l, source: pg, target: my, bidirectional: true, tables: [{source: public.c, where: {a: [1]}}]}",
            "link `l` is bidirectional but table `public.c` sets",
        ),
    ],
)
def test_config_mistakes_are_refused_on_load(links: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + links + "\n", source="site.yaml")
    assert str(caught.value).startswith("site.yaml: ")
    assert expected in str(caught.value)


def test_two_links_shaping_one_table_differently_are_refused() -> None:
    text = (
        BASE
        + "  - {name: a, source: pg, target: my, tables: [{source: public.c, columns_exclude: [x]}]}\n"
        + "  - {name: b, source: pg, target: my, tables: [{source: public.c, target: shop.c2}]}\n"
    )
    with pytest.raises(ConfigError, match="shape it differently"):
        build_routes(parse_config(text))


def test_a_shaped_table_that_a_bidirectional_link_also_syncs_is_refused() -> None:
    text = (
        BASE
        + "  - {name: a, source: pg, target: my, bidirectional: true, tables: [{source: public.c, target: shop.c}]}\n"
        + "  - {name: b, source: pg, target: my, tables: [{source: public.c, target: shop.c2, mask: {x: null}}]}\n"
    )
    with pytest.raises(ConfigError, match="a bidirectional table must travel whole"):
        build_routes(parse_config(text))


def column(name: str, family: str, *, length: int | None = None, nullable: bool = True) -> Column:
    kind = ColumnType(family=family, name=family, length=length)  # type: ignore[arg-type]
    return Column(name=name, type=kind, type_text=family, nullable=nullable)


SOURCE = TableSchema(
    namespace="public.c",
    columns=(column("id", "integer", nullable=False), column("email", "text"), column("n", "integer")),
    primary_key=("id",),
)


def test_start_up_refuses_what_the_target_cannot_hold_or_the_key_cannot_take() -> None:
    target = TableSchema(
        namespace="shop.c",
        columns=(
            column("id", "integer", nullable=False),
            column("email", "integer"),
            column("n", "integer", nullable=False),
        ),
        primary_key=("id",),
    )
    shape = TableShape(masks={"email": "hash", "id": "redact", "n": "null"}, exclude=("id",), where={"n": ("1",)})
    problems = " | ".join(shape_problems(shape, SOURCE, target, {}))
    assert "key column `id` has `mask: redact`" in problems
    assert "`columns_exclude` names key column `id`" in problems
    assert "column `email` has `mask: hash` but target column `email` integer cannot hold it" in problems
    assert "`mask: null` but target column `n` is NOT NULL" in problems
    assert "`where` lists '1' for `n` integer: list int values" in problems


def test_the_mapping_is_checked_on_the_table_as_sent() -> None:
    sent = sent_schema(TableShape(include=("email",), masks={"email": "hash"}), SOURCE)
    assert [c.name for c in sent.columns] == ["id", "email"]
    email = sent.column("email")
    assert email is not None and email.type.length == 64 and email.type.family == "text"


def test_a_short_masking_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("short")
    with pytest.raises(ConfigError, match="fewer than 32"):
        load_mask_key(env=None, file=str(path))
    path.write_text(KEY.hex() + "\n")
    assert load_mask_key(env=None, file=str(path)) == KEY
