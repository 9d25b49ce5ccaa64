"""`worker-sync probe` through a real running pipeline (PostgreSQL -> MariaDB): the marker table, its
implicit route, the round trip, and the exit codes for a timeout, a bad link name and a dead node."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import ray

from actors.cli import main
from actors.core.routing import build_routes
from actors.harness import Endpoint
from actors.harness.compare import table_rows
from actors.ops.probe_table import create_probe_table, nodes_with_probe_table
from config import nodes_by_name
from tests.actors.test_pipeline import create_orders, wait_ready
from tests.pipeline_helpers import pg_to_mariadb_config, running, unreachable_config
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")
PROBE_NAMESPACE = "public.worker_sync_probe"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_probe_round_trip_through_a_running_pipeline(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("INSERT INTO public.orders (id, customer, qty, price) VALUES (1, 'user-row', 1, 2.5)")
    orders = f"{fresh_mariadb_db.database}.orders"
    config = pg_to_mariadb_config(
        fresh_pg_db,
        fresh_mariadb_db,
        tmp_path,
        [("public.orders", orders)],
        ray_address=ray.get_runtime_context().gcs_address,
    )
    path = tmp_path / "config.yaml"
    path.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
    # Without the probe table the link carries exactly the tables it names.
    assert nodes_with_probe_table(config) == {}
    assert [route.source_namespace for route in build_routes(config, nodes_with_probe_table(config))] == [
        "public.orders"
    ]
    code, _, err = cli(capsys, "probe", "--config", str(path), "--timeout", "2")
    assert code == 1 and "link `test-link`" in err and "worker-sync init" in err, err

    nodes = nodes_by_name(config)
    # What `init` does, as each server's administrator; the configured users get their four privileges.
    create_probe_table("postgresql", nodes["postgresql"], (fresh_pg_db.admin.user, fresh_pg_db.admin.password))
    create_probe_table("mysql", nodes["mysql"], (fresh_mariadb_db.admin.user, fresh_mariadb_db.admin.password))
    assert nodes_with_probe_table(config) == {
        "postgresql": PROBE_NAMESPACE,
        "mysql": f"{fresh_mariadb_db.database}.worker_sync_probe",
    }
    routes = build_routes(config, nodes_with_probe_table(config))
    probe = [route for route in routes if route.source_namespace == PROBE_NAMESPACE]
    assert [(r.link, r.target_namespace) for r in probe] == [
        ("test-link", f"{fresh_mariadb_db.database}.worker_sync_probe")
    ]

    code, _, err = cli(capsys, "probe", "--config", str(path), "--timeout", "1")
    assert code == 1 and "did not reach `mysql` within 1 s" in err, err  # nothing runs yet

    with running(config) as supervisor:
        wait_ready(supervisor)
        code, out, err = cli(capsys, "probe", "--config", str(path), "--json", "--timeout", "60")
        assert code == 0, err
        (result,) = json.loads(out)["links"]
        assert result["ok"] and result["link"] == "test-link" and 0 < result["round_trip_ms"] < 60_000
        code, out, _ = cli(capsys, "probe", "--config", str(path), "--link", "test-link")
        assert code == 0 and "marker arrived in" in out
        # The marker's delete travels too: both probe tables end empty, the user table is untouched.
        target_probe = f"{fresh_mariadb_db.database}.worker_sync_probe"
        wait_until(lambda: not table_rows(fresh_mariadb_db, target_probe), timeout_s=60, what="the markers' deletes")
        assert table_rows(fresh_mariadb_db, target_probe) == {}
        assert table_rows(fresh_pg_db, PROBE_NAMESPACE) == {}
        assert list(table_rows(fresh_mariadb_db, orders)) == list(table_rows(fresh_pg_db, "public.orders"))
        status = supervisor.status()
    assert status.streams[0].error is None


def test_bad_link_is_2_and_an_unreachable_node_is_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = unreachable_config(tmp_path, "never-print-me-0815")
    code, _, err = cli(capsys, "probe", "--config", str(path), "--link", "nope")
    assert code == 2 and "no link named `nope`" in err and "`l`" in err
    code, out, err = cli(capsys, "probe", "--config", str(path), "--json")
    assert code == 3 and "link `l`" in err and "127.0.0.1:1" in err and "Traceback" not in err
    assert json.loads(out)["ok"] is False
    assert "never-print-me-0815" not in out + err


def test_init_creates_the_probe_table_and_grants_the_configured_user(
    fresh_pg_db: Endpoint,
    fresh_mariadb_db: Endpoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = pg_to_mariadb_config(fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.orders", "x.orders")])
    path = tmp_path / "config.yaml"
    path.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
    monkeypatch.setenv("PROBE_TEST_ADMIN_PASSWORD", fresh_pg_db.admin.password)
    init = ("init", "--config", str(path), "--admin-user", fresh_pg_db.admin.user)
    code, _, err = cli(capsys, *init, "--admin-password-env", "PROBE_TEST_ADMIN_PASSWORD")
    assert code == 0, err
    # The MariaDB node's configured user (apply) may not create tables: init says so and shows the SQL.
    assert "probe table not created on node `mysql`" in err and "CREATE TABLE IF NOT EXISTS" in err, err
    with fresh_pg_db.connect("admin") as conn:
        row = conn.execute(
            "SELECT has_table_privilege(%s, %s, 'INSERT'), has_table_privilege(%s, %s, 'DELETE'),"
            " has_table_privilege(%s, %s, 'TRUNCATE')",
            [fresh_pg_db.capture.user, PROBE_NAMESPACE] * 3,
        ).fetchone()
    assert row == (True, True, False)
