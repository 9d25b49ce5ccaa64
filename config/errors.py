"""The root of Worker-Sync's errors and the configuration error.

They live here, at the bottom of the layers, so that :mod:`config` needs nothing from :mod:`actors`;
:mod:`actors.core.errors` re-exports both beside the rest of the family. All errors are picklable (they
cross Ray process boundaries): each constructor passes its arguments positionally to ``Exception``.
"""

from __future__ import annotations

from typing import ClassVar

from config.exit_codes import Exit


class WorkerSyncError(Exception):
    """Root of every error we raise on purpose.

    ``exit_code``: what a command exits with when this error ends it (actors.cli.failures): each subclass
    says which, so no command keeps its own list of errors and codes."""

    retryable: ClassVar[bool] = False
    exit_code: int = Exit.FINDINGS


class ConfigError(WorkerSyncError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = Exit.USAGE

    def __init__(self, source: str, message: str) -> None:
        super().__init__(source, message)
        self.source = source
        self.message = message

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"
