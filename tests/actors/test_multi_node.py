"""`worker-sync run` on a real three-node Ray cluster (`ray start` head with no CPUs and two worker nodes, on
loopback, in a temp dir of their own): the capture actor, the applier shards and the audit-chain actor are
spread over the nodes (the state API says where; the test prints it), then one worker node dies mid-run
(SIGKILL to its raylet and everything under it: its workers and agents) while the source keeps being
written. At the end the target equals what was written (kept as a model: the final value of every key) and
the signed audit log holds every change written exactly once.

The cluster is stopped by PID (`ray stop` would also stop every other Ray on the machine).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from actors.core.audit.entries import EntryKind, decode_entry
from actors.engines.postgresql.audit_store import AuditStore
from actors.harness import Endpoint
from actors.harness.compare import table_rows
from actors.harness.ports import free_port
from actors.harness.ray_cluster import VENV_BIN, LocalRayCluster, local_ray_cluster
from tests.actors.test_audit_pipeline import SCHEMA, audit_config
from tests.actors.test_pipeline import create_orders
from tests.actors.test_ray_gone import get
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
OURS = ("CaptureActor", "ApplierShard", "AuditChain")
#: Changes per second the writer offers (transactions of 10), before and after the node dies.
RATE = 300
BEFORE_S, AFTER_S = 6.0, 12.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


class ModelWriter:
    """Inserts and updates on PostgreSQL's orders table in a thread, in transactions of 10 changes, at about
    ``RATE`` changes/s; ``model`` is what each key holds after the last committed transaction."""

    def __init__(self, pg: Endpoint, seed: int = 11) -> None:
        self.pg = pg
        self.rng = random.Random(seed)
        self.model: dict[int, tuple[int, str]] = {}
        self.changes = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="model-writer", daemon=True)

    def start(self) -> ModelWriter:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            next_id, started = 1, time.monotonic()
            with self.pg.connect("admin", autocommit=False) as conn:
                while not self.stop.is_set():
                    pending: dict[int, tuple[int, str]] = {}
                    for _ in range(10):
                        if self.rng.random() < 0.5 or len(self.model) < 50:
                            key, qty = next_id, 1
                            next_id += 1
                            value = (qty, f"v{key}.{qty}")
                            conn.execute(
                                "INSERT INTO public.orders (id, customer, qty, price, note) VALUES (%s, %s, %s, 1, %s)",
                                (key, f"c{key % 7}", qty, value[1]),
                            )
                        else:
                            key = self.rng.randrange(1, next_id)
                            qty = pending.get(key, self.model.get(key, (0, "")))[0] + 1
                            value = (qty, f"v{key}.{qty}")
                            conn.execute("UPDATE public.orders SET qty = %s, note = %s WHERE id = %s", (*value, key))
                        pending[key] = value
                    conn.commit()
                    self.model.update(pending)
                    self.changes += 10
                    # Paced: the writer is at most one transaction ahead of RATE.
                    ahead = self.changes / RATE - (time.monotonic() - started)
                    if ahead > 0:
                        self.stop.wait(ahead)
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert self.error is None, f"the writer failed: {self.error!r}"


def audit_changes(pg: Endpoint) -> tuple[list[tuple[str, str]], list[str]]:
    """(node, position) of every stored change entry in log order, and the admin entries' ops."""
    with pg.connect("admin") as conn:
        entries = [decode_entry(bytes(entry.data)) for entry in AuditStore(conn, SCHEMA).read()]
    changes = [(e.node, e.order_hex) for e in entries if e.kind == EntryKind.CHANGE]
    return changes, [e.op for e in entries if e.kind == EntryKind.ADMIN]


def model_diff(model: dict[int, tuple[int, str]], rows: dict) -> dict[str, list]:
    held = {key[0]: (row["qty"], row["note"]) for key, row in rows.items()}
    return {
        "lost": sorted(model.keys() - held.keys()),
        "differing": sorted((k, model[k], held[k]) for k in model.keys() & held.keys() if model[k] != held[k]),
        "extra": sorted(held.keys() - model.keys()),
    }


