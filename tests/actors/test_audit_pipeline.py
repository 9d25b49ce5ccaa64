"""The pipeline with the audit trail on: every change stored exactly once in the signed log, also when
the audit-chain actor is killed mid-workload, and the log verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import msgspec
import pytest
import ray
from nacl.signing import SigningKey

from actors.cli import main as cli_main
from actors.core.audit.entries import EntryKind, decode_entry, encode_entry, leaf_hash
from actors.core.errors import ForeignEntries
from actors.engines.postgresql.audit_store import AuditStore, create_schema
from actors.harness import Endpoint
from config import Config, parse_config
from config.exit_codes import Exit
from tests.actors.test_pipeline import Load, create_orders, wait_equal, wait_ready
from tests.actors.test_run_command import SCRIPT
from tests.pipeline_helpers import pg_to_mariadb_config_text, running
from tests.waiting import stays_true, wait_until

pytestmark = pytest.mark.usefixtures("ray_session")

SCHEMA = "worker_sync_audit"


def audit_config(pg: Endpoint, mariadb: Endpoint, tmp_path: Path, *, init: bool = True) -> Path:
    """The pipeline config with the audit store in the source database, written to a file for the CLI."""
    if init:
        with pg.connect("admin") as admin:  # as `worker-sync init` does; the audit node's user is the capture user
            create_schema(admin, SCHEMA, pg.capture.user)
    key = tmp_path / "signing.key"
    key.write_text(bytes(SigningKey.generate()).hex())
    key.chmod(0o600)
    audit = (
        f"  enabled: true\n  node: postgresql\n  schema: {SCHEMA}\n  signing_key_file: {key}\n"
        f"  checkpoint_every_ms: 200\n  checkpoint_export_dir: {tmp_path / 'checkpoints'}"
    )
    text = pg_to_mariadb_config_text(
        pg, mariadb, tmp_path, [("public.orders", f"{mariadb.database}.orders")], audit=audit
    )
    path = tmp_path / "worker-sync.yaml"
    path.write_text(text)
    return path


def audited_orders(pg: Endpoint, mariadb: Endpoint, tmp_path: Path) -> tuple[Path, Config, str]:
    """The orders tables on both servers and a PostgreSQL -> MariaDB config with the audit trail on:
    (config file, config, target table)."""
    create_orders(pg, mariadb)
    path = audit_config(pg, mariadb, tmp_path)
    return path, parse_config(path.read_text(), source=str(path)), f"{mariadb.database}.orders"


def stored_changes(pg: Endpoint) -> list[tuple[str, str]]:
    """(node, position) of every stored change entry, in log order."""
    with pg.connect("admin") as conn:
        entries = list(map(decode_entry, _datas(AuditStore(conn, SCHEMA))))
    admin = [e for e in entries if e.kind == EntryKind.ADMIN]
    # The supervisor records the configuration it runs with, once per distinct configuration.
    assert [e.op for e in admin] == ["config-loaded"], [e.op for e in admin]
    return [(e.node, e.order_hex) for e in entries if e.kind == EntryKind.CHANGE]


def _datas(store: AuditStore) -> list[bytes]:
    return [bytes(entry.data) for entry in store.read()]


def wait_stored(pg: Endpoint, count: int, timeout_s: float) -> list[tuple[str, str]]:
    wait_until(lambda: len(stored_changes(pg)) >= count, timeout_s=timeout_s, what=f"{count:,} stored changes")
    stays_true(  # anything extra (a duplicate) would arrive now
        lambda: len(stored_changes(pg)) <= count,
        for_s=0.5,
        what=lambda: f"no more than the {count:,} changes stored (now {len(stored_changes(pg)):,})",
    )
    return stored_changes(pg)


def assert_exactly_once(stored: list[tuple[str, str]], changes: int) -> None:
    assert len(set(stored)) == len(stored), "a change was stored twice"
    assert len(stored) == changes
    assert [order for _, order in stored] == sorted(order for _, order in stored)


def verify(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["audit", "verify", "--config", str(config)])  # against the export directory too
    out, err = capsys.readouterr()
    assert code == Exit.OK, out + err
    assert "exported checkpoints" in out and " 0 exported leaf" not in out, out


def test_every_change_is_stored_once_in_a_log_that_verifies_also_after_kill_9_of_the_audit_actor(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, config, target = audited_orders(fresh_pg_db, fresh_mariadb_db, tmp_path)
    with running(config) as supervisor:
        wait_ready(supervisor)
        started = time.monotonic()
        Load(fresh_pg_db, 4_000).start().wait(60)
        wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, target, timeout_s=60, supervisor=supervisor)
        stored = wait_stored(fresh_pg_db, 4_000, timeout_s=30)
        with capsys.disabled():
            print(f"\naudit: {len(stored)} entries stored {time.monotonic() - started:.1f}s after the load began")
        assert_exactly_once(stored, 4_000)

        load = Load(fresh_pg_db, 6_000, seed=5, first_id=1_000_000).start()
        wait_until(
            lambda: len(stored_changes(fresh_pg_db)) >= 5_500,
            timeout_s=30,
            what="the audit log to grow to 5,500 changes (it stopped growing)",
        )
        actor = supervisor.audit.actor
        pid = ray.get(actor.pid.remote())
        os.kill(pid, signal.SIGKILL)
        load.wait(60)
        wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, target, timeout_s=60, supervisor=supervisor)
        assert_exactly_once(wait_stored(fresh_pg_db, 10_000, timeout_s=30), 10_000)
        assert ray.get(supervisor.audit.actor.pid.remote()) != pid, "the audit actor was not restarted"
        with capsys.disabled():
            print(f"audit: 10,000 entries {time.monotonic() - started:.1f}s after the first load began (one kill -9)")
    verify(path, capsys)  # after the run's final checkpoint (drain closes the audit actor)
    assert supervisor.audit_write_tps() >= 0


def test_run_refuses_to_start_without_the_audit_schema_or_the_signing_key(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    path = audit_config(fresh_pg_db, fresh_mariadb_db, tmp_path, init=False)
    result = subprocess.run([SCRIPT, "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "worker-sync init --config FILE" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "signing.key").unlink()
    result = subprocess.run([SCRIPT, "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "signing key" in result.stderr and "Traceback" not in result.stderr


def forge_tail(pg: Endpoint) -> int:
    """A superuser appends a well-chained copy of the last entry (as a delete) after it; its seq."""
    with pg.connect("admin") as admin, admin.transaction():
        row = admin.execute(f"SELECT seq, data, leaf FROM {SCHEMA}.entries ORDER BY seq DESC LIMIT 1").fetchone()
        assert row is not None
        seq, data, leaf = int(row[0]), bytes(row[1]), bytes(row[2])
        forged = msgspec.structs.replace(decode_entry(data), seq=seq + 1, prev=leaf, op="delete")
        forged_data = encode_entry(forged)
        admin.execute(f"ALTER TABLE {SCHEMA}.entries DISABLE TRIGGER ALL")
        admin.execute(
            f"INSERT INTO {SCHEMA}.entries SELECT %s, %s, %s, %s, kind, namespace, key, commit_time_us "
            f"FROM {SCHEMA}.entries WHERE seq = %s",
            (seq + 1, forged_data, leaf_hash(forged_data), leaf, seq),
        )
        admin.execute(f"ALTER TABLE {SCHEMA}.entries ENABLE TRIGGER ALL")
    return seq + 1


def test_an_entry_forged_at_the_tail_stops_the_pipeline_and_no_restart_signs_it(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, config, target = audited_orders(fresh_pg_db, fresh_mariadb_db, tmp_path)
    with pytest.raises(ForeignEntries, match="first foreign entry") as stopped, running(config) as supervisor:
        wait_ready(supervisor)
        Load(fresh_pg_db, 500).start().wait(60)
        wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, target, timeout_s=60, supervisor=supervisor)
        wait_stored(fresh_pg_db, 500, timeout_s=30)
        forged = forge_tail(fresh_pg_db)
        Load(fresh_pg_db, 200, first_id=1_000_000).start().wait(60)  # the next batch meets the forged entry
        wait_until(lambda: supervisor.failure is not None, timeout_s=60, what="the pipeline to stop on the forgery")
    assert stopped.value.first == forged
    assert supervisor.retention is not None and supervisor.retention.stopped  # no thread left querying the source
    with fresh_pg_db.connect("admin") as admin:
        (signed,) = admin.execute(f"SELECT max(size) FROM {SCHEMA}.checkpoints").fetchone() or (0,)
    assert signed == forged, "a checkpoint covers the forged entry"

    # A restart refuses to start on it, with one line naming it; verify names it too.
    result = subprocess.run([SCRIPT, "run", "--config", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == Exit.FINDINGS, result.stderr
    assert f"first foreign entry {forged}" in result.stderr and "Traceback" not in result.stderr
    code = cli_main(["audit", "verify", "--config", str(path)])
    out, err = capsys.readouterr()
    assert code == Exit.FINDINGS and f"first bad entry {forged}:" in err and "foreign" in err, out + err
