"""TRUNCATE and ADD COLUMN end to end on real servers, both ways, under writes: every row equal afterwards to a
model of what the writers did (rows before a TRUNCATE gone, rows after it present, the added column filled),
each audited as one entry; and the `stop` modes stopping the stream with a message that says what to do."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.applier import ApplierShard
from actors.core.audit.entries import EntryKind, decode_entry
from actors.core.batches import Batch
from actors.core.encoding import encode_batch
from actors.core.errors import SinkError
from actors.core.events import ChangeEvent, Op, Position
from actors.core.routing import build_routes
from actors.engines.postgresql.audit_store import AuditStore
from actors.harness import Endpoint
from actors.harness.grants import _account
from actors.preflight import check_routes
from config import parse_config
from config.loader import nodes_by_name
from tests.actors.test_audit_pipeline import SCHEMA, audit_config
from tests.actors.test_pipeline import wait_ready
from tests.pipeline_helpers import pg_to_mariadb_config_text, running
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")

KEYS = 40
#: key -> (v, qty); qty is None until the column exists.
Model = dict[int, tuple[str, int | None]]


def execute(endpoint: Endpoint, conn: Any, sql: str) -> None:
    if endpoint.engine == "postgresql":
        conn.execute(sql)
    else:
        with conn.cursor() as cursor:
            cursor.execute(sql)


def rows(endpoint: Endpoint, table: str, *, qty: bool) -> Model:
    query = f"SELECT id, v, {'qty' if qty else 'NULL'} FROM {table}"
    with endpoint.connect("admin") as conn:
        if endpoint.engine == "postgresql":
            found = conn.execute(query).fetchall()
        else:
            with conn.cursor() as cursor:
                cursor.execute(query)
                found = cursor.fetchall()
    return {int(i): (str(v), None if q is None else int(q)) for i, v, q in found}


class Writers:
    """A thread upserting and deleting random keys, one statement per transaction, and the model of what it did.
    ``exclusive()`` runs a statement of the test's own (ALTER, TRUNCATE) between two of its writes, so the model
    is exact: each write and the model's update happen under one lock."""

    def __init__(self, endpoint: Endpoint, table: str) -> None:
        self.endpoint, self.table = endpoint, table
        self.model: Model = {}
        self.qty = False
        self.writes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writers", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        rng = random.Random(20)
        try:
            with self.endpoint.connect("admin") as conn:
                while not self._stop.is_set():
                    key = rng.randrange(KEYS)
                    with self._lock:
                        if self._stop.is_set():
                            break
                        self.writes += 1
                        value = f"w{self.writes}"
                        if rng.random() < 0.15 and key in self.model:
                            execute(self.endpoint, conn, f"DELETE FROM {self.table} WHERE id = {key}")
                            del self.model[key]
                        elif self.qty:
                            execute(self.endpoint, conn, self._upsert(key, value, self.writes))
                            self.model[key] = (value, self.writes)
                        else:
                            execute(self.endpoint, conn, self._upsert(key, value, None))
                            old = self.model.get(key)
                            self.model[key] = (value, None if old is None else old[1])
                    time.sleep(0.002)
        except BaseException as exc:
            self._error = exc

    def _upsert(self, key: int, value: str, qty: int | None) -> str:
        names, values = (
            ("id, v, qty", f"{key}, '{value}', {qty}") if qty is not None else ("id, v", f"{key}, '{value}'")
        )
        sets = f"v = '{value}'" + (f", qty = {qty}" if qty is not None else "")
        if self.endpoint.engine == "postgresql":
            return f"INSERT INTO {self.table} ({names}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET {sets}"
        return f"INSERT INTO {self.table} ({names}) VALUES ({values}) ON DUPLICATE KEY UPDATE {sets}"

    def exclusive(self, sql: str, then: Callable[[Model], None]) -> None:
        with self._lock, self.endpoint.connect("admin") as conn:
            execute(self.endpoint, conn, sql)
            then(self.model)

    def stop(self) -> None:
        """No more writes once this returns (the one under way, if any, is done: the lock is taken)."""
        self._stop.set()
        with self._lock:
            pass

    def wait_writes(self, more: int) -> None:
        goal = self.writes + more
        wait_until(lambda: self.writes >= goal or self._error is not None, timeout_s=60, what=f"{more} more writes")
        self.check()

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    @contextmanager
    def going(self) -> Iterator[Writers]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=30)
        self.check()


