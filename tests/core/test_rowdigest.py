"""The engine-neutral text form `verify` hashes: equal values of mapped types give one text, and a row's
text is unambiguous."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib

from actors.core.rowdigest import canonical, decimal_form, duration_form, row_hash, row_text
from actors.core.typemap import ColumnType

D = decimal.Decimal


def test_decimals_of_any_scale_share_one_form() -> None:
    kind = ColumnType(family="decimal")
    assert canonical(D("1.50"), kind) == canonical(D("1.5000"), kind) == "1.5"
    assert canonical(D("100.00"), kind) == canonical(D("1E+2"), kind) == canonical(100, kind) == "100"
    assert decimal_form(D("-0.00")) == "0" and decimal_form(D("123456789012345678901234567890.5")).endswith("0.5")


def test_times_are_utc_with_microseconds() -> None:
    aware = dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    naive = dt.datetime(2024, 3, 1, 10, 0, 0, 123456)
    assert canonical(aware, ColumnType(family="timestamptz")) == canonical(naive, ColumnType(family="timestamp"))
    assert duration_form(dt.time(12, 30, 0, 500000)) == duration_form(dt.timedelta(hours=12, minutes=30, seconds=0.5))
    assert duration_form(-dt.timedelta(hours=1)) == "-01:00:00.000000"


def test_floats_json_and_sets() -> None:
    single = ColumnType(family="float", bits=24)
    assert canonical(0.1, single) == canonical(0.10000000149011612, single)
    json_kind = ColumnType(family="json")
    assert canonical('{"b": 1.50, "a": [1, 2]}', json_kind) == canonical({"a": [1, 2], "b": D("1.5")}, json_kind)
    assert canonical("c,a", ColumnType(family="set")) == canonical(["a", "c"], ColumnType(family="set"))
    assert canonical(True, ColumnType(family="boolean")) == canonical(1, ColumnType(family="boolean")) == "1"


def test_row_text_is_unambiguous_and_hash_is_md5_prefix() -> None:
    assert row_text(["a", "bc"]) != row_text(["ab", "c"])
    assert row_text([None]) != row_text(["N"]) and row_text([""]) != row_text([None])
    text = row_text(["1", None, "ü"])
    assert row_hash(["1", None, "ü"]) == int(hashlib.md5(text.encode()).hexdigest()[:15], 16)
