"""Which positions of a stream may be committed: the low-water mark over batches in flight.

A batch is split across applier shards; it is done when every shard has applied its part.
Batches finish out of order, but a position may be committed only when every batch up to it
is done, or a crash would skip the unfinished ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from actors.core.events import Position


@dataclass
class _InFlight:
    upto: Position | None
    pending_parts: int
    events: int
    oldest_commit_time_us: int
    received_at: float = field(default_factory=time.monotonic)


class StreamProgress:
    """Tracks one stream's batches from the moment they are received until they are committed."""

    def __init__(self, committed: Position | None = None) -> None:
        self.committed = committed
        self._batches: dict[int, _InFlight] = {}
        self._order: list[int] = []  # batch seqs in receive order
        self.applied_events = 0

    def received(self, seq: int, upto: Position | None, parts: int, events: int, oldest_commit_time_us: int) -> None:
        self._batches[seq] = _InFlight(upto, parts, events, oldest_commit_time_us)
        self._order.append(seq)
        if parts == 0:
            self.applied_events += events

    def part_done(self, seq: int) -> bool:
        """One shard applied its part of batch ``seq``; True when that completes the batch."""
        batch = self._batches[seq]
        batch.pending_parts -= 1
        if batch.pending_parts == 0:
            self.applied_events += batch.events
            return True
        return False

    def committable(self) -> Position | None:
        """The newest position whose batches, and all before them, are done; None if nothing new.
        Done batches up to it are forgotten."""
        newest = None
        while self._order and self._batches[self._order[0]].pending_parts <= 0:
            batch = self._batches.pop(self._order.pop(0))
            if batch.upto is not None:
                newest = batch.upto
        if newest is not None and (self.committed is None or newest > self.committed):
            self.committed = newest
            return newest
        return None

    @property
    def in_flight(self) -> int:
        return len(self._order)

    def oldest_pending_commit_time_us(self) -> int | None:
        """Source commit time of the oldest change not yet applied everywhere (for lag)."""
        # 0: no commit time to measure from (a batch of echoes only, see the supervisor).
        pending = (b for b in self._batches.values() if b.pending_parts > 0)
        times = [b.oldest_commit_time_us for b in pending if b.oldest_commit_time_us]
        return min(times) if times else None
