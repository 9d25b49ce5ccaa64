"""A steady mixed write load (60 % insert, 30 % update, 10 % delete) for the demo and smoke tests."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

# One table shape, two dialects: the demo creates it on both engines (as source and as target).
DDL = {
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY, customer varchar(64) NOT NULL, "
        "qty integer NOT NULL, price numeric(12,2) NOT NULL, status varchar(16) NOT NULL, "
        "updated_at timestamp(6) NOT NULL DEFAULT now())"
    ),
    "mariadb": (
        "CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY, customer varchar(64) NOT NULL, "
        "qty int NOT NULL, price decimal(12,2) NOT NULL, status varchar(16) NOT NULL, "
        "updated_at datetime(6) NOT NULL DEFAULT current_timestamp(6))"
    ),
}
_STATUSES = ("new", "paid", "shipped", "returned")


class MixedWorkload:
    """Writes transactions of ``txn_size`` changes at about ``rate`` changes/s until stopped.

    ``connect`` returns a DB-API connection with autocommit off; ``placeholder`` is the
    driver's parameter marker (``%s`` for both psycopg and PyMySQL).
    """

    def __init__(
        self,
        engine: str,
        table: str,
        connect: Callable[[], Any],
        *,
        rate: float,
        txn_size: int = 20,
        seed: int = 7,
        first_id: int = 1,
        shared: Sequence[int] = (),
    ):
        """``first_id``: where this writer's new keys start (writers of one bidirectional table use disjoint
        ranges); ``shared``: existing keys every writer also updates (one update in five), so writers on
        two nodes change the same rows at nearly the same time."""
        self.engine = engine
        self.table = table
        self.connect = connect
        self.rate = rate
        self.txn_size = txn_size
        self.rng = random.Random(seed)
        self.live: list[int] = []
        self.next_id = first_id
        self.shared = list(shared)
        self.changes = 0
        #: Transactions rolled back after a deadlock and written anew.
        self.retries = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"workload-{engine}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            conn = self.connect()
            try:
                self._loop(conn)
            finally:
                conn.close()
        except BaseException as exc:  # reported by the demo, which decides what to do
            self.error = exc

    def _loop(self, conn: Any) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = started + self.changes / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
                continue
            live, next_id = list(self.live), self.next_id
            try:
                cursor = conn.cursor()
                for _ in range(self.txn_size):
                    self._one_change(cursor)
                conn.commit()
            except Exception as exc:
                if not _deadlock(exc):
                    raise
                # Another writer (Worker-Sync applying the other node's changes to the same rows, say) won
                # the lock race: as an application would, roll back and write a new transaction.
                conn.rollback()
                self.live, self.next_id = live, next_id
                self.retries += 1
                continue
            self.changes += self.txn_size

    def _one_change(self, cursor: Any) -> None:
        roll = self.rng.random()
        if roll < 0.6 or len(self.live) < 50:
            key = self.next_id
            self.next_id += 1
            self.live.append(key)
            cursor.execute(
                f"INSERT INTO {self.table} (id, customer, qty, price, status) VALUES (%s, %s, %s, %s, %s)",
                (
                    key,
                    f"customer-{self.rng.randrange(1000)}",
                    self.rng.randrange(1, 10),
                    f"{self.rng.randrange(100, 100000) / 100:.2f}",
                    "new",
                ),
            )
        elif roll < 0.9:
            keys = self.shared if self.shared and self.rng.random() < 0.2 else self.live
            cursor.execute(
                f"UPDATE {self.table} SET qty = qty + 1, status = %s WHERE id = %s",
                (self.rng.choice(_STATUSES), self.rng.choice(keys)),
            )
        else:
            key = self.live.pop(self.rng.randrange(len(self.live)))
            cursor.execute(f"DELETE FROM {self.table} WHERE id = %s", (key,))


def _deadlock(exc: BaseException) -> bool:
    """A deadlock or lock timeout (MariaDB 1213/1205, PostgreSQL 40P01/40001): the transaction may be retried."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return code in (1205, 1213) or getattr(exc, "sqlstate", None) in ("40P01", "40001")