def add_qty(model: Model) -> None:
    """ADD COLUMN qty ... DEFAULT 7: every existing row holds 7 from then on."""
    for key, (value, _) in model.items():
        model[key] = (value, 7)


def with_keys(text: str, keys: str) -> str:
    """The harness config with ``keys`` (YAML flow entries) added to its link."""
    return text.replace("    source: ", f"    {keys}\n    source: ", 1)


def let_apply_alter(target: Endpoint, table: str) -> None:
    """What `truncate: apply` and `schema_changes: apply` need of the apply user (README): on PostgreSQL the
    TRUNCATE privilege and the table's ownership (ALTER TABLE needs it), on MariaDB the DROP and ALTER privileges."""
    with target.connect("admin") as conn:
        if target.engine == "postgresql":
            execute(target, conn, f"GRANT TRUNCATE ON {table} TO {target.apply.user}")
            execute(target, conn, f"ALTER TABLE {table} OWNER TO {target.apply.user}")
        else:
            execute(target, conn, f"GRANT ALTER, DROP ON {table} TO {_account(target.apply.user)}")


def kill_9(supervisor: Any) -> None:
    """SIGKILL the capture actor and every applier shard (Ray restarts them; the stream rewinds)."""
    (stream,) = supervisor.streams.values()
    calls = [lambda: ray.get(stream.actor.stats.remote(), timeout=10).pid]
    calls += [lambda shard=shard: ray.get(shard.actor.pid.remote(), timeout=10) for shard in supervisor.shards]
    pids: list[int] = []
    for call in calls:  # an actor still restarting from the last kill answers a little later

        def answered(call: Callable[[], int] = call) -> bool:
            try:
                pids.append(call())
            except ray.exceptions.RayError:
                return False
            return True

        wait_until(answered, timeout_s=60, what="the actor to answer")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def run_case(
    source: Endpoint, source_ns: str, target: Endpoint, target_ns: str, config: Any, *, chaos: bool = False
) -> None:
    """Writes before, during and after an ADD COLUMN and a TRUNCATE; the target equals the model after each.
    ``chaos``: the capture actor and every shard are killed (-9) right after each of them, under writes."""
    let_apply_alter(target, target_ns)
    with source.connect("admin") as conn:
        for key in range(0, KEYS, 2):  # the snapshot's rows
            execute(source, conn, f"INSERT INTO {source_ns} (id, v) VALUES ({key}, 'snap{key}')")
    writers = Writers(source, source_ns)
    writers.model.update({key: (f"snap{key}", None) for key in range(0, KEYS, 2)})
    with running(config) as supervisor, writers.going():
        wait_ready(supervisor)
        writers.wait_writes(150)
        alter = f"ALTER TABLE {source_ns} ADD COLUMN qty integer DEFAULT 7"
        writers.exclusive(alter, add_qty)
        writers.qty = True
        if chaos:
            writers.wait_writes(20)
            kill_9(supervisor)
        writers.wait_writes(150)
        writers.exclusive(f"TRUNCATE TABLE {source_ns}", lambda model: model.clear())
        before_truncate = writers.writes
        if chaos:
            writers.wait_writes(20)
            kill_9(supervisor)
        writers.wait_writes(150)
        writers.stop()
        want = writers.model
        assert rows(source, source_ns, qty=True) == want  # the model is what the source holds
        wait_until(
            lambda: rows(target, target_ns, qty=True) == want,
            timeout_s=90,
            what=f"the target to equal the model ({len(want)} rows)",
        )
        (stream,) = supervisor.status().streams
        assert stream.error is None, stream.error
    assert want and all(qty is not None and qty > before_truncate for _, qty in want.values())


