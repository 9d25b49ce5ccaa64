"""`worker-sync cleanup`: old entries lose their content, the log still verifies and still catches tampering."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import psycopg
import pytest
from nacl.signing import SigningKey

from actors.core.audit.entries import change_entry
from actors.core.audit.log import AuditLog
from actors.engines.postgresql.audit_store import AuditStore
from actors.harness import Endpoint
from tests.audit.conftest import SCHEMA, SEED, event
from tests.audit.test_cli import ADMIN_PASSWORD_ENV, cli, write_config
from tests.audit.test_tamper import tamper

OLD, RECENT = 40, 10


def _populate(db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> str:
    """40 entries from 2023 and 10 from now, signed every 10, in a store made by `init`."""
    config = write_config(tmp_path, db, monkeypatch)
    admin_flags = ("--admin-user", db.admin.user, "--admin-password-env", ADMIN_PASSWORD_ENV)
    assert cli(capsys, "init", "--config", config, *admin_flags)[0] == 0
    now_us = time.time_ns() // 1000
    events = [event(i) for i in range(OLD)]
    events += [msgspec.structs.replace(event(i), commit_time_us=now_us) for i in range(OLD, OLD + RECENT)]
    log = AuditLog(SigningKey(SEED), every_entries=10)
    entries, checkpoints = log.add(change_entry(e) for e in events)
    with db.connect("apply") as conn:
        AuditStore(conn, SCHEMA).append(entries, checkpoints, log.take_frontiers())
    return config


def test_cleanup_prunes_old_content_and_the_log_still_verifies(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _populate(fresh_pg_db, tmp_path, monkeypatch, capsys)
    cleanup = ("cleanup", "--config", config, "--retention-days", "30")  # as the chart's CronJob runs it
    code, out, err = cli(capsys, *cleanup, "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out) | {"cutoff": None} == {
        "dry_run": True,
        "retention_days": 30,
        "cutoff": None,
        "from_seq": 0,
        "to_seq": OLD,
        "pruned": OLD,
        "recorded_at_seq": None,
    }
    code, out, _ = cli(capsys, "audit", "logs", "--config", config, "--json")
    assert not any(json.loads(line)["pruned"] for line in out.splitlines())  # the dry run changed nothing

    code, out, err = cli(capsys, *cleanup)
    assert code == 0 and "pruned entries 0..39" in out and "recorded as entry 50" in out, err
    code, out, err = cli(capsys, *cleanup, "--json")  # again: nothing new, the record is not repeated
    assert code == 0 and json.loads(out)["pruned"] == 0, err

    code, out, err = cli(capsys, "audit", "verify", "--config", config)
    assert code == 0 and "51 entries" in out and "40 entries pruned by retention" in out, err
    code, out, _ = cli(capsys, "audit", "logs", "--config", config, "--json")
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["seq"] for d in docs if d["pruned"]] == list(range(OLD))
    assert all("key" not in d for d in docs[:OLD]) and docs[OLD]["key"] == '{"id":40}'
    assert docs[-1]["kind"] == "admin" and docs[-1]["detail"]["to_seq"] == OLD
    code, out, _ = cli(capsys, "audit", "logs", "--config", config)
    assert "[pruned by retention: content removed]" in out.splitlines()[0]
    code, _, err = cli(capsys, "audit", "prove", "--config", config, "3")
    assert code == 1 and "pruned" in err

    with fresh_pg_db.connect("apply") as conn:
        store = AuditStore(conn, SCHEMA)
        assert store.resume()[0].size == 51  # a restart works over pruned entries
        assert store.prunes() == [(0, OLD)]


def test_the_service_role_still_cannot_update_and_the_owner_can_only_blank_through_prune(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _populate(fresh_pg_db, tmp_path, monkeypatch, capsys)
    with fresh_pg_db.connect("apply") as service:
        service.execute("SET worker_sync.prune = 'on'")  # anyone may set the flag; it grants nothing
        for statement in (
            f"UPDATE {SCHEMA}.entries SET data = '', key = '' WHERE seq = 1",
            f"DELETE FROM {SCHEMA}.prunes",
            f"INSERT INTO {SCHEMA}.prunes VALUES (0, 50, 0, 0, 'me')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                service.execute(statement)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="at least 1"):
            service.execute(f"SELECT * FROM {SCHEMA}.prune(0)")
    with fresh_pg_db.connect("admin") as owner:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner.execute(f"UPDATE {SCHEMA}.entries SET data = '', key = '' WHERE seq = 1")  # no flag
        owner.execute("SET worker_sync.prune = 'on'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner.execute(f"UPDATE {SCHEMA}.entries SET data = '', key = '', leaf = '' WHERE seq = 1")


def test_tampering_is_still_caught_after_cleanup(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _populate(fresh_pg_db, tmp_path, monkeypatch, capsys)
    assert cli(capsys, "cleanup", "--config", config, "--retention-days", "30")[0] == 0
    verify = ("audit", "verify", "--config", config, "--json")
    admin = fresh_pg_db.connect("admin")
    store = AuditStore(fresh_pg_db.connect("apply"), SCHEMA)
    from tests.audit.conftest import Populated

    p = Populated(fresh_pg_db, admin, store._conn, store, [], [], tmp_path, tmp_path)
    cases = [
        (f"UPDATE {SCHEMA}.entries SET data = set_byte(data, 20, 0) WHERE seq = 45", 45, "changed"),
        (f"UPDATE {SCHEMA}.entries SET leaf = set_byte(leaf, 0, 0) WHERE seq = 12", 13, "does not chain"),
        (
            f"UPDATE {SCHEMA}.entries SET leaf = CASE seq WHEN 12 THEN '\\x00'::bytea ELSE leaf END, "
            "prev = CASE seq WHEN 13 THEN '\\x00'::bytea ELSE prev END WHERE seq IN (12, 13)",
            10,
            "Merkle root",
        ),  # a pruned leaf rewritten together with the next link: the signed root still tells
        (f"UPDATE {SCHEMA}.entries SET data = '', key = '' WHERE seq = 44", 44, "no recorded prune"),
        (f"DELETE FROM {SCHEMA}.entries WHERE seq = 20", 20, "missing"),
    ]
    for statement, first_bad, problem in cases:
        with admin.transaction(), admin.cursor() as cur:  # keep the store to undo each case
            cur.execute(f"CREATE TEMP TABLE saved AS SELECT * FROM {SCHEMA}.entries")
        tamper(p, (statement, ()))
        code, out, _ = cli(capsys, *verify)
        result = json.loads(out)
        assert code == 1 and result["first_bad_entry"] == first_bad and problem in result["problem"], (statement, out)
        tamper(
            p,
            (f"DELETE FROM {SCHEMA}.entries", ()),
            (f"INSERT INTO {SCHEMA}.entries SELECT * FROM saved", ()),
            ("DROP TABLE saved", ()),
        )
        assert cli(capsys, *verify)[0] == 0
    admin.close()
    store.close()
