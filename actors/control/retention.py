"""The log-retention watch: every stream's source log, measured off the supervisor's loop.

A measurement opens a connection and runs a query or two (for MariaDB, a short binlog read): far too slow
for the loop, which turns every few milliseconds. So a daemon thread of its own measures each stream
every RETENTION_EVERY_S, from the stream's committed position (what the source must still keep), sets the
gauges and keeps the last figure for /status. A failed measurement is logged and leaves the last figure;
the stream itself never waits for it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import msgspec

from actors.control.streams import Streams, StreamState
from actors.core.retention import STATES, Retention
from actors.engines.registry import driver_errors, engine_for

log = logging.getLogger("worker_sync.supervisor")

#: How often each stream's source log is measured.
RETENTION_EVERY_S = 20.0
#: The first measurement waits this long: nothing needs it at once, and at start-up its driver import and
#: queries would take the GIL and a core from the actors' worker processes starting beside it.
FIRST_AFTER_S = 2.0


class RetentionWatch:
    """Measures every stream's source log in a thread; :meth:`latest` is read by the status board."""

    def __init__(
        self, streams: Streams, every_s: float = RETENTION_EVERY_S, first_after_s: float = FIRST_AFTER_S
    ) -> None:
        self._streams = streams
        self._every_s = every_s
        self._first_after_s = first_after_s
        self._latest: dict[str, Retention] = {}
        #: Per stream, the last (written_bytes, monotonic time): the source's write rate between two checks.
        self._written: dict[str, tuple[int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def latest(self, stream: str) -> Retention | None:
        return self._latest.get(stream)

    def _run(self) -> None:
        if self._stop.wait(self._first_after_s):
            return
        while not self._stop.is_set():
            for state in list(self._streams.states.values()):
                if self._stop.is_set():
                    return
                self.check(state)
            self._stop.wait(self._every_s)

    def check(self, state: StreamState) -> Retention | None:
        """Measure one stream now (the thread's step; tests call it directly)."""
        spec = state.spec
        try:
            with driver_errors():
                measured = engine_for(spec.node).retention(spec.node_name, spec.node, state.progress.committed)
        except Exception as exc:  # the source is down, say: the stream reports that itself; keep the last figure
            log.warning("stream %s: cannot measure its source log: %s", spec.stream, _first_line(exc))
            return None
        if measured is None:
            return None
        measured = self._with_rate(spec.stream, measured)
        self._latest[spec.stream] = measured
        _export(spec.stream, measured)
        return measured

    def _with_rate(self, stream: str, measured: Retention) -> Retention:
        """Headroom in bytes (PostgreSQL's safe_wal_size) as seconds, at the write rate since the last check."""
        now = time.monotonic()
        previous = self._written.get(stream)
        if measured.written_bytes is not None:
            self._written[stream] = (measured.written_bytes, now)
        if measured.headroom_seconds is not None or measured.headroom_bytes is None:
            return measured
        if previous is None or measured.written_bytes is None or now <= previous[1]:
            return measured
        rate = (measured.written_bytes - previous[0]) / (now - previous[1])
        if rate <= 0:  # nothing written: nothing eats the headroom
            return measured
        return msgspec.structs.replace(measured, headroom_seconds=measured.headroom_bytes / rate)


def _export(stream: str, measured: Retention) -> None:
    from actors.metrics import RETAINED_BYTES, RETENTION_HEADROOM, RETENTION_STATE

    RETAINED_BYTES.labels(stream).set(measured.retained_bytes)
    if measured.headroom_seconds is None:  # no limit (or none known): no series, so no headroom alert
        with contextlib.suppress(KeyError):  # never set for this stream
            RETENTION_HEADROOM.remove(stream)
    else:
        RETENTION_HEADROOM.labels(stream).set(measured.headroom_seconds)
    for state in STATES:
        RETENTION_STATE.labels(stream, state).set(1 if state == measured.state else 0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
