"""Row filters: `where: {column: [values]}`, evaluated on a captured row.

A row passes when every listed column holds one of its values. NULL matches only a listed ``null`` (so
without it, a NULL keeps the row out, as in SQL's ``IN``). Values compare as Python compares them once UUIDs
are read as text: integers with integral decimals, ``true``/``false`` with 1/0 (MariaDB's BOOLEAN is a
TINYINT), text exactly (case and trailing spaces count). The start-up check (actors.core.shaping.check)
refuses listed values of the wrong kind for the column, so a filter never silently matches nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from actors.core.events import Unchanged, UnsentNumber
from config.model import FilterValue


class RowFilter:
    """One table's predicate."""

    def __init__(self, where: Mapping[str, tuple[FilterValue, ...] | list[FilterValue]]) -> None:
        self.columns = tuple(where)
        self._allowed = {name: frozenset(values) for name, values in where.items()}

    def matches(self, row: Mapping[str, Any] | None) -> bool | None:
        """Whether ``row`` passes; None when it cannot be told (a filter column missing or not sent)."""
        if row is None:
            return None
        for name, allowed in self._allowed.items():
            if name not in row:
                return None
            value = row[name]
            if isinstance(value, Unchanged | UnsentNumber):
                return None
            if isinstance(value, uuid.UUID):
                value = str(value)
            try:
                if value not in allowed:
                    return False
            except TypeError:  # an unhashable value (JSON) is never one of the listed scalars
                return False
        return True
