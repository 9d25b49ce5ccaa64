"""The streaming replication protocol over psycopg's libpq binding.

Why streaming and not SQL polling: ``pg_logical_slot_get_changes`` advances the slot as it
reads, before anything is applied downstream, and ``peek`` re-decodes the whole unconfirmed
backlog on every poll. ``START_REPLICATION`` pushes each change as it is decoded (no polling
delay in the lag budget) and lets us confirm exactly the LSN that downstream has committed, in
standby status updates. psycopg 3 has no replication API, but its ``pq`` layer exposes the
COPY BOTH calls we need (FACTS.md).
"""

from __future__ import annotations

import logging
import select
import struct
import time

import psycopg
from psycopg import pq
from psycopg.conninfo import make_conninfo
from psycopg.pq import abc as pq_abc

from actors.core.errors import OffsetLost, SourceUnavailable
from actors.engines.postgresql.lsn import format_lsn

log = logging.getLogger(__name__)

# Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
_PG_EPOCH_US = 946_684_800_000_000
_XLOG_HEADER = struct.Struct("!QQQ")
_KEEPALIVE = struct.Struct("!QQB")
_STATUS = struct.Struct("!cQQQQB")
FEEDBACK_INTERVAL_S = 1.0
#: The walsender writes values with its session's output settings (pgoutput sends every value as text, wal2json
#: dates and times): the ones the snapshot's text reads and the converters expect, whatever the server's defaults.
SESSION_OPTIONS = "-c datestyle=ISO,MDY -c timezone=UTC -c intervalstyle=postgres -c bytea_output=hex"


def _text(message: str | bytes) -> str:
    # psycopg's pq returns str from some calls and bytes from others, by version.
    return (message.decode(errors="replace") if isinstance(message, bytes) else message).strip()


def _now_pg_us() -> int:
    return int(time.time() * 1_000_000) - _PG_EPOCH_US


