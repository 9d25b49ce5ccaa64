"""The start-up check of a shaped table: what it names exists, and the target can hold what is sent.

`run` checks each route's mapping on the table *as sent* (:func:`sent_schema`: selected columns, masked ones
retyped), and, before that, :func:`shape_problems`: rules the shape itself must keep whatever
``lossy_types`` says — a masked value the target column cannot hold (a hash into an integer) would fail on
every row, so it is refused, never warned about.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from actors.core.shaping.masks import MASKED_TYPES
from actors.core.shaping.shape import TableShape
from actors.core.typemap import Column, TableSchema, loss
from config.model import FilterValue, MaskKind

#: Column families a row filter compares, and the kind of value it must list for each.
_FILTER_KINDS: dict[str, type] = {"integer": int, "boolean": bool, "text": str, "enum": str, "uuid": str}


def sent_schema(shape: TableShape, source: TableSchema) -> TableSchema:
    """The source table as the target receives it."""
    columns = []
    for column in source.columns:
        if not shape.sends(column.name, source.primary_key):
            continue
        kind = shape.masks.get(column.name)
        masked = None if kind is None else MASKED_TYPES[kind]
        if kind == "null":
            column = msgspec.structs.replace(column, nullable=True)
        elif masked is not None:
            column = msgspec.structs.replace(column, type=masked, type_text=masked.name)
        columns.append(column)
    return msgspec.structs.replace(source, columns=tuple(columns))


def shape_problems(
    shape: TableShape, source: TableSchema, target: TableSchema, renames: Mapping[str, str]
) -> list[str]:
    """Every rule the shape breaks against these tables, one sentence each (empty: none)."""
    problems: list[str] = []
    named = [("columns_include", n) for n in shape.include or ()] + [("columns_exclude", n) for n in shape.exclude]
    named += [("mask", n) for n in shape.masks] + [("where", n) for n in shape.where]
    problems += [
        f"`{key}` names `{name}`, which is not a column of the source"
        for key, name in named
        if source.column(name) is None
    ]
    key = source.primary_key
    problems += [
        f"`columns_exclude` names key column `{name}`: key columns always travel"
        for name in shape.exclude
        if name in key
    ]
    for name, kind in shape.masks.items():
        if name in key and kind != "hash":
            problems.append(f"key column `{name}` has `mask: {kind}`: a key column may only be masked with `hash`")
        target_column = target.column(renames.get(name, name))
        if target_column is not None and source.column(name) is not None:
            problems += _mask_problems(name, kind, target_column)
    for name, values in shape.where.items():
        column = source.column(name)
        if column is not None:
            problems += _filter_problems(column, values)
    return problems


def _mask_problems(name: str, kind: MaskKind, target: Column) -> list[str]:
    masked = MASKED_TYPES[kind]
    if masked is None:
        if not target.nullable:
            return [f"column `{name}` has `mask: null` but target column `{target.name}` is NOT NULL"]
        return []
    reason = loss(masked, target.type)
    if reason is None:
        return []
    return [
        f"column `{name}` has `mask: {kind}` but target column `{target.name}` {target.type_text} cannot hold "
        f"it ({reason})"
    ]


def _filter_problems(column: Column, values: tuple[FilterValue, ...]) -> list[str]:
    kind = _FILTER_KINDS.get(column.type.family)
    if kind is None:
        return [
            f"`where` filters on `{column.name}` {column.type_text}: row filters compare integer, boolean, text, "
            "enum and uuid columns"
        ]
    wrong = [v for v in values if v is not None and (type(v) is not kind)]
    if not wrong:
        return []
    hint = " (quote YAML words like `no`, `yes`, `on`: unquoted they read as booleans)" if kind is str else ""
    return [
        f"`where` lists {', '.join(repr(v) for v in wrong)} for `{column.name}` {column.type_text}: list "
        f"{kind.__name__} values{hint}"
    ]