def placement(cluster: LocalRayCluster) -> list[dict]:
    """Our live actors: name, class, node (8 hex), whether that is the head node, pid."""
    heads = {n["node_id"] for n in cluster.nodes() if n.get("is_head_node")}
    return [
        {
            "name": a["name"],
            "class": a["class_name"],
            "node": a["node_id"][:8],
            "node_id": a["node_id"],
            "head": a["node_id"] in heads,
            "pid": a["pid"],
        }
        for a in cluster.actors()
        if a["state"] == "ALIVE" and a["class_name"] in OURS
    ]


def show(title: str, actors: list[dict]) -> str:
    lines = [title] + [
        f"  {a['class']:<13} {a['name']:<34} node {a['node']}{' (head)' if a['head'] else '       '} pid {a['pid']}"
        for a in sorted(actors, key=lambda a: (a["class"], a["name"]))
    ]
    return "\n".join(lines)


def log_excerpt(path: Path, limit: int = 40) -> str:
    keep = ("WARNING", "ERROR", "error", "Traceback", "creating", "resuming", "stopped", "dropping")
    lines = [line for line in path.read_text(errors="replace").splitlines() if any(k in line for k in keep)]
    return "\n".join(line[:400] for line in lines[-limit:])


class Run:
    """`worker-sync run` as a subprocess (as a deployment runs it), its output in ``log``."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.port, self.log = free_port(), log
        with open(log, "w") as out:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "worker-sync"), "run", "--config", str(config), "--http-port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )

    def wait_ready(self) -> None:
        wait_until(lambda: get(self.port, "/readyz") == 200, timeout_s=120, what=lambda: self.log.read_text()[-3000:])

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # drains: applies and commits what is in flight
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


class Outcome:
    """Where the target and the audit log stand against what was written."""

    def __init__(self, writer: ModelWriter, pg: Endpoint, mariadb: Endpoint, target: str) -> None:
        self.diff = model_diff(writer.model, table_rows(mariadb, target))
        self.stored, self.admin = audit_changes(pg)
        counts = Counter(self.stored)
        self.keys, self.written = len(writer.model), writer.changes
        self.distinct = len(counts)
        self.duplicated = sum(n - 1 for n in counts.values() if n > 1)
        self.missing = max(0, self.written - self.distinct)

    @property
    def exact(self) -> bool:
        return not any(self.diff.values()) and self.duplicated == 0 and len(self.stored) == self.written

    def __str__(self) -> str:
        d = self.diff
        return (
            f"target: {len(d['lost'])} lost, {len(d['differing'])} differing, {len(d['extra'])} extra of "
            f"{self.keys:,} keys (e.g. lost {d['lost'][:3]}, differing {d['differing'][:2]}); audit: "
            f"{len(self.stored):,} change entries for {self.written:,} changes written ({self.distinct:,} distinct, "
            f"{self.duplicated} duplicated, {self.missing} missing); admin entries {self.admin}"
        )


def settle(run: Run, writer: ModelWriter, pg: Endpoint, mariadb: Endpoint, target: str, timeout_s: float) -> bool:
    """Wait (while ``run`` lives) until the target equals the model and the audit log holds as many
    changes as were written; then a moment more, for a duplicate to show. True if both happened."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and run.exited() is None:
        if not any(model_diff(writer.model, table_rows(mariadb, target)).values()):
            break
        time.sleep(0.25)
    else:
        return False
    while time.monotonic() < deadline and run.exited() is None and len(audit_changes(pg)[0]) < writer.changes:
        time.sleep(0.25)
    time.sleep(1.0)
    return len(audit_changes(pg)[0]) >= writer.changes


