"""`worker-sync verify` on real servers, tables written directly (no pipeline running): equal tables across
engines and type pairs, each kind of difference named with both rows, renamed columns, `--repair`, and the
exit codes for bad usage, MongoDB and an unreachable node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.cli import main
from actors.harness import Endpoint
from tests.pipeline_helpers import pg_to_mariadb_config_text, unreachable_config

PG_PRICES = """
CREATE TABLE public.prices (
    id bigint PRIMARY KEY, name varchar(64) NOT NULL, price numeric(12,2), ratio numeric,
    paid boolean NOT NULL, at timestamptz(6), local_at timestamp(3), day date, bin bytea, code uuid, note char(8)
)
"""
MARIADB_PRICES = """
CREATE TABLE prices (
    id bigint PRIMARY KEY, name varchar(64) NOT NULL, price decimal(14,4), ratio decimal(30,10),
    paid boolean NOT NULL, at datetime(6), local_at datetime(3), day date, bin longblob, code char(36), note char(8)
)
"""
PG_ROWS = """
INSERT INTO public.prices VALUES
 (1, 'a', 1.50, 0.25, true, '2024-03-01 12:00:00.123456+02', '2024-03-01 10:00:00.5', '2024-03-01', '\\x00ff',
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'pad'),
 (2, 'b', 100.00, 3, false, '1999-12-31 23:59:59+00', NULL, NULL, NULL, NULL, NULL),
 (3, 'ü€', NULL, -0.5, true, NULL, NULL, '2000-02-29', '', NULL, '')
"""
MARIADB_ROWS = """
INSERT INTO prices VALUES
 (1, 'a', 1.5000, 0.2500000000, 1, '2024-03-01 10:00:00.123456', '2024-03-01 10:00:00.500', '2024-03-01', x'00ff',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'pad'),
 (2, 'b', 100, 3.0, 0, '1999-12-31 23:59:59', NULL, NULL, NULL, NULL, NULL),
 (3, 'ü€', NULL, -0.50, 1, NULL, NULL, '2000-02-29', '', NULL, '')
