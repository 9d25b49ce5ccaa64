"""`worker-sync run` checks every target before starting anything: a wrong password, a missing table or an
unreachable target node ends with one line naming the node and the documented exit code, never a traceback.

Each run here fails in its start-up checks, before Ray or any actor starts."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from actors.harness import Endpoint
from actors.harness.secret_files import write_secret_file
from tests.actors.test_pipeline import create_orders
from tests.pipeline_helpers import pg_to_mariadb_config_text

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = shutil.which("worker-sync", path=str(Path(sys.executable).parent)) or "worker-sync"
WRONG_PASSWORD = "wrong-pw-never-print-me-8152"


def run_config(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return subprocess.run(
        [SCRIPT, "run", "--config", str(path), "--http-port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def config_text(pg: Endpoint, mariadb: Endpoint, tmp_path: Path, *, reverse: bool) -> str:
    """One link `test-link` of the orders table: PostgreSQL -> MariaDB, or MariaDB -> PostgreSQL (``reverse``)."""
    source, target = (f"{mariadb.database}.orders", "public.orders") if reverse else ("public.orders", None)
    tables = [(source, target or f"{mariadb.database}.orders")]
    return pg_to_mariadb_config_text(pg, mariadb, tmp_path, tables, reverse=reverse)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line the failed run printed (on stderr), after checking nothing else went wrong."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert WRONG_PASSWORD not in output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("target", ["mysql", "postgresql"])
def test_a_wrong_target_password_is_a_config_error_naming_the_node(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, target: str
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    text = config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, reverse=target == "postgresql")
    # The target's password file (pg_to_mariadb_config_text's names), overwritten with a wrong password.
    write_secret_file(tmp_path, "pg-password" if target == "postgresql" else "mariadb-password", WRONG_PASSWORD)
    result = run_config(text, tmp_path)
    line = one_line(result)
    assert result.returncode == 2, line
    assert line.startswith("worker-sync run: "), line
    assert f"node `{target}`" in line, line
    assert "authentication failed" in line, line


def test_a_wrong_source_password_is_a_config_error_too(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    text = config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, reverse=False)
    write_secret_file(tmp_path, "pg-password", WRONG_PASSWORD)
    result = run_config(text, tmp_path)
    line = one_line(result)
    assert result.returncode == 2, line
    assert "node `postgresql`" in line and "authentication failed" in line, line


@pytest.mark.parametrize("target", ["mysql", "postgresql"])
def test_an_unreachable_target_exits_3_naming_the_node(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, target: str
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    port = closed_port()
    if target == "postgresql":  # libpq's message spans two lines: still one line out
        text = config_text(dataclasses.replace(fresh_pg_db, port=port), fresh_mariadb_db, tmp_path, reverse=True)
    else:
        text = config_text(fresh_pg_db, dataclasses.replace(fresh_mariadb_db, port=port), tmp_path, reverse=False)
    result = run_config(text, tmp_path)
    line = one_line(result)
    assert result.returncode == 3, line
    assert f"node `{target}`" in line, line
    assert str(port) in line, line


def test_a_missing_target_table_is_a_config_error(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    with fresh_pg_db.connect("admin") as conn:  # the source table only
        conn.execute("CREATE TABLE public.orders (id bigint PRIMARY KEY, note text)")
    result = run_config(config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, reverse=False), tmp_path)
    line = one_line(result)
    assert result.returncode == 2, line
    assert "node `mysql`" in line, line
    assert f"{fresh_mariadb_db.database}.orders" in line, line


@pytest.mark.usefixtures("ray_session")
def test_checks_beside_joining_a_cluster_end_the_same_way(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    """With `ray_address` the checks run in a child process while `run` joins the cluster: a refused table is
    still one line naming the node, and exit 2, and no actor starts."""
    import ray

    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.orders (id bigint PRIMARY KEY, note text)")
    tables = [("public.orders", f"{fresh_mariadb_db.database}.orders")]
    address = ray.get_runtime_context().gcs_address
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, tables, ray_address=address)
    result = run_config(text, tmp_path)
    line = one_line(result)
    assert result.returncode == 2, line
    assert "node `mysql`" in line and f"{fresh_mariadb_db.database}.orders" in line, line
    assert "started" not in result.stdout, result.stdout
