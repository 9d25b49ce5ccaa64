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
    #: When the capture read the batch's first event from the source (µs since the epoch). Lag
    #: estimates use it where the source's commit times are coarse (see commit_time_resolution_us).
    read_at_us: int = 0


#: How precise each engine's commit times are: the binlog stores whole seconds.
COMMIT_TIME_RESOLUTION_US = {"mariadb": 1_000_000, "mysql": 1_000_000}


def lag_reference_us(engine: str, commit_time_us: int, read_at_us: int) -> int:
    """The best estimate of when a change was committed, for lag.

    With second-resolution commit times, a change read less than a second after its truncated
    commit time was committed at most a few milliseconds before it was read (capture keeps up),
    so the read time is the better estimate; otherwise the commit time is (and errs by < 1 s).
    """
    resolution = COMMIT_TIME_RESOLUTION_US.get(engine, 1)
    if resolution > 1 and 0 <= read_at_us - commit_time_us < resolution:
        return read_at_us
    return commit_time_us
