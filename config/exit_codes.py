"""Exit codes shared by every command (SPEC §5).

They live in config, the bottom layer, because every error class carries its own (config.errors)."""

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    #: A failure, or findings such as a tampered audit log.
    FINDINGS = 1
    #: Bad flags, an invalid config file, or a database that refuses what the config asks of it.
    USAGE = 2
    #: A database or Ray cannot be reached.
    UNAVAILABLE = 3
