"""`worker-sync init` publishes a `pgoutput` source's tables (the probe table included) as an administrator,
and without one says which statement the owner must run; a wal2json source needs no publication."""

from __future__ import annotations

import argparse

from actors.cli import main
from actors.cli._capture_init import init_capture_sources
from actors.harness import Endpoint
from actors.harness.secret_files import write_secret_file
from config import load_config


def _config(pg: Endpoint, maria: Endpoint, tmp_path, decoder: str) -> str:
    pg_password = write_secret_file(tmp_path, "pg", pg.capture.password)
    maria_password = write_secret_file(tmp_path, "maria", maria.apply.password)
    config = tmp_path / f"{decoder}.yaml"
    config.write_text(
        f"""
nodes:
  - {{name: pg, engine: postgresql, host: {pg.host}, port: {pg.port}, database: {pg.database},
      username: {pg.capture.user}, password_file: {pg_password}, tls: {{mode: disable}},
      decoder: {decoder}, slot_name: ws_{decoder}}}
  - {{name: maria, engine: mysql, host: {maria.host}, port: {maria.port}, database: {maria.database},
      username: {maria.apply.user}, password_file: {maria_password}, tls: {{mode: disable}}}}
links:
  - {{name: one, source: pg, target: maria, tables: [{{source: public.orders, target: {maria.database}.orders}}]}}
audit: {{enabled: false, node: pg}}
"""
    )
    return str(config)


def _published(pg: Endpoint, name: str) -> list[str]:
    with pg.connect("admin") as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 1", (name,)
        ).fetchall()
    return [row[0] for row in rows]


def test_init_publishes_a_pgoutput_source_or_names_the_statement(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path, monkeypatch, capsys
) -> None:
    pg, maria = fresh_pg_db, fresh_mariadb_db
    with pg.connect("admin") as conn:
        conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, total numeric)")
    with maria.connect("admin") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE orders (id int PRIMARY KEY, total decimal(20,6))")
    config = _config(pg, maria, tmp_path, "pgoutput")

    # As the node's own (capture) account, which owns no table: a warning that names the owner's statement.
    no_admin = argparse.Namespace(admin_user=None, admin_password_env=None)
    init_capture_sources(load_config(config), no_admin)
    err = capsys.readouterr().err
    assert 'CREATE PUBLICATION "ws_pgoutput" FOR TABLE "public"."orders"' in err, err
    assert _published(pg, "ws_pgoutput") == []

    monkeypatch.setenv("PG_ADMIN_PASSWORD", pg.admin.password)
    monkeypatch.setenv("MARIA_ADMIN_PASSWORD", maria.admin.password)
    admin = ["--admin-user", pg.admin.user, "--admin-password-env", "PG_ADMIN_PASSWORD"]
    admin += ["--mysql-admin-user", maria.admin.user, "--mysql-admin-password-env", "MARIA_ADMIN_PASSWORD"]
    assert main(["init", "--config", config, *admin]) == 0, capsys.readouterr()
    published = _published(pg, "ws_pgoutput")
    assert "public.orders" in published
    assert published == ["public.orders", "public.worker_sync_probe"]  # the probe table travels too
    assert main(["init", "--config", config, *admin]) == 0  # again: nothing changes, nothing fails
    assert _published(pg, "ws_pgoutput") == published

    assert main(["init", "--config", _config(pg, maria, tmp_path, "wal2json"), *admin]) == 0
    assert _published(pg, "ws_wal2json") == []