def test_postgresql_to_mariadb_add_column_and_truncate_under_writes_audited_once(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v text)")
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v longtext)")
    target = f"{fresh_mariadb_db.database}.items"
    text = audit_config(fresh_pg_db, fresh_mariadb_db, tmp_path).read_text()
    text = text.replace(
        f"{{source: public.orders, target: {fresh_mariadb_db.database}.orders}}", "{source: public.items}"
    )
    text = text.replace("{source: public.items}", f"{{source: public.items, target: {target}}}")
    config = parse_config(with_keys(text, "truncate: apply\n    schema_changes: apply"), source="test config")
    run_case(fresh_pg_db, "public.items", fresh_mariadb_db, target, config)

    with fresh_pg_db.connect("admin") as conn:
        entries = [decode_entry(bytes(entry.data)) for entry in AuditStore(conn, SCHEMA).read()]
    changes = [e for e in entries if e.kind == EntryKind.CHANGE and e.namespace == "public.items"]
    assert [e.op for e in changes if e.op in ("truncate", "schema")] == ["schema", "truncate"]
    ops = [e.op for e in changes]
    assert ops.index("schema") < ops.index("truncate")


def test_add_column_and_truncate_survive_kill_9_of_the_capture_actor_and_the_shards_applied_and_audited_once(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v text)")
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v longtext)")
    target = f"{fresh_mariadb_db.database}.items"
    text = audit_config(fresh_pg_db, fresh_mariadb_db, tmp_path).read_text()
    text = text.replace(
        f"{{source: public.orders, target: {fresh_mariadb_db.database}.orders}}", "{source: public.items}"
    )
    text = text.replace("{source: public.items}", f"{{source: public.items, target: {target}}}")
    config = parse_config(with_keys(text, "truncate: apply\n    schema_changes: apply"), source="test config")
    run_case(fresh_pg_db, "public.items", fresh_mariadb_db, target, config, chaos=True)
    with fresh_pg_db.connect("admin") as conn:
        entries = [decode_entry(bytes(entry.data)) for entry in AuditStore(conn, SCHEMA).read()]
    changes = [e for e in entries if e.kind == EntryKind.CHANGE and e.namespace == "public.items"]
    assert [e.op for e in changes if e.op in ("truncate", "schema")] == ["schema", "truncate"]
    positions = [(e.node, e.order_hex) for e in changes]
    assert len(positions) == len(set(positions)), "a change was audited twice"


def test_mariadb_to_postgresql_add_column_and_truncate_under_writes(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v varchar(40))")
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v varchar(40))")
    source = f"{fresh_mariadb_db.database}.items"
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, [(source, "public.items")], reverse=True)
    config = parse_config(with_keys(text, "truncate: apply\n    schema_changes: apply"), source="test config")
    run_case(fresh_mariadb_db, source, fresh_pg_db, "public.items", config)


def stream_error(supervisor: Any) -> str | None:
    (stream,) = supervisor.status().streams
    return stream.error


def stop_case(
    source: Endpoint, source_ns: str, target: Endpoint, target_ns: str, config: Any, add_at_target: str
) -> None:
    """`stop` (the default) at an ADD COLUMN and at a TRUNCATE: the stream stops with the message, rows before
    it applied; once the column is added at the target by hand, a restart goes on from right before it."""
    with source.connect("admin") as conn:
        execute(source, conn, f"INSERT INTO {source_ns} (id, v) VALUES (1, 'a')")
    with running(config) as supervisor:
        wait_ready(supervisor)
        with source.connect("admin") as conn:
            execute(source, conn, f"INSERT INTO {source_ns} (id, v) VALUES (2, 'b')")
            execute(source, conn, f"ALTER TABLE {source_ns} ADD COLUMN qty integer")
            execute(source, conn, f"INSERT INTO {source_ns} (id, v, qty) VALUES (3, 'c', 30)")
        wait_until(lambda: stream_error(supervisor) is not None, timeout_s=60, what="the stream to stop")
        error = stream_error(supervisor)
        assert error is not None
        assert f"table `{source_ns}`: column `qty`" in error and "`schema_changes: stop`" in error, error
        assert f"add column `qty` to `{target_ns}`" in error, error
        assert rows(target, target_ns, qty=False) == {1: ("a", None), 2: ("b", None)}
    with target.connect("admin") as conn:
        execute(target, conn, add_at_target)
    with running(config) as supervisor:
        wait_ready(supervisor)
        want = {1: ("a", None), 2: ("b", None), 3: ("c", 30)}
        wait_until(lambda: rows(target, target_ns, qty=True) == want, timeout_s=60, what="row 3 with its qty")
        with source.connect("admin") as conn:
            execute(source, conn, f"TRUNCATE TABLE {source_ns}")
            execute(source, conn, f"INSERT INTO {source_ns} (id, v, qty) VALUES (4, 'd', 40)")
        wait_until(lambda: stream_error(supervisor) is not None, timeout_s=60, what="the stream to stop")
        error = stream_error(supervisor)
        assert error is not None
        assert f"table `{source_ns}`: TRUNCATE captured" in error and "says `truncate: stop`" in error, error
        assert rows(target, target_ns, qty=True) == want  # nothing after the TRUNCATE, and the rows kept


