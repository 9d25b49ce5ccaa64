"""The sync bench's tables, its orders-like write load, and the marker probe that measures lag.

- ``OrdersLoad`` commits a 60/30/10 insert/update/delete mix on a 9-column orders table (bigint key,
  integers, numeric, varchar text, two timestamps) in transactions of 1, 10 and 100 changes (each size
  carries about a third of the changes), either paced at a fixed offered rate (``run_paced``) or as
  fast as it can (``write_backlog``). Every change is its own single-row statement; a transaction's
  statements are bound client-side and sent in one round trip (PostgreSQL: ``BEGIN;...;COMMIT`` through
  a psycopg ClientCursor; MariaDB: a multi-statement query, then COMMIT), because the writer shares the
  two cores with everything it measures (measured here: ~7.4k changes/s into PostgreSQL this way
  against ~4.9k/s with psycopg's pipeline mode, at half the client CPU).
- ``Probe`` inserts a marker row into a small table on the source every 50-100 ms, noting the client
  time its autocommit returned, and polls the target every few ms for markers not yet seen:
  lag = first seen at the target - source commit, both on this machine's clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pymysql
from pymysql.constants import CLIENT

from actors.harness import Endpoint

#: Each transaction size carries about a third of the changes (so most transactions are single changes).
TXN_SIZES = (1, 10, 100)
TXN_WEIGHTS = (100, 10, 1)
MIX = {"insert": 0.6, "update": 0.3, "delete": 0.1}
COLUMNS = ("id", "customer_id", "sku", "qty", "price", "status", "note", "created_at", "updated_at")
TIME_COLUMNS = ("created_at", "updated_at")
STATUSES = ("new", "paid", "packed", "shipped", "delivered", "returned")
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima")

ORDERS_DDL = {
    "postgresql": (
        "CREATE TABLE {table} (id bigint PRIMARY KEY, customer_id integer NOT NULL, sku varchar(32) NOT NULL, "
        "qty integer NOT NULL, price numeric(12,2) NOT NULL, status varchar(16) NOT NULL, note varchar(200), "
        "created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)"
    ),
    "mariadb": (
        "CREATE TABLE {table} (id bigint PRIMARY KEY, customer_id int NOT NULL, sku varchar(32) NOT NULL, "
        "qty int NOT NULL, price decimal(12,2) NOT NULL, status varchar(16) NOT NULL, note varchar(200), "
        "created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL)"
    ),
}
PROBE_DDL = {
    "postgresql": "CREATE TABLE {table} (id bigint PRIMARY KEY, sent_us bigint NOT NULL)",
    "mariadb": "CREATE TABLE {table} (id bigint PRIMARY KEY, sent_us bigint NOT NULL)",
}


def qualified(endpoint: Endpoint, table: str) -> str:
    """The table's name in SQL: public.T on PostgreSQL, `db`.T on MariaDB."""
    return f"public.{table}" if endpoint.engine == "postgresql" else f"`{endpoint.database}`.{table}"


def namespace(endpoint: Endpoint, table: str) -> str:
    """The table's name in a Worker-Sync config and for actors.harness.compare."""
    return f"public.{table}" if endpoint.engine == "postgresql" else f"{endpoint.database}.{table}"


def create_table(endpoint: Endpoint, ddl: dict[str, str], table: str) -> None:
    statement = ddl[endpoint.engine].format(table=qualified(endpoint, table))
    with endpoint.connect("admin") as conn:
        if endpoint.engine == "postgresql":
            conn.execute(statement)
        else:
            with conn.cursor() as cursor:
                cursor.execute(statement)


def mariadb_connect(endpoint: Endpoint, role: str, *, multi_statements: bool = False) -> pymysql.Connection:
    """A PyMySQL connection like Endpoint.connect's, optionally allowing several statements per query."""
    creds = endpoint.credentials(role)
    return pymysql.connect(
        host=endpoint.host,
        port=endpoint.port,
        user=creds.user,
        password=creds.password,
        database=endpoint.database,
        autocommit=False,
        charset="utf8mb4",
        client_flag=CLIENT.MULTI_STATEMENTS if multi_statements else 0,
    )


