"""Rows a target refuses for good are set aside as dead letters; everything else flows on, on every link.

Two links share the pipeline (and its applier shards): PostgreSQL -> MariaDB carries a 20 MB text, over
MariaDB's max_allowed_packet; MariaDB -> PostgreSQL carries a LONGTEXT with a NUL byte, which PostgreSQL
text cannot hold. Fifty later rows of each link arrive, later changes of a refused row wait behind it
(per-key order), positions commit, and an operator's retry (after raising the limit) or discard settles them.
"""

from __future__ import annotations

import json

import msgspec
import pytest

from actors.cli import main as cli
from actors.harness import Endpoint
from actors.harness.bidirectional import prepare_bidirectional
from actors.harness.compare import table_rows
from actors.harness.secret_files import write_secret_file
from config import parse_config
from tests.actors.test_bidirectional import counter
from tests.pipeline_helpers import running, serving
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")

BIG = 20 << 20  # 20 MiB: over MariaDB's default max_allowed_packet (16 MiB)


def node_line(name: str, db: Endpoint, tmp_path, engine: str) -> str:
    password = write_secret_file(tmp_path, f"{name}-password", db.capture.password)
    extra = f"slot_name: ws_{db.database}" if engine == "postgresql" else "server_id: 4501"
    return (
        f"  - {{name: {name}, engine: {engine}, host: {db.host}, port: {db.port}, database: {db.database}, "
        f"username: {db.capture.user}, password_file: {password}, tls: {{mode: disable}}, {extra}}}"
    )


def two_links(pg: Endpoint, maria: Endpoint, tmp_path):
    with pg.connect("admin") as conn:
        conn.execute("CREATE TABLE public.docs (id bigint PRIMARY KEY, body text)")
        conn.execute("CREATE TABLE public.notes (id bigint PRIMARY KEY, body text)")
    with maria.connect("admin") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE docs (id bigint PRIMARY KEY, body longtext)")
        cur.execute("CREATE TABLE notes (id bigint PRIMARY KEY, body longtext)")
    for db in (pg, maria):  # one account per node that both captures and writes
        prepare_bidirectional(db, account="capture")
    text = f"""
nodes:
{node_line("pg", pg, tmp_path, "postgresql")}
{node_line("maria", maria, tmp_path, "mysql")}
links:
  - {{name: docs, source: pg, target: maria, tables: [{{source: public.docs, target: {maria.database}.docs}}]}}
  - {{name: notes, source: maria, target: pg, tables: [{{source: {maria.database}.notes, target: public.notes}}]}}
audit:
  enabled: false
supervisor:
  applier_shards: 2
  state_dir: {tmp_path / "state"}
  restart_backoff_initial_s: 0.5
  restart_backoff_max_s: 2
"""
    return parse_config(text, source="test config")


def bodies(db: Endpoint, namespace: str) -> dict[int, str]:
    return {key[0]: row["body"] for key, row in table_rows(db, namespace).items()}


