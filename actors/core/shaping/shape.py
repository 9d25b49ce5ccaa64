"""One captured table's shape, and applying it to its change events.

The order is fixed: the row filter decides on the captured (clear) row, then columns are selected and masks
applied to the key, the before-image and the after-image alike, so a clear value of a masked or dropped column
leaves the capture actor nowhere — not in a shard's slice, not at the target, not in the audit log.

Row filters and updates (README, "Shaping what flows"): an update whose new row passes is an upsert (a row
moving in, whose old row failed, becomes an insert carrying its whole row); one whose new row fails deletes the
old key at the target (a row moving out) unless the old row is known to have failed too (then nothing is sent).
"Known" needs the filter columns in the before-image: MariaDB's FULL binlog row image always has them, a
PostgreSQL table needs REPLICA IDENTITY FULL (the start-up check refuses a filtered table without it). Without
them the delete is sent anyway: deleting a row the target does not hold changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from actors.core.errors import SourceMisconfigured
from actors.core.events import UNCHANGED, ChangeEvent, Op, Row
from actors.core.shaping.filters import RowFilter
from actors.core.shaping.masks import masker
from config.model import FilterValue, MaskKind


class TableShape(msgspec.Struct, frozen=True, kw_only=True):
    """What a link's table entry asks of a captured table (config.model.TableMap), and where the masking key
    is read from (never the key itself: it is read in the process that masks)."""

    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    masks: dict[str, MaskKind] = {}
    where: dict[str, tuple[FilterValue, ...]] = {}
    key_env: str | None = None
    key_file: str | None = None

    @property
    def hashes(self) -> bool:
        return "hash" in self.masks.values()

    def sends(self, column: str, key: Mapping[str, Any] | tuple[str, ...]) -> bool:
        """Whether ``column`` travels: key columns always do."""
        if column in key:
            return True
        if self.include is not None:
            return column in self.include
        return column not in self.exclude


class _TableShaper:
    def __init__(self, shape: TableShape, key: bytes | None) -> None:
        self.shape = shape
        self.filter = RowFilter(shape.where) if shape.where else None
        self.masks: dict[str, Callable[[Any], Any]] = {name: masker(kind, key) for name, kind in shape.masks.items()}
        self.selects = shape.include is not None or bool(shape.exclude)

    def apply(self, event: ChangeEvent) -> ChangeEvent | None:
        if self.filter is not None:
            filtered = self._filtered(event)
            if filtered is None:
                return None
            event = filtered
        if not self.selects and not self.masks:
            return event
        return msgspec.structs.replace(
            event,
            key=self._row(event.key, event.key),
            before=None if event.before is None else self._row(event.before, event.key),
            after=None if event.after is None else self._row(event.after, event.key),
        )

    def _row(self, row: Row, key: Row) -> Row:
        shape, masks = self.shape, self.masks
        out = {}
        for name, value in row.items():
            if self.selects and not shape.sends(name, key):
                continue
            mask = masks.get(name)
            out[name] = value if mask is None else mask(value)
        return out

    def _filtered(self, event: ChangeEvent) -> ChangeEvent | None:
        assert self.filter is not None
        was_in = self.filter.matches(event.before)
        if event.op is Op.DELETE:
            return None if was_in is False else event
        after = _completed(event.after, event.before)
        now_in = self.filter.matches(after)
        if now_in is None:
            raise SourceMisconfigured(
                f"row filter on `{event.namespace}` (node `{event.node}`): the change does not carry "
                f"{', '.join(f'`{c}`' for c in self.filter.columns)} - on PostgreSQL set `ALTER TABLE "
                f"{event.namespace} REPLICA IDENTITY FULL`, on MariaDB/MySQL `binlog_row_image=FULL`"
            )
        if event.op is not Op.UPDATE:  # an insert or a snapshot read
            return event if now_in else None
        if now_in:
            if was_in is False:  # moving in: the target has no row yet, so send all of it
                return msgspec.structs.replace(event, op=Op.INSERT, before=None, after=after)
            return msgspec.structs.replace(event, after=after) if after is not event.after else event
        if was_in is False:
            return None  # out before, out after: the target never had it
        # Moving out (or maybe: the before-image cannot tell): delete the row under its old key.
        before = event.before or {}
        old_key = {name: before.get(name, value) for name, value in event.key.items()}
        return msgspec.structs.replace(event, op=Op.DELETE, key=old_key, after=None)


def _completed(after: Row | None, before: Row | None) -> Row | None:
    """The after-image with values the source left out as unchanged taken from the before-image."""
    if after is None or before is None or not any(value is UNCHANGED for value in after.values()):
        return after
    return {name: before.get(name, value) if value is UNCHANGED else value for name, value in after.items()}


class Shaper:
    """Every shaped table of one plan, with the masking key (if any) loaded."""

    def __init__(self, shapes: Mapping[tuple[str, str], TableShape], key: bytes | None = None) -> None:
        self._tables = {where: _TableShaper(shape, key if shape.hashes else None) for where, shape in shapes.items()}

    def __bool__(self) -> bool:
        return bool(self._tables)

    def shape(self, event: ChangeEvent) -> ChangeEvent | None:
        """``event`` as it may leave the capture actor; None when the row filter keeps it back."""
        table = self._tables.get((event.node, event.namespace))
        return event if table is None else table.apply(event)