def test_pgoutput_carries_add_column_and_truncate_under_writes(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    """The same case through the pgoutput decoder: its Relation and Truncate messages give the same events."""
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v text)")
        conn.execute(f"CREATE PUBLICATION ws_{fresh_pg_db.database} FOR TABLE public.items")
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v longtext)")
    target = f"{fresh_mariadb_db.database}.items"
    text = pg_to_mariadb_config_text(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.items", target)], decoder="pgoutput"
    )
    config = parse_config(with_keys(text, "truncate: apply\n    schema_changes: apply"), source="test config")
    run_case(fresh_pg_db, "public.items", fresh_mariadb_db, target, config)


@pytest.mark.parametrize("decoder", ["wal2json", "pgoutput"])
def test_postgresql_stop_modes_say_what_to_do(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, decoder: str
) -> None:
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v text)")
        if decoder == "pgoutput":
            conn.execute(f"CREATE PUBLICATION ws_{fresh_pg_db.database} FOR TABLE public.items")
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v longtext)")
    target = f"{fresh_mariadb_db.database}.items"
    text = pg_to_mariadb_config_text(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.items", target)], decoder=decoder
    )
    config = parse_config(text, source="test config")
    stop_case(fresh_pg_db, "public.items", fresh_mariadb_db, target, config, f"ALTER TABLE {target} ADD COLUMN qty int")


def test_mariadb_stop_modes_say_what_to_do(fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path) -> None:
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v varchar(40))")
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v varchar(40))")
    source = f"{fresh_mariadb_db.database}.items"
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, [(source, "public.items")], reverse=True)
    config = parse_config(text, source="test config")
    stop_case(
        fresh_mariadb_db, source, fresh_pg_db, "public.items", config, "ALTER TABLE public.items ADD COLUMN qty int"
    )


@pytest.mark.parametrize(
    ("from_postgresql", "decoder"),
    [(False, "wal2json"), (True, "wal2json"), (True, "pgoutput")],
    ids=["mariadb-source", "postgresql-source", "postgresql-pgoutput-source"],
)
def test_a_renamed_or_dropped_column_stops_the_stream_never_guessed(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, from_postgresql: bool, decoder: str
) -> None:
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v varchar(40), w int, x int)")
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v varchar(40), w int, x int)")
        if decoder == "pgoutput":
            conn.execute(f"CREATE PUBLICATION ws_{fresh_pg_db.database} FOR TABLE public.items")
    maria_table = f"{fresh_mariadb_db.database}.items"
    source, source_ns = (fresh_pg_db, "public.items") if from_postgresql else (fresh_mariadb_db, maria_table)
    target, target_ns = (fresh_mariadb_db, maria_table) if from_postgresql else (fresh_pg_db, "public.items")
    tables = [(source_ns, target_ns)]
    text = pg_to_mariadb_config_text(
        fresh_pg_db, fresh_mariadb_db, tmp_path, tables, reverse=not from_postgresql, decoder=decoder
    )
    config = parse_config(with_keys(text, "schema_changes: apply"), source="test config")
    let_apply_alter(target, target_ns)
    with running(config) as supervisor:
        wait_ready(supervisor)
        with source.connect("admin") as conn:
            execute(source, conn, f"INSERT INTO {source_ns} VALUES (1, 'a', 1, 1)")
            want = {1: ("a", None)}
            wait_until(lambda: rows(target, target_ns, qty=False) == want, timeout_s=60, what="row 1")
            execute(source, conn, f"ALTER TABLE {source_ns} RENAME COLUMN w TO w2")
            execute(source, conn, f"INSERT INTO {source_ns} VALUES (2, 'b', 2, 2)")
        wait_until(lambda: stream_error(supervisor) is not None, timeout_s=60, what="the stream to stop")
        error = stream_error(supervisor)
        assert error is not None
        assert "column `w` no longer exists at the source (renamed to `w2`?)" in error, error
        assert "re-sync the table" in error, error
        assert rows(target, target_ns, qty=False) == want
    # A dropped column, once the rename is made at the target too and the stream restarted past it.
    with target.connect("admin") as conn:
        execute(target, conn, f"ALTER TABLE {target_ns} RENAME COLUMN w TO w2")
    with running(config) as supervisor:
        wait_ready(supervisor)
        want = {1: ("a", None), 2: ("b", None)}
        wait_until(lambda: rows(target, target_ns, qty=False) == want, timeout_s=60, what="row 2")
        with source.connect("admin") as conn:
            execute(source, conn, f"ALTER TABLE {source_ns} DROP COLUMN x")
            execute(source, conn, f"INSERT INTO {source_ns} VALUES (3, 'c', 3)")
        wait_until(lambda: stream_error(supervisor) is not None, timeout_s=60, what="the stream to stop")
        error = stream_error(supervisor)
        assert error is not None and "column `x` no longer exists at the source -" in error, error
        assert rows(target, target_ns, qty=False) == want


