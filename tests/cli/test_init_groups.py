"""`worker-sync init` prepares the nodes of bidirectional groups: version tables, echo marker, grants."""

from __future__ import annotations

import psycopg
import pytest

from actors.cli import main
from actors.core.errors import ConfigError
from actors.harness import Endpoint
from actors.harness.secret_files import write_secret_file
from actors.preflight import check_groups
from config import load_config


def test_init_creates_version_tables_the_node_accounts_can_write(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path, monkeypatch, capsys
) -> None:
    pg, maria = fresh_pg_db, fresh_mariadb_db
    pg_password = write_secret_file(tmp_path, "pg", pg.capture.password)
    maria_password = write_secret_file(tmp_path, "maria", maria.capture.password)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
nodes:
  - {{name: pg, engine: postgresql, host: {pg.host}, port: {pg.port}, database: {pg.database},
      username: {pg.capture.user}, password_file: {pg_password}, tls: {{mode: disable}}}}
  - {{name: maria, engine: mysql, host: {maria.host}, port: {maria.port}, database: {maria.database},
      username: {maria.capture.user}, password_file: {maria_password}, tls: {{mode: disable}}}}
links:
  - {{name: both, source: pg, target: maria, bidirectional: true,
      tables: [{{source: public.kv, target: {maria.database}.kv}}]}}
audit: {{enabled: false, node: pg}}
"""
    )
    # Before init, `run` stops at start and says what to do.
    with pytest.raises(ConfigError, match=r"node `maria` is in a bidirectional group.*worker_sync_versions.*init"):
        check_groups(load_config(config))
    monkeypatch.setenv("PG_ADMIN_PASSWORD", pg.admin.password)
    monkeypatch.setenv("MARIA_ADMIN_PASSWORD", maria.admin.password)
    admin = ["--admin-user", pg.admin.user, "--admin-password-env", "PG_ADMIN_PASSWORD"]
    admin += ["--mysql-admin-user", maria.admin.user, "--mysql-admin-password-env", "MARIA_ADMIN_PASSWORD"]
    assert main(["init", "--config", str(config), *admin]) == 0, capsys.readouterr()
    assert "bidirectional sync ready on node(s) maria, pg" in capsys.readouterr().out
    assert main(["init", "--config", str(config), *admin]) == 0  # again: nothing changes, nothing fails
    check_groups(load_config(config))  # and now `run` may start

    # The node accounts (capture users here) may now use what their writer needs, and nothing more.
    with pg.connect("capture") as conn:
        conn.execute("INSERT INTO worker_sync_meta.versions VALUES ('t', '\\x00', '\\x00')")
        conn.execute("SELECT pg_replication_origin_create(%s)", ["worker_sync_init_test"])
        conn.execute("SELECT pg_replication_origin_session_setup(%s)", ["worker_sync_init_test"])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM worker_sync_meta.versions")
    with maria.connect("capture") as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{maria.database}`.worker_sync_echo VALUES ('w', 1)")
        cur.execute(f"INSERT INTO `{maria.database}`.worker_sync_versions VALUES ('t', REPEAT('a', 32), 'x')")
