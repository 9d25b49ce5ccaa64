"""The root of Worker-Sync's errors and the configuration error.

They live here, at the bottom of the layers, so that :mod:`config` needs nothing from :mod:`actors`;
:mod:`actors.core.errors` re-exports both beside the rest of the family. All errors are picklable (they
cross Ray process boundaries): each constructor passes its arguments positionally to ``Exception``.
"""

from __future__ import annotations

from typing import ClassVar


class WorkerSyncError(Exception):
    """Root of every error we raise on purpose."""

    retryable: ClassVar[bool] = False


class ConfigError(WorkerSyncError):
    """The configuration file is missing, unreadable or invalid."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(source, message)
        self.source = source
        self.message = message

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"
