"""Compare one table of a link at its source and target by key ranges, bisecting ranges that differ.

The source's key order cuts the table into ranges of ``chunk_rows`` rows (only each range's first key
crosses the network). Each range gets a digest at both ends, (row count, sum of row hashes), computed in
the database where the engine can (actors.engines.rows). A range whose digests differ is split at its middle
key until it holds at most ``leaf_rows`` rows, whose canonical rows are then read and compared key by key.
What this finds are *suspects*: the two reads were not at one instant, so a change in flight looks like a
difference until actors.ops.verify_settle reads the keys again once the link has caught up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from actors.engines.rows import Bound, CanonicalRow, Key, RowReader, TableView

#: Canonical texts of a key: the same for one row at both ends, whatever the engines.
KeyTexts = tuple[str | None, ...]


@dataclass
class Suspect:
    """A key whose row differs (or exists at one end only), with both rows as last read (None: absent)."""

    key: KeyTexts
    source_key: Key | None
    target_key: Key | None
    source_row: tuple[str | None, ...] | None
    target_row: tuple[str | None, ...] | None

    @property
    def read_key(self) -> Key:
        """The key as one end read it: what both readers can turn into their own parameters."""
        key = self.source_key if self.source_key is not None else self.target_key
        assert key is not None
        return key


@dataclass(frozen=True)
class TablePair:
    link: str
    source_node: str
    target_node: str
    source: TableView
    target: TableView


@dataclass
class ScanResult:
    ranges_checked: int = 0
    source_rows: int = 0
    target_rows: int = 0
    suspects: dict[KeyTexts, Suspect] = field(default_factory=dict)


def compare_rows(source: list[CanonicalRow], target: list[CanonicalRow]) -> list[Suspect]:
    """Keys whose rows differ between two reads of the same keys or range."""
    at_target = {texts: (key, row) for key, texts, row in target}
    found = []
    for key, texts, row in source:
        other = at_target.pop(texts, None)
        if other is None:
            found.append(Suspect(texts, key, None, row, None))
        elif other[1] != row:
            found.append(Suspect(texts, key, other[0], row, other[1]))
    found += [Suspect(texts, None, key, None, row) for texts, (key, row) in at_target.items()]
    return found


class Scanner:
    """One table pair's scan; ``progress(rows_done)`` is called after each top-level range."""

    def __init__(
        self,
        pair: TablePair,
        source: RowReader,
        target: RowReader,
        *,
        chunk_rows: int = 10_000,
        leaf_rows: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.pair = pair
        self.source, self.target = source, target
        self.chunk_rows, self.leaf_rows = chunk_rows, leaf_rows
        self.progress = progress
        self.result = ScanResult()

    def run(self) -> ScanResult:
        low: Bound = None
        while True:
            high = self.source.bound_after(self.pair.source, low, None, self.chunk_rows)
            self._range(low, high, top=True)
            if self.progress is not None:
                self.progress(self.result.source_rows)
            if high is None:
                return self.result
            low = high

    def _range(self, low: Bound, high: Bound, *, top: bool = False) -> None:
        pair, result = self.pair, self.result
        at_source = self.source.digest(pair.source, low, high)
        at_target = self.target.digest(pair.target, low, high)
        result.ranges_checked += 1
        if top:
            result.source_rows += at_source[0]
            result.target_rows += at_target[0]
        if at_source == at_target:
            return
        larger = max(at_source[0], at_target[0])
        middle = None
        if larger > self.leaf_rows:
            reader, view = (self.source, pair.source) if at_source[0] >= at_target[0] else (self.target, pair.target)
            middle = reader.bound_after(view, low, high, larger // 2)
        if middle is None or middle == low:
            self._leaf(low, high)
            return
        self._range(low, middle)
        self._range(middle, high)

    def _leaf(self, low: Bound, high: Bound) -> None:
        rows = compare_rows(
            self.source.rows(self.pair.source, low, high), self.target.rows(self.pair.target, low, high)
        )
        for suspect in rows:
            self.result.suspects[suspect.key] = suspect