"""


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def pg_exec(endpoint: Endpoint, *statements: str) -> None:
    with endpoint.connect("admin") as conn:
        for statement in statements:
            conn.execute(statement)


def maria_exec(endpoint: Endpoint, *statements: str) -> None:
    conn = endpoint.connect("admin")
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def write_config(pg: Endpoint, mariadb: Endpoint, tmp_path: Path, tables: list[tuple[str, str]], **kw) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(pg_to_mariadb_config_text(pg, mariadb, tmp_path, tables, **kw))
    return path


@pytest.fixture
def prices(fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path) -> Path:
    pg_exec(fresh_pg_db, PG_PRICES, PG_ROWS)
    maria_exec(fresh_mariadb_db, MARIADB_PRICES, MARIADB_ROWS)
    return write_config(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.prices", f"{fresh_mariadb_db.database}.prices")]
    )


def test_equal_values_of_mapped_type_pairs_hash_equal(prices: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """numeric(12,2) 1.50 = DECIMAL(14,4) 1.5000, timestamptz = DATETIME(6) in UTC, uuid = CHAR(36), bytea =
    LONGBLOB, boolean = TINYINT(1), CHAR padding: all hashed inside both databases, and equal."""
    code, out, err = cli(capsys, "verify", "--config", str(prices), "--link", "test-link", "--json")
    assert code == 0, (out, err)
    (table,) = json.loads(out)["tables"]
    assert table["hashed_in"] == "database" and table["differences"] == []
    assert table["source_rows"] == table["target_rows"] == 3 and table["ranges_checked"] == 1


def test_changed_missing_and_extra_rows_are_named_with_both_values(
    prices: Path, fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    maria_exec(
        fresh_mariadb_db,
        "UPDATE prices SET price = 1.51 WHERE id = 1",
        "DELETE FROM prices WHERE id = 2",
        "INSERT INTO prices (id, name, paid) VALUES (9, 'extra', 0)",
    )
    code, out, err = cli(capsys, "verify", "--config", str(prices), "--link", "test-link", "--json")
    assert code == 1 and out, err
    report = json.loads(out)
    assert report["equal"] is False
    diffs = {d["key"]["id"]: d for d in report["tables"][0]["differences"]}
    assert set(diffs) == {"1", "2", "9"}
    assert diffs["1"]["columns"] == ["price"]
    assert diffs["1"]["source"]["price"] == "1.5" and diffs["1"]["target"]["price"] == "1.51"
    assert diffs["2"]["target"] is None and diffs["2"]["source"]["name"] == "b"
    assert diffs["9"]["source"] is None and diffs["9"]["target"]["name"] == "extra"
    # The text form says the same, one key per line.
    code, out, _ = cli(capsys, "verify", "--config", str(prices), "--link", "test-link", "--settle-timeout", "0")
    assert code == 1
    assert "3 keys differ" in out and "price: source '1.5', target '1.51'" in out, out
    assert "key id=2: only at the source" in out and "key id=9: only at the target" in out, out


def test_repair_makes_the_target_equal_again(
    prices: Path, fresh_mariadb_db: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    maria_exec(
        fresh_mariadb_db,
        "UPDATE prices SET at = '2000-01-01', note = 'x' WHERE id = 1",
        "DELETE FROM prices WHERE id = 3",
        "INSERT INTO prices (id, name, paid) VALUES (7, 'extra', 0)",
    )
    code, out, err = cli(capsys, "verify", "--config", str(prices), "--link", "test-link", "--repair", "--json")
    assert code == 1, err
    (table,) = json.loads(out)["tables"]
    assert table["repaired"] == {"upserts": 2, "deletes": 1, "audit_entry": None}
    code, out, err = cli(capsys, "verify", "--config", str(prices), "--link", "test-link")
    assert code == 0, (out, err)


def test_renamed_columns_follow_the_link_column_map(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg_exec(
        fresh_pg_db,
        "CREATE TABLE public.items (id int PRIMARY KEY, qty int, label text)",
        "INSERT INTO public.items SELECT g, g % 7, 'item ' || g FROM generate_series(1, 2000) g",
    )
    maria_exec(
        fresh_mariadb_db,
        "CREATE TABLE items (item_id int PRIMARY KEY, quantity int, label longtext)",
        "INSERT INTO items SELECT seq, seq % 7, CONCAT('item ', seq) FROM seq_1_to_2000",
    )
    path = write_config(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.items", f"{fresh_mariadb_db.database}.items")]
    )
    text = path.read_text().replace(
        f"target: {fresh_mariadb_db.database}.items}}",
        f"target: {fresh_mariadb_db.database}.items, columns: {{id: item_id, qty: quantity}}}}",
    )
    path.write_text(text)
    code, out, err = cli(capsys, "verify", "--config", str(path), "--link", "test-link", "--chunk-rows", "300")
    assert code == 0, (out, err)
    assert "7 ranges checked" in out, out
    maria_exec(fresh_mariadb_db, "UPDATE items SET quantity = 99 WHERE item_id = 1234")
    code, out, _ = cli(capsys, "verify", "--config", str(path), "--link", "test-link", "--json", "--chunk-rows", "300")
    assert code == 1
    (diff,) = json.loads(out)["tables"][0]["differences"]
    assert diff["key"] == {"id": "1234"} and diff["columns"] == ["qty"]
    assert diff["source"]["qty"] == "2" and diff["target"]["quantity"] == "99"
    assert diff["target"]["item_id"] == "1234"


def test_mariadb_source_and_types_without_an_sql_form(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MariaDB -> PostgreSQL, with JSON, FLOAT/DOUBLE and SET columns: read and hashed client-side."""
    maria_exec(
        fresh_mariadb_db,
        "CREATE TABLE docs (id int PRIMARY KEY, doc json, f float, d double, tags set('a','b','c'), t time(6))",
        "INSERT INTO docs VALUES (1, '{\"b\": 1.50, \"a\": [1, 2]}', 0.1, 0.1, 'c,a', '12:30:00.5'),"
        " (2, NULL, NULL, 1e20, '', '00:00:00')",
    )
    pg_exec(
        fresh_pg_db,
        "CREATE TABLE public.docs (id int PRIMARY KEY, doc jsonb, f real, d double precision, tags text[], t time(6))",
        "INSERT INTO public.docs VALUES (1, '{\"a\": [1, 2], \"b\": 1.5}', 0.1, 0.1, '{a,c}', '12:30:00.5'),"
        " (2, NULL, NULL, 1e20, '{}', '00:00:00')",
    )
    path = write_config(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [(f"{fresh_mariadb_db.database}.docs", "public.docs")], reverse=True
    )
    code, out, err = cli(capsys, "verify", "--config", str(path), "--link", "test-link", "--json")
    assert code == 0, (out, err)
    assert json.loads(out)["tables"][0]["hashed_in"] == "client"
    pg_exec(fresh_pg_db, 'UPDATE public.docs SET doc = \'{"a": [2, 1], "b": 1.5}\' WHERE id = 1')
    code, out, _ = cli(capsys, "verify", "--config", str(path), "--link", "test-link", "--json")
    assert code == 1
    (diff,) = json.loads(out)["tables"][0]["differences"]
    assert diff["columns"] == ["doc"] and diff["source"]["doc"] == '{"a":[1,2],"b":1.5}'


