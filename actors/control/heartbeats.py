"""The heartbeat writer: a heartbeat row at each source node that asks for one (``heartbeat_interval_s``).

A MariaDB/MySQL source with no writes at all never moves a stream's committed position out of a rotated
binlog file, which then stays needed until it expires (actors/engines/mariadb/heartbeat.py). A daemon thread
of the supervisor writes each such node's heartbeat on a connection of its own, never on the loop; a failed
beat is logged (the table is missing: run `worker-sync init`) and tried again at the next interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from actors.core.streams import StreamSpec
from actors.engines.registry import driver_errors, engine_for

log = logging.getLogger("worker_sync.supervisor")


class HeartbeatWriter:
    """Writes the heartbeats of the streams whose source node sets ``heartbeat_interval_s``."""

    def __init__(self, specs: Iterable[StreamSpec]) -> None:
        self._specs = [s for s in specs if getattr(s.node, "heartbeat_interval_s", None)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)
        #: Heartbeats written per stream (for /status-free checks in tests and logs).
        self.written: dict[str, int] = {s.stream: 0 for s in self._specs}

    def start(self) -> None:
        if self._specs:
            log.info("heartbeats: written for stream(s) %s", ", ".join(s.stream for s in self._specs))
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        due = {s.stream: 0.0 for s in self._specs}
        while not self._stop.is_set():
            now = time.monotonic()
            for spec in self._specs:
                if now >= due[spec.stream]:
                    due[spec.stream] = now + float(spec.node.heartbeat_interval_s or 0)  # type: ignore[union-attr]
                    self.beat(spec)
            self._stop.wait(max(0.05, min(due.values()) - time.monotonic()))

    def beat(self, spec: StreamSpec) -> bool:
        """Write one heartbeat for ``spec``'s node now; False (logged) when the node refuses or is down."""
        try:
            with driver_errors():
                engine_for(spec.node).heartbeat(spec.node_name, spec.node)
        except Exception as exc:  # down, or the table is missing: the stream reports a down source itself
            where = engine_for(spec.node).heartbeat_namespace(spec.node)
            log.warning(
                "stream %s: heartbeat into `%s` failed (create it with `worker-sync init`): %s",
                spec.stream,
                where,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            )
            return False
        self.written[spec.stream] += 1
        return True
