"""What every capture engine provides, whatever its database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from actors.core.batches import TxnEnd
from actors.core.events import ChangeEvent, Position

Change = ChangeEvent | TxnEnd | None


class ChangeSource(Protocol):
    """A database's change log as a stream of events in commit order.

    ``changes(resume_after)`` yields events (and a :class:`TxnEnd` after each transaction):
    an initial snapshot first when ``resume_after`` is None or a snapshot position, then the
    log from where ``resume_after.resume`` says. It may repeat events at or before
    ``resume_after`` (the caller drops them by position) but must never skip one. It yields
    None when it has nothing to send for now (at least every second or so): the consumer hands
    on what it holds then, and checks whether it should stop.
    """

    stream: str

    def changes(self, resume_after: Position | None, stop: threading.Event) -> Iterator[Change]: ...

    def acknowledge(self, upto: Position) -> None:
        """Everything up to ``upto`` is applied downstream: the source may release it.

        Called from another thread than the one iterating ``changes``.
        """

    def close(self) -> None: ...
