"""Tell changes in flight from real differences: read suspect keys again once the link has caught up.

A scan reads the source, then the target: a change committed at the source meanwhile, not yet applied,
looks like a difference. So each suspect key is read again at the source, the source's log position is
taken, and the target is read only when the link's *committed* position (what the running `worker-sync run`
persisted to ``supervisor.state_dir``: everything up to it is applied) has passed that position. A key
still differing after ``rounds`` such reads is reported; a key that matches once was only in flight.

An idle link's committed position does not move (nothing to apply), so the wait also ends when it has not
moved for ``quiet_s``; and it ends after ``timeout_s`` at most (a stopped link: the difference is real).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from actors.engines.rows import RowReader
from actors.ops.verify_scan import KeyTexts, Suspect, TablePair, compare_rows

Committed = Callable[[], bytes | None]
POLL_S = 0.05


@dataclass(frozen=True)
class Wait:
    """How a wait for the link ended: ``passed`` (caught up), ``idle``, ``timeout`` or ``unknown`` (no
    committed position to read: a fixed pause)."""

    outcome: str
    seconds: float


def wait_committed(target: bytes, committed: Committed, *, timeout_s: float, quiet_s: float) -> Wait:
    start = time.monotonic()
    last = committed()
    if last is None:
        time.sleep(min(quiet_s, timeout_s))
        return Wait("unknown", time.monotonic() - start)
    moved = start
    while last is not None:
        now = time.monotonic()
        if last >= target:
            return Wait("passed", now - start)
        if now - moved >= quiet_s:
            return Wait("idle", now - start)
        if now - start >= timeout_s:
            return Wait("timeout", now - start)
        time.sleep(POLL_S)
        current = committed()
        if current != last:
            last, moved = current, time.monotonic()
    return Wait("unknown", time.monotonic() - start)  # the position file went away


def settle(
    pair: TablePair,
    source: RowReader,
    target: RowReader,
    suspects: dict[KeyTexts, Suspect],
    committed: Committed,
    *,
    rounds: int = 3,
    timeout_s: float = 30.0,
    quiet_s: float = 1.5,
) -> tuple[dict[KeyTexts, Suspect], list[Wait]]:
    """The suspects still differing after at most ``rounds`` re-reads (with both rows as last read), and the
    waits. A round reads the source, waits for the link, reads the target, then the source again: the key
    matches when the target equals either source read (it holds a state the source had in between). Rounds
    stop early once the link is idle and the rows read are those of the round before: nothing is moving."""
    waits: list[Wait] = []
    for _ in range(rounds):
        if not suspects:
            break
        keys = [s.read_key for s in suspects.values()]
        before = source.rows_by_key(pair.source, keys)
        position = source.log_position()
        waits.append(wait_committed(position, committed, timeout_s=timeout_s, quiet_s=quiet_s))
        at_target = target.rows_by_key(pair.target, keys)
        after = source.rows_by_key(pair.source, keys)
        differing_before = {s.key for s in compare_rows(before, at_target)}
        still = {s.key: s for s in compare_rows(after, at_target) if s.key in differing_before and s.key in suspects}
        stable = waits[-1].outcome in ("idle", "unknown") and all(_same(suspects[k], s) for k, s in still.items())
        suspects = still
        if stable:
            break
    return suspects, waits


def _same(a: Suspect, b: Suspect) -> bool:
    return a.source_row == b.source_row and a.target_row == b.target_row
