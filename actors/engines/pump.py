"""Turns any :class:`ChangeSource` into batches, with back-pressure.

A reader thread iterates the source into a bounded queue; ``read()`` drains it into a batch.
When downstream stops calling ``read()``, the queue fills and the reader blocks, so the engine
stops reading its log (the source database keeps the rest: slot, binlog, oplog).

Items cross the thread boundary in chunks (a queue hand-off per item costs more than decoding
the item): the reader hands a chunk on when it is full or when the source says it is idle.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from typing import Final

from actors.core.batches import Batch, TxnEnd
from actors.core.events import ChangeEvent, Op, Position
from actors.engines.base import ChangeSource


class _Done(enum.Enum):
    """The reader's last word on the queue (an enum member, so that `is _DONE` narrows)."""

    DONE = enum.auto()


_DONE: Final = _Done.DONE
CHUNK_ITEMS = 256

_Item = ChangeEvent | TxnEnd
#: What the queue carries (besides _DONE): a chunk of items, with the time its first item was read.
_Chunk = tuple[int, list[_Item]]


class BatchPump:
    def __init__(self, source: ChangeSource, *, resume_after: Position | None, max_buffered: int = 20_000) -> None:
        self.source = source
        self.stream = source.stream
        self._resume_after = resume_after
        # Events at or before a committed streaming position were applied already; a source may
        # resend them (it restarts at a transaction boundary) and we drop them here, by position.
        self._skip_upto = resume_after.order if resume_after is not None and resume_after.resume else None
        self._queue: queue.Queue[_Chunk | _Done] = queue.Queue(maxsize=max(1, max_buffered // CHUNK_ITEMS))
        self._pending: list[_Item] = []  # the consumer's side: items of a chunk not yet returned
        self._pending_read_at_us = 0  # when the reader read the first item of that chunk
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._seq = 0
        self.last_item_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.stream}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        chunk: list[_Item] = []
        read_at_us = 0
        try:
            for item in self.source.changes(self._resume_after, self._stop):
                if item is not None:
                    if self._skip_upto is not None and item.position.order <= self._skip_upto:
                        continue
                    if not chunk:
                        read_at_us = time.time_ns() // 1000
                    chunk.append(item)
                    if len(chunk) < CHUNK_ITEMS:
                        continue
                if chunk:
                    self._hand_on((read_at_us, chunk))
                    chunk = []
                if self._stop.is_set():
                    return
            if chunk:
                self._hand_on((read_at_us, chunk))
        except BaseException as exc:  # handed to the consumer, which decides
            if chunk:  # what was read before it is good: delivered first (a TRUNCATE stop keeps what precedes it)
                self._hand_on((read_at_us, chunk))
            self._error = exc
        finally:
            self._put_done()

    def _hand_on(self, chunk: _Chunk) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(chunk, timeout=0.2)
                return
            except queue.Full:
                continue

    def _put_done(self) -> None:
        while True:
            try:
                self._queue.put(_DONE, timeout=0.2)
                return
            except queue.Full:
                if self._stop.is_set():
                    return

    @property
    def buffered(self) -> int:
        """Items read from the source and not yet delivered (approximate)."""
        return self._queue.qsize() * CHUNK_ITEMS + len(self._pending)

    def _next(self, timeout_s: float | None) -> _Item | _Done:
        """The next item; raises queue.Empty after ``timeout_s`` (None: don't wait)."""
        if not self._pending:
            chunk = self._queue.get(timeout=timeout_s) if timeout_s is not None else self._queue.get_nowait()
            if chunk is _DONE:
                self._queue.put(_DONE)  # stays the last word for later reads
                return _DONE
            self._pending_read_at_us, self._pending = chunk
            self._pending.reverse()
        return self._pending.pop()

    def read(self, max_events: int, timeout_s: float) -> Batch | None:
        """Up to ``max_events`` events: waits up to ``timeout_s`` for the first item, then takes
        what is already there. None when nothing arrived. Raises the source's error, if any."""
        events: list[ChangeEvent] = []
        upto: Position | None = None
        newest = 0
        snapshot = False
        try:
            item = self._next(timeout_s)
        except queue.Empty:
            return None
        read_at_us = self._pending_read_at_us
        while True:
            if item is _DONE:
                if self._error is not None and not events and upto is None:
                    raise self._error  # after what came before it was delivered (the next read)
                if not events and upto is None:
                    raise EOFError(f"stream `{self.stream}` ended")
                break
            if isinstance(item, TxnEnd):
                upto = item.position
                newest = max(newest, item.commit_time_us)
            else:
                events.append(item)
                upto = item.position
                snapshot = snapshot or item.op is Op.READ
                newest = max(newest, item.commit_time_us)
                if len(events) >= max_events:
                    break
            try:
                item = self._next(None)
            except queue.Empty:
                break
        self._seq += 1
        self.last_item_at = time.monotonic()
        return Batch(self.stream, self._seq, events, upto, snapshot, newest, read_at_us)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.source.close()
