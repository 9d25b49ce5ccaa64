"""Private per-server directories under /tmp for data, sockets and config.

Why not under the caller's base directory: as root the server runs as `postgres`/`mysql`, which must be
able to traverse every ancestor of its data directory, and pytest resets its temp root
(/tmp/pytest-of-root) to 0700 whenever any pytest run starts — that killed running servers mid-session
(PANIC: could not open pg_control: Permission denied). A directory of the server account's own right under
/tmp (sticky, world-searchable) cannot be taken away, and keeps socket paths far below the ~107 byte limit.

A home records its owner's pid; homes whose owner died without cleaning up (SIGKILL) are swept by the next
start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path("/tmp")
PREFIX = "ws-harness-"
OWNER_FILE = "owner.pid"
KEEP = "keep"  # written instead of a pid by keep_data=True: never swept
_ORPHAN_AGE_S = 3600.0  # a home without owner file that old was abandoned between mkdtemp and marking


def make_home(engine: str) -> Path:
    """A new empty 0700 directory /tmp/ws-harness-<engine>-XXXXXXXX, marked as ours."""
    home = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{engine}-", dir=ROOT))
    (home / OWNER_FILE).write_text(f"{os.getpid()}\n")
    return home


def keep(home: Path) -> None:
    (home / OWNER_FILE).write_text(f"{KEEP}\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(home: Path) -> bool:
    try:
        owner = (home / OWNER_FILE).read_text().strip()
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):
            return time.time() - home.stat().st_mtime > _ORPHAN_AGE_S
        return False
    except OSError:
        return False
    if owner == KEEP or not owner.isdigit():
        return False
    return not _alive(int(owner))


def sweep_stale_homes() -> list[Path]:
    """Remove homes whose owner process is gone; returns what was removed."""
    removed = []
    for home in ROOT.glob(f"{PREFIX}*"):
        if home.is_dir() and not home.is_symlink() and is_stale(home):
            shutil.rmtree(home, ignore_errors=True)
            removed.append(home)
    return removed
