"""Per-engine set-up for the capture bench: a throwaway server, a table, workloads and readers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import msgspec
import psycopg
from psycopg.conninfo import make_conninfo

from actors.core.events import Position
from actors.core.streams import StreamSpec
from actors.engines.postgresql import PostgresSource
from actors.engines.pump import BatchPump
from actors.engines.registry import build_source
from actors.harness import Endpoint, LocalMariaDB, LocalPostgres
from actors.harness.secret_files import write_secret_file
from config.model import MySqlNode, PostgresNode, Tls

TABLE = "bench_orders"


class EngineBench(Protocol):
    engine: str

    def __enter__(self) -> EngineBench: ...
    def __exit__(self, *exc: object) -> None: ...
    def reset(self) -> None: ...
    def write_one_transaction(self, rows: int) -> int: ...
    def write_mixed(self, txns: list[list[tuple[str, int]]]) -> int: ...
    def read_plain(self, expected: int) -> int: ...
    def read_source(self, expected: int) -> int: ...
    def read_actor(self, expected: int) -> int: ...


def drain(pump: BatchPump, expected: int, timeout_s: float = 600) -> int:
    got = 0
    deadline = time.monotonic() + timeout_s
    while got < expected and time.monotonic() < deadline:
        batch = pump.read(2_000, 0.5)
        if batch is not None:
            got += len(batch.events)
    return got


class PostgresBench:
    engine = "postgresql"
    slot = "bench_ws"
    plain_slot = "bench_plain"
    decoder = "wal2json"

    def __init__(self, base_dir: Path) -> None:
        self.server = LocalPostgres(base_dir)
        self.db: Endpoint
        self.resume: Position | None = None
        self.base_dir = base_dir

    def __enter__(self) -> PostgresBench:
        self.server.start()
        self.db = self.server.endpoint
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def _conninfo(self) -> str:
        db = self.db
        return make_conninfo(
            host=db.host, port=db.port, user=db.capture.user, password=db.capture.password, dbname=db.database
        )

    def _source(self) -> PostgresSource:
        return PostgresSource(
            stream="bench",
            node="pg",
            conninfo=self._conninfo(),
            slot=self.slot,
            tables=[f"public.{TABLE}"],
            decoder=self.decoder,
            publication=self.slot,
        )

    def reset(self) -> None:
        with self.db.connect("admin") as conn:
            for (slot,) in conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall():
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            conn.execute(f"DROP TABLE IF EXISTS public.{TABLE}")
            conn.execute(
                f"CREATE TABLE public.{TABLE} (id int PRIMARY KEY, qty int, price numeric(10,2), "
                "note text, at timestamptz DEFAULT now())"
            )
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", (self.plain_slot,))
            conn.execute(f"DROP PUBLICATION IF EXISTS {self.slot}")
            conn.execute(f"CREATE PUBLICATION {self.slot} FOR TABLE public.{TABLE}")
        pump = BatchPump(self._source(), resume_after=None)
        try:
            while (batch := pump.read(100, 1.0)) is None or batch.upto is None:
                pass
            self.resume = batch.upto  # the empty snapshot's end: streaming starts here
        finally:
            pump.close()

    def write_one_transaction(self, rows: int) -> int:
        with self.db.connect("admin") as conn:
            conn.execute(
                f"INSERT INTO public.{TABLE} (id, qty, price, note) "
                "SELECT g, g %% 10, g / 100.0, md5(g::text) FROM generate_series(1, %s::int) g",
                (rows,),
            )
        return rows

    def write_mixed(self, txns: list[list[tuple[str, int]]]) -> int:
        statements = {
            "insert": f"INSERT INTO public.{TABLE} (id, qty, price, note) VALUES (%s, 1, 9.99, 'new')",
            "update": f"UPDATE public.{TABLE} SET qty = qty + 1, price = price + 1 WHERE id = %s",
            "delete": f"DELETE FROM public.{TABLE} WHERE id = %s",
        }
        with self.db.connect("admin", autocommit=False) as conn, conn.pipeline():
            for txn in txns:
                for op, key in txn:
                    conn.execute(statements[op], (key,))
                conn.commit()
        return sum(len(t) for t in txns)

    def read_plain(self, expected: int) -> int:
        """The simplest reader: peek the whole backlog through SQL and decode each change."""
        decoder = msgspec.json.Decoder()
        count = 0
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            cursor = conn.execute(
                "SELECT data FROM pg_logical_slot_peek_changes(%s, NULL, NULL, 'format-version', '2', "
                "'include-xids', '1', 'include-timestamp', '1', 'include-types', '1')",
                (self.plain_slot,),
            )
            for (data,) in cursor:
                if decoder.decode(data)["action"] in ("I", "U", "D"):
                    count += 1
        return count

    def read_source(self, expected: int) -> int:
        pump = BatchPump(self._source(), resume_after=self.resume)
        try:
            return drain(pump, expected)
        finally:
            pump.close()

    def read_actor(self, expected: int) -> int:
        secret = write_secret_file(self.base_dir, "capture-password", self.db.capture.password)
        node = PostgresNode(
            host=self.db.host,
            port=self.db.port,
            database=self.db.database,
            username=self.db.capture.user,
            password_file=secret,
            tls=Tls(mode="disable"),
            slot_name=self.slot,
            decoder=self.decoder,  # type: ignore[arg-type]  # one of the config's literals
        )
        spec = StreamSpec(stream="bench", node_name="pg", node=node, tables=[f"public.{TABLE}"])
        return _read_through_actor(spec, self.resume, expected)


class MariaDbBench:
    engine = "mariadb"
    #: Rows decoded from the events' bytes (actors/engines/mariadb/rows_decoder.py), or by mysql-replication.
    lean_rows = True
    #: The common events read from their packets (actors/engines/mariadb/fast_events.py), or by mysql-replication.
    fast_events = True

    def __init__(self, base_dir: Path) -> None:
        self.server = LocalMariaDB(base_dir)
        self.db: Endpoint
        self.resume: Position | None = None
        self.base_dir = base_dir

    def __enter__(self) -> MariaDbBench:
        self.server.start()
        self.db = self.server.endpoint
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def _node(self) -> MySqlNode:
        secret = write_secret_file(self.base_dir, "capture-password", self.db.capture.password)
        return MySqlNode(
            host=self.db.host,
            port=self.db.port,
            database=self.db.database,
            username=self.db.capture.user,
            password_file=secret,
            tls=Tls(mode="disable"),
        )

    def _spec(self) -> StreamSpec:
        return StreamSpec(stream="bench", node_name="mysql", node=self._node(), tables=[f"{self.db.database}.{TABLE}"])

    def reset(self) -> None:
        with self.db.connect("admin") as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS `{self.db.database}`.{TABLE}")
            cursor.execute(
                f"CREATE TABLE `{self.db.database}`.{TABLE} (id int PRIMARY KEY, qty int, price decimal(10,2), "
                "note varchar(64), at timestamp(6) DEFAULT current_timestamp(6))"
            )
        pump = BatchPump(build_source(self._spec()), resume_after=None)
        try:
            while (batch := pump.read(100, 1.0)) is None or batch.upto is None:
                pass
            self.resume = batch.upto
        finally:
            pump.close()

    def write_one_transaction(self, rows: int) -> int:
        with self.db.connect("admin", autocommit=False) as conn, conn.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO `{self.db.database}`.{TABLE} (id, qty, price, note) "
                f"SELECT seq, seq % 10, seq / 100, md5(seq) FROM seq_1_to_{int(rows)}"
            )
            conn.commit()
        return rows

    def write_mixed(self, txns: list[list[tuple[str, int]]]) -> int:
        table = f"`{self.db.database}`.{TABLE}"
        statements = {
            "insert": f"INSERT INTO {table} (id, qty, price, note) VALUES (%s, 1, 9.99, 'new')",
            "update": f"UPDATE {table} SET qty = qty + 1, price = price + 1 WHERE id = %s",
            "delete": f"DELETE FROM {table} WHERE id = %s",
        }
        with self.db.connect("admin", autocommit=False) as conn, conn.cursor() as cursor:
            for txn in txns:
                for op, key in txn:
                    cursor.execute(statements[op], (key,))
                conn.commit()
        return sum(len(t) for t in txns)

    def read_plain(self, expected: int) -> int:
        """The simplest reader: a bare BinLogStreamReader loop from the same binlog position."""
        from pymysqlreplication import BinLogStreamReader
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

        fields = dict(part.split("=", 1) for part in self.resume.resume.split(";"))
        reader = BinLogStreamReader(
            connection_settings={
                "host": self.db.host,
                "port": self.db.port,
                "user": self.db.capture.user,
                "passwd": self.db.capture.password,
            },
            server_id=4299,
            blocking=False,
            resume_stream=True,
            log_file=fields["file"],
            log_pos=int(fields["pos"]),
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
            only_tables=[TABLE],
            only_schemas=[self.db.database],
        )
        count = 0
        try:
            for event in reader:
                count += len(event.rows)
                if count >= expected:
                    break
        finally:
            reader.close()
        return count

    def read_source(self, expected: int) -> int:
        source = build_source(self._spec())
        source.lean_rows = self.lean_rows  # type: ignore[attr-defined]  # a MariaDbSource
        source.fast_events = self.fast_events  # type: ignore[attr-defined]
        pump = BatchPump(source, resume_after=self.resume)
        try:
            return drain(pump, expected)
        finally:
            pump.close()

    def read_actor(self, expected: int) -> int:
        return _read_through_actor(self._spec(), self.resume, expected)


def _read_through_actor(spec: StreamSpec, resume: Position, expected: int) -> int:
    import ray

    from actors.capture import CaptureActor
    from actors.core.plan import RoutingPlan

    actor = CaptureActor.remote(spec, RoutingPlan(1, [], []), False)
    got = 0
    seq = 0
    try:
        while got < expected:
            seq += 1
            captured = ray.get(actor.poll.remote(2_000, 0.5, None, resume, seq))
            if captured is not None:
                got += captured.events
    finally:
        ray.get(actor.close.remote())
        ray.kill(actor)
    return got


class PgOutputBench(PostgresBench):
    """The same PostgreSQL workloads read through the built-in pgoutput decoder instead of wal2json."""

    engine = "postgresql-pgoutput"
    decoder = "pgoutput"


class MariaDbLibraryBench(MariaDbBench):
    """The same MariaDB workloads with every row decoded by mysql-replication (as before the lean decoder)."""

    engine = "mariadb-library"
    lean_rows = False


class MariaDbLibraryEventsBench(MariaDbBench):
    """Rows decoded from the events' bytes, but every event read by mysql-replication (before the fast path)."""

    engine = "mariadb-library-events"
    fast_events = False


ENGINES: dict[str, type] = {
    "postgresql": PostgresBench,
    "postgresql-pgoutput": PgOutputBench,
    "mariadb": MariaDbBench,
    "mariadb-library": MariaDbLibraryBench,
    "mariadb-library-events": MariaDbLibraryEventsBench,
}