def test_refused_rows_are_set_aside_and_every_other_row_of_both_links_arrives(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path, capsys
):
    pg, maria = fresh_pg_db, fresh_mariadb_db
    config = two_links(pg, maria, tmp_path)
    docs_target, notes_target = f"{maria.database}.docs", "public.notes"
    before = counter("worker_sync_dead_letters_total")
    with running(config) as supervisor:
        wait_until(lambda: supervisor.ready(), timeout_s=120, what=lambda: f"ready: {supervisor.status()}")
        with pg.connect("admin") as conn:
            conn.execute("INSERT INTO public.docs VALUES (1, 'first')")
            conn.execute("INSERT INTO public.docs VALUES (2, %s)", ("x" * BIG,))
            for i in range(3, 53):
                conn.execute("INSERT INTO public.docs VALUES (%s, %s)", (i, f"doc {i}"))
        with maria.connect("admin") as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO notes VALUES (1, 'first')")
            cur.execute("INSERT INTO notes VALUES (2, %s)", ("before\x00after",))
            for i in range(3, 53):
                cur.execute("INSERT INTO notes VALUES (%s, %s)", (i, f"note {i}"))

        expected = {i: f"doc {i}" for i in range(3, 53)} | {1: "first"}
        wait_until(
            lambda: bodies(maria, docs_target) == expected,
            timeout_s=120,
            what=lambda: f"every other doc on MariaDB: {sorted(bodies(maria, docs_target))}",
        )
        wait_until(
            lambda: bodies(pg, notes_target) == {i: f"note {i}" for i in range(3, 53)} | {1: "first"},
            timeout_s=120,
            what=lambda: f"every other note on PostgreSQL: {sorted(bodies(pg, notes_target))}",
        )
        wait_until(lambda: len(supervisor.dead_letter_list()) == 2, timeout_s=30, what="two dead letters")
        with pg.connect("admin") as conn:  # a later change of the refused row waits behind it
            conn.execute("UPDATE public.docs SET body = 'small now' WHERE id = 2")
        wait_until(
            lambda: len(supervisor.dead_letter_list()) == 3,
            timeout_s=60,
            what=lambda: f"the update held behind: {supervisor.dead_letter_list()}",
        )
        assert 2 not in bodies(maria, docs_target)
        letters = supervisor.dead_letter_list()
        refused = {item["namespace"]: item for item in letters if item["held_behind"] is None}
        assert set(refused) == {docs_target, notes_target}, letters
        assert "max_allowed_packet" in refused[docs_target]["reason"], refused[docs_target]
        assert "20.0 MiB" in refused[docs_target]["reason"]
        assert "NUL" in refused[notes_target]["reason"] or "0x00" in refused[notes_target]["reason"]
        held = [item for item in letters if item["held_behind"] == refused[docs_target]["id"]]
        assert [item["row"]["body"] for item in held] == ["small now"], letters
        assert counter("worker_sync_dead_letters_total") - before == 3
        # Positions commit past the refused rows: recorded, not lost.
        wait_until(
            lambda: all(s.batches_in_flight == 0 and s.committed for s in supervisor.status().streams),
            timeout_s=60,
            what=lambda: f"positions to commit: {supervisor.status()}",
        )

        # The operator lists them, raises the limit and retries with the command: the big row, then the update
        # held behind it, in order.
        token = tmp_path / "token"
        token.write_text("test-token")
        with serving(supervisor, "test-token") as url:
            capsys.readouterr()
            assert cli(["dead-letters", "list", "--url", url, "--json", "--token-file", str(token)]) == 0
            assert {item["id"] for item in json.loads(capsys.readouterr().out)} == {item["id"] for item in letters}
            with maria.connect("admin") as conn, conn.cursor() as cur:
                cur.execute("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
            retry = ["dead-letters", "retry", refused[docs_target]["id"], "--url", url, "--token-file", str(token)]
            assert cli([*retry, "--wait", "120"]) == 0, capsys.readouterr()
            assert supervisor.dead_letter_get(refused[docs_target]["id"])["state"] == "resolved"
            assert bodies(maria, docs_target)[2] == "small now"
            # The NUL note is discarded; its row unblocks and a later change of it flows again.
            discard = ["dead-letters", "discard", refused[notes_target]["id"], "--url", url, "--token-file", str(token)]
            assert cli(discard) == 0
        with maria.connect("admin") as conn, conn.cursor() as cur:
            cur.execute("UPDATE notes SET body = 'clean' WHERE id = 2")
        wait_until(
            lambda: bodies(pg, notes_target).get(2) == "clean",
            timeout_s=60,
            what=lambda: f"the unblocked note: {supervisor.dead_letter_list()}",
        )
        states = {item["id"]: item["state"] for item in supervisor.dead_letter_list()}
        assert sorted(states.values()) == ["discarded", "resolved", "resolved"], states


def test_a_link_with_on_error_stop_stops_its_stream_and_keeps_the_refused_row(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path
):
    """`on_error: stop`: the refused change is still recorded (nothing lost), and its stream stops with the
    error shown instead of flowing on; the other link goes on."""
    pg, maria = fresh_pg_db, fresh_mariadb_db
    config = two_links(pg, maria, tmp_path)
    stopped = msgspec.structs.replace(
        config,
        links=[
            msgspec.structs.replace(link, on_error="stop") if link.name == "notes" else link for link in config.links
        ],
    )
    with running(stopped) as supervisor:
        wait_until(lambda: supervisor.ready(), timeout_s=120, what=lambda: f"ready: {supervisor.status()}")
        with maria.connect("admin") as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO notes VALUES (1, 'fine'), (2, %s)", ("nul\x00byte",))
        with pg.connect("admin") as conn:
            conn.execute("INSERT INTO public.docs VALUES (1, 'still flows')")
        wait_until(
            lambda: any(s.stream == "maria" and s.error for s in supervisor.status().streams),
            timeout_s=60,
            what=lambda: f"the notes stream to stop: {supervisor.status()}",
        )
        stream = next(s for s in supervisor.status().streams if s.stream == "maria")
        assert "on link notes" in stream.error and "dead letter" in stream.error, stream.error
        assert not supervisor.ready()
        (letter,) = supervisor.dead_letter_list()
        assert letter["link"] == "notes" and letter["key"] == {"id": 2}
        wait_until(
            lambda: bodies(maria, f"{maria.database}.docs") == {1: "still flows"},
            timeout_s=60,
            what="the other link to flow on",
        )


def test_dead_letters_and_their_resolution_are_audit_entries(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path
):
    """Each dead letter, and its discard, is a signed admin entry of the audit log, naming the row and the
    reason and the change's digest (not the row itself)."""
    from nacl.signing import SigningKey

    from actors.core.audit.entries import EntryKind, admin_detail, decode_entry
    from actors.engines.postgresql.audit_store import AuditStore, create_schema

    pg, maria = fresh_pg_db, fresh_mariadb_db
    config = two_links(pg, maria, tmp_path)
    with pg.connect("admin") as admin:  # as `worker-sync init` does
        create_schema(admin, "worker_sync_audit", pg.capture.user)
    key = tmp_path / "signing.key"
    key.write_text(bytes(SigningKey.generate()).hex())
    key.chmod(0o600)
    audit = msgspec.structs.replace(
        config.audit, enabled=True, node="pg", schema="worker_sync_audit", signing_key_file=str(key)
    )
    with running(msgspec.structs.replace(config, audit=audit)) as supervisor:
        wait_until(lambda: supervisor.ready(), timeout_s=120, what=lambda: f"ready: {supervisor.status()}")
        with maria.connect("admin") as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO notes VALUES (7, %s)", ("personal-data\x00",))
        wait_until(lambda: len(supervisor.dead_letter_list()) == 1, timeout_s=60, what="the dead letter")
        (letter,) = supervisor.dead_letter_list()
        supervisor.discard_dead_letter(letter["id"])

        def admin_entries() -> dict[str, dict]:
            with pg.connect("admin") as conn:
                entries = [decode_entry(bytes(e.data)) for e in AuditStore(conn, "worker_sync_audit").read()]
            return {e.namespace: admin_detail(e) for e in entries if e.kind == EntryKind.ADMIN}

        wait_until(
            lambda: {"admin.dead-letter", "admin.dead-letter-resolved"} <= set(admin_entries()),
            timeout_s=60,
            what=lambda: f"both admin entries: {sorted(admin_entries())}",
        )
    entries = admin_entries()
    set_aside, resolved = entries["admin.dead-letter"], entries["admin.dead-letter-resolved"]
    assert set_aside["id"] == resolved["id"] == letter["id"]
    assert set_aside["link"] == "notes" and set_aside["key"] == {"id": "7"} and "NUL" in str(set_aside["reason"])
    assert resolved["what"] == "discarded" and len(str(set_aside["change_sha256"])) == 64
    assert "personal-data" not in str(set_aside) + str(resolved)  # the row itself stays out of the log