@dataclass
class PacedRun:
    """What one paced run of the load committed."""

    offered_per_s: float
    changes: int = 0
    transactions: int = 0
    elapsed_s: float = 0.0
    started_at: float = 0.0  # time.time() of the start
    #: Largest delay (s) of a transaction behind its schedule: the writer could not keep the pace.
    max_behind_s: float = 0.0
    by_op: dict[str, int] = field(default_factory=lambda: {"insert": 0, "update": 0, "delete": 0})

    @property
    def achieved_per_s(self) -> float:
        return self.changes / self.elapsed_s if self.elapsed_s > 0 else 0.0


class OrdersLoad:
    """A mixed write load on one source table; keeps the set of live keys across runs."""

    def __init__(self, endpoint: Endpoint, table: str, *, seed: int = 7) -> None:
        self.endpoint = endpoint
        self.table = qualified(endpoint, table)
        self.rng = random.Random(seed)
        self.live: list[int] = []
        self.next_id = 1
        self.total_changes = 0
        self._conn: Any = None
        placeholders = ", ".join(["%s"] * len(COLUMNS))
        self._insert = f"INSERT INTO {self.table} ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        self._update = (
            f"UPDATE {self.table} SET qty = %s, price = %s, status = %s, note = %s, updated_at = %s WHERE id = %s"
        )
        self._delete = f"DELETE FROM {self.table} WHERE id = %s"

    # -- statements ---------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        now = dt.datetime.now(dt.UTC)
        return now if self.endpoint.engine == "postgresql" else now.replace(tzinfo=None)

    def _note(self) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randrange(3, 20)))[:200]

    def _price(self) -> str:
        return f"{self.rng.randrange(100, 10_000_000) / 100:.2f}"

    def _change(self, by_op: dict[str, int]) -> tuple[str, tuple[Any, ...]]:
        roll = self.rng.random()
        if roll < MIX["insert"] or len(self.live) < 100:
            key = self.next_id
            self.next_id += 1
            self.live.append(key)
            now = self._now()
            by_op["insert"] += 1
            return self._insert, (
                key,
                self.rng.randrange(1, 50_000),
                f"SKU-{self.rng.randrange(100_000):06d}",
                self.rng.randrange(1, 20),
                self._price(),
                "new",
                self._note(),
                now,
                now,
            )
        if roll < MIX["insert"] + MIX["update"]:
            by_op["update"] += 1
            return self._update, (
                self.rng.randrange(1, 20),
                self._price(),
                self.rng.choice(STATUSES),
                self._note(),
                self._now(),
                self.rng.choice(self.live),
            )
        by_op["delete"] += 1
        # Swap-remove: O(1), and which live key goes is random either way.
        index = self.rng.randrange(len(self.live))
        self.live[index], self.live[-1] = self.live[-1], self.live[index]
        return self._delete, (self.live.pop(),)

    def _txn_size(self) -> int:
        return self.rng.choices(TXN_SIZES, TXN_WEIGHTS)[0]

    # -- writing ------------------------------------------------------------------------------

    def _connection(self) -> Any:
        if self._conn is None:
            if self.endpoint.engine == "postgresql":
                conn = self.endpoint.connect("admin", autocommit=True)
                self._conn = (conn, psycopg.ClientCursor(conn))
            else:
                conn = mariadb_connect(self.endpoint, "admin", multi_statements=True)
                self._conn = (conn, conn.cursor())
        return self._conn

    def _commit(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """One transaction in one round trip: its statements, bound client-side, sent as one query."""
        conn, cursor = self._connection()
        body = ";".join(cursor.mogrify(sql, params) for sql, params in statements)
        if self.endpoint.engine == "postgresql":
            cursor.execute(f"BEGIN;{body};COMMIT")
        else:
            cursor.execute(body)
            while cursor.nextset():
                pass
            conn.commit()
        self.total_changes += len(statements)

    def run_paced(self, rate: float, duration_s: float, stop: threading.Event | None = None) -> PacedRun:
        """Commit at ``rate`` changes/s for ``duration_s`` (each transaction waits for its due time)."""
        run = PacedRun(offered_per_s=rate, started_at=time.time())
        stop = stop or threading.Event()
        started = time.monotonic()
        end = started + duration_s
        while not stop.is_set():
            now = time.monotonic()
            due = started + run.changes / rate
            if due >= end:
                now = end  # on pace to the end: the run lasted its full duration
                break
            if now >= end:
                break
            if due > now:
                stop.wait(due - now)
                continue
            run.max_behind_s = max(run.max_behind_s, now - due)
            size = self._txn_size()
            self._commit([self._change(run.by_op) for _ in range(size)])
            run.changes += size
            run.transactions += 1
        # A writer that fell behind also stops at `end`, short of rate x duration: achieved < offered.
        run.elapsed_s = max(now - started, 1e-9)
        return run

    def write_backlog(self, changes: int, progress: Callable[[int], None] | None = None) -> PacedRun:
        """Commit ``changes`` changes as fast as the writer can (for the backlog-drain measurement)."""
        run = PacedRun(offered_per_s=0.0, started_at=time.time())
        started = time.monotonic()
        last_note = started
        while run.changes < changes:
            size = min(self._txn_size(), changes - run.changes)
            self._commit([self._change(run.by_op) for _ in range(size)])
            run.changes += size
            run.transactions += 1
            if progress is not None and time.monotonic() - last_note > 5:
                last_note = time.monotonic()
                progress(run.changes)
        run.elapsed_s = time.monotonic() - started
        return run

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn[0].close()
            finally:
                self._conn = None


class Probe:
    """Markers through the link under test: commit on the source, watch for them on the target."""

    def __init__(
        self,
        source: Endpoint,
        target: Endpoint,
        table: str,
        *,
        interval_s: tuple[float, float] = (0.05, 0.1),
        poll_s: float = 0.005,
        seed: int = 5,
    ) -> None:
        self.source, self.target = source, target
        self.source_table = qualified(source, table)
        self.target_table = qualified(target, table)
        self.interval_s = interval_s
        self.poll_s = poll_s
        self.rng = random.Random(seed)
        #: marker id -> client time (s since the epoch) when its autocommit INSERT returned.
        self.committed: dict[int, float] = {}
        #: marker id -> client time when the INSERT was sent (its round trip bounds the commit time).
        self.sent: dict[int, float] = {}
        #: marker id -> client time when the target poll that first returned it started.
        self.seen: dict[int, float] = {}
        self.polls = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._next_id = 1
        self._writing = threading.Event()
        self._polling = threading.Event()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._guard(self._write_loop), name="probe-writer", daemon=True)
        self._poller = threading.Thread(target=self._guard(self._poll_loop), name="probe-poller", daemon=True)

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except BaseException as exc:  # reported in the result; the bench fails on missing markers
                self.errors.append(f"{loop.__name__}: {type(exc).__name__}: {exc}")

        return run

    def start(self) -> None:
        self._writer.start()
        self._poller.start()

    def resume_markers(self) -> None:
        self._polling.set()
        self._writing.set()

    def pause_markers(self) -> None:
        self._writing.clear()

    def pause_polling(self) -> None:
        """Stop polling the target too (once every marker has arrived), so it costs nothing meanwhile."""
        self._polling.clear()

    def stop(self) -> None:
        self._writing.clear()
        self._stop.set()
        for thread in (self._writer, self._poller):
            if thread.is_alive():
                thread.join(timeout=10)

    @property
    def markers(self) -> int:
        with self._lock:
            return len(self.committed)

    def unseen(self) -> list[int]:
        with self._lock:
            return sorted(set(self.committed) - set(self.seen))

    def _write_loop(self) -> None:
        conn = self.source.connect("admin", autocommit=True)
        sql = f"INSERT INTO {self.source_table} (id, sent_us) VALUES (%s, %s)"
        try:
            while not self._stop.is_set():
                if not self._writing.wait(0.05):
                    continue
                marker = self._next_id
                self._next_id += 1
                sent = time.time()
                if self.source.engine == "postgresql":
                    conn.execute(sql, (marker, int(sent * 1e6)))
                else:
                    with conn.cursor() as cursor:
                        cursor.execute(sql, (marker, int(sent * 1e6)))
                done = time.time()
                with self._lock:
                    self.sent[marker] = sent
                    self.committed[marker] = done
                self._stop.wait(self.rng.uniform(*self.interval_s))
        finally:
            conn.close()

    def _poll_loop(self) -> None:
        conn = self.target.connect("admin", autocommit=True)
        sql = f"SELECT id FROM {self.target_table} WHERE id > %s"
        below = 0  # every marker <= below has been seen
        try:
            while not self._stop.is_set():
                if not self._polling.wait(0.05):
                    continue
                started = time.time()
                if self.target.engine == "postgresql":
                    ids = [row[0] for row in conn.execute(sql, (below,)).fetchall()]
                else:
                    with conn.cursor() as cursor:
                        cursor.execute(sql, (below,))
                        ids = [row[0] for row in cursor.fetchall()]
                self.polls += 1
                if ids:
                    with self._lock:
                        for marker in ids:
                            self.seen.setdefault(marker, started)
                        while below + 1 in self.seen:
                            below += 1
                self._stop.wait(self.poll_s)
        finally:
            conn.close()

    def lags_ms(self, since: float, until: float) -> tuple[list[float], int]:
        """Lags (ms) of markers committed in [since, until), and how many of them have not arrived."""
        with self._lock:
            chosen = [m for m, t in self.committed.items() if since <= t < until]
            lags = [(self.seen[m] - self.committed[m]) * 1000 for m in chosen if m in self.seen]
            return lags, len(chosen) - len(lags)

    def slowest(self, since: float, until: float, count: int = 10) -> list[tuple[float, float]]:
        """The ``count`` slowest arrived markers committed in [since, until): (s after ``since``, lag ms)."""
        with self._lock:
            lags = [
                (round(t - since, 2), round((self.seen[m] - t) * 1000, 1))
                for m, t in self.committed.items()
                if since <= t < until and m in self.seen
            ]
        return sorted(lags, key=lambda pair: pair[1], reverse=True)[:count]

    def commit_round_trips_ms(self) -> list[float]:
        with self._lock:
            return [(self.committed[m] - self.sent[m]) * 1000 for m in self.committed]


