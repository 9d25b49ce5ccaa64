"""Reading one node's table by key ranges for `worker-sync verify`: digests, canonical rows, captured rows.

Engine-neutral: the SQL every SQL engine shares (key ranges as row-value comparisons, ``LIMIT/OFFSET`` to
find range bounds, ``IN`` lists of keys) is built here; each engine's subclass supplies quoting, parameter
placeholders, the canonical text of a column in SQL (actors.core.rowdigest) and the MD5 aggregate.

Keys cross from one side to the other as the values one driver returned (a PostgreSQL UUID, a MariaDB
string): :meth:`RowReader.params` passes them through this engine's writer conversions, the same ones a
synced change's key goes through, so a bound read at the source selects the same rows at the target.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from actors.core.rowdigest import canonical
from actors.core.typemap import Column, TableSchema

#: A key as one side's driver returned it, in the view's key order; None bounds a range on that side.
Key = tuple[Any, ...]
Bound = Key | None
#: (key as read, canonical key texts, canonical row texts in the view's column order).
CanonicalRow = tuple[Key, tuple[str | None, ...], tuple[str | None, ...]]
#: Keys per ``IN (...)`` statement.
KEYS_PER_STATEMENT = 500


@dataclass(frozen=True)
class TableView:
    """The compared columns of one side of a table pair: this side's names, in the source's column order."""

    namespace: str
    columns: tuple[Column, ...]
    #: Key column names (this side's), in the source's key order.
    key: tuple[str, ...]
    #: Hash in the database (both sides must agree: see :meth:`RowReader.supports`); else read rows and hash here.
    in_database: bool = True

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


class RowReader(abc.ABC):
    """One connection to one node, reading the tables `verify` compares (never writing)."""

    def __init__(self, node: str) -> None:
        self.node = node

    # --- engine specifics ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def schema(self, namespace: str) -> TableSchema:
        """The table's columns; ConfigError when it is missing or has no primary key."""

    @abc.abstractmethod
    def log_position(self) -> bytes:
        """Where the node's change log ends now, comparable with its stream's ``Position.order``."""

    @abc.abstractmethod
    def quote(self, name: str) -> str: ...

    @abc.abstractmethod
    def qualified(self, namespace: str) -> str: ...

    @abc.abstractmethod
    def placeholder(self, view: TableView, column: str) -> str:
        """The parameter marker for a value of ``column`` (with a cast where the engine needs one)."""

    @abc.abstractmethod
    def convert_key(self, view: TableView, column: str, value: Any) -> Any:
        """A key value read at either side as this engine's parameter for ``column``."""

    @abc.abstractmethod
    def canonical_sql(self, column: Column) -> str | None:
        """SQL giving the canonical text of ``column`` (NULL for null); None where SQL has no exact form."""

    @abc.abstractmethod
    def digest_sql(self, row_parts: list[str]) -> str:
        """``count, sum`` select list over rows whose parts (``'N'`` or ``'V<len>:<text>'``) are given."""

    @abc.abstractmethod
    def part_sql(self, column: Column, text: str) -> str:
        """One column's part of the row text: ``N`` or ``V<length>:<text>``."""

    @abc.abstractmethod
    def captured_select(self, view: TableView) -> tuple[str, Any]:
        """(select list, typer) reading whole rows as the capture types them; ``typer(raw) -> dict``."""

    @abc.abstractmethod
    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    # --- the shared SQL ------------------------------------------------------------------------------------

    def supports(self, view: TableView) -> bool:
        """Whether every compared column has an exact SQL form here (the digest can be computed in the database)."""
        return all(self.canonical_sql(c) is not None for c in view.columns)

    def params(self, view: TableView, key: Key) -> list[Any]:
        return [self.convert_key(view, name, value) for name, value in zip(view.key, key, strict=True)]

    def _key_list(self, view: TableView) -> str:
        return ", ".join(self.quote(k) for k in view.key)

    def _tuple(self, view: TableView) -> str:
        items = [self.placeholder(view, k) for k in view.key]
        return items[0] if len(items) == 1 else "(" + ", ".join(items) + ")"

    def _where(self, view: TableView, lo: Bound, hi: Bound) -> tuple[str, list[Any]]:
        keys = self._key_list(view) if len(view.key) == 1 else f"({self._key_list(view)})"
        clauses, params = [], []
        if lo is not None:
            clauses.append(f"{keys} >= {self._tuple(view)}")
            params += self.params(view, lo)
        if hi is not None:
            clauses.append(f"{keys} < {self._tuple(view)}")
            params += self.params(view, hi)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _where_keys(self, view: TableView, keys: Sequence[Key]) -> tuple[str, list[Any]]:
        columns = self._key_list(view) if len(view.key) == 1 else f"({self._key_list(view)})"
        tuples = ", ".join([self._tuple(view)] * len(keys))
        return f" WHERE {columns} IN ({tuples})", [p for key in keys for p in self.params(view, key)]

    def bound_after(self, view: TableView, lo: Bound, hi: Bound, skip: int) -> Key | None:
        """The key ``skip`` rows into [lo, hi) in key order (the next range's lower bound); None past the end."""
        where, params = self._where(view, lo, hi)
        sql = (
            f"SELECT {self._key_list(view)} FROM {self.qualified(view.namespace)}{where} "
            f"ORDER BY {self._key_list(view)} LIMIT 1 OFFSET {int(skip)}"
        )
        rows = self.fetch(sql, params)
        return tuple(rows[0]) if rows else None

    def digest(self, view: TableView, lo: Bound, hi: Bound) -> tuple[int, int]:
        """(rows, sum of row hashes) of [lo, hi), computed in the database or, where it cannot, here."""
        if not view.in_database:
            rows = self.rows(view, lo, hi)
            from actors.core.rowdigest import row_hash

            return len(rows), sum(row_hash(values) for _, _, values in rows)
        parts = [self.part_sql(c, str(self.canonical_sql(c))) for c in view.columns]
        where, params = self._where(view, lo, hi)
        (count, total), *_ = self.fetch(
            f"SELECT {self.digest_sql(parts)} FROM {self.qualified(view.namespace)}{where}", params
        )
        return int(count), int(total or 0)

    def rows(self, view: TableView, lo: Bound, hi: Bound) -> list[CanonicalRow]:
        """Every row of [lo, hi) in canonical form."""
        where, params = self._where(view, lo, hi)
        return self._canonical_rows(view, where, params)

    def rows_by_key(self, view: TableView, keys: Sequence[Key]) -> list[CanonicalRow]:
        """The rows with these keys (read at either side) that exist here, in canonical form."""
        found: list[CanonicalRow] = []
        for start in range(0, len(keys), KEYS_PER_STATEMENT):
            where, params = self._where_keys(view, keys[start : start + KEYS_PER_STATEMENT])
            found += self._canonical_rows(view, where, params)
        return found

    def captured_rows(self, view: TableView, keys: Sequence[Key]) -> list[dict[str, Any]]:
        """The rows with these keys, typed as this node's capture types a change (what a writer takes)."""
        select, typer = self.captured_select(view)
        rows: list[dict[str, Any]] = []
        for start in range(0, len(keys), KEYS_PER_STATEMENT):
            where, params = self._where_keys(view, keys[start : start + KEYS_PER_STATEMENT])
            rows += [
                typer(raw)
                for raw in self.fetch(f"SELECT {select} FROM {self.qualified(view.namespace)}{where}", params)
            ]
        return rows

    def _canonical_rows(self, view: TableView, where: str, params: list[Any]) -> list[CanonicalRow]:
        table = self.qualified(view.namespace)
        order = f" ORDER BY {self._key_list(view)}"
        key_index = [next(i for i, c in enumerate(view.columns) if c.name == k) for k in view.key]
        if view.in_database:
            # Aliased: a text named like its column would make ORDER BY of a key column ambiguous.
            texts = ", ".join(
                f"{self.canonical_sql(c)} AS {self.quote(f'ws_text_{i}')}" for i, c in enumerate(view.columns)
            )
            result = []
            for raw in self.fetch(f"SELECT {self._key_list(view)}, {texts} FROM {table}{where}{order}", params):
                key, values = tuple(raw[: len(view.key)]), tuple(_text(v) for v in raw[len(view.key) :])
                result.append((key, tuple(values[i] for i in key_index), values))
            return result
        select, typer = self.captured_select(view)
        result = []
        for raw in self.fetch(f"SELECT {select} FROM {table}{where}{order}", params):
            row = typer(raw)
            values = tuple(canonical(row[c.name], c.type) for c in view.columns)
            result.append((tuple(row[k] for k in view.key), tuple(values[i] for i in key_index), values))
        return result


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes | bytearray) else value
