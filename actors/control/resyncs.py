"""Manual re-syncs (`worker-sync sync --manual`): re-read a stream's tables from a fresh snapshot."""

from __future__ import annotations

import logging
import threading

import msgspec

from actors.control.audit_feed import AuditFeed
from actors.control.calls import kill
from actors.control.streams import Streams
from actors.core.progress import StreamProgress

log = logging.getLogger("worker_sync.supervisor")


class Resyncs:
    """Re-syncs asked for (from the HTTP thread) and carried out by the loop."""

    def __init__(self, streams: Streams, audit: AuditFeed | None, run_id: str) -> None:
        self._streams = streams
        self._audit = audit
        self._run_id = run_id
        self._requested: set[str] = set()
        self._lock = threading.Lock()
        self.done = 0

    def request(self, stream: str) -> dict[str, object]:
        """Re-read every table of ``stream`` from a fresh consistent snapshot and apply it, then stream on.
        Also the way out of a stream stopped on an error such as a lost position. KeyError for an unknown
        stream."""
        state = self._streams.states[stream]
        with self._lock:
            self._requested.add(stream)
        return {"stream": stream, "state": "requested", "tables": state.spec.tables}

    def advance(self) -> None:
        """Stop polling a stream to re-sync; once everything it sent is applied and committed, replace its
        capture actor with one that first re-reads every table from a fresh snapshot, positioned right
        after the committed position, then streams on from that position: changes made meanwhile, deletes
        included, are replayed after the snapshot rows, so none is lost. A stream without a position (its
        initial snapshot never finished) or one stopped on a lost position starts over from a snapshot."""
        with self._lock:
            requested, self._requested = self._requested, set()
        states = self._streams.states
        for name in requested:
            states[name].resync = True
        for name, state in states.items():
            if not state.resync or state.polling or state.progress.in_flight:
                continue
            if state.progress.committed != state.last_received:
                continue  # the last commit is on its way
            kill(state.actor)
            after = state.progress.committed
            if state.error is not None or after is None or not after.resume:
                self._streams.offsets.forget(name)  # nothing to resume from: a snapshot like the first one
                applied = state.progress.applied_events
                state.progress = StreamProgress(None)
                state.progress.applied_events = applied
                state.last_received = after = None
            state.error, state.resync, state.resync_after = None, False, after
            state.generation += 1
            spec = msgspec.structs.replace(state.spec, resnapshot=after is not None)
            state.actor = self._streams.new_capture(spec, state.generation)
            state.backoff.succeeded()
            self.done += 1
            log.info("stream %s: manual re-sync: re-reading %s from a fresh snapshot", name, state.spec.tables)
            if self._audit is not None:
                detail: dict[str, object] = {"stream": name, "tables": list(state.spec.tables)}
                self._audit.admin("manual-sync", detail, f"resync:{self._run_id}:{self.done}")