def _serve(conn: Any, endpoint: Endpoint, table: str, seed: int) -> None:
    """The load process: runs OrdersLoad commands sent over a pipe until the pipe closes."""
    import dataclasses
    import signal
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and closes the pipe
    load = OrdersLoad(endpoint, table, seed=seed)
    try:
        while True:
            try:
                command, *args = conn.recv()
            except (EOFError, OSError):
                return
            if command not in ("paced", "backlog"):
                return
            try:
                run = load.run_paced(*args) if command == "paced" else load.write_backlog(*args)
                reply = ("ok", dataclasses.asdict(run), load.total_changes)
            except Exception:
                reply = ("error", traceback.format_exc(), load.total_changes)
            try:
                conn.send(reply)
            except OSError:  # the parent is gone or stopped listening (Ctrl-C): nothing left to do
                return
    finally:
        load.close()


class LoadProcess:
    """OrdersLoad in its own process, so the writer never competes for the GIL of the process that
    runs the Worker-Sync supervisor loop and the probe (on two cores it still competes for CPU)."""

    def __init__(self, endpoint: Endpoint, table: str, *, seed: int = 7) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, endpoint, table, seed), name=f"load-{table}", daemon=True
        )
        self._process.start()
        child.close()
        self.total_changes = 0

    def _call(self, *command: Any) -> PacedRun:
        self._conn.send(command)
        status, payload, self.total_changes = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the load process failed:\n{payload}")
        return PacedRun(**payload)

    def run_paced(self, rate: float, duration_s: float) -> PacedRun:
        return self._call("paced", rate, duration_s)

    def write_backlog(self, changes: int) -> PacedRun:
        return self._call("backlog", changes)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("close",))
        self._conn.close()
        self._process.join(timeout=5)  # longer only when interrupted mid-run: then it is killed
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
