"""Every error Worker-Sync raises on purpose.

All errors are picklable (they cross Ray process boundaries): each constructor passes
its arguments positionally to ``Exception.__init__``. Each class names the exit code a command ends
with when it meets the error (``exit_code``, see config.errors).
"""

from __future__ import annotations

# The root and the config error live in config (the bottom layer); re-exported here with the rest.
from config.errors import ConfigError as ConfigError
from config.errors import WorkerSyncError as WorkerSyncError
from config.exit_codes import Exit


class SourceUnavailable(WorkerSyncError):
    """A database cannot be reached right now; retrying may help."""

    retryable = True
    exit_code = Exit.UNAVAILABLE


class NodeUnreachable(SourceUnavailable):
    """A configured node cannot be connected to (down, refused, bad password), as an operations command
    meets it. ``reason``: the driver's first line, for commands that phrase their own message."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, reason)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class SourceMisconfigured(WorkerSyncError):
    """A source database's settings or privileges do not allow capture; a human must change them."""

    exit_code = Exit.USAGE


class TableChanged(WorkerSyncError):
    """A captured table was truncated or altered where the config says `stop` (or a column was dropped or
    renamed, which never travels): the stream stops before the change, a human decides (README, "TRUNCATE
    and schema changes"). Nothing after it is committed, so the stream resumes there once they have."""

    exit_code = Exit.USAGE


class OffsetLost(WorkerSyncError):
    """The source no longer has the position we must resume from (slot dropped, binlog purged,
    oplog rolled over). The only remedy is a re-snapshot."""


class SinkError(WorkerSyncError):
    """A target database refused a write (or, at start-up, the login or a table)."""

    exit_code = Exit.USAGE


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


class ColumnMissing(SinkError):
    """A change names a column its target table lacks (with `schema_changes: apply`, the applier adds it from the
    source's definition and applies the change again: see ApplierShard)."""

    def __init__(self, message: str, namespace: str, column: str) -> None:
        super().__init__(message, namespace, column)
        self.message = message
        self.namespace = namespace
        self.column = column

    def __str__(self) -> str:
        return self.message


class EncodingError(WorkerSyncError):
    """A value cannot be represented in the canonical event encoding."""


class AuditMismatch(WorkerSyncError):
    """The audit log does not verify."""


class ForeignEntries(AuditMismatch):
    """The audit store holds entries no signed checkpoint covers: Worker-Sync seals every batch it stores, so
    someone else wrote them. No process signs them; the pipeline stops until an operator acts."""

    def __init__(self, message: str, first: int) -> None:
        super().__init__(message, first)
        self.message = message
        self.first = first

    def __str__(self) -> str:
        return self.message


class DatabaseError(WorkerSyncError):
    """A database driver's error, translated by its engine (``Engine.translate``): engine-neutral code
    handles these instead of the drivers' own classes. The message is the driver's."""


class DatabaseUnreachable(DatabaseError):
    """The connection failed or broke while talking to the database."""

    retryable = True
    exit_code = Exit.UNAVAILABLE


class ObjectMissing(DatabaseError):
    """A schema or table the statement names does not exist (e.g. `worker-sync init` never ran)."""

    exit_code = Exit.USAGE


class PrivilegeMissing(DatabaseError):
    """The role lacks a privilege the statement needs."""
