"""Telling added, dropped and renamed columns apart in a change stream, for every engine's decoder alike.

Neither source says "column added" in a form we can trust: wal2json sends no DDL at all, and a MariaDB ALTER
is free text. What both do send is each change's column names (wal2json's ``columns``, the binlog's table
map), in the table's definition *as of that change*. So a decoder keeps the names it has seen per table
(:class:`ColumnWatch`) and compares:

* a name it has not seen: a column added (when the source's catalog has it now: an ``AddedColumn`` event goes
  out before the change) or one dropped since (a replay after a restart: the catalog no longer has it, so its
  value is left out - nowhere to write it);
* a whole row (an insert; a binlog table map) lacking a name it has seen: either older history (a replay from
  before the column was added: the catalog still has it, nothing to do - the column stays known, so the replay
  does not send it again: the target got it before the position the replay starts from was committed, or,
  under `stop`, the operator added it) or a column dropped or renamed: :class:`TableChanged`, always - a
  rename looks like a drop plus an add, and Worker-Sync never guesses which it was.

Pure: the catalog is read through the callback the decoder passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from actors.core.errors import TableChanged
from actors.core.events import AddedColumn
from actors.core.typemap import TableSchema

#: A default Worker-Sync can rebuild at any target: a number, or a quoted string, optionally with a
#: PostgreSQL cast (``'n/a'::character varying``) that is left out.
_NUMBER = re.compile(r"^\(?(-?\d+(?:\.\d+)?)\)?$")
_STRING = re.compile(r"^'(?:[^']|'')*'$")
_CAST = re.compile(r"^(.*?)::[a-z_ ]+(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])?$", re.IGNORECASE | re.DOTALL)


def constant_default(text: str | None) -> str | None:
    """The default as a portable SQL literal (None: no default, or NULL); ValueError for an expression
    (``now()``, ``nextval(...)``), whose values at the source cannot be rebuilt at a target."""
    if text is None:
        return None
    value = text.strip()
    while (cast := _CAST.match(value)) is not None:
        value = cast.group(1).strip()
    if value.upper() == "NULL":
        return None
    number = _NUMBER.match(value)
    if number is not None:
        return number.group(1)
    if _STRING.match(value):
        return value
    raise ValueError(f"default `{text}` is not a constant")


def added_columns(schema: TableSchema, defaults: Mapping[str, str | None]) -> dict[str, AddedColumn]:
    """Every column of a source table as an AddedColumn (what a target needs to add it), from its schema and the
    catalog's text of each column's default."""
    columns = {}
    for column in schema.columns:
        text = defaults.get(column.name)
        try:
            default, expression = constant_default(text), None
        except ValueError:
            default, expression = None, text
        columns[column.name] = AddedColumn(
            name=column.name,
            type=column.type,
            type_text=column.type_text,
            nullable=column.nullable,
            default=default,
            expression_default=expression,
        )
    return columns


@dataclass(frozen=True)
class Seen:
    """What one change's column names tell (see the module docstring)."""

    #: Columns added since the last change, as the catalog describes them: send these first.
    added: tuple[AddedColumn, ...] = ()
    #: Names the change carries that the table no longer has (a replay): leave their values out.
    gone: frozenset[str] = frozenset()


NOTHING = Seen()


class ColumnWatch:
    """The column names a stream has seen per captured table (initially: the catalog's at start)."""

    def __init__(self, subject: str, known: Mapping[str, Iterable[str]]) -> None:
        self.subject = subject
        self._seen = {namespace: set(names) for namespace, names in known.items()}
        #: Per table, known columns older changes lack (history, confirmed by the catalog once).
        self._optional: dict[str, set[str]] = {}

    def knows(self, namespace: str, names: Collection[str], *, complete: bool) -> bool:
        """The fast check: True when ``names`` tell nothing new (no :meth:`check` needed)."""
        seen = self._seen.get(namespace)
        if seen is None:
            return True
        if complete and len(names) != len(seen):
            return False
        if not all(name in seen for name in names):
            return False
        if complete and self._optional.get(namespace):
            self._optional[namespace].clear()  # the whole row again: a later drop of those columns is noticed
        return True

    def check(
        self,
        namespace: str,
        names: Collection[str],
        *,
        complete: bool,
        catalog: Callable[[], Mapping[str, AddedColumn]],
        resync_hint: str,
    ) -> Seen:
        """What ``names`` (a change's columns; ``complete``: every column of the table, as an insert or a table
        map has) tell; ``catalog()`` reads the table's columns now. TableChanged for a dropped or renamed column."""
        seen = self._seen.setdefault(namespace, set(names))
        optional = self._optional.setdefault(namespace, set())
        new = [name for name in names if name not in seen]
        missing = seen.difference(names).difference(optional) if complete else set()
        if not new and not missing:
            return NOTHING
        current = catalog()
        dropped = sorted(name for name in missing if name not in current)
        if dropped:
            raise TableChanged(
                _dropped(self.subject, namespace, dropped, [n for n in new if n in current], resync_hint)
            )
        added = tuple(current[name] for name in new if name in current)
        gone = frozenset(name for name in new if name not in current)
        optional.update(missing)  # older history: the catalog is not asked again for these
        seen.update(column.name for column in added)
        return Seen(added, gone)


def _dropped(subject: str, namespace: str, dropped: list[str], new: list[str], resync_hint: str) -> str:
    names = ", ".join(f"`{name}`" for name in dropped)
    renamed = f" (renamed to {', '.join(f'`{name}`' for name in new)}?)" if new else ""
    return (
        f"{subject}: table `{namespace}`: column {names} no longer exists at the source{renamed} - a dropped or "
        "renamed column is never carried (Worker-Sync does not guess which it was): make the target table match "
        f"(drop or rename the column there too), then re-sync the table ({resync_hint})"
    )
