"""collapse() and by_table() against a dict model of the target table (no servers)."""

from __future__ import annotations

import pickle
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.changes import RowChange, by_table, collapse
from actors.core.events import UNCHANGED

Table = dict[tuple[str, int], dict[str, Any]]
COLUMNS = ("a", "b", "c")


def apply_model(table: Table, changes: list[RowChange]) -> Table:
    """What a target does: delete removes the row; upsert writes the columns it carries (UNCHANGED ones are
    left alone), inserting the row when missing (columns it does not write are absent = default)."""
    table = {k: dict(v) for k, v in table.items()}
    for change in changes:
        ident = (change.namespace, change.key["id"])
        if change.op == "delete":
            table.pop(ident, None)
            continue
        row = table.setdefault(ident, {})
        for name, value in (change.row or {}).items():
            if value is not UNCHANGED:
                row[name] = value
        row["id"] = change.key["id"]
    return table


def apply_grouped(table: Table, changes: list[RowChange]) -> Table:
    """The writers' order: every delete of the collapsed slice, then every upsert."""
    ordered = [c for c in changes if c.op == "delete"] + [c for c in changes if c.op == "upsert"]
    return apply_model(table, ordered)


values = st.one_of(st.none(), st.integers(-3, 3), st.just(UNCHANGED))
rows = st.dictionaries(st.sampled_from(COLUMNS), values, min_size=0, max_size=3)
changes = st.builds(
    lambda ns, key, op, row: RowChange(ns, op, {"id": key}, row if op == "upsert" else None),
    st.sampled_from(["s.t", "s.u"]),
    st.integers(0, 3),
    st.sampled_from(["upsert", "delete"]),
    rows,
)
existing = st.dictionaries(
    st.tuples(st.sampled_from(["s.t", "s.u"]), st.integers(0, 3)),
    st.fixed_dictionaries({name: st.integers(-3, 3) for name in COLUMNS}),
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(existing, st.lists(changes, max_size=12))
def test_collapsed_slice_has_the_effect_of_the_slice(initial: Table, slice_: list[RowChange]) -> None:
    for ident, row in initial.items():
        row["id"] = ident[1]
    expected = apply_model(initial, slice_)
    collapsed = collapse(slice_)
    assert apply_model(initial, collapsed) == expected
    assert apply_grouped(initial, collapsed) == expected
    # At most [delete, upsert] per key, and applying the result twice changes nothing (idempotence).
    seen: dict[tuple[str, int], list[str]] = {}
    for change in collapsed:
        seen.setdefault((change.namespace, change.key["id"]), []).append(change.op)
    assert all(ops in (["upsert"], ["delete"], ["delete", "upsert"]) for ops in seen.values())
    assert apply_grouped(expected, collapsed) == expected


@settings(max_examples=200, deadline=None)
@given(existing, st.lists(changes, max_size=12), st.integers(0, 12))
def test_replaying_a_suffix_after_the_whole_slice_converges(initial: Table, slice_: list[RowChange], cut: int) -> None:
    """At-least-once delivery: the slice, then again from any point, ends like the slice once."""
    for ident, row in initial.items():
        row["id"] = ident[1]
    once = apply_grouped(initial, collapse(slice_))
    # Every write sets absolute values (or leaves a column alone), and a suffix holds the last write of
    # every column it touches: replaying it re-establishes exactly what it established the first time.
    assert apply_grouped(once, collapse(slice_[cut:])) == once
    assert apply_model(once, slice_[cut:]) == once


def test_unchanged_takes_the_value_of_an_earlier_upsert_in_the_slice() -> None:
    first = RowChange("s.t", "upsert", {"id": 1}, {"id": 1, "a": 1, "big": "x" * 10})
    second = RowChange("s.t", "upsert", {"id": 1}, {"id": 1, "a": 2, "big": UNCHANGED})
    assert collapse([first, second]) == [RowChange("s.t", "upsert", {"id": 1}, {"id": 1, "a": 2, "big": "x" * 10})]
    # Without an earlier upsert it stays UNCHANGED; the writer then leaves the column alone.
    assert collapse([second]) == [second]


def test_insert_update_delete_of_one_key_is_one_delete() -> None:
    key = {"id": 7}
    slice_ = [
        RowChange("s.t", "upsert", key, {"id": 7, "a": 1}),
        RowChange("s.t", "upsert", key, {"id": 7, "a": 2}),
        RowChange("s.t", "delete", key, None),
    ]
    assert collapse(slice_) == [RowChange("s.t", "delete", key, None)]


def test_delete_then_reinsert_keeps_the_delete() -> None:
    key = {"id": 7}
    slice_ = [RowChange("s.t", "delete", key, None), RowChange("s.t", "upsert", key, {"id": 7, "a": UNCHANGED})]
    assert [c.op for c in collapse(slice_)] == ["delete", "upsert"]


def test_key_order_does_not_split_a_key() -> None:
    a = RowChange("s.t", "upsert", {"x": 1, "y": 2}, {"x": 1, "y": 2, "v": 1})
    b = RowChange("s.t", "delete", {"y": 2, "x": 1}, None)
    assert collapse([a, b]) == [b]


def test_upsert_without_row_is_refused() -> None:
    with pytest.raises(ValueError, match="has no row"):
        collapse([RowChange("s.t", "upsert", {"id": 1}, None)])


def test_by_table_groups_upserts_by_written_columns() -> None:
    slice_ = [
        RowChange("s.t", "upsert", {"id": 1}, {"id": 1, "a": 1, "b": 2}),
        RowChange("s.t", "upsert", {"id": 2}, {"b": 3, "a": 4}),  # key columns filled in from the key
        RowChange("s.t", "upsert", {"id": 3}, {"id": 3, "a": 5, "b": UNCHANGED}),
        RowChange("s.u", "delete", {"id": 1}, None),
    ]
    t, u = by_table(slice_)
    assert t.namespace == "s.t" and t.deletes == []
    assert t.upserts == {
        ("a", "b", "id"): [({"id": 1}, {"id": 1, "a": 1, "b": 2}), ({"id": 2}, {"b": 3, "a": 4, "id": 2})],
        ("a", "id"): [({"id": 3}, {"id": 3, "a": 5})],
    }
    assert u.namespace == "s.u" and u.deletes == [{"id": 1}] and u.upserts == {}


def test_row_change_crosses_process_boundaries() -> None:
    """Ray pickles arguments: RowChanges (UNCHANGED included) survive it."""
    change = RowChange("s.t", "upsert", {"id": 1}, {"id": 1, "a": UNCHANGED})
    copy = pickle.loads(pickle.dumps(change))
    assert copy == change and copy.row is not None and copy.row["a"] is UNCHANGED
    delete = RowChange("s.t", "delete", {"id": 1}, None)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(delete), type=RowChange) == delete
