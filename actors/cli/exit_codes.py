"""Exit codes shared by every command (SPEC §5)."""

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    #: A failure, or findings such as a tampered audit log.
    FINDINGS = 1
    #: Bad flags or an invalid config file.
    USAGE = 2
    #: A database or Ray cannot be reached.
    UNAVAILABLE = 3
