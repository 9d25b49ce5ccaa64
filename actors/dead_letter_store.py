"""Dead letters, durably: a file in the supervisor's state directory (see actors/core/dead_letters.py).

Append-only JSON lines (one line per dead letter and per state change), fsynced before the supervisor
commits the source position of the changes it records, so a crash never forgets one. A row with an
unresolved dead letter is *blocked*: every later change of it is set aside behind it, in order, until the
operator retries (`worker-sync dead-letters retry ID`: all of that row's dead letters are applied again,
oldest first) or discards them one by one.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any, Literal

import msgspec

from actors.core.dead_letters import DeadLetter, Kind
from actors.core.encoding import decode_row, encode_row
from actors.durable_lines import append_durably

State = Literal["dead", "retrying", "resolved", "discarded"]
#: States whose row stays blocked.
OPEN: frozenset[State] = frozenset({"dead", "retrying"})


class Entry(msgspec.Struct, kw_only=True):
    id: str
    link: str
    source_node: str
    target_node: str
    namespace: str
    key_exact: str
    kind: Kind
    change: str
    reason: str
    held: bool
    shard: int
    first_at: float
    last_at: float
    attempts: int = 0
    state: State = "dead"

    def letter(self) -> DeadLetter:
        return DeadLetter(
            link=self.link,
            source_node=self.source_node,
            target_node=self.target_node,
            namespace=self.namespace,
            key=decode_row(base64.b64decode(self.key_exact)),
            kind=self.kind,
            change=base64.b64decode(self.change),
            reason=self.reason,
            held=self.held,
            shard=self.shard,
        )

    def view(self, held_behind: str | None) -> dict[str, Any]:
        """A JSON-friendly document for the HTTP port and the CLI."""
        letter = self.letter()
        row = letter.row()
        return {
            "id": self.id,
            "state": self.state,
            "link": self.link,
            "source_node": self.source_node,
            "target_node": self.target_node,
            "namespace": self.namespace,
            "key": {name: _text(value) for name, value in letter.key.items()},
            "op": "delete" if row is None else "upsert",
            "row": None if row is None else {name: _text(value) for name, value in row.items()},
            "reason": self.reason,
            "first_at": _iso(self.first_at),
            "last_at": _iso(self.last_at),
            "attempts": self.attempts,
            "held_behind": held_behind,
        }


#: Longer values are shown cut (a dead letter is often a row too large for its target).
SHOWN_CHARS = 200


def _text(value: Any) -> Any:
    """A value as JSON shows it: as is when JSON has its type, else its text, cut after SHOWN_CHARS."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else value.hex() if isinstance(value, bytes) else str(value)
    if len(text) > SHOWN_CHARS:
        return f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"
    return text


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds")


class DeadLetterStore:
    """Thread-safe (the HTTP thread reads and asks, the supervisor loop writes)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "dead_letters.jsonl"
        self._lock = threading.Lock()
        self._items: dict[str, Entry] = {}
        self._next = 0
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    item = msgspec.json.decode(line, type=Entry)
                    self._items[item.id] = item
            self._next = len(self._items)

    def add(self, letters: list[DeadLetter]) -> list[Entry]:
        """Record new dead letters durably, in order; returns their entries."""
        now = time.time()
        new = []
        with self._lock:
            for letter in letters:
                self._next += 1
                entry = Entry(
                    id=f"{int(now * 1000):x}{self._next:04x}"[-12:].rjust(12, "0"),
                    link=letter.link,
                    source_node=letter.source_node,
                    target_node=letter.target_node,
                    namespace=letter.namespace,
                    key_exact=base64.b64encode(encode_row(letter.key)).decode(),
                    kind=letter.kind,
                    change=base64.b64encode(letter.change).decode(),
                    reason=letter.reason,
                    held=letter.held,
                    shard=letter.shard,
                    first_at=now,
                    last_at=now,
                )
                self._items[entry.id] = entry
                new.append(entry)
            if new:
                self._append(new)
        return [msgspec.structs.replace(entry) for entry in new]

    def set_state(self, ident: str, state: State, reason: str | None = None) -> Entry:
        with self._lock:
            entry = self._items[ident]
            entry.state = state
            entry.last_at = time.time()
            if state == "retrying":
                entry.attempts += 1
            if reason is not None:
                entry.reason = reason
            self._append([entry])
            return msgspec.structs.replace(entry)

    def get(self, ident: str) -> Entry | None:
        with self._lock:
            entry = self._items.get(ident)
            return None if entry is None else msgspec.structs.replace(entry)

    def all(self) -> list[Entry]:
        with self._lock:
            return [msgspec.structs.replace(entry) for entry in self._items.values()]

    def row_entries(self, ident: str) -> list[Entry]:
        """The open entries of the row ``ident`` belongs to, oldest first (its own included)."""
        with self._lock:
            row = self._items[ident].letter().row_key
            return [
                msgspec.structs.replace(entry)
                for entry in self._items.values()
                if entry.state in OPEN and entry.letter().row_key == row
            ]

    def blocked(self) -> frozenset[str]:
        """Rows with an open dead letter: their later changes are set aside behind it."""
        with self._lock:
            return frozenset(entry.letter().row_key for entry in self._items.values() if entry.state in OPEN)

    def pending(self) -> int:
        with self._lock:
            return sum(entry.state in OPEN for entry in self._items.values())

    def held_behind(self, ident: str) -> str | None:
        """The oldest open entry of the same row, when ``ident`` is another one held behind it."""
        entries = self.row_entries(ident) if ident in self._items else []
        first = entries[0].id if entries else None
        return None if first in (None, ident) else first

    def _append(self, items: list[Entry]) -> None:
        append_durably(self.path, items)
