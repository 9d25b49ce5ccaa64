"""Which values two-way groups converge to, checked against what the writers did (not only node against node).

The lost update this guards against: a node's own change comes back to it as an offer after its user has
written the row again; writing the older change back would lose the newer one (and an increment that read
it). Each node's writer increments its own keys ten times, so every key must end at exactly 10 everywhere.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest
import ray

from actors.harness import Endpoint
from actors.harness.compare import table_rows
from tests.actors.test_bidirectional import converge, counter, group_config, namespace, streaming
from tests.pipeline_helpers import running
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")

KEYS_PER_NODE = 100
INCREMENTS = 10


class Incrementer(threading.Thread):
    """Inserts each of its keys with n = 0 and adds 1 to it ten times, one statement per transaction."""

    def __init__(self, name: str, db: Endpoint, keys: range) -> None:
        super().__init__(name=f"incrementer-{name}", daemon=True)
        self.node, self.db, self.keys = name, db, keys
        self.error: BaseException | None = None
        self.done = 0

    def run(self) -> None:
        try:
            ns = namespace(self.db)
            with self.db.connect("admin") as conn:
                cur = conn.cursor()
                # Ten keys at a time, each incremented every few milliseconds for a while: long enough for
                # the key's own earlier changes to come back to this node as offers in between.
                for start in range(0, len(self.keys), 10):
                    batch = self.keys[start : start + 10]
                    for key in batch:
                        cur.execute(f"INSERT INTO {ns} VALUES (%s, %s, 0, 'new')", (key, self.node))
                    for step in range(INCREMENTS):
                        for key in batch:
                            cur.execute(f"UPDATE {ns} SET n = n + 1, note = %s WHERE id = %s", (f"s{step}", key))
                            assert cur.rowcount == 1, f"{self.node}: key {key} vanished at increment {step}"
                            self.done += 1
                        time.sleep(0.005)
        except BaseException as exc:
            self.error = exc


def run_increments(nodes: dict[str, Endpoint], tmp_path, *, policy: str, chaos: bool) -> None:
    config = group_config(nodes, [("pg", "maria")], tmp_path, policy)
    conflicts_before = counter("worker_sync_conflicts_total")
    with running(config) as supervisor:
        streaming(supervisor, timeout_s=120)
        writers = [
            Incrementer(name, db, range(1 + i * KEYS_PER_NODE, 1 + (i + 1) * KEYS_PER_NODE))
            for i, (name, db) in enumerate(nodes.items())
        ]
        for writer in writers:
            writer.start()
        if chaos:  # kill -9 an applier shard and a capture actor while the writers run
            shard, capture = supervisor.shards[0].actor, next(iter(supervisor.streams.values())).actor
            for at, pid_of in ((200, lambda: shard.pid.remote()), (800, lambda: capture.stats.remote())):
                wait_until(
                    lambda at=at: all(w.done > at for w in writers) or not any(w.is_alive() for w in writers),
                    timeout_s=60,
                    what="the writers to be under way",
                )
                answer = ray.get(pid_of())
                os.kill(answer if isinstance(answer, int) else answer.pid, signal.SIGKILL)
        for writer in writers:
            writer.join(timeout=300)
            assert writer.error is None, f"{writer.name}: {writer.error}"
        tables = converge(nodes, [], 120, supervisor)
    wrong = {
        name: {key: row["n"] for key, row in rows.items() if row["n"] != INCREMENTS} for name, rows in tables.items()
    }
    assert all(len(rows) == KEYS_PER_NODE * len(nodes) for rows in tables.values())
    assert not any(wrong.values()), f"keys that did not end at {INCREMENTS}: { {n: len(w) for n, w in wrong.items()} }"
    owners = {key: row["owner"] for key, row in table_rows(nodes["pg"], namespace(nodes["pg"])).items()}
    assert all(owner == ("pg" if key[0] <= KEYS_PER_NODE else "maria") for key, owner in owners.items())
    # No two nodes wrote one key: nothing conflicted.
    assert counter("worker_sync_conflicts_total") == conflicts_before


@pytest.mark.parametrize("run", range(5))
def test_every_increment_survives_when_both_nodes_write_their_own_keys(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path, run
):
    run_increments({"pg": fresh_pg_db, "maria": fresh_mariadb_db}, tmp_path, policy="last_writer_wins", chaos=False)


def test_every_increment_survives_kill_9_of_a_shard_and_a_capture_actor(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path
):
    run_increments({"pg": fresh_pg_db, "maria": fresh_mariadb_db}, tmp_path, policy="source_priority", chaos=True)


def wait_for_value(db: Endpoint, key: int, column: str, value: object, timeout_s: float = 60) -> None:
    wait_until(
        lambda: table_rows(db, namespace(db)).get((key,), {}).get(column) == value,
        timeout_s=timeout_s,
        what=lambda: f"key {key} to hold {column}={value!r} on {db.engine}: {table_rows(db, namespace(db))}",
    )


def inserted_and_arrived(pg: Endpoint, maria: Endpoint, keys: list[int], note: str) -> None:
    """Insert ``keys`` on PostgreSQL with ``note`` and wait until MariaDB holds each of them."""
    with pg.connect("admin") as conn:
        for key in keys:
            conn.cursor().execute("INSERT INTO public.kv VALUES (%s, 'pg', 0, %s)", (key, note))
    for key in keys:
        wait_for_value(maria, key, "note", note)


def update(db: Endpoint, keys: list[int], note: str) -> None:
    with db.connect("admin") as conn:
        cur = conn.cursor()
        placeholders = ", ".join(["%s"] * len(keys))
        cur.execute(f"UPDATE {namespace(db)} SET note = %s WHERE id IN ({placeholders})", (note, *keys))


def test_same_second_ties_between_mariadb_and_postgresql_go_to_priority(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path
):
    """MariaDB's commit times are whole seconds: a PostgreSQL change at X.2 s and a MariaDB change of the same
    rows 50 ms later are a tie, which MariaDB (the higher priority here) wins: 20 keys of 20."""
    nodes = {"pg": fresh_pg_db, "maria": fresh_mariadb_db}  # priorities 0 and 1 (group_config: by position)
    config = group_config(nodes, [("pg", "maria")], tmp_path, "last_writer_wins")
    keys = list(range(1, 21))
    with running(config) as supervisor:
        streaming(supervisor, timeout_s=120)
        inserted_and_arrived(fresh_pg_db, fresh_mariadb_db, keys, "new")
        for round_, chunk in enumerate(keys[i : i + 5] for i in range(0, len(keys), 5)):
            wait_until(lambda: 0.1 < time.time() % 1 < 0.3, timeout_s=2, what="the start of a second")
            update(fresh_pg_db, chunk, f"pg-{round_}")
            time.sleep(0.05)  # 50 ms later, the same second: MariaDB's stamp is X.0 s, PostgreSQL's X.2 s
            update(fresh_mariadb_db, chunk, f"maria-{round_}")
        tables = converge(nodes, [], 60, supervisor)
    notes = {key[0]: row["note"] for key, row in tables["pg"].items()}
    assert sorted(notes) == keys
    assert all(note.startswith("maria-") for note in notes.values()), notes


def test_a_later_update_at_the_lower_priority_node_is_kept_under_source_priority(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path
):
    """The higher-priority node's change reaches the lower-priority node, whose user then updates the row: a
    causally later change, no conflict, kept on both nodes (10 keys of 10)."""
    nodes = {"maria": fresh_mariadb_db, "pg": fresh_pg_db}  # maria priority 0, pg priority 1
    config = group_config(nodes, [("maria", "pg")], tmp_path, "source_priority")
    keys = list(range(1, 11))
    conflicts_before = counter("worker_sync_conflicts_total")
    with running(config) as supervisor:
        streaming(supervisor, timeout_s=120)
        inserted_and_arrived(fresh_pg_db, fresh_mariadb_db, keys, "from pg")
        for key in keys:
            update(fresh_mariadb_db, [key], "maria after pg")
        tables = converge(nodes, [], 60, supervisor)
    for name, rows in tables.items():
        assert {key[0]: row["note"] for key, row in rows.items()} == dict.fromkeys(keys, "maria after pg"), name
    assert counter("worker_sync_conflicts_total") == conflicts_before


class RecordingWriter(threading.Thread):
    """Read-modify-write transactions on a few hot keys; records, per write, the value it replaced (which
    write it had seen: the causal order) and the one it wrote, each unique."""

    def __init__(self, name: str, db: Endpoint, keys: list[int], writes: int, seed: int) -> None:
        super().__init__(name=f"recorder-{name}", daemon=True)
        self.node, self.db, self.keys, self.writes = name, db, keys, writes
        self.random = random.Random(seed)
        self.log: list[tuple[int, str, str, float]] = []  # (key, replaced note, written note, time)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            ns = namespace(self.db)
            with self.db.connect("admin") as conn:
                cur = conn.cursor()
                for i in range(self.writes):
                    key = self.random.choice(self.keys)
                    cur.execute("BEGIN")
                    cur.execute(f"SELECT note FROM {ns} WHERE id = %s FOR UPDATE", (key,))
                    (replaced,) = cur.fetchone()
                    note = f"{self.node}-{i}"
                    cur.execute(f"UPDATE {ns} SET note = %s, owner = %s WHERE id = %s", (note, self.node, key))
                    cur.execute("COMMIT")
                    self.log.append((key, replaced, note, time.time()))
                    time.sleep(self.random.uniform(0.005, 0.03))  # spread the writes over a few seconds
        except BaseException as exc:
            self.error = exc


@pytest.mark.parametrize(
    ("policy", "ring"), [("last_writer_wins", True), ("source_priority", True), ("last_writer_wins", False)]
)
def test_concurrent_writers_converge_to_the_value_the_policy_selects(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, pg_server, tmp_path, policy, ring
):
    """Writers on both nodes, or on every node of a ring (PostgreSQL -> MariaDB -> PostgreSQL -> back), race
    on 8 hot keys and record what each write replaced. After convergence every node holds, per key, a write
    that no later write had seen and replaced (a change made after seeing another is never lost to it,
    whatever the policy), and under last_writer_wins none of the concurrent candidates is clearly newer
    (more than a commit-clock tick and the stamp's own tick later)."""
    second_pg = pg_server.create_database(f"{fresh_pg_db.database}_r")
    try:
        nodes = {"pg": fresh_pg_db, "maria": fresh_mariadb_db, "pg2": second_pg}
        links = [("pg", "maria"), ("maria", "pg2"), ("pg2", "pg")]
        if not ring:  # two nodes
            del nodes["pg2"]
            links = links[:1]
        config = group_config(nodes, links, tmp_path, policy)
        keys = list(range(1, 9))
        with running(config) as supervisor:
            streaming(supervisor, timeout_s=120)
            with fresh_pg_db.connect("admin") as conn:
                for key in keys:
                    conn.cursor().execute("INSERT INTO public.kv VALUES (%s, 'pg', 0, 'initial')", (key,))
            for db in nodes.values():
                for key in keys:
                    wait_for_value(db, key, "note", "initial")
            writers = [RecordingWriter(name, db, keys, 120, seed=i) for i, (name, db) in enumerate(nodes.items())]
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join(timeout=300)
                assert writer.error is None, f"{writer.name}: {writer.error}"
            tables = converge(nodes, [], 120, supervisor)
    finally:
        pg_server.drop_database(second_pg.database)
    written = {note: (key, when) for w in writers for key, _, note, when in w.log}
    seen_and_replaced = {(key, replaced) for w in writers for key, replaced, _, _ in w.log}
    final = {key[0]: row["note"] for key, row in tables["pg"].items()}
    assert sorted(final) == keys
    for key, note in final.items():
        assert note in written and written[note][0] == key, (key, note)
        assert (key, note) not in seen_and_replaced, f"key {key}: {note} won, though a later write replaced it"
        if policy == "last_writer_wins":
            frontier = [n for n, (k, _) in written.items() if k == key and (key, n) not in seen_and_replaced]
            newest = max(written[n][1] for n in frontier)
            assert written[note][1] >= newest - 2.5, (key, note, {n: written[n][1] for n in frontier})
