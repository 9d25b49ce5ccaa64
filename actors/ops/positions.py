"""Committed stream positions (the `*.offset` files of `supervisor.state_dir`) in a backup.

Each file is checked to decode as a Position both when it is saved and before it is restored; restore
writes atomically (temp + fsync + rename) and refuses to replace a different existing position.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from actors.core.events import Position
from actors.ops.archive import ArchiveError

PREFIX = "positions/"


def save_positions(state_dir: Path, staging: Path) -> list[str]:
    """Copy every valid position file; returns the archive paths."""
    if not state_dir.is_dir():
        return []
    out = staging / "positions"
    saved = []
    for path in sorted(state_dir.glob("*.offset")):
        data = path.read_bytes()
        try:
            msgspec.msgpack.decode(data, type=Position)
        except msgspec.DecodeError:
            continue  # a torn file cannot exist (atomic writes); anything else here is not ours
        out.mkdir(parents=True, exist_ok=True)
        (out / path.name).write_bytes(data)
        saved.append(PREFIX + path.name)
    return saved


def check_positions(root: Path, names: list[str], state_dir: Path) -> list[str]:
    """Problems that forbid restoring ``names`` into ``state_dir`` (bad file, a different one there)."""
    problems = []
    for rel in names:
        data = (root / rel).read_bytes()
        try:
            msgspec.msgpack.decode(data, type=Position)
        except msgspec.DecodeError as exc:
            raise ArchiveError(f"`{rel}` is not a position file: {exc}") from None
        existing = state_dir / Path(rel).name
        if existing.exists() and existing.read_bytes() != data:
            problems.append(f"`{existing}` already holds a different position")
    return problems


def restore_positions(root: Path, names: list[str], state_dir: Path) -> list[str]:
    state_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for rel in names:
        target = state_dir / Path(rel).name
        tmp = target.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write((root / rel).read_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        written.append(str(target))
    return written
