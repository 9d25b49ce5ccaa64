"""loss(), check_mapping() and the shared value conversions: tables of cases, no servers."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest

from actors.core import convert
from actors.core.errors import ConfigError
from actors.core.mapping import check_mapping, column_map
from actors.core.typemap import Column, ColumnType, TableSchema, loss


def T(family: str, name: str = "", **kw: object) -> ColumnType:
    return ColumnType(family=family, name=name or family, **kw)  # type: ignore[arg-type]


# PostgreSQL types as actors.engines.postgresql.schema describes them ...
PG_SMALLINT = T("integer", "smallint", bits=16)
PG_INT = T("integer", "integer", bits=32)
PG_BIGINT = T("integer", "bigint", bits=64)
PG_NUMERIC = T("decimal", "numeric")
PG_NUMERIC_30_10 = T("decimal", "numeric(30,10)", precision=30, scale=10)
PG_NUMERIC_20 = T("decimal", "numeric(20,0)", precision=20, scale=0)
PG_REAL = T("float", "real", bits=24)
PG_DOUBLE = T("float", "double precision", bits=53)
PG_BOOL = T("boolean", "boolean")
PG_TEXT = T("text", "text")
PG_VARCHAR_64 = T("text", "character varying(64)", length=64)
PG_CHAR_8 = T("text", "character(8)", length=8, fixed=True)
PG_BYTEA = T("bytes", "bytea")
PG_DATE = T("date")
PG_TIME = T("time", "time without time zone")
PG_TIMESTAMP = T("timestamp", "timestamp without time zone")
PG_TIMESTAMPTZ = T("timestamptz", "timestamp with time zone")
PG_INTERVAL = T("interval")
PG_JSONB = T("json", "jsonb")
PG_UUID = T("uuid")
PG_TEXT_ARRAY = T("array", "text[]", element=PG_TEXT)
PG_INT_ARRAY = T("array", "integer[]", element=PG_INT)
PG_MOOD = T("enum", "mood", labels=("happy", "sad"))
PG_BIT_8 = T("bit", "bit(8)", length=8, fixed=True)
PG_INET = T("other", "inet")
# ... and MariaDB types as actors.engines.mariadb.table_schema does.
MY_TINYINT_1 = T("boolean", "tinyint(1)", bits=8)
MY_SMALLINT = T("integer", "smallint(6)", bits=16)
MY_INT = T("integer", "int(11)", bits=32)
MY_INT_UNSIGNED = T("integer", "int(10) unsigned", bits=32, unsigned=True)
MY_BIGINT = T("integer", "bigint(20)", bits=64)
MY_BIGINT_UNSIGNED = T("integer", "bigint(20) unsigned", bits=64, unsigned=True)
MY_DECIMAL_30_10 = T("decimal", "decimal(30,10)", precision=30, scale=10)
MY_DECIMAL_12_2 = T("decimal", "decimal(12,2)", precision=12, scale=2)
MY_DECIMAL_65_30 = T("decimal", "decimal(65,30)", precision=65, scale=30)
MY_FLOAT = T("float", "float", bits=24)
MY_DOUBLE = T("float", "double", bits=53)
MY_VARCHAR_64 = T("text", "varchar(64)", length=64)
MY_VARCHAR_255 = T("text", "varchar(255)", length=255)
MY_CHAR_36 = T("text", "char(36)", length=36, fixed=True)
MY_CHAR_8 = T("text", "char(8)", length=8, fixed=True)
MY_TEXT = T("text", "text", length=16383)
MY_LONGTEXT = T("text", "longtext")
MY_LATIN1 = T("text", "varchar(64)", length=64, charset="latin1")
MY_BLOB = T("bytes", "blob", length=65535)
MY_LONGBLOB = T("bytes", "longblob")
MY_BINARY_16 = T("bytes", "binary(16)", length=16, fixed=True)
MY_DATE = T("date")
MY_DATETIME_0 = T("timestamp", "datetime", precision=0)
MY_DATETIME_6 = T("timestamp", "datetime(6)", precision=6)
MY_TIMESTAMP_6 = T("timestamptz", "timestamp(6)", precision=6, bits=32)
MY_TIME_6 = T("interval", "time(6)", precision=6, max_hours=838)
MY_TIME_0 = T("interval", "time", precision=0, max_hours=838)
MY_YEAR = T("integer", "year", bits=16)
MY_JSON = T("json", "longtext")
MY_ENUM = T("enum", "enum('happy','sad')", labels=("happy", "sad"))
MY_ENUM_SMALL = T("enum", "enum('happy')", labels=("happy",))
MY_SET = T("set", "set('r','w')", labels=("r", "w"))
MY_BIT_8 = T("bit", "bit(8)", length=8, fixed=True)
MY_BIT_1 = T("bit", "bit(1)", length=1, fixed=True)
MY_UUID = T("uuid")

# fmt: off
LOSSLESS = [
    # PostgreSQL -> MariaDB
    (PG_SMALLINT, MY_SMALLINT), (PG_INT, MY_INT), (PG_BIGINT, MY_BIGINT), (PG_INT, MY_BIGINT),
    (PG_NUMERIC_30_10, MY_DECIMAL_30_10), (PG_NUMERIC_30_10, MY_DECIMAL_65_30), (PG_BIGINT, MY_DECIMAL_30_10),
    (PG_REAL, MY_FLOAT), (PG_DOUBLE, MY_DOUBLE), (PG_REAL, MY_DOUBLE), (PG_INT, MY_DOUBLE),
    (PG_BOOL, MY_TINYINT_1), (PG_BOOL, MY_INT),
    (PG_TEXT, MY_LONGTEXT), (PG_VARCHAR_64, MY_VARCHAR_64), (PG_VARCHAR_64, MY_TEXT), (PG_CHAR_8, MY_CHAR_8),
    (PG_BYTEA, MY_LONGBLOB), (PG_DATE, MY_DATE), (PG_DATE, MY_DATETIME_0), (PG_TIME, MY_TIME_6),
    (PG_TIMESTAMP, MY_DATETIME_6), (PG_TIMESTAMPTZ, MY_DATETIME_6),
    (PG_TIMESTAMPTZ, MY_LONGTEXT), (PG_TIMESTAMPTZ, MY_VARCHAR_64),  # text forms are fine
    (PG_JSONB, MY_JSON), (PG_JSONB, MY_LONGTEXT), (PG_UUID, MY_CHAR_36), (PG_UUID, MY_UUID), (PG_UUID, MY_BINARY_16),
    (PG_TEXT_ARRAY, MY_JSON), (PG_INT_ARRAY, MY_JSON), (PG_MOOD, MY_ENUM), (PG_MOOD, MY_VARCHAR_64),
    (PG_BIT_8, MY_BIT_8), (PG_INET, MY_LONGTEXT), (PG_NUMERIC_30_10, MY_LONGTEXT), (PG_BIGINT, MY_VARCHAR_64),
    # MariaDB -> PostgreSQL
    (MY_TINYINT_1, PG_BOOL), (MY_TINYINT_1, PG_SMALLINT), (MY_INT_UNSIGNED, PG_BIGINT),
    (MY_BIGINT_UNSIGNED, PG_NUMERIC_20), (MY_BIGINT_UNSIGNED, PG_NUMERIC), (MY_DECIMAL_12_2, PG_NUMERIC_30_10),
    (MY_DECIMAL_65_30, PG_NUMERIC), (MY_FLOAT, PG_REAL), (MY_DOUBLE, PG_DOUBLE), (MY_VARCHAR_64, PG_VARCHAR_64),
    (MY_TEXT, PG_TEXT), (MY_LATIN1, PG_TEXT), (MY_BLOB, PG_BYTEA), (MY_BINARY_16, PG_BYTEA), (MY_BINARY_16, PG_UUID),
    (MY_DATETIME_6, PG_TIMESTAMP), (MY_DATETIME_0, PG_TIMESTAMPTZ), (MY_TIMESTAMP_6, PG_TIMESTAMPTZ),
    (MY_TIME_6, PG_INTERVAL), (MY_TIME_0, PG_INTERVAL), (MY_YEAR, PG_SMALLINT), (MY_JSON, PG_JSONB),
    (MY_ENUM, PG_MOOD), (MY_SET, PG_TEXT_ARRAY), (MY_SET, PG_TEXT), (MY_SET, PG_JSONB), (MY_BIT_8, PG_BIT_8),
    (MY_BIT_1, PG_BOOL), (MY_UUID, PG_UUID), (MY_CHAR_36, T("text", "character(36)", length=36, fixed=True)),
]
# fmt: on

LOSSY = [
    (PG_NUMERIC_30_10, MY_DECIMAL_12_2, "integer digits"),
    (T("decimal", "numeric(12,4)", precision=12, scale=4), MY_DECIMAL_12_2, "rounds to 2 decimals"),
    (PG_NUMERIC, MY_DECIMAL_65_30, "no precision bound"),
    (PG_BIGINT, MY_INT, "holds -2147483648..2147483647"),
    (MY_BIGINT_UNSIGNED, PG_BIGINT, "holds"),
    (PG_INT, MY_INT_UNSIGNED, "holds 0..4294967295"),
    (PG_DOUBLE, MY_FLOAT, "single precision"),
    (PG_NUMERIC_30_10, MY_DOUBLE, "cannot hold"),
    (PG_DOUBLE, MY_DECIMAL_65_30, "cannot hold every binary floating-point value"),
    (PG_BIGINT, MY_DOUBLE, "rounds integers beyond 2^53"),
    (PG_TEXT, MY_VARCHAR_64, "holds 64 characters"),
    (PG_TEXT, MY_TEXT, "holds 16383 characters"),
    (PG_VARCHAR_64, MY_LATIN1, "character set `latin1`"),
    (PG_VARCHAR_64, T("text", "char(64)", length=64, fixed=True), "pads"),
    (PG_BYTEA, MY_BLOB, "holds 65535 bytes"),
    (PG_BYTEA, MY_BINARY_16, "holds 16 bytes"),
    (PG_BYTEA, MY_LONGTEXT, "is text"),
    (PG_TIMESTAMPTZ, MY_DATETIME_0, "keeps 0 fractional second digits"),
    (PG_TIMESTAMPTZ, MY_TIMESTAMP_6, "1970-01-01..2038-01-19"),
    (PG_TIMESTAMPTZ, MY_DATE, "drops the time of day"),
    (PG_TIMESTAMPTZ, T("text", "varchar(20)", length=20), "holds 20 characters"),
    (PG_INTERVAL, MY_TIME_6, "at most +-838 hours"),
    (MY_TIME_6, PG_TIME, "time of day"),
    (PG_TIME, MY_TIME_0, "keeps 0 fractional"),
    (PG_UUID, T("text", "varchar(32)", length=32), "holds 32 characters"),
    (MY_CHAR_36, PG_UUID, "no exact mapping"),
    (PG_JSONB, MY_VARCHAR_255, "holds 255 characters"),
    (PG_TEXT, PG_JSONB, "no exact mapping"),
    (PG_TIMESTAMPTZ, PG_JSONB, "would lose their type"),
    (PG_TEXT_ARRAY, MY_LONGTEXT, "map arrays to a JSON"),
    (MY_JSON, PG_INT_ARRAY, "no exact mapping"),
    (MY_ENUM, T("enum", "mood", labels=("happy",)), "lacks the members 'sad'"),
    (PG_MOOD, MY_ENUM_SMALL, "lacks the members 'sad'"),
    (MY_SET, T("set", "set('r')", labels=("r",)), "lacks the members 'w'"),
    (MY_SET, T("array", "integer[]", element=PG_INT), "no exact mapping"),
    (PG_SMALLINT, MY_TINYINT_1, "holds -128..127"),
    (PG_INT, PG_BOOL, "holds only true and false"),
    (T("integer", "smallint", bits=16), MY_YEAR, "1901..2155"),
    (T("bit", "bit varying(8)", length=8), MY_BIT_8, "pads"),
    (PG_BIT_8, MY_INT, "map `bit(8)` to a BIT column"),
    (PG_INET, T("other", "inet6"), "no known exact mapping"),
    (PG_INET, MY_VARCHAR_64, "holds 64 characters"),
    (
        T("decimal", "decimal(10,2)", precision=10, scale=2),
        T("decimal", "decimal(10,2) unsigned", precision=10, scale=2, unsigned=True),
        "unsigned",
    ),
]


@pytest.mark.parametrize(("source", "target"), LOSSLESS, ids=lambda t: t.name)
def test_lossless_mappings(source: ColumnType, target: ColumnType) -> None:
    assert loss(source, target) is None


@pytest.mark.parametrize(("source", "target", "reason"), LOSSY, ids=lambda t: getattr(t, "name", "reason"))
def test_lossy_mappings(source: ColumnType, target: ColumnType, reason: str) -> None:
    sentence = loss(source, target)
    assert sentence is not None and reason in sentence, sentence


def test_loss_sentences_name_both_types() -> None:
    assert loss(PG_NUMERIC_30_10, MY_DECIMAL_12_2) == (
        "`decimal(12,2)` has 10 integer digits, `numeric(30,10)` 20 and rounds to 2 decimals, `numeric(30,10)` has 10"
    )


def _table(namespace: str, key: tuple[str, ...], *columns: Column) -> TableSchema:
    return TableSchema(namespace=namespace, columns=columns, primary_key=key)


def C(name: str, kind: ColumnType, **kw: object) -> Column:
    return Column(name=name, type=kind, type_text=kind.name, **kw)  # type: ignore[arg-type]


SOURCE = _table(
    "public.orders", ("id",), C("id", PG_BIGINT, nullable=False), C("total", PG_NUMERIC_30_10), C("note", PG_TEXT)
)


def test_check_mapping_accepts_a_lossless_mapping_with_a_rename() -> None:
    target = _table(
        "shop.orders",
        ("id",),
        C("id", MY_BIGINT, nullable=False),
        C("amount", MY_DECIMAL_30_10),
        C("note", MY_LONGTEXT),
        C("extra", MY_INT),
    )
    assert check_mapping(SOURCE, target, {"total": "amount"}, "refuse") == []
    assert column_map(SOURCE, {"total": "amount"}) == {"id": "id", "total": "amount", "note": "note"}


def test_check_mapping_refuses_listing_every_problem() -> None:
    target = _table(
        "shop.orders",
        ("id", "region"),
        C("id", MY_INT, nullable=False),
        C("total", MY_DECIMAL_12_2),
        C("region", MY_INT, nullable=False),
        C("must", MY_INT, nullable=False),
    )
    with pytest.raises(ConfigError) as caught:
        check_mapping(SOURCE, target, {"nope": "x"}, "refuse")
    message = str(caught.value)
    for part in (
        "`nope` in `columns` is not a column of the source",
        "source column `note` maps to `note`, which the target does not have",
        "the target primary key (id, region) must be the mapped source primary key (id)",
        "target column `must` is NOT NULL without a default",
        "column `id` bigint -> `id` int(11): `int(11)` holds",
        "column `total` numeric(30,10) -> `total` decimal(12,2)",
        "set `lossy_types: warn` to accept",
    ):
        assert part in message


def test_check_mapping_warns_about_losses_under_warn() -> None:
    target = _table(
        "shop.orders",
        ("id",),
        C("id", MY_BIGINT),
        C("total", MY_DECIMAL_12_2, nullable=False),
        C("note", MY_VARCHAR_64),
    )
    warnings = check_mapping(SOURCE, target, {}, "warn")
    assert len(warnings) == 3
    assert any("`total` may be NULL but target column `total` is NOT NULL" in w for w in warnings)
    assert all(w.startswith("`public.orders` -> `shop.orders`: ") for w in warnings)


def test_check_mapping_refuses_structural_problems_even_under_warn() -> None:
    target = _table(
        "shop.orders", ("id",), C("id", MY_BIGINT), C("total", MY_DECIMAL_30_10, generated=True), C("note", MY_LONGTEXT)
    )
    with pytest.raises(ConfigError, match="`total` is generated"):
        check_mapping(SOURCE, target, {}, "warn")


# fmt: off
@pytest.mark.parametrize(("value", "text"), [
    ("x", "x"), (True, "true"), (5, "5"), (1.5, "1.5"), (decimal.Decimal("1E+3"), "1000"),
    (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    (dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     "2024-01-02 01:04:05.000006+00:00"),
    (dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05"), (dt.date(2024, 1, 2), "2024-01-02"),
    (dt.timedelta(hours=-30, seconds=1), "-29:59:59"), (["a", "b"], "a,b"), (["a,b"], '["a,b"]'),
    ({"n": decimal.Decimal("0.1000000000000000000001")}, '{"n":0.1000000000000000000001}'),
    (b"\x01\xff", "\\x01ff"),
])
def test_text_forms(value: object, text: str) -> None:
    assert convert.text(value) == text
# fmt: on


def test_duration_and_time_of_day() -> None:
    assert convert.duration_text(dt.timedelta(seconds=-1)) == "-00:00:01"
    assert convert.duration_text(dt.timedelta(hours=838, microseconds=5)) == "838:00:00.000005"
    assert convert.time_of_day(dt.timedelta(hours=23, microseconds=1)) == dt.time(23, 0, 0, 1)
    with pytest.raises(ValueError, match="not a time of day"):
        convert.time_of_day(dt.timedelta(hours=24))
    assert convert.duration(dt.time(1, 2, 3, 4)) == dt.timedelta(hours=1, minutes=2, seconds=3, microseconds=4)


def test_numbers_and_bits() -> None:
    assert convert.decimal_text(decimal.Decimal("-1.50E-3")) == "-0.00150"
    with pytest.raises(ValueError):
        convert.decimal_text(decimal.Decimal("NaN"))
    with pytest.raises(ValueError):
        convert.finite(float("inf"))
    assert convert.integer(True) == 1 and convert.integer(decimal.Decimal("7.0")) == 7
    assert convert.boolean(1) is True and convert.boolean(False) is False
    with pytest.raises(ValueError, match="not a boolean"):
        convert.boolean(2)
    assert convert.bit_string(5, 8, True) == "00000101" and convert.bit_string(5, None, False) == "101"
    with pytest.raises(ValueError, match="needs 9 bits"):
        convert.bit_string(256, 8, True)
    assert convert.bit_integer("00000101") == 5
    assert convert.set_text(["w", "r"]) == "r,w"
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert convert.utc_naive(dt.datetime(2024, 1, 1, 2, tzinfo=plus_two)) == dt.datetime(2024, 1, 1)
    assert convert.utc_aware(dt.datetime(2024, 1, 1)).tzinfo is dt.UTC
    assert convert.uuid_value(uuid.UUID(int=7).bytes) == uuid.UUID(int=7)
    assert convert.json_text({"a": [1, decimal.Decimal("2.50")]}) == '{"a":[1,2.50]}'
