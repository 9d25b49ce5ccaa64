"""TRUNCATE and added columns in the plan (actors.core.table_events), the column watch of the decoders
(actors.core.schema_changes), the TRUNCATE statement parser of the binlog, and the config's refusals: pure."""

from __future__ import annotations

import msgspec
import pytest

from actors.core.errors import TableChanged
from actors.core.events import AddedColumn, ChangeEvent, Op, Position, added_column_row
from actors.core.groups import build_groups
from actors.core.plan import RoutingPlan
from actors.core.routing import build_routes
from actors.core.schema_changes import NOTHING, ColumnWatch, constant_default
from actors.core.table_events import table_op
from actors.core.typemap import ColumnType
from actors.engines.mariadb.statements import truncated_table
from config import parse_config
from config.errors import ConfigError
from tests.core.test_groups import STAR
from tests.core.test_plan import change

CONFIG = """
audit: {{enabled: false}}
nodes:
  - {{name: pg, engine: postgresql, host: h, database: shop, username: u}}
  - {{name: my, engine: mysql, host: h, database: shop, username: u}}
links:
  - {{name: pg-my, source: pg, target: my, {link}tables: [{{source: public.orders, target: shop.orders{table}}}]}}
"""
QTY = AddedColumn(name="qty", type=ColumnType(family="integer", bits=32), type_text="integer", default="7")


def plan_of(link: str = "", table: str = "", shards: int = 4) -> RoutingPlan:
    config = parse_config(CONFIG.format(link=link, table=table))
    return RoutingPlan(shards, build_routes(config), build_groups(config))


def table_event(op: Op, seq: int, added: AddedColumn | None = None) -> ChangeEvent:
    return ChangeEvent(
        node="pg",
        engine="postgresql",
        namespace="public.orders",
        op=op,
        key={},
        before=None,
        after=None if added is None else added_column_row(added),
        commit_time_us=seq,
        txid=str(seq),
        position=Position(seq.to_bytes(8, "big"), ""),
    )


def stopped(plan: RoutingPlan, events: list[ChangeEvent]) -> TableChanged:
    """The stop a split ends at (the events before it are split as usual)."""
    split = plan.split(events)
    assert split.stopped is not None and split.cut is not None, "the split did not stop"
    sent = sorted(e.position for piece in split.slices.values() for e in piece)
    assert sent == [e.position for e in events[: split.cut]]
    return split.stopped


def rows(first: int, last: int) -> list[ChangeEvent]:
    return [change("pg", "public.orders", {"id": seq}, seq=seq) for seq in range(first, last)]


def test_a_table_whose_truncate_is_applied_goes_to_one_shard_in_stream_order() -> None:
    plan = plan_of(link="truncate: apply, ")
    events = [*rows(0, 50), table_event(Op.TRUNCATE, 50), *rows(51, 100)]
    split = plan.split(events)
    (only,) = split.slices.values()
    assert only == events  # one shard: everything before the TRUNCATE is applied before it, nothing after
    assert [e.op for e in split.own].count(Op.TRUNCATE) == 1  # audited once


def test_an_added_column_goes_to_every_shard_at_its_place_and_is_audited_once() -> None:
    plan = plan_of(link="schema_changes: apply, ")
    added = table_event(Op.SCHEMA, 50, QTY)
    split = plan.split([*rows(0, 50), added, *rows(51, 100)])
    assert sorted(split.slices) == [0, 1, 2, 3]
    for piece in split.slices.values():
        at = piece.index(added)
        assert all(e.position < added.position for e in piece[:at])
        assert all(e.position > added.position for e in piece[at + 1 :])
    assert split.own.count(added) == 1
    assert added.added_column == QTY


