"""The capture actor: one per source stream, a thin Ray shell around an engine's ChangeSource.

It keeps no state that matters: the supervisor owns the committed positions (it persists them)
and passes the committed one with every ``poll()``. A fresh actor — new, or restarted by Ray
after a crash (``max_restarts=-1``) — starts reading from that position on its first poll, on
whatever node Ray put it. Downstream pulls batches (back-pressure: nothing is read ahead beyond
the pump's bounded buffer) and also passes the last position it received, so events a restarted
actor reads again are not delivered twice.
"""

from __future__ import annotations

import logging
import os
import time

import msgspec
import ray

from actors.core.encoding import encode_batch
from actors.core.events import Position
from actors.core.streams import StreamSpec
from actors.engines.pump import BatchPump
from actors.engines.registry import build_source

log = logging.getLogger(__name__)


class CaptureStats(msgspec.Struct, frozen=True, kw_only=True):
    stream: str
    pid: int
    committed: str | None
    delivered: str | None
    events_delivered: int
    buffered: int
    newest_commit_time_us: int
    started_at: float


@ray.remote(max_restarts=-1, max_task_retries=3, num_cpus=0)
class CaptureActor:
    def __init__(self, spec: StreamSpec, max_buffered: int = 20_000) -> None:
        self.spec = spec
        self.max_buffered = max_buffered
        self.pump: BatchPump | None = None
        self.committed: Position | None = None
        self.delivered: Position | None = None
        self.events_delivered = 0
        self.newest_commit_time_us = 0
        self.started_at = time.time()

    def poll(
        self, max_events: int, timeout_s: float, after: Position | None = None, committed: Position | None = None
    ) -> bytes | None:
        """The next batch (msgpack, see actors.core.encoding), skipping what the caller already has.

        ``committed`` is where the stream resumes if this actor has not started reading yet.
        """
        if self.pump is None:
            self.committed = committed
            self.pump = BatchPump(build_source(self.spec), resume_after=committed, max_buffered=self.max_buffered)
            log.info("capture %s: reading, resuming after %s", self.spec.stream, committed)
        try:
            batch = self.pump.read(max_events, timeout_s)
        except Exception:
            # The reader stopped (e.g. the slot was still held by our crashed predecessor): drop it,
            # so the next poll starts a fresh one from the committed position the supervisor passes.
            self.pump.close()
            self.pump = None
            raise
        if batch is None:
            return None
        if after is not None and batch.upto is not None and batch.upto <= after:
            return None
        if after is not None and batch.events and batch.events[0].position <= after:
            batch = msgspec.structs.replace(batch, events=[e for e in batch.events if e.position > after])
        self.delivered = batch.upto or self.delivered
        self.events_delivered += len(batch.events)
        self.newest_commit_time_us = max(self.newest_commit_time_us, batch.newest_commit_time_us)
        return encode_batch(batch)

    def commit(self, position: Position) -> None:
        """Everything up to ``position`` is applied, audited and persisted: the source may release it."""
        if self.pump is None or (self.committed is not None and position <= self.committed):
            return
        self.committed = position
        self.pump.source.acknowledge(position)

    def stats(self) -> CaptureStats:
        return CaptureStats(
            stream=self.spec.stream,
            pid=os.getpid(),
            committed=None if self.committed is None else str(self.committed),
            delivered=None if self.delivered is None else str(self.delivered),
            events_delivered=self.events_delivered,
            buffered=0 if self.pump is None else self.pump.buffered,
            newest_commit_time_us=self.newest_commit_time_us,
            started_at=self.started_at,
        )

    def close(self) -> None:
        if self.pump is not None:
            self.pump.close()
