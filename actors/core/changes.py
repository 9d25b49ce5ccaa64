"""Row changes as writers apply them: the seam between the router (events -> target rows) and the writers.

The router turns each captured :class:`~actors.core.events.ChangeEvent` into one or two ``RowChange``\\ s in
*target* terms (target table, target column names, key by the target's primary key); a key change becomes
``delete(old key)`` followed by ``upsert(new key)``. Writers only ever see ``RowChange``\\ s.

Both operations are *blind writes*: an upsert sets the columns it carries to the values it carries, whatever
the row held; a delete removes the row if it is there. That is what makes replays harmless (see
:func:`collapse` and the writers' docstrings).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from operator import itemgetter
from typing import Any, Literal

import msgspec

from actors.core.events import UNCHANGED


class RowChange(msgspec.Struct, frozen=True, array_like=True):
    """The net change one target row must receive."""

    #: The TARGET table: "schema.table" (PostgreSQL) or "database.table" (MariaDB).
    namespace: str
    op: Literal["upsert", "delete"]
    #: Target column names -> values of the target's primary key.
    key: dict[str, Any]
    #: upsert: the full after-image in target column names; it may hold UNCHANGED values ("leave the
    #: target's value alone"). None for deletes.
    row: dict[str, Any] | None


RowId = tuple[str, Hashable]


def row_id(change: RowChange) -> RowId:
    """(namespace, key) as a hashable value; equal keys give equal ids whatever the dict order."""
    key = change.key
    if len(key) == 1:  # the common single-column key: nothing to sort (called for every change)
        return change.namespace, tuple(key.items())
    return change.namespace, tuple(sorted(key.items(), key=itemgetter(0)))


def _merge(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """``later`` applied over ``earlier``: what the row holds after both upserts, column by column.

    An UNCHANGED column of ``later`` keeps ``earlier``'s value (itself possibly UNCHANGED); columns only
    ``earlier`` carries stay written, since applying ``earlier`` wrote them.
    """
    merged = dict(earlier)
    for name, value in later.items():
        if value is not UNCHANGED or name not in merged:
            merged[name] = value
    return merged


def collapse(changes: Sequence[RowChange]) -> list[RowChange]:
    """The net change per (namespace, key) of an ordered slice; applying it equals applying the slice.

    Per key the result is ``[upsert]``, ``[delete]`` or ``[delete, upsert]``, in order of each key's first
    appearance. The last operation wins; consecutive upserts merge (a later UNCHANGED column takes the
    value of an earlier upsert of the same key in the slice, or stays UNCHANGED when there is none).

    A delete followed by upserts keeps the delete: the upsert then inserts a new row in which columns it
    does not write (UNCHANGED, or missing) take their defaults, whereas without the delete they would
    keep the old row's values. So the result is exact for any target, without knowing its columns.
    Applying every delete of the result before every upsert is also exact, since no key appears twice
    with the upsert first.
    """
    state: dict[RowId, tuple[RowChange | None, RowChange | None]] = {}
    for change in changes:
        ident = row_id(change)
        deleted, upsert = state.get(ident, (None, None))
        if change.op == "delete":
            state[ident] = (change, None)
        elif change.row is None:
            raise ValueError(f"upsert into `{change.namespace}` for key {change.key!r} has no row")
        elif upsert is None:
            state[ident] = (deleted, change)
        else:
            merged = _merge(upsert.row or {}, change.row)
            state[ident] = (deleted, RowChange(change.namespace, "upsert", change.key, merged))
    result: list[RowChange] = []
    for deleted, upsert in state.values():
        if deleted is not None:
            result.append(deleted)
        if upsert is not None:
            result.append(upsert)
    return result


class TableChanges(msgspec.Struct, frozen=True):
    """One table's share of a collapsed slice, ready for batched statements."""

    namespace: str
    #: Keys to delete (each a dict of key columns).
    deletes: list[dict[str, Any]]
    #: Written column names (sorted) -> rows that write exactly those columns (UNCHANGED ones left out,
    #: key columns always in). One multi-row INSERT per group.
    upserts: dict[tuple[str, ...], list[tuple[dict[str, Any], dict[str, Any]]]]


def by_table(changes: Sequence[RowChange]) -> list[TableChanges]:
    """Collapse a slice and group it per table, upserts by written column set (tables in first-seen order).

    Each upsert entry is ``(key, written)``: ``written`` is the row without UNCHANGED columns and with
    the key columns set from ``key`` (a row that lacks them still lands on its key).
    """
    deletes: dict[str, list[dict[str, Any]]] = {}
    upserts: dict[str, dict[tuple[str, ...], list[tuple[dict[str, Any], dict[str, Any]]]]] = {}
    #: Column names in a row's own order -> sorted: rows of one table mostly share their order, so each
    #: distinct order is sorted once per slice instead of once per row.
    column_sets: dict[tuple[str, ...], tuple[str, ...]] = {}
    for change in collapse(changes):
        deletes.setdefault(change.namespace, [])
        groups = upserts.setdefault(change.namespace, {})
        if change.op == "delete":
            deletes[change.namespace].append(change.key)
            continue
        written = {name: value for name, value in (change.row or {}).items() if value is not UNCHANGED}
        written.update(change.key)
        names = tuple(written)
        column_set = column_sets.get(names)
        if column_set is None:
            column_set = column_sets[names] = tuple(sorted(names))
        groups.setdefault(column_set, []).append((change.key, written))
    return [TableChanges(ns, deletes[ns], upserts[ns]) for ns in deletes]
