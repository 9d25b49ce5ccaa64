"""Every error Worker-Sync raises on purpose.

All errors are picklable (they cross Ray process boundaries): each constructor passes
its arguments positionally to ``Exception.__init__``.
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


class SourceUnavailable(WorkerSyncError):
    """A database cannot be reached right now; retrying may help."""

    retryable = True


class SourceMisconfigured(WorkerSyncError):
    """A source database's settings or privileges do not allow capture; a human must change them."""


class OffsetLost(WorkerSyncError):
    """The source no longer has the position we must resume from (slot dropped, binlog purged,
    oplog rolled over). The only remedy is a re-snapshot."""


class SinkError(WorkerSyncError):
    """A target database refused a write."""


class EncodingError(WorkerSyncError):
    """A value cannot be represented in the canonical event encoding."""


class AuditMismatch(WorkerSyncError):
    """The audit log does not verify."""
