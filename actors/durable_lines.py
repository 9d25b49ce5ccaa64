"""Append-only JSON-lines files in the supervisor's state directory, written durably.

The conflict and dead-letter stores keep one line per record and per state change; the supervisor commits
a source position only after the line is on disk, so every append is flushed and fsynced before it returns.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import msgspec


def append_durably(path: Path, records: Iterable[msgspec.Struct]) -> None:
    """Append one JSON line per record and fsync the file before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as out:
        for record in records:
            out.write(msgspec.json.encode(record) + b"\n")
        out.flush()
        os.fsync(out.fileno())
