"""The PostgreSQL writer's row statements use ``$n`` placeholders through a RawCursor (issue 19): identifiers
with ``%`` and quotes, casts, multi-column keys, a chunk split and the row-by-row culprit search still work."""

from __future__ import annotations

import decimal

import pytest

from actors.core.changes import RowChange
from actors.core.errors import RowRefused
from actors.engines import sink
from actors.engines.postgresql.writer import native_rows
from actors.harness import Endpoint
from tests.engines.test_writers import pg_writer

TABLE = (
    'CREATE TABLE public."odd%""t" ("k%1" int, k2 text, "v%" numeric(6,2), note varchar(5), PRIMARY KEY ("k%1", k2))'
)
NS = 'public.odd%"t'


def rows_of(db: Endpoint) -> list[tuple[object, ...]]:
    with db.connect("admin") as conn:
        return conn.execute('SELECT * FROM public."odd%""t" ORDER BY 1, 2').fetchall()


def upsert(k1: int, k2: str, value: str, note: str = "n") -> RowChange:
    key = {"k%1": k1, "k2": k2}
    return RowChange(NS, "upsert", key, {**key, "v%": decimal.Decimal(value), "note": note})


def test_native_rows_numbers_every_parameter() -> None:
    assert native_rows(("int4", "text"), 2) == "($1::int4, $2::text), ($3::int4, $4::text)"


def test_odd_identifiers_multi_column_keys_and_chunks(fresh_pg_db: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_pg_db.connect("admin") as conn:
        conn.execute(TABLE)
        conn.execute(f'GRANT ALL ON public."odd%""t" TO {fresh_pg_db.apply.user}')
    monkeypatch.setattr(sink, "MAX_ROWS", 3)  # several statements per slice, the last one shorter
    writer = pg_writer(fresh_pg_db)
    try:
        writer.apply([upsert(i, f"a%{i}", f"{i}.25") for i in range(8)])
        writer.apply([RowChange(NS, "delete", {"k%1": i, "k2": f"a%{i}"}, None) for i in range(0, 8, 2)])
        writer.apply([upsert(1, "a%1", "9.50", "x")])
        assert rows_of(fresh_pg_db) == [
            (1, "a%1", decimal.Decimal("9.50"), "x"),
            *[(i, f"a%{i}", decimal.Decimal(f"{i}.25"), "n") for i in (3, 5, 7)],
        ]
        with pytest.raises(RowRefused) as refused:  # varchar(5): the culprit is found row by row
            writer.apply([upsert(20 + i, "b", "1", "too long" if i == 4 else "ok") for i in range(7)])
        assert refused.value.key == {"k%1": 24, "k2": "b"}
        assert len(rows_of(fresh_pg_db)) == 4  # nothing of the refused slice was applied
    finally:
        writer.close()
