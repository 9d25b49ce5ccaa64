"""`worker-sync migrate` on a real PostgreSQL: an old store ends identical to a fresh `init`, and runs twice."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from actors.engines.postgresql.audit_schema import AUDIT
from actors.engines.postgresql.audit_store import AuditStore
from actors.engines.postgresql.schema_steps import Target
from actors.harness import Endpoint
from tests.audit.conftest import SCHEMA, build_log
from tests.audit.test_cli import ADMIN_PASSWORD_ENV, cli, write_config

OLD, FRESH = "ws_old_store", "ws_fresh_store"


def first_release_store(admin: psycopg.Connection, schema: str, role: str) -> None:
    """What the first release's `init` left: step 1's tables and triggers, its grants, and no version table."""
    with admin.transaction(), admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        AUDIT.steps[0].apply(cur, Target(schema, role))
        cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(role)))
        for table in ("entries", "checkpoints"):
            qualified = sql.Identifier(schema, table)
            cur.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC, {}").format(qualified, sql.Identifier(role)))
            cur.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(qualified, sql.Identifier(role)))


def catalog(conn: psycopg.Connection, schema: str) -> dict[str, list[tuple[object, ...]]]:
    """Everything migrate and init decide, with the schema's name taken out so two schemas compare."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = %(s)s ORDER BY 1, 2",
        "indexes": "SELECT tablename, indexname, replace(indexdef, %(s)s, 'S') FROM pg_indexes "
        "WHERE schemaname = %(s)s ORDER BY 1, 2",
        "triggers": "SELECT c.relname, t.tgname, replace(pg_get_triggerdef(t.oid), %(s)s, 'S'), t.tgenabled "
        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(s)s AND NOT t.tgisinternal ORDER BY 1, 2",
        "functions": "SELECT p.proname, replace(pg_get_functiondef(p.oid), %(s)s, 'S'), p.prosecdef, "
        "p.proacl::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(s)s "
        "ORDER BY 1",
        "table_acl": "SELECT c.relname, c.relacl::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = %(s)s AND c.relkind = 'r' ORDER BY 1",
        "column_acl": "SELECT c.relname, a.attname, a.attacl::text FROM pg_attribute a JOIN pg_class c "
        "ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(s)s AND a.attacl IS NOT NULL ORDER BY 1, 2",
        "schema_acl": "SELECT nspacl::text FROM pg_namespace WHERE nspname = %(s)s",
    }
    out = {name: conn.execute(query, {"s": schema}).fetchall() for name, query in queries.items()}
    version = sql.SQL("SELECT step, name FROM {} ORDER BY step").format(sql.Identifier(schema, "schema_version"))
    out["versions"] = conn.execute(version).fetchall()
    return out


def test_an_old_store_after_migrate_equals_a_fresh_init_and_migrate_runs_twice(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, fresh_pg_db, monkeypatch)
    old_config = tmp_path / "old.yaml"
    old_config.write_text(Path(config).read_text().replace(f"schema: {SCHEMA}", f"schema: {OLD}"))
    fresh_config = tmp_path / "fresh.yaml"
    fresh_config.write_text(Path(config).read_text().replace(f"schema: {SCHEMA}", f"schema: {FRESH}"))
    admin_flags = ("--admin-user", fresh_pg_db.admin.user, "--admin-password-env", ADMIN_PASSWORD_ENV)
    entries, checkpoints = build_log(30)
    with fresh_pg_db.connect("admin") as admin:
        first_release_store(admin, OLD, fresh_pg_db.apply.user)
        with fresh_pg_db.connect("apply") as service:
            AuditStore(service, OLD).append(entries, checkpoints)  # a log written before the upgrade

        migrate = ("migrate", "--config", str(old_config), *admin_flags)
        code, out, err = cli(capsys, *migrate, "--dry-run", "--json")
        assert code == 0, err
        (planned,) = json.loads(out)["schemas"]
        assert planned["from_version"] == 0 and planned["pending"] == [s.name for s in AUDIT.steps]
        with pytest.raises(psycopg.errors.UndefinedTable):  # a dry run changes nothing
            admin.execute(f"SELECT 1 FROM {OLD}.frontiers")

        code, out, err = cli(capsys, *migrate)
        assert code == 0 and "applied audit-base, audit-frontiers, audit-retention" in out, err
        code, out, err = cli(capsys, *migrate, "--json")  # again: nothing to do
        (again,) = json.loads(out)["schemas"]
        assert code == 0 and again["applied"] == [] and again["from_version"] == again["to_version"] == 3

        assert cli(capsys, "init", "--config", str(fresh_config), *admin_flags)[0] == 0
        migrated = catalog(admin, OLD)
        assert migrated == catalog(admin, FRESH)
        assert len(migrated["triggers"]) == 8 and [f[0] for f in migrated["functions"]] == [
            "entries_guard",
            "prune",
            "refuse_change",
        ]

    code, out, err = cli(capsys, "audit", "verify", "--config", str(old_config))
    assert code == 0 and "30 entries" in out, err


def test_migrate_errors_bad_config_2_unreachable_3_newer_store_1(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "migrate", "--config", str(tmp_path / "absent.yaml"))
    assert code == 2 and "Traceback" not in err
    config = write_config(tmp_path, fresh_pg_db, monkeypatch, port=1)
    code, _, err = cli(capsys, "migrate", "--config", config)
    assert code == 3 and "cannot connect" in err
    config = write_config(tmp_path, fresh_pg_db, monkeypatch)
    admin_flags = ("--admin-user", fresh_pg_db.admin.user, "--admin-password-env", ADMIN_PASSWORD_ENV)
    assert cli(capsys, "migrate", "--config", config, *admin_flags)[0] == 0
    with fresh_pg_db.connect("admin") as admin:
        admin.execute(f"INSERT INTO {SCHEMA}.schema_version (step, name) VALUES (4, 'from-the-future')")
    code, _, err = cli(capsys, "migrate", "--config", config, *admin_flags)
    assert code == 1 and "upgrade Worker-Sync" in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    from actors.cli import main

    with pytest.raises(SystemExit) as info:
        main(["migrate", "--help"])
    assert info.value.code == 0 and "--dry-run" in capsys.readouterr().out
