"""Password files for local servers: the config names a file, never the password itself."""

from __future__ import annotations

import os
from pathlib import Path


def write_secret_file(directory: Path, name: str, value: str) -> str:
    """Write ``value`` to ``directory/name``, readable by its owner only from the first byte on."""
    path = Path(directory) / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    path.chmod(0o600)  # an existing file keeps its old mode under O_CREAT
    return str(path)