def test_stop_is_the_default_and_names_the_table_and_the_fix() -> None:
    plan = plan_of()
    truncated = stopped(plan, [*rows(0, 3), table_event(Op.TRUNCATE, 3), *rows(4, 6)])
    assert plan.split([*rows(0, 3), table_event(Op.TRUNCATE, 3)]).cut == 3  # the rows before it still go
    assert "table `public.orders`: TRUNCATE captured" in str(truncated)
    assert "`truncate: apply`" in str(truncated) and "`truncate: ignore`" in str(truncated)
    added = stopped(plan, [table_event(Op.SCHEMA, 1, QTY)])
    assert "column `qty` (integer) was added" in str(added)
    assert "add column `qty` to `shop.orders` on node `my`" in str(added)


def test_ignore_drops_the_truncate_and_a_table_may_override_its_link() -> None:
    split = plan_of(link="truncate: apply, ", table=", truncate: ignore").split([table_event(Op.TRUNCATE, 1)])
    assert split.slices == {} and split.own == []
    stopped(plan_of(link="truncate: ignore, ", table=", truncate: stop"), [table_event(Op.TRUNCATE, 1)])


def test_a_column_the_table_does_not_send_is_not_added() -> None:
    plan = plan_of(table=", columns_include: [id, total]")  # schema_changes: stop, but qty is not sent anyway
    assert plan.split([table_event(Op.SCHEMA, 1, QTY)]).slices == {}
    plan = plan_of(link="schema_changes: apply, ", table=", columns_exclude: [note]")
    assert len(plan.split([table_event(Op.SCHEMA, 1, QTY)]).own) == 1


def test_the_target_op_uses_the_target_names() -> None:
    config = parse_config(
        CONFIG.format(link="schema_changes: apply, truncate: apply, ", table=", columns: {qty: quantity}")
    )
    (route,) = build_routes(config)
    op = table_op(table_event(Op.SCHEMA, 1, QTY), route)
    assert op is not None and (op.namespace, op.column, op.added) == ("shop.orders", "quantity", QTY)
    truncate = table_op(table_event(Op.TRUNCATE, 2), route)
    assert truncate is not None and truncate.added is None and truncate.column == ""


def test_bidirectional_links_refuse_apply() -> None:
    text = CONFIG.format(link="bidirectional: true, {}", table="")
    for keys in ("truncate: apply, ", "schema_changes: apply, "):
        with pytest.raises((ConfigError, msgspec.ValidationError)) as caught:
            parse_config(text.replace("{}", keys))
        assert "is bidirectional" in str(caught.value)
    parse_config(text.replace("{}", "truncate: ignore, schema_changes: stop, "))


def watch() -> ColumnWatch:
    return ColumnWatch("stream `s`", {"t": ["id", "v"]})


def catalog(*names: str) -> dict[str, AddedColumn]:
    return {name: msgspec.structs.replace(QTY, name=name) for name in names}


def test_the_watch_tells_added_columns_from_history_and_drops() -> None:
    w = watch()
    assert w.knows("t", ["id", "v"], complete=True)
    seen = w.check("t", ["id", "v", "qty"], complete=True, catalog=lambda: catalog("id", "v", "qty"), resync_hint="")
    assert [a.name for a in seen.added] == ["qty"] and not seen.gone
    assert w.knows("t", ["id", "v", "qty"], complete=True)
    # A replay from before the column was added: still in the catalog, so history, not a drop; the column stays
    # known (the replay does not add it again) and the catalog is not asked again for older rows.
    seen = w.check("t", ["id", "v"], complete=True, catalog=lambda: catalog("id", "v", "qty"), resync_hint="")
    assert not seen.added and not seen.gone

    def never() -> dict[str, AddedColumn]:
        raise AssertionError("the catalog was read again")

    assert w.check("t", ["id", "v"], complete=True, catalog=never, resync_hint="") is NOTHING
    assert w.check("t", ["id", "v", "qty"], complete=True, catalog=never, resync_hint="") is NOTHING
    # Once a whole row carries it again, a row without it asks the catalog again (a drop would be noticed).
    assert w.knows("t", ["id", "v", "qty"], complete=True)
    assert not w.knows("t", ["id", "v"], complete=True)
    with pytest.raises(TableChanged):
        w.check("t", ["id", "v"], complete=True, catalog=lambda: catalog("id", "v"), resync_hint="")
    # A column a replayed change carries but the table no longer has: its value is left out.
    seen = w.check(
        "t", ["id", "v", "qty", "old"], complete=True, catalog=lambda: catalog("id", "v", "qty"), resync_hint=""
    )
    assert seen.gone == {"old"}
    # A rename: the old name gone from the catalog, a new one there.
    with pytest.raises(TableChanged) as caught:
        w.check("t", ["id", "v2", "qty"], complete=True, catalog=lambda: catalog("id", "v2", "qty"), resync_hint="X")
    assert "column `v` no longer exists at the source (renamed to `v2`?)" in str(caught.value)
    assert "re-sync the table (X)" in str(caught.value)


