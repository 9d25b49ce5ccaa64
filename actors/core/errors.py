"""Every error Worker-Sync raises on purpose.

All errors are picklable (they cross Ray process boundaries): each constructor passes
its arguments positionally to ``Exception.__init__``.
"""

from __future__ import annotations

# The root and the config error live in config (the bottom layer); re-exported here with the rest.
from config.errors import ConfigError as ConfigError
from config.errors import WorkerSyncError as WorkerSyncError


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


class RowRefused(SinkError):
    """The target refuses this one row for good (too large, a NUL byte into text, out of range, a
    constraint): retrying will not help until someone changes the row or the target. The applier sets the
    change aside as a dead letter (with every later change of the same key) and the rest flows on."""

    def __init__(self, message: str, namespace: str, key: dict[str, object]) -> None:
        super().__init__(message, namespace, key)
        self.message = message
        self.namespace = namespace
        self.key = key

    def __str__(self) -> str:
        return self.message


class EncodingError(WorkerSyncError):
    """A value cannot be represented in the canonical event encoding."""


class AuditMismatch(WorkerSyncError):
    """The audit log does not verify."""