class ReplicationStream:
    """One logical replication connection streaming one slot."""

    def __init__(self, conninfo: str, *, stream: str) -> None:
        self.stream = stream
        params = make_conninfo(conninfo, replication="database", options=SESSION_OPTIONS)
        self._conn = pq.PGconn.connect(params.encode())
        if self._conn.status != pq.ConnStatus.OK:
            message = _text(self._conn.get_error_message())
            self._conn.finish()
            raise SourceUnavailable(f"postgresql stream `{stream}`: cannot open a replication connection: {message}")
        self._flush_lsn = 0
        #: The newest WAL position of any change this connection delivered (not necessarily committed yet).
        self._received_lsn = 0
        self._last_feedback = 0.0

    def command(self, sql: str) -> list[tuple[str | None, ...]]:
        """Run a replication command (CREATE_REPLICATION_SLOT, IDENTIFY_SYSTEM) and return its rows."""
        result = self._conn.exec_(sql.encode())
        if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            raise self._error(result, sql.split()[0])
        rows = []
        for row in range(result.ntuples):
            values = []
            for col in range(result.nfields):
                value = result.get_value(row, col)
                values.append(None if value is None else value.decode())
            rows.append(tuple(values))
        return rows

    def start(self, slot: str, start_lsn: int, options: dict[str, str]) -> None:
        opts = ", ".join(f"\"{key}\" '{value}'" for key, value in options.items())
        sql = f'START_REPLICATION SLOT "{slot}" LOGICAL {format_lsn(start_lsn)} ({opts})'
        self._conn.send_query(sql.encode())
        result = self._conn.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_BOTH:
            raise self._error(result, "START_REPLICATION", slot=slot)
        self._conn.nonblocking = 1
        self._flush_lsn = start_lsn
        log.info("postgresql stream %s: streaming slot %s from %s", self.stream, slot, format_lsn(start_lsn))

    def _error(self, result: pq_abc.PGresult | None, what: str, slot: str | None = None) -> Exception:
        message = _text(result.get_error_message() if result is not None else self._conn.get_error_message())
        sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE) if result is not None else None
        if slot and sqlstate == b"42704":
            return OffsetLost(
                f"postgresql stream `{self.stream}`: replication slot `{slot}` does not exist ({message}); "
                "changes since the last committed position are gone - re-snapshot the tables "
                "(remove the stream's committed offset and restart, or run `worker-sync sync --manual --stream NAME`)"
            )
        return SourceUnavailable(f"postgresql stream `{self.stream}`: {what} failed: {message}")

    def confirm(self, lsn: int) -> None:
        """Downstream has committed everything up to ``lsn``: the slot may release it (sent soon)."""
        self._flush_lsn = max(self._flush_lsn, lsn)

    def _caught_up(self, server_sent_lsn: int) -> None:
        """With every change delivered so far committed downstream, nothing up to what the server has sent
        is pending here: confirm all of it. A walsender shutting down (``pg_ctl stop -m fast``) waits until
        its client confirms everything it sent; confirming only the last committed change would hold the
        server in "shutting down" for as long as this connection lives. The WAL after the last change held
        nothing for this slot's tables (or the server would have sent it first), and a transaction still
        open on the server is decoded at its commit, past this position, whatever is confirmed now."""
        if self._flush_lsn >= self._received_lsn:
            self._flush_lsn = max(self._flush_lsn, server_sent_lsn)

    def _send_feedback(self, reply: bool = False) -> None:
        lsn = self._flush_lsn
        message = _STATUS.pack(b"r", lsn, lsn, lsn, _now_pg_us(), 1 if reply else 0)
        try:
            sent = self._conn.put_copy_data(message) == 1 and self._conn.flush() >= 0
        except psycopg.Error as exc:  # the server ended the stream (a shutdown) or the connection broke
            raise self._lost(exc) from None
        if not sent:
            raise self._lost(None)
        self._last_feedback = time.monotonic()

    def _lost(self, exc: BaseException | None) -> SourceUnavailable:
        detail = f": {_text(str(exc))}" if exc is not None else ""
        return SourceUnavailable(f"postgresql stream `{self.stream}`: lost the replication connection{detail}")

    def read(self, timeout_s: float) -> tuple[int, bytes] | None:
        """The next XLogData message as (wal start, payload), or None after ``timeout_s``.

        Answers keepalives and sends our flush position at least every FEEDBACK_INTERVAL_S.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() - self._last_feedback >= FEEDBACK_INTERVAL_S:
                self._send_feedback()
            size, data = self._copy_data()
            if size == 0:
                self._consume()  # pull what the socket already holds, without waiting
                size, data = self._copy_data()
            if size == 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                select.select([self._conn.socket], [], [], min(remaining, FEEDBACK_INTERVAL_S))
                continue
            if size < 0:
                result = self._conn.get_result()
                raise self._error(result, "streaming")
            payload = bytes(data)
            kind = payload[:1]
            if kind == b"w":
                wal_start, _, _ = _XLOG_HEADER.unpack_from(payload, 1)
                self._received_lsn = max(self._received_lsn, wal_start)
                return wal_start, payload[25:]
            if kind == b"k":
                server_sent, _, reply = _KEEPALIVE.unpack_from(payload, 1)
                self._caught_up(server_sent)
                if reply:
                    self._send_feedback()

    def _copy_data(self) -> tuple[int, memoryview | bytes]:
        try:
            return self._conn.get_copy_data(1)
        except psycopg.Error as exc:
            raise self._lost(exc) from None

    def _consume(self) -> None:
        try:
            self._conn.consume_input()
        except psycopg.Error as exc:
            raise self._lost(exc) from None

    def close(self) -> None:
        try:
            if self._conn.status == pq.ConnStatus.OK and self._flush_lsn:
                self._send_feedback()
        except SourceUnavailable:
            pass
        finally:
            self._conn.finish()
