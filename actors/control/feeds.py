"""A feed: the queue of parts one actor (an applier shard, the audit actor) applies, one call at a time.

One call at a time keeps a shard's parts in order, also after a failure: the failed call's parts go again
as they were. While a call runs, new parts queue up; the next call takes them all (up to a limit), so
under load one call, and one target transaction, carries many batches.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from actors.control.backoff import Backoff
from actors.control.calls import Reply

#: Ray restarts a crashed actor by itself (max_restarts=-1); when calls to it keep failing this many times
#: in a row (its node is gone, say), the supervisor creates a new one.
RECREATE_AFTER_FAILURES = 5

if TYPE_CHECKING:
    from ray import ObjectRef

_H = TypeVar("_H")


@dataclass(frozen=True)
class BatchPart:
    """One captured batch's slice for this feed, as the capture actor put it in the object store."""

    stream: str
    seq: int
    #: The stream's epoch when it was captured: a part of an earlier epoch is stale (see Streams.rewind).
    epoch: int
    payload: ObjectRef[bytes]
    events: int


@dataclass(frozen=True)
class ResolutionPart:
    """A parked conflict's resolution: one change the supervisor made itself (see actors/control/conflicts.py)."""

    conflict: str
    payload: bytes
    events: int = 1


Part = BatchPart | ResolutionPart


@dataclass
class Feed(Generic[_H]):
    """An actor fed parts, and what it is doing with them."""

    index: int
    actor: _H
    backoff: Backoff
    queue: deque[Part] = field(default_factory=deque)
    #: Parts of the call under way (sent again as they are if it fails).
    sending: list[Part] = field(default_factory=list)
    busy: bool = False
    applied_calls: int = 0
    error: str | None = None
    #: Calls to the actor that failed because its process is gone, in a row.
    actor_failures: int = 0
    #: Actors created anew for this feed so far (a fresh name each: the dead one's may not be released yet).
    generation: int = 0

    def actor_failed(self, reply: Reply[Any]) -> bool:
        """Count a failed call; True when the actor should be replaced by a new one."""
        self.actor_failures = self.actor_failures + 1 if reply.actor_died else 0
        return reply.actor_stranded or self.actor_failures >= RECREATE_AFTER_FAILURES

    def next_call(self, limit: int) -> list[Part]:
        """The parts of the next call, up to ``limit`` events (at least one part); a call that failed goes
        again as it was. Empty when there is nothing to send or a call is under way."""
        if self.busy or not self.backoff.ready:
            return []
        if not self.sending:
            events = 0
            while self.queue and (not self.sending or events + self.queue[0].events <= limit):
                part = self.queue.popleft()
                self.sending.append(part)
                events += part.events
        return self.sending

    def drop_stream(self, stream: str) -> None:
        """Forget the queued parts of a rewound stream (its capture reads them again)."""
        self.queue = deque(p for p in self.queue if not (isinstance(p, BatchPart) and p.stream == stream))

    @property
    def idle(self) -> bool:
        return not (self.queue or self.sending)
