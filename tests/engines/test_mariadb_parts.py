"""The MariaDB engine's pure parts, without a server: positions, resume strings, TLS mapping, value plans."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import ssl

import pytest
from pymysqlreplication.column import Column
from pymysqlreplication.constants import FIELD_TYPE, NONE_SOURCE

from actors.core.errors import OffsetLost, SourceMisconfigured
from actors.core.streams import StreamSpec
from actors.engines.mariadb import MariaDbSource, source_for_node
from actors.engines.mariadb.connection import ConnectParams, connect_kwargs
from actors.engines.mariadb.positions import (
    END_OF_TRANSACTION,
    BinlogPoint,
    MariaDbGtidPosition,
    MySqlGtidSet,
    file_sequence,
    order,
    order_prefix,
    split_order,
)
from actors.engines.mariadb.schema import ColumnInfo, TableInfo, quote, split_namespace
from actors.engines.mariadb.snapshot import _keyset, _keyset_args
from actors.engines.mariadb.values import binlog_plan, snapshot_query
from config.model import MySqlNode, Tls


def test_orders_sort_in_binlog_order() -> None:
    in_binlog_order = [
        order(3, 400, 0),  # a snapshot row at the point binlog.000003:400
        order(3, 400, 1),
        order(3, 400, END_OF_TRANSACTION),  # the snapshot's end
        order(3, 520, 0),  # rows event ending at 520
        order(3, 520, 1),
        order(3, 900, 2),  # next rows event of the same transaction
        order(3, 931, END_OF_TRANSACTION),  # its XID event ends at 931
        order(4, 256, 0),  # next file: small offsets again
        order(10, 4, 0),  # ten sorts after four (fixed width, big-endian)
    ]
    assert sorted(in_binlog_order) == in_binlog_order
    assert order_prefix(3, 520) + (1).to_bytes(8, "big") == order(3, 520, 1)
    assert split_order(order(7, 1234, 5)) == (7, 1234, 5)


def test_file_sequence() -> None:
    assert file_sequence("binlog.000042") == 42
    assert file_sequence("mysql-bin.1000000") == 1_000_000
    for bad in ("binlog", "binlog.", "binlog.12a"):
        with pytest.raises(ValueError):
            file_sequence(bad)


def test_resume_points_round_trip() -> None:
    for point in (
        BinlogPoint("binlog.000003", 1234, "0-1-42", "1"),
        BinlogPoint("binlog.000003", 4),
        BinlogPoint(
            "mysql-bin.000001",
            157,
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4e11fa47-71ca-11e1-9e33-c80aa9429562:1",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562",
        ),
    ):
        assert BinlogPoint.decode(point.encode()) == point
    assert (
        BinlogPoint("binlog.000003", 1234, "0-1-42,1-2-7", "1").encode()
        == "file=binlog.000003;pos=1234;gtid=0-1-42,1-2-7;server=1"
    )
    for bad in (
        "",
        "pos=4",
        "file=binlog.000001",
        "file=binlog.000001;pos=x",
        "file=x;pos=4",
        "file=binlog.000001;pos=4;what=1",
        "file=binlog.000001;pos=4;pos=5",
    ):
        with pytest.raises(ValueError):
            BinlogPoint.decode(bad)


def test_gtid_positions_advance_per_domain() -> None:
    position = MariaDbGtidPosition("0-1-5,2-3-4")
    position.advance("0-2-9")
    position.advance("1-1-1")
    assert str(position) == "0-2-9,1-1-1,2-3-4"
    assert str(MariaDbGtidPosition("")) == ""
    with pytest.raises(ValueError):
        position.advance("3e11fa47-71ca-11e1-9e33-c80aa9429562:5")
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    executed = MySqlGtidSet(f"{uuid}:1-5")
    executed.advance(f"{uuid}:6")
    assert str(executed) == f"{uuid}:1-6"


def test_errors_survive_pickling() -> None:
    for error in (OffsetLost("mariadb node `m`: gone"), SourceMisconfigured("mariadb node `m`: fix it")):
        assert str(pickle.loads(pickle.dumps(error))) == str(error)


# --- TLS ------------------------------------------------------------------------------------------------------


def params(mode: str, **tls: str) -> ConnectParams:
    return ConnectParams("db.example", 3306, "capture", "s3cret", "shop", Tls(mode=mode, **tls))  # type: ignore[arg-type]


def system_ca_file() -> str:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.exists(candidate):
            return candidate
    pytest.skip("no CA bundle on this machine")


def test_tls_modes_map_to_pymysql() -> None:
    disabled = connect_kwargs(params("disable"))
    assert disabled["ssl_disabled"] is True and "ssl" not in disabled
    preferred = connect_kwargs(params("prefer"))  # pymysql's default: TLS if offered, unchecked
    assert "ssl" not in preferred and "ssl_disabled" not in preferred
    required = connect_kwargs(params("require"))["ssl"]
    assert isinstance(required, ssl.SSLContext)
    assert required.verify_mode == ssl.CERT_NONE and not required.check_hostname
    ca = system_ca_file()
    verify_ca = connect_kwargs(params("verify-ca", ca_file=ca))["ssl"]
    assert verify_ca.verify_mode == ssl.CERT_REQUIRED and not verify_ca.check_hostname
    verify_full = connect_kwargs(params("verify-full", ca_file=ca))["ssl"]
    assert verify_full.verify_mode == ssl.CERT_REQUIRED and verify_full.check_hostname


def test_connect_arguments() -> None:
    kwargs = connect_kwargs(params("prefer"), read_timeout_s=30)
    assert kwargs | {"password": "-"} == {
        "host": "db.example",
        "port": 3306,
        "user": "capture",
        "password": "-",
        "database": "shop",
        "charset": "utf8mb4",
        "connect_timeout": 10.0,
        "autocommit": True,
        "read_timeout": 30,
    }
    assert "database" not in connect_kwargs(params("prefer"), database="")
    assert "s3cret" not in repr(params("prefer"))


# --- values -----------------------------------------------------------------------------------------------------


def column(name: str, kind: int, **attributes: object) -> Column:
    return Column(name=name, type=kind, **attributes)


def table(*columns: ColumnInfo) -> TableInfo:
    return TableInfo("db", "t", (ColumnInfo("id", "int"), *columns), ("id",))


def test_binlog_plan_fixes_what_mysql_replication_gets_wrong() -> None:
    info = table(ColumnInfo("j", "longtext", is_json=True))
    plan = binlog_plan(
        [
            column("id", FIELD_TYPE.LONG),
            column("y", FIELD_TYPE.YEAR),
            column("b", FIELD_TYPE.BIT),
            column("s", FIELD_TYPE.SET),
            column("e", FIELD_TYPE.SET),
            column("ts", FIELD_TYPE.TIMESTAMP2),
            column("bn", FIELD_TYPE.STRING, character_set_name="binary", max_length=4),
            column("vb", FIELD_TYPE.VARCHAR, character_set_name="binary", max_length=10),
            column("c", FIELD_TYPE.STRING, character_set_name="utf8", max_length=40),
            column("j", FIELD_TYPE.BLOB, character_set_name="utf8"),
            column("mj", FIELD_TYPE.JSON),
        ],
        info,
        "mariadb",
    )
    row = {
        "id": 1,
        "y": 1900,
        "b": "101",
        "s": {"z", "x"},
        "e": None,
        "ts": dt.datetime(2024, 1, 1, 12),
        "bn": b"a",
        "vb": "",
        "c": "a",
        "j": '{"k": [1, 2.5]}',
        "mj": {b"k": [b"v", 1, {b"n": None}]},
    }
    assert plan.apply(row, {"e": NONE_SOURCE.EMPTY_SET}) == {
        "id": 1,
        "y": 0,
        "b": 5,
        "s": ["x", "z"],
        "e": [],
        "ts": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
        "bn": b"a\x00\x00\x00",
        "vb": b"",
        "c": "a",
        "j": {"k": [1, 2.5]},
        "mj": {"k": ["v", 1, {"n": None}]},
    }
    null_set = {
        "id": 2,
        "y": None,
        "b": None,
        "s": None,
        "e": None,
        "ts": None,
        "bn": None,
        "vb": None,
        "c": None,
        "j": None,
        "mj": None,
    }
    assert plan.apply(dict(null_set), {"s": NONE_SOURCE.NULL, "e": NONE_SOURCE.NULL}) == null_set


def test_snapshot_query_reads_floats_exactly_and_converts_like_the_binlog() -> None:
    query = snapshot_query(
        table(
            ColumnInfo("f", "float"),
            ColumnInfo("we`ird", "timestamp"),
            ColumnInfo("s", "set"),
            ColumnInfo("b", "bit"),
            ColumnInfo("j", "longtext", is_json=True),
        )
    )
    assert query.select_list == "`id`, CAST(`f` AS DOUBLE) AS `f`, `we``ird`, `s`, `b`, `j`"
    row = {"id": 1, "f": 1.100000023841858, "we`ird": dt.datetime(2024, 1, 1), "s": "y,x", "b": b"\x01\x02", "j": '"x"'}
    assert query.plan.apply(dict(row)) == {
        "id": 1,
        "f": 1.100000023841858,
        "we`ird": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "s": ["x", "y"],
        "b": 258,
        "j": "x",
    }
    assert query.plan.apply({**row, "s": ""})["s"] == []


def test_keyset_pagination_for_composite_keys() -> None:
    assert _keyset(["a"]) == "(`a` > %s)"
    assert _keyset(["a", "b", "c"]) == "(`a` > %s) OR (`a` = %s AND `b` > %s) OR (`a` = %s AND `b` = %s AND `c` > %s)"
    assert _keyset_args([1, "x", 3]) == [1, 1, "x", 1, "x", 3]


def test_names() -> None:
    assert split_namespace("shop.orders") == ("shop", "orders")
    for bad in ("orders", "shop.", ".orders", "a.b.c"):
        with pytest.raises(ValueError):
            split_namespace(bad)
    assert quote("a`b") == "`a``b`"


def test_the_registry_builds_a_source_from_a_mysql_node() -> None:
    node = MySqlNode(host="db.example", database="shop", username="capture", flavor="mariadb", server_id=4242)
    spec = StreamSpec(stream="shop-orders", node_name="mysql", node=node, tables=["shop.orders"], snapshot_chunk_rows=7)
    source = source_for_node(spec, "s3cret")
    assert (source.stream, source.node, source.tables, source.server_id, source.flavor, source.chunk_rows) == (
        "shop-orders",
        "mysql",
        ["shop.orders"],
        4242,
        "mariadb",
        7,
    )
    assert (source.params.host, source.params.port, source.params.user, source.params.password) == (
        "db.example",
        3306,
        "capture",
        "s3cret",
    )
    with pytest.raises(ValueError, match=r"expected `database\.table`"):
        MariaDbSource("mysql", source.params, ["orders"], server_id=1)