def test_a_worker_node_dies_mid_run_and_nothing_is_lost_or_stored_twice(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg, mariadb = fresh_pg_db, fresh_mariadb_db
    create_orders(pg, mariadb)
    config = audit_config(pg, mariadb, tmp_path)  # audit on, stored in the source database; 2 applier shards
    target = f"{mariadb.database}.orders"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    report: list[str] = []
    runs: list[Run] = []
    writer: ModelWriter | None = None
    outcome: Outcome | None = None
    began = time.monotonic()
    with local_ray_cluster(workers=2, head_cpus=0, env=env) as cluster:
        config.write_text(config.read_text().replace("supervisor:\n", f"supervisor:\n  ray_address: {cluster.gcs}\n"))
        try:
            run = Run(config, cluster.env, tmp_path / "run.log")
            runs.append(run)
            run.wait_ready()
            report.append(f"cluster up and `worker-sync run` ready {time.monotonic() - began:.1f}s after the start")
            started = time.monotonic()
            writer = ModelWriter(pg).start()
            wait_until(lambda: len(table_rows(mariadb, target)) > 0, timeout_s=60, what="the first row")
            before = placement(cluster)
            report.append(show("placement before:", before))
            assert {a["class"] for a in before} == set(OURS), report[-1]
            assert len({a["node_id"] for a in before}) >= 2, report[-1]

            # The victim: a worker node (not the head: it holds the GCS) with the most of our actors on it.
            on_node = Counter(a["node_id"] for a in before if not a["head"])
            assert on_node, "none of our actors is on a worker node"
            victim = max(
                on_node,
                key=lambda n: (on_node[n], any(a["class"] == "CaptureActor" for a in before if a["node_id"] == n)),
            )
            raylet = cluster.raylet_of(next(a["pid"] for a in before if a["node_id"] == victim))
            assert raylet is not None
            wait_until(lambda: time.monotonic() - started >= BEFORE_S, timeout_s=BEFORE_S + 5, what="the first writes")
            written_before = writer.changes
            killed = cluster.kill_node(raylet)
            killed_at = time.monotonic()
            report.append(
                f"killed node {victim[:8]} (SIGKILL to raylet {raylet} and {len(killed) - 1} processes under it) "
                f"after {written_before:,} changes; it held: "
                + ", ".join(a["name"] for a in before if a["node_id"] == victim)
            )
            wait_until(lambda: time.monotonic() - killed_at >= AFTER_S, timeout_s=AFTER_S + 5, what="the writes after")
            writer.finish()
            report.append(f"written: {writer.changes:,} changes ({writer.changes - written_before:,} after the kill)")

            settled = settle(run, writer, pg, mariadb, target, timeout_s=45)
            outcome = Outcome(writer, pg, mariadb, target)
            if settled:
                report.append(f"settled {time.monotonic() - killed_at:.1f}s after the kill: {outcome}")
            else:
                code = run.exited()
                report.append(
                    f"NOT settled {time.monotonic() - killed_at:.1f}s after the kill "
                    + (f"(`worker-sync run` EXITED with code {code})" if code is not None else "(still running)")
                    + f": {outcome}"
                )
                report.append("worker-sync run log (warnings, errors):\n" + log_excerpt(run.log))
            report.append(show("placement after:", placement(cluster)) + f"\nnodes alive: {len(cluster.alive_nodes())}")
            if not settled and run.exited() is not None:
                # Diagnosis only (the test fails regardless): what a restart, e.g. the chart's, recovers.
                run.stop()
                again = Run(config, cluster.env, tmp_path / "run-2.log")
                runs.append(again)
                again.wait_ready()
                settled_again = settle(again, writer, pg, mariadb, target, timeout_s=45)
                report.append(
                    f"after restarting `worker-sync run` (diagnosis: {'settled' if settled_again else 'NOT settled'}): "
                    + str(Outcome(writer, pg, mariadb, target))
                )
        finally:
            if writer is not None:
                writer.stop.set()
            for each in runs:
                each.stop()
            report.append(f"test time {time.monotonic() - began:.1f}s")
            with capsys.disabled():
                print("\n" + "\n".join(report))
    assert outcome is not None
    assert runs[0].process.returncode in (0, None) and len(runs) == 1, "\n".join(report)
    assert not any(outcome.diff.values()), f"the target differs from what was written: {outcome}"
    assert outcome.duplicated == 0 and len(outcome.stored) == outcome.written, f"audit not exactly once: {outcome}"
