"""Admin entries (config loaded, manual sync, ...): in order with the changes, stored once per request id."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest

from actors.audit_chain import AuditChain, AuditWriter
from actors.core.audit.entries import AdminKind, EntryKind, admin_detail, config_detail, decode_entry
from actors.core.audit.verify import verify_log
from actors.core.batches import Batch
from actors.core.encoding import encode_batch
from actors.engines.postgresql.audit_store import AuditStore, create_schema
from actors.harness import Endpoint
from config import load_config, nodes_by_name
from tests.audit.conftest import SCHEMA, event
from tests.audit.test_cli import PASSWORD_ENV, write_config


def _batch(lo: int, hi: int) -> list[bytes]:
    events = [msgspec.structs.replace(event(i), node="pg1") for i in range(lo, hi)]
    return [encode_batch(Batch("pg1", lo, events, None, False, 0))]


def _setup(db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with db.connect("admin") as admin:
        create_schema(admin, SCHEMA, db.apply.user)
    path = write_config(tmp_path, db, monkeypatch)
    config = load_config(path)
    return path, config, nodes_by_name(config)["postgresql"]


def _kinds(db: Endpoint) -> list[tuple[str, str]]:
    with db.connect("admin") as conn:
        store = AuditStore(conn, SCHEMA)
        rows = list(store.read())
        assert verify_log(rows, store.checkpoints(), _public()).ok
    return [(decode_entry(r.data).kind, decode_entry(r.data).op) for r in rows]


def _public():
    from nacl.signing import SigningKey

    from tests.audit.conftest import SEED

    return SigningKey(SEED).verify_key


def test_admin_entries_are_ordered_with_changes_and_stored_once(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, config, node = _setup(fresh_pg_db, tmp_path, monkeypatch)
    writer = AuditWriter(config.audit, node, ["pg1"])
    detail = config_detail(path, Path(path).read_bytes())
    assert detail["sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert writer.record_admin("config-loaded", detail, request_id="run-1", actor="supervisor").entries == 1
    writer.append(_batch(0, 3))
    again = writer.record_admin("config-loaded", detail, request_id="run-1", actor="supervisor")
    assert (again.entries, again.skipped, again.size) == (0, 1, 4)
    writer.record_admin("manual-sync", {"namespace": "public.orders"}, request_id="sync-7", actor="alice")
    with pytest.raises(ValueError):
        writer.record_admin("made-up", {}, request_id="x", actor="supervisor")
    writer.close()
    restarted = AuditWriter(config.audit, node, ["pg1"])  # idempotent across a restart too
    assert restarted.record_admin("manual-sync", {}, request_id="sync-7", actor="alice").skipped == 1
    restarted.close()
    admin, change = str(EntryKind.ADMIN), str(EntryKind.CHANGE)
    expected = [(admin, "config-loaded"), (change, "update"), (change, "insert"), (change, "insert")]
    assert _kinds(fresh_pg_db) == [*expected, (admin, "manual-sync")]


def test_record_admin_through_the_ray_actor(
    ray_session: None, fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    path, config, node = _setup(fresh_pg_db, tmp_path, monkeypatch)
    env = {PASSWORD_ENV: fresh_pg_db.apply.password}  # Ray workers do not inherit the test's environment
    actor = AuditChain.options(runtime_env={"env_vars": env}).remote(config.audit, node, ["pg1"])
    try:
        detail = config_detail(path, Path(path).read_bytes())
        first = ray.get(actor.record_admin.remote(str(AdminKind.CONFIG_LOADED), detail, "run-1"))
        second = ray.get(actor.record_admin.remote(str(AdminKind.CONFIG_LOADED), detail, "run-1"))
        assert (first.entries, second.entries, second.skipped) == (1, 0, 1)
        ray.get(actor.close.remote())
    finally:
        ray.kill(actor)
    with fresh_pg_db.connect("admin") as conn:
        (row,) = AuditStore(conn, SCHEMA).read()
    entry = decode_entry(row.data)
    assert (entry.node, entry.namespace, admin_detail(entry)) == ("supervisor", "admin.config-loaded", detail)