def test_usage_mongodb_and_unreachable_exit_codes(
    prices: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "verify", "--config", str(prices), "--link", "nope")
    assert code == 2 and "no link named `nope`" in err
    code, _, err = cli(capsys, "verify", "--config", str(prices), "--link", "test-link", "--table", "public.nope")
    assert code == 2 and "has no table `public.nope`" in err
    code, _, err = cli(capsys, "verify", "--config", str(unreachable_config(tmp_path, "s3cret")), "--link", "l")
    assert code == 3 and "cannot connect" in err and "s3cret" not in err, err
    mongo = tmp_path / "mongo.yaml"
    mongo.write_text(
        """
nodes:
  - {name: m, engine: mongodb, host: 127.0.0.1, port: 1, database: d, username: u, password_env: NOPE,
     collections: {d.c: {_id: int}}}
  - {name: p, engine: postgresql, host: 127.0.0.1, port: 1, database: d, username: u, password_env: NOPE}
links: [{name: l, source: m, target: p, tables: [{source: d.c, target: public.c}]}]
audit: {enabled: false}
"""
    )
    code, _, err = cli(capsys, "verify", "--config", str(mongo), "--link", "l")
    assert code == 2 and "comparing mongodb tables is not built yet" in err, err


def test_repair_is_a_signed_repair_admin_entry_when_the_audit_is_on(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nacl.signing import SigningKey

    from actors.core.audit.entries import EntryKind, admin_detail, decode_entry
    from actors.engines.postgresql.audit_store import AuditStore, create_schema

    pg_exec(fresh_pg_db, PG_PRICES, PG_ROWS)
    maria_exec(fresh_mariadb_db, MARIADB_PRICES, MARIADB_ROWS, "UPDATE prices SET name = 'changed' WHERE id = 2")
    with fresh_pg_db.connect("admin") as admin:
        create_schema(admin, "worker_sync_audit", fresh_pg_db.capture.user)
    key = tmp_path / "signing.key"
    key.write_text(bytes(SigningKey.generate()).hex())
    key.chmod(0o600)
    audit = f"  enabled: true\n  node: postgresql\n  schema: worker_sync_audit\n  signing_key_file: {key}"
    path = write_config(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.prices", f"{fresh_mariadb_db.database}.prices")], audit=audit
    )
    code, out, err = cli(capsys, "verify", "--config", str(path), "--link", "test-link", "--repair", "--json")
    assert code == 1, err
    repaired = json.loads(out)["tables"][0]["repaired"]
    assert repaired["upserts"] == 1 and repaired["audit_entry"] == 0
    with fresh_pg_db.connect("admin") as conn:
        (entry,) = [decode_entry(row.data) for row in AuditStore(conn, "worker_sync_audit").read()]
    assert entry.kind == EntryKind.ADMIN and entry.op == "repair"
    detail = admin_detail(entry)
    assert detail["link"] == "test-link" and detail["keys"] == [{"id": "2"}] and detail["upserts"] == 1
    assert cli(capsys, "verify", "--config", str(path), "--link", "test-link")[0] == 0


def test_several_links_each_in_turn_with_the_worst_exit_code(
    prices: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--all-links` skips a MongoDB link with a note; a link that fails (unreachable: 3) does not stop the
    equal one (0) from being verified, and the exit code is the worst; `--table` needs exactly one link."""
    secret = tmp_path / "gone-password"
    secret.write_text("s3cret")
    text = prices.read_text().replace(
        "links:\n",
        "nodes:\n"
        "  - {name: m, engine: mongodb, host: 127.0.0.1, port: 1, database: d, username: u, password_env: NOPE,\n"
        "     collections: {d.c: {_id: int}}}\n"
        "  - {name: gone, engine: postgresql, host: 127.0.0.1, port: 1, database: d, username: u,\n"
        f"     password_file: {secret}, tls: {{mode: disable}}}}\n"
        "links:\n"
        "  - {name: to-mongo, source: postgresql, target: m, tables: [{source: public.prices, target: d.c}]}\n"
        "  - {name: to-gone, source: postgresql, target: gone, tables: [{source: public.prices}]}\n",
        1,
    )
    several = tmp_path / "several.yaml"
    several.write_text(text)
    code, out, err = cli(capsys, "verify", "--config", str(several), "--all-links", "--json")
    assert code == 3, (out, err)
    assert "link `to-mongo` skipped" in err and "cannot connect" in err
    [document] = [json.loads(line) for line in out.splitlines()]  # the one link that could be verified
    assert document["link"] == "test-link" and document["equal"] is True
    code, _, err = cli(capsys, "verify", "--config", str(several), "--link", "test-link", "--link", "to-gone")
    assert code == 3
    code, _, err = cli(capsys, "verify", "--config", str(several), "--all-links", "--table", "public.prices")
    assert code == 2 and "--table needs exactly one --link" in err