def test_an_update_without_some_columns_is_no_drop() -> None:
    w = watch()
    assert w.knows("t", ["id"], complete=False)  # e.g. unchanged TOASTed values left out


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        (None, None),
        ("NULL", None),
        ("7", "7"),
        ("-1.50", "-1.50"),
        ("'n/a'::character varying", "'n/a'"),
        ("'it''s'::text", "'it''s'"),
        ("'x'", "'x'"),
        ("(-3)", "-3"),
    ],
)
def test_constant_defaults(text: str | None, literal: str | None) -> None:
    assert constant_default(text) == literal


@pytest.mark.parametrize("text", ["now()", "nextval('s'::regclass)", "current_timestamp()", "uuid()"])
def test_expression_defaults_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a constant"):
        constant_default(text)


@pytest.mark.parametrize(
    ("query", "table"),
    [
        ("TRUNCATE TABLE `a`.`b`", "a.b"),
        ("truncate b", "db.b"),
        ("TRUNCATE TABLE b /* by cron */", "db.b"),
        ("/* x */ TRUNCATE `we``ird`.e;", "we`ird.e"),
        ("TRUNCATE TABLE a.b, c", None),
        ("ALTER TABLE b ADD COLUMN c int", None),
        ("DELETE FROM b", None),
    ],
)
def test_truncate_statements(query: str, table: str | None) -> None:
    assert truncated_table(query, "db") == table


def group_event(op: Op, added: AddedColumn | None = None) -> ChangeEvent:
    return msgspec.structs.replace(table_event(op, 1, added), node="east")


def test_a_bidirectional_group_stops_by_default_and_may_ignore_a_truncate() -> None:
    config = parse_config(STAR)
    plan = RoutingPlan(3, build_routes(config), build_groups(config))
    truncated = stopped(plan, [group_event(Op.TRUNCATE)])
    assert "bidirectional group" in str(truncated) and "`truncate: ignore`" in str(truncated)
    added = stopped(plan, [group_event(Op.SCHEMA, QTY)])
    assert "add the column on every member yourself" in str(added)
    # `ignore` on every link of the group: the TRUNCATE is dropped, nothing is applied anywhere.
    ignoring = parse_config(
        STAR.replace("conflict_policy: manual\n", "conflict_policy: manual\n    truncate: ignore\n")
    )
    plan = RoutingPlan(3, build_routes(ignoring), build_groups(ignoring))
    assert plan.split([group_event(Op.TRUNCATE)]).slices == {}
    # One link still stopping: the whole group stops.
    half = STAR.replace("conflict_policy: manual\n", "conflict_policy: manual\n    truncate: ignore\n", 1)
    mixed = parse_config(half)
    stopped(RoutingPlan(3, build_routes(mixed), build_groups(mixed)), [group_event(Op.TRUNCATE)])


def test_a_column_added_with_an_expression_default_is_never_added() -> None:
    now = msgspec.structs.replace(QTY, name="made", expression_default="now()")
    caught = stopped(plan_of(link="schema_changes: apply, "), [table_event(Op.SCHEMA, 1, now)])
    assert "column `made` was added with the default `now()`, an expression" in str(caught)
    assert plan_of(table=", columns_include: [id]").split([table_event(Op.SCHEMA, 1, now)]).own == []  # not sent
