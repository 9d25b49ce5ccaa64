"""The MariaDB writer's planned literals (actors.engines.mariadb.literals) write exactly what pymysql's binding
of the writer's converted value writes: compared value by value with a real connection's ``escape``, and
row by row against the server (a row written through the fast path reads back as the reference row)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any
from zoneinfo import ZoneInfo

import pymysql
import pytest

from actors.core.events import UNSENT_NUMBER
from actors.core.typemap import ColumnType
from actors.engines.mariadb.literals import Unplanned, column_literal, escape, row_literal
from actors.engines.mariadb.writer import value_converter
from actors.harness import Endpoint

D = decimal.Decimal
PARIS = ZoneInfo("Europe/Paris")
VALUES: dict[str, list[Any]] = {
    "integer": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1, True, False, D("12"), D("1E+3"), D("-0"), None],
    "boolean": [True, False, 0, 1, None],
    "decimal": [D("12.50"), D("12.00"), D("-0.001"), D("1E+3"), D("1.5E-7"), D("-0"), 7, 3.25, True, None],
    "float": [1.1, -0.0, 1e20, 1e-7, 3.0, 5, D("2.5"), float(2**60), None],
    "text": [
        *("", "plain", "it's", 'say "x"', "back\\slash", "nul\0byte", "new\nline\r", "ctrl\x1aZ", "50%", "žluť 🙂"),
        7,
        1.5,
        D("1E+2"),
        True,
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        ["a", "b"],
        {"k": 1},
        b"\x00\xff",
    ],
    "timestamp": [
        dt.datetime(2026, 12, 6, 8, 0, 0),
        dt.datetime(2026, 12, 6, 8, 0, 0, 123),
        dt.datetime(5, 1, 1, 0, 0, 0, 999999),
        dt.datetime(2026, 12, 6, 8, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 7, 6, 8, 0, 0, 500000, tzinfo=PARIS),
        dt.datetime(2026, 7, 6, 8, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
        dt.date(2026, 1, 2),
        "2026-01-02 03:04:05",
        None,
    ],
    "json": [{"a": D("1.10")}, [1, "x"], "s", None],
    "bytes": [b"", b"\x00'\\", bytearray(b"ab"), "text", None],
    "time": [dt.timedelta(hours=-30, microseconds=5), dt.time(1, 2, 3), None],
}


def connection(db: Endpoint) -> pymysql.Connection:
    return db.connect("apply")


def outcome(render: Any, value: Any) -> tuple[str, str]:
    """The text rendered, or the error's type: both ways must agree, also on what they refuse."""
    try:
        return "text", render(value)
    except Exception as exc:
        return "error", type(exc).__name__


@pytest.mark.parametrize("family", sorted(VALUES))
def test_each_value_is_the_literal_pymysql_writes(fresh_mariadb_db: Endpoint, family: str) -> None:
    conn = connection(fresh_mariadb_db)
    try:
        for kind_family in {family, "timestamptz"} if family == "timestamp" else {family}:
            kind = ColumnType(family=kind_family)  # type: ignore[arg-type]
            converter = value_converter(kind)
            literal = column_literal(kind, converter)
            for value in VALUES[family]:
                expected = conn.escape(value if value is None or converter is None else converter(value))
                assert literal(value) == expected, (kind_family, value)
                assert outcome(escape, value) == outcome(conn.escape, value), value
    finally:
        conn.close()


def test_values_the_column_refuses_raise_as_the_converter_does() -> None:
    for family, value in (
        ("float", float("nan")),
        ("float", float("inf")),
        ("decimal", D("NaN")),
        ("integer", D("Infinity")),
    ):
        kind = ColumnType(family=family)  # type: ignore[arg-type]
        literal = column_literal(kind, value_converter(kind))
        with pytest.raises(ValueError):
            literal(value)
    with pytest.raises(Unplanned):  # the NaN marker is judged by sink.converted, which names the column
        column_literal(ColumnType(family="decimal"), value_converter(ColumnType(family="decimal")))(UNSENT_NUMBER)


def test_a_rendered_row_reads_back_as_the_bound_row(fresh_mariadb_db: Endpoint) -> None:
    db = fresh_mariadb_db
    table = f"`{db.database}`.lit"
    columns = {
        "id": ("bigint primary key", ColumnType(family="integer")),
        "d": ("decimal(20,7)", ColumnType(family="decimal")),
        "f": ("double", ColumnType(family="float")),
        "t": ("varchar(64)", ColumnType(family="text")),
        "ts": ("datetime(6)", ColumnType(family="timestamptz")),
    }
    rows = [
        {
            "id": 1,
            "d": D("12.5000000"),
            "f": 1.1,
            "t": "it's \\ \0 \n 50%",
            "ts": dt.datetime(2026, 7, 6, 8, tzinfo=PARIS),
        },
        {"id": 2, "d": D("1E+3"), "f": -0.0, "t": "žluť", "ts": dt.datetime(2026, 1, 1, 0, 0, 0, 1)},
        {"id": 3, "d": None, "f": None, "t": None, "ts": None},
    ]
    plan = [(name, column_literal(kind, value_converter(kind))) for name, (_, kind) in columns.items()]
    conn = db.connect("admin")
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            for suffix in ("", "_ref"):
                spec = ", ".join(f"{name} {sql}" for name, (sql, _) in columns.items())
                cur.execute(f"CREATE TABLE {table}{suffix} ({spec})")
            names = ", ".join(columns)
            texts = [row_literal(plan, row) for row in rows]
            cur.execute(f"INSERT INTO {table} ({names}) VALUES " + ", ".join(texts))
            for row in rows:
                params = [
                    None if row[n] is None or (c := value_converter(k)) is None else c(row[n])
                    for n, (_, k) in columns.items()
                ]
                cur.execute(f"INSERT INTO {table}_ref ({names}) VALUES ({', '.join(['%s'] * len(params))})", params)
            cur.execute(f"SELECT * FROM {table} ORDER BY id")
            fast = cur.fetchall()
            cur.execute(f"SELECT * FROM {table}_ref ORDER BY id")
            assert fast == cur.fetchall()
            assert len(fast) == 3
    finally:
        conn.close()
