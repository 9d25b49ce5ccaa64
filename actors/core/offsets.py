"""Durable committed positions, one per stream.

A capture actor restarted by Ray runs its constructor again with its original arguments, so it
cannot be told where to resume: it reads the committed position from here. The file store
writes atomically (temp file + rename + fsync), so a crash leaves the old or the new position,
never a torn one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec

from actors.core.events import Position

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class FileOffsetStore:
    """Committed positions as small msgpack files in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, stream: str) -> Path:
        return self.directory / f"{_SAFE.sub('_', stream)}.offset"

    def load(self, stream: str) -> Position | None:
        try:
            data = self._path(stream).read_bytes()
        except FileNotFoundError:
            return None
        return msgspec.msgpack.decode(data, type=Position)

    def save(self, stream: str, position: Position) -> None:
        path = self._path(stream)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(msgspec.msgpack.encode(position))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def forget(self, stream: str) -> None:
        """Drop a stream's position (after a re-snapshot is decided)."""
        self._path(stream).unlink(missing_ok=True)
