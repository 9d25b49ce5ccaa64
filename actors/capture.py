"""The capture actor: one per source stream, a thin Ray shell around an engine's ChangeSource.

It reads a batch, splits it with the routing plan (actors.core.plan), encodes each event once and puts
each shard's slice, and the audited part, into Ray's object store itself. The supervisor receives only a
small :class:`Captured` (sizes, positions, references) and hands the references on to the shards and the
audit actor: event data goes from this actor's node to theirs, never through the supervisor.

It keeps no state that matters: the supervisor owns the committed positions (it persists them) and
passes the committed one with every ``poll()``. A fresh actor, new or restarted by Ray after a crash
(``max_restarts=-1``), starts reading from that position on its first poll, on whatever node Ray put it.
The objects it put die with it; the supervisor then *rewinds* the stream (a new ``epoch``): it drops what
it had in flight from it and reads again from the committed position. Downstream pulls batches
(back-pressure: nothing is read ahead beyond the pump's bounded buffer) and passes the last position it
received, so events a restarted actor reads again are not delivered twice.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import msgspec
import ray
from ray import ObjectRef

from actors.core.batches import Batch, lag_reference_us
from actors.core.encoding import encode_batch_of, encode_events
from actors.core.events import ChangeEvent, Position
from actors.core.plan import RoutingPlan, Split
from actors.core.streams import StreamSpec
from actors.engines.pump import BatchPump
from actors.engines.registry import build_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slice:
    """An encoded batch (actors.core.encoding) in the object store, and how many events it holds."""

    payload: ObjectRef[bytes]
    events: int


@dataclass(frozen=True)
class Captured:
    """What the supervisor learns of one batch: enough to route, track and commit it, no event data."""

    seq: int
    #: The stream position the batch covers (commit it once every slice is applied and audited).
    upto: Position | None
    #: Events read, echoes included.
    events: int
    #: shard -> its slice.
    slices: dict[int, Slice]
    #: The events the audit log records (None: none, or audit is off).
    audited: Slice | None
    #: Per audited event, its commit time as lag is measured from (actors.core.batches.lag_reference_us).
    commit_times_us: list[int]
    #: Echoes dropped, per bidirectional group.
    echoes: dict[str, int] = field(default_factory=dict)


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
    def __init__(self, spec: StreamSpec, plan: RoutingPlan, audit: bool, max_buffered: int = 20_000) -> None:
        self.spec = spec
        self.plan = plan.keyed()  # reads the masking key here: it never travels through Ray
        self.audit = audit
        self.max_buffered = max_buffered
        self.pump: BatchPump | None = None
        self.epoch: int | None = None
        self.committed: Position | None = None
        self.delivered: Position | None = None
        self.events_delivered = 0
        self.newest_commit_time_us = 0
        self.started_at = time.time()
        #: A TRUNCATE or added column the config says to stop at, after the changes before it were delivered.
        self.stopped: Exception | None = None

    def poll(
        self,
        max_events: int,
        timeout_s: float,
        after: Position | None,
        committed: Position | None,
        seq: int,
        epoch: int = 0,
    ) -> Captured | None:
        """The next batch, numbered ``seq``, skipping what the caller already has (``after``).

        ``committed`` is where the stream resumes if this actor has not started reading yet, or if the
        caller rewound the stream (a new ``epoch``: it lost slices this actor put, and reads again).
        """
        if self.pump is not None and epoch != self.epoch:
            log.info("capture %s: rewound (epoch %d): reading again after %s", self.spec.stream, epoch, committed)
            self.pump.close()
            self.pump = None
        if self.stopped is not None:
            raise self.stopped
        if self.pump is None:
            self.committed, self.epoch = committed, epoch
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
        return self._captured(msgspec.structs.replace(batch, seq=seq))

    def _captured(self, batch: Batch) -> Captured:
        split = self.plan.split(batch.events)
        if split.stopped is not None:  # deliver what came before it; the next poll stops the stream
            if not split.cut:
                raise split.stopped
            self.stopped = split.stopped
            batch = msgspec.structs.replace(
                batch, events=batch.events[: split.cut], upto=batch.events[split.cut - 1].position
            )
        # Each event is encoded once; slices and the audited part are assembled from those bytes.
        encoded: dict[int, msgspec.Raw] = {}
        slices: dict[int, Slice] = {}
        for shard, events in split.slices.items():
            slices[shard] = Slice(self._put(batch, events, encoded), len(events))
        audited = None
        if self.audit and split.own:
            audited = self._audited(batch, split, slices, encoded)
        return Captured(
            seq=batch.seq,
            upto=batch.upto,
            events=len(batch.events),
            slices=slices,
            audited=audited,
            commit_times_us=[lag_reference_us(e.engine, e.commit_time_us, batch.read_at_us) for e in split.own],
            echoes=split.echoes,
        )

    def _audited(self, batch: Batch, split: Split, slices: dict[int, Slice], encoded: dict[int, msgspec.Raw]) -> Slice:
        """The audited events; the very object of the only slice when that holds exactly them."""
        if len(slices) == 1:
            (only,) = split.slices.values()
            if len(only) == len(split.own) and all(a is b for a, b in zip(only, split.own, strict=True)):
                return next(iter(slices.values()))
        return Slice(self._put(batch, split.own, encoded), len(split.own))

    @staticmethod
    def _put(batch: Batch, events: list[ChangeEvent], encoded: dict[int, msgspec.Raw]) -> ObjectRef[bytes]:
        missing = [event for event in events if id(event) not in encoded]
        for event, raw in zip(missing, encode_events(missing), strict=True):
            encoded[id(event)] = raw
        return ray.put(encode_batch_of(batch, [encoded[id(event)] for event in events]))

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