def test_a_column_added_while_stopped_is_added_at_start_up(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    """`schema_changes: apply` also adds, at start-up, a sent column the target lacks (added while Worker-Sync was
    stopped, or whose event a crashed capture actor never delivered), with its type mapped and its default."""
    with fresh_pg_db.connect("admin") as conn:
        conn.execute(
            "CREATE TABLE public.items (id bigint PRIMARY KEY, v text, made timestamptz DEFAULT now(), "
            "qty numeric(9,2) DEFAULT 7 NOT NULL)"
        )
        conn.execute("INSERT INTO public.items (id, v) VALUES (1, 'a')")
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v longtext, made datetime(6))")
    target = f"{fresh_mariadb_db.database}.items"
    let_apply_alter(fresh_mariadb_db, target)
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.items", target)])
    config = parse_config(with_keys(text, "schema_changes: apply"), source="test config")
    with running(config) as supervisor:
        wait_ready(supervisor)
        with fresh_pg_db.connect("admin") as conn:
            conn.execute("INSERT INTO public.items (id, v, qty) VALUES (2, 'b', 2.5)")
        want = {1: ("a", 7), 2: ("b", 2)}
        wait_until(lambda: rows(fresh_mariadb_db, target, qty=True) == want, timeout_s=60, what="both rows")
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'items' AND COLUMN_NAME = 'qty'",
            (fresh_mariadb_db.database,),
        )
        assert cursor.fetchone() == ("decimal(9,2)", "NO", "7.00")


def test_start_up_names_the_grants_apply_needs_at_the_target(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v varchar(40))")
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v varchar(40))")
    maria_table = f"{fresh_mariadb_db.database}.items"
    keys = "truncate: apply\n    schema_changes: apply"
    for reverse, target in ((False, fresh_mariadb_db), (True, fresh_pg_db)):
        tables = [(maria_table, "public.items")] if reverse else [("public.items", maria_table)]
        text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, tables, reverse=reverse)
        config = parse_config(with_keys(text, keys), source="test config")
        with pytest.raises(SinkError) as caught:
            check_routes(config, build_routes(config))
        message = str(caught.value)
        if target.engine == "postgresql":
            assert f'`GRANT TRUNCATE ON "public"."items" TO {target.apply.user}`' in message, message
            assert "`schema_changes: apply` needs the table's ownership" in message, message
        else:
            assert "`truncate: apply` needs `GRANT DROP ON" in message, message
            assert "`schema_changes: apply` needs `GRANT ALTER ON" in message, message
        let_apply_alter(target, "public.items" if target.engine == "postgresql" else maria_table)
        check_routes(config, build_routes(config))  # granted: starts


