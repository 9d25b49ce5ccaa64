"""Parked conflicts of `manual` groups: a durable file in the supervisor's state directory.

Under the `manual` policy the nodes converge on the last writer meanwhile (see actors/core/conflicts.py),
and each change that lost is parked here for a human: `worker-sync conflicts list|show|resolve` reads and
resolves them through the supervisor's HTTP port. ``--take source`` makes the parked (losing) change win
on every node of its group; ``--take target`` keeps the winner, which every node already holds.

The file is append-only JSON lines (one line per parked conflict and per state change), fsynced before
the supervisor commits the source position of the change that lost, so a crash never forgets a parked
conflict. Rows are kept exactly (typed msgpack, base64) for the resolution, and as display text.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from pathlib import Path
from typing import Any, Literal

import msgspec

from actors.core.conflicts import ConflictRecord, Stored, decode_stored, encode_stored
from actors.core.encoding import decode_row, encode_row
from actors.durable_lines import append_durably

State = Literal["parked", "resolving", "resolved"]
Take = Literal["source", "target"]


class Parked(msgspec.Struct, kw_only=True):
    id: str
    group: str
    #: The node whose offer decided the conflict, and the table there.
    node: str
    namespace: str
    #: The row's key there, exactly (typed msgpack, base64).
    key_exact: str
    policy: str
    parked_at: float
    #: The change that lost ("source": the incoming change) and the one kept ("target").
    source: str
    target: str
    state: State = "parked"
    take: Take | None = None
    resolved_at: float | None = None

    def key(self) -> dict[str, Any]:
        return decode_row(base64.b64decode(self.key_exact))

    def loser(self) -> Stored:
        return decode_stored(base64.b64decode(self.source))

    def winner(self) -> Stored:
        return decode_stored(base64.b64decode(self.target))

    def view(self) -> dict[str, Any]:
        """A JSON-friendly document (values as text where JSON has no type for them)."""

        def side(stored: Stored) -> dict[str, Any]:
            v = stored.version
            return {
                "node": v.node,
                "commit_time_us": v.time_us,
                "priority": v.priority,
                "row": None if stored.row is None else {k: _text(x) for k, x in stored.row.items()},
            }

        return {
            "id": self.id,
            "group": self.group,
            "node": self.node,
            "namespace": self.namespace,
            "key": {k: _text(v) for k, v in self.key().items()},
            "policy": self.policy,
            "state": self.state,
            "take": self.take,
            "parked_at": self.parked_at,
            "resolved_at": self.resolved_at,
            "source": side(self.loser()),
            "target": side(self.winner()),
        }


def _text(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def conflict_id(record: ConflictRecord) -> str:
    """Stable per losing change and group: the same change losing on several nodes is parked once."""
    v = record.loser.version
    digest = hashlib.sha256(msgspec.msgpack.encode([record.group, v.node, v.time_us, v.order])).hexdigest()
    return digest[:16]


class ConflictStore:
    """Thread-safe (the HTTP thread reads, the supervisor loop writes)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "conflicts.jsonl"
        self._lock = threading.Lock()
        self._items: dict[str, Parked] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    item = msgspec.json.decode(line, type=Parked)
                    self._items[item.id] = item

    def park(self, records: list[ConflictRecord]) -> int:
        """Park new conflicts durably; returns how many were new."""
        new = []
        with self._lock:
            for record in records:
                ident = conflict_id(record)
                if ident in self._items:
                    continue
                item = Parked(
                    id=ident,
                    group=record.group,
                    node=record.node,
                    namespace=record.namespace,
                    key_exact=base64.b64encode(encode_row(record.key)).decode(),
                    policy=record.policy,
                    parked_at=time.time(),
                    source=base64.b64encode(encode_stored(record.loser)).decode(),
                    target=base64.b64encode(encode_stored(record.winner)).decode(),
                )
                self._items[ident] = item
                new.append(item)
            if new:
                self._append(new)
        return len(new)

    def set_state(self, ident: str, state: State, take: Take | None = None) -> Parked:
        with self._lock:
            item = self._items[ident]
            item.state = state
            if take is not None:
                item.take = take
            if state == "resolved":
                item.resolved_at = time.time()
            self._append([item])
            return msgspec.structs.replace(item)

    def get(self, ident: str) -> Parked | None:
        with self._lock:
            item = self._items.get(ident)
            return None if item is None else msgspec.structs.replace(item)

    def all(self) -> list[Parked]:
        with self._lock:
            return [msgspec.structs.replace(item) for item in self._items.values()]

    def _append(self, items: list[Parked]) -> None:
        append_durably(self.path, items)
