"""Binlog rows decoded from their bytes (actors/engines/mariadb/rows_decoder.py) equal mysql-replication's rows
after values.binlog_plan, for every supported type, NULLs, edge values and random values; tables with another
type keep the library's decoding."""

from __future__ import annotations

import datetime as dt
import decimal
import random
from typing import Any

import pytest

from actors.engines.mariadb import MariaDbSource
from actors.engines.mariadb.rows_decoder import LeanRows
from actors.harness import Endpoint
from tests.engines.test_mariadb_source import Tap, capture_params, run

COLUMNS = {
    "ti": "TINYINT",
    "tiu": "TINYINT UNSIGNED",
    "si": "SMALLINT",
    "siu": "SMALLINT UNSIGNED",
    "mi": "MEDIUMINT",
    "miu": "MEDIUMINT UNSIGNED",
    "i": "INT",
    "iu": "INT UNSIGNED",
    "bi": "BIGINT",
    "biu": "BIGINT UNSIGNED",
    "f": "FLOAT",
    "d": "DOUBLE",
    "dec_a": "DECIMAL(10,2)",
    "dec_b": "DECIMAL(30,10)",
    "dec_c": "DECIMAL(5,0)",
    "dec_d": "DECIMAL(65,30)",
    "dec_e": "DECIMAL(19,9)",
    "dt0": "DATETIME",
    "dt1": "DATETIME(1)",
    "dt3": "DATETIME(3)",
    "dt6": "DATETIME(6)",
    "ts0": "TIMESTAMP NULL",
    "ts1": "TIMESTAMP(1) NULL",
    "ts6": "TIMESTAMP(6) NULL",
    "tm0": "TIME",
    "tm1": "TIME(1)",
    "tm2": "TIME(2)",
    "tm3": "TIME(3)",
    "tm4": "TIME(4)",
    "tm5": "TIME(5)",
    "tm6": "TIME(6)",
    "dd": "DATE",
    "y": "YEAR",
    "e": "ENUM('a','b','c')",
    "st": "SET('x','y','z')",
    "b1": "BIT(1)",
    "b12": "BIT(12)",
    "b64": "BIT(64)",
    "vc": "VARCHAR(20)",
    "vc_long": "VARCHAR(500)",
    "c": "CHAR(5)",
    "c_long": "CHAR(100)",
    "lat": "VARCHAR(10) CHARACTER SET latin1",
    "bn": "BINARY(4)",
    "vb": "VARBINARY(10)",
    "t": "TEXT",
    "mt": "MEDIUMTEXT",
    "lt": "LONGTEXT",
    "bl": "BLOB",
    "tb": "TINYBLOB",
    "js": "JSON",
}


def _time(rng: random.Random, fsp: int) -> str:
    sign = "-" if rng.random() < 0.4 else ""
    value = f"{sign}{rng.randrange(0, 839):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
    if fsp:
        value += "." + "".join(str(rng.randrange(10)) for _ in range(fsp))
    return value


def _decimal(rng: random.Random, precision: int, scale: int) -> str:
    digits = "".join(str(rng.randrange(10)) for _ in range(precision))
    whole, fraction = digits[: precision - scale] or "0", digits[precision - scale :]
    sign = "-" if rng.random() < 0.5 else ""
    return f"{sign}{whole}.{fraction}" if scale else f"{sign}{whole}"


def random_row(rng: random.Random, key: int) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.1 else value

    stamp = dt.datetime(1971, 1, 1) + dt.timedelta(seconds=rng.randrange(2_000_000_000))
    text = "".join(rng.choice("aé☃ zß\"'\\") for _ in range(rng.randrange(0, 12)))
    row = {
        "id": key,
        "ti": rng.randrange(-128, 128),
        "tiu": rng.randrange(256),
        "si": rng.randrange(-(2**15), 2**15),
        "siu": rng.randrange(2**16),
        "mi": rng.randrange(-(2**23), 2**23),
        "miu": rng.randrange(2**24),
        "i": rng.randrange(-(2**31), 2**31),
        "iu": rng.randrange(2**32),
        "bi": rng.randrange(-(2**63), 2**63),
        "biu": rng.randrange(2**64),
        "f": rng.uniform(-1e6, 1e6),
        "d": rng.uniform(-1e300, 1e300),
        "dec_a": _decimal(rng, 10, 2),
        "dec_b": _decimal(rng, 30, 10),
        "dec_c": _decimal(rng, 5, 0),
        "dec_d": _decimal(rng, 65, 30),
        "dec_e": _decimal(rng, 19, 9),
        "dt0": stamp.replace(microsecond=0),
        "dt1": stamp.replace(microsecond=rng.randrange(10) * 100_000),
        "dt3": stamp.replace(microsecond=rng.randrange(1000) * 1000),
        "dt6": stamp.replace(microsecond=rng.randrange(1_000_000)),
        "ts0": stamp.replace(microsecond=0),
        "ts1": stamp.replace(microsecond=rng.randrange(10) * 100_000),
        "ts6": stamp.replace(microsecond=rng.randrange(1_000_000)),
        **{f"tm{fsp}": _time(rng, fsp) for fsp in range(7)},
        "dd": stamp.date(),
        "y": rng.choice([0, 1901, 1999, 2155, rng.randrange(1901, 2156)]),
        "e": rng.choice(["a", "b", "c"]),
        "st": ",".join(rng.sample(["x", "y", "z"], rng.randrange(4))),
        "b1": rng.randrange(2),
        "b12": rng.randrange(2**12),
        "b64": rng.randrange(2**64),
        "vc": text,
        "vc_long": text * rng.randrange(1, 30),
        "c": text[:5].rstrip(),
        "c_long": (text * 9)[:100].rstrip(),
        "lat": "".join(rng.choice("aéü ") for _ in range(rng.randrange(10))),
        "bn": bytes(rng.randrange(256) for _ in range(rng.randrange(5))),
        "vb": bytes(rng.randrange(256) for _ in range(rng.randrange(11))),
        "t": text * rng.randrange(0, 100),
        "mt": text * rng.randrange(0, 5000),
        "lt": text,
        "bl": bytes(rng.randrange(256) for _ in range(rng.randrange(300))),
        "tb": bytes(rng.randrange(256) for _ in range(rng.randrange(255))),
        "js": '{"k": [1, 2.5, "x", null, true], "n": {"a": "b"}}',
    }
    return {name: (value if name == "id" else maybe(value)) for name, value in row.items()}


