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


def test_init_prepares_a_mongodb_member_and_run_wants_a_replica_set(
    fresh_pg_db: Endpoint, mongo_server, fresh_mongo_db: str, tmp_path, monkeypatch, capsys
) -> None:
    """On the stand-in (no replica set) `run` still refuses the group, naming why; on a real replica set it
    refuses only until init made the collections."""
    pg = fresh_pg_db
    pg_password = write_secret_file(tmp_path, "pg", pg.capture.password)
    mongo_password = f", password_file: {write_secret_file(tmp_path, 'mongo', mongo_server.password)}"
    replica_set = f", replica_set: {mongo_server.replica_set}" if mongo_server.replica_set else ""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
nodes:
  - {{name: pg, engine: postgresql, host: {pg.host}, port: {pg.port}, database: {pg.database},
      username: {pg.capture.user}, password_file: {pg_password}, tls: {{mode: disable}}}}
  - {{name: mongo, engine: mongodb, host: {mongo_server.host}, port: {mongo_server.port}, database: {fresh_mongo_db},
      username: '{mongo_server.username}', auth_source: {mongo_server.auth_source}, tls: {{mode: disable}}
      {mongo_password if mongo_server.password else ""}{replica_set},
      collections: {{{fresh_mongo_db}.kv: {{_id: int, v: string}}}}}}
links:
  - {{name: both, source: pg, target: mongo, bidirectional: true,
      tables: [{{source: public.kv, target: {fresh_mongo_db}.kv, columns: {{id: _id}}}}]}}
audit: {{enabled: false, node: pg}}
"""
    )
    not_a_replica_set = r"mongodb node `mongo` is in a bidirectional group, but it is neither a replica set member"
    if mongo_server.real:
        with pytest.raises(ConfigError, match=rf"node `mongo` .*`{fresh_mongo_db}.worker_sync_versions` is missing"):
            check_groups(load_config(config))
    else:
        with pytest.raises(ConfigError, match=not_a_replica_set):
            check_groups(load_config(config))
    monkeypatch.setenv("PG_ADMIN_PASSWORD", pg.admin.password)
    admin = ["--admin-user", pg.admin.user, "--admin-password-env", "PG_ADMIN_PASSWORD"]
    assert main(["init", "--config", str(config), *admin]) == 0, capsys.readouterr()
    assert "bidirectional sync ready on node(s) mongo, pg" in capsys.readouterr().out
    with mongo_server.client() as client:
        assert {"worker_sync_versions", "worker_sync_echo"} <= set(client[fresh_mongo_db].list_collection_names())
    if mongo_server.real:
        check_groups(load_config(config))
    else:
        with pytest.raises(ConfigError, match=not_a_replica_set):
            check_groups(load_config(config))
