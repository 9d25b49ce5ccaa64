"""`verify --repair`: make each differing target row the source's current row again.

The source row is read as the node's capture types a change, renamed to the target's columns and written
by the target engine's own writer (actors.engines.registry.build_writer), in one transaction: an upsert,
or a delete where the source no longer has the key. This goes straight to the target, not through a
running pipeline: a change to the same key in flight meanwhile still lands after it (writes are absolute
values, so the newer change wins). With the audit trail on, the repair is a `repair` admin entry naming
the link, the table and the keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from actors.core.changes import RowChange
from actors.engines.registry import build_writer
from actors.engines.rows import RowReader
from actors.ops.verify_scan import Suspect, TablePair
from config.model import Node


class Repaired(msgspec.Struct, kw_only=True):
    upserts: int = 0
    deletes: int = 0
    audit_entry: int | None = None


def repair_changes(pair: TablePair, source: RowReader, differences: Sequence[Suspect]) -> list[RowChange]:
    """The target writes that put the source's current rows (or their absence) in place."""
    names = {s.name: t.name for s, t in zip(pair.source.columns, pair.target.columns, strict=True)}
    changes = []
    for difference in differences:
        # One key per read: rows come back keyed by their typed values, which need not equal the key as read.
        found = source.captured_rows(pair.source, [difference.read_key])
        if found:
            row = found[0]
            key = {names[k]: row[k] for k in pair.source.key}
            changes.append(RowChange(pair.target.namespace, "upsert", key, {to: row[col] for col, to in names.items()}))
        elif difference.target_key is not None:
            key = dict(zip(pair.target.key, difference.target_key, strict=True))
            changes.append(RowChange(pair.target.namespace, "delete", key, None))
    return changes


def repair(pair: TablePair, source: RowReader, target_node: Node, differences: Sequence[Suspect]) -> Repaired:
    changes = repair_changes(pair, source, differences)
    if changes:
        with build_writer(pair.target_node, target_node) as writer:
            writer.apply(changes)
    return Repaired(upserts=sum(c.op == "upsert" for c in changes), deletes=sum(c.op == "delete" for c in changes))
