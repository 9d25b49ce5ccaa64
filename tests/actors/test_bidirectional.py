"""Bidirectional groups end to end: concurrent writers on every node, then every node holds the same rows,
and no change came back as a new one (echoes suppressed), on two and on three nodes."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import ray
from nacl.signing import SigningKey

from actors.core.audit.entries import EntryKind, admin_detail, decode_entry
from actors.engines.postgresql.audit_store import AuditStore, create_schema
from actors.harness import Endpoint
from actors.harness.bidirectional import prepare_bidirectional
from actors.harness.compare import table_rows
from actors.harness.secret_files import write_secret_file
from actors.metrics import REGISTRY
from config import parse_config
from tests.pipeline_helpers import running, serving
from tests.waiting import wait_until, wait_until_stable

pytestmark = pytest.mark.usefixtures("ray_session")

AUDIT_SCHEMA = "worker_sync_audit"

DDL = {
    "postgresql": "CREATE TABLE public.kv (id bigint PRIMARY KEY, owner varchar(16), n int NOT NULL, note varchar(64))",
    "mariadb": "CREATE TABLE kv (id bigint PRIMARY KEY, owner varchar(16), n int NOT NULL, note varchar(64))",
}


def namespace(db: Endpoint) -> str:
    return "public.kv" if db.engine == "postgresql" else f"{db.database}.kv"


def node_yaml(name: str, db: Endpoint, tmp_path: Path, priority: int, decoder: str = "wal2json") -> str:
    """A node whose one account both captures and writes (the harness's capture account, granted writes)."""
    password = write_secret_file(tmp_path, f"{name}-password", db.capture.password)
    engine = "postgresql" if db.engine == "postgresql" else "mysql"
    pg_extra = f"slot_name: ws_{db.database}, decoder: {decoder}"
    extra = pg_extra if engine == "postgresql" else f"server_id: {4300 + priority}"
    return (
        f"  - {{name: {name}, engine: {engine}, host: {db.host}, port: {db.port}, database: {db.database}, "
        f"username: {db.capture.user}, password_file: {password}, tls: {{mode: disable}}, priority: {priority}, "
        f"{extra}}}"
    )


def group_config(
    nodes: dict[str, Endpoint],
    links: list[tuple[str, str]],
    tmp_path: Path,
    policy: str,
    *,
    audit_on: str = "",
    pgoutput: frozenset[str] = frozenset(),
):
    """The config (also written to tmp_path/config.yaml); ``audit_on``: the node holding the audit store;
    ``pgoutput``: PostgreSQL nodes captured with pgoutput (published by their admin) instead of wal2json."""
    for name, db in nodes.items():
        with db.connect("admin") as conn:
            conn.cursor().execute(DDL[db.engine])
            if name in pgoutput:
                conn.execute(f"CREATE PUBLICATION ws_{db.database} FOR TABLE public.kv")
        prepare_bidirectional(db, account="capture")
    node_lines = "\n".join(
        node_yaml(name, db, tmp_path, i, "pgoutput" if name in pgoutput else "wal2json")
        for i, (name, db) in enumerate(nodes.items())
    )
    link_lines = "\n".join(
        f"  - {{name: {a}-{b}, source: {a}, target: {b}, bidirectional: true, conflict_policy: {policy}, "
        f"tables: [{{source: {namespace(nodes[a])}, target: {namespace(nodes[b])}}}]}}"
        for a, b in links
    )
    token = write_secret_file(tmp_path, "http-token", "test-token")
    audit = "  enabled: false"
    if audit_on:
        with nodes[audit_on].connect("admin") as admin:  # as `worker-sync init` does
            create_schema(admin, AUDIT_SCHEMA, nodes[audit_on].capture.user)
        key = tmp_path / "signing.key"
        key.write_text(bytes(SigningKey.generate()).hex())
        key.chmod(0o600)
        audit = (
            f"  enabled: true\n  node: {audit_on}\n  schema: {AUDIT_SCHEMA}\n  signing_key_file: {key}\n"
            f"  checkpoint_every_ms: 200\n  checkpoint_export_dir: {tmp_path / 'checkpoints'}"
        )
    text = f"""
nodes:
{node_lines}
links:
{link_lines}
audit:
{audit}
supervisor:
  applier_shards: 2
  state_dir: {tmp_path / "state"}
  restart_backoff_initial_s: 0.5
  restart_backoff_max_s: 2
http:
  token_file: {token}
"""
    (tmp_path / "config.yaml").write_text(text)
    return parse_config(text, source="test config")


class Writer(threading.Thread):
    """Random inserts, updates and deletes on overlapping keys, one row per transaction; counts the rows it
    changed (what capture must report as this node's own changes, once each)."""

    def __init__(self, name: str, db: Endpoint, ops: int, keys: int, seed: int) -> None:
        super().__init__(name=f"writer-{name}", daemon=True)
        self.node, self.db, self.ops, self.keys = name, db, ops, keys
        self.random = random.Random(seed)
        self.changed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc

    def _run(self) -> None:
        ns = namespace(self.db)
        pg = self.db.engine == "postgresql"
        insert = (
            f"INSERT INTO {ns} VALUES (%s, %s, 0, %s) ON CONFLICT (id) DO NOTHING"
            if pg
            else f"INSERT IGNORE INTO {ns} VALUES (%s, %s, 0, %s)"
        )
        with self.db.connect("admin") as conn:
            cur = conn.cursor()
            for i in range(self.ops):
                # One key in five is hot: both nodes write it within milliseconds of each other.
                key = self.random.randint(1, 5) if i % 5 == 0 else self.random.randint(1, self.keys)
                roll = self.random.random()
                if roll < 0.4:
                    cur.execute(insert, (key, self.node, f"{self.node}-{i}"))
                elif roll < 0.85:
                    cur.execute(
                        f"UPDATE {ns} SET n = n + 1, owner = %s, note = %s WHERE id = %s", (self.node, f"u{i}", key)
                    )
                else:
                    cur.execute(f"DELETE FROM {ns} WHERE id = %s", (key,))
                self.changed += max(cur.rowcount, 0)
                time.sleep(0.001)  # spread the load over a few seconds (a kill lands mid-stream)


def counter(name: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == name:
                total += sample.value
    return total


def converge(nodes: dict[str, Endpoint], writers: list[Writer], timeout_s: float, supervisor) -> dict[str, float]:
    """Wait until every node holds the same rows and every change each workload made has been captured;
    returns the counts the run produced (deltas of the pipeline's counters are taken by the caller)."""

    def read() -> dict:
        return {name: table_rows(db, namespace(db)) for name, db in nodes.items()}

    def same_and_idle(tables: dict) -> bool:
        first = next(iter(tables.values()))
        return all(rows == first for rows in tables.values()) and bool(supervisor.status()) and _idle(supervisor)

    def differences(tables: dict) -> str:
        sizes = {name: len(rows) for name, rows in tables.items()}
        differ = {}
        names = list(tables)
        for key in set().union(*[rows.keys() for rows in tables.values()]):
            values = [tables[n].get(key) for n in names]
            if any(v != values[0] for v in values):
                differ[key] = values
                if len(differ) >= 3:
                    break
        return f"sizes {sizes}, e.g. {differ}; pipeline: {supervisor.status()}"

    return wait_until_stable(
        read,
        ok=same_and_idle,
        for_s=1.0,  # and still so a moment later (nothing left in flight)
        timeout_s=timeout_s,
        what="every node to hold the same rows with the pipeline idle",
        describe=differences,
    )


def streaming(supervisor, timeout_s: float) -> None:
    """Wait until every stream finished its (empty) initial snapshot and streams changes: a change made
    before would reach the other nodes as a snapshot row, not as a change (and not be counted as one)."""

    def started() -> bool:
        status = supervisor.status()
        return status is not None and bool(status.streams) and all(s.committed for s in status.streams)

    wait_until(started, timeout_s=timeout_s, what=lambda: f"the streams to start: {supervisor.status()}")


def _idle(supervisor) -> bool:
    status = supervisor.status()
    return (
        status is not None
        and all(s.batches_in_flight == 0 for s in status.streams)
        and all(not shard.busy and not shard.queued_parts for shard in status.shards)
    )


def run_group(
    nodes,
    links,
    tmp_path,
    *,
    ops: int,
    keys: int,
    policy: str = "last_writer_wins",
    kill_shard=False,
    pgoutput: frozenset[str] = frozenset(),
):
    """Concurrent writers on every node; with ``kill_shard``, applier shard 0 is killed (SIGKILL) meanwhile."""
    config = group_config(nodes, links, tmp_path, policy, pgoutput=pgoutput)
    before = {
        name: counter(name)
        for name in (
            "worker_sync_events_captured_total",
            "worker_sync_echoes_suppressed_total",
            "worker_sync_conflicts_total",
            "worker_sync_offers_total",
        )
    }
    with running(config) as supervisor:
        streaming(supervisor, timeout_s=120)
        writers = [Writer(name, db, ops, keys, seed=i) for i, (name, db) in enumerate(nodes.items())]
        started = time.monotonic()
        for writer in writers:
            writer.start()
        if kill_shard:
            wait_until(  # the load flows through shard 0 (the writers go on for seconds)
                lambda: supervisor.shards[0].applied_calls > 0, timeout_s=30, what="applier shard 0 to apply a slice"
            )
            shard = supervisor.shards[0].actor
            os.kill(ray.get(shard.pid.remote()), signal.SIGKILL)  # mid-slice: the slice is sent again
        for writer in writers:
            writer.join(timeout=300)
            assert writer.error is None, f"{writer.name}: {writer.error}"
        wrote_s = time.monotonic() - started
        settle_started = time.monotonic()
        tables = converge(nodes, writers, 90, supervisor)
        settled_s = time.monotonic() - settle_started
    counts = {name: counter(name) - value for name, value in before.items()}
    changed = sum(w.changed for w in writers)
    report = {
        "nodes": len(nodes),
        "changes_made": changed,
        "write_s": round(wrote_s, 1),
        "converged_s_after_writes": round(settled_s, 1),
        "rows": len(next(iter(tables.values()))),
        "captured": counts["worker_sync_events_captured_total"],
        "echoes_suppressed": counts["worker_sync_echoes_suppressed_total"],
        "offers": counts["worker_sync_offers_total"],
        "conflicts": counts["worker_sync_conflicts_total"],
    }
    report["changed_per_node"] = {w.node: w.changed for w in writers}
    report["captured_per_stream"] = {
        s.labels["stream"]: s.value
        for m in REGISTRY.collect()
        for s in m.samples
        if s.name == "worker_sync_events_captured_total"
    }
    print("bidirectional run:", json.dumps(report))
    # Every change a user made was captured once as a change; every other captured event was our own write
    # coming back, suppressed: nothing bounced back as a new change (that would show as more captured).
    assert report["captured"] - report["echoes_suppressed"] == changed, report
    assert 0 < report["echoes_suppressed"] <= changed * (len(nodes) - 1) + report["conflicts"], report
    # Each change is offered to every member once (its own node included), and at most that many lose.
    assert report["offers"] == changed * len(nodes), report
    assert report["conflicts"] <= report["offers"], report
    return report


def test_two_nodes_written_concurrently_converge_also_through_a_kill_9(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path
):
    nodes = {"pg": fresh_pg_db, "maria": fresh_mariadb_db}
    report = run_group(nodes, [("pg", "maria")], tmp_path, ops=1500, keys=150, kill_shard=True)
    assert report["conflicts"] > 0, "the hot keys were written on both nodes within milliseconds: some must conflict"


def test_three_nodes_in_a_star_converge(fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, pg_server, tmp_path):
    second_pg = pg_server.create_database(f"{fresh_pg_db.database}_b")
    try:
        nodes = {"pg": fresh_pg_db, "maria": fresh_mariadb_db, "pg2": second_pg}
        # pg2 decodes with pgoutput (its echoes told by origin name), pg with wal2json (by origin id).
        run_group(nodes, [("pg", "maria"), ("maria", "pg2")], tmp_path, ops=700, keys=100, pgoutput=frozenset({"pg2"}))
    finally:
        pg_server.drop_database(second_pg.database)


def http_json(url: str, body: dict | None = None, token: str | None = None) -> dict | list:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_manual_conflicts_are_parked_listed_and_resolving_one_converges(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path, capsys
):
    from actors.cli import main as cli

    nodes = {"pg": fresh_pg_db, "maria": fresh_mariadb_db}
    config = group_config(nodes, [("pg", "maria")], tmp_path, "manual", audit_on="pg")
    with running(config) as supervisor:
        streaming(supervisor, timeout_s=120)
        with serving(supervisor, "test-token") as url:
            # Both nodes insert the same 20 keys at the same moment, each with its own values.
            barrier = threading.Barrier(2)

            def insert_all(name: str, db: Endpoint) -> None:
                with db.connect("admin") as conn:
                    cur = conn.cursor()
                    for key in range(1, 21):
                        barrier.wait(timeout=30)
                        cur.execute(f"INSERT INTO {namespace(db)} VALUES (%s, %s, 0, %s)", (key, name, f"by {name}"))

            threads = [threading.Thread(target=insert_all, args=item) for item in nodes.items()]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            converge(nodes, [], 60, supervisor)  # meanwhile the last writer wins everywhere

            capsys.readouterr()
            token = tmp_path / "http-token"
            assert cli(["conflicts", "list", "--url", url, "--json"]) == 2  # rows: only with the token
            assert cli(["conflicts", "list", "--url", url, "--json", "--token-file", str(token)]) == 0
            parked = json.loads(capsys.readouterr().out)
            assert parked, "simultaneous inserts of the same keys on both nodes must park conflicts"
            item = parked[0]
            assert item["state"] == "parked" and item["policy"] == "manual"
            loser = item["source"]
            key = int(item["key"]["id"])
            holds = {n: table_rows(db, namespace(db))[(key,)]["owner"] for n, db in nodes.items()}
            assert set(holds.values()) == {item["target"]["node"]}, holds  # the winner, on both nodes

            assert cli(["conflicts", "show", item["id"], "--url", url, "--token-file", str(token)]) == 0
            shown = capsys.readouterr().out
            assert f"lost (source): node {loser['node']}" in shown

            token = tmp_path / "http-token"
            assert (
                cli(["conflicts", "resolve", item["id"], "--take", "source", "--url", url, "--token-file", str(token)])
                == 0
            )

            def owners() -> dict:
                return {n: table_rows(db, namespace(db)).get((key,), {}).get("owner") for n, db in nodes.items()}

            wait_until(
                lambda: (
                    set(owners().values()) == {loser["node"]}
                    and supervisor.conflict_get(item["id"])["state"] == "resolved"
                ),
                timeout_s=60,
                what=lambda: f"the resolution to reach both nodes: {owners()}, {supervisor.conflict_get(item['id'])}",
            )
            converge(nodes, [], 60, supervisor)
            # A wrong token is refused; an unknown conflict is exit 1.
            (tmp_path / "bad-token").write_text("nope")
            assert (
                cli(
                    [
                        "conflicts",
                        "resolve",
                        item["id"],
                        "--take",
                        "target",
                        "--url",
                        url,
                        "--token-file",
                        str(tmp_path / "bad-token"),
                    ]
                )
                == 2
            )
            assert cli(["conflicts", "show", "0000", "--url", url, "--token-file", str(token)]) == 1
    # Every decision, and the resolution, is in the signed audit log, which verifies.
    with fresh_pg_db.connect("admin") as conn:
        entries = [decode_entry(bytes(e.data)) for e in AuditStore(conn, AUDIT_SCHEMA).read()]
    decisions = [admin_detail(e) for e in entries if e.kind == EntryKind.CONFLICT]
    outcomes = {d["outcome"] for d in decisions}
    assert outcomes & {"discard", "repair"} and "resolved-take-source" in outcomes, outcomes
    lost = [d for d in decisions if d["outcome"] in ("discard", "repair")]
    assert all(d["policy"] == "manual" and d["lost"]["node"] != d["kept"]["node"] for d in lost)
    capsys.readouterr()
    code = cli(["audit", "verify", "--config", str(tmp_path / "config.yaml")])
    assert code == 0, capsys.readouterr()


def test_two_nodes_converge_across_a_supervisor_restart_mid_write(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path
):
    """Versions live in the nodes, positions and parked conflicts in the state directory: a new supervisor
    picks up where the stopped one left off while both nodes keep being written."""
    nodes = {"pg": fresh_pg_db, "maria": fresh_mariadb_db}
    config = group_config(nodes, [("pg", "maria")], tmp_path, "last_writer_wins")
    names = ("worker_sync_events_captured_total", "worker_sync_echoes_suppressed_total")
    before = {name: counter(name) for name in names}
    writers = [Writer(name, db, 1500, 150, seed=10 + i) for i, (name, db) in enumerate(nodes.items())]
    with running(config) as supervisor:
        streaming(supervisor, timeout_s=120)
        for writer in writers:
            writer.start()
        wait_until(  # this supervisor has passed changes on both ways, the writers going on
            lambda: (status := supervisor.status()) is not None and all(s.applied_events for s in status.streams),
            timeout_s=60,
            what=lambda: f"every stream to apply some of the writers' changes: {supervisor.status()}",
        )
    # Stopped (what was in flight is applied and committed) while the writers go on; then a new one starts.
    with running(config) as supervisor:
        for writer in writers:
            writer.join(timeout=300)
            assert writer.error is None, f"{writer.name}: {writer.error}"
        converge(nodes, writers, 90, supervisor)
    changed = sum(w.changed for w in writers)
    captured, echoes = (counter(name) - before[name] for name in names)
    # Every user change captured once as a change across both runs, none bounced back.
    assert captured - echoes == changed, (captured, echoes, changed)


def test_two_nodes_converge_under_source_priority(fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path):
    """The same concurrent load under `source_priority`: every node ends with the same rows (the node with the
    higher `priority`, MariaDB here, wins each conflict) and nothing bounces back."""
    nodes = {"pg": fresh_pg_db, "maria": fresh_mariadb_db}
    report = run_group(nodes, [("pg", "maria")], tmp_path, ops=800, keys=80, policy="source_priority")
    assert report["conflicts"] > 0
