"""What a capture stream hands downstream: batches of events and the position they cover."""

from __future__ import annotations

import msgspec

from actors.core.events import ChangeEvent, Position


class TxnEnd(msgspec.Struct, frozen=True, array_like=True):
    """A source transaction ended here: every event before it is complete.

    Engines emit one after the last event of each transaction so that a batch boundary can
    say "resume from here" without splitting a transaction's restart point.
    """

    position: Position
    txid: str
    commit_time_us: int


class Batch(msgspec.Struct, frozen=True, array_like=True):
    """Consecutive events of one stream, in stream order.

    ``upto`` is the position of the last item (event or transaction end) the batch covers;
    once everything in it is applied and audited, committing ``upto`` lets the source forget it.
    An empty batch may still advance ``upto`` (a transaction on tables nobody captures).
    """

    stream: str
    seq: int
    events: list[ChangeEvent]
    upto: Position | None
    #: True while the events come from the initial snapshot.
    snapshot: bool = False
    #: Source commit time (µs) of the newest transaction in the batch, for lag.
    newest_commit_time_us: int = 0
