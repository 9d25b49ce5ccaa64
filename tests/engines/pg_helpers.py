"""Helpers for PostgreSQL capture tests: sources bound to a harness database, and draining a pump."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from psycopg import sql
from psycopg.conninfo import make_conninfo

from actors.core.batches import Batch
from actors.core.events import ChangeEvent, Position
from actors.engines.postgresql import PostgresSource
from actors.engines.pump import BatchPump
from actors.harness import Endpoint


def capture_conninfo(db: Endpoint) -> str:
    return make_conninfo(
        host=db.host, port=db.port, user=db.capture.user, password=db.capture.password, dbname=db.database
    )


#: The decoder `pg_source` uses unless told; tests run with both set it (see `both_decoders`).
DECODERS = ("wal2json", "pgoutput")
default_decoder = "wal2json"


def pg_source(db: Endpoint, tables: list[str], **kwargs: Any) -> PostgresSource:
    """A source on ``db`` as its least-privilege capture user. With pgoutput, the database's superuser first
    publishes every table (as a DBA would for a capture user that owns none)."""
    slot = f"ws_{db.database}"[:63]
    kwargs.setdefault("decoder", default_decoder)
    if kwargs["decoder"] == "pgoutput":
        publish_all_tables(db, slot)
    return PostgresSource(
        stream=f"pg-{db.database}", node="pg", conninfo=capture_conninfo(db), slot=slot, tables=tables, **kwargs
    )


def publish_all_tables(db: Endpoint, name: str) -> None:
    with db.connect("admin") as conn:
        if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(name)))


class Drain:
    """Reads a pump into lists and acknowledges what it read, like a consumer that applies at once."""

    def __init__(self, pump: BatchPump, *, ack: bool = True) -> None:
        self.pump = pump
        self.ack = ack
        self.events: list[ChangeEvent] = []
        self.batches: list[Batch] = []
        self.upto: Position | None = None

    def until(self, done: Callable[[list[ChangeEvent]], bool], *, timeout_s: float, what: str) -> list[ChangeEvent]:
        deadline = time.monotonic() + timeout_s
        while not done(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; got {len(self.events)} events")
            batch = self.pump.read(2_000, 0.2)
            if batch is None:
                continue
            self.batches.append(batch)
            self.events.extend(batch.events)
            if batch.upto is not None:
                self.upto = batch.upto
                if self.ack:
                    self.pump.source.acknowledge(batch.upto)
        return self.events

    def count(self, n: int, *, timeout_s: float = 30.0) -> list[ChangeEvent]:
        return self.until(lambda events: len(events) >= n, timeout_s=timeout_s, what=f"{n} events")
