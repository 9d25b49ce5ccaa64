"""The audit actor's writer without Ray: a call sent again, or a restart, never stores a change twice."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from actors.audit_chain import AuditWriter
from actors.core.audit.entries import decode_entry
from actors.core.batches import Batch
from actors.core.encoding import encode_batch
from actors.engines.postgresql.audit_store import AuditStore, create_schema
from actors.harness import Endpoint
from config import load_config, nodes_by_name
from tests.audit.conftest import SCHEMA, event
from tests.audit.test_cli import write_config


def test_a_call_sent_again_or_after_a_restart_stores_each_change_once(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_pg_db.connect("admin") as admin:
        create_schema(admin, SCHEMA, fresh_pg_db.apply.user)
    config = load_config(write_config(tmp_path, fresh_pg_db, monkeypatch))
    node = nodes_by_name(config)["postgresql"]
    events = [msgspec.structs.replace(event(i), node="pg1") for i in range(100)]
    first = [encode_batch(Batch("pg1", 1, events[:60], None, False, 0))]
    overlapping = [encode_batch(Batch("pg1", 2, events[40:], None, False, 0))]

    writer = AuditWriter(config.audit, node, ["pg1"])
    assert writer.append(first).entries == 60
    again = writer.append(first)  # its reply was lost: the supervisor sends the same call again
    assert (again.entries, again.skipped) == (0, 60)
    writer.close()  # (one writer at a time, as the supervisor ensures)
    restarted = AuditWriter(config.audit, node, ["pg1"])  # a new process recovers each stream's position
    appended = restarted.append(overlapping)
    assert (appended.entries, appended.skipped, appended.size) == (40, 20, 100)
    restarted.close()

    with fresh_pg_db.connect("admin") as conn:
        orders = [decode_entry(bytes(e.data)).order_hex for e in AuditStore(conn, SCHEMA).read()]
    assert orders == [i.to_bytes(8, "big").hex() for i in range(100)]