@pytest.mark.parametrize("from_postgresql", [True, False], ids=["postgresql-source", "mariadb-source"])
def test_an_ignored_truncate_keeps_the_target_rows_and_what_follows_arrives(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, from_postgresql: bool
) -> None:
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v varchar(40))")
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v varchar(40))")
    maria_table = f"{fresh_mariadb_db.database}.items"
    source, source_ns = (fresh_pg_db, "public.items") if from_postgresql else (fresh_mariadb_db, maria_table)
    target, target_ns = (fresh_mariadb_db, maria_table) if from_postgresql else (fresh_pg_db, "public.items")
    text = pg_to_mariadb_config_text(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [(source_ns, target_ns)], reverse=not from_postgresql
    )
    config = parse_config(with_keys(text, "truncate: ignore"), source="test config")
    with running(config) as supervisor:
        wait_ready(supervisor)
        with source.connect("admin") as conn:
            execute(source, conn, f"INSERT INTO {source_ns} VALUES (1, 'a'), (2, 'b')")
            execute(source, conn, f"TRUNCATE TABLE {source_ns}")
            execute(source, conn, f"INSERT INTO {source_ns} VALUES (3, 'c')")
            execute(source, conn, f"UPDATE {source_ns} SET v = 'c2' WHERE id = 3")
        want = {1: ("a", None), 2: ("b", None), 3: ("c2", None)}
        wait_until(lambda: rows(target, target_ns, qty=False) == want, timeout_s=60, what="rows 1-3 at the target")
        assert stream_error(supervisor) is None


def test_a_shard_adds_a_column_whose_event_was_lost_from_the_source_definition(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    """A capture actor that crashed after reading an ADD COLUMN re-reads a definition that already has it and
    never sends the event again: the shard that meets a change naming the column adds it (as the event would
    have) and applies the change; a column the source does not have either stays an error."""
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v text)")
        conn.execute("ALTER TABLE public.items ADD COLUMN qty integer DEFAULT 7")  # its event: lost
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v longtext)")
    target = f"{fresh_mariadb_db.database}.items"
    let_apply_alter(fresh_mariadb_db, target)
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.items", target)])
    config = parse_config(with_keys(text, "schema_changes: apply"), source="test config")
    routes = build_routes(config)
    nodes = nodes_by_name(config)
    shard = ApplierShard.__ray_metadata__.modified_class(0, routes, nodes)  # the actor's class, in this process

    def batch(seq: int, after: dict[str, Any]) -> bytes:
        event = ChangeEvent(
            node="postgresql",
            engine="postgresql",
            namespace="public.items",
            op=Op.INSERT,
            key={"id": after["id"]},
            before=None,
            after=after,
            commit_time_us=seq,
            txid=str(seq),
            position=Position(seq.to_bytes(8, "big"), ""),
        )
        return encode_batch(Batch("postgresql", seq, [event], event.position))

    try:
        shard.apply(frozenset(), batch(1, {"id": 1, "v": "a", "qty": 5}))
        assert rows(fresh_mariadb_db, target, qty=True) == {1: ("a", 5)}
        with pytest.raises(SinkError, match="has no column `nope`"):
            shard.apply(frozenset(), batch(2, {"id": 2, "v": "b", "qty": 6, "nope": 1}))
    finally:
        shard.close()


def test_a_column_added_to_a_table_sent_with_columns_include_is_not_sent_and_nothing_stops(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    with fresh_pg_db.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, v text, secret text)")
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE items (id bigint PRIMARY KEY, v longtext)")
    target = f"{fresh_mariadb_db.database}.items"
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.items", target)])
    text = text.replace(f"target: {target}}}", f"target: {target}, columns_include: [v]}}")
    config = parse_config(text, source="test config")  # schema_changes: stop (the default)
    with running(config) as supervisor:
        wait_ready(supervisor)
        with fresh_pg_db.connect("admin") as conn:
            conn.execute("INSERT INTO public.items VALUES (1, 'a', 's1')")
            conn.execute("ALTER TABLE public.items ADD COLUMN qty integer")
            conn.execute("INSERT INTO public.items VALUES (2, 'b', 's2', 20)")
            conn.execute("UPDATE public.items SET qty = 10, v = 'a2' WHERE id = 1")
        want = {1: ("a2", None), 2: ("b", None)}
        wait_until(lambda: rows(fresh_mariadb_db, target, qty=False) == want, timeout_s=60, what="rows 1 and 2")
        assert stream_error(supervisor) is None
    with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute(f"SHOW COLUMNS FROM {target}")
        assert [row[0] for row in cursor.fetchall()] == ["id", "v"]
