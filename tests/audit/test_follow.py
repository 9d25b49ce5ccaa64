"""`audit logs --follow` in a real subprocess: it prints entries appended after it started, and stops cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from actors.engines.postgresql.audit_store import AuditStore, create_schema
from actors.harness import Endpoint
from tests.audit.conftest import SCHEMA, build_log
from tests.audit.test_cli import write_config
from tests.waiting import wait_until

FOLLOW = "import sys; from actors.cli import main; sys.exit(main())"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_follow_prints_entries_appended_later_and_stops_on_a_signal(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_signal: signal.Signals
) -> None:
    config = write_config(tmp_path, fresh_pg_db, monkeypatch)
    with fresh_pg_db.connect("admin") as admin:
        create_schema(admin, SCHEMA, fresh_pg_db.apply.user)
    entries, checkpoints = build_log(30)
    service = fresh_pg_db.connect("apply")
    store = AuditStore(service, SCHEMA)
    store.append(entries[:20], [cp for cp in checkpoints if cp.size <= 20])

    argv = [sys.executable, "-c", FOLLOW, "audit", "logs", "--config", config, "--follow", "--json"]
    proc = subprocess.Popen([*argv, "--interval", "0.1", "--limit", "7"], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: len(lines) >= 20, timeout_s=30, what="the 20 entries stored before --follow started")
        store.append(entries[20:], [cp for cp in checkpoints if cp.size > 20])
        wait_until(lambda: len(lines) >= 30, timeout_s=30, what="the 10 entries appended while following")
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        service.close()
    reader.join(timeout=5)
    assert [json.loads(line)["seq"] for line in lines] == list(range(30))  # in order, none twice, none lost