EDGE_ROWS = [
    {"id": -1, **dict.fromkeys(COLUMNS)},  # every column NULL
    {
        "id": -2,
        "ti": -128,
        "tiu": 255,
        "bi": -(2**63),
        "biu": 2**64 - 1,
        "dec_a": "-0.01",
        "dec_c": "0",
        "dec_d": "-" + "9" * 35 + "." + "9" * 30,
        "tm0": "-838:59:59",
        "tm6": "-00:00:00.000001",
        "tm3": "-00:00:01.5",
        "y": 0,
        "st": "",
        "e": "",
        "b64": 2**64 - 1,
        "vc": "",
        "bn": b"",
        "c": "",
        "lat": "",
    },
]


def insert(conn: Any, rows: list[dict[str, Any]]) -> None:
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")  # '' enum value, YEAR 0
        for row in rows:
            names = ", ".join(f"`{n}`" for n in row)
            cur.execute(f"INSERT INTO wide ({names}) VALUES ({', '.join(['%s'] * len(row))})", list(row.values()))


def test_lean_rows_equal_the_librarys_for_every_supported_type(
    fresh_mariadb_db: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = fresh_mariadb_db
    decoded: list[int] = []  # rows the lean decoder produced: the comparison must not be library vs library
    images = LeanRows.images

    def counted(self: LeanRows, event: Any, *, update: bool) -> list[Any]:
        rows = images(self, event, update=update)
        decoded.append(len(rows))
        return rows

    monkeypatch.setattr(LeanRows, "images", counted)
    admin = db.connect("admin")
    columns = ", ".join(f"`{name}` {kind}" for name, kind in COLUMNS.items())
    run(admin, f"CREATE TABLE wide (id int PRIMARY KEY, {columns})")
    taps = {
        lean: Tap(
            MariaDbSource("maria", capture_params(db), [f"{db.database}.wide"], server_id=9100 + lean, lean_rows=lean)
        )
        for lean in (True, False)
    }
    try:
        for tap in taps.values():
            tap.wait_streaming()
        rng = random.Random(20261206)
        rows = EDGE_ROWS + [random_row(rng, key) for key in range(300)]
        insert(admin, rows)
        with admin.cursor() as cur:
            cur.execute(
                "UPDATE wide SET tm3 = '-01:02:03.456', dec_b = -dec_b, st = 'x,z', vc = 'changed' WHERE id % 3 = 0"
            )
            cur.execute("DELETE FROM wide WHERE id % 5 = 0")
        expected = len(rows) + len(range(0, 300, 3)) + len(range(0, 300, 5))
        for tap in taps.values():
            tap.wait(lambda tap=tap: len(tap.events()) >= expected, what=f"{expected} events", timeout_s=60)
    finally:
        for tap in taps.values():
            tap.close()
        admin.close()
    lean, library = taps[True].events(), taps[False].events()
    assert len(lean) == expected
    assert sum(decoded) == expected
    for ours, theirs in zip(lean, library, strict=True):
        assert ours == theirs, (ours, theirs)
    edge = next(event.after for event in lean if event.key == {"id": -2})
    assert edge is not None
    assert edge["tm6"] == -dt.timedelta(microseconds=1) and edge["tm3"] == -dt.timedelta(seconds=1.5)
    assert edge["dec_d"] == decimal.Decimal("-" + "9" * 35 + "." + "9" * 30)
    assert edge["st"] == [] and edge["y"] == 0 and edge["bn"] == b"\0\0\0\0"


class _Column:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


@pytest.mark.parametrize("kind", [255, 245, 10])  # GEOMETRY, MySQL binary JSON, the pre-5.6 DATE
def test_a_table_with_another_type_keeps_the_librarys_decoding(kind: int) -> None:
    from actors.engines.mariadb.schema import TableInfo

    info = TableInfo(schema="s", table="t", columns=(), primary_key=("id",))
    columns = [_Column(name="id", type=3, unsigned=False), _Column(name="g", type=kind, length_size=4)]
    if kind == 10:
        assert LeanRows.for_table(columns, info) is not None  # DATE is supported: the control case
    else:
        assert LeanRows.for_table(columns, info) is None
