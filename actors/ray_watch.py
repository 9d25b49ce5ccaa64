"""Notices quickly when Ray itself is gone, which Ray's own client takes a minute to admit.

When the Ray node (or the cluster's GCS) dies under the supervisor, calls to actors fail as "temporarily
unavailable" and a call that needs the GCS blocks for up to 60 s before Ray aborts the process with no word
of ours. This thread knocks on the GCS's port every second instead: after a few refusals it reports Ray
lost (``/healthz`` goes red at once) and, if the supervisor loop has not ended by itself shortly after,
ends the process with the documented exit code and one clear log line, so that what restarts the
supervisor (the chart) can.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("worker_sync.supervisor")

#: Seconds between knocks, refusals in a row that mean "gone", and the grace before exiting.
KNOCK_EVERY_S = 1.0
REFUSALS = 3
GRACE_S = 10.0
EXIT_UNAVAILABLE = 3


class GcsWatch:
    def __init__(self, gcs_address: str, on_lost: Callable[[str], None]) -> None:
        host, _, port = gcs_address.rpartition(":")
        self._where = (host, int(port))
        self._on_lost = on_lost
        self._stop = threading.Event()
        #: The supervisor logged the loss itself (its loop ended on it): exit without a second line.
        self.announced = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gcs-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _reachable(self) -> bool:
        try:
            with socket.create_connection(self._where, timeout=KNOCK_EVERY_S):
                return True
        except OSError:
            return False

    def _run(self) -> None:
        refused = 0
        while not self._stop.wait(KNOCK_EVERY_S):
            refused = 0 if self._reachable() else refused + 1
            if refused < REFUSALS:
                continue
            reason = f"cannot reach Ray: its GCS at {self._where[0]}:{self._where[1]} refuses connections"
            self._on_lost(reason)
            if self._stop.wait(GRACE_S):
                return
            if not self.announced.is_set():
                log.error("supervisor stopped: %s", reason)
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stdout.flush()
            os._exit(EXIT_UNAVAILABLE)  # a call into Ray is stuck, or Ray's exit hooks wait for its GCS
